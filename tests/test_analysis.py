"""meta.review.inputs.analysis: data/analyses.csv read with the data reader and checked against the
vocabulary and the data; one test per rule, each on a copy of the bundled data folder with one
cell changed, asserting file, spreadsheet row and column of the problem."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from _csvrows import read_rows as _rows, write_rows as _write  # tests/ is on sys.path under pytest

from meta.review import reproduce
from meta.review.inputs import analysis
from meta.review.inputs.analysis import AnalysesError, load_analyses
from meta.cli import main
from meta.review.inputs.data import Problem

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "tests" / "fixtures" / "review_data"
FILE = "analyses.csv"




def edit(folder: Path, row: int, column: str, value: str) -> str:
    """Set one cell of analyses.csv (row as a spreadsheet shows it); return that row's analysis_id."""
    rows = _rows(folder / FILE)
    rows[row - 1][rows[0].index(column)] = value
    _write(folder / FILE, rows)
    return rows[row - 1][0]


def problems(folder: Path) -> list[Problem]:
    return analysis.analysis_problems(folder)[0]


def only(ps: list[Problem], row: int | None, column: str | None) -> Problem:
    hits = [p for p in ps if (p.file, p.row, p.column) == (FILE, row, column)]
    assert len(hits) == 1, f"expected one problem at {FILE}/{row}/{column}, got:\n" + "\n".join(map(str, ps))
    return hits[0]


def text(p: Problem) -> str:
    return str(dataclasses.replace(p, folder=None))


# --------------------------------------------------------------------------- the bundled file


#: the one warning the bundled data is expected to give: a printed CI that misses its own estimate
KNOWN_WARNINGS = [("outcomes.csv", 77, "mazzella2025", "ci_low")]


def test_bundled_analyses_have_no_problem():
    problems = analysis.validate(BUNDLED)
    assert [p for p in problems if p.severity != "warning"] == []
    assert [(p.file, p.row, p.study_id, p.column) for p in problems if p.severity == "warning"] == KNOWN_WARNINGS
    assert len(load_analyses(BUNDLED)) == len(_rows(BUNDLED / FILE)) - 1


def test_methods_is_one_list_extending_the_pools():
    from meta import _estimators

    assert analysis.METHODS is _estimators.METHODS
    assert {"ML", "HE", "HS", "SJ", "EB"} <= set(analysis.METHODS)
    assert analysis._canonical_method("ee") == "FE"  # metafor's alias, read as FE


# --------------------------------------------------------------------------- cells


@pytest.mark.parametrize("value,suggestion", [("peak_hip_int_rotation", "peak_hip_internal_rotation"),
                                              ("peak_hip_adduction|Hip_adduction", "hip_adduction")])
def test_outcomes_in_the_vocabulary(folder: Path, value: str, suggestion: str):
    aid = edit(folder, 3, "outcome", value)
    p = only(problems(folder), 3, "outcome")
    bad = value.split("|")[-1]
    assert text(p).startswith(f"analyses.csv, row 3 (analysis {aid}), column outcome: {bad!r} is not in ")
    assert p.message.endswith(f"(did you mean {suggestion!r}?)")


def test_comparison_in_the_vocabulary(folder: Path):
    edit(folder, 3, "comparison", "PFP_vs_control")
    p = only(problems(folder), 3, "comparison")
    assert "'PFP_vs_control' is not in" in p.message and "did you mean 'pfp_vs_control'" in p.message


@pytest.mark.parametrize("value,words", [
    ("design=case_control", "value 'case_control' of filter 'design=case_control' is not in the vocabulary of column design"),
    ("population_sex=Female", "did you mean 'female'"),
    ("timepoint=Baseline", "did you mean 'baseline'"),
    ("desing=case-control", "unknown key 'desing'"),
    ("study_id=noehren2031", "is not a study_id of studies.csv"),
    ("design==case-control", "filter clause"),
    ("design", "filter clause"),
    ("design=case-control,population_sex=female", "clauses separated by ;"),
])
def test_filters_checked(folder: Path, value: str, words: str):
    edit(folder, 3, "filters", value)
    p = only(problems(folder), 3, "filters")
    assert words in p.message, p.message


def test_filters_matching_no_row(folder: Path):
    aid = edit(folder, 3, "filters", "design=case-control;population_sex=male")
    p = only(problems(folder), 3, "filters")
    assert text(p).startswith(f"analyses.csv, row 3 (analysis {aid}), column filters: filter 'population_sex=male'"
                              " matches none of the ")
    assert "their population_sex values: " in p.message


def test_default_review_match_filter_named_when_it_empties(folder: Path):
    edit(folder, 3, "filters", "design=case-control;study_id=noehren2012a")
    assert problems(folder) == []
    rows = _rows(folder / "studies.csv")
    i = next(k for k, r in enumerate(rows) if r[0] == "noehren2012a")
    rows[i][rows[0].index("review_match")] = "unlikely"
    _write(folder / "studies.csv", rows)
    p = only(problems(folder), 3, "filters")
    assert p.message.startswith("filter 'review_match=likely|possible' (the default filter, added because "
                                "the filters do not name review_match) matches none of the ")
    assert "their review_match values: unlikely" in p.message


def test_outcome_without_any_row_is_not_an_error(folder: Path):
    # cc_hip_flexion: no row has peak_hip_flexion|hip_flexion with pfp_vs_control yet (no data, not a typo)
    assert [p for p in problems(folder) if p.column == "filters"] == []


@pytest.mark.parametrize("value,canonical", [("reml", "REML"), ("ML", "ML"), ("dl", "DL"), ("", "DL"), ("Pm", "PM")])
def test_method_case_insensitive(folder: Path, value: str, canonical: str):
    edit(folder, 3, "method", value)
    assert problems(folder) == []
    assert load_analyses(folder)[1].method == canonical


@pytest.mark.parametrize("column,value,words", [
    ("method", "XYZ", "must be one of FE, DL, REML, PM"),
    ("smd_convention", "cohen", "must be one of revman, ls"),
    ("analysis_id", "cc hip", "letters, digits and _"),
    ("analysis_id", "", "must not be empty"),
    ("claim_ids", "C99", "'C99' is not a claim_id of review_claims.csv"),
])
def test_other_cells(folder: Path, column: str, value: str, words: str):
    edit(folder, 3, column, value)
    p = only(problems(folder), 3, column)
    assert words in p.message


def test_analysis_id_unique(folder: Path):
    first = _rows(folder / FILE)[1][0]
    edit(folder, 4, "analysis_id", first)
    assert "duplicate id" in only(problems(folder), 4, "analysis_id").message


# --------------------------------------------------------------------------- the file


def test_duplicated_header_is_refused(folder: Path):
    rows = _rows(folder / FILE)
    for r in rows:
        r.append("REML" if r is not rows[0] else "method")
    _write(folder / FILE, rows)
    p = only(problems(folder), 1, "method")
    assert "twice" in p.message
    with pytest.raises(AnalysesError):
        load_analyses(folder)


def test_missing_column(folder: Path):
    rows = _rows(folder / FILE)
    i = rows[0].index("comparison")
    _write(folder / FILE, [r[:i] + r[i + 1:] for r in rows])
    assert "required column is missing" in only(problems(folder), None, "comparison").message


def test_unknown_column_is_a_warning(folder: Path):
    rows = _rows(folder / FILE)
    for r in rows:
        r.append("x" if r is not rows[0] else "colour")
    _write(folder / FILE, rows)
    p = only(problems(folder), None, "colour")
    assert p.severity == "warning"
    load_analyses(folder)  # warnings do not stop


@pytest.mark.parametrize("kind", ["garbage", "binary", "empty", "directory", "semicolons"])
def test_unreadable_file_gives_one_problem_never_a_traceback(folder: Path, kind: str, capsys):
    path = folder / FILE
    if kind == "garbage":
        path.write_text("hello world\nthis is not, a table\n")
    elif kind == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.unlink()
        path.mkdir()
    else:
        rows = _rows(BUNDLED / FILE)
        path.write_text("\n".join(";".join(c.replace(";", ",") for c in r) for r in rows) + "\n")
    ps = problems(folder)
    assert len(ps) == 1 and ps[0].file == FILE, ps
    assert main(["validate", "--data", str(folder)]) == 1
    out = capsys.readouterr()
    assert f"{folder}/analyses.csv" in out.out and "Traceback" not in out.out + out.err
    out_dir = folder.parent / "results"
    assert main(["reproduce", "--data", str(folder), "--out", str(out_dir)]) == 1
    err = capsys.readouterr().err
    assert "nothing was written" in err and str(ps[0]) in err and not out_dir.exists()


def test_reproduce_stops_before_writing_with_the_validate_messages(folder: Path, capsys):
    edit(folder, 3, "filters", "design=case_control")
    assert main(["validate", "--data", str(folder)]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if "case_control" in x)
    assert line.startswith(f"{folder}/analyses.csv, row 3 (analysis ")
    out_dir = folder.parent / "results"
    assert main(["reproduce", "--data", str(folder), "--out", str(out_dir)]) == 1
    assert f"  {line}" in capsys.readouterr().err.splitlines()
    assert not out_dir.exists()


def test_validate_cli_reports_analyses_count(capsys):
    assert main(["validate", "--data", str(BUNDLED)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f", {len(_rows(BUNDLED / FILE)) - 1} analyses" in last


def test_lone_analyses_file_is_checked_against_the_projects_vocabulary(tmp_path: Path):
    shutil.copy(BUNDLED / FILE, tmp_path / FILE)
    edit(tmp_path, 3, "outcome", "Peak_hip_adduction")
    with pytest.raises(AnalysesError) as e:
        load_analyses(tmp_path)
    assert any("row 3" in s and "column outcome" in s for s in e.value.problems)


# --------------------------------------------------------------------------- robustness

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "=", ";", "|", "a=b;c!=", "design=", "!=x", "DL", "ls",
                                                         "pfp_vs_control", "\ufeff", "a,b", '"', "\r\n"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(2, 6), col=st.integers(0, 10), value=_TEXT)
def test_any_single_cell_change_is_reported_or_accepted_never_crashes(tmp_path_factory, row, col, value):
    folder = tmp_path_factory.mktemp("d") / "data"
    shutil.copytree(BUNDLED, folder)
    rows = _rows(folder / FILE)
    rows[row - 1][col] = value
    _write(folder / FILE, rows)
    ps = [p for p in problems(folder) if p.is_error]
    assert all(isinstance(p, Problem) and str(p) for p in ps)
    if ps:
        with pytest.raises(AnalysesError):
            load_analyses(folder)
    else:
        assert len(load_analyses(folder)) >= 1


def test_reproduce_lists_data_and_analyses_problems_together(folder: Path, capsys):
    edit(folder, 3, "filters", "design=case_control")
    rows = _rows(folder / "outcomes.csv")
    rows[2][rows[0].index("task")] = "Running"
    _write(folder / "outcomes.csv", rows)
    assert main(["validate", "--data", str(folder)]) == 1
    lines = [x for x in capsys.readouterr().out.splitlines() if ", row " in x and ": warning: " not in x]
    assert len(lines) == 2
    assert main(["reproduce", "--data", str(folder), "--out", str(folder.parent / "results")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [f"  {x}" for x in lines] == [x for x in err if ", row " in x and ": warning: " not in x]
    assert not (folder.parent / "results").exists()
