"""meta.review.inputs.study_effects: one SMD per outcome row, by the documented route priority.

Values are checked three ways: against metafor ``escalc`` (JSON written by
tests/r/study_effects_reference.R from tests/fixtures/data_good), against direct
calls of :mod:`meta.effects`, and against the RevMan formulas written out here
(Deeks & Higgins 2010).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from meta import effects
from meta.review.inputs import data
from meta.review.inputs.study_effects import study_effects

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "tests" / "fixtures" / "data_good"
REF = json.loads((ROOT / "tests" / "fixtures" / "study_effects_reference.json").read_text())

COLUMNS = ["study_id", "cohort_id", "outcome", "comparison", "timepoint", "task", "n1", "n2",
           "yi", "vi", "route", "es_scale", "flags", "reason", "source_url", "source_locator", "r"]


def frame(*rows: dict) -> pd.DataFrame:
    """Hand-made outcomes rows; unspecified columns are empty (unknown)."""
    base = {c: np.nan for c in data.OUTCOME_COLUMNS}
    base.update(study_id="x2000", outcome="peak_hip_adduction", comparison="pfp_vs_control",
                timepoint="baseline", task="running", p_operator=None, effect_size_type=None,
                source_url="https://example.org", source_locator="table 2")
    return pd.DataFrame([{**base, **r} for r in rows])


MEANS = dict(n1=19, mean1=8.2, sd1=6.6, n2=21, mean2=0.3, sd2=3.6)


# ------------------------------------------------------------------ metafor


@pytest.mark.parametrize("vtype", ["ls", "ub"])
def test_matches_metafor_escalc_on_fixture(vtype: str):
    ds = data.load(GOOD)
    got = study_effects(ds.outcomes, ds.studies, variance=vtype, r=REF["r"])
    for ref in REF["rows"][vtype]:
        row = got.loc[ref["row"]]
        assert row["route"] == ref["route"], ref
        if ref["route"] == "none":
            assert math.isnan(row["yi"]) and math.isnan(row["vi"])
        else:
            assert row["yi"] == pytest.approx(ref["yi"], rel=1e-10, abs=1e-12)
            assert row["vi"] == pytest.approx(ref["vi"], rel=1e-10, abs=1e-12)


def test_fixture_one_row_per_outcome_row_and_columns():
    ds = data.load(GOOD)
    got = study_effects(ds.outcomes, ds.studies)
    assert list(got.columns) == COLUMNS
    assert got.index.equals(ds.outcomes.index)
    assert list(got["study_id"]) == list(ds.outcomes["study_id"])
    assert (got["cohort_id"] == ds.studies.set_index("study_id").loc[got["study_id"], "cohort_id"].values).all()
    assert str(got["n1"].dtype) == "Int64"


# ------------------------------------------------------------------ each route vs meta.effects


def test_means_sd_route_is_effects_smd_and_revman_formula():
    got = study_effects(frame(MEANS)).iloc[0]
    ref = effects.smd(8.2, 6.6, 19, 0.3, 3.6, 21, variance="revman")
    assert got["route"] == "means_sd" and got["flags"] == "" and got["reason"] == ""
    assert got["yi"] == pytest.approx(ref["yi"].iloc[0], rel=1e-14)
    assert got["vi"] == pytest.approx(ref["vi"].iloc[0], rel=1e-14)
    # Deeks & Higgins 2010 (RevMan 5), written out independently
    n1, n2, n = 19, 21, 40
    sp = math.sqrt(((n1 - 1) * 6.6**2 + (n2 - 1) * 3.6**2) / (n - 2))
    g = (8.2 - 0.3) / sp * (1 - 3 / (4 * n - 9))
    assert got["yi"] == pytest.approx(g, rel=1e-12)
    assert got["vi"] == pytest.approx(n / (n1 * n2) + g**2 / (2 * (n - 3.94)), rel=1e-12)


def test_md_p_route():
    row = dict(n1=20, n2=18, mean_diff=-3.5, p_value=0.012, p_operator="=", direction=-1)
    got = study_effects(frame(row), variance="ls").iloc[0]
    ref = effects.smd_from_md(-3.5, 20, 18, p=0.012, p_operator="=", variance="ls")
    assert got["route"] == "md_p"
    assert (got["yi"], got["vi"]) == pytest.approx((ref["yi"].iloc[0], ref["vi"].iloc[0]), rel=1e-14)
    # independent: d = sign(md) * qt(1 - p/2, N - 2) * sqrt(1/n1 + 1/n2), metafor LS
    m = 36
    d = -stats.t.isf(0.006, m) * math.sqrt(1 / 20 + 1 / 18)
    j = math.exp(math.lgamma(m / 2) - 0.5 * math.log(m / 2) - math.lgamma((m - 1) / 2))
    assert got["yi"] == pytest.approx(j * d, rel=1e-10)
    assert got["vi"] == pytest.approx(1 / 20 + 1 / 18 + (j * d) ** 2 / (2 * 38), rel=1e-10)


def test_t_route_sign_from_direction():
    row = dict(n1=15, n2=15, effect_size=2.1, effect_size_type="t", direction=-1)
    got = study_effects(frame(row)).iloc[0]
    ref = effects.smd_from_t(-2.1, 15, 15, variance="revman")
    assert got["route"] == "t" and got["flags"] == ""
    assert (got["yi"], got["vi"]) == pytest.approx((ref["yi"].iloc[0], ref["vi"].iloc[0]), rel=1e-14)
    assert got["yi"] < 0


def test_reported_es_route_applies_j_and_sign_from_direction():
    row = dict(n1=20, n2=20, effect_size=0.76, effect_size_type="cohen_d", direction=-1)
    got = study_effects(frame(row)).iloc[0]
    ref = effects.smd_from_d(-0.76, 20, 20, variance="revman")
    assert got["route"] == "reported_es" and got["flags"] == ""
    assert (got["yi"], got["vi"]) == pytest.approx((ref["yi"].iloc[0], ref["vi"].iloc[0]), rel=1e-14)
    assert got["yi"] == pytest.approx(-0.76 * (1 - 3 / (4 * 40 - 9)), rel=1e-12)  # RevMan J


def test_reported_es_flags_unspecified_type_and_reported_sign():
    got = study_effects(frame(dict(n1=20, n2=20, effect_size=-0.5))).iloc[0]
    assert got["route"] == "reported_es"
    assert got["flags"] == "sign_as_reported;es_type_unspecified"
    assert got["yi"] == pytest.approx(effects.smd_from_d(-0.5, 20, 20, variance="revman")["yi"].iloc[0])
    got = study_effects(frame(dict(n1=20, n2=20, effect_size=0.5, effect_size_type="unspecified",
                                   direction=1))).iloc[0]
    assert got["flags"] == "es_type_unspecified"


@pytest.mark.parametrize("variance", ["revman", "ls", "ub"])
def test_reported_hedges_g_is_not_corrected_twice(variance: str):
    got = study_effects(frame(dict(n1=12, n2=14, effect_size=0.81, effect_size_type="hedges_g",
                                   direction=-1)), variance=variance).iloc[0]
    assert got["route"] == "reported_es" and got["flags"] == ""
    assert got["yi"] == pytest.approx(-0.81, rel=1e-12)
    n1, n2, n = 12, 14, 26
    if variance == "revman":  # Deeks & Higgins 2010, with g as reported
        assert got["vi"] == pytest.approx(n / (n1 * n2) + 0.81**2 / (2 * (n - 3.94)), rel=1e-12)
    if variance == "ls":  # metafor vtype="LS"
        assert got["vi"] == pytest.approx(1 / n1 + 1 / n2 + 0.81**2 / (2 * n), rel=1e-12)


def test_p_only_route():
    row = dict(n1=15, n2=15, p_value=0.007, p_operator="=", direction=1)
    got = study_effects(frame(row)).iloc[0]
    ref = effects.smd_from_p(0.007, 15, 15, 1, p_operator="=", variance="revman")
    assert got["route"] == "p_only" and got["flags"] == ""
    assert (got["yi"], got["vi"]) == pytest.approx((ref["yi"].iloc[0], ref["vi"].iloc[0]), rel=1e-14)
    t = stats.t.isf(0.0035, 28)
    assert got["yi"] == pytest.approx(t * math.sqrt(2 / 15) * (1 - 3 / (4 * 30 - 9)), rel=1e-10)


def test_paired_route_needs_r():
    row = dict(comparison="post_vs_pre", n1=10, n2=10, mean1=8.1, sd1=3.2, mean2=11.9, sd2=3.5)
    none = study_effects(frame(row)).iloc[0]
    assert none["route"] == "none" and math.isnan(none["yi"]) and math.isnan(none["vi"])
    assert none["reason"] == "paired design needs r"
    got = study_effects(frame(row), r=0.6).iloc[0]
    ref = effects.smd_paired(11.9, 3.5, 8.1, 3.2, 10, r=0.6)  # pre = group 2, post = group 1
    assert got["route"] == "paired" and got["flags"] == "r_assumed"
    assert (got["yi"], got["vi"]) == pytest.approx((ref["yi"].iloc[0], ref["vi"].iloc[0]), rel=1e-14)
    assert got["yi"] < 0  # post minus pre


def test_post_vs_pre_uses_no_independent_group_route():
    row = dict(comparison="post_vs_pre", n1=10, n2=10, p_value=0.01, p_operator="=", direction=-1,
               mean_diff=-3.0, effect_size=1.2)
    got = study_effects(frame(row), r=0.5).iloc[0]
    assert got["route"] == "none" and "paired route" in got["reason"]
    assert "within-group p-value, mean change or effect size is not converted" in got["reason"]


# ------------------------------------------------------------------ route priority


def test_route_priority():
    everything = dict(**MEANS, mean_diff=7.9, p_value=0.001, p_operator="=", effect_size=1.4,
                      effect_size_type="cohen_d", direction=1)
    drop = lambda *cols: {k: v for k, v in everything.items() if k not in cols}  # noqa: E731
    rows = [everything,
            drop("sd2"),                                          # -> md_p
            drop("sd2", "mean_diff"),                             # -> reported_es
            {**drop("sd2", "mean_diff"), "effect_size_type": "t"},  # -> t
            drop("sd2", "mean_diff", "effect_size"),              # -> p_only
            drop("sd2", "mean_diff", "effect_size", "direction"),  # -> none
            drop("n2")]                                           # -> none (every route needs n's)
    got = study_effects(frame(*rows))
    assert list(got["route"]) == ["means_sd", "md_p", "reported_es", "t", "p_only", "none", "none"]
    assert "missing n2" in got["reason"].iloc[6]
    assert len(got) == len(rows)


def test_inequality_bound_flags_and_error_falls_back():
    rows = [dict(n1=19, n2=19, p_value=0.001, p_operator="<", direction=1),
            dict(n1=19, n2=19, mean_diff=7.9, p_value=0.001, p_operator="<", effect_size=1.1,
                 effect_size_type="cohen_d", direction=1),
            dict(**MEANS, p_value=0.001, p_operator="<", direction=1)]
    bound = study_effects(frame(*rows))
    assert list(bound["route"]) == ["p_only", "md_p", "means_sd"]
    assert list(bound["flags"]) == ["p_inequality", "p_inequality", ""]
    ref = effects.smd_from_p(0.001, 19, 19, 1, p_operator="<", inequality="bound", variance="revman")
    assert bound["yi"].iloc[0] == pytest.approx(ref["yi"].iloc[0], rel=1e-14)

    strict = study_effects(frame(*rows), inequality="error")
    assert list(strict["route"]) == ["none", "reported_es", "means_sd"]
    assert strict["reason"].iloc[0].startswith("p_only refused:")
    assert strict["reason"].iloc[1].startswith("md_p refused:")
    assert math.isnan(strict["yi"].iloc[0])


def test_md_zero_with_small_p_is_refused_and_next_route_used():
    row = dict(n1=20, n2=20, mean_diff=0.0, p_value=0.01, p_operator="=", direction=1)
    got = study_effects(frame(row)).iloc[0]
    assert got["route"] == "p_only" and got["reason"].startswith("md_p refused:")


def test_averaged_across_tasks_flag():
    got = study_effects(frame(dict(MEANS, task="averaged_across_tasks"),
                              dict(n1=15, n2=15, p_value=0.03, p_operator="<", direction=1,
                                   task="averaged_across_tasks")))
    assert list(got["flags"]) == ["averaged_across_tasks", "p_inequality;averaged_across_tasks"]


# ------------------------------------------------------------------ bookkeeping


def test_no_row_dropped_and_index_kept():
    f = frame(MEANS, dict(n1=10), dict(comparison="post_vs_pre", n1=10, n2=10), MEANS)
    f.index = [14, 3, 99, 7]
    got = study_effects(f)
    assert list(got.index) == [14, 3, 99, 7]
    assert list(got["route"]) == ["means_sd", "none", "none", "means_sd"]
    assert (got.loc[[3, 99], "reason"] != "").all()


def test_cohort_id_from_studies():
    studies = pd.DataFrame({"study_id": ["x2000"], "cohort_id": ["calgary"]})
    assert study_effects(frame(MEANS), studies)["cohort_id"].iloc[0] == "calgary"
    assert pd.isna(study_effects(frame(MEANS))["cohort_id"].iloc[0])


def test_numeric_strings_accepted():
    raw = pd.read_csv(GOOD / "outcomes.csv", dtype=str, keep_default_na=False)
    typed = data.load(GOOD).outcomes
    a = study_effects(raw)
    b = study_effects(typed)
    np.testing.assert_array_equal(a["route"].to_numpy(), b["route"].to_numpy())
    np.testing.assert_allclose(a["yi"].to_numpy(), b["yi"].to_numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("kw", [dict(variance="hedges"), dict(inequality="ignore"), dict(r=1.0),
                                dict(r="0.5")])
def test_bad_options(kw):
    with pytest.raises(ValueError):
        study_effects(frame(MEANS), **kw)


def test_missing_columns():
    with pytest.raises(ValueError, match="n2"):
        study_effects(frame(MEANS).drop(columns="n2"))


@pytest.mark.parametrize("es_type", ["odds_ratio", "r", "percent"])
def test_non_smd_effect_size_is_never_used_as_d(es_type: str):
    got = study_effects(frame(dict(n1=20, n2=20, effect_size=5.35, effect_size_type=es_type,
                                   direction=1))).iloc[0]
    assert got["route"] == "none" and math.isnan(got["yi"])
    assert f"effect_size_type '{es_type}' is not a standardised mean difference" in got["reason"]
    # with a p-value and direction the p_only route is still available
    got = study_effects(frame(dict(n1=20, n2=20, effect_size=5.35, effect_size_type=es_type,
                                   direction=1, p_value=0.008, p_operator="="))).iloc[0]
    assert got["route"] == "p_only"
