"""Fixtures shared by several test files."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

# the run cache (meta.review.run_cache) keys a run by the package's files, not by what a test patches
# at run time: off for the suite (subprocesses inherit it); tests/test_run_cache.py turns it on
os.environ["META_RUN_CACHE"] = "0"

#: a frozen copy of the bundled data/ (tests of behaviour never read data/ itself, so adding a correct
#: study to data/ never turns the suite red; only tests/test_readme.py and the coverage-table test do)
BUNDLED = Path(__file__).resolve().parent / "fixtures" / "review_data"


@pytest.fixture
def bundled_copy(tmp_path: Path) -> Path:
    """A copy of the review data snapshot (tests/fixtures/review_data) in tmp_path, free to edit."""
    dst = tmp_path / "data"
    shutil.copytree(BUNDLED, dst)
    return dst


@pytest.fixture
def folder(bundled_copy: Path) -> Path:
    """The data folder a test edits: a copy of the bundled one (test_data/test_coverage build their own)."""
    return bundled_copy


@pytest.fixture
def this_python_kernel(tmp_path: Path, monkeypatch) -> None:
    """A kernelspec "python3" that runs *this* interpreter, found first on JUPYTER_PATH, so notebook
    tests work on a fresh machine and never pick up a user-level python3 kernel from elsewhere."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (meta venv)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable


@pytest.fixture(scope="session")
def snapshot_results(tmp_path_factory) -> Path:
    """One ``reproduce`` of a copy of the review data snapshot (PNG at 72 dpi, no HTML), shared by the
    tests that only read its results folder (test_es_scale, test_living): run once per session
    instead of once per test module. Read-only: a test that changes files copies the folder first."""
    from meta.review.reproduce import reproduce

    base = tmp_path_factory.mktemp("snapshot_results")
    shutil.copytree(BUNDLED, base / "data")
    reproduce(base / "data", base / "results", formats=("png",), dpi=72, html=False, progress=None)
    return base / "results"


@pytest.fixture(scope="session")
def hostile_results(tmp_path_factory) -> Path:
    """One ``reproduce`` of the hostile data set (tests/_hostile.py; PNG at 72 dpi, report.md and
    report.html), shared read-only by test_report and test_report_browser."""
    import _hostile as H

    from meta.review import reproduce

    base = tmp_path_factory.mktemp("hostile")
    reproduce.reproduce(H.hostile_data(base / "data"), base / "results", formats=("png",), dpi=72, progress=None)
    return base / "results"
