"""meta.heterogeneity (se.tau2, profile-likelihood CI, ranktest, fsn), meta.gosh and the
Knapp-Hartung F test of subgroups(tau2="common") against metafor 3.8.1
(tests/fixtures/influence_reference.json, from tests/r/influence_reference.R).

Tolerances: closed forms 1e-9 relative; iterative fits (REML/ML/PM/EB, metafor with
threshold/tol 1e-12) and root-found CI bounds (uniroot tol 1e-12) 1e-7 relative, with an
absolute floor of 1e-10 (I2 in percent: 1e-8) for values that are 0 up to rounding.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from meta import _estimators
from meta.confint import confint
from meta.gosh import GoshResult, gosh
from meta.heterogeneity import FsnResult, confint_pl, fsn, ranktest, se_tau2
from meta.pool import pool, subgroups
from tests._reference import arr

FIXTURE = Path(__file__).parent / "fixtures" / "influence_reference.json"
REF = json.loads(FIXTURE.read_text())
CASES = {c["name"]: c for c in REF["cases"]}
ITERATIVE = {"REML", "ML", "PM", "EB"}


def data(name):
    c = CASES[name]
    return arr(c["yi"]), arr(c["vi"])


def close(actual, expected, rtol=1e-9, atol=1e-10):
    expected = np.nan if expected is None else expected
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


# --------------------------------------------------------------------------- se.tau2

SE_CASES = [(c["name"], f["method"], f["se_tau2"]) for c in REF["cases"] for f in c["fits"] if f["test"] == "z"]


@pytest.mark.parametrize("name,method,expected", SE_CASES, ids=[f"{n}-{m}" for n, m, _ in SE_CASES])
def test_se_tau2_matches_metafor(name, method, expected):
    """metafor's se.tau2 of rma(yi, vi, method=): its formula per estimator; NA for FE."""
    res = pool(*data(name), method=method)
    got = se_tau2(res)
    if method == "FE":
        assert expected is None and math.isnan(got)
    else:
        close(got, expected, rtol=1e-7 if method in ITERATIVE else 1e-9)


# --------------------------------------------------------------------------- profile likelihood CI

PL_CASES = [(c["name"], r) for c in REF["cases"] for r in c["pl"]]


@pytest.mark.parametrize("name,ref", PL_CASES, ids=[f"{n}-{r['method']}-{r['level']}" for n, r in PL_CASES])
def test_profile_likelihood_ci_matches_metafor(name, ref):
    """confint(res, type = "PL"): tau2, tau, I2, H2 bounds and the ">" sign of a bound at tau2_max."""
    res = pool(*data(name), method=ref["method"], level=ref["level"])
    ci = confint(res, type="PL")
    assert ci.type == "PL" and ci.level == pytest.approx(ref["level"])
    close(ci.ci_low, arr(ref["ci_low"]), rtol=1e-7)
    close(ci.ci_high, arr(ref["ci_high"]), rtol=1e-7)
    close(ci.estimate, arr(ref["estimate"]), rtol=1e-7)
    assert (ci.lb_sign, ci.ub_sign) == (ref["lb_sign"], ref["ub_sign"])
    assert confint_pl(res) == ci
    assert "profile-likelihood" in ci.summary()


def test_profile_likelihood_needs_ml_or_reml():
    y, v = data("bcg_logrr")
    with pytest.raises(ValueError, match="'ML' or 'REML'"):
        confint(pool(y, v, method="DL"), type="PL")
    with pytest.raises(ValueError, match="type must be 'QP'"):
        confint(pool(y, v, method="REML"), type="Wald")
    ci = confint(y, v, method="REML", type="pl")  # yi, vi fitted here; type in any case
    assert ci.type == "PL" and ci.ci_low[0] < ci.estimate[0] < ci.ci_high[0]
    assert confint(pool(y, v, method="REML")).type == "QP"


# --------------------------------------------------------------------------- ranktest

RT_CASES = [c["name"] for c in REF["cases"]]


@pytest.mark.parametrize("name", RT_CASES)
def test_ranktest_matches_metafor(name):
    """ranktest(res): Kendall's tau and p (exact distribution without ties; normal
    approximation with tie corrections otherwise; NA when every y* is equal)."""
    ref = CASES[name]["ranktest"]
    y, v = data(name)
    rt = ranktest(pool(y, v))
    assert rt == ranktest(y, v)
    if ref["tau"] is None:
        assert math.isnan(rt.tau) and math.isnan(rt.p)
    else:
        close(rt.tau, ref["tau"], rtol=1e-12)
        close(rt.p, ref["p"], rtol=1e-9, atol=1e-14)
    assert rt.exact == (len(set(v)) == len(v) and not math.isnan(rt.tau))


def test_ranktest_exact_distribution_small_n():
    """Kendall's null distribution for n = 4 by enumeration of the 24 permutations."""
    import itertools

    from meta.heterogeneity import _mahonian_cdf

    inv = [sum(p[i] > p[j] for i in range(4) for j in range(i + 1, 4)) for p in itertools.permutations(range(4))]
    counts = np.bincount(inv, minlength=7)
    np.testing.assert_allclose(_mahonian_cdf(4), np.cumsum(counts) / 24, rtol=1e-15)


# --------------------------------------------------------------------------- fsn

FSN_CASES = [(c["name"], r) for c in REF["cases"] for r in c["fsn"]]
FSN_ARGS = {"rosenthal": {}, "rosenthal_a10": {}, "rosenthal_fisher": {"test": "Fisher"}, "orwin": {},
            "orwin_weighted": {"weighted": True}, "orwin_target": {"target": 0.05}, "rosenberg": {},
            "rosenberg_a10": {}}


@pytest.mark.parametrize("name,ref", FSN_CASES, ids=[f"{n}-{r['label']}" for n, r in FSN_CASES])
def test_fsn_matches_metafor(name, ref):
    y, v = data(name)
    out = fsn(y, v, type=ref["type"], alpha=ref["alpha"], **FSN_ARGS[ref["label"]])
    assert isinstance(out, FsnResult) and out.type == ref["type"]
    assert out.fsnum == ref["fsnum"]
    close(out.pval, ref["pval"], rtol=1e-10, atol=0)
    close(out.meanes, ref["meanes"], rtol=1e-12)
    close(out.target, ref["target"], rtol=1e-12)
    assert "Fail-safe N:" in out.summary()


def test_fsn_inputs():
    y, v = data("bcg_logrr")
    assert fsn(pool(y, v)) == fsn(y, v)
    assert fsn(y, sei=np.sqrt(v), type="rosenberg") == fsn(y, v, type="Rosenberg")
    assert fsn(y, type="Orwin").fsnum == fsn(y, v, type="Orwin").fsnum  # unweighted Orwin needs no vi
    assert math.isinf(fsn(y, v, type="Orwin", target=0).fsnum)
    with pytest.raises(ValueError, match="REM"):
        fsn(y, v, type="REM")
    with pytest.raises(ValueError, match="alpha"):
        fsn(y, v, alpha=1.5)
    with pytest.raises(ValueError, match="vi must be > 0"):
        fsn(y, np.r_[v[:-1], -1.0])


# --------------------------------------------------------------------------- gosh

GOSH_CASES = [(c["name"], g) for c in REF["cases"] for g in c.get("gosh", [])]


@pytest.mark.parametrize("name,ref", GOSH_CASES, ids=[f"{n}-{g['method']}" for n, g in GOSH_CASES])
def test_gosh_all_subsets_match_metafor(name, ref):
    """gosh(res): every subset in metafor's order (by size, then expand.grid order), with
    k, Q, I2, H2, tau2 and the estimate of each subset's fit."""
    y, v = data(name)
    res = pool(y, v, method=ref["method"])
    g = gosh(res)
    assert isinstance(g, GoshResult) and g.exact and g.n_subsets == 2 ** len(y) - 1
    code = g.incl.astype(np.int64) @ (2 ** np.arange(len(y)))
    np.testing.assert_array_equal(code, arr(ref["code"]).astype(np.int64))
    df = g.to_frame()
    same = np.ones(len(df), dtype=bool)
    if ref["method"] == "ML":
        # metafor's Fisher scoring stops at tau2 = 0 in some subsets where the likelihood has a higher
        # interior maximum; we return the global maximum (meta._estimators): check that, then skip them
        diff = np.abs(df["tau2"].to_numpy() - arr(ref["tau2"])) > 1e-6
        for i in np.flatnonzero(diff):
            m = g.incl[i]
            yy, vv = y[m][:, None], v[m][:, None]
            ll = [float(_estimators.reml_loglik(yy, vv, np.ones_like(yy, bool), np.array([t]), ml=True)[0])
                  for t in (df["tau2"].iloc[i], arr(ref["tau2"])[i])]
            assert ll[0] > ll[1]
        assert diff.sum() <= 2
        same = ~diff
    rt = 1e-7 if ref["method"] in ITERATIVE else 1e-9
    for col in ("k", "q", "tau2", "estimate", "h2"):
        close(df[col].to_numpy()[same], arr(ref[col])[same], rtol=rt)
    close(df["i2"].to_numpy()[same], arr(ref["i2"])[same], rtol=rt, atol=1e-8)


def test_gosh_random_subsets_reproducible_by_seed():
    y, v = data("hackshaw1998_logor")  # 2^37 - 1 subsets: random mode
    res = pool(y, v, method="DL")
    a = gosh(res, subsets=3000, seed=11)
    b = gosh(res, subsets=3000, seed=11)
    c = gosh(res, subsets=3000, seed=12)
    assert not a.exact and a.n_subsets == 3000 and a.seed == 11
    np.testing.assert_array_equal(a.incl, b.incl)
    assert a.to_frame().equals(b.to_frame())
    assert not np.array_equal(a.incl, c.incl)
    ks = a.k_subset
    assert (np.diff(ks) >= 0).all() and ks.min() >= 1 and (ks == a.incl.sum(axis=1)).all()
    assert abs(ks.mean() - len(y) / 2) < 1.0  # sizes ~ Binomial(37, 1/2)
    for i in (0, 1500, 2999):  # each row is the fit of its subset
        sub = pool(y[a.incl[i]], v[a.incl[i]], method="DL")
        assert a.estimate[i] == pytest.approx(sub.estimate, rel=1e-10)
        assert a.tau2[i] == pytest.approx(sub.tau2, rel=1e-10, abs=1e-14)
        assert a.q[i] == pytest.approx(sub.q, rel=1e-10, abs=1e-12)


def test_gosh_bound_and_errors():
    y, v = data("k3")
    res = pool(y, v)
    assert gosh(res, subsets=7).exact and not gosh(res, subsets=6, seed=1).exact
    assert gosh(res, subsets=6, seed=1).n_subsets == 6
    with pytest.raises(ValueError, match=">= 2"):
        gosh(res, subsets=1)
    with pytest.raises(ValueError, match="seed"):
        gosh(res, subsets=3, seed=1.5)
    with pytest.raises(ValueError, match="k >= 2"):
        gosh(pool([0.1], [0.1]))
    text = gosh(res).summary()
    assert "Model fits attempted: 7" in text and "estimate" in text


# --------------------------------------------------------------------------- Knapp-Hartung F test

SG_CASES = [(c["name"], r) for c in REF["cases"] for r in c.get("subgroups_knha", [])]


@pytest.mark.parametrize("name,ref", SG_CASES, ids=[f"{n}-{r['method']}-{r['test']}" for n, r in SG_CASES])
def test_common_tau2_f_test_matches_metafor(name, ref):
    """subgroups(tau2="common", test=) = metafor rma(yi, vi, mods = ~ factor(g), test=): the F test
    of the moderators (QM, QMdf, QMp) and the ~ 0 + factor(g) subgroup estimates with their t
    tests, CIs and prediction intervals."""
    y, v = data(name)
    sg = subgroups(y, v, CASES[name]["groups"], method=ref["method"], test=ref["test"], tau2="common")
    rt = 1e-7 if ref["method"] in ITERATIVE else 1e-9
    close(sg.f_between, ref["qm"], rtol=rt)
    close(sg.f_between_p, ref["qm_p"], rtol=rt)
    assert (sg.f_between_df1, sg.f_between_df2) == (ref["qm_df1"], ref["qm_df2"])
    close(sg.tau2_common, ref["tau2"], rtol=rt)
    assert list(sg.groups) == list(ref["labels"])
    fe = ref["method"] == "FE"  # metafor predict() gives no PI for FE models: ours is the CI, as pool()
    for col, key in (("estimate", "estimate"), ("se", "se"), ("stat", "stat"), ("p", "p"), ("ci_low", "ci_low"),
                     ("ci_high", "ci_high"), ("pi_low", "ci_low" if fe else "pi_low"),
                     ("pi_high", "ci_high" if fe else "pi_high")):
        close([getattr(r, col) for r in sg.groups.values()], arr(ref[key]), rtol=rt)
    assert all(r.test == ref["test"] for r in sg.groups.values())
    assert f"F(df1 = {ref['qm_df1']}, df2 = {ref['qm_df2']})" in sg.summary()


def test_common_tau2_z_test_has_no_f():
    y, v = data("bcg_logrr")
    sg = subgroups(y, v, CASES["bcg_logrr"]["groups"], method="REML", tau2="common")
    assert math.isnan(sg.f_between) and sg.f_between_df2 == 0 and "F(df1" not in sg.summary()
    knha = subgroups(y, v, CASES["bcg_logrr"]["groups"], method="REML", tau2="common", test="hksj")
    assert knha.q_between == pytest.approx(sg.q_between, rel=1e-12)  # the Wald QM does not depend on the test
