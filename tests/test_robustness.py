"""meta.robustness / meta.verdicts: every verdict under every method of the panel.

Numbers: each row equals pool()/bayes_pool() called directly, and, where the
metafor references already committed cover the case, metafor itself
(tests/fixtures/intervals_reference.json: rma(method=, test=) + predict() on
dat.bcg and others; tests/fixtures/bayes_reference.json: R integrate/uniroot
on the same normal-normal model).  Those fixtures are read, not regenerated.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta.bayes import bayes_pool
from meta.pool import pool
from meta.robustness import COLUMNS, DEFAULT_PANEL, PanelMethod, robustness
from meta.verdicts import VERDICTS, verdict

FIX = Path(__file__).parent / "fixtures"
INTERVALS = {c["name"]: c for c in json.loads((FIX / "intervals_reference.json").read_text())["cases"]}
BAYES = {c["name"]: c for c in json.loads((FIX / "bayes_reference.json").read_text())["cases"]}


def metafor_fit(case: str, method: str, test: str, level: float = 0.95) -> dict:
    (f,) = [f for f in INTERVALS[case]["fits"] if f["method"] == method and f["test"] == test and f["level"] == level]
    return f


# --------------------------------------------------------------------------- the panel is data


def test_default_panel_is_the_brief():
    ids = [p.method_id for p in DEFAULT_PANEL]
    assert ids == ["dl_z", "reml_hksj", "pm_hksj", "fe", "bayes_hn05"]
    dl, reml, pm, fe, by = DEFAULT_PANEL
    assert (dl.method, dl.test) == ("DL", "z")  # primary = the review's method
    assert (reml.method, reml.test) == ("REML", "adhoc") and (pm.method, pm.test) == ("PM", "adhoc")
    assert (fe.method, fe.test) == ("FE", "z")
    assert (by.kind, by.tau_prior, by.tau_scale, by.mu_prior) == ("bayes", "halfnormal", 0.5, None)


# --------------------------------------------------------------------------- rows = pool()/bayes_pool()


@pytest.mark.parametrize("case", ["bcg_logrr", "normand_smd", "bcg_first2", "homogeneous"])
def test_each_row_equals_pool_and_bayes_pool_called_directly(case):
    yi, vi = INTERVALS[case]["yi"], INTERVALS[case]["vi"]
    rob = robustness(yi, vi, direction=-1)
    tab = rob.to_frame().set_index("method_id")
    assert list(rob.to_frame().columns) == list(COLUMNS)
    for pm in DEFAULT_PANEL:
        row = tab.loc[pm.method_id]
        if pm.kind == "bayes":
            b = bayes_pool(yi, vi, tau_prior="halfnormal", tau_scale=0.5)
            want = [b.mu_median, b.mu_ci_low, b.mu_ci_high, b.pred_low, b.pred_high, b.tau_median**2, b.prob_less(0.0)]
            got = row[["estimate", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "prob_direction"]].to_numpy(float)
            np.testing.assert_array_equal(got, want)
            assert math.isnan(row["p"])
        else:
            r = pool(yi, vi, method=pm.method, test=pm.test)
            want = [r.estimate, r.ci_low, r.ci_high, r.pi_low, r.pi_high, r.p, r.tau2]
            got = row[["estimate", "ci_low", "ci_high", "pi_low", "pi_high", "p", "tau2"]].to_numpy(float)
            np.testing.assert_array_equal(got, want)
            assert math.isnan(row["prob_direction"])
        assert row["k"] == len(yi)


@pytest.mark.parametrize("case", ["bcg_logrr", "normand_smd", "bcg_first2", "homogeneous", "molloy_zcor"])
@pytest.mark.parametrize("method_id, method, test", [("dl_z", "DL", "z"), ("reml_hksj", "REML", "adhoc"),
                                                     ("pm_hksj", "PM", "adhoc"), ("fe", "FE", "z")])
def test_frequentist_rows_match_metafor(case, method_id, method, test):
    """rma(yi, vi, method=, test=) + predict() of metafor 3.8.1 (intervals_reference.json)."""
    c = INTERVALS[case]
    row = robustness(c["yi"], c["vi"], direction=1).to_frame().set_index("method_id").loc[method_id]
    ref = metafor_fit(case, method, test)
    atol = 1e-12 if method in ("FE", "DL") else 1e-10  # metafor stops REML/PM within ~1e-12 of the root
    for col in ("estimate", "ci_low", "ci_high", "p", "tau2"):
        np.testing.assert_allclose(row[col], ref[col], rtol=1e-10, atol=atol, err_msg=f"{case} {method_id} {col}")
    if method != "FE":  # metafor predict() gives no PI for FE fits
        np.testing.assert_allclose(row[["pi_low", "pi_high"]].to_numpy(float),
                                   [ref["pis"]["default"]["pi_low"], ref["pis"]["default"]["pi_high"]],
                                   rtol=1e-10, atol=atol, err_msg=f"{case} {method_id} PI")


def test_bayes_row_matches_r_integrate_on_dat_bcg():
    """Half-normal(0.5), uniform mu, 95%: bayes_reference.json case k13_bcg (R integrate + uniroot)."""
    ref = BAYES["k13_bcg_hn0.5_uniform_95"]
    row = robustness(ref["yi"], ref["vi"], direction=-1).to_frame().set_index("method_id").loc["bayes_hn05"]
    tol = 1e-9
    assert row["estimate"] == pytest.approx(ref["mu_median"], rel=tol, abs=tol)
    assert row["ci_low"] == pytest.approx(ref["mu_ci_low"], rel=tol, abs=tol)
    assert row["ci_high"] == pytest.approx(ref["mu_ci_high"], rel=tol, abs=tol)
    assert row["pi_low"] == pytest.approx(ref["pred_low"], rel=tol, abs=tol)
    assert row["pi_high"] == pytest.approx(ref["pred_high"], rel=tol, abs=tol)
    assert row["tau2"] == pytest.approx(ref["tau_median"] ** 2, rel=tol)
    assert row["prob_direction"] == pytest.approx(1 - ref["p_positive"], rel=tol, abs=1e-12)
    up = robustness(ref["yi"], ref["vi"], direction=+1).to_frame().set_index("method_id").loc["bayes_hn05"]
    assert up["prob_direction"] == pytest.approx(ref["p_positive"], rel=tol, abs=1e-12)


@pytest.mark.parametrize("name", ["k2_hn0.5_uniform_95", "k3_hn0.5_uniform_95"])
def test_bayes_row_matches_r_for_two_and_three_studies(name):
    ref = BAYES[name]
    row = robustness(ref["yi"], ref["vi"], direction=-1).to_frame().set_index("method_id").loc["bayes_hn05"]
    for col, key in (("estimate", "mu_median"), ("ci_low", "mu_ci_low"), ("ci_high", "mu_ci_high")):
        assert row[col] == pytest.approx(ref[key], rel=1e-9, abs=1e-9), col


def test_pool_result_input_uses_its_data_and_level():
    c = INTERVALS["normand_smd"]
    res = pool(c["yi"], c["vi"], level=0.9)
    a = robustness(res, direction=-1)
    b = robustness(c["yi"], c["vi"], direction=-1, level=0.9)
    assert a.level == 0.9 and a.to_frame().equals(b.to_frame())
    ref = metafor_fit("normand_smd", "REML", "adhoc", 0.9)
    assert a.to_frame().set_index("method_id").loc["reml_hksj", "ci_low"] == pytest.approx(ref["ci_low"], rel=1e-10)


def test_pandas_series_are_paired_by_label():
    c = INTERVALS["normand_smd"]
    idx = [f"s{i}" for i in range(len(c["yi"]))]
    yi = pd.Series(c["yi"], index=idx)
    vi = pd.Series(c["vi"], index=idx)[::-1]
    assert robustness(yi, vi, direction=-1).to_frame().equals(robustness(c["yi"], c["vi"], direction=-1).to_frame())


# --------------------------------------------------------------------------- holds / fragile


def test_fragile_when_hksj_widens_past_zero_normand():
    """dat.normand1999: DL z excludes 0 (metafor ci.ub = -0.023), REML/PM + HKSJ do not."""
    c = INTERVALS["normand_smd"]
    rob = robustness(c["yi"], c["vi"], direction=-1)
    assert metafor_fit("normand_smd", "DL", "z")["ci_high"] < 0 < metafor_fit("normand_smd", "REML", "adhoc")["ci_high"]
    v = rob.verdicts()
    assert v["dl_z"] == "agrees" and v["reml_hksj"] == "direction only" and v["pm_hksj"] == "direction only"
    assert v["fe"] == "agrees"
    assert rob.holds == sum(x == "agrees" for x in v.values()) and rob.m == 5
    assert rob.fragile and rob.holds_under == f"{rob.holds} of 5"
    assert "fragile" in rob.summary()


def test_not_fragile_when_every_method_agrees_bcg():
    c = INTERVALS["bcg_logrr"]
    rob = robustness(c["yi"], c["vi"], direction=-1)
    assert set(rob.verdicts().values()) == {"agrees"}
    assert rob.holds == 5 and not rob.fragile and rob.holds_under == "5 of 5"


def test_two_studies_hksj_on_t1_is_wide():
    """k = 2: t with 1 df makes the HKSJ interval very wide (metafor bcg_first2)."""
    c = INTERVALS["bcg_first2"]
    rob = robustness(c["yi"], c["vi"], direction=-1)
    v = rob.verdicts()
    assert v["dl_z"] == "agrees" and v["reml_hksj"] == "direction only" and rob.fragile


def test_k1_every_method_gives_the_study_and_insufficient_data():
    rob = robustness([0.3], [0.04], direction=1)
    tab = rob.to_frame()
    assert (tab["verdict"] == "insufficient data").all() and rob.holds == 5 and not rob.fragile
    freq = tab[tab["kind"] == "frequentist"]
    assert (freq["estimate"] == 0.3).all()
    z = 1.959963984540054
    np.testing.assert_allclose(freq["ci_low"], 0.3 - z * 0.2, rtol=1e-12)
    b = bayes_pool([0.3], [0.04])
    assert tab.iloc[-1]["ci_high"] == b.mu_ci_high  # the posterior: the tau prior carries heterogeneity


def test_k1_emits_no_hksj_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        robustness([0.3], [0.04], direction=1)


def test_direction_none_judges_the_primary_finding():
    c = INTERVALS["normand_smd"]
    rob = robustness(c["yi"], c["vi"])
    assert rob.direction == -1 and rob.direction_source == "primary estimate"
    assert rob.verdicts() == robustness(c["yi"], c["vi"], direction=-1).verdicts()


def test_custom_panel_and_bad_arguments():
    c = INTERVALS["normand_smd"]
    panel = (PanelMethod("reml_z", "REML z", "REML z", method="REML"), DEFAULT_PANEL[1])
    rob = robustness(c["yi"], c["vi"], direction=-1, panel=panel)
    assert rob.m == 2 and rob.to_frame()["method_id"].tolist() == ["reml_z", "reml_hksj"]
    with pytest.raises(ValueError, match="direction"):
        robustness(c["yi"], c["vi"], direction=2)
    with pytest.raises(ValueError, match="unique"):
        robustness(c["yi"], c["vi"], panel=(DEFAULT_PANEL[0], DEFAULT_PANEL[0]))
    with pytest.raises(ValueError, match="vi is missing"):
        robustness(c["yi"])
    with pytest.raises(ValueError, match="vi must be > 0"):
        robustness([0.1, 0.2], [0.1, -1.0])
    with pytest.raises(ValueError, match="kind"):
        PanelMethod("x", "x", "x", kind="mcmc")


# --------------------------------------------------------------------------- the verdict rule


@pytest.mark.parametrize(
    "k, est, lo, hi, expected, want",
    [
        (1, 0.5, 0.1, 0.9, 1, "insufficient data"),  # a single study is never a pooled verdict
        (0, math.nan, math.nan, math.nan, 1, "insufficient data"),
        (3, math.nan, math.nan, math.nan, 1, "insufficient data"),
        (3, 0.5, 0.1, 0.9, None, "insufficient data"),  # unreadable expected direction
        (3, 0.5, 0.1, 0.9, 1, "agrees"),
        (3, -0.5, -0.9, -0.1, -1, "agrees"),
        (3, 0.5, -0.1, 1.1, 1, "direction only"),
        (3, 0.5, 0.0, 1.0, 1, "direction only"),  # an interval touching 0 includes it
        (3, -0.5, -0.9, -0.1, 1, "disagrees"),  # opposite sign, whatever the interval
        (3, -0.5, -1.1, 0.1, 1, "disagrees"),
        (3, 0.0, -0.5, 0.5, 1, "disagrees"),  # an estimate of exactly 0 has no sign
        (3, 0.1, -0.5, 0.7, 0, "agrees"),  # claim of no difference: interval includes 0
        (3, 0.6, 0.2, 1.0, 0, "disagrees"),
        (2, 0.5, 0.1, 0.9, 1, "agrees"),
    ],
)
def test_verdict_rule_table(k, est, lo, hi, expected, want):
    assert verdict(k, est, lo, hi, expected) == want
    assert want in VERDICTS


def test_verdict_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match="expected"):
        verdict(3, 0.5, 0.1, 0.9, 2)


def _old_classify(k, estimate, ci_low, ci_high, expected):
    """The rule as meta.review.outputs.report.classify stated it before it moved to meta.verdicts (kept verbatim)."""
    if k < 2 or estimate is None or not np.isfinite(estimate):
        return "insufficient data"
    excludes0 = ci_low > 0 or ci_high < 0
    if expected is None:
        return "insufficient data"
    if expected == 0:
        return "disagrees" if excludes0 else "agrees"
    if np.sign(estimate) != expected:
        return "disagrees"
    return "agrees" if excludes0 else "direction only"


def test_verdict_equals_the_old_classify_and_claims_uses_it():
    """The rule moved here unchanged: same answers as the old report.classify on a grid; meta.review.running.claims.classify is it."""
    from meta.review.running import claims

    grid = [(k, e, lo, hi, x) for k in (0, 1, 2, 5) for e in (-0.4, 0.0, 0.4, math.nan)
            for lo, hi in ((-0.8, -0.1), (-0.6, 0.6), (0.1, 0.8), (0.0, 0.5)) for x in (-1, 0, 1, None)]
    for args in grid:
        assert verdict(*args) == _old_classify(*args) == claims.classify(*args), args
    assert claims.VERDICTS == VERDICTS


def test_judge_rejudges_without_refitting():
    c = INTERVALS["normand_smd"]
    rob = robustness(c["yi"], c["vi"])  # judged against the primary estimate (negative)
    up = rob.judge(+1)
    assert up.fits == rob.fits and up.direction == 1 and up.direction_source == "claim"
    assert set(up.verdicts().values()) == {"disagrees"} and not up.fragile
    assert up.to_frame().equals(robustness(c["yi"], c["vi"], direction=1).to_frame())
    assert rob.judge(None).to_frame().equals(rob.to_frame())
