"""The slowest self-contained checks (building and installing the wheel and running `meta reproduce` from it,
notebooks in fresh kernels, the figure cache's four-run warm rerun, command-line runs in fresh interpreters)
run in one child process started as soon as pytest has collected the tests that need them
(tests/conftest.py, ``pytest_collection_finish``), one job after another in the order the tests run.

The child and its processes use the second core while the in-process tests run on the first. Being a
separate process, nothing a test patches in this one (``os.replace``, ``HOME``, the working directory)
reaches a job, and the jobs see the environment as it was before the first test. A job is a function
``fn(folder)`` in a test module that writes what it produced into ``folder``; the test marked
``@pytest.mark.background("module:function")`` calls :func:`result`, which waits for that job and returns
its folder, and makes every assertion itself. A job that failed fails its test with the job's traceback.

Run as a script, this file is the child: ``python _background.py BASE JOB...`` runs each job into
``BASE/<job>/`` and marks it ``done`` (or writes ``error`` with the traceback).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_STATE: dict = {"proc": None, "base": None, "jobs": (), "folders": []}


def _folder(base: Path, name: str) -> Path:
    return base / name.replace(":", "-")


def start(names) -> None:
    """Start one child process that runs the jobs ``names`` one after another."""
    names = list(dict.fromkeys(names))
    if not names or _STATE["proc"] is not None:
        return
    base = Path(tempfile.mkdtemp(prefix="meta-test-background-"))
    _STATE["folders"].append(base)
    log = open(base / "child.log", "wb")  # noqa: SIM115 - the child writes it until it ends
    _STATE.update(base=base, jobs=tuple(names), log=log, proc=subprocess.Popen(
        [sys.executable, str(HERE / "_background.py"), str(base), *names], cwd=HERE, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True))


def result(name: str) -> Path:
    """The folder job ``name`` wrote (waiting for the job); runs the job here if no child was started for it."""
    import pytest

    __tracebackhide__ = True
    if name not in _STATE["jobs"]:
        base = Path(tempfile.mkdtemp(prefix="meta-test-background-"))
        _STATE["folders"].append(base)
        _run(base, name)
    else:
        base, proc = _STATE["base"], _STATE["proc"]
        folder = _folder(base, name)
        while not ((folder / "done").exists() or (folder / "error").exists()):
            if proc.poll() is not None:
                pytest.fail(f"the background process ended (exit code {proc.returncode}) before job {name} "
                            f"finished:\n{(base / 'child.log').read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
    folder = _folder(base, name)
    if (folder / "error").exists():
        pytest.fail(f"background job {name} failed:\n{(folder / 'error').read_text()}")
    return folder


def finish() -> None:
    """End the child (and the processes it started) if a job is still running, e.g. after ``pytest -x``, and
    remove the jobs' folders."""
    import shutil

    proc = _STATE["proc"]
    if proc is not None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _STATE["log"].close()
    for folder in _STATE["folders"]:
        shutil.rmtree(folder, ignore_errors=True)
    _STATE.update(proc=None, base=None, jobs=(), folders=[])


#: the first job of every child when numba is installed and tests of more than one module run
COMPILE_JOB = "_background:compile_kernels"


def compile_kernels(folder: Path) -> None:
    """Fill numba's on-disk cache with the compiled kernels of meta._fast (the DL kernel, the REML/ML
    kernel, the chi-square tail on its own) for the argument types the tests use, so the tests in the
    main process load them instead of compiling them there (~14 s of compiling on a fresh checkout).
    No test reads this job: a test that reaches a kernel first compiles it itself, as it would anyway."""
    import numpy as np

    from meta import _estimators, _fast
    from meta.pool import pool_many

    y = np.array([[0.1, 0.3, np.nan], [0.2, -0.1, 0.4]])
    v = np.full_like(y, 0.05)
    pool_many(y, v, method="DL", engine="numba")
    pool_many(y, v, method="REML")
    _fast.chi2_many()(np.array([1.5, 2.5]), np.array([1, 2], dtype=np.int64), _estimators.CHI2_TABLE, np.empty(2))
    (folder / "compiled").write_text("")


def _run(base: Path, name: str) -> None:
    import importlib
    import traceback

    folder = _folder(base, name)
    folder.mkdir(parents=True)
    module, function = name.split(":")
    try:
        getattr(importlib.import_module(module), function)(folder)
    except BaseException:  # noqa: BLE001 - handed to the test that reads this job
        (folder / "error").write_text(traceback.format_exc())
    else:
        (folder / "done").write_text("")


if __name__ == "__main__":
    for job in sys.argv[2:]:
        _run(Path(sys.argv[1]), job)
