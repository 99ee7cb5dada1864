"""Fixtures shared by several test files."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

# the run cache (meta.review.run_cache) keys a run by the package's files, not by what a test patches
# at run time: off for the suite (subprocesses inherit it); tests/test_run_cache.py turns it on
os.environ["META_RUN_CACHE"] = "0"

import _background


def pytest_configure(config):
    config.addinivalue_line("markers", "background(job): the test reads what the background job `module:function` "
                                       "wrote (tests/_background.py); the job starts when collection finishes")


def pytest_collection_finish(session):
    """Start the background jobs of the tests about to run, in the order they run."""
    if not session.config.option.collectonly:
        jobs = [m.args[0] for item in session.items for m in item.iter_markers("background")]
        if len({item.path for item in session.items}) > 1 and importlib.util.find_spec("numba") is not None:
            jobs.insert(0, _background.COMPILE_JOB)  # numba's cache warmed on the second core
        _background.start(jobs)


def pytest_sessionfinish(session, exitstatus):
    _background.finish()


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


@pytest.fixture(scope="session")
def snapshot_results(tmp_path_factory) -> Path:
    """One ``reproduce`` of a copy of the review data snapshot (PNG at 72 dpi, report.md and report.html), shared
    by the tests that only read its results folder (test_es_scale, test_living, test_reproduce): run once per
    session instead of once per test module. Read-only: a test that changes files copies the folder first."""
    from meta.review.reproduce import reproduce

    base = tmp_path_factory.mktemp("snapshot_results")
    shutil.copytree(BUNDLED, base / "data")
    reproduce(base / "data", base / "results", formats=("png",), dpi=72, html=True, progress=None)
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
