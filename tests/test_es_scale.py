"""analyses.csv column ``es_scale``: an analysis may declare the SMD scale it pools (raw_sd or
change_sd; empty = meta.review.running.evidence.SCALES by comparison). The column is checked like the other
columns of analyses.csv; evidence_sets pools the declared scale and keeps the others apart; the
bundled change-scale gait-retraining analyses pool bramah2019's d_z in the updated set only."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
from _csvrows import read_rows as _rows, write_rows as _write  # tests/ is on sys.path under pytest

from meta.review.inputs import analysis
from meta.review.inputs.analysis import Analysis, load_analyses, parse_filters
from meta.cli import main
from meta.review.running.evidence import ORIGINAL, UPDATED, analysis_scale, evidence_sets
from test_evidence import _table

FILE = "analyses.csv"


def _edit(folder: Path, row: int, value: str) -> str:
    rows = _rows(folder / FILE)
    rows[row - 1][rows[0].index("es_scale")] = value
    _write(folder / FILE, rows)
    return rows[row - 1][0]


def test_a_bad_es_scale_names_file_row_column_and_the_valid_values(bundled_copy: Path, capsys):
    aid = _edit(bundled_copy, 3, "change-sd")
    ps = [p for p in analysis.analysis_problems(bundled_copy)[0] if p.column == "es_scale"]
    assert [(p.file, p.row, p.study_id, p.severity) for p in ps] == [(FILE, 3, aid, "error")]
    text = str(dataclasses.replace(ps[0], folder=None))
    assert text.startswith(f"analyses.csv, row 3 (analysis {aid}), column es_scale: ")
    assert "must be one of raw_sd, change_sd" in text and "'change-sd'" in text
    assert "did you mean 'change_sd'" in text
    # at the command line: the same message, no traceback, a failing exit code
    assert main(["validate", "--data", str(bundled_copy)]) != 0
    err = capsys.readouterr()
    out = err.out + err.err
    assert f"row 3 (analysis {aid}), column es_scale" in out and "Traceback" not in out


def test_es_scale_is_optional_and_read_into_the_analysis(bundled_copy: Path):
    rows = _rows(bundled_copy / FILE)
    i = rows[0].index("es_scale")
    _write(bundled_copy / FILE, [r[:i] + r[i + 1:] for r in rows])  # a file without the column
    assert [p for p in analysis.analysis_problems(bundled_copy)[0] if p.severity == "error"] == []
    assert {a.es_scale for a in load_analyses(bundled_copy)} == {""}
    _write(bundled_copy / FILE, rows)
    aid = _edit(bundled_copy, 3, "change_sd")
    a = next(a for a in load_analyses(bundled_copy) if a.analysis_id == aid)
    assert a.es_scale == "change_sd" and analysis_scale(a) == "change_sd"


def _prepost(es_scale: str = "") -> Analysis:
    return Analysis("a1", "A1", ("peak_hip_adduction",), "post_vs_pre",
                    parse_filters("design=intervention-single-group"), es_scale=es_scale)


def _ids(df):
    return list(df["study_id"])


def test_an_analysis_declaring_change_sd_pools_change_sd_rows_and_keeps_raw_sd_rows_apart():
    assert analysis_scale(_prepost()) == "raw_sd"  # the comparison's default
    s = evidence_sets(_table(), _prepost("change_sd"))
    assert s[ORIGINAL].scale == s[UPDATED].scale == "change_sd"
    assert _ids(s[ORIGINAL].matched) == []
    assert _ids(s[ORIGINAL].other_scale) == ["old4", "old5"]  # raw_sd and unstated: apart
    assert _ids(s[UPDATED].matched) == ["new4"]
    assert _ids(s[UPDATED].other_scale) == ["new5", "old4", "old5"]  # table order
    assert s[UPDATED].added_studies == ("new4",)
    # declaring raw_sd is the default made explicit
    d, r = evidence_sets(_table(), _prepost()), evidence_sets(_table(), _prepost("raw_sd"))
    assert _ids(d[UPDATED].matched) == _ids(r[UPDATED].matched) == ["new5", "old4"]


@pytest.fixture(scope="module")
def bundled_run(snapshot_results):
    out = snapshot_results  # reproduce of the review data snapshot (tests/conftest.py), PNG at 72 dpi
    with open(out / "pooled.csv", encoding="utf-8") as f:
        pooled = list(csv.DictReader(f))
    with open(out / "effect_sizes.csv", encoding="utf-8") as f:
        effects = list(csv.DictReader(f))
    return pooled, effects, (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("aid,outcome", [("gr_hip_adduction_dz", "peak_hip_adduction"),
                                         ("gr_pelvic_drop_dz", "contralateral_pelvic_drop")])
def test_bundled_change_scale_analyses_pool_bramah2019_in_the_updated_set_only(bundled_run, aid, outcome):
    pooled, effects, report = bundled_run
    rows = {r["set"]: r for r in pooled if r["analysis_id"] == aid}
    assert set(rows) == {"original", "updated"}
    assert rows["original"]["k"] == "0" and rows["original"]["estimate"] == ""
    u = rows["updated"]
    assert (u["k"], u["studies"], u["status"], u["claim_ids"]) == ("1", "bramah2019", "single_study", "")
    (e,) = [r for r in effects if r["study_id"] == "bramah2019" and r["outcome"] == outcome]
    assert (e["route"], e["es_scale"]) == ("change_ci", "change_sd")
    assert float(u["estimate"]) == pytest.approx(float(e["yi"]), abs=1e-12)
    # the report says which scale it is, in the analysis' section and beside the number in the overview
    assert f"| {aid} | 0 | no usable data | 1 |" in report and "(single study; d_z, SD of change)" in report
    assert "Scale `change_sd` (declared in `analyses.csv` column `es_scale`)" in report


def test_the_raw_scale_gait_retraining_analysis_still_leaves_bramah2019_out(bundled_run):
    pooled, _, _ = bundled_run
    for r in pooled:
        if r["analysis_id"] == "gr_hip_adduction":
            assert "bramah2019" not in r["studies"]


def test_pooled_n_counts_a_pre_post_sample_once(tmp_path):
    # bramah2019: 12 runners measured before and after (n1 = n2 = 12): 12 people, not 24
    from meta.review.reproduce import reproduce

    res = reproduce("data", None)
    row = res.to_frame().set_index(["set", "analysis_id"]).loc[("updated", "gr_hip_adduction_dz")]
    assert row["k"] == 1 and row["n_total"] == 12
