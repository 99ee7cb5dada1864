"""Every tau2 estimator (FE, DL, REML, PM, ML, HE, HS, SJ, EB) against R
metafor 3.8.1 ``rma(method=)`` (tests/r/estimators_reference.R ->
tests/fixtures/estimators_reference.json), and ML/REML as the global
maximum of the (restricted) likelihood over tau2 >= 0.

Tolerances: relative 1e-8 for the closed forms (FE, DL, HE, HS, SJ), 1e-6 for
the iterative estimators (REML, ML, PM, EB); absolute 1e-12 / 1e-8 for values
that are 0.  Where metafor's Fisher scoring stops at tau2 = 0 below a higher
interior maximum, the reference is the maximum of metafor's own ``logLik()``
over tau2 (a dense grid refined by R's ``optimize``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from meta import _estimators as E
from meta.pool import cumulative, leave_one_out, pool, pool_many, subgroups

REF = json.loads((Path(__file__).parent / "fixtures" / "estimators_reference.json").read_text())
CASES = {c["name"]: c for c in REF["cases"]}
METHODS = REF["methods"]
CLOSED = ("FE", "DL", "HE", "HS", "SJ")
from _reference import FIELDS, STEP_FIELDS, arr  # noqa: E402  (tests/ is on sys.path under pytest)


def tol(method):
    return dict(rtol=1e-8, atol=1e-12) if method in CLOSED else dict(rtol=1e-6, atol=1e-8)


def close(ours, ref, method, what):
    np.testing.assert_allclose(arr(ours), arr(ref), err_msg=what, **tol(method))


def metafor_stuck(case, method):
    """metafor's fit is at tau2 = 0 while its logLik has a higher interior maximum."""
    prof = case.get("profile", {}).get(method)
    fit = next(f for f in case["fits"] if f["method"] == method)
    return prof is not None and fit["tau2"] == 0 and prof["loglik"] - prof["loglik0"] > 1e-6


def loglik_metafor_scale(y, v, tau2, method):
    """Our (restricted) log-likelihood with metafor's constants: ML adds
    -k/2 log(2 pi); REML adds -(k-1)/2 log(2 pi) + 1/2 log(k) (REMLf = TRUE)."""
    y, v = np.atleast_1d(np.asarray(y, float))[:, None], np.atleast_1d(np.asarray(v, float))[:, None]
    k = y.shape[0]
    ll = E.reml_loglik(y, v, np.ones_like(y, bool), np.array([tau2]), ml=method == "ML")[0]
    return ll - 0.5 * k * math.log(2 * math.pi) if method == "ML" else ll - 0.5 * (k - 1) * math.log(2 * math.pi) + 0.5 * math.log(k)


FIT_PARAMS = [
    pytest.param(name, f["method"], id=f"{name}-{f['method']}")
    for name, c in CASES.items()
    for f in c["fits"]
    if not metafor_stuck(c, f["method"])
]


@pytest.mark.parametrize("name,method", FIT_PARAMS)
def test_pool_matches_metafor_on_every_field(name, method):
    case = CASES[name]
    ref = next(f for f in case["fits"] if f["method"] == method)
    res = pool(case["yi"], case["vi"], method=method)
    assert res.method == method
    for f in FIELDS:
        close(getattr(res, f), ref[f], method, f"{name} {method}: {f}")
    close(res.weights, ref["weights"], method, f"{name} {method}: weights")
    if method in ("ML", "REML"):
        ll = loglik_metafor_scale(case["yi"], case["vi"], res.tau2, method)
        assert ll == pytest.approx(ref["loglik"], rel=1e-9, abs=1e-9)


def test_metafor_stuck_cases_exist_and_ours_is_the_global_maximum():
    """metafor 3.8.1 stops at tau2 = 0 when its start (HE) is 0 and the
    score there is negative, although the likelihood peaks inside: REML on
    metafor_stuck_reml (3.4 log-likelihood units higher), ML on
    metafor_stuck_ml (11.7 units) and metafor_stuck_reml.  Ours returns the
    maximum of metafor's logLik profile."""
    stuck = [(n, m) for n, c in CASES.items() for m in ("ML", "REML") if metafor_stuck(c, m)]
    assert ("metafor_stuck_reml", "REML") in stuck and ("metafor_stuck_ml", "ML") in stuck
    for name, m in stuck:
        case = CASES[name]
        prof = case["profile"][m]
        assert case["metafor_default"][m] == 0
        res = pool(case["yi"], case["vi"], method=m)
        ll = loglik_metafor_scale(case["yi"], case["vi"], res.tau2, m)
        assert ll >= prof["loglik"] - 1e-9, (name, m)
        assert ll > prof["loglik0"] + 1.0
        assert res.tau2 == pytest.approx(prof["tau2"], rel=1e-4)  # optimize() pins the flat top to ~1e-5


def test_reml_overshoot_set_reaches_the_interior_maximum():
    """Regression: on this k = 6 set the former Fisher-scoring loop (start
    HE = 20.2, a step overshooting past the root at 12.2, a later negative
    step sent to 0) returned tau2 = 0, 2.78 log-likelihood units below
    metafor's REML fit."""
    case = CASES["reml_overshoot"]
    for m in ("REML", "ML"):
        ref = next(f for f in case["fits"] if f["method"] == m)
        res = pool(case["yi"], case["vi"], method=m)
        assert res.tau2 == pytest.approx(ref["tau2"], rel=1e-6)
        assert ref["tau2"] == pytest.approx(case["profile"][m]["tau2"], rel=1e-4)
    assert case["profile"]["REML"]["loglik"] - case["profile"]["REML"]["loglik0"] > 2.7


def test_eb_equals_pm_in_metafor_and_here():
    for name, c in CASES.items():
        fits = {f["method"]: f for f in c["fits"]}
        assert fits["EB"]["tau2"] == pytest.approx(fits["PM"]["tau2"], rel=1e-8, abs=1e-10), name
        a, b = pool(c["yi"], c["vi"], method="EB"), pool(c["yi"], c["vi"], method="PM")
        assert a.tau2 == b.tau2 and a.estimate == b.estimate


def test_fixed_effect_i2_is_zero_when_q_is_zero():
    case = CASES["q_zero"]
    ref = next(f for f in case["fits"] if f["method"] == "FE")
    res = pool(case["yi"], case["vi"], method="FE")
    assert res.q == 0 and ref["i2"] == 0 and res.i2 == 0 and res.h2 == ref["h2"] == 0
    for m in METHODS[1:]:
        r = pool(case["yi"], case["vi"], method=m)
        assert (r.tau2, r.i2, r.h2) == (0, 0, 1), m


def _steps_agree(df, ref, subsets, method, what):
    """Compare step tables; for ML/REML a step where metafor stopped below
    the global maximum is checked by likelihood instead (ours must be higher
    than at metafor's tau2 and be a stationary point)."""
    keep = np.ones(len(df), bool)
    if method in ("ML", "REML"):
        for i, (y, v) in enumerate(subsets):
            ours = loglik_metafor_scale(y, v, df["tau2"].iloc[i], method)
            theirs = loglik_metafor_scale(y, v, ref["tau2"][i], method)
            assert ours >= theirs - 1e-9, (what, i)
            keep[i] = ours <= theirs + 1e-7
    for f in STEP_FIELDS:
        if ref[f] is None:  # metafor drops tau2 for FE
            continue
        close(df[f].to_numpy()[keep], arr(ref[f])[keep], method, f"{what}: {f}")
    return int((~keep).sum())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if "leave1out" in c])
def test_leave_one_out_and_cumulative_match_metafor(name, method):
    case = CASES[name]
    y, v = np.array(case["yi"]), np.array(case["vi"])
    k = y.size
    df = leave_one_out(y, v, method=method)
    subsets = [(np.delete(y, i), np.delete(v, i)) for i in range(k)]
    _steps_agree(df, case["leave1out"][method], subsets, method, f"leave1out {name} {method}")
    df = cumulative(y, v, case.get("order"), method=method)
    ref = case["cumul"][method]
    assert list(df["added"]) == ref["added"]
    idx = np.argsort(case["order"] if case.get("order") is not None else np.arange(k), kind="stable")
    subsets = [(y[idx[: j + 1]], v[idx[: j + 1]]) for j in range(k)]
    higher = _steps_agree(df, ref, subsets, method, f"cumul {name} {method}")
    if (name, method) == ("bcg_logrr", "ML"):
        # the first 6 trials by year: metafor's Fisher scoring (HE start
        # 0.0029, negative score) ends at tau2 ~ 0; the ML maximum of
        # metafor's logLik is interior, 0.19 log-likelihood units higher
        prof = REF["bcg_cumul6_ml"]
        assert higher == 1 and prof["metafor_tau2"] < 1e-5 and prof["loglik"] - prof["loglik0"] > 0.1
        assert df["tau2"].iloc[5] == pytest.approx(prof["tau2"], rel=1e-4)
        y6, v6 = subsets[5]
        assert loglik_metafor_scale(y6, v6, df["tau2"].iloc[5], "ML") >= prof["loglik"] - 1e-9


@pytest.mark.parametrize("method", METHODS)
def test_subgroups_match_metafor(method):
    case = CASES["bcg_logrr"]
    ref = case["subgroups"][method]
    res = subgroups(case["yi"], case["vi"], case["groups"], method=method)
    assert list(res.groups) == ref["labels"]
    for lab, rf in zip(ref["labels"], ref["groups_fit"]):
        g = res.groups[lab]
        for f in FIELDS:
            close(getattr(g, f), rf[f], method, f"subgroup {lab} {method}: {f}")
        close(g.weights, rf["weights"], method, f"subgroup {lab} {method}: weights")
    close(res.q_between, ref["q_between"], method, "q_between")
    close(res.q_between_p, ref["q_between_p"], method, "q_between_p")


@pytest.mark.parametrize("method", METHODS)
def test_pool_many_matches_metafor_batch(method):
    b = REF["random_batch"]
    Y, V = arr_rows(b["yi"]), arr_rows(b["vi"])
    ref = arr_rows(b[method])
    df = pool_many(Y, V, method=method, engine="numpy")
    cols = b["columns"]
    keep = np.ones(len(df), bool)
    if method in ("ML", "REML"):  # where metafor is stuck below the maximum, ours must be higher
        ll = np.array([loglik_metafor_scale(Y[i][~np.isnan(Y[i])], V[i][~np.isnan(Y[i])], df["tau2"].iloc[i], method)
                       for i in range(len(df))])
        llr = ref[:, cols.index("loglik")]
        assert (ll >= llr - 1e-9 * (1 + np.abs(llr))).all()
        keep = ll <= llr + 1e-7
    for j, c in enumerate(cols):
        if c == "loglik":
            continue
        np.testing.assert_allclose(df[c].to_numpy()[keep], ref[keep, j], err_msg=f"{method} {c}", **tol(method))
    for i in range(0, len(df), 17):  # rows agree with pool()
        y, v = Y[i][~np.isnan(Y[i])], V[i][~np.isnan(Y[i])]
        r = pool(y, v, method=method)
        assert abs(df["tau2"].iloc[i] - r.tau2) <= 1e-10 * (1 + r.tau2)
        assert abs(df["estimate"].iloc[i] - r.estimate) <= 1e-10 * (1 + abs(r.estimate))


def arr_rows(rows):
    return np.array([[np.nan if e is None else e for e in r] for r in rows], dtype=float)


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("FE", "DL")])
def test_numba_engine_refuses_other_methods(method):
    with pytest.raises(ValueError, match='engine="numba" covers method "FE" and "DL"'):
        pool_many(np.array([[0.1, 0.2]]), np.array([[0.1, 0.1]]), method=method, engine="numba")


def test_metafor_spellings_and_level_as_percentage():
    case = CASES["bcg_logrr"]
    y, v = case["yi"], case["vi"]
    fe = pool(y, v, method="FE")
    for alias in ("EE", "CE", "ee", "fe", "Fe"):
        r = pool(y, v, method=alias)
        assert r.method == "FE" and r.to_frame().equals(fe.to_frame())
    r = pool(y, v, method="reml")
    assert r.method == "REML" and r.tau2 == pool(y, v, method="REML").tau2
    a, b = pool(y, v, method="DL", level=95), pool(y, v, method="DL", level=0.95)
    assert a.level == 0.95 and a.to_frame().equals(b.to_frame())
    assert pool(y, v, level=90).ci_low == pool(y, v, level=0.9).ci_low
    assert leave_one_out(y, v, method="ml", level=95).equals(leave_one_out(y, v, method="ML"))
    assert cumulative(y, v, method="hs").equals(cumulative(y, v, method="HS"))
    assert subgroups(y, v, case["groups"], method="sj").method == "SJ"
    assert pool_many(np.array([y]), np.array([v]), method="eb", level=95).equals(pool_many(np.array([y]), np.array([v]), method="EB"))
    for bad in (0, 1, 100, -5, 150, True, "95", None):
        with pytest.raises(ValueError, match="level must be"):
            pool(y, v, level=bad)
    for bad in ("HSk", "GENQ", "", None, 3):
        with pytest.raises(ValueError, match="method must be one of 'FE', 'DL'"):
            pool(y, v, method=bad)


# --------------------------------------------------------------------------- global maximum, property test


def _random_sets(n_sets, seed):
    """``n_sets`` random analyses (studies x analyses, padded): k 2-10,
    variances 10^U(-3, 1) (up to 10^4 apart), true tau2 from 0 to 10, and
    outliers (15 % of studies shifted by 5 to 20 SDs)."""
    rng = np.random.default_rng(seed)
    n = 10
    k = rng.integers(2, n + 1, n_sets)
    mask = np.arange(n)[:, None] < k[None, :]
    v = 10 ** rng.uniform(-3, 1, (n, n_sets))
    t2 = rng.choice([0.0, 0.01, 0.1, 1.0, 10.0], n_sets)
    y = rng.normal(0, 1, n_sets) + rng.normal(0, 1, (n, n_sets)) * np.sqrt(v + t2)
    out = rng.random((n, n_sets)) < 0.15
    y += out * rng.choice([-1, 1], (n, n_sets)) * rng.uniform(5, 20, (n, n_sets)) * np.sqrt(v + t2)
    return np.where(mask, y, 0.0), np.where(mask, v, np.inf), mask, k


def _grid_max(y, v, mask, k, ml):
    """Maximum of the (restricted) log-likelihood of each column over tau2 in
    {0} and 600 log-spaced points from 1e-6 min(v) to 1e3 (max(v) + range(y)^2),
    refined three times by 41 points between the neighbours of the best point."""
    big = 1e300
    rng_y = np.where(mask, y, -big).max(0) - np.where(mask, y, big).min(0)
    lo = 1e-6 * np.where(mask, v, big).min(0)
    hi = 1e3 * (np.where(mask, v, 0).max(0) + rng_y**2)
    frac = np.linspace(0, 1, 600)[:, None]
    grid = np.vstack([np.zeros((1, y.shape[1])), lo * (hi / lo) ** frac])

    def ll(t):
        return E.reml_loglik(y, v, mask, t, ml=ml)

    vals = np.array([ll(g) for g in grid])
    best = vals.max(0)
    cols = np.arange(y.shape[1])
    for _ in range(3):
        j = vals.argmax(0)
        a = grid[np.maximum(j - 1, 0), cols]
        b = grid[np.minimum(j + 1, grid.shape[0] - 1), cols]
        grid = a + (b - a) * np.linspace(0, 1, 41)[:, None]
        vals = np.array([ll(g) for g in grid])
        best = np.maximum(best, vals.max(0))
    return best


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_loglik_never_below_dense_grid_maximum_over_10000_random_sets(method):
    ml = method == "ML"
    y, v, mask, k = _random_sets(10_000, seed=20261201 + ml)
    tau2 = E.fit_core(y, v, mask, k, method=method)["tau2"]
    ours = E.reml_loglik(y, v, mask, tau2, ml=ml)
    grid = _grid_max(y, v, mask, k, ml)
    gap = grid - ours
    assert (tau2 >= 0).all()
    assert gap.max() <= 1e-9 * (1 + np.abs(grid)).max(), (gap.max(), int(gap.argmax()))
    # the sets are hard: many have an interior maximum and a positive score nowhere near HE
    assert (tau2 > 0).mean() > 0.3


@pytest.mark.parametrize("method", ["PM", "EB"])
def test_pm_eb_root_is_unique_and_solves_the_estimating_equation(method):
    """Generalised Q(tau2) is strictly decreasing on a dense grid (so Q = k-1
    has one root), and ours is that root (or 0 where Q(0) <= k - 1)."""
    y, v, mask, k = _random_sets(10_000, seed=77)
    tau2 = E.fit_core(y, v, mask, k, method=method)["tau2"]
    grid = np.concatenate([[0.0], np.geomspace(1e-6, 1e6, 300)])
    q = np.array([E._pm_q(y, v, np.full(y.shape[1], g)) for g in grid])
    assert (np.diff(q, axis=0) <= 1e-9 * (1 + q[:-1])).all()
    df = k - 1.0
    q0 = q[0]
    pos = tau2 > 0
    assert ((q0 <= df) == ~pos).all()
    qhat = E._pm_q(y[:, pos], v[:, pos], tau2[pos])
    np.testing.assert_allclose(qhat, df[pos], rtol=1e-9)


def test_scan_finds_every_local_maximum_and_picks_the_highest():
    """On metafor_stuck_ml the ML score is negative at 0 (a local maximum at
    the boundary), changes sign - to + at a local minimum, then + to - at
    the global maximum: neither the minimum nor the boundary may be
    returned."""
    case = CASES["metafor_stuck_ml"]
    y, v = np.array(case["yi"])[:, None], np.array(case["vi"])[:, None]
    mask = np.ones_like(y, bool)
    t = E.tau2_ml(y, v, mask, np.array([y.shape[0]]))[0]
    s0 = E.reml_score(y, v, np.array([0.0]), ml=True)[0]
    assert s0 < 0 and t > 1
    grid = np.linspace(0, t, 2000)
    s = np.array([E.reml_score(y, v, np.array([g]), ml=True)[0] for g in grid])
    assert (np.diff(np.sign(s)) > 0).any()  # a - to + change (a minimum) below the maximum
    assert abs(E.reml_score(y, v, np.array([t]), ml=True)[0]) < 1e-10
