"""meta.robust against R clubSandwich 0.5.8 and metafor 3.8.1 robust() (reference values
from tests/r/robust_reference.R -> tests/fixtures/robust_reference.json).

Every case exports R's fitted model (X = model.matrix(res), yi, beta, M = res$M or
diag(vi + tau2), cluster); the core is fed exactly those matrices, so the comparison
is of the cluster-robust computation alone.  Tolerance: relative 1e-8 (seen: <= 1.3e-9),
except where the working model is not W^-1 and year (~1990) sits beside an intercept
(cond(X'WX) ~ 1e11): there R's Satterthwaite df carry rounding error -- they move by
~2e-6 (``konst_mv_userW``) / 7e-8 (``konst_uni_year`` target) with the order of the
cluster levels or a rescaled year, ours do not -- so those are held to 5e-6 / 1e-7, and
the slope's df to 1e-8 against R's well-conditioned refit with centred year
(``test_ill_conditioned_df_agree_with_the_centred_fit``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from meta import robust as R
from meta.pool import pool

FIXTURE = Path(__file__).parent / "fixtures" / "robust_reference.json"
REF = json.loads(FIXTURE.read_text())
CASES = {c["name"]: c for c in REF["cases"]}
RTOL = 1e-8
#: R's Satterthwaite-based numbers for these cases carry rounding error (module docstring)
SATT_RTOL = {"konst_mv_userW": 5e-6}
#: saddlepoint p: R's root is found only to tol eps^0.25, and where P is ill-conditioned (year beside an
#: intercept, cond(P) ~ 1e13) a 1e-11 relative change of P moves that iterate and p by ~2e-7
SADDLE_RTOL = {"konst_uni_year": 1e-6, "konst_mv_userW": 1e-6}
#: CR4 with p = J: every G_j singular, the result rests on which rounding-level eigenvalues pass 1e-12 (seen 1.7e-8)
VCOV_RTOL = {("bcg_p_equals_J", "CR4"): 1e-7}
TESTS = [("z", "df_z", "p_z"), ("naive-t", "df_t", "p_t"), ("naive-tp", "df_tp", "p_tp"),
         ("Satterthwaite", "df_Satt", "p_Satt")]


def arr(x):
    """JSON value -> float array ("Inf" -> inf, null -> NaN, scalar -> length 1)."""
    vals = [np.nan if e is None else np.inf if e == "Inf" else -np.inf if e == "-Inf" else e
            for e in np.atleast_1d(x).tolist()]
    return np.array(vals, dtype=float)


def mat(m):
    return arr(m["values"]).reshape(m["dim"])


def marginal(case):
    """R's marginal covariance M: rma.mv res$M from its cluster blocks, rma.uni diag(vi + tau2)."""
    X = mat(case["X"])
    k = X.shape[0]
    if "M_blocks" in case:
        M = np.zeros((k, k))
        for b in case["M_blocks"]:
            rows = np.atleast_1d(b["rows"])
            M[np.ix_(rows, rows)] = mat(b["M"])
        return M
    return np.diag(arr(case["vi"]) + case["tau2"])


def model(case):
    """R's fit as matrices; W = M^-1 unless the fit had user weights (rma.mv W=, exported as W_diag)."""
    W = np.diag(arr(case["W_diag"])) if "W_diag" in case else None
    M = marginal(case)
    # clubSandwich divides rma.uni weights by their mean (weightMatrix.rma.uni), rma.mv weights not
    w_scale = np.mean(1 / np.diag(M)) if case["model"] == "rma.uni" else 1.0
    return R.WorkingModel.from_matrices(mat(case["X"]), arr(case["yi"]), M=M, W=W, beta=arr(case["beta"]),
                                        coef_names=np.atleast_1d(case["coef"]), w_scale=w_scale)


def close(ours, ref, what, rtol=RTOL):
    np.testing.assert_allclose(np.ravel(np.asarray(ours, float)), np.ravel(ref), rtol=rtol, atol=0, err_msg=what)


@pytest.fixture(autouse=True)
def _quiet_small_df():
    """The df < 4 warning is tested on its own below; here it would only be noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", R.SmallDfWarning)
        yield


# --------------------------------------------------------------------------- clubSandwich


@pytest.mark.parametrize("name", list(CASES))
def test_vcov_cr_and_coef_test_match_clubsandwich(name):
    """vcovCR (CR0, CR1, CR1p, CR1S, CR2, CR3, CR4) and coef_test (z, naive-t, naive-tp,
    Satterthwaite, saddlepoint) with each of them, to 1e-8, on every model of the fixture."""
    case = CASES[name]
    m = model(case)
    cl = case["cluster"]
    compared = 0
    for type_, ref in case["vcovCR"].items():
        if "error" in ref or not np.all(np.isfinite(mat(ref))) or (name, type_) == ("assink_deltype", "CR3"):
            continue  # refusals and R's CR3 of a singular I - H_jj: tested below
        v = R.vcov_cr(m.X, m.W / m.w_scale, m.residuals, cl, type=type_, target=m.default_target())
        vtol = VCOV_RTOL.get((name, type_), RTOL)
        close(v.vcov, mat(ref), f"{name} {type_} vcov", vtol)
        ct = case["coef_test"][type_]
        for test, dfk, pk in TESTS:
            r = R.coef_test(m, cl, vcov=v, test=test)
            close(r.beta, arr(ct["beta"]), f"{name} {type_} beta")
            close(r.se, arr(ct["SE"]), f"{name} {type_} SE", vtol)
            close(r.tval, arr(ct["tstat"]), f"{name} {type_} tstat", vtol)
            tol = max(SATT_RTOL.get(name, RTOL) if test == "Satterthwaite" else RTOL, vtol)
            close(r.df, arr(ct[dfk]), f"{name} {type_} {test} df", tol)
            ok = np.isfinite(arr(ct[pk]))  # naive-tp with J = p: df 0, p NaN in R and here
            close(r.pval[ok], arr(ct[pk])[ok], f"{name} {type_} {test} p", tol)
            assert np.all(np.isnan(r.pval[~ok]))
            compared += 1
        sp = case["saddlepoint"][type_]
        if "error" not in sp:
            r = R.coef_test(m, cl, vcov=v, test="saddlepoint")
            close(r.pval, arr(sp["p_saddle"]), f"{name} {type_} saddlepoint p", max(SADDLE_RTOL.get(name, RTOL), vtol))
            assert np.all(np.isnan(r.df))
    assert compared >= 16


@pytest.mark.parametrize("name", list(CASES))
def test_conf_int_matches_clubsandwich(name):
    case = CASES[name]
    m = model(case)
    for key, level, test in [("satt95", 0.95, "Satterthwaite"), ("satt90", 0.90, "Satterthwaite"),
                             ("tp95", 0.95, "naive-tp")]:
        ref = case["conf_int"][key]
        r = R.conf_int(m, case["cluster"], level=level, test=test)
        tol = SATT_RTOL.get(name, RTOL) if test == "Satterthwaite" else RTOL
        ok = np.isfinite(arr(ref["CI_L"]))
        close(r.df, arr(ref["df"]), f"{name} {key} df", tol)
        close(r.ci_lb[ok], arr(ref["CI_L"])[ok], f"{name} {key} CI_L", tol)
        close(r.ci_ub[ok], arr(ref["CI_U"])[ok], f"{name} {key} CI_U", tol)
        close(r.pval[ok], arr(ref["p_val"])[ok], f"{name} {key} p", tol)


WALD = [(n, w) for n, c in CASES.items() for w in (c.get("wald") or {})]


@pytest.mark.parametrize("name,hyp", WALD)
def test_wald_test_matches_clubsandwich(name, hyp):
    """Wald_test with CR2 and CR1: chi-sq, Naive-F, Naive-Fp, HTA, HTB, HTZ, EDF, EDT (F, delta, df, p)."""
    case = CASES[name]
    m = model(case)
    w = case["wald"][hyp]
    C = mat(w["C"])
    for type_ in ("CR2", "CR1"):
        ref = w[type_]
        for i, test in enumerate(np.atleast_1d(ref["test"])):
            r = R.wald_test(m, C, case["cluster"], vcov=type_, test=str(test))
            what = f"{name} {hyp} {type_} {test}"
            tol = RTOL if test in ("chi-sq", "Naive-F", "Naive-Fp") else SATT_RTOL.get(name, RTOL)
            assert r.df_num == C.shape[0]
            close(r.fstat, arr(ref["Fstat"])[i], what + " F", tol)
            close(r.delta, arr(ref["delta"])[i], what + " delta", tol)
            close(r.df_denom, arr(ref["df_denom"])[i], what + " df", tol)
            if np.isfinite(arr(ref["p_val"])[i]):
                close(r.pval, arr(ref["p_val"])[i], what + " p", tol)
            else:
                assert np.isnan(r.pval), what


def test_wald_default_constraints_are_metafor_btt():
    """constraints=None tests every coefficient but the intercept (metafor's btt) = the moderators case."""
    case = CASES["assink_deltype"]
    ref = case["wald"]["moderators"]["CR2"]
    i = ref["test"].index("HTZ")
    r = R.wald_test(model(case), None, case["cluster"])
    assert r.test == "HTZ"
    close(r.fstat, arr(ref["Fstat"])[i], "HTZ F")
    close(r.pval, arr(ref["p_val"])[i], "HTZ p")
    by_name = R.wald_test(model(case), ["deltypegeneral", "deltypeovert"], case["cluster"])
    assert by_name.fstat == pytest.approx(r.fstat, rel=1e-12)


TARGET = [n for n, c in CASES.items() if c.get("target")]


@pytest.mark.parametrize("name", TARGET)
def test_explicit_target_matches_clubsandwich(name):
    """vcovCR(target = ..., inverse_var = FALSE): the working model given apart from the weights
    (clubSandwich's second branch of CR2 and the three-part H array of get_GH)."""
    case = CASES[name]
    m = model(case)
    tg = case["target"]
    rtol = 1e-7 if name == "konst_uni_year" else RTOL
    v = R.vcov_cr(m.X, m.W, m.residuals, case["cluster"], type="CR2", target=arr(tg["target"]))
    assert not v.inverse_var
    close(v.vcov, mat(tg["CR2"]), f"{name} target vcov")
    r = R.coef_test(m, case["cluster"], vcov=v)
    close(r.df, arr(tg["coef_test"]["df_Satt"]), f"{name} target df", rtol)
    close(r.pval, arr(tg["coef_test"]["p_Satt"]), f"{name} target p", rtol)
    if tg.get("wald"):
        for i, test in enumerate(tg["wald"]["test"]):
            w = R.wald_test(m, None, case["cluster"], vcov=v, test=test)
            close([w.fstat, w.df_denom, w.pval],
                  [arr(tg["wald"][k])[i] for k in ("Fstat", "df_denom", "p_val")], f"{name} target {test}", rtol)


def test_ill_conditioned_df_agree_with_the_centred_fit():
    """The slope's Satterthwaite df from R's refit with year - 1990 (variance components fixed), where
    X'WX is well conditioned: ours from the uncentred matrices agree to 1e-8 (R's uncentred ones do not)."""
    ref = REF["centred"]
    m = model(CASES["konst_mv_userW"])
    cl = CASES["konst_mv_userW"]["cluster"]
    for type_ in ("CR0", "CR2"):
        close(R.coef_test(m, cl, vcov=type_).df[1], ref["konst_mv_userW"][type_], f"userW {type_} slope df")
    case = CASES["konst_uni_year"]
    m = model(case)
    v = R.vcov_cr(m.X, m.W, m.residuals, case["cluster"], target=arr(case["target"]["target"]))
    close(R.coef_test(m, case["cluster"], vcov=v).df[1], ref["konst_uni_year_target"], "uni target slope df")


def test_cr4_with_a_covariate_constant_within_clusters_follows_clubsandwich_weight_scale():
    """year is constant within each district, so every F_j of CR4 has rank 1 and its second eigenvalue is
    rounding noise; whether that passes the absolute 1e-12 threshold depends on the scale of W.
    clubSandwich divides rma.uni weights by their mean: with w_scale = mean(w) (what a PoolResult gets)
    we match it, with the raw weights not."""
    case = CASES["konst_uni_year"]
    m = model(case)
    assert m.w_scale == pytest.approx(np.mean(np.diag(m.W)))
    ref = mat(case["vcovCR"]["CR4"])
    close(R.vcov_cr(m.X, m.W / m.w_scale, m.residuals, case["cluster"], type="CR4").vcov, ref, "CR4 scaled")
    raw = R.vcov_cr(m.X, m.W, m.residuals, case["cluster"], type="CR4").vcov
    assert not np.allclose(raw, ref, rtol=1e-6)
    res = pool(arr(CASES["bcg_dl_alloc"]["yi"]), arr(CASES["bcg_dl_alloc"]["vi"]))
    assert R._fit_model(res).w_scale == pytest.approx(np.mean(1 / (res.vi + res.tau2)), rel=1e-14)


def test_user_weights_take_m_as_working_model():
    """rma.mv(W = diag(1/vi)): W is not M^-1, so clubSandwich's working model is M (inverse_var = FALSE);
    a fit exposing both W and M gets that by itself, and Phi = W^-1 would give another CR2."""
    case = CASES["konst_mv_userW"]
    m = model(case)
    assert not m.inverse_weights and model(CASES["konst_mv_year"]).inverse_weights
    fit = SimpleNamespace(X=m.X, yi=m.yi, W=m.W, M=m.M, beta=m.beta)
    v = R.coef_test(fit, case["cluster"])
    close(v.se, arr(case["coef_test"]["CR2"]["SE"]), "CR2 SE with Phi = M")
    close(v.df, arr(case["coef_test"]["CR2"]["df_Satt"]), "df with Phi = M", SATT_RTOL["konst_mv_userW"])
    wrong = R.vcov_cr(m.X, m.W, m.residuals, case["cluster"])  # Phi = W^-1 = diag(vi)
    assert not np.allclose(wrong.vcov, mat(case["vcovCR"]["CR2"]), rtol=1e-3)


# --------------------------------------------------------------------------- metafor robust()


ROBUST = [(n, k) for n, c in CASES.items() for k, r in c["robust"].items() if "error" not in r]


@pytest.mark.parametrize("name,how", ROBUST)
def test_robust_matches_metafor(name, how):
    """metafor 3.8.1 robust(): CR1 (adjust = TRUE), CR0 (adjust = FALSE), "Stata1", "Stata2", clubSandwich = TRUE
    (CR2 + Satterthwaite + HTZ, and CR1 + naive-tp + Naive-F)."""
    case = CASES[name]
    ref = case["robust"][how]
    kw = {"CR1": {}, "CR0": {"adjust": False}, "clubSandwich": {"clubSandwich": True}, "Stata1": {"adjust": "Stata1"},
          "Stata2": {"adjust": "Stata2"},
          "clubSandwich_CR1_tp": {"clubSandwich": True, "vcov": "CR1", "coef_test": "naive-tp", "wald_test": "Naive-F"}}[how]
    r = R.robust(model(case), case["cluster"], **kw)
    assert r.vbest == ref["vbest"] and r.n == ref["n"]
    close(r.beta, arr(ref["beta"]), f"{name} {how} beta")
    close(r.se, arr(ref["se"]), f"{name} {how} se")
    close(r.tval, arr(ref["zval"]), f"{name} {how} zval")
    close(r.vb, mat(ref["vb"]), f"{name} {how} vb")
    tol = SATT_RTOL.get(name, RTOL) if how == "clubSandwich" else RTOL
    assert r.method == ("clubSandwich" if how.startswith("clubSandwich") else "default")
    for ours, key in [(r.pval, "pval"), (r.ci_lb, "ci_lb"), (r.ci_ub, "ci_ub"), (r.qm, "QM"), (r.qm_df, "QMdf"),
                      (r.qm_p, "QMp")]:
        close(ours, arr(ref[key]), f"{name} {how} {key}", tol)
    close(r.df, np.broadcast_to(arr(ref["dfs"]), r.df.shape), f"{name} {how} dfs", tol)


@pytest.mark.parametrize("name,method,tol", [("bcg_dl_alloc", "DL", 1e-8), ("bcg_reml_alloc", "REML", 1e-6)])
def test_robust_of_a_pool_result(name, method, tol):
    """A PoolResult is rma.uni without moderators: pool(yi, vi) on dat.bcg, clustered by allocation,
    gives metafor's robust() and clubSandwich's numbers (REML: to our tau2's agreement with metafor)."""
    case = CASES[name]
    res = pool(arr(case["yi"]), arr(case["vi"]), method=method)
    assert res.tau2 == pytest.approx(case["tau2"], rel=tol)
    cl = case["cluster"]
    for how, kw in [("CR1", {}), ("CR0", {"adjust": False}), ("clubSandwich", {"clubSandwich": True})]:
        ref = case["robust"][how]
        r = R.robust(res, cl, **kw)
        close(np.r_[r.beta, r.se, r.pval, r.ci_lb, r.ci_ub, r.df],
              np.r_[arr(ref["beta"]), arr(ref["se"]), arr(ref["pval"]), arr(ref["ci_lb"]), arr(ref["ci_ub"]),
                    arr(ref["dfs"])], f"{name} {how}", tol)
    ct = R.coef_test(res, cl)
    close(ct.df, arr(case["coef_test"]["CR2"]["df_Satt"]), "Satterthwaite df", tol)
    close(R.vcov_cr(np.ones((res.k, 1)), 1 / (res.vi + res.tau2), res.yi - res.estimate, cl).vcov,
          mat(case["vcovCR"]["CR2"]), "CR2 from plain matrices", tol)


def test_robust_with_saddlepoint_tests_as_metafor():
    """robust(clubSandwich=True, coef_test="saddlepoint"): p from the saddlepoint, df NA, intervals from
    Satterthwaite with metafor's warning."""
    case = CASES["assink_year"]
    m = model(case)
    with pytest.warns(UserWarning, match="cannot use 'saddlepoint' for the confidence intervals"):
        r = R.robust(m, case["cluster"], clubSandwich=True, coef_test="saddlepoint")
    close(r.pval, arr(case["saddlepoint"]["CR2"]["p_saddle"]), "saddlepoint p")
    close(r.ci_lb, arr(case["conf_int"]["satt95"]["CI_L"]), "Satterthwaite CI")
    assert np.all(np.isnan(r.df))
    with pytest.raises(ValueError, match="saddlepoint interval has no closed form"):
        R.conf_int(m, case["cluster"], test="saddlepoint")


def test_knha_fit_uses_the_model_bread_metafor_carries_the_kh_factor():
    """metafor 3.8.1 robust() of a test = "knha" fit builds its bread from x$vb = s2w (X'WX)^-1, so its
    se is s2w times the se of the z fit; ours (and clubSandwich's) bread is (X'WX)^-1 either way."""
    case = CASES["bcg_dl_alloc"]
    z = R.robust(pool(arr(case["yi"]), arr(case["vi"]), method="DL"), case["cluster"])
    hk = R.robust(pool(arr(case["yi"]), arr(case["vi"]), method="DL", test="hksj"), case["cluster"])
    assert hk.se[0] == pytest.approx(z.se[0], rel=1e-13)
    close(hk.se * REF["knha"]["s2w"], arr(REF["knha"]["robust"]["se"]), "metafor knha se = s2w * ours")


# --------------------------------------------------------------------------- adversarial inputs


def test_singleton_clusters_give_hc2():
    """Every cluster one effect (dat.bcg by trial): CR2 is the HC2-type estimator
    sum w_i^2 e_i^2 / (1 - h_ii) / (sum w)^2 with h_ii = w_i / sum w (intercept-only, Phi = W^-1)."""
    case = CASES["bcg_dl_trial"]
    m = model(case)
    w = np.diag(m.W)
    h = w / w.sum()
    hc2 = np.sum(w ** 2 * m.residuals ** 2 / (1 - h)) / w.sum() ** 2
    v = R.vcov_cr(m.X, m.W, m.residuals, case["cluster"])
    assert v.vcov[0, 0] == pytest.approx(hc2, rel=1e-12)
    close(hc2, mat(case["vcovCR"]["CR2"]), "HC2 closed form vs clubSandwich")


def test_small_df_warning_fires_and_names_the_coefficient():
    """3 clusters (dat.bcg by allocation): Satterthwaite df 1.72 < 4 -> SmallDfWarning naming intrcpt,
    from coef_test, conf_int and robust(clubSandwich=True); none with 17 clusters (df 14.5)."""
    case = CASES["bcg_reml_alloc"]
    m = model(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error", R.SmallDfWarning)
        for call in (lambda: R.coef_test(m, case["cluster"]), lambda: R.conf_int(m, case["cluster"]),
                     lambda: R.robust(m, case["cluster"], clubSandwich=True)):
            with pytest.warns(R.SmallDfWarning, match=r"degrees of freedom < 4 for intrcpt \(df = 1\.72\)"):
                call()
        big = CASES["assink_mv"]
        R.coef_test(model(big), big["cluster"])  # an error here if it warned
        R.robust(m, case["cluster"])  # metafor's default: df = n - p, no Satterthwaite, no warning


def test_small_df_warning_for_htz_denominator():
    case = CASES["assink_deltype"]
    ref = case["wald"]["moderators"]["CR2"]
    assert arr(ref["df_denom"])[ref["test"].index("HTZ")] < 4
    with pytest.warns(R.SmallDfWarning, match="denominator degrees of freedom < 4"):
        R.wald_test(model(case), None, case["cluster"])


def test_p_equal_to_clusters():
    """p = 3 coefficients, 3 clusters: metafor robust() refuses (with or without clubSandwich); clubSandwich
    itself computes CR2 (and we match it above, df 1.35-1.38); CR1p divides by J - p = 0 -> refused here, Inf in R."""
    case = CASES["bcg_p_equals_J"]
    m = model(case)
    for how in ("CR1", "CR0", "clubSandwich"):
        assert "must be larger than the number of fixed effects" in case["robust"][how]["error"]
        with pytest.raises(ValueError, match=r"number of clusters \(3\) must be larger than the number of fixed effects \(3\)"):
            R.robust(m, case["cluster"], clubSandwich=how == "clubSandwich", adjust=how != "CR0")
    assert not np.all(np.isfinite(mat(case["vcovCR"]["CR1p"])))
    with pytest.raises(ValueError, match="more clusters than coefficients"):
        R.vcov_cr(m.X, m.W, m.residuals, case["cluster"], type="CR1p")


def test_cr3_refuses_a_cluster_that_alone_determines_a_coefficient():
    """dat.assink2016 ~deltype: study 16 alone holds the 'overt' level of deltype, so I - H_jj is singular.
    R's solve() refuses in one fit (big cluster) and returns rounding noise in the other; we refuse both."""
    assert "error" in CASES["assink_big_cluster"]["vcovCR"]["CR3"]
    for name in ("assink_deltype", "assink_big_cluster"):
        case = CASES[name]
        m = model(case)
        with pytest.raises(ValueError, match="CR3.*singular for cluster '16'"):
            R.vcov_cr(m.X, m.W, m.residuals, case["cluster"], type="CR3")


def test_cluster_of_32_and_singletons_in_one_model():
    """The fixture holds the shapes the task names: clusters of one effect, one of 32."""
    sizes = pd.Series(CASES["assink_big_cluster"]["cluster"]).value_counts()
    assert sizes.max() == 32 and (sizes == 1).sum() >= 3
    r = R.robust(model(CASES["assink_big_cluster"]), CASES["assink_big_cluster"]["cluster"])
    assert max(r.cluster_sizes.values()) == 32 and r.n == len(sizes)


# --------------------------------------------------------------------------- fits by duck typing


def test_duck_typed_fit_and_mapping_and_fit_cluster():
    """An object with X, yi, M (W = M^-1), beta and cluster (as the multilevel rma_mv fit will expose)
    gives the same as the WorkingModel; so does a mapping, and W alone."""
    case = CASES["assink_year"]
    M = marginal(case)
    X, yi, beta = mat(case["X"]), arr(case["yi"]), arr(case["beta"])
    ref = R.coef_test(model(case), case["cluster"])
    fit = SimpleNamespace(X=X, yi=yi, M=M, W=np.linalg.inv(M), beta=beta, vb=None, cluster=case["cluster"])
    for f in (fit, {"X": X, "yi": yi, "M": M, "beta": beta, "cluster": case["cluster"]},
              SimpleNamespace(X=X, yi=yi, W=np.linalg.inv(M), cluster=case["cluster"])):
        r = R.coef_test(f)  # cluster from the fit
        np.testing.assert_allclose(r.df, ref.df, rtol=1e-9)
        np.testing.assert_allclose(r.se, ref.se, rtol=1e-9)
        np.testing.assert_allclose(r.beta, ref.beta, rtol=1e-9)  # beta = GLS when not given
    assert R.coef_test(fit).coef == ("intrcpt", "X2")
    from scipy import sparse
    sp = R.coef_test(SimpleNamespace(X=X, yi=yi, M=sparse.csr_matrix(M), beta=beta), case["cluster"])
    np.testing.assert_allclose(sp.df, ref.df, rtol=1e-9)
    assert R.coef_test(SimpleNamespace(X=pd.DataFrame(X, columns=["intrcpt", "year"]), yi=yi, M=M),
                       case["cluster"]).coef == ("intrcpt", "year")


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    case = CASES["konst_mv_year"]
    m = model(case)
    cl = case["cluster"]
    with pytest.raises(ValueError, match=r"cluster must have one label per row of the fit \(k = 56\); got 55"):
        R.coef_test(m, cl[:-1])
    with pytest.raises(ValueError, match="at least 2 clusters; got 1"):
        R.coef_test(m, ["a"] * m.k)
    bad = list(cl)
    bad[3] = None
    with pytest.raises(ValueError, match=r"cluster has missing labels at positions \(0-based\): 3"):
        R.robust(m, bad)
    with pytest.raises(ValueError, match="give cluster="):
        R.coef_test(m)
    with pytest.raises(ValueError, match="type must be one of CR0, CR1, CR1p, CR1S, CR2, CR3, CR4; got 'CR5'"):
        R.coef_test(m, cl, vcov="CR5")
    with pytest.raises(ValueError, match="test must be one of z, naive-t"):
        R.coef_test(m, cl, test="Satterthwaite-Welch")
    with pytest.raises(ValueError, match="test must be one of chi-sq"):
        R.wald_test(m, None, cl, test="EDX")
    with pytest.raises(ValueError, match=r"constraints must be a q x 2 matrix"):
        R.wald_test(m, np.eye(3), cl)
    with pytest.raises(ValueError, match="positions must be integers 0..1"):
        R.wald_test(m, [5], cl)
    with pytest.raises(ValueError, match="adjust must be True, False"):
        R.robust(m, cl, adjust="yes")
    with pytest.raises(ValueError, match=r"level must be a fraction in \(0, 1\) such as 0.95, or a percentage"):
        R.conf_int(m, cl, level=100)
    assert R.conf_int(m, cl, level=95).to_frame().equals(R.conf_int(m, cl, level=0.95).to_frame())  # the library's one rule
    with pytest.raises(TypeError, match="fit must be a meta.pool.PoolResult"):
        R.coef_test(object(), cl)
    with pytest.raises(ValueError, match="W links rows .* of different clusters"):
        R.coef_test(m, np.arange(m.k) % 2)  # schools of a district split across two clusters
    Xc = np.column_stack([m.X, m.X[:, 1] * 2])
    with pytest.raises(ValueError, match="X'WX is not positive definite.*collinear"):
        R.vcov_cr(Xc, m.W, m.residuals, cl)
    with pytest.raises(ValueError, match="yi must be finite"):
        R.WorkingModel.from_matrices(m.X, np.r_[np.nan, m.yi[1:]], M=marginal(case))
    other = R.vcov_cr(np.ones((m.k, 1)), m.W, m.residuals, cl)
    with pytest.raises(ValueError, match="vcov was computed for another model"):
        R.coef_test(m, cl, vcov=other)


# --------------------------------------------------------------------------- results


def test_results_are_frozen_tables_with_summaries():
    case = CASES["assink_deltype"]
    m = model(case)
    cl = case["cluster"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rob = R.robust(m, cl, clubSandwich=True)
        ct = R.coef_test(m, cl)
        ci = R.conf_int(m, cl)
        wt = R.wald_test(m, None, cl)
    v = R.vcov_cr(m.X, m.W, m.residuals, cl, coef_names=m.coef_names)
    assert list(rob.to_frame().columns) == ["coef", "beta", "se", "tval", "df", "pval", "ci_lb", "ci_ub"]
    assert list(ct.to_frame()["coef"]) == ["intrcpt", "deltypegeneral", "deltypeovert"]
    assert list(ci.to_frame().columns) == ["coef", "beta", "se", "df", "ci_lb", "ci_ub", "pval"]
    assert wt.to_frame().loc[0, "test"] == "HTZ"
    assert v.to_frame().shape == (3, 3) and list(v.to_frame().index) == list(ct.coef)
    s = rob.summary()
    assert "Number of clusters:    17" in s and "Test of Moderators:" in s and "CR2" in s and "Satterthwaite" in s
    assert "deltypeovert" in ct.summary() and "95% confidence" in ci.summary() and "HTZ" in wt.summary()
    assert "CR1" in R.robust(m, cl).summary() and "residual method" in R.robust(m, cl).summary()
    assert "intrcpt" in repr(rob) and "CR2" in v.summary()
    for obj, name in ((rob, "se"), (ct, "df"), (wt, "fstat"), (v, "vcov")):
        with pytest.raises(AttributeError):
            setattr(obj, name, None)
    with pytest.raises(ValueError, match="read-only"):
        rob.se[0] = 0.0
    assert rob.int_only is False and R.robust(model(CASES["assink_mv"]), CASES["assink_mv"]["cluster"]).int_only
    assert "Test of Moderators" not in R.robust(model(CASES["assink_mv"]), CASES["assink_mv"]["cluster"]).summary()


# --------------------------------------------------------------------------- properties (no R)


def test_robust_default_needs_no_nesting_clubsandwich_does():
    """metafor robust() with clusters that cut through the random effects (each school its own cluster,
    district effects linking them) uses the full W; clubSandwich (and our clubSandwich=True) refuses."""
    ref = REF["nonnested"]
    case = CASES[ref["case"]]
    r = R.robust(model(case), ref["cluster"])
    for ours, key in [(r.se, "se"), (r.pval, "pval"), (r.ci_lb, "ci_lb"), (r.qm, "QM")]:
        close(ours, arr(ref["CR1"][key]), f"non-nested {key}")
    assert r.n == 56
    assert "Could not obtain the cluster-robust variance-covariance matrix" in ref["clubSandwich"]
    with pytest.raises(ValueError, match="nested within cluster"):
        R.robust(model(case), ref["cluster"], clubSandwich=True)


def _random_model(seed, sizes, p, diag=False):
    rng = np.random.default_rng(seed)
    k = sum(sizes)
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    X = np.column_stack([np.ones(k), rng.normal(size=(k, p - 1))])
    M = np.zeros((k, k))
    start = 0
    for n in sizes:
        A = rng.normal(size=(n, n))
        M[start:start + n, start:start + n] = np.diag(rng.uniform(0.05, 0.5, n)) if diag else A @ A.T / n + 0.1 * np.eye(n)
        start += n
    yi = X @ rng.normal(size=p) + rng.normal(size=k)
    return R.WorkingModel.from_matrices(X, yi, M=M), cluster


@pytest.mark.parametrize("seed,sizes,p", [(1, [1, 2, 3, 4, 5, 6], 2), (2, [3] * 8, 3), (3, [1] * 9 + [30], 2)])
def test_cr2_is_unbiased_under_the_working_model(seed, sizes, p):
    """Bell & McCaffrey (2002) / Pustejovsky & Tipton (2018), theorem 1: with e = (I - H) y and Var(y) = Phi,
    E[V^CR2] = B X'W Phi W X B (= B when Phi = W^-1); also with an explicit target Phi != W^-1."""
    m, cl = _random_model(seed, sizes, p)
    k = m.k
    B = np.linalg.inv(m.X.T @ m.W @ m.X)
    H = m.X @ B @ m.X.T @ m.W
    for W, target in ((m.W, None), (np.diag(np.diag(m.W)), m.M)):
        Bw = np.linalg.inv(m.X.T @ W @ m.X)
        Hw = m.X @ Bw @ m.X.T @ W
        Ee = (np.eye(k) - Hw) @ m.M @ (np.eye(k) - Hw).T
        v = R.vcov_cr(m.X, W, np.zeros(k), cl, target=target)
        expect = sum(Bw @ e @ Ee[np.ix_(i, i)] @ e.T @ Bw for e, i in zip(v._E, v._idx))
        np.testing.assert_allclose(expect, Bw @ m.X.T @ W @ m.M @ W @ m.X @ Bw, rtol=1e-9, atol=1e-14)
    assert H.shape == (k, k)


def test_order_of_rows_and_cluster_labels_does_not_matter():
    m, cl = _random_model(5, [2, 5, 1, 4, 3, 6, 2], 3)
    perm = np.random.default_rng(0).permutation(m.k)
    mp = R.WorkingModel.from_matrices(m.X[perm], m.yi[perm], M=m.M[np.ix_(perm, perm)])
    labels = np.array(["g", "c", "a", "f", "b", "e", "d"])[cl]
    a = R.coef_test(m, cl)
    b = R.coef_test(mp, labels[perm])
    np.testing.assert_allclose(b.se, a.se, rtol=1e-10)
    np.testing.assert_allclose(b.df, a.df, rtol=1e-10)
    wa, wb = R.wald_test(m, None, cl), R.wald_test(mp, None, labels[perm])
    assert wb.fstat == pytest.approx(wa.fstat, rel=1e-10) and wb.df_denom == pytest.approx(wa.df_denom, rel=1e-10)
