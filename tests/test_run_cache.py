"""The run cache of ``meta reproduce`` (meta.review.run_cache): a hit writes the bytes a full run wrote,
imports no heavy library, and anything that could change an output -- a data byte, an option, a
damaged entry, a switch -- gives a full run.

One full run of the frozen data snapshot (tests/fixtures/review_data) is shared by the module; it
uses PNG at 72 dpi without the HTML report (as tests/conftest.py's shared run) to stay quick. Tests
that must show a full run replace the full run by a function that raises :class:`FullRun`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from meta import _cache_files
from meta.review import run_cache
from meta.review.outputs.results_folder import OutputRefused

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "fixtures" / "review_data"
OPTS = {"formats": ("png",), "dpi": 72, "html": False}
HEAVY = ("pandas", "scipy", "matplotlib", "numba", "numpy")


class FullRun(Exception):
    """Raised in place of a full run."""


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One full run of a copy of the snapshot into ``A``, stored in a run cache of its own."""
    base = tmp_path_factory.mktemp("run_cache")
    data = base / "data"
    shutil.copytree(SNAPSHOT, data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("META_RUN_CACHE", "1")
        mp.delenv("META_FIGURE_CACHE", raising=False)
        mp.setenv("META_RUN_CACHE_DIR", str(base / "cache"))
        lines: list[str] = []
        outcome = run_cache.reproduce(data, base / "A", **OPTS, progress=lines.append)
        assert not outcome.from_cache and outcome.entry is not None and outcome.entry.is_file()
        yield {"base": base, "data": data, "A": base / "A", "entry": outcome.entry, "lines": lines,
               "summary": outcome.summary}


@pytest.fixture
def full_run_raises(monkeypatch):
    import meta.review.reproduce

    calls = []

    def full(*args, **kwargs):
        calls.append(os.environ.get("META_FIGURE_CACHE"))
        raise FullRun

    monkeypatch.setattr(meta.review.reproduce, "reproduce", full)
    return calls


@pytest.fixture
def entry_restored(shared):
    """The shared cache entry as stored, put back after a test that damages it."""
    blob = shared["entry"].read_bytes()
    yield shared["entry"]
    shared["entry"].write_bytes(blob)


HIT = """
import json, sys
from meta import cli
from meta.review import run_cache
real = run_cache.reproduce  # the command line's own path, with the shared run's options
run_cache.reproduce = lambda *a, **k: real(*a, formats=("png",), dpi=72, html=False, **k)
rc = cli.main(["reproduce", "--data", sys.argv[1], "--out", sys.argv[2]])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


def test_a_hit_writes_the_bytes_of_the_full_run_and_imports_no_heavy_library(shared):
    out = shared["base"] / "B"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "META_RUN_CACHE": "1",
           "META_RUN_CACHE_DIR": str(shared["base"] / "cache")}
    env.pop("META_FIGURE_CACHE", None)
    p = subprocess.run([sys.executable, "-c", HIT, str(shared["data"]), str(out)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0
    heavy = [m for m in report["modules"] if m.split(".")[0] in HEAVY]
    assert heavy == []
    a, b = _tree(shared["A"]), _tree(out)
    assert sorted(a) == sorted(b) and len(a) > 20
    assert [name for name in a if a[name] != b[name]] == []
    err = p.stderr.splitlines()
    assert err[:len(shared["lines"])] == shared["lines"]  # the analyses' lines, as the full run printed them
    assert err[len(shared["lines"])].startswith(f"meta reproduce: outputs copied from the run cache ({shared['entry']})")
    assert "--no-cache" in err[-2]
    assert err[-1].startswith(f"done: {shared['summary']}; written to {out}/ in ")


def test_a_hit_replaces_our_own_results_folder(shared):
    out = shared["base"] / "C"
    shutil.copytree(shared["A"], out)
    (out / "pooled.csv").write_text("analysis_id,k\nold,3\n")  # an earlier run's results
    outcome = run_cache.reproduce(shared["data"], out, **OPTS)
    assert outcome.from_cache
    assert _tree(out) == _tree(shared["A"])


def test_a_users_own_file_in_out_is_never_touched(shared):
    out = shared["base"] / "D"
    shutil.copytree(shared["A"], out)
    (out / "my notes.txt").write_text("mine")
    before = _tree(out)
    with pytest.raises(OutputRefused, match="my notes.txt"):
        run_cache.reproduce(shared["data"], out, **OPTS)
    foreign = shared["base"] / "E"
    foreign.mkdir()
    (foreign / "thesis.docx").write_bytes(b"mine")
    with pytest.raises(OutputRefused, match="meta did not write"):
        run_cache.reproduce(shared["data"], foreign, **OPTS)
    assert _tree(out) == before and _tree(foreign) == {"thesis.docx": b"mine"}


def test_a_changed_data_byte_or_file_runs_in_full(shared, full_run_raises, tmp_path):
    studies = shared["data"] / "studies.csv"
    original = studies.read_bytes()
    try:
        studies.write_bytes(original.replace(b",", b";", 1))
        with pytest.raises(FullRun):
            run_cache.reproduce(shared["data"], tmp_path / "out", **OPTS)
        studies.write_bytes(original)
        (shared["data"] / "extra.txt").write_bytes(b"")
        with pytest.raises(FullRun):
            run_cache.reproduce(shared["data"], tmp_path / "out", **OPTS)
    finally:
        studies.write_bytes(original)
        (shared["data"] / "extra.txt").unlink(missing_ok=True)
    assert len(full_run_raises) == 2 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("change", [{"dpi": 73}, {"html": True}, {"formats": ("png", "svg")}])
def test_a_changed_option_runs_in_full(shared, full_run_raises, tmp_path, change):
    with pytest.raises(FullRun):
        run_cache.reproduce(shared["data"], tmp_path / "out", **{**OPTS, **change})


@pytest.mark.parametrize("variable", ["NUMBA_DISABLE_JIT", "OMP_NUM_THREADS"])
def test_an_environment_variable_that_changes_numbers_runs_in_full(shared, full_run_raises, tmp_path, monkeypatch,
                                                                    variable):
    monkeypatch.setenv(variable, "1")
    with pytest.raises(FullRun):
        run_cache.reproduce(shared["data"], tmp_path / "out", **OPTS)


def _reseal_with_a_changed_file(blob: bytes) -> bytes:
    """The entry with one byte of its last file changed and sealed again: only the per-file hash catches it."""
    body = bytearray(_cache_files.unseal(blob))
    body[-10] ^= 0xFF
    return _cache_files.seal(bytes(body))


@pytest.mark.parametrize("damage", [
    lambda b: b[: len(b) // 2],                                      # truncated
    lambda b: b[:1000] + bytes([b[1000] ^ 1]) + b[1001:],             # one bit flipped
    lambda b: b + b"x",                                               # padded
    lambda b: b"",                                                    # empty
    _reseal_with_a_changed_file,                                      # sealed again around a changed file
], ids=["truncated", "bit flipped", "padded", "empty", "file changed, entry resealed"])
def test_a_damaged_entry_runs_in_full_and_is_removed(shared, entry_restored, full_run_raises, tmp_path, damage):
    entry_restored.write_bytes(damage(entry_restored.read_bytes()))
    said = []
    with pytest.raises(FullRun):
        run_cache.reproduce(shared["data"], tmp_path / "out", **OPTS, log=said.append)
    assert not entry_restored.exists()
    assert len(said) == 1 and said[0].startswith(f"run cache: {entry_restored} was damaged (")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("switch", [("META_RUN_CACHE", "0"), ("META_FIGURE_CACHE", "off")])
def test_the_switches_turn_the_cache_off(shared, full_run_raises, tmp_path, monkeypatch, switch):
    monkeypatch.setenv(*switch)
    with pytest.raises(FullRun):
        run_cache.reproduce(shared["data"], tmp_path / "out", **OPTS)


def test_no_cache_runs_in_full_without_the_figure_cache(shared, full_run_raises, tmp_path):
    from meta.cli import main

    before = os.environ.get("META_FIGURE_CACHE")
    with pytest.raises(FullRun):
        main(["reproduce", "--data", str(shared["data"]), "--out", str(tmp_path / "out"), "--no-cache"])
    assert full_run_raises == ["0"]  # the figure cache was off during the run
    assert os.environ.get("META_FIGURE_CACHE") == before  # and is as it was after it
    with pytest.raises(FullRun):
        run_cache.reproduce(shared["data"], tmp_path / "out", **OPTS, use_cache=False)


# --------------------------------------------------------------------------- what a full run stores


class _Result:
    def summary(self) -> str:
        return "1 analysis; 0.1 s"


def _fake_run(write):
    """A full run that writes one file and calls ``write(data_dir)`` while it runs."""

    def full(data_dir, out_dir, *, progress, log, collect, **options):
        progress("[1/1] one analysis")
        tmp = Path(out_dir)
        tmp.mkdir()
        (tmp / "pooled.csv").write_text("analysis_id,k\na,3\n")
        write(Path(data_dir))
        if collect is not None:
            collect(tmp)
        return _Result()

    return full


@pytest.mark.parametrize("during", ["nothing", "a warning", "a data file changes"])
def test_a_run_is_stored_only_when_it_showed_no_warning_and_its_inputs_held_still(tmp_path, monkeypatch, during):
    import meta.review.reproduce

    monkeypatch.setenv("META_RUN_CACHE", "1")
    monkeypatch.setenv("META_RUN_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "studies.csv").write_text("study_id\ns1\n")

    def write(folder: Path) -> None:
        if during == "a warning":
            warnings.warn("a warning the user must see every time", UserWarning)
        elif during == "a data file changes":
            (folder / "studies.csv").write_text("study_id\ns2\n")

    monkeypatch.setattr(meta.review.reproduce, "reproduce", _fake_run(write))
    with pytest.warns(UserWarning) if during == "a warning" else contextlib.nullcontext():
        outcome = run_cache.reproduce(data, tmp_path / "out", **OPTS)
    assert not outcome.from_cache and outcome.summary == "1 analysis"
    stored = sorted((tmp_path / "cache").glob("*.run")) if (tmp_path / "cache").exists() else []
    assert (len(stored) == 1) == (during == "nothing")
    assert (outcome.entry is not None) == (during == "nothing")


def test_entries_are_pruned_oldest_first(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    for i in range(run_cache.MAX_RUNS):
        (folder / f"{i}.run").write_bytes(b"x")
        os.utime(folder / f"{i}.run", (1000 + i, 1000 + i))
    assert _cache_files.store(folder, "new.run", (b"y",), run_cache.MAX_RUNS)
    left = sorted(p.name for p in folder.iterdir())
    assert "new.run" in left and "0.run" not in left and len(left) == run_cache.MAX_RUNS // 2


@pytest.mark.parametrize("absolute", [False, True], ids=["../outside.txt", "absolute path"])
def test_an_entry_naming_a_file_outside_the_results_folder_is_refused(shared, entry_restored, full_run_raises,
                                                                      tmp_path, absolute):
    key = entry_restored.stem
    outside = tmp_path / "outside.txt"
    name = str(outside) if absolute else "../outside.txt"
    crafted = {"dirs": [], "files": [(name, b"not yours")]}
    assert run_cache._store(entry_restored, key, crafted, [], "summary")  # sealed and hashed correctly
    said = []
    with pytest.raises(FullRun):
        run_cache.reproduce(shared["data"], tmp_path / "out", **OPTS, log=said.append)
    assert said and "outside the results folder" in said[0]
    assert not outside.exists()
