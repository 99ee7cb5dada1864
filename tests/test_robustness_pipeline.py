"""The robustness panel, honest small-study tests and pre-post correlations wired into
`meta reproduce` (issue 12 parts 3-5).

Each test states the behaviour the pipeline did not have before: it fails on the code
before this branch (no robustness.csv, no holds_under/fragile columns, small-study tests
from k = 3, no prepost_r columns, no r sweep).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from meta import analysis

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "data"
FILE = "analyses.csv"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(BUNDLED, dst)
    return dst


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _write(path: Path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def set_cells(folder: Path, analysis_id: str, **cells: str) -> int:
    """Set cells of one analysis (adding the optional columns to the header if needed); return its row."""
    rows = _rows(folder / FILE)
    for col in cells:
        if col not in rows[0]:
            rows[0].append(col)
            for r in rows[1:]:
                r.append("")
    for i, r in enumerate(rows):
        if r[0] == analysis_id:
            for col, v in cells.items():
                r[rows[0].index(col)] = v
            _write(folder / FILE, rows)
            return i + 1
    raise KeyError(analysis_id)


def problems_at(folder: Path, row: int, column: str):
    return [p for p in analysis.analysis_problems(folder)[0] if (p.file, p.row, p.column) == (FILE, row, column)]


# --------------------------------------------------------------------------- analyses.csv columns


def test_small_study_min_k_defaults_to_ten_and_may_be_lowered_explicitly(folder):
    plain = {a.analysis_id: a for a in analysis.load_analyses(folder)}
    assert analysis.SMALL_STUDY_MIN_K == 10
    assert all(a.bias_min_k == 10 for a in plain.values())
    set_cells(folder, "cc_hip_adduction", small_study_min_k="5")
    got = {a.analysis_id: a for a in analysis.load_analyses(folder)}
    assert got["cc_hip_adduction"].small_study_min_k == 5 and got["cc_hip_adduction"].bias_min_k == 5


@pytest.mark.parametrize("value", ["2", "0", "4.5", "ten", "-3"])
def test_small_study_min_k_must_be_a_whole_number_of_at_least_three(folder, value):
    row = set_cells(folder, "cc_hip_adduction", small_study_min_k=value)
    (p,) = problems_at(folder, row, "small_study_min_k")
    assert p.is_error and ">= 3" in str(p) and "Sterne" in str(p)


def test_prepost_r_with_its_source_is_read(folder):
    set_cells(folder, "gr_pain", prepost_r="0.5", prepost_r_source="Example source, Table 2")
    a = {a.analysis_id: a for a in analysis.load_analyses(folder)}["gr_pain"]
    assert a.prepost_r == 0.5 and a.prepost_r_source == "Example source, Table 2"


@pytest.mark.parametrize("value", ["1", "-1", "1.2", "abc", "0,5"])
def test_prepost_r_must_lie_strictly_between_minus_one_and_one(folder, value):
    row = set_cells(folder, "gr_pain", prepost_r=value, prepost_r_source="a source")
    (p,) = problems_at(folder, row, "prepost_r")
    assert p.is_error and "strictly between -1 and 1" in str(p)


def test_prepost_r_needs_a_source(folder):
    row = set_cells(folder, "gr_pain", prepost_r="0.5")
    (p,) = problems_at(folder, row, "prepost_r_source")
    assert p.is_error and "where the assumed prepost_r comes from" in str(p)


def test_prepost_r_only_for_post_vs_pre(folder):
    row = set_cells(folder, "cc_hip_adduction", prepost_r="0.5", prepost_r_source="a source")
    (p,) = problems_at(folder, row, "prepost_r")
    assert p.is_error and "only to post_vs_pre" in str(p)


def test_a_source_without_r_is_a_warning(folder):
    row = set_cells(folder, "gr_pain", prepost_r_source="a source")
    (p,) = problems_at(folder, row, "prepost_r_source")
    assert not p.is_error
