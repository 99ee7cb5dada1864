"""A typo in the data never changes a result silently: ids that look equal are one id or an error,
numbers mean what they say, invisible characters never reach a report, and a correct new study,
added as the README says, keeps every check green.

Each case edits a copy of the review data snapshot (``folder`` fixture) and reads what
``meta validate`` would print (file, row, column and what would be valid).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

import _background
from _csvrows import read_rows, write_rows
from meta.cli import main
from meta.review.inputs.analysis import validate
from meta.review.inputs.schema import SCHEMA, identifier_key, invisible_characters

ROOT = Path(__file__).resolve().parents[1]


def edit(folder: Path, file: str, row: int, column: str, value: str) -> None:
    rows = read_rows(folder / file)
    rows[row - 1][rows[0].index(column)] = value
    write_rows(folder / file, rows)


def cell(folder: Path, file: str, row: int, column: str) -> str:
    rows = read_rows(folder / file)
    return rows[row - 1][rows[0].index(column)]


def find_row(folder: Path, file: str, **match: str) -> int:
    rows = read_rows(folder / file)
    for i, r in enumerate(rows[1:], start=2):
        if all(r[rows[0].index(k)] == v for k, v in match.items()):
            return i
    raise AssertionError(f"no row of {file} with {match}")


def errors_at(folder: Path, file: str, row: int | None, column: str) -> list[str]:
    return [str(dataclasses.replace(p, folder=None)) for p in validate(folder)
            if p.is_error and (p.file, p.row, p.column) == (file, row, column)]


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("variant", ["Souza2009", "souza2009\u200b", "SOUZA2009", "ｓｏｕｚａ2009"],
                         ids=["case", "zero-width space", "upper", "full-width"])
def test_a_cohort_id_typed_another_way_is_an_error_naming_both_rows(folder, variant):
    first = find_row(folder, "studies.csv", study_id="souza2009a")
    second = find_row(folder, "studies.csv", study_id="souza2009b")
    assert cell(folder, "studies.csv", first, "cohort_id") == "souza2009"
    edit(folder, "studies.csv", second, "cohort_id", variant)
    msgs = errors_at(folder, "studies.csv", second, "cohort_id")
    assert msgs, "a cohort id that differs only by case or Unicode form must not split one cohort in two"
    assert any(f"row {first}" in m and "'souza2009'" in m for m in msgs), msgs


def test_identifier_key_folds_case_width_and_spaces():
    assert identifier_key("Souza2009") == identifier_key("souza2009") == identifier_key("ｓｏｕｚａ2009")
    assert identifier_key("souza2009a") != identifier_key("souza2009b")


@pytest.mark.parametrize("char,code", [("\u202e", "U+202E"), ("\u200b", "U+200B"), ("\u2066", "U+2066"),
                                       ("\ufeff", "U+FEFF"), ("\x07", "U+0007")])
def test_invisible_and_bidi_characters_are_refused_in_any_text_cell(folder, char, code):
    row = find_row(folder, "studies.csv", study_id="noehren2013")
    edit(folder, "studies.csv", row, "title", "Prospective " + char + "evidence")
    msgs = errors_at(folder, "studies.csv", row, "title")
    assert len(msgs) == 1 and code in msgs[0], msgs
    assert invisible_characters("tab\tand\nnewline") == []


def test_a_right_to_left_override_never_reaches_the_report(folder, tmp_path, capsys):
    row = find_row(folder, "analyses.csv", analysis_id="cc_hip_internal_rotation_any")
    edit(folder, "analyses.csv", row, "title", "Hip \u202einternal rotation")
    assert main(["reproduce", "--data", str(folder), "--out", str(tmp_path / "res")]) == 1
    out = capsys.readouterr()
    assert "U+202E" in out.err + out.out
    assert not (tmp_path / "res").exists()


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("level,hint", [("0.05", "alpha"), ("95", "percentage"), ("1.5", "proportion")])
def test_ci_level_that_is_alpha_or_a_percentage_is_an_error(folder, level, hint):
    row = find_row(folder, "outcomes.csv", study_id="neal2019", outcome="peak_hip_adduction")
    assert cell(folder, "outcomes.csv", row, "ci_level") == "0.95"
    edit(folder, "outcomes.csv", row, "ci_level", level)
    msgs = errors_at(folder, "outcomes.csv", row, "ci_level")
    assert len(msgs) == 1 and hint in msgs[0], msgs


@pytest.mark.parametrize("value", ["1e999", "-1e400", "1e13"])
def test_a_number_beyond_double_precision_is_an_error(folder, value):
    row = find_row(folder, "outcomes.csv", study_id="souza2009a", outcome="peak_hip_internal_rotation")
    edit(folder, "outcomes.csv", row, "mean1", value)
    msgs = errors_at(folder, "outcomes.csv", row, "mean1")
    assert len(msgs) == 1 and "finite number" in msgs[0], msgs


@pytest.mark.parametrize("value", [str(2**63 - 1), "1" * 20, "1000000001"])
def test_a_sample_size_too_large_for_its_arithmetic_is_an_error_naming_the_cell(folder, value, capsys):
    row = find_row(folder, "outcomes.csv", study_id="souza2009a", outcome="peak_hip_internal_rotation")
    edit(folder, "outcomes.csv", row, "n1", value)
    msgs = errors_at(folder, "outcomes.csv", row, "n1")
    assert len(msgs) == 1 and "<= 1 000 000 000" in msgs[0], msgs
    assert main(["validate", "--data", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"outcomes.csv, row {row} (study souza2009a), column n1" in out and "Overflow" not in out


@pytest.mark.parametrize("match,value", [
    (dict(study_id="willson2008", outcome="hip_adduction"), "1e-320"),  # mean difference and p
    (dict(study_id="noehren2013", outcome="peak_hip_adduction"), "1e-250"),  # p and direction only
])
def test_a_p_value_too_small_to_use_is_an_error_not_a_dropped_row(folder, match, value):
    row = find_row(folder, "outcomes.csv", **match)
    edit(folder, "outcomes.csv", row, "p_value", value)
    msgs = errors_at(folder, "outcomes.csv", row, "p_value")
    assert len(msgs) == 1 and "1e-15" in msgs[0], msgs


def test_a_ci_narrower_than_rounding_is_an_error(folder):
    row = find_row(folder, "outcomes.csv", study_id="neal2019", outcome="peak_hip_adduction")
    lo = float(cell(folder, "outcomes.csv", row, "ci_low"))
    edit(folder, "outcomes.csv", row, "ci_high", repr(lo + 2e-13))
    edit(folder, "outcomes.csv", row, "effect_size", repr(lo + 1e-13))
    edit(folder, "outcomes.csv", row, "mean_diff", "")
    msgs = errors_at(folder, "outcomes.csv", row, "ci_high")
    assert len(msgs) == 1 and "rounding" in msgs[0], msgs


# --------------------------------------------------------------------------- adding a study as the README says


def _readme_steps() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Adding or correcting a study"):text.index("\n## ", text.index("## Adding or correcting"))]


def test_readme_adding_a_study_names_every_cell_validation_requires():
    steps = _readme_steps()
    for file in ("studies.csv", "outcomes.csv"):
        for col in SCHEMA[file]:
            if col.cell:
                assert f"`{col.name}`" in steps, f"README 'Adding or correcting a study' does not name {file} column {col.name}"


def readme_steps(tmp_path: Path) -> None:
    """Background job (tests/_background.py): the README's steps for adding a study followed literally on a copy
    of the bundled data/ (whatever it holds today), then `meta validate`, `meta reproduce` and `meta docs`; each
    command's exit code and output go to tmp_path/cli.json."""
    import contextlib
    import io
    import json

    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    readme = tmp_path / "README.md"
    shutil.copyfile(ROOT / "README.md", readme)
    studies = read_rows(data / "studies.csv")
    h = studies[0]
    new = dict.fromkeys(h, "")
    # a synthetic study of this test only (never in data/): the README's required cells, nothing more
    new.update(study_id="testauthor2031", cohort_id="testauthor2031", authors="Test A", year="2031",
               design="case-control", population_sex="female", runners="yes", review_match="unlikely",
               review_match_reason="synthetic row added by a test", review_set="update")
    studies.append([new[c] for c in h])
    write_rows(data / "studies.csv", studies)
    outcomes = read_rows(data / "outcomes.csv")
    ho = outcomes[0]
    row = dict.fromkeys(ho, "")
    row.update(study_id="testauthor2031", outcome="peak_hip_adduction", comparison="pfp_vs_control",
               timepoint="baseline", task="running", unit="deg", n1="20", mean1="12.0", sd1="4.0", n2="20",
               mean2="10.0", sd2="4.0", source_url="https://example.org/synthetic", source_locator="table 1")
    outcomes.append([row[c] for c in ho])
    write_rows(data / "outcomes.csv", outcomes)
    runs = {}
    for name, argv in (("validate", ["validate", "--data", str(data)]),
                       ("reproduce", ["reproduce", "--data", str(data), "--out", str(tmp_path / "results")]),
                       ("docs", ["docs", "--data", str(data), "--readme", str(readme)])):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
        runs[name] = {"returncode": rc, "out": out.getvalue(), "err": err.getvalue()}
        if rc != 0:  # as the asserts in a row: a failed step ends the steps
            break
    (tmp_path / "cli.json").write_text(json.dumps(runs))


@pytest.mark.background("test_trust_inputs:readme_steps")
def test_adding_a_well_formed_study_as_the_readme_says_keeps_validate_reproduce_and_docs_working():
    """The README's steps followed literally on a copy of the bundled data/ (whatever it holds today)."""
    import json

    tmp_path = _background.result("test_trust_inputs:readme_steps")
    runs = json.loads((tmp_path / "cli.json").read_text())
    assert runs["validate"]["returncode"] == 0, runs["validate"]["out"]
    assert runs["reproduce"]["returncode"] == 0, (runs["reproduce"]["out"], runs["reproduce"]["err"])
    assert runs["docs"]["returncode"] == 0, (runs["docs"]["out"], runs["docs"]["err"])
    assert re.search(r"testauthor2031", (tmp_path / "results" / "effect_sizes.csv").read_text(encoding="utf-8"))
