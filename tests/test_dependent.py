"""Every row of every cohort: the all-rows sensitivity (CHE working model + CR2) agrees with
metafor rma.mv + clubSandwich conf_int, flags small Satterthwaite df, and reaches pooled.csv,
robustness.csv, dependent.csv and the report when a cohort gives an analysis several rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import _background
from _csvrows import read_rows, write_rows
from meta.review.running.dependent import ALL_ROWS_R, R_SWEEP, all_rows

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "tests" / "fixtures" / "dependent_reference.json").read_text())


def _frames(case):
    rows = pd.DataFrame({"yi": case["yi"], "vi": case["vi"], "cohort_id": case["cohort"], "study_id": case["cohort"]})
    first = ~rows["cohort_id"].duplicated()
    return rows.loc[first], rows.loc[~first]


@pytest.mark.parametrize("name", list(REF["cases"]))
def test_all_rows_matches_metafor_rma_mv_and_clubsandwich_cr2(name):
    case = REF["cases"][name]
    kept, aside = _frames(case)
    ar = all_rows(kept, aside, "yi", "vi")
    assert ar.k_rows == len(case["yi"]) and ar.k_cohorts == len(set(case["cohort"]))
    got = {row["r"]: row for row in ar.rows}
    assert sorted(got) == sorted({ALL_ROWS_R, *R_SWEEP}) and got[ALL_ROWS_R]["stated"]
    for fit in case["fits"]:
        g = got[fit["r"]]
        for ours, theirs in (("estimate", "estimate"), ("se", "se"), ("df", "df"), ("ci_low", "ci_low"),
                             ("ci_high", "ci_high"), ("p", "p")):
            assert g[ours] == pytest.approx(fit[theirs], rel=2e-5, abs=1e-7), (name, fit["r"], ours)
        sig = np.atleast_1d(fit["sigma2"])
        assert g["sigma2_cohort"] == pytest.approx(sig[0], rel=1e-4, abs=1e-7)
        assert g["sigma2_within"] == pytest.approx(sig[1], rel=1e-4, abs=1e-7)
        assert g["df_below_4"] == (fit["df"] < 4)


def test_few_cohorts_are_flagged_with_the_df():
    case = REF["cases"]["assink_1to3"]
    assert min(f["df"] for f in case["fits"]) < 4  # the reference case is the one the flag is for
    ar = all_rows(*_frames(case), "yi", "vi")
    st = ar.stated
    assert st["df_below_4"] and "< 4" in st["note"] and "Tipton 2015" in st["note"]


def test_no_model_where_every_cohort_gives_one_row_or_there_is_one_cohort():
    rows = pd.DataFrame({"yi": [0.1, 0.4, 0.3], "vi": [0.04, 0.05, 0.06], "cohort_id": ["a", "b", "c"],
                         "study_id": ["a", "b", "c"]})
    ar = all_rows(rows, rows.iloc[0:0], "yi", "vi")
    assert not ar.rows and "already uses every row" in ar.note
    one = rows.assign(cohort_id="a")
    ar = all_rows(one.iloc[:1], one.iloc[1:], "yi", "vi")
    assert not ar.rows and "single cohort" in ar.note


def review_run(tmp: Path) -> None:
    """Background job (tests/_background.py): `meta reproduce` (every format, 300 dpi, report.html) of a copy of
    the review data snapshot into tmp/res; its exit code and stderr go to tmp/cli.json."""
    import contextlib
    import io

    from meta.cli import main

    data = tmp / "data"
    shutil.copytree(ROOT / "tests" / "fixtures" / "review_data", data)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["reproduce", "--data", str(data), "--out", str(tmp / "res")])
    (tmp / "cli.json").write_text(json.dumps({"returncode": rc, "stderr": err.getvalue()}))


@pytest.mark.background("test_dependent:review_run")
def test_the_review_shows_the_all_rows_sensitivity_where_a_cohort_gives_several_rows():
    """cc_hip_internal_rotation_any admits several summaries of one cohort (souza2009a and souza2009b
    share cohort souza2009): the primary analysis keeps one row per cohort, the sensitivity all."""
    tmp_path = _background.result("test_dependent:review_run")
    cli = json.loads((tmp_path / "cli.json").read_text())
    assert cli["returncode"] == 0, cli["stderr"]
    pooled = pd.read_csv(tmp_path / "res" / "pooled.csv")
    dep = pd.read_csv(tmp_path / "res" / "dependent.csv")
    with_more = pooled.loc[pooled["all_rows_k"] > pooled["all_rows_cohorts"]]
    assert not with_more.empty, "the snapshot has an analysis where one cohort gives two rows"
    assert (pooled.loc[pooled["all_rows_k"] == pooled["all_rows_cohorts"], "all_rows_estimate"].isna()).all()
    row = with_more.iloc[0]
    d = dep.loc[(dep["analysis_id"] == row["analysis_id"]) & (dep["set"] == row["set"])]
    assert sorted(d["r"]) == sorted({ALL_ROWS_R, *R_SWEEP})
    stated = d.loc[d["stated"]].iloc[0]
    assert stated["estimate"] == pytest.approx(row["all_rows_estimate"], rel=1e-12)
    rob = pd.read_csv(tmp_path / "res" / "robustness.csv")
    assert (rob["method_id"] == f"all_rows_che_r{ALL_ROWS_R:g}").any()
    md = (tmp_path / "res" / "report.md").read_text(encoding="utf-8")
    assert f"All rows of every cohort ({int(row['all_rows_k'])} rows from {int(row['all_rows_cohorts'])} cohorts" in md
