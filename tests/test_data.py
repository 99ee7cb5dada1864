"""meta.review.inputs.data: loading, one test per validation rule, and the ``meta validate`` command.

Each rule is tested on a copy of ``tests/fixtures/data_good`` with one cell
changed, asserting the exact file, spreadsheet row and column of the problem.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _csvrows import read_rows as _rows, write_rows as _write  # tests/ is on sys.path under pytest

from meta.review.inputs import data
from meta.cli import main
from meta.review.inputs.data import DataError, Problem

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "tests" / "fixtures" / "data_good"
BAD = ROOT / "tests" / "fixtures" / "data_bad"
BUNDLED = ROOT / "tests" / "fixtures" / "review_data"


# ------------------------------------------------------------------ helpers


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(GOOD, dst)
    return dst




def edit(folder: Path, file: str, row: int, column: str, value: str) -> None:
    """Set one cell; ``row`` as a spreadsheet shows it (header = 1)."""
    rows = _rows(folder / file)
    rows[row - 1][rows[0].index(column)] = value
    _write(folder / file, rows)


def append_row(folder: Path, file: str, copy_of: int, **changes: str) -> int:
    """Append a copy of spreadsheet row ``copy_of`` with ``changes``; return its row number."""
    rows = _rows(folder / file)
    new = list(rows[copy_of - 1])
    for col, val in changes.items():
        new[rows[0].index(col)] = val
    rows.append(new)
    _write(folder / file, rows)
    return len(rows)


def text(p: Problem) -> str:
    """The problem as printed, without the data folder in front (tests run in temporary folders)."""
    return str(dataclasses.replace(p, folder=None))


def only(problems: list[Problem], file: str, row: int | None, column: str | None) -> Problem:
    """The single problem located at (file, row, column); fail if there is not exactly one."""
    hits = [p for p in problems if (p.file, p.row, p.column) == (file, row, column)]
    assert len(hits) == 1, f"expected one problem at {file}/{row}/{column}, got:\n" + "\n".join(
        map(str, problems))
    return hits[0]


# ------------------------------------------------------------------ good data


def test_good_fixture_is_valid():
    assert data.validate(GOOD) == []


def test_load_types_and_row_index():
    ds = data.load(GOOD)
    assert list(ds.studies.columns)[: len(data.STUDY_COLUMNS)] == list(data.STUDY_COLUMNS)
    assert list(ds.outcomes.columns)[: len(data.OUTCOME_COLUMNS)] == list(data.OUTCOME_COLUMNS)
    for col in ("n1", "n2", "direction"):
        assert str(ds.outcomes[col].dtype) == "Int64"
    for col in ("mean1", "sd1", "mean2", "sd2", "mean_diff", "p_value", "effect_size"):
        assert ds.outcomes[col].dtype == "float64"
    assert str(ds.studies["year"].dtype) == "Int64"
    assert str(ds.studies["n_pfp"].dtype) == "Int64"
    assert str(ds.claims["expected_direction"].dtype) == "Int64"
    assert str(ds.studies["design"].dtype) == "string"
    # index = spreadsheet row; empty cells are missing, never 0 or ""
    assert ds.outcomes.index.name == "row"
    assert list(ds.outcomes.index) == list(range(2, 2 + len(ds.outcomes)))
    r = ds.outcomes.loc[2]
    assert (r["study_id"], r["n1"], r["mean1"], r["sd1"], r["p_operator"]) == (
        "souza2009b", 19, 8.2, 6.6, "<")
    assert pd.isna(r["mean_diff"]) and pd.isna(r["extraction_note"])
    assert ds.outcomes.loc[3, "direction"] == 1
    assert pd.isna(ds.studies.set_index("study_id").loc["willy2012b", "n_control"])
    # extra documented claim columns are kept as text
    assert "claim_text" in ds.claims.columns


def test_load_raises_dataerror_listing_every_problem():
    with pytest.raises(DataError) as exc:
        data.load(BAD)
    assert isinstance(exc.value, ValueError)
    assert len(exc.value.problems) == 5
    assert "outcomes.csv, row 2 (study souza2009b), column sd1: must be > 0, got -6.6" in str(exc.value)


def test_problem_str_reads_like_the_contract():
    p = Problem("outcomes.csv", 14, "noehren2013", "sd1", "must be > 0", "-3.1", "> 0")
    assert text(p) == "outcomes.csv, row 14 (study noehren2013), column sd1: must be > 0, got -3.1"
    assert str(Problem("studies.csv", None, None, "doi", "required column is missing from the header")) == (
        "studies.csv, column doi: required column is missing from the header")
    assert str(Problem("review_claims.csv", 3, None, "comparison", "must be x", "abc")) == (
        "review_claims.csv, row 3, column comparison: must be x, got 'abc'")


def test_bom_and_crlf_accepted(folder: Path):
    for f in folder.glob("*.csv"):
        text = f.read_text(encoding="utf-8")
        f.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    assert data.validate(folder) == []
    ds = data.load(folder)
    assert ds.studies.columns[0] == "study_id"  # BOM not glued to the first column name
    assert ds.outcomes.loc[2, "extraction_note"] is pd.NA or pd.isna(ds.outcomes.loc[2, "extraction_note"])
    assert not any("\r" in str(v) for v in ds.outcomes.astype(str).to_numpy().ravel())


def test_validation_never_writes(folder: Path):
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in sorted(folder.iterdir())}
    data.validate(folder)
    data.load(folder)
    edit(folder, "outcomes.csv", 2, "sd1", "-1")
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in sorted(folder.iterdir())}
    data.validate(folder)
    assert main(["validate", "--data", str(folder)]) == 1
    with pytest.raises(DataError):
        data.load(folder)
    after = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in sorted(folder.iterdir())}
    assert after == before


def test_blank_lines_are_skipped_but_counted(folder: Path):
    path = folder / "outcomes.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "\n" + "".join(lines[1:]))  # blank row 2 shifts data to row 3
    edit_row = _rows(path)
    assert edit_row[1] == []
    edit(folder, "outcomes.csv", 3, "sd1", "-6.6")
    assert text(only(data.validate(folder), "outcomes.csv", 3, "sd1")).startswith("outcomes.csv, row 3 ")


# ------------------------------------------------------------------ files and columns


def test_missing_folder():
    problems = data.validate("/nonexistent/folder")
    assert len(problems) == 1 and "data folder not found" in str(problems[0])


def test_missing_file(folder: Path):
    (folder / "outcomes.csv").unlink()
    p = only(data.validate(folder), "outcomes.csv", None, None)
    assert "file not found" in p.message


def test_not_utf8(folder: Path):
    path = folder / "studies.csv"
    path.write_bytes(path.read_bytes().replace(b"Souza RB", "Souz\u00e1 RB".encode("latin-1")))
    p = only(data.validate(folder), "studies.csv", None, None)
    assert "not valid UTF-8" in p.message and "line 2" in p.message


def test_empty_file(folder: Path):
    (folder / "review_claims.csv").write_bytes(b"")
    assert "is empty" in only(data.validate(folder), "review_claims.csv", None, None).message


def test_row_with_wrong_number_of_fields(folder: Path):
    with open(folder / "outcomes.csv", "a") as fh:
        fh.write("souza2009b,hip_internal_rotation,pfp_vs_control\n")
    p = only(data.validate(folder), "outcomes.csv", 9, None)
    assert "has 3 fields but the header has 21" in p.message


def test_missing_required_column(folder: Path):
    rows = _rows(folder / "outcomes.csv")
    i = rows[0].index("sd2")
    _write(folder / "outcomes.csv", [r[:i] + r[i + 1:] for r in rows])
    p = only(data.validate(folder), "outcomes.csv", None, "sd2")
    assert text(p) == "outcomes.csv, column sd2: required column is missing from the header"


def test_duplicate_header_column(folder: Path):
    rows = _rows(folder / "review_claims.csv")
    rows[0][-1] = "outcome"
    _write(folder / "review_claims.csv", rows)
    assert "twice" in only(data.validate(folder), "review_claims.csv", 1, "outcome").message


# ------------------------------------------------------------------ studies.csv


@pytest.mark.parametrize("bad", ["Souza2009b", "souza09", "souza_2009b", "souza2009bb", "2009souza"])
def test_study_id_pattern(folder: Path, bad: str):
    edit(folder, "studies.csv", 2, "study_id", bad)
    p = only(data.validate(folder), "studies.csv", 2, "study_id")
    assert "e.g. souza2009b" in p.message and p.got == bad


def test_study_id_unique(folder: Path):
    edit(folder, "studies.csv", 3, "study_id", "souza2009b")
    edit(folder, "studies.csv", 3, "year", "2009")
    p = only(data.validate(folder), "studies.csv", 3, "study_id")
    assert text(p) == ("studies.csv, row 3 (study souza2009b), column study_id: "
                      "duplicates the study_id of row 2, got 'souza2009b'")


def test_study_id_year_matches_year(folder: Path):
    edit(folder, "studies.csv", 2, "year", "2010")
    assert "does not match the year in study_id" in only(data.validate(folder), "studies.csv", 2, "year").message


@pytest.mark.parametrize("bad", ["2009.0", "two thousand", "1850"])
def test_year_whole_number(folder: Path, bad: str):
    edit(folder, "studies.csv", 2, "year", bad)
    only(data.validate(folder), "studies.csv", 2, "year")


@pytest.mark.parametrize("column", ["study_id", "cohort_id", "authors", "year", "review_match_reason"])
def test_studies_required_cells(folder: Path, column: str):
    edit(folder, "studies.csv", 4, column, "")
    p = only(data.validate(folder), "studies.csv", 4, column)
    assert p.message == "must not be empty"


@pytest.mark.parametrize("column,bad", [("n_pfp", "19.5"), ("n_pfp", "0"), ("n_control", "-1"),
                                        ("n_control", "NA"), ("pmid", "PMC123")])
def test_studies_integers(folder: Path, column: str, bad: str):
    edit(folder, "studies.csv", 2, column, bad)
    assert only(data.validate(folder), "studies.csv", 2, column).got == bad


@pytest.mark.parametrize("column,bad", [("design", "cohort"), ("design", "Prospective"),
                                        ("population_sex", "women"), ("runners", "maybe"),
                                        ("review_match", "probable"), ("review_match", "")])
def test_studies_vocabularies(folder: Path, column: str, bad: str):
    edit(folder, "studies.csv", 2, column, bad)
    p = only(data.validate(folder), "studies.csv", 2, column)
    assert (f"{bad!r} is not in " in p.message or (bad == "" and "must not be empty" in p.message))
    assert "vocabulary.csv; valid: " in p.message or "valid: " in p.message


@pytest.mark.parametrize("column", ["title", "journal", "citation", "doi", "pmid", "notes"])
def test_studies_optional_cells(folder: Path, column: str):
    edit(folder, "studies.csv", 4, column, "")
    assert data.validate(folder) == []


def test_study_numbers_need_source_url(folder: Path):
    edit(folder, "studies.csv", 8, "source_url", "")  # messier2008: no n's -> fine
    assert data.validate(folder) == []
    edit(folder, "studies.csv", 4, "source_url", "")  # willson2008: n_pfp 20
    p = only(data.validate(folder), "studies.csv", 4, "source_url")
    assert "n_pfp or n_control" in p.message


@pytest.mark.parametrize("file,row,column,bad", [
    ("studies.csv", 3, "title", "[title not seen on an accessible page]"),
    ("studies.csv", 2, "citation", "[not seen]"),
    ("outcomes.csv", 2, "source_locator", "[page not found]"),
    ("review_claims.csv", 2, "population", "[unknown]"),
])
def test_placeholders_refused(folder: Path, file: str, row: int, column: str, bad: str):
    edit(folder, file, row, column, bad)
    p = only(data.validate(folder), file, row, column)
    assert p.message.startswith("looks like a placeholder; leave the cell empty")
    assert p.got == bad


def test_bracketed_text_inside_a_cell_is_fine(folder: Path):
    edit(folder, "studies.csv", 3, "notes", "[inference] same cohort as x")
    edit(folder, "studies.csv", 4, "title", "Gait [in German]")
    assert data.validate(folder) == []


def test_studies_doi_and_url(folder: Path):
    edit(folder, "studies.csv", 2, "doi", "https://doi.org/10.1177/0363546508326711")
    edit(folder, "studies.csv", 3, "source_url", "www.example.org/x")
    problems = data.validate(folder)
    assert "bare DOI" in only(problems, "studies.csv", 2, "doi").message
    assert "http" in only(problems, "studies.csv", 3, "source_url").message


# ------------------------------------------------------------------ outcomes.csv


def test_outcome_names_known_study(folder: Path):
    edit(folder, "outcomes.csv", 3, "study_id", "noehren2031")
    p = only(data.validate(folder), "outcomes.csv", 3, "study_id")
    assert text(p) == ("outcomes.csv, row 3 (study noehren2031), column study_id: "
                      "names no study in studies.csv, got 'noehren2031'")


def test_outcome_snake_case(folder: Path):
    edit(folder, "outcomes.csv", 2, "outcome", "Hip IR")
    only(data.validate(folder), "outcomes.csv", 2, "outcome")


@pytest.mark.parametrize("bad", ["pfp_vs_ctrl", "", "PFP_vs_control"])
def test_comparison_vocabulary(folder: Path, bad: str):
    edit(folder, "outcomes.csv", 2, "comparison", bad)
    p = only(data.validate(folder), "outcomes.csv", 2, "comparison")
    assert "pfp_vs_control, post_vs_pre, intervention_vs_control" in p.message


@pytest.mark.parametrize("column,bad", [("n1", "1"), ("n1", "0"), ("n2", "19.5"), ("n2", "nineteen")])
def test_sample_sizes(folder: Path, column: str, bad: str):
    edit(folder, "outcomes.csv", 2, column, bad)
    assert only(data.validate(folder), "outcomes.csv", 2, column).got == bad


@pytest.mark.parametrize("column,bad,words", [("mean1", "8,2", "decimal mark"), ("mean2", "NA", "empty"),
                                              ("mean_diff", "nan", "empty"), ("effect_size", "large", "number"),
                                              ("mean1", "inf", "empty")])
def test_numbers_parse(folder: Path, column: str, bad: str, words: str):
    edit(folder, "outcomes.csv", 2, column, bad)
    p = only(data.validate(folder), "outcomes.csv", 2, column)
    assert words in p.message and p.got == bad


@pytest.mark.parametrize("column,bad", [("sd1", "-3.1"), ("sd1", "0"), ("sd2", "-0.5")])
def test_sd_positive(folder: Path, column: str, bad: str):
    edit(folder, "outcomes.csv", 2, column, bad)
    p = only(data.validate(folder), "outcomes.csv", 2, column)
    assert text(p) == f"outcomes.csv, row 2 (study souza2009b), column {column}: must be > 0, got {bad}"


@pytest.mark.parametrize("bad", ["0", "1.5", "-0.01"])
def test_p_value_range(folder: Path, bad: str):
    edit(folder, "outcomes.csv", 3, "p_value", bad)
    assert "must be > 0 and <= 1" in only(data.validate(folder), "outcomes.csv", 3, "p_value").message


def test_p_value_one_is_allowed(folder: Path):
    edit(folder, "outcomes.csv", 3, "p_value", "1")
    assert data.validate(folder) == []


@pytest.mark.parametrize("bad", ["", "<=", ">", "=="])
def test_p_operator_required_with_p(folder: Path, bad: str):
    edit(folder, "outcomes.csv", 3, "p_operator", bad)
    p = only(data.validate(folder), "outcomes.csv", 3, "p_operator")
    if bad == "":
        assert "must be = (exact p) or < " in p.message
    else:
        assert f"{bad!r} is not in " in p.message and "vocabulary.csv; valid: =, <" in p.message


def test_p_operator_only_with_p(folder: Path):
    edit(folder, "outcomes.csv", 6, "p_operator", "=")  # row 6 has no p_value
    p = only(data.validate(folder), "outcomes.csv", 6, "p_operator")
    assert p.message == "must be empty when p_value is empty"


@pytest.mark.parametrize("bad", ["0", "2", "positive", "+"])
def test_direction_values(folder: Path, bad: str):
    edit(folder, "outcomes.csv", 3, "direction", bad)
    p = only(data.validate(folder), "outcomes.csv", 3, "direction")
    assert "must be +1 or -1" in p.message


@pytest.mark.parametrize("ok", ["1", "+1", "-1", ""])
def test_direction_accepted_spellings(folder: Path, ok: str):
    edit(folder, "outcomes.csv", 3, "direction", ok)
    problems = data.validate(folder)
    assert all(p.column != "direction" for p in problems)


def test_direction_contradicts_means(folder: Path):
    edit(folder, "outcomes.csv", 2, "direction", "-1")  # mean1 8.2 > mean2 0.3
    assert "contradicts the sign of mean1 - mean2" in only(
        data.validate(folder), "outcomes.csv", 2, "direction").message
    edit(folder, "outcomes.csv", 4, "direction", "-1")  # mean_diff 3.5
    assert "mean_diff" in only(data.validate(folder), "outcomes.csv", 4, "direction").message


def test_effect_size_sign_agrees_with_direction(folder: Path):
    edit(folder, "outcomes.csv", 6, "effect_size", "0.74")  # row 6: t -0.74, direction -1
    p = only(data.validate(folder), "outcomes.csv", 6, "effect_size")
    assert "contradicts direction -1" in p.message


def test_mean_diff_sign_agrees_with_means(folder: Path):
    edit(folder, "outcomes.csv", 2, "mean_diff", "-7.9")  # mean1 8.2, mean2 0.3
    p = only(data.validate(folder), "outcomes.csv", 2, "mean_diff")
    assert "contradicts mean1 - mean2 (+7.9)" in p.message


@pytest.mark.parametrize("bad", ["cohens_d", "g", "d", "SMD"])
def test_effect_size_type_vocabulary(folder: Path, bad: str):
    edit(folder, "outcomes.csv", 5, "effect_size_type", bad)
    p = only(data.validate(folder), "outcomes.csv", 5, "effect_size_type")
    assert "cohen_d, hedges_g, unspecified, t" in p.message


def test_effect_size_type_needs_effect_size(folder: Path):
    edit(folder, "outcomes.csv", 3, "effect_size_type", "cohen_d")
    only(data.validate(folder), "outcomes.csv", 3, "effect_size_type")


def test_post_vs_pre_same_n(folder: Path):
    edit(folder, "outcomes.csv", 7, "n2", "12")
    p = only(data.validate(folder), "outcomes.csv", 7, "n2")
    assert "must equal n1 (10)" in p.message


def test_one_unit_per_outcome(folder: Path):
    edit(folder, "outcomes.csv", 4, "unit", "ms")  # peak_hip_adduction is deg in row 3
    p = only(data.validate(folder), "outcomes.csv", 4, "unit")
    assert "row 3" in p.message and "'deg'" in p.message and p.got == "ms"


@pytest.mark.parametrize("unknown", ["", "not stated", "not stated (time)"])
def test_unknown_unit_conflicts_with_none(folder: Path, unknown: str):
    edit(folder, "outcomes.csv", 4, "unit", unknown)
    assert data.validate(folder) == []


def test_duplicate_outcome_rows(folder: Path):
    new = append_row(folder, "outcomes.csv", 2)
    p = only(data.validate(folder), "outcomes.csv", new, None)
    assert "repeats row 2" in p.message
    # a different task is not a duplicate
    edit(folder, "outcomes.csv", new, "task", "prolonged_run")
    assert data.validate(folder) == []


def test_numbers_need_source_url(folder: Path):
    edit(folder, "outcomes.csv", 2, "source_url", "")
    p = only(data.validate(folder), "outcomes.csv", 2, "source_url")
    assert "every number needs the page" in p.message


def test_row_without_numbers_needs_no_source_url(folder: Path):
    edit(folder, "outcomes.csv", 8, "source_url", "")  # row 8 holds no number
    edit(folder, "outcomes.csv", 8, "n1", "")
    edit(folder, "outcomes.csv", 8, "n2", "")
    assert data.validate(folder) == []


def test_outcome_source_url_format(folder: Path):
    edit(folder, "outcomes.csv", 2, "source_url", "pubmed 19098153")
    only(data.validate(folder), "outcomes.csv", 2, "source_url")


def test_no_route_needs_extraction_note(folder: Path):
    edit(folder, "outcomes.csv", 8, "extraction_note", "")
    p = only(data.validate(folder), "outcomes.csv", 8, "extraction_note")
    assert p.message.startswith("must say why there is no SMD route")


def test_missing_n_means_no_route(folder: Path):
    # row 3 has p + direction; without n2 no route is left
    edit(folder, "outcomes.csv", 3, "n2", "")
    p = only(data.validate(folder), "outcomes.csv", 3, "extraction_note")
    assert "missing n2" in p.message
    edit(folder, "outcomes.csv", 3, "extraction_note", "n of controls not reported")
    assert data.validate(folder) == []


def test_post_vs_pre_without_means_needs_note(folder: Path):
    edit(folder, "outcomes.csv", 7, "sd2", "")
    p = only(data.validate(folder), "outcomes.csv", 7, "extraction_note")
    assert "paired route" in p.message and "sd2" in p.message


# ------------------------------------------------------------------ review_claims.csv


@pytest.mark.parametrize("bad", ["0", "", "up", "+2"])
def test_claim_expected_direction(folder: Path, bad: str):
    edit(folder, "review_claims.csv", 3, "expected_direction", bad)
    p = only(data.validate(folder), "review_claims.csv", 3, "expected_direction")
    assert p.message == ("must not be empty" if bad == "" else "must be +1 or -1")


def test_claim_comparison_known(folder: Path):
    edit(folder, "review_claims.csv", 2, "comparison", "risk_factor")
    only(data.validate(folder), "review_claims.csv", 2, "comparison")


def test_claim_id_unique_and_required_cells(folder: Path):
    edit(folder, "review_claims.csv", 3, "claim_id", "c01")
    edit(folder, "review_claims.csv", 2, "evidence_level", "")
    problems = data.validate(folder)
    assert "duplicates the claim_id of row 2" in only(problems, "review_claims.csv", 3, "claim_id").message
    assert only(problems, "review_claims.csv", 2, "evidence_level").message.startswith("must not be empty; valid: ")


# ------------------------------------------------------------------ command line


def test_cli_valid(capsys):
    assert main(["validate", "--data", str(GOOD)]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines == ["data OK: 7 studies, 7 outcome rows (6 with a usable SMD route, 1 of them paired "
                     "rows that need a pre-post r), 2 claims"]
    assert out.err == ""


def test_cli_invalid_prints_every_problem(capsys):
    assert main(["validate", "--data", str(BAD)]) == 1
    out = capsys.readouterr().out
    expected = [
        "studies.csv, row 3 (study noehren2013), column design: 'cohort' is not in "
        f"{BAD}/vocabulary.csv; valid: prospective, case-control, intervention-single-group, "
        "intervention-controlled",
        "outcomes.csv, row 2 (study souza2009b), column sd1: must be > 0, got -6.6",
        "outcomes.csv, row 3 (study noehren2031), column study_id: names no study in studies.csv, "
        "got 'noehren2031'",
        "outcomes.csv, row 4 (study willson2008), column p_operator: must be = (exact p) or < (p reported "
        "as an inequality) when p_value is given, got an empty cell",
        "review_claims.csv, row 3, column expected_direction: must be +1 or -1, got 0",
    ]
    lines = out.strip().splitlines()
    assert lines[:-1] == [f"{BAD}/{e}" for e in expected]  # the data folder in front of each file name
    assert lines[-1].startswith("5 problems found")
    assert "Traceback" not in out


def test_cli_missing_folder_and_garbage(capsys, tmp_path: Path):
    assert main(["validate", "--data", str(tmp_path / "nope")]) == 1
    assert "data folder not found" in capsys.readouterr().out
    (tmp_path / "studies.csv").write_bytes(b'\x00\xff"unterminated\n')
    assert main(["validate", "--data", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "studies.csv: is not valid UTF-8" in out.out
    assert "outcomes.csv: file not found" in out.out


def test_cli_unreadable_csv(capsys, folder: Path):
    (folder / "studies.csv").write_text('study_id,cohort_id\n"souza2009b,x\n')
    assert main(["validate", "--data", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "studies.csv" in out and "Traceback" not in out


# ------------------------------------------------------------------ the bundled data


def test_bundled_data_validates():
    problems = data.validate(BUNDLED)
    errors = [p for p in problems if p.severity != "warning"]
    assert errors == [], "\n".join(map(str, errors))
    # the one expected warning: mazzella2025's printed CI does not contain its mean difference
    assert [(p.file, p.row, p.study_id) for p in problems if p.severity == "warning"] == [("outcomes.csv", 77, "mazzella2025")]
    ds = data.load(BUNDLED)
    assert len(ds.studies) > 0 and len(ds.outcomes) > 0 and len(ds.claims) > 0


# ------------------------------------------------------------------ robustness

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "0", "-1", "1e400", "nan", "=", "<", "+1",
                                                         "post_vs_pre", "\ufeff", "a,b", '"', "\r\n"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from(["studies.csv", "outcomes.csv", "review_claims.csv"]),
       row=st.integers(2, 4), col=st.integers(0, 7), value=_TEXT)
def test_any_single_cell_change_is_reported_or_accepted_never_crashes(tmp_path_factory, file, row, col, value):
    folder = tmp_path_factory.mktemp("d")
    for f in GOOD.iterdir():
        shutil.copy(f, folder / f.name)
    rows = _rows(folder / file)
    rows[min(row, len(rows)) - 1][col] = value
    _write(folder / file, rows)
    problems = [p for p in data.validate(folder) if p.is_error]
    assert all(isinstance(p, Problem) and str(p) for p in problems)
    if problems:
        with pytest.raises(DataError):
            data.load(folder)
    else:
        ds = data.load(folder)
        from meta.review.inputs.study_effects import study_effects
        assert len(study_effects(ds.outcomes, ds.studies)) == len(ds.outcomes)


# ------------------------------------------------------------------ vocabulary.csv


def add_column(folder: Path, file: str, column: str, values: dict[int, str] | None = None) -> None:
    """Append a column to ``file``; ``values`` maps spreadsheet rows to cells (others empty)."""
    rows = _rows(folder / file)
    rows[0].append(column)
    for i, r in enumerate(rows[1:], start=2):
        r.append((values or {}).get(i, ""))
    _write(folder / file, rows)


@pytest.mark.parametrize("column,bad,suggestion", [
    ("task", "Running", "running"),
    ("timepoint", "Baseline", "baseline"),
    ("outcome", "peak_hip_int_rotation", "peak_hip_internal_rotation"),
    ("unit", "degrees", None),
    ("effect_size_type", "Hedges_g", "hedges_g"),
])
def test_outcome_vocabularies_are_checked(folder: Path, column: str, bad: str, suggestion):
    edit(folder, "outcomes.csv", 3, column, bad)
    if column == "effect_size_type":
        edit(folder, "outcomes.csv", 3, "effect_size", "0.5")
    p = only(data.validate(folder), "outcomes.csv", 3, column)
    assert p.is_error
    assert text(p).startswith(f"outcomes.csv, row 3 (study noehren2013), column {column}: {bad!r} is not in ")
    assert f"{folder}/vocabulary.csv; valid: " in p.message
    if suggestion:
        assert p.message.endswith(f"(did you mean {suggestion!r}?)")
    with pytest.raises(DataError):
        data.load(folder)


def test_vocabulary_message_reads_like_the_contract(folder: Path):
    edit(folder, "outcomes.csv", 3, "task", "Running")
    p = only(data.validate(folder), "outcomes.csv", 3, "task")
    assert str(p) == (f"{folder}/outcomes.csv, row 3 (study noehren2013), column task: 'Running' is not in "
                      f"{folder}/vocabulary.csv; valid: running, prolonged_run, exhaustive_run, "
                      "exhaustive_run_control_group, averaged_across_tasks, static, strength_test, "
                      "not_applicable (did you mean 'running'?)")


@pytest.mark.parametrize("column,bad", [("population", "female runners"), ("evidence_level", "Moderate"),
                                        ("outcome", "hip_add")])
def test_claim_vocabularies_are_checked(folder: Path, column: str, bad: str):
    edit(folder, "review_claims.csv", 2, column, bad)
    p = only(data.validate(folder), "review_claims.csv", 2, column)
    assert f"{bad!r} is not in " in p.message


def test_claim_construct_is_a_construct_of_the_vocabulary(folder: Path):
    add_column(folder, "review_claims.csv", "construct", {2: "hip_adduction", 3: "hip_adductoin"})
    p = only(data.validate(folder), "review_claims.csv", 3, "construct")
    assert "'hip_adductoin' is not in" in p.message and "did you mean 'hip_adduction'" in p.message


def test_a_value_added_to_vocabulary_csv_becomes_valid(folder: Path):
    edit(folder, "outcomes.csv", 3, "task", "walking")
    assert "'walking' is not in" in only(data.validate(folder), "outcomes.csv", 3, "task").message
    with open(folder / "vocabulary.csv", "a", encoding="utf-8") as fh:
        fh.write("task,walking,walking gait (test),\n")
    assert data.validate(folder) == []


def test_vocabulary_file_rules(folder: Path):
    with open(folder / "vocabulary.csv", "a", encoding="utf-8") as fh:
        fh.write("task,running,again,\n")            # repeats a value
        fh.write("tasks,walking,typo in column,\n")   # no such vocabulary
        fh.write("task,walking,,\n")                  # no meaning
        fh.write("outcome,peak_ankle_eversion,deg,\n")  # outcome without a construct
    n = len(_rows(folder / "vocabulary.csv"))
    problems = data.validate(folder)
    assert "repeats row" in only(problems, "vocabulary.csv", n - 3, "value").message
    assert "did you mean 'task'" in only(problems, "vocabulary.csv", n - 2, "column").message
    assert only(problems, "vocabulary.csv", n - 1, "meaning").message == "must not be empty"
    assert "construct" in only(problems, "vocabulary.csv", n, "construct").message


def test_folder_without_vocabulary_uses_the_projects(folder: Path):
    (folder / "vocabulary.csv").unlink()
    # the fixture's own unit 'ms' is not in the project's vocabulary: that is the only problem
    p = only(data.validate(folder), "outcomes.csv", 5, "unit")
    assert f"is not in {data.DEFAULT_VOCABULARY}" in p.message


def test_every_value_used_in_the_bundled_data_has_a_meaning():
    vocab = pd.read_csv(BUNDLED / "vocabulary.csv", dtype=str, keep_default_na=False)
    assert (vocab["meaning"].str.strip() != "").all()
    listed = {(c, v) for c, v in zip(vocab["column"], vocab["value"])}
    for file, specs in data.SCHEMA.items():
        if not (BUNDLED / file).exists() or file == "vocabulary.csv":
            continue
        df = pd.read_csv(BUNDLED / file, dtype=str, keep_default_na=False)
        for col in specs:
            if col.vocab_key and col.vocab_key != "construct" and col.name in df:
                values = {v for x in df[col.name] for v in x.split("|") if v}
                assert {(col.vocab_key, v) for v in values} <= listed, (file, col.name)


def test_readme_documents_every_column_and_the_vocabulary_file():
    readme = (BUNDLED / "README.md").read_text(encoding="utf-8")
    for file, specs in data.SCHEMA.items():
        assert f"## {file}" in readme or f"`{file}`" in readme, file
        for col in specs:
            assert f"`{col.name}`" in readme, (file, col.name)
    assert "vocabulary.csv" in readme


# ------------------------------------------------------------------ numbers, headers, separators


@pytest.mark.parametrize("bad", ["8_2", "1_000", "\u0661\u0662", "\uff18", "1,200", "1,200.5", "0x1A", "1e", ".", "+-1", "1.2.3", "∞", "Infinity"])
def test_numbers_follow_a_strict_grammar(folder: Path, bad: str):
    edit(folder, "outcomes.csv", 2, "mean1", bad)
    p = only(data.validate(folder), "outcomes.csv", 2, "mean1")
    assert p.message.startswith("must be a number") and p.got == bad


@pytest.mark.parametrize("ok", ["8.2", "-0.4", "+3", ".5", "5.", "1e-3", "2E+2"])
def test_plain_numbers_are_accepted(folder: Path, ok: str):
    edit(folder, "outcomes.csv", 2, "mean1", ok if ok != "-0.4" else "9.0")
    edit(folder, "outcomes.csv", 4, "mean_diff", ok if not ok.startswith("-") else "3.5")
    assert [p for p in data.validate(folder) if p.column in ("mean1", "mean_diff")] == []


@pytest.mark.parametrize("file,column", [("studies.csv", "design"), ("outcomes.csv", "sd1"),
                                         ("review_claims.csv", "comparison"), ("vocabulary.csv", "meaning")])
def test_duplicate_headers_are_refused_in_every_file(folder: Path, file: str, column: str):
    add_column(folder, file, column)
    p = only(data.validate(folder), file, 1, column)
    assert "twice" in p.message and p.is_error


def test_semicolon_separated_file_is_named(folder: Path):
    rows = _rows(folder / "studies.csv")
    (folder / "studies.csv").write_text(
        "\n".join(";".join(c.replace(";", ",") for c in r) for r in rows) + "\n", encoding="utf-8")
    p = only(data.validate(folder), "studies.csv", None, None)
    assert "looks semicolon-separated" in p.message and "save it with commas" in p.message


def test_a_folder_in_place_of_a_file(folder: Path):
    (folder / "review_claims.csv").unlink()
    (folder / "review_claims.csv").mkdir()
    assert "is a folder, not a file" in only(data.validate(folder), "review_claims.csv", None, None).message


# ------------------------------------------------------------------ group sizes against studies.csv


@pytest.mark.parametrize("column,value,limit", [("n1", "25", "n_pfp (19)"), ("n2", "20", "n_control (19)")])
def test_outcome_group_sizes_within_the_study(folder: Path, column: str, value: str, limit: str):
    edit(folder, "outcomes.csv", 2, column, value)  # souza2009b: n_pfp 19, n_control 19
    p = only(data.validate(folder), "outcomes.csv", 2, column)
    assert p.message.startswith(f"{value} exceeds {limit} of study souza2009b")


def test_post_vs_pre_group_is_the_pfp_group(folder: Path):
    edit(folder, "outcomes.csv", 7, "n1", "11")  # willy2012b: n_pfp 10
    edit(folder, "outcomes.csv", 7, "n2", "11")
    p = only(data.validate(folder), "outcomes.csv", 7, "n1")
    assert "exceeds n_pfp (10)" in p.message


def test_post_vs_pre_control_group_task_is_bounded_by_n_control(folder: Path):
    edit(folder, "studies.csv", 6, "n_control", "8")
    edit(folder, "outcomes.csv", 7, "task", "exhaustive_run_control_group")
    p = only(data.validate(folder), "outcomes.csv", 7, "n1")
    assert "exceeds n_control (8)" in p.message


# ------------------------------------------------------------------ warnings


def test_unknown_extra_column_is_a_warning(folder: Path, capsys):
    add_column(folder, "outcomes.csv", "sd_pooled", {2: "5.1"})
    p = only(data.validate(folder), "outcomes.csv", None, "sd_pooled")
    assert p.severity == "warning" and "not a documented column" in p.message
    assert "warning: " in text(p)
    data.load(folder)  # warnings do not stop loading
    assert main(["validate", "--data", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "column sd_pooled: warning: is not a documented column" in out and "1 warning" in out


@pytest.mark.parametrize("file,row,column,value", [
    ("studies.csv", 2, "notes", "=HYPERLINK(\"http://x\")"),
    ("studies.csv", 3, "title", "+cmd"),
    ("outcomes.csv", 2, "source_locator", "@SUM(A1)"),
    ("outcomes.csv", 3, "extraction_note", "-2+3"),
    ("review_claims.csv", 2, "claim_text", "\tindented"),
])
def test_formula_like_text_cells_are_warned(folder: Path, file, row, column, value):
    edit(folder, file, row, column, value)
    p = only(data.validate(folder), file, row, column)
    assert p.severity == "warning" and "formula" in p.message


def test_negative_numbers_are_not_formulas(folder: Path):
    edit(folder, "outcomes.csv", 6, "effect_size", "-0.74")
    edit(folder, "outcomes.csv", 2, "mean2", "-0.3")
    edit(folder, "outcomes.csv", 2, "direction", "+1")
    assert data.validate(folder) == []


# ------------------------------------------------------------------ CI and SE columns


def _ci(folder: Path, **cells: dict[int, str]) -> None:
    for col in ("ci_low", "ci_high", "ci_level", "se"):
        add_column(folder, "outcomes.csv", col, cells.get(col, {}))


def test_ci_columns_load_as_floats(folder: Path):
    _ci(folder, ci_low={4: "1.2"}, ci_high={4: "5.8"}, ci_level={4: "0.95"}, se={4: "1.1"})
    ds = data.load(folder)
    assert ds.outcomes.loc[4, ["ci_low", "ci_high", "ci_level", "se"]].tolist() == [1.2, 5.8, 0.95, 1.1]
    for col in ("ci_low", "ci_high", "ci_level", "se"):
        assert ds.outcomes[col].dtype == "float64"


def test_ci_columns_are_optional_and_exposed():
    ds = data.load(GOOD)
    assert ds.outcomes[["ci_low", "ci_high", "ci_level", "se"]].isna().all().all()


@pytest.mark.parametrize("cells,column,words", [
    ({"ci_low": {4: "1.2"}, "ci_level": {4: "0.95"}}, "ci_high", "together with ci_low"),
    ({"ci_low": {4: "5.8"}, "ci_high": {4: "1.2"}, "ci_level": {4: "0.95"}}, "ci_high", "must be > ci_low"),
    ({"ci_low": {4: "1.2"}, "ci_high": {4: "5.8"}}, "ci_level", "must be given when ci_low/ci_high"),
    ({"ci_low": {4: "1.2"}, "ci_high": {4: "5.8"}, "ci_level": {4: "95"}}, "ci_level", "looks like a percentage: write 0.95"),
    ({"ci_level": {4: "0.95"}}, "ci_level", "ci_low and ci_high are empty"),
    ({"se": {4: "0"}}, "se", "must be > 0"),
    ({"se": {4: "1_1"}}, "se", "must be a number"),
])
def test_ci_rules(folder: Path, cells, column, words):
    _ci(folder, **cells)
    p = only(data.validate(folder), "outcomes.csv", 4, column)
    assert words in p.message and p.is_error


def test_ci_not_containing_its_estimate_is_a_warning(folder: Path):
    _ci(folder, ci_low={4: "4.0"}, ci_high={4: "6.0"}, ci_level={4: "0.95"})  # mean_diff 3.5
    p = only(data.validate(folder), "outcomes.csv", 4, "ci_low")
    assert p.severity == "warning" and p.message.startswith("CI does not contain the estimate")
    assert "mean_diff 3.5" in p.message
    assert data.load(folder).warnings == (p,)


# ------------------------------------------------------------------ review_set


def test_missing_review_set_means_original():
    ds = data.load(GOOD)
    assert (ds.studies["review_set"] == "original").all()


def test_review_set_vocabulary(folder: Path):
    add_column(folder, "studies.csv", "review_set", {i: "original" for i in range(2, 9)})
    edit(folder, "studies.csv", 3, "review_set", "update")
    assert data.validate(folder) == []
    assert data.load(folder).studies.loc[3, "review_set"] == "update"
    edit(folder, "studies.csv", 4, "review_set", "Update")
    assert "did you mean 'update'" in only(data.validate(folder), "studies.csv", 4, "review_set").message
    edit(folder, "studies.csv", 4, "review_set", "")  # an empty cell is the original review, as a missing column
    assert data.validate(folder) == []
    assert data.load(folder).studies.loc[4, "review_set"] == "original"


def test_bundled_studies_have_review_set():
    sets = data.load(BUNDLED).studies.set_index("study_id")["review_set"]
    assert set(sets) == {"original", "update"}
    assert sets["noehren2013"] == "original" and sets["neal2019"] == "update"
    assert "review_set" in _rows(BUNDLED / "studies.csv")[0]


# ------------------------------------------------------------------ published_pooled.csv

_POOLED_HEADER = ("source_id,source_citation,doi,outcome,population,task,design,k,n,smd,ci_low,ci_high,"
                  "ci_level,evidence_level,sign_convention,url,locator,notes")
_POOLED_ROW = ("neal2016,Neal 2016 Gait Posture 45:69-82,10.1016/j.gaitpost.2015.11.018,peak_hip_adduction,"
               "female_runners,running,prospective,2,400,0.55,0.2,0.9,0.95,moderate,pfp_minus_control,"
               "https://example.org/neal2016,figure 2,test row")


def _pooled(folder: Path, *rows: str) -> None:
    (folder / "published_pooled.csv").write_text("\n".join((_POOLED_HEADER,) + rows) + "\n", encoding="utf-8")


def test_published_pooled_absent_is_none():
    assert data.load(GOOD).published_pooled is None


def test_published_pooled_loads_typed(folder: Path):
    _pooled(folder, _POOLED_ROW)
    assert data.validate(folder) == []
    pp = data.load(folder).published_pooled
    assert pp.loc[2, "smd"] == 0.55 and pp["ci_low"].dtype == "float64" and str(pp["k"].dtype) == "Int64"


@pytest.mark.parametrize("column,value,words,severity", [
    ("outcome", "peak_hip_adductoin", "did you mean 'peak_hip_adduction'", "error"),
    ("url", "www.example.org", "http", "error"),
    ("smd", "1_0", "must be a number", "error"),
    ("smd", "1.5", "CI does not contain the estimate", "warning"),
    ("ci_level", "", "must be given when", "error"),
    ("source_id", "", "must not be empty", "error"),
])
def test_published_pooled_rules(folder: Path, column, value, words, severity):
    cells = _POOLED_ROW.split(",")
    cells[_POOLED_HEADER.split(",").index(column)] = value
    _pooled(folder, ",".join(cells))
    col = "ci_low" if words.startswith("CI does not") else column
    p = only(data.validate(folder), "published_pooled.csv", 2, col)
    assert words in p.message and p.severity == severity


def test_published_pooled_missing_column(folder: Path):
    i = _POOLED_HEADER.split(",").index("smd")
    drop = lambda line: ",".join(c for j, c in enumerate(line.split(",")) if j != i)  # noqa: E731
    (folder / "published_pooled.csv").write_text(f"{drop(_POOLED_HEADER)}\n{drop(_POOLED_ROW)}\n", encoding="utf-8")
    p = only(data.validate(folder), "published_pooled.csv", None, "smd")
    assert "required column is missing" in p.message


@pytest.mark.parametrize("bad", ["1_9", "\u0661\u0669"])
def test_whole_numbers_are_ascii_digits(folder: Path, bad: str):
    edit(folder, "outcomes.csv", 2, "n1", bad)
    assert only(data.validate(folder), "outcomes.csv", 2, "n1").message == "must be a whole number"


def test_wrong_file_gives_one_problem(folder: Path):
    shutil.copy(folder / "review_claims.csv", folder / "studies.csv")  # the claims saved under the wrong name
    p = only(data.validate(folder), "studies.csv", 1, None)
    assert p.message.startswith("does not look like studies.csv: its first row lacks most of the required columns")
    assert [x for x in data.validate(folder) if x.file == "studies.csv"] == [p]
