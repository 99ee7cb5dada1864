"""meta diff: what changed between two results folders, in the order input rows, study SMDs,
pooled estimates, claim verdicts, each naming its study / analysis / claim id."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from meta.review.outputs.diff import DiffError, diff_results


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


OUT_H = ["study_id", "outcome", "comparison", "timepoint", "task", "n1", "mean_diff"]
EFF_H = ["outcomes_row", "study_id", "outcome", "comparison", "timepoint", "task", "yi", "vi", "route"]
POOL_H = ["analysis_id", "status", "k", "estimate", "ci_low", "ci_high", "tau2"]
CLAIM_H = ["claim_id", "verdict"]


def _folder(root: Path, *, md="2.1", yi="0.5", est="0.4", verdict="direction only", extra_study=False) -> Path:
    _write(root / "inputs" / "studies.csv", ["study_id", "year"],
           [["smith2020", "2020"]] + ([["jones2021", "2021"]] if extra_study else []))
    _write(root / "inputs" / "outcomes.csv", OUT_H,
           [["smith2020", "peak_hip_adduction", "pfp_vs_control", "baseline", "running", "20", md]])
    _write(root / "effect_sizes.csv", EFF_H,
           [[2, "smith2020", "peak_hip_adduction", "pfp_vs_control", "baseline", "running", yi, "0.1", "md_p"]])
    _write(root / "pooled.csv", POOL_H, [["cc_hip_adduction", "pooled", "3", est, "-0.1", "0.9", "0.2"]])
    _write(root / "claims.csv", CLAIM_H, [["C02", verdict]])
    return root


def test_identical_runs_report_no_change(tmp_path):
    a = _folder(tmp_path / "a")
    b = _folder(tmp_path / "b")
    res = diff_results(a, b)
    assert not res.changed
    assert res.summary().rstrip().endswith("no changes")


def test_one_number_correction_names_study_and_analysis(tmp_path):
    a = _folder(tmp_path / "a")
    b = _folder(tmp_path / "b", md="3.1", yi="0.7", est="0.55", verdict="agrees")
    res = diff_results(a, b)
    sections = [c.section for c in res.changes]
    assert sections == ["input", "effect", "pooled", "verdict"]  # the documented order
    inp, eff, pooled, verdict = res.changes
    assert inp.kind == "changed" and "study_id=smith2020" in inp.key and "mean_diff '2.1' -> '3.1'" in inp.detail
    assert "smith2020" in eff.key and "yi 0.5 -> 0.7" in eff.detail
    assert pooled.key == "cc_hip_adduction" and "estimate 0.4 -> 0.55" in pooled.detail
    assert verdict.key == "C02" and "'direction only' -> 'agrees'" in verdict.detail
    text = res.summary()
    assert text.index("Input rows") < text.index("Study-level") < text.index("Pooled") < text.index("Claim verdicts")


def test_added_study_is_listed(tmp_path):
    res = diff_results(_folder(tmp_path / "a"), _folder(tmp_path / "b", extra_study=True))
    assert [(c.kind, c.where, c.key) for c in res.changes] == [("added", "studies.csv", "study_id=jones2021")]


def test_tolerance_hides_rounding_but_not_real_moves(tmp_path):
    a = _folder(tmp_path / "a", est="0.4")
    b = _folder(tmp_path / "b", est="0.4000000000001")
    assert not diff_results(a, b).changed
    assert diff_results(a, b, tolerance=0).changed


def test_evidence_sets_are_compared_separately(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, upd in ((a, "0.3"), (b, "0.6")):
        _folder(root)
        _write(root / "pooled.csv", ["set", *POOL_H],
               [["original", "cc_hip_adduction", "pooled", "3", "0.4", "-0.1", "0.9", "0.2"],
                ["updated", "cc_hip_adduction", "pooled", "5", upd, "0.1", "0.9", "0.2"]])
    (c,) = diff_results(a, b).changes
    assert c.key == "cc_hip_adduction [updated]" and "estimate 0.3 -> 0.6" in c.detail


def test_old_folder_without_inputs_snapshot_is_said(tmp_path):
    a = _folder(tmp_path / "a")
    b = _folder(tmp_path / "b")
    for f in (a / "inputs").iterdir():
        f.unlink()
    (a / "inputs").rmdir()
    res = diff_results(a, b)
    assert any("no inputs/ snapshot" in n for n in res.notes)


@pytest.mark.parametrize("make", ["missing", "not_results"])
def test_bad_folders_raise_clear_errors(tmp_path, make):
    good = _folder(tmp_path / "good")
    bad = tmp_path / "bad"
    if make == "not_results":
        bad.mkdir()
        (bad / "thesis.docx").write_text("draft")
    with pytest.raises(DiffError, match="bad"):
        diff_results(good, bad)
