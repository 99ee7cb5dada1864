"""meta.bias against metafor 3.8.1 (tests/fixtures/bias_reference.json, from tests/r/bias_reference.R)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta.bias import EggerResult, _sei_slope, egger, trimfill
from meta.pool import PoolResult, pool

FIXTURE = Path(__file__).parent / "fixtures" / "bias_reference.json"
REF = json.loads(FIXTURE.read_text())

RTOL = 1e-8


def close(actual, expected, rtol=RTOL, atol=0.0):
    """Relative comparison; ``None`` in the fixture is R's NA/NaN."""
    expected = np.nan if expected is None else expected
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def test_fixture_is_from_metafor_381():
    assert REF["metafor_version"] == "3.8.1"
    assert len(REF["egger"]) >= 6


# --------------------------------------------------------------------------
# egger
# --------------------------------------------------------------------------
@pytest.mark.parametrize("ref", REF["egger"], ids=lambda r: r["dataset"])
def test_egger_matches_metafor_regtest_lm(ref):
    """Matches metafor regtest(yi, vi, model = "lm") to 1e-8 (relative)."""
    res = egger(ref["yi"], ref["vi"])
    assert res.k == len(ref["yi"])
    assert res.df == ref["dfs"] == res.k - 2
    close(res.t, ref["zval"])
    close(res.p, ref["pval"])
    close(res.intercept, ref["est"])
    close(res.intercept, ref["coef_intrcpt"])
    close(res.intercept_se, ref["se_intrcpt"])
    close(res.ci_low, ref["ci_lb"])
    close(res.ci_high, ref["ci_ub"])
    close(res.slope, ref["coef_sei"])
    close(res.slope_se, ref["se_sei"])


@pytest.mark.parametrize("ref", REF["egger"], ids=lambda r: r["dataset"])
def test_egger_is_egger_1997_snd_regression(ref):
    """Egger et al. (1997): lm(yi/sei ~ 1/sei); its intercept and t are our slope and t."""
    res = egger(ref["yi"], ref["vi"])
    close(res.slope, ref["egger1997_intercept"])
    close(res.slope_se, ref["egger1997_intercept_se"])
    close(res.t, ref["egger1997_t"])
    close(res.intercept, ref["egger1997_slope"])


def test_egger_accepts_series_and_is_frozen():
    ref = REF["egger"][0]
    res = egger(pd.Series(ref["yi"]), pd.Series(ref["vi"]))
    assert isinstance(res, EggerResult)
    with pytest.raises(AttributeError):
        res.t = 0.0
    frame = res.to_frame()
    assert frame.shape[0] == 1
    assert {"k", "intercept", "intercept_se", "slope", "slope_se", "t", "df", "p"} <= set(frame.columns)
    close(frame.loc[0, "t"], ref["zval"])
    text = res.summary()
    assert f"t = {ref['zval']:.4f}, df = {ref['dfs']}" in text
    assert f"b = {ref['est']:.4f}" in text


def test_egger_level_changes_only_the_ci():
    ref = REF["egger"][0]
    r95 = egger(ref["yi"], ref["vi"])
    r90 = egger(ref["yi"], ref["vi"], level=0.90)
    assert r90.t == r95.t and r90.intercept == r95.intercept
    assert r95.ci_low < r90.ci_low < r90.intercept < r90.ci_high < r95.ci_high


def test_egger_needs_three_studies():
    with pytest.raises(ValueError, match="at least 3 studies"):
        egger([0.1, 0.2], [0.01, 0.02])
    with pytest.raises(ValueError, match="at least 3 studies.*k = 0"):
        egger([], [])
    res = egger([0.1, 0.2, 0.5], [0.01, 0.02, 0.04])  # k = 3 works, df = 1
    assert res.df == 1 and math.isfinite(res.t)


@pytest.mark.parametrize(
    "yi, vi, match",
    [
        ([0.1, 0.2, 0.3], [0.01, 0.02], "same length"),
        ([0.1, np.nan, 0.3, 0.4], [0.01, 0.02, 0.03, 0.04], r"^egger: yi must be finite.*positions.*: 1$"),
        ([0.1, 0.2, 0.3, 0.4], [0.01, 0.02, np.nan, 0.04], r"^egger: vi must be finite.*positions.*: 2$"),
        ([0.1, 0.2, 0.3, 0.4], [0.01, 0.0, 0.03, -1.0], r"^egger: vi must be > 0.*positions.*: 1, 3\b"),
        ([0.1, 0.2, 0.3, 0.4], [0.02, 0.02, 0.02, 0.02], "not of full rank"),
        ([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], None),
    ],
)
def test_egger_bad_input_names_argument(yi, vi, match):
    if match is None:
        with pytest.raises(ValueError, match="level"):
            egger(yi, vi, level=100)
    else:
        with pytest.raises(ValueError, match=match):
            egger(yi, vi)


# --------------------------------------------------------------------------
# trimfill
# --------------------------------------------------------------------------
def _tf_id(r):
    side = f"-side={r['side_arg']}" if r["side_arg"] else ""
    return f"{r['dataset']}-{r['method']}-{r['estimator']}{side}"


def _check_fit(fit, ref, method):
    """A PoolResult against a metafor rma.uni fit (REML/PM were converged tightly in R)."""
    assert fit.k == ref["k"]
    assert fit.method == method
    close(fit.estimate, ref["estimate"])
    close(fit.se, ref["se"])
    close(fit.ci_low, ref["ci_lb"])
    close(fit.ci_high, ref["ci_ub"])
    close(fit.stat, ref["zval"])
    close(fit.p, ref["pval"])
    close(fit.tau2, ref["tau2"], atol=1e-12)
    close(fit.q, ref["QE"])
    close(fit.q_p, ref["QEp"])
    close(fit.i2, ref["I2"], atol=1e-10)
    close(fit.h2, ref["H2"])


@pytest.mark.parametrize("ref", REF["trimfill"], ids=_tf_id)
def test_trimfill_matches_metafor(ref):
    """k0, side, se(k0), filled studies and both pooled fits match metafor trimfill()."""
    res = trimfill(ref["yi"], ref["vi"], method=ref["method"], estimator=ref["estimator"], side=ref["side_arg"])
    k = len(ref["yi"])
    assert res.k0 == ref["k0"]
    assert res.side == ref["side"]
    assert len(ref["yi_all"]) == k + res.k0 == res.result.k
    close(res.se_k0, ref["se_k0"])
    close(res.p_k0, ref["p_k0"])
    assert res.filled_yi.shape == res.filled_vi.shape == (res.k0,)
    close(res.filled_yi, ref["yi_all"][k:], atol=1e-15)
    close(res.filled_vi, ref["vi_all"][k:])
    frame = res.to_frame()
    assert frame["filled"].tolist() == ref["fill"]
    close(frame["yi"].to_numpy(), ref["yi_all"], atol=1e-15)
    close(frame["vi"].to_numpy(), ref["vi_all"])
    _check_fit(res.original, ref["original"], ref["method"])
    _check_fit(res.result, ref["result"], ref["method"])


@pytest.mark.parametrize("ref", REF["trimfill"], ids=_tf_id)
def test_trimfill_of_a_result_matches_metafor_trimfill_res(ref):
    """metafor trimfill(res): the method comes from the fitted result, not a second argument."""
    fit = pool(ref["yi"], ref["vi"], method=ref["method"])
    res = trimfill(fit, estimator=ref["estimator"], side=ref["side_arg"])
    assert res.method == ref["method"] and res.k0 == ref["k0"] and res.side == ref["side"]
    close(res.filled_yi, ref["yi_all"][len(ref["yi"]):], atol=1e-15)
    _check_fit(res.result, ref["result"], ref["method"])
    close(res.result.yi, ref["yi_all"], atol=1e-15)  # the filled fit carries the filled studies
    assert res.result.slab[len(ref["yi"]):] == tuple(f"Filled {i + 1}" for i in range(res.k0))
    with pytest.raises(ValueError, match="differs from the result's method"):
        trimfill(fit, method="FE" if ref["method"] != "FE" else "DL")


@pytest.mark.parametrize("ref", REF["egger"], ids=lambda r: r["dataset"])
def test_egger_of_a_result_matches_metafor_regtest_res(ref):
    """metafor regtest(res, model = "lm"): the studies come from the fitted result; its level by default."""
    fit = pool(ref["yi"], ref["vi"], method="REML")
    assert egger(fit) == egger(ref["yi"], ref["vi"])
    close(egger(fit).ci_low, ref["ci_lb"])
    assert egger(pool(ref["yi"], ref["vi"], level=0.9)).level == 0.9


@pytest.mark.parametrize("ref", REF["side_fit"], ids=lambda r: f"{r['dataset']}-{r['method']}")
def test_side_regression_matches_metafor_rma_mods_sei(ref):
    """The side is chosen from rma(yi, vi, mods = sqrt(vi), method): coefficient and tau2 match."""
    slope, tau2 = _sei_slope(np.asarray(ref["yi"]), np.asarray(ref["vi"]), ref["method"])
    close(slope, ref["sei"])
    close(tau2, ref["tau2"], atol=1e-12)


def test_side_depends_on_method_as_in_metafor():
    """dat.konstantopoulos2011: the sei slope is > 0 under FE but < 0 under DL."""
    refs = {r["method"]: r for r in REF["trimfill"] if r["dataset"] == "konstantopoulos2011"}
    assert refs["FE"]["side"] == "left" and refs["DL"]["side"] == "right"
    for method, ref in refs.items():
        assert trimfill(ref["yi"], ref["vi"], method=method).side == ref["side"]


def test_trimfill_result_is_meta_pool_on_observed_plus_filled():
    ref = next(r for r in REF["trimfill"] if r["dataset"] == "hackshaw1998" and r["method"] == "DL")
    res = trimfill(ref["yi"], ref["vi"], method="DL")
    again = pool(np.r_[ref["yi"], res.filled_yi], np.r_[ref["vi"], res.filled_vi], method="DL")
    assert isinstance(res.result, PoolResult)
    assert res.result.estimate == again.estimate and res.result.tau2 == again.tau2
    assert res.original.estimate == pool(ref["yi"], ref["vi"], method="DL").estimate
    text = res.summary()
    assert "Estimated number of missing studies on the left side: 7 (SE = 4.0408)" in text
    assert f"k = {len(ref['yi']) + 7}" in text


def test_trimfill_k0_zero_returns_original_fit():
    ref = next(r for r in REF["trimfill"] if r["k0"] == 0 and r["side_arg"] is None)
    res = trimfill(ref["yi"], ref["vi"], method=ref["method"], estimator=ref["estimator"])
    assert res.k0 == 0 and res.filled_yi.size == 0
    assert res.result == res.original
    assert not res.to_frame()["filled"].any()


def test_trimfill_keeps_series_labels_and_is_frozen():
    ref = next(r for r in REF["trimfill"] if r["dataset"] == "bcg" and r["method"] == "FE" and r["side_arg"] is None)
    labels = [f"trial{i + 1}" for i in range(len(ref["yi"]))]
    res = trimfill(pd.Series(ref["yi"], index=labels), pd.Series(ref["vi"], index=labels), method="FE")
    frame = res.to_frame()
    assert frame["study"].tolist() == labels + [f"Filled {i + 1}" for i in range(res.k0)]
    close(frame["sei"].to_numpy(), np.sqrt(ref["vi_all"]))
    with pytest.raises(AttributeError):
        res.k0 = 0
    with pytest.raises(ValueError):  # arrays are read-only copies ...
        res.filled_yi[0] = 0.0
    yi = np.array(ref["yi"])
    trimfill(yi, ref["vi"], method="FE")
    yi[0] = 1.0  # ... and the caller's array stays writable and untouched


@pytest.mark.parametrize("ref", REF["trimfill_errors"], ids=lambda r: f"{r['dataset']}-{r['method']}-{r['estimator']}")
def test_trimfill_refuses_where_metafor_stops(ref):
    """metafor stops ('missing value where TRUE/FALSE needed'); we say why."""
    match = {"Q0_undefined": "Q0.*undefined", "equal_vi": "all vi are equal.*side='left'"}[ref["reason"]]
    with pytest.raises(ValueError, match=match):
        trimfill(ref["yi"], ref["vi"], method=ref["method"], estimator=ref["estimator"])


def test_trimfill_maxiter():
    ref = next(r for r in REF["trimfill"] if r["dataset"] == "hackshaw1998")
    with pytest.raises(ValueError, match="did not converge"):
        trimfill(ref["yi"], ref["vi"], method=ref["method"], maxiter=1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(yi=[0.1, 0.2, 0.3], vi=[0.01, 0.02]), "same length"),
        (dict(yi=[0.1, 0.2, np.nan], vi=[0.01, 0.02, 0.03]), r"^trimfill: yi must be finite.*positions.*: 2$"),
        (dict(yi=[0.1, 0.2, 0.3], vi=[0.01, -0.02, 0.03]), r"^trimfill: vi must be > 0.*positions.*: 1\b"),
        (dict(yi=[0.1, 0.2, 0.3], vi=[0.01, 0.02, np.inf]), r"^trimfill: vi must be finite.*positions.*: 2$"),
        (dict(yi=[0.1], vi=[0.01]), "at least 2 studies"),
        (dict(yi=[], vi=[]), "at least 2 studies, got k = 0"),
        (dict(yi=[0.1, 0.5], vi=[0.04, 0.09]), "k = 2 studies.*side='left'"),
        (dict(yi=[0.1, 0.2, 0.3], vi=[0.01, 0.02, 0.03], method="ML"), "method must be one of"),
        (dict(yi=[0.1, 0.2, 0.3], vi=[0.01, 0.02, 0.03], estimator="L1"), "estimator must be one of"),
        (dict(yi=[0.1, 0.2, 0.3], vi=[0.01, 0.02, 0.03], side="up"), "side must be"),
    ],
)
def test_trimfill_bad_input_names_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        trimfill(**kwargs)
