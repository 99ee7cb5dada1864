"""Tests (test=), prediction intervals (pi=), Q-profile CIs (meta.confint) and
the common-tau2 subgroup model against R metafor 3.8.1 (reference values
from tests/r/intervals_reference.R -> tests/fixtures/intervals_reference.json).

Tolerances: tests and PIs relative 1e-10 (absolute 1e-12 for FE/DL, 1e-10
for the iterative REML/PM, for values near 0); Q-profile CIs 1e-8 (brief: 1e-6); common-tau2 subgroups 1e-8 (DL, FE)
and 1e-6 (REML, PM).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from meta import _qprofile
from meta.confint import ConfintResult, confint, q_profile
from meta.pool import PoolResult, pool, pool_many, subgroups

FIXTURE = Path(__file__).parent / "fixtures" / "intervals_reference.json"
REF = json.loads(FIXTURE.read_text())
CASES = {c["name"]: c for c in REF["cases"]}
TEST_NAME = {"z": "z", "knha": "hksj", "adhoc": "adhoc", "t": "t"}


from _reference import arr  # noqa: E402  (tests/ is on sys.path under pytest)


def close(ours, ref, what, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(arr(ours), arr(ref), rtol=rtol, atol=atol, err_msg=what)


def atol(method):
    """Absolute tolerance: metafor stops REML (threshold 1e-12) and PM
    (uniroot tol 1e-12) at tau2 within ~1e-12 of the root, which shows in
    values that cancel to near 0 (a PI bound of 0.0018)."""
    return 1e-12 if method in ("FE", "DL") else 1e-10


def quiet_pool(*a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pool(*a, **kw)


FIT_PARAMS = [
    pytest.param(name, i, id=f"{name}-{f['method']}-{f['test']}-{f['level']}")
    for name, c in CASES.items()
    for i, f in enumerate(c["fits"])
]


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name,i", FIT_PARAMS)
def test_test_options_match_metafor_rma_test(name, i):
    """z, knha (= hksj), adhoc and t match metafor rma(test=) to 1e-10."""
    case, ref = CASES[name], CASES[name]["fits"][i]
    res = quiet_pool(case["yi"], case["vi"], method=ref["method"], test=TEST_NAME[ref["test"]], level=ref["level"])
    for f in ["estimate", "se", "stat", "p", "ci_low", "ci_high", "tau2"]:
        close(getattr(res, f), ref[f], f"{name} {ref['method']} {ref['test']} {ref['level']}: {f}", atol=atol(ref["method"]))
    assert res.test == ("z" if ref["test_used"] == "z" else TEST_NAME[ref["test"]])


@pytest.mark.parametrize("name,i", [p for p in FIT_PARAMS if CASES[p.values[0]]["fits"][p.values[1]]["method"] != "FE"])
@pytest.mark.parametrize("pi", ["default", "simple", "riley", "t"])
def test_prediction_intervals_match_metafor_predict_pi_type(name, i, pi):
    """pi= with metafor's predict(pi.type=) names, under every test, to 1e-10."""
    case, ref = CASES[name], CASES[name]["fits"][i]
    res = quiet_pool(case["yi"], case["vi"], method=ref["method"], test=TEST_NAME[ref["test"]], level=ref["level"], pi=pi)
    close(res.pi_low, ref["pis"][pi]["pi_low"], f"{name} {ref['method']} {ref['test']} {pi}: pi_low", atol=atol(ref["method"]))
    close(res.pi_high, ref["pis"][pi]["pi_high"], f"{name} {ref['method']} {ref['test']} {pi}: pi_high", atol=atol(ref["method"]))


def test_option_names_are_case_insensitive_and_take_metafor_spellings():
    c = CASES["bcg_logrr"]
    a = pool(c["yi"], c["vi"], test="KNHA", pi="Riley")
    b = pool(c["yi"], c["vi"], test="hksj", pi="riley")
    assert a.test == b.test == "hksj" and a.pi == b.pi == "riley"
    assert (a.ci_low, a.pi_low) == (b.ci_low, b.pi_low)
    z = pool(c["yi"], c["vi"], pi="Z")
    assert z.pi == "default" and z.pi_low == pool(c["yi"], c["vi"]).pi_low
    assert pool(c["yi"], c["vi"], test="AdHoc").test == "adhoc"


@pytest.mark.parametrize(
    "kw,match", [(dict(test="kh"), "test must be one of"), (dict(pi="hts"), "pi must be one of"), (dict(test=1), "test must be")]
)
def test_unknown_test_or_pi_names_what_is_valid(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        pool([0.1, 0.2, 0.4], [0.1, 0.1, 0.1], **kw)
    assert "'z'" in str(err.value) or "'default'" in str(err.value)


def test_adhoc_interval_is_never_narrower_than_the_unadjusted_t_interval():
    """adhoc = knha with s2w truncated at 1 (metafor: s2w[s2w < 1] <- 1)."""
    for c in CASES.values():
        if len(c["yi"]) < 2:
            continue
        for m in ("DL", "REML", "PM"):
            ad = pool(c["yi"], c["vi"], method=m, test="adhoc")
            t = pool(c["yi"], c["vi"], method=m, test="t")
            kh = pool(c["yi"], c["vi"], method=m, test="hksj")
            assert ad.se == pytest.approx(max(t.se, kh.se), rel=1e-12)
            assert ad.ci_high - ad.ci_low >= t.ci_high - t.ci_low - 1e-12


def test_t_tests_fall_back_to_z_for_k1_with_a_warning():
    for test in ("adhoc", "t", "knha"):
        with pytest.warns(UserWarning, match="k >= 2"):
            res = pool([0.5], [0.1], test=test)
        assert res.test == "z" and res.ci_low == pytest.approx(0.5 - 1.959963984540054 * math.sqrt(0.1), rel=1e-12)


def test_summary_names_the_test_and_the_prediction_interval():
    c = CASES["bcg_logrr"]
    text = pool(c["yi"], c["vi"], test="adhoc", pi="riley").summary()
    assert "tval" in text and "df" in text and "test = adhoc" in text and "pi.type='riley'" in text and "k-2 df" in text
    assert "t, k-2 df (Higgins et al. 2009)" in pool(c["yi"], c["vi"], pi="higgins").summary()


@pytest.mark.parametrize("pi", ["default", "simple", "riley", "t", "higgins"])
@pytest.mark.parametrize("test", ["z", "hksj", "adhoc", "t"])
def test_pool_many_agrees_with_pool_for_every_test_and_pi(test, pi):
    rng = np.random.default_rng(7)
    Y = rng.normal(0.2, 0.4, (30, 6))
    V = rng.uniform(0.02, 0.3, (30, 6))
    Y[::4, 4:] = np.nan  # ragged rows, k = 4
    Y[1, 1:] = np.nan  # k = 1
    Y[2, 2:] = np.nan  # k = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = pool_many(Y, V, method="DL", test=test, pi=pi, engine="numpy")
        engines = [df]
        if test == "z" and pi != "simple":
            try:
                engines.append(pool_many(Y, V, method="DL", test=test, pi=pi, engine="numba"))
            except ValueError:  # numba not installed
                pass
        for out in engines:
            for r in range(Y.shape[0]):
                keep = ~np.isnan(Y[r])
                res = pool(Y[r, keep], V[r, keep], method="DL", test=test, pi=pi)
                for col in ("ci_low", "ci_high", "pi_low", "pi_high", "p"):
                    np.testing.assert_allclose(out[col].iloc[r], getattr(res, col), rtol=1e-10, atol=1e-13, err_msg=f"{col} row {r}")


# --------------------------------------------------------------------------- Q-profile


CI_PARAMS = [
    pytest.param(name, i, id=f"{name}-{q['method']}-{q['level']}")
    for name, c in CASES.items()
    for i, q in enumerate(c.get("confint", []))
]


@pytest.mark.parametrize("name,i", CI_PARAMS)
def test_q_profile_ci_matches_metafor_confint(name, i):
    """tau2, tau, I2, H2 rows of metafor confint() (tol = 1e-12) to 1e-8,
    bounds at the search-interval ends and the null set flagged as metafor."""
    case, ref = CASES[name], CASES[name]["confint"][i]
    res = confint(case["yi"], case["vi"], method=ref["method"], level=ref["level"])
    assert isinstance(res, ConfintResult)
    for f in ("estimate", "ci_low", "ci_high"):
        close(getattr(res, f), ref[f], f"{name} {ref['method']} {ref['level']}: {f}", rtol=1e-8, atol=1e-10)
    assert (res.ci_null, res.lb_sign, res.ub_sign) == (ref["ci_null"], ref["lb_sign"], ref["ub_sign"])
    frame = res.to_frame()
    assert list(frame.index) == ["tau2", "tau", "I2(%)", "H2"] and list(frame.columns) == ["estimate", "ci_low", "ci_high"]
    assert res.tau2_low == frame.loc["tau2", "ci_low"] and res.tau2_high == frame.loc["tau2", "ci_high"]


def test_q_profile_ci_does_not_depend_on_the_tau2_estimator():
    c = CASES["bcg_logrr"]
    a, b = (confint(c["yi"], c["vi"], method=m) for m in ("DL", "PM"))
    assert (a.tau2_low, a.tau2_high) == pytest.approx((b.tau2_low, b.tau2_high), rel=1e-12)
    assert a.estimate[0] != b.estimate[0]


def test_confint_summary_prints_like_metafor():
    c = CASES["homogeneous"]
    text = confint(c["yi"], c["vi"]).summary()
    assert "<0.0000" in text and "null/empty set" in text and "Q-profile" in text
    c = CASES["bcg_first2"]
    text = confint(c["yi"], c["vi"]).summary()
    assert ">100.0000" in text and "null" not in text
    c = CASES["bcg_logrr"]
    lines = confint(c["yi"], c["vi"]).summary().splitlines()
    assert lines[2].split() == ["estimate", "ci.lb", "ci.ub"] and lines[3].startswith("tau^2")


def _with_data(res, yi, vi):
    """A PoolResult that carries yi and vi (as the PoolResult of meta.pool
    will); a subclass so that the test does not depend on those fields."""

    @dataclasses.dataclass(frozen=True)
    class WithData(PoolResult):
        yi: object = None
        vi: object = None

    kw = {f.name: getattr(res, f.name) for f in dataclasses.fields(res) if f.name not in ("yi", "vi")}
    return WithData(**kw, yi=np.asarray(yi), vi=np.asarray(vi))


def test_pool_result_confint_method_and_summary_line():
    c = CASES["bcg_logrr"]
    ref = next(q for q in c["confint"] if q["method"] == "REML" and q["level"] == 0.9)
    res = _with_data(pool(c["yi"], c["vi"], method="REML", level=0.9), c["yi"], c["vi"])
    got = res.confint()
    close(got.ci_low, ref["ci_low"], "ci_low", rtol=1e-8)
    close(got.ci_high, ref["ci_high"], "ci_high", rtol=1e-8)
    assert got.level == 0.9 and got.method == "REML"
    assert res.confint(level=0.95).level == 0.95
    close(confint(res).ci_high, ref["ci_high"], "confint(res)", rtol=1e-8)
    text = res.summary()
    assert f"90% CI for tau^2 (Q-profile): {ref['ci_low'][0]:.4f} to {ref['ci_high'][0]:.4f}" in text
    assert text.index("H^2 (total") < text.index("CI for tau^2") < text.index("Test for Heterogeneity")
    fe = _with_data(pool(c["yi"], c["vi"], method="FE"), c["yi"], c["vi"])
    assert "Q-profile" not in fe.summary()
    assert "Q-profile" in pool(c["yi"], c["vi"]).summary()  # pool() results carry their yi and vi


def test_confint_rejects_fe_k1_and_results_without_data():
    c = CASES["bcg_logrr"]
    with pytest.raises(ValueError, match="no random-effects component"):
        confint(c["yi"], c["vi"], method="FE")
    with pytest.raises(ValueError, match="k >= 2"):
        confint([0.1], [0.1])
    with pytest.raises(ValueError, match="does not carry its yi and vi"):
        confint(dataclasses.replace(pool(c["yi"], c["vi"]), yi=None, vi=None))  # a result built by hand
    with pytest.raises(ValueError, match="yi and vi"):
        confint(c["yi"])
    with pytest.raises(ValueError, match="level"):
        confint(c["yi"], c["vi"], level=100)
    assert confint(c["yi"], c["vi"], level=95) == confint(c["yi"], c["vi"], level=0.95)  # metafor's level=95


def test_q_profile_upper_bound_at_search_limit_and_both_bounds_above():
    # Q(tau2_max) above both quantiles: both bounds are tau2_max (metafor ">")
    y = np.array([-1000.0, 1000.0, 0.0])
    v = np.array([1e-4, 1e-4, 1e-4])
    lo, hi, ls, us, null, tmax = q_profile(y, v, tau2=0.0)
    assert (lo, hi, ls, us, null, tmax) == (100.0, 100.0, ">", ">", False, 100.0)
    assert _qprofile._gen_q(y, v, 100.0) > 7.38  # chi2_{0.975, 2}


# --------------------------------------------------------------------------- subgroups


SG_PARAMS = [
    pytest.param(name, i, id=f"{name}-{s['method']}")
    for name, c in CASES.items()
    for i, s in enumerate(c.get("common", []))
]


@pytest.mark.parametrize("name,i", SG_PARAMS)
def test_common_tau2_subgroups_match_metafor_mods_factor(name, i):
    """tau2="common" = metafor rma(yi, vi, mods = ~ factor(group)): tau2, QE,
    QM (df = G - 1), residual I2/H2, and the subgroup estimates of
    ~ 0 + factor(group); 1e-8 (FE, DL) / 1e-6 (REML, PM)."""
    case, ref = CASES[name], CASES[name]["common"][i]
    rtol = 1e-8 if ref["method"] in ("FE", "DL") else 1e-6
    res = subgroups(case["yi"], case["vi"], case["groups"], method=ref["method"], tau2="common")
    assert res.tau2_mode == "common" and list(res.groups) == ref["labels"]
    for ours, theirs in [("tau2_common", "tau2"), ("qe", "qe"), ("qe_p", "qe_p"), ("q_between", "qm"),
                         ("q_between_p", "qm_p"), ("residual_i2", "i2"), ("residual_h2", "h2")]:
        close(getattr(res, ours), ref[theirs], f"{name} {ref['method']}: {ours}", rtol=rtol, atol=1e-10)
    assert res.q_between_df == ref["qm_df"] and res.qe_df == ref["qe_df"]
    close(ref["tau2_0"], ref["tau2"], "metafor: tau2 of ~ 0 + factor = tau2 of ~ factor", rtol=1e-8, atol=1e-12)
    for f in ("estimate", "se", "stat", "p", "ci_low", "ci_high"):
        close([getattr(r, f) for r in res.groups.values()], ref[f], f"{name} {ref['method']}: {f}", rtol=rtol, atol=1e-10)
    for r in res.groups.values():
        assert r.tau2 == res.tau2_common
        assert r.weights.sum() == pytest.approx(100.0)


def test_separate_tau2_stays_the_default_and_differs_from_common():
    c = CASES["bcg_logrr"]
    sep = subgroups(c["yi"], c["vi"], c["groups"], method="DL")
    assert sep.tau2_mode == "separate" and math.isnan(sep.tau2_common)
    com = subgroups(c["yi"], c["vi"], c["groups"], method="DL", tau2="Common")
    assert com.q_between != pytest.approx(sep.q_between)
    text = com.summary()
    assert "QM(df = 2)" in text and "Residual heterogeneity" in text and "QE(df = 10)" in text
    assert "Q_between(df = 2)" in sep.summary()


def test_common_tau2_bad_options():
    c = CASES["bcg_logrr"]
    with pytest.raises(ValueError, match="tau2 must be one of"):
        subgroups(c["yi"], c["vi"], c["groups"], tau2="pooled")
    with pytest.raises(ValueError, match='use pi="default"'):
        subgroups(c["yi"], c["vi"], c["groups"], tau2="common", test="hksj", pi="t")
    with pytest.raises(ValueError, match="more studies"):
        subgroups([0.1, 0.2], [0.1, 0.1], ["a", "b"], tau2="common")


@pytest.mark.parametrize("method", ["ML", "HE", "HS", "SJ", "EB"])
def test_confint_of_every_tau2_estimator_has_the_estimator_free_q_profile_bounds(method):
    # Viechtbauer 2007: the Q-profile interval does not depend on the estimator; only the
    # estimate column does (metafor confint(rma(method=)) prints the same bounds for every method)
    c = CASES["bcg_logrr"]
    ref = next(q for q in c["confint"] if q["method"] == "REML" and q["level"] == 0.95)
    res = pool(c["yi"], c["vi"], method=method)
    got = res.confint()
    close(got.ci_low, ref["ci_low"], "ci_low", rtol=1e-8)
    close(got.ci_high, ref["ci_high"], "ci_high", rtol=1e-8)
    assert got.method == method and got.estimate[0] == res.tau2
