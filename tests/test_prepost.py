"""Pre-post correlation derived from an SD of change, a paired t or an exact paired p
(meta.effects.r_from_sd_change / r_from_paired_t / r_from_paired_p; Follmann et al. 1992,
Cochrane Handbook 6.5.2.8).

Reference: tests/r/prepost_reference.R simulates paired data in R and records
cor(pre, post), t.test(paired = TRUE) and metafor escalc("SMCR"/"SMCC", ri = cor):
the derived r must equal Pearson's r of the same data, and the SMD computed with
it must equal metafor's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta.effects import r_from_paired_p, r_from_paired_t, r_from_sd_change, sd_change_from_t, smd_paired

REF = json.loads((Path(__file__).parent / "fixtures" / "prepost_reference.json").read_text())
C = {k: np.asarray(v, dtype=float) for k, v in REF["cases"].items()}


def test_fixture_spans_the_cases():
    assert REF["metafor_version"] == "3.8.1"
    assert (C["r"] < 0).any() and (C["r"] > 0.9).any() and (C["mean_change"] < 0).any()


def test_r_from_sd_change_equals_pearson_r_of_the_data():
    r = r_from_sd_change(C["sd_pre"], C["sd_post"], C["sd_change"])
    np.testing.assert_allclose(r, C["r"], rtol=1e-12, atol=1e-13)


def test_r_from_paired_t_equals_pearson_r():
    r = r_from_paired_t(C["sd_pre"], C["sd_post"], C["mean_change"], C["t"], C["n"])
    np.testing.assert_allclose(r, C["r"], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(sd_change_from_t(C["mean_change"], C["t"], C["n"]), C["sd_change"], rtol=1e-12)


def test_r_from_paired_p_equals_pearson_r():
    """|t| = qt(1 - p/2, n - 1): the p of t.test(paired = TRUE) gives back its t (p down to 1e-5 here)."""
    r = r_from_paired_p(C["sd_pre"], C["sd_post"], C["mean_change"], C["p"], C["n"])
    np.testing.assert_allclose(r, C["r"], rtol=1e-9, atol=1e-10)


def test_smd_with_the_derived_r_matches_metafor_smcr_and_the_round_trip_smcc():
    r = r_from_paired_t(C["sd_pre"], C["sd_post"], C["mean_change"], C["t"], C["n"])
    smcr = smd_paired(C["m_pre"], C["sd_pre"], C["m_post"], C["sd_post"], C["n"], r=r)
    np.testing.assert_allclose(smcr["yi"], C["smcr_yi"], rtol=1e-11)
    np.testing.assert_allclose(smcr["vi"], C["smcr_vi"], rtol=1e-11)
    # metafor SMCC rebuilds sd_change from ri: with the derived r it is the reported SD of change
    smcc = smd_paired(C["m_pre"], C["sd_pre"], C["m_post"], C["sd_post"], C["n"], sd_change=C["sd_change"])
    np.testing.assert_allclose(smcc["yi"], C["smcc_yi"], rtol=1e-11)
    np.testing.assert_allclose(smcc["vi"], C["smcc_vi"], rtol=1e-11)


def test_boundaries_are_allowed_and_series_keep_their_index():
    assert r_from_sd_change(2.0, 3.0, 1.0)[0] == pytest.approx(1.0, abs=1e-15)  # sd_change = |sd_pre - sd_post|
    assert r_from_sd_change(2.0, 3.0, 5.0)[0] == pytest.approx(-1.0, abs=1e-15)  # sd_change = sd_pre + sd_post
    s = r_from_sd_change(pd.Series([2.0, 2.0], index=["a", "b"]), pd.Series([2.5, 2.5], index=["b", "a"]), 1.8)
    assert list(s.index) == ["a", "b"] and s.name == "r"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: r_from_sd_change(2.0, 2.5, 5.0), r"sd_pre, sd_post and sd_change give a pre-post correlation r outside \[-1, 1\] at positions \[0\]"),
        (lambda: r_from_sd_change(2.0, 2.5, [1.0, 0.1]), r"outside \[-1, 1\] at positions \[1\]"),
        (lambda: r_from_paired_t(2.0, 2.5, 1.0, 0.1, 10), r"sd_pre, sd_post and mean_change, t, n give .* outside \[-1, 1\]"),
        (lambda: r_from_paired_p(2.0, 2.5, 1.0, 1e-12, 10), r"mean_change, p, n give .* outside"),
        (lambda: r_from_sd_change(-2.0, 2.5, 1.0), r"sd_pre must be > 0"),
        (lambda: r_from_sd_change(2.0, 2.5, 0.0), r"sd_change must be > 0"),
        (lambda: r_from_paired_t(2.0, 2.5, 0.0, 2.0, 10), r"mean_change must be non-zero"),
        (lambda: r_from_paired_t(2.0, 2.5, 1.0, 0.0, 10), r"t must be non-zero"),
        (lambda: r_from_paired_t(2.0, 2.5, 1.0, 2.0, 10.5), r"n must be a whole number"),
        (lambda: r_from_paired_p(2.0, 2.5, 1.0, 1.0, 10), r"p must be < 1"),
        (lambda: r_from_paired_p(2.0, 2.5, 1.0, 0.0, 10), r"p must be a two-sided p-value"),
    ],
)
def test_bad_input_names_the_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- study_effects: r per row


def _row(i: int, **extra) -> dict:
    """Case i of the R fixture as a post_vs_pre row of outcomes.csv (group 1 = post, group 2 = pre)."""
    return dict(study_id="s", outcome="o", comparison="post_vs_pre", n1=int(C["n"][i]), n2=int(C["n"][i]),
                mean1=C["m_post"][i], sd1=C["sd_post"][i], mean2=C["m_pre"][i], sd2=C["sd_pre"][i], **extra)


def _effects(*rows, **kw):
    from meta.review.inputs.study_effects import study_effects

    return study_effects(pd.DataFrame(list(rows)), **kw)


@pytest.mark.parametrize("i", range(len(C["n"])))
@pytest.mark.parametrize("how", ["se", "ci", "t", "p"])
def test_study_effects_derives_r_from_the_row_and_matches_metafor_smcr(i, how):
    extra = {
        "se": dict(mean_diff=C["mean_change"][i], se=C["sd_change"][i] / np.sqrt(C["n"][i])),
        "t": dict(effect_size=C["t"][i], effect_size_type="t"),
        "p": dict(p_value=C["p"][i], p_operator="="),
    }
    if how == "ci":
        from scipy import stats

        half = stats.t.ppf(0.975, C["n"][i] - 1) * C["sd_change"][i] / np.sqrt(C["n"][i])
        extra["ci"] = dict(mean_diff=C["mean_change"][i], ci_low=C["mean_change"][i] - half,
                           ci_high=C["mean_change"][i] + half, ci_level=0.95)
    got = _effects(_row(i, **extra[how]), r=0.5).iloc[0]  # the assumed r is not used: the row gives its own
    assert got["route"] == "paired" and got["flags"] == "r_derived"
    tol = 1e-9 if how == "p" else 1e-11
    assert got["r"] == pytest.approx(C["r"][i], rel=tol, abs=tol)
    assert got["yi"] == pytest.approx(C["smcr_yi"][i], rel=tol)
    assert got["vi"] == pytest.approx(C["smcr_vi"][i], rel=tol)


def test_study_effects_assumed_r_only_where_the_row_gives_none():
    bound = _row(0, p_value=0.05, p_operator="<")  # an inequality gives no t: nothing derived
    plain = _row(1)
    got = _effects(bound, plain, r=0.5)
    assert list(got["flags"]) == ["r_assumed", "r_assumed"]
    assert (got["r"] == 0.5).all() and (got["route"] == "paired").all()
    none = _effects(plain).iloc[0]
    assert none["route"] == "none" and none["reason"] == "paired design needs r" and np.isnan(none["r"])


def test_study_effects_inconsistent_numbers_fall_back_with_a_reason():
    bad = _row(0, mean_diff=C["mean_change"][0], se=100.0)  # SD of change far larger than sd_pre + sd_post
    got = _effects(bad).iloc[0]
    assert "no r derived from the row" in got["reason"] and "outside [-1, 1]" in got["reason"]
    # the row still has its change_se route (d_z), which needs no r
    assert got["route"] == "change_se"
    assumed = _effects(bad, r=0.5).iloc[0]
    assert assumed["route"] == "paired" and assumed["flags"] == "r_assumed"
