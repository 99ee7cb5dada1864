"""meta.multilevel.rma_mv / che against metafor 3.8.1 rma.mv (tests/r/multilevel_reference.R).

Data: metadat dat.konstantopoulos2011 (schools within districts), dat.assink2016 (effect sizes
within studies, V from vcalc with rho = 0.6: the CHE working model), dat.berkey1998 (two outcomes
per trial, V the full block matrix), dat.bcg, and a simulated data set with a cluster of 30 effect
sizes. Adversarial: a cluster of one effect size, all clusters of one effect size (the two
components are not identifiable), a single-level factor, a component at 0, a singular V.

Tolerances: metafor's nlminb was run with rel.tol 1e-10; our fit is the maximum to ~1e-12.
Variance components and everything that depends on them agree to 1e-6 absolute (seen: 3e-7 at
worst, where metafor stops a component near, not at, 0); closed forms given the components (QE)
to 1e-9 relative. Our (restricted) log likelihood is never below metafor's (1e-10 slack for rounding).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from meta.multilevel import MultilevelResult, che, parse_random, rma_mv
from meta.vcalc import vcalc
from tests._reference import arr

REF = json.loads((Path(__file__).parent / "fixtures" / "multilevel_reference.json").read_text())
CASES = {c["name"]: c for c in REF["cases"]}
#: cases whose profile-likelihood CIs are compared (each takes ~0.3-2 s): every shape of CI metafor gives
CI_CASES = ["konstantopoulos REML z residual", "konstantopoulos ML z residual", "konstantopoulos three levels",
            "assink che", "assink diag three levels", "assink overt component at zero", "berkey outcome ~1|trial/outcome",
            "sim cluster of 30", "assink covert single-level factor"]
ATOL = 1e-6


def _V(case) -> np.ndarray:
    if "V_triplets" in case:
        k = len(case["yi"])
        t = np.array(case["V_triplets"])
        V = np.zeros((k, k))
        V[t[:, 0].astype(int), t[:, 1].astype(int)] = t[:, 2]
        return V
    return np.array(case["vi"])


def _random(case) -> dict:
    names = case["random"].split("|")[1].strip().split("/")
    return {n: case["groups"][n] for n in names}


def _fit(case, **kw) -> MultilevelResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "random_terms" in case:  # crossed terms: a list of formulas over a data frame
            df = pd.DataFrame({"yi": case["yi"], **case["groups"]})
            return rma_mv("yi", _V(case), random=case["random_terms"], data=df, mods=np.array(case["X"]),
                          intercept=False, method=case["method"], test=case["test"], dfs=case["dfs"], **kw)
        if "struct" in case:  # ~ inner | outer: the formula over a data frame
            df = pd.DataFrame({"yi": case["yi"], **case["groups"]})
            return rma_mv("yi", _V(case), random=case["random"], struct=case["struct"], data=df,
                          mods=np.array(case["X"]), intercept=False, method=case["method"], test=case["test"],
                          dfs=case["dfs"], **kw)
        return rma_mv(np.array(case["yi"]), _V(case), random=_random(case), mods=np.array(case["X"]), intercept=False,
                      method=case["method"], test=case["test"], dfs=case["dfs"], **kw)


class _Fits(dict):
    """Each case fitted once, when a test first asks for it."""

    def __missing__(self, name):
        self[name] = _fit(CASES[name])
        return self[name]


@pytest.fixture(scope="module")
def fits():
    return _Fits()


@pytest.mark.parametrize("name", list(CASES))
def test_matches_metafor_rma_mv(name, fits):
    """beta, se, z/t, p, CI, vcov, sigma2, fit statistics, QE, QM, df, fitted, residuals, weights, I2 = metafor."""
    c, r = CASES[name], fits[name]
    f = c["fit"]
    assert r.k == f["k"] and r.p == f["p"]
    assert r.logLik >= f["logLik"] - 1e-10, "not the global maximum: metafor found a higher likelihood"
    np.testing.assert_allclose(r.logLik, f["logLik"], atol=1e-7)
    if r.sigma2.size == 0:  # no ~ 1 | ... term: metafor reports sigma2 = 0 of no factor
        assert "struct" in c and np.all(arr(f["sigma2"]) == 0)
    else:
        np.testing.assert_allclose(r.sigma2, arr(f["sigma2"]), atol=ATOL, rtol=0)
        np.testing.assert_array_equal(r.s_nlevels, arr(f["s_nlevels"]))
    for ours, theirs in [(r.beta, "beta"), (r.se, "se"), (r.stat, "stat"), (r.ci_lb, "ci_lb"), (r.ci_ub, "ci_ub"),
                         (r.vb.ravel(), "vb"), (r.fitted, "fitted"), (r.residuals, "resid")]:
        np.testing.assert_allclose(ours, arr(f[theirs]).ravel(), atol=ATOL, rtol=1e-5, err_msg=theirs)
    np.testing.assert_allclose(r.pval, arr(f["pval"]), atol=1e-7, rtol=1e-5)
    np.testing.assert_allclose(r.weights, arr(f["weights"]), atol=1e-6, rtol=1e-4)
    for ours, theirs in [(r.deviance, "deviance"), (r.AIC, "AIC"), (r.BIC, "BIC"), (r.AICc, "AICc")]:
        np.testing.assert_allclose(ours, f[theirs], atol=1e-7, err_msg=theirs)
    np.testing.assert_allclose(r.QE, f["QE"], rtol=1e-9)
    np.testing.assert_allclose(r.QEp, f["QEp"], rtol=1e-7, atol=1e-300)
    assert r.QE_df == f["QE_df"]
    np.testing.assert_allclose(r.QM, f["QM"], rtol=1e-5)
    np.testing.assert_allclose(r.QMp, f["QMp"], rtol=1e-4, atol=1e-7)
    assert r.QM_df[0] == arr(f["QMdf"])[0]
    np.testing.assert_array_equal(np.nan_to_num(r.QM_df[1], nan=-1), np.nan_to_num(arr(f["QMdf"])[1], nan=-1))
    np.testing.assert_array_equal(np.nan_to_num(r.ddf, nan=-1), np.nan_to_num(arr(f["ddf"]), nan=-1))
    # I2 per level and total: metafor FAQ formula evaluated in R
    if r.sigma2.size:  # (without ~ 1 | ... terms metafor's sigma2 is a 0 of no factor)
        np.testing.assert_allclose(r.i2, arr(f["i2"]), atol=1e-4, rtol=0)
        np.testing.assert_allclose(r.i2_total, f["i2_total"], atol=1e-4)
    np.testing.assert_allclose(r.typical_v, f["typical_v"], rtol=1e-9)
    if "struct" in c:  # multivariate: G, its variances and correlations
        np.testing.assert_allclose(r.tau2, arr(f["tau2"]), atol=ATOL)
        if c["struct"] == "DIAG":  # metafor reports rho = 0 (fixed); we report no correlation
            assert r.rho.size == 0 and np.all(arr(f["rho"]) == 0)
        else:
            np.testing.assert_allclose(r.rho, arr(f["rho"]), atol=1e-5)
        np.testing.assert_allclose(r.G, np.array(f["G"]), atol=ATOL)
        # metafor FAQ I2 for multivariate models: 100 tau2 / (tau2 + typical v), from R's tau2 and typical v
        np.testing.assert_allclose(r.i2_tau2, 100 * arr(f["tau2"]) / (arr(f["tau2"]) + f["typical_v"]), rtol=1e-5)


@pytest.mark.parametrize("name", CI_CASES)
def test_profile_ci_matches_metafor_confint(name, fits):
    """confint(res) of metafor: profile-likelihood CIs of every sigma2 (uniroot tol 1e-10 in R)."""
    r, ci = fits[name], CASES[name]["fit"]["confint"]
    out = r.confint()
    for j, e in enumerate(ci):
        lb = np.nan if e["lb"] is None else e["lb"]
        ub = np.nan if e["ub"] is None else e["ub"]
        np.testing.assert_allclose(out.loc[f"sigma^2.{j + 1}", ["ci_lb", "ci_ub"]].to_numpy(float), [lb, ub],
                                   atol=1e-6, err_msg=f"sigma^2.{j + 1}")
    np.testing.assert_allclose(out.loc["sigma.1", "estimate"] ** 2, r.sigma2[0], rtol=1e-12)


def test_profile_ci_of_tau2_and_rho_matches_metafor(fits):
    """dat.berkey1998, random = ~ outcome | trial, struct = "UN": confint(res, tau2 = j), confint(res, rho = 1).
    The lower end of tau2.2 needs the profile maximised on the boundary rho = 1."""
    name = "berkey ~outcome|trial UN REML"
    r, f = fits[name], CASES[name]["fit"]
    out = r.confint()
    for j, e in enumerate(f["confint_tau2"]):
        np.testing.assert_allclose(out.loc[f"tau^2.{j + 1}", ["estimate", "ci_lb", "ci_ub"]].to_numpy(float),
                                   [e["estimate"], e["lb"], e["ub"]], atol=1e-6)
    e = f["confint_rho"][0]
    np.testing.assert_allclose(out.loc["rho.1", ["estimate", "ci_lb", "ci_ub"]].to_numpy(float),
                               [e["estimate"], e["lb"], e["ub"]], atol=1e-5)
    assert not bool(out.loc["rho.1", "ub_limited"])  # rho = 1 is the parameter's bound, not a search limit


def test_multivariate_summary_layout(fits):
    """print(res) of metafor for random = ~ outcome | trial, struct = "UN": outer/inner factors, tau^2 table, rho."""
    s = fits["berkey ~outcome|trial UN REML"].summary()
    for text in ("outer factor: trial   (nlvls = 5)", "inner factor: outcome (nlvls = 2)", "k.lvl", "rho.AL  rho.PD",
                 "PD  0.6088       1", "Test for Residual Heterogeneity:"):
        assert text in s
    r = fits["berkey ~outcome|trial UN REML"]
    assert r.g_levels == ("AL", "PD") and r.g_names == ("outcome", "trial") and r.struct == "UN"
    np.testing.assert_allclose(r.G[0, 1], r.rho[0] * np.sqrt(r.tau2[0] * r.tau2[1]), rtol=1e-12)


def test_upper_ci_end_at_search_limit_is_flagged(fits):
    """assink ~1|pubstatus/study/esid: metafor returns the search limit 10 as the upper end of sigma2.1."""
    out = fits["assink diag three levels"].confint()
    assert out.loc["sigma^2.1", "ci_ub"] == 10.0 and bool(out.loc["sigma^2.1", "ub_limited"])
    assert not bool(out.loc["sigma^2.2", "ub_limited"])


def test_component_at_zero_is_exactly_zero(fits):
    """metafor stops near 0 (log scale); the REML maximum is on the boundary: ours is 0 with a higher logLik."""
    r = fits["assink diag component at zero"]
    assert r.sigma2[0] == 0.0
    assert CASES["assink diag component at zero"]["fit"]["sigma2"][0] > 0
    assert r.logLik > CASES["assink diag component at zero"]["fit"]["logLik"]


def test_single_level_factor_fixed_at_zero_with_warning():
    c = CASES["assink covert single-level factor"]
    assert "Single-level factor" in c["fit"]["warnings"]
    with pytest.warns(UserWarning, match="single-level factor"):
        r = rma_mv(np.array(c["yi"]), _V(c), random=_random(c))
    assert r.sigma2[0] == 0.0 and bool(r.sigma2_fixed[0])
    assert np.isnan(r.confint().loc["sigma^2.1", "ci_lb"])


def test_all_clusters_of_one_effect_not_identifiable():
    """dat.bcg with ~1|trial/es and one es per trial: only sigma2.1 + sigma2.2 is identified; metafor's
    symmetric start leaves it split equally, and so do we (with a warning)."""
    c = CASES["bcg one effect per cluster"]
    with pytest.warns(UserWarning, match="not separately identifiable"):
        r = rma_mv(np.array(c["yi"]), _V(c), random=_random(c))
    np.testing.assert_allclose(r.sigma2, arr(c["fit"]["sigma2"]), atol=ATOL)
    assert r.sigma2[0] == r.sigma2[1]
    # the sum is the single-factor (= rma REML) tau2
    np.testing.assert_allclose(r.sigma2.sum(), arr(CASES["bcg single factor"]["fit"]["sigma2"])[0], atol=ATOL)
    assert np.isnan(r.confint()["ci_lb"]).all()


def test_singular_V_as_metafor():
    """rho = 1 within study makes V singular: metafor warns, fits (M is positive definite), QE is NA."""
    s = REF["singular"]
    assert s["ok"] and "not positive definite" in s["warnings"]
    vc = REF["vcalc"]
    with pytest.warns(UserWarning, match="not positive definite"):
        V = vcalc(vc["vi"], vc["study"], obs=vc["esid"], rho=1.0)
    with pytest.warns(UserWarning, match="V appears to be not positive definite"):
        r = rma_mv(np.array(CASES["assink che"]["yi"]), V, random={"study": vc["study"], "esid": vc["esid"]})
    np.testing.assert_allclose(r.sigma2, s["sigma2"], atol=ATOL)
    np.testing.assert_allclose(r.beta, [s["beta"]], atol=ATOL)
    np.testing.assert_allclose(r.se, [s["se"]], atol=ATOL)
    assert r.logLik >= s["logLik"] - 1e-10
    assert np.isnan(r.QE) and s["QE"] is None and np.isnan(r.i2).all()


def test_singular_M_is_a_clear_error():
    """V singular and no random effect that covers its null space: no positive definite M exists."""
    V = np.array([[1.0, 1.0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    with pytest.raises(ValueError, match="not positive definite"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rma_mv([0.1, 0.3, 0.2, 0.5], V, random={"g": [1, 2, 3, 4]}, sigma2=[0.0])


# --------------------------------------------------------------------------- input forms


def test_formula_strings_over_data_equal_arrays():
    """random='~ 1 | district/school' over a DataFrame = dict of arrays; mods formula = design matrix."""
    c = CASES["konstantopoulos year REML z residual"]
    df = pd.DataFrame({"yi": c["yi"], "vi": c["vi"], **{k: v for k, v in c["groups"].items()}})
    df["year_c"] = df["year"] - 1990
    r = rma_mv("yi", "vi", random="~ 1 | district/school", data=df, mods="~ year_c")
    ref = c["fit"]
    np.testing.assert_allclose(r.beta, arr(ref["beta"]), atol=ATOL)
    np.testing.assert_allclose(r.sigma2, arr(ref["sigma2"]), atol=ATOL)
    assert r.s_names == ("district", "district/school")
    assert r.coef_names == ("intrcpt", "year_c")
    np.testing.assert_array_equal(r.cluster, df["district"].to_numpy())
    # a list of grouping arrays = nested levels, outermost first
    r2 = rma_mv(df["yi"], df["vi"], random=[df["district"], df["school"]], mods=df["year_c"])
    np.testing.assert_allclose(r2.beta, r.beta, rtol=1e-10)


def test_factor_moderator_formula():
    """mods='~ factor(deltype)' gives metafor's treatment coding (levels sorted, first is the reference)."""
    c = CASES["assink che deltype"]
    df = pd.DataFrame({"yi": c["yi"], "study": c["groups"]["study"], "esid": c["groups"]["esid"],
                       "deltype": c["groups"]["deltype"]})
    r = rma_mv("yi", _V(c), random="~ 1 | study/esid", data=df, mods="~ factor(deltype)")
    np.testing.assert_array_equal(r.X, np.array(c["X"]))
    np.testing.assert_allclose(r.beta, arr(c["fit"]["beta"]), atol=ATOL)
    assert r.btt == (1, 2)
    np.testing.assert_allclose(r.QM, c["fit"]["QM"], rtol=1e-5)


def test_V_forms_give_one_fit():
    """V as a full matrix, a list of blocks, a scipy sparse matrix, and sparse=True: one and the same fit."""
    c = CASES["berkey outcome ~1|trial"]
    V = _V(c)
    blocks = [V[i:i + 2, i:i + 2] for i in range(0, V.shape[0], 2)]
    fits = [rma_mv(np.array(c["yi"]), v, random=_random(c), mods=np.array(c["X"]), intercept=False, sparse=sp)
            for v, sp in ((V, False), (blocks, False), (sparse.csr_matrix(V), False), (V, True))]
    for f in fits[1:]:
        np.testing.assert_allclose(f.beta, fits[0].beta, rtol=1e-10)
        np.testing.assert_allclose(f.sigma2, fits[0].sigma2, rtol=1e-9)
    np.testing.assert_allclose(fits[0].beta, arr(c["fit"]["beta"]), atol=ATOL)


def test_che_is_vcalc_plus_rma_mv():
    """che() = vcalc(vi, study, obs=es_id, rho=0.6) + rma_mv(random=~1|study/es_id, REML): metafor's fit."""
    c = CASES["assink che"]
    vc = REF["vcalc"]
    r = che(np.array(c["yi"]), vc["vi"], study=vc["study"], es_id=vc["esid"], r=0.6)
    np.testing.assert_allclose(r.sigma2, arr(c["fit"]["sigma2"]), atol=ATOL)
    np.testing.assert_allclose(r.beta, arr(c["fit"]["beta"]), atol=ATOL)
    assert r.s_names == ("study", "study/es_id") and r.method == "REML"
    # what a cluster-robust (CR2) helper needs
    assert r.X.shape == (100, 1) and r.yi.shape == (100,)
    np.testing.assert_array_equal(r.cluster, np.array(vc["study"], dtype=object))
    M, W = r.M, r.W
    np.testing.assert_allclose(W @ M, np.eye(100), atol=1e-9)
    Vd = vcalc(vc["vi"], vc["study"], obs=vc["esid"], rho=0.6)
    np.testing.assert_allclose(M, Vd + r.sigma2[0] * (np.equal.outer(vc["study"], vc["study"]))
                               + r.sigma2[1] * np.eye(100), atol=1e-14)
    np.testing.assert_allclose(r.vb, np.linalg.inv(r.X.T @ W @ r.X), rtol=1e-9)


def test_large_k_is_fast():
    """k ~ 3000 effect sizes in 1000 studies (CHE): well under a second on our VM (bound 3 s for CI noise)."""
    rng = np.random.default_rng(1)
    m = rng.integers(1, 6, 1000)
    st = np.repeat(np.arange(1000), m)
    vi = rng.uniform(0.01, 0.1, st.size)
    y = 0.2 + rng.normal(0, 0.3, 1000)[st] + rng.normal(0, 0.2, st.size) + rng.normal(0, np.sqrt(vi))
    t0 = time.perf_counter()
    r = che(y, vi, study=st, r=0.6)
    assert time.perf_counter() - t0 < 3.0
    assert r.k == st.size and np.all(r.sigma2 > 0)


# --------------------------------------------------------------------------- results


def test_result_frame_summary_and_frozen():
    c = CASES["assink che deltype t contain"]
    df = pd.DataFrame({"yi": c["yi"], "study": c["groups"]["study"], "esid": c["groups"]["esid"],
                       "deltype": c["groups"]["deltype"]})
    r = rma_mv("yi", _V(c), random="~ 1 | study/esid", data=df, mods="~ factor(deltype)", dfs="contain")
    assert r.test == "t"  # dfs="contain" implies t tests, as metafor
    np.testing.assert_allclose(r.ddf, arr(c["fit"]["ddf"]))
    fr = r.to_frame()
    assert list(fr.columns) == ["estimate", "se", "tval", "df", "pval", "ci_lb", "ci_ub"]
    assert list(fr.index) == ["intrcpt", "deltypegeneral", "deltypeovert"]
    s = r.summary()
    for text in ("Multivariate Meta-Analysis Model (k = 100; method: REML)", "Variance Components:",
                 "sigma^2.1", "study/esid", "Test for Residual Heterogeneity:", "Test of Moderators (coefficients 2:3):",
                 "F(df1 = 2, df2 = 97)", "Model Results:"):
        assert text in s
    assert "QE(df = 97) = " + f"{CASES['assink che deltype t contain']['fit']['QE']:.4f}" in s
    assert repr(r) == s  # the fit prints as metafor prints it
    with pytest.raises(Exception):
        r.beta[0] = 1.0
    with pytest.raises(Exception):
        r.k = 3
    vc = r.variance_components()
    assert list(vc["factor"]) == ["study", "study/esid"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    (dict(random="study/es"), "is not of the form"),
    (dict(random="~ x | study"), "column 'x' is not in data"),
    (dict(random="~ es + x | study"), "one column name on each side"),
    (dict(random="~ es | study", struct="AR"), "struct"),
    (dict(random=["~ es | study", "~ es | study"]), "at most one"),
    (dict(random="~ 1 | nosuch"), "column 'nosuch'"),
    (dict(method="DL"), "method"),
    (dict(test="knha"), "test"),
    (dict(dfs="between"), "dfs"),
    (dict(level=120), "level"),
    (dict(sigma2=[0.1]), "one value per variance component"),
])
def test_bad_options_are_named(kwargs, match):
    df = pd.DataFrame({"yi": [0.1, 0.2, 0.4, 0.3], "vi": [0.01, 0.02, 0.03, 0.02], "study": [1, 1, 2, 2], "es": [1, 2, 1, 2]})
    args = dict(random="~ 1 | study/es", data=df)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        rma_mv("yi", "vi", **args)


def test_bad_data_are_named():
    g = {"s": [1, 1, 2]}
    with pytest.raises(ValueError, match="V: sampling variances must be > 0; offending positions .*: 1"):
        rma_mv([0.1, 0.2, 0.3], [0.1, 0.0, 0.1], random=g)
    with pytest.raises(ValueError, match="yi must be finite; offending positions .*: 2"):
        rma_mv([0.1, 0.2, np.nan], [0.1, 0.1, 0.1], random=g)
    with pytest.raises(ValueError, match="V must be a vector of k = 3"):
        rma_mv([0.1, 0.2, 0.3], np.eye(2), random=g)
    with pytest.raises(ValueError, match="symmetric"):
        rma_mv([0.1, 0.2, 0.3], np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1.0]]), random=g)
    with pytest.raises(ValueError, match="at least 2"):
        rma_mv([0.1], [0.1], random={"s": [1]})
    with pytest.raises(ValueError, match="grouping 's' must have one value per effect size"):
        rma_mv([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], random={"s": [1, 2]})
    with pytest.raises(ValueError, match="missing values at positions"):
        rma_mv([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], random={"s": [1, None, 2]})
    with pytest.raises(ValueError, match="p = 3 coefficients for k = 3"):
        rma_mv([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], random=g, mods=np.array([[1, 2], [2, 1], [3, 5.0]]))


def test_parse_random_names_levels_as_metafor():
    df = pd.DataFrame({"a": [1, 1, 2], "b": [1, 2, 1], "c": [1, 1, 1]})
    f = parse_random("~ 1 | a/b/c", df)
    assert [n for n, _ in f] == ["a", "a/b", "a/b/c"]
    np.testing.assert_array_equal(f[1][1], [0, 1, 2])
    crossed = parse_random(["~ 1 | a", "~ 1 | b"], df)
    assert [n for n, _ in crossed] == ["a", "b"]
    np.testing.assert_array_equal(crossed[1][1], [0, 1, 0])


# --------------------------------------------------------------------------- pool() and dependent effects


def test_pool_warns_on_shared_study_labels():
    from meta.pool import pool

    with pytest.warns(UserWarning, match=r"rows \[0, 1\] share the study label 'a'; pool\(\) treats them as "
                                         r"independent; for dependent effects use meta.multilevel.rma_mv"):
        pool([0.1, 0.2, 0.3, 0.5], [0.01, 0.02, 0.03, 0.02], slab=["a", "a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool([0.1, 0.2, 0.3, 0.5], [0.01, 0.02, 0.03, 0.02], slab=["a", "b", "c", "d"])


@pytest.mark.parametrize("slab, shared", [
    ([1.0, 2.0, 1.0], "1.0"),  # equal numbers
    ([float("nan"), 2.0, float("nan")], "nan"),  # two NaN objects: one missing label, as pandas counts it
    ([("a", 0), ("b", 1), ("b", 1)], r"\('b', 1\)"),  # tuples
])
def test_pool_shared_label_check_counts_as_pandas_does(slab, shared):
    from meta.pool import pool

    with pytest.warns(UserWarning, match=rf"rows \[(0|1), 2\] share the study label {shared}"):
        pool([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], slab=slab)


# --------------------------------------------------------------------------- forest plot


def test_forest_of_multilevel_fit_groups_by_study():
    from meta.plots import forest

    c = CASES["konstantopoulos REML z residual"]
    r = _fit(c)
    fig = forest(r)
    gids = [t.get_gid() for t in fig.texts]
    n_districts = len(set(c["groups"]["district"]))
    assert sum(1 for g in gids if g and g.startswith("study-header-")) == n_districts
    ax = next(a for a in fig.axes if a.get_label() == "forest")
    markers = [col for col in ax.collections if col.get_gid() == "study-markers"][0]
    assert len(markers.get_offsets()) == r.k
    dia = [p for p in ax.patches if p.get_gid() == "pooled-diamond"][0]
    xs = dia.get_xy()[:, 0]
    np.testing.assert_allclose([xs.min(), xs.max()], [r.ci_lb[0], r.ci_ub[0]], rtol=1e-12)
    with pytest.raises(ValueError, match="coefficients"):
        forest(_fit(CASES["konstantopoulos year REML z residual"]))


# --------------------------------------------------------------------------- cluster-robust tests of the fit


def test_fit_serves_cluster_robust_cr2_tests():
    """The fit exposes what cluster-robust inference needs (X, yi, W, beta, coef_names, level, cluster):
    meta.robust.coef_test(che fit, "CR2") = clubSandwich coef_test(rma.mv CHE fit, vcov = "CR2")."""
    robust = pytest.importorskip("meta.robust", reason="meta.robust (cluster-robust inference) is another module")
    c = CASES["assink che deltype"]
    df = pd.DataFrame({"yi": c["yi"], "vi": REF["vcalc"]["vi"], **c["groups"]})
    r = che("yi", "vi", study="study", es_id="esid", data=df, mods="~ factor(deltype)")
    ct = robust.coef_test(r, vcov="CR2")
    ref = REF["che_cr2"]
    np.testing.assert_allclose(ct.beta, ref["beta"], atol=ATOL)
    np.testing.assert_allclose(ct.se, ref["se"], atol=ATOL)
    np.testing.assert_allclose(ct.df, ref["df"], rtol=1e-4)
    np.testing.assert_allclose(ct.pval, ref["pval"], atol=1e-6)
