"""meta.regression and meta.regtest against metafor 3.8.1 rma(yi, vi, mods=), predict(), permutest(), regtest().

References: tests/r/regression_reference.R -> tests/fixtures/regression_reference.json
(metadat dat.bcg with escalc("RR"), dat.hackshaw1998, constructed edge cases; iterative
estimators run by metafor to threshold/tol 1e-12).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta.pool import pool
from meta.regression import RegressionResult, meta_regression, permutest, predict
from meta.regtest import regtest
from tests._reference import arr

REF = json.loads((Path(__file__).parent / "fixtures" / "regression_reference.json").read_text())
BCG = pd.DataFrame(REF["data"]["bcg"])
HACK = pd.DataFrame(REF["data"]["hack"])
DATA = {"bcg": BCG, "hack": HACK}
TEST_NAMES = {"z": "z", "knha": "hksj", "adhoc": "adhoc", "t": "t"}

#: closed forms (FE, DL, HE, HS, SJ) and the converged roots (ML, REML, PM, EB: metafor run to 1e-12):
#: both agree to ~1e-9 relative; seen worst ~3e-10 (REML/ML roots), closed forms ~1e-13
RTOL = 1e-8
ATOL = 1e-10


def close(ours, theirs, rtol=RTOL, atol=ATOL, what=""):
    ours = np.atleast_1d(np.asarray(ours, dtype=float))
    theirs = arr(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def check_fit(res: RegressionResult, f: dict, what: str):
    assert res.k == f["k"] and res.p == f["p"], what
    assert list(res.names) == list(np.atleast_1d(f["names"])), what
    for ours, theirs in [("beta", "beta"), ("se", "se"), ("zval", "zval"), ("pval", "pval"), ("ci_lb", "ci_lb"),
                         ("ci_ub", "ci_ub"), ("tau2", "tau2"), ("se_tau2", "se_tau2"), ("I2", "I2"), ("H2", "H2"),
                         ("R2", "R2"), ("QE", "QE"), ("QEp", "QEp"), ("QM", "QM"), ("QMp", "QMp"), ("s2w", "s2w"),
                         ("weights", "weights")]:
        close(getattr(res, ours), f[theirs], what=f"{what}: {ours}")
    close(res.vb.ravel(), f["vb"], what=f"{what}: vb")
    qmdf = arr(f["QMdf"])
    assert res.QMdf[0] == qmdf[0] and (res.QMdf[1] is None) == np.isnan(qmdf[1]), what
    assert (res.ddf is None) == (f["ddf"] is None), what


GRID = [(case["name"], case["data"], case["formula"], f) for case in REF["grid"] for f in case["fits"]]


def cols(formula: str) -> list[str]:
    """``"~ a + b"`` -> ``["a", "b"]``: the same model by column names (no formula library needed)."""
    return [t.strip() for t in formula.replace("~", "").split("+")]


def frame_of(formula: str, d: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The moderators of ``~ a + b`` (``~ 0 + a``: no intercept) as a DataFrame of d's columns."""
    terms = [t.strip() for t in formula.replace("~", "").split("+")]
    return d[[t for t in terms if t != "0"]], "0" not in terms


@pytest.mark.parametrize("name,data,formula,f", GRID, ids=[f"{g[0]}-{g[3]['method']}-{g[3]['test']}" for g in GRID])
def test_every_method_and_test_matches_metafor(name, data, formula, f):
    """rma(yi, vi, mods = formula, method=, test=) on dat.bcg / dat.hackshaw1998: all fields to 1e-8
    (moderators passed as a DataFrame: text columns coded as R's factors)."""
    mods, intercept = frame_of(formula, DATA[data])
    res = meta_regression(DATA[data].yi, DATA[data].vi, mods, method=f["method"], test=TEST_NAMES[f["test"]],
                          intercept=intercept)
    check_fit(res, f, f"{name} {f['method']} {f['test']}")


FORMULA_GRID = [g for g in GRID if g[3]["method"] == "REML"]


@pytest.mark.parametrize("name,data,formula,f", FORMULA_GRID,
                         ids=[f"{g[0]}-{g[3]['method']}-{g[3]['test']}" for g in FORMULA_GRID])
def test_formula_mods_match_metafor(name, data, formula, f):
    """The same models written as metafor's formulas over data= (optional dependency formulaic)."""
    pytest.importorskip("formulaic")
    res = meta_regression("yi", "vi", formula, data=DATA[data], method=f["method"], test=TEST_NAMES[f["test"]])
    check_fit(res, f, f"{name} {f['method']} {f['test']} (formula)")


def test_dataframe_mods_code_factors_as_r_treatment_contrasts():
    """A DataFrame with a text column gives R's dummies (levels sorted, first dropped) and the formula's fit."""
    f = next(g[3] for g in GRID if g[0] == "bcg_ablat_year_alloc" and g[3]["method"] == "REML" and g[3]["test"] == "z")
    res = meta_regression(BCG.yi, BCG.vi, BCG[["ablat", "year", "alloc"]])
    check_fit(res, f, "DataFrame mods")
    res2 = meta_regression("yi", "vi", ["ablat", "year", "alloc"], data=BCG)
    np.testing.assert_array_equal(res2.beta, res.beta)


def test_array_mods_and_level_as_percentage():
    f = next(g[3] for g in GRID if g[0] == "bcg_ablat" and g[3]["method"] == "DL" and g[3]["test"] == "knha")
    res = meta_regression(BCG.yi.to_numpy(), BCG.vi.to_numpy(), BCG.ablat.to_numpy(), method="dl", test="knha", level=95)
    close(res.beta, f["beta"])
    close(res.ci_lb, f["ci_lb"])
    assert res.names == ("intrcpt", "mods")
    two = meta_regression(BCG.yi, BCG.vi, BCG[["ablat", "year"]].to_numpy(), method="DL")
    assert two.names == ("intrcpt", "mods1", "mods2")


def test_intercept_only_equals_pool():
    """Without moderators the model is pool()'s (same estimators, same global REML maximum)."""
    for method in ("REML", "DL", "PM", "ML"):
        r = meta_regression(BCG.yi, BCG.vi, method=method, test="knha")
        p = pool(BCG.yi, BCG.vi, method=method, test="knha")
        np.testing.assert_allclose([r.beta[0], r.se[0], r.tau2, r.I2, r.QE, r.pval[0]],
                                   [p.estimate, p.se, p.tau2, p.i2, p.q, p.p], rtol=1e-9, atol=1e-12)


def test_pool_with_mods_delegates():
    f = next(g[3] for g in GRID if g[0] == "bcg_ablat" and g[3]["method"] == "REML" and g[3]["test"] == "z")
    res = pool(BCG.yi, BCG.vi, mods=BCG.ablat, method="REML")
    assert isinstance(res, RegressionResult)
    close(res.beta, f["beta"])
    res = pool("yi", "vi", mods=["ablat"], data=BCG, method="REML")
    close(res.QM, f["QM"])
    with pytest.raises(ValueError, match="data= goes with mods="):
        pool("yi", "vi", data=BCG)


def test_frame_and_summary():
    res = meta_regression("yi", "vi", ["ablat", "alloc"], data=BCG, test="knha")
    fr = res.to_frame()
    assert list(fr.columns) == ["estimate", "se", "tval", "pval", "ci_lb", "ci_ub"]
    assert list(fr.index) == ["intrcpt", "ablat", "allocrandom", "allocsystematic"]
    text = repr(res)
    assert text == res.summary()
    assert "Mixed-Effects Model (k = 13; tau^2 estimator: REML)" in text
    assert "Test of Moderators (coefficients 2:4):" in text and "F(df1 = 3, df2 = 9)" in text
    assert res.slab == tuple(BCG.index)  # the pandas index, as pool()
    assert meta_regression(BCG.yi.to_numpy(), BCG.vi.to_numpy(), BCG.ablat.to_numpy()).slab == tuple(range(1, 14))


# --------------------------------------------------------------------------- predict


@pytest.mark.parametrize("case", REF["predict"], ids=lambda c: f"{c['test']}-{c['pi']}")
def test_predict_matches_metafor(case):
    res = meta_regression("yi", "vi", cols(case["formula"]), data=BCG, method=case["method"], test=TEST_NAMES[case["test"]],
                          pi=case["pi"])
    p = res.predict(arr(case["newmods"]))
    for col, key in [("pred", "pred"), ("se", "se"), ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub"), ("pi_lb", "pi_lb"),
                     ("pi_ub", "pi_ub")]:
        close(p[col], case[key], what=col)


def test_predict_factor_model_by_matrix_and_by_original_variables():
    c = REF["predict_factor"]
    res = meta_regression("yi", "vi", cols(c["formula"]), data=BCG, method=c["method"])
    by_matrix = predict(res, np.array(c["newmods"], dtype=float))
    by_data = predict(res, pd.DataFrame(c["new_data"]))
    for col in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        close(by_matrix[col], c[col], what=col)
        close(by_data[col], c[col], what=col)
    fitted = predict(res)
    for col in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        close(fitted[col], REF["predict_fitted"][col], what=col)
    noint = predict(res, np.array(c["newmods"], dtype=float), intercept=False)
    close(noint["pred"], REF["predict_noint"]["pred"])
    close(noint["se"], REF["predict_noint"]["se"])
    # the same with a DataFrame of moderators (not a formula)
    res2 = meta_regression(BCG.yi, BCG.vi, BCG[["ablat", "alloc"]], method="DL")
    close(predict(res2, pd.DataFrame(c["new_data"]))["pred"], c["pred"])


def test_predict_bad_newmods():
    res = meta_regression("yi", "vi", ["ablat", "year"], data=BCG)
    with pytest.raises(ValueError, match="newmods has 1 columns"):
        predict(res, [[1.0], [2.0]])
    with pytest.raises(ValueError, match=r"newmods must be finite.*\(1, 0\)"):
        predict(res, [[1.0, 2.0], [np.nan, 3.0]])
    res = meta_regression(BCG.yi, BCG.vi, BCG[["alloc"]])
    with pytest.raises(ValueError, match="not seen when fitting"):
        predict(res, pd.DataFrame({"alloc": ["unknown"]}))


# --------------------------------------------------------------------------- permutest


@pytest.mark.parametrize("case", REF["permutest"], ids=lambda c: f"{c['method']}-{c['test']}")
def test_exact_permutest_matches_metafor(case):
    """All 360 distinct orders of ablat on the first six BCG trials (two share ablat = 44)."""
    d = BCG.iloc[:6]
    res = meta_regression("yi", "vi", cols(case["formula"]), data=d, method=case["method"], test=TEST_NAMES[case["test"]])
    pt = permutest(res)
    assert pt.exact and pt.iter == case["exact_iter"] == 360
    close(pt.pval, case["pval"], rtol=1e-12)
    close(pt.QMp, case["QMp"], rtol=1e-12)
    assert "p-values based on permutation testing (exact, 360 permutations)" in pt.summary()
    assert list(pt.to_frame().columns) == ["estimate", "se", "zval" if case["test"] == "z" else "tval", "pval"]


def test_exact_permutest_intercept_only_sign_flips():
    c = REF["permutest_intonly"]
    res = meta_regression("yi", "vi", data=BCG.iloc[:8], method=c["method"])
    pt = permutest(res)
    assert pt.exact and pt.iter == c["exact_iter"] == 256
    close(pt.pval, c["pval"], rtol=1e-12)
    close(pt.QMp, c["QMp"], rtol=1e-12)


def test_random_permutest_is_reproducible_and_agrees_with_metafor():
    """Random permutations: same seed, same p; R's p from 20,000 permutations within 4 binomial SEs."""
    c = REF["permutest_random"]
    res = meta_regression("yi", "vi", cols(c["formula"]), data=BCG, method=c["method"])
    a = permutest(res, iter=1000, seed=1)
    b = permutest(res, iter=1000, seed=1)
    assert not a.exact and a.iter == 1000 and a.exact_iter == c["exact_iter"]
    np.testing.assert_array_equal(a.pval, b.pval)
    for ours, theirs in zip(a.pval, arr(c["pval"])):
        se = np.sqrt(max(theirs * (1 - theirs), 0.001) / 1000)
        assert abs(ours - theirs) < 4 * se + 1e-3, (ours, theirs)
    assert a.zval_perm.shape == (1000, 2) and np.isclose(a.zval_perm[0, 1], res.zval[1])


def test_permutest_factor_model_statistically():
    c = REF["permutest_factor"]  # 8! orders > 1000: random in metafor too (R's p from 1000 draws)
    res = meta_regression("yi", "vi", cols(c["formula"]), data=BCG.iloc[:8], method=c["method"])
    pt = permutest(res, iter=1000, seed=7)
    assert not pt.exact and pt.exact_iter == c["exact_iter"]
    for ours, theirs in zip(np.r_[pt.pval, pt.QMp], np.r_[arr(c["pval"]), c["QMp"]]):
        assert abs(ours - theirs) < 6 * np.sqrt(max(theirs * (1 - theirs), 0.01) / 1000), (ours, theirs)


def test_permutest_bad_iter():
    res = meta_regression("yi", "vi", ["ablat"], data=BCG)
    with pytest.raises(ValueError, match="iter must be an integer >= 2"):
        permutest(res, iter=1)
    with pytest.raises(ValueError, match="exact permutation test needs"):
        permutest(res, exact=True)


# --------------------------------------------------------------------------- regtest


REG = REF["regtest"]


@pytest.mark.parametrize("case", REG, ids=lambda c: f"{c['method']}-{c['predictor']}-{c['model']}")
def test_regtest_matches_metafor(case):
    res = pool(BCG.yi, BCG.vi, method=case["method"])
    rt = regtest(res, model=case["model"], predictor=case["predictor"], ni=BCG.ni)
    close(rt.zval, case["zval"], what="zval")
    close(rt.pval, case["pval"], what="pval")
    assert (rt.dfs is None) == (case["dfs"] is None)
    for key in ("est", "ci_lb", "ci_ub"):
        close(getattr(rt, key), case[key], what=key)


def test_regtest_knha_with_moderators_and_vector_form():
    c = REF["regtest_knha"]
    rt = regtest(meta_regression(BCG.yi, BCG.vi, test="knha"))
    for key in ("zval", "pval", "est", "ci_lb", "ci_ub"):
        close(getattr(rt, key), c[key], what=key)
    assert rt.dfs == c["dfs"]
    c = REF["regtest_mods"]
    rt = regtest(meta_regression("yi", "vi", cols(c["formula"]), data=BCG))
    close(rt.zval, c["zval"])
    close(rt.fit.beta, c["beta"])
    assert np.isnan(rt.est)
    c = REF["regtest_vector"]  # metafor's vector form runs REML to its default threshold 1e-5 only
    rt = regtest(BCG.yi, BCG.vi)
    for key in ("zval", "pval", "est", "ci_lb", "ci_ub"):
        close(getattr(rt, key), c[key], rtol=1e-4, atol=1e-6, what=key)
    assert "Regression Test for Funnel Plot Asymmetry" in rt.summary()


def test_regtest_lm_equals_egger():
    from meta.bias import egger

    rt = regtest(BCG.yi, BCG.vi, model="lm")
    e = egger(BCG.yi, BCG.vi)
    np.testing.assert_allclose([rt.zval, rt.pval, rt.est], [e.t, e.p, e.intercept], rtol=1e-10)


def test_regtest_pairs_ni_by_label():
    case = next(c for c in REG if c["method"] == "REML" and c["predictor"] == "ninv" and c["model"] == "rma")
    shuffled = BCG.ni.sample(frac=1.0, random_state=5)
    rt = regtest(pool(BCG.yi, BCG.vi, method="REML"), predictor="ninv", ni=shuffled)
    close(rt.zval, case["zval"])
    rt = regtest(BCG.yi, BCG.vi, predictor="ninv", ni=shuffled, method="REML")
    close(rt.zval, case["zval"], rtol=1e-6)
    with pytest.raises(ValueError, match="different labels"):
        regtest(pool(BCG.yi, BCG.vi), predictor="ninv", ni=BCG.ni.set_axis(range(50, 63)))


def test_regtest_bad_input():
    with pytest.raises(ValueError, match="needs the sample sizes ni"):
        regtest(BCG.yi, BCG.vi, predictor="ninv")
    with pytest.raises(ValueError, match="predictor must be one of"):
        regtest(BCG.yi, BCG.vi, predictor="n")
    with pytest.raises(ValueError, match="no longer of full rank"):
        regtest(BCG.yi, np.full(13, 0.1))


# --------------------------------------------------------------------------- edge cases


EDGE = REF["edge"]


@pytest.mark.parametrize("case", [e for e in EDGE if e["case"] == "k_eq_p_plus_1"], ids=lambda c: c["method"])
def test_k_equals_p_plus_1(case):
    res = meta_regression(arr(case["yi"]), arr(case["vi"]), arr(case["mods"]), method=case["method"])
    case = dict(case, names=["intrcpt", "mods"])
    check_fit(res, case, f"k = p + 1 {case['method']}")


@pytest.mark.parametrize("case", [e for e in EDGE if e["case"] == "tau2_zero"], ids=lambda c: c["method"])
def test_tau2_at_the_boundary(case):
    res = meta_regression(arr(case["yi"]), arr(case["vi"]), arr(case["mods"]), method=case["method"])
    if case["method"] != "SJ":  # SJ is positive whenever the outcomes vary (Sidik & Jonkman 2005)
        assert res.tau2 == 0.0 and case["tau2"] == 0
    check_fit(res, dict(case, names=["intrcpt", "mods"]), f"tau2 = 0 {case['method']}")


@pytest.mark.parametrize("name", ["collinear", "constant"])
def test_redundant_moderators_are_dropped_as_metafor(name):
    case = next(e for e in EDGE if e["case"] == name)
    second = 2 * BCG.ablat if name == "collinear" else pd.Series(5.0, index=BCG.index)
    mods = pd.DataFrame({"ablat": BCG.ablat, "ablat2" if name == "collinear" else "const": second})
    with pytest.warns(UserWarning, match="Redundant predictors dropped"):
        res = meta_regression(BCG.yi, BCG.vi, mods)
    assert res.dropped == (("ablat2",) if name == "collinear" else ("const",))
    check_fit(res, case, name)


def test_too_few_studies():
    with pytest.raises(ValueError, match="k >= 4"):
        meta_regression(BCG.yi[:3], BCG.vi[:3], BCG[["ablat", "year"]].iloc[:3])
    res = meta_regression(BCG.yi[:3], BCG.vi[:3], BCG[["ablat", "year"]].iloc[:3], method="FE")  # k = p: FE fits
    assert res.QE == 0 and res.QEp == 1


def test_nan_in_mods_names_the_position():
    mods = BCG[["ablat", "year"]].copy()
    mods.loc[4, "year"] = np.nan
    with pytest.raises(ValueError, match=r"column 'year' has missing.*positions \(0-based\) 4"):
        meta_regression(BCG.yi, BCG.vi, mods)
    with pytest.raises(ValueError, match=r"\(4, 1\)"):
        meta_regression(BCG.yi, BCG.vi, mods.to_numpy())
    d = BCG.copy()
    d.loc[2, "alloc"] = None
    with pytest.raises(ValueError, match=r"column 'alloc' has missing.*positions \(0-based\) 2"):
        meta_regression("yi", "vi", ["ablat", "alloc"], data=d)


def test_formula_path_checks_and_predicts():
    """Formulas (formulaic): R's names, NaN named by position, predict from the original variables."""
    pytest.importorskip("formulaic")
    d = BCG.copy()
    d.loc[2, "alloc"] = None
    with pytest.raises(ValueError, match=r"column 'alloc' has missing.*positions \(0-based\) 2"):
        meta_regression("yi", "vi", "~ ablat + alloc", data=d)
    c = REF["predict_factor"]
    res = meta_regression("yi", "vi", c["formula"], data=BCG, method=c["method"])
    assert res.names == ("intrcpt", "ablat", "allocrandom", "allocsystematic")
    close(predict(res, pd.DataFrame(c["new_data"]))["pred"], c["pred"])
    assert pool("yi", "vi", mods="~ ablat", data=BCG, method="REML").names == ("intrcpt", "ablat")


def test_bad_options_and_inputs():
    with pytest.raises(ValueError, match="method must be one of"):
        meta_regression(BCG.yi, BCG.vi, BCG.ablat, method="XX")
    with pytest.raises(ValueError, match="pi='higgins'"):
        meta_regression(BCG.yi, BCG.vi, BCG.ablat, pi="higgins")
    with pytest.raises(ValueError, match="one row per study"):
        meta_regression(BCG.yi, BCG.vi, np.arange(5.0))
    with pytest.raises(ValueError, match="vi must be > 0"):
        meta_regression(BCG.yi, -BCG.vi, BCG.ablat)
    with pytest.raises(ValueError, match="pass data="):
        meta_regression(BCG.yi, BCG.vi, "~ ablat")
    with pytest.raises(ValueError, match="btt"):
        meta_regression(BCG.yi, BCG.vi, BCG.ablat, btt=7)


def test_pandas_inputs_are_paired_by_label():
    shuffled = BCG.sample(frac=1.0, random_state=3)
    a = meta_regression(BCG.yi, BCG.vi, BCG[["ablat"]])
    b = meta_regression(BCG.yi, BCG.vi, shuffled[["ablat"]])
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-12)
    with pytest.raises(ValueError, match="different labels"):
        meta_regression(BCG.yi, BCG.vi, BCG[["ablat"]].set_axis(range(100, 113)))


def test_btt_selects_the_qm_coefficients():
    res = meta_regression("yi", "vi", ["ablat", "year"], data=BCG, btt=[3])
    full = meta_regression("yi", "vi", ["ablat", "year"], data=BCG)
    assert res.btt == (2,) and res.QMdf == (1, None)
    np.testing.assert_allclose(res.QM, (full.beta[2] / full.se[2]) ** 2, rtol=1e-10)
    assert meta_regression("yi", "vi", ["ablat", "year"], data=BCG, btt="year").btt == (2,)


def test_result_is_frozen_and_arrays_read_only():
    res = meta_regression("yi", "vi", ["ablat"], data=BCG)
    with pytest.raises(Exception):
        res.tau2 = 1.0
    with pytest.raises(ValueError):
        res.beta[0] = 1.0
    assert res.i2 == res.I2 and res.tau == pytest.approx(np.sqrt(res.tau2))


def test_warnings_are_not_raised_for_clean_fits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta_regression("yi", "vi", ["ablat", "year", "alloc"], data=BCG, method="ML")


def test_formula_without_formulaic_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "formulaic", None)  # import formulaic -> ImportError
    with pytest.raises(ImportError, match=r"pip install formulaic.*meta-pfp-review\[formula\]"):
        meta_regression("yi", "vi", "~ ablat", data=BCG)
    assert meta_regression("yi", "vi", ["ablat"], data=BCG).p == 2  # column names need no formula library


def test_ml_and_reml_return_the_global_maximum():
    """On random data sets with a moderator, no tau2 on a dense grid has a higher (restricted)
    likelihood than the returned one (the likelihood is written out here, not taken from the module)."""
    rng = np.random.default_rng(11)
    grid = np.r_[0.0, np.geomspace(1e-6, 20.0, 1500)]
    for _ in range(25):
        k = int(rng.integers(5, 12))
        x = rng.normal(size=k)
        v = rng.uniform(0.01, 1.0, k)
        y = 0.3 * x + rng.normal(0.0, np.sqrt(v + rng.uniform(0.0, 0.5)))
        X = np.column_stack([np.ones(k), x])
        for method in ("REML", "ML"):
            res = meta_regression(y, v, x, method=method)

            def ll(t):  # at every tau2 in t at once
                t = np.atleast_1d(t)
                w = 1.0 / (v[None, :] + t[:, None])
                A = np.einsum("gk,ki,kj->gij", w, X, X)
                b = np.linalg.solve(A, ((w * y) @ X)[..., None])[..., 0]
                r = y[None, :] - b @ X.T
                extra = 0.0 if method == "ML" else np.linalg.slogdet(A)[1]
                return -0.5 * (np.log(v[None, :] + t[:, None]).sum(1) + extra + (w * r * r).sum(1))

            best = ll(grid).max()
            assert ll(res.tau2)[0] >= best - 1e-9, (method, res.tau2)


def test_categorical_order_and_booleans_are_coded_as_r_factors():
    """A pandas Categorical keeps its category order (R's factor(levels=)); booleans give one
    column named <name>TRUE (R's logical moderator); both span the same model as hand-made dummies."""
    alloc = pd.Categorical(BCG.alloc, categories=["systematic", "random", "alternate"])
    res = meta_regression(BCG.yi, BCG.vi, pd.DataFrame({"alloc": alloc}), method="DL")
    assert res.names == ("intrcpt", "allocrandom", "allocalternate")
    dummies = np.column_stack([(BCG.alloc == "random"), (BCG.alloc == "alternate")]).astype(float)
    by_hand = meta_regression(BCG.yi, BCG.vi, dummies, method="DL")
    np.testing.assert_allclose(res.beta, by_hand.beta, rtol=1e-12)
    high = pd.DataFrame({"high": BCG.ablat > 30})
    res = meta_regression(BCG.yi, BCG.vi, high, method="DL")
    assert res.names == ("intrcpt", "highTRUE")
    np.testing.assert_allclose(res.beta, meta_regression(BCG.yi, BCG.vi, (BCG.ablat > 30).astype(float).to_numpy(),
                                                         method="DL").beta, rtol=1e-12)


def test_pool_of_an_escalc_frame_with_mods_is_the_meta_regression_of_its_columns():
    import numpy as np
    import pandas as pd

    from meta.escalc import escalc
    from meta.pool import pool
    from meta.regression import meta_regression

    bcg = pd.read_csv(Path(__file__).resolve().parents[1] / "notebooks" / "data" / "bcg.csv")
    es = escalc("RR", ai=bcg.tpos, bi=bcg.tneg, ci=bcg.cpos, di=bcg.cneg)
    got = pool(es, mods=bcg["ablat"].to_numpy(), method="REML")
    want = meta_regression(es["yi"], es["vi"], mods=bcg["ablat"].to_numpy(), method="REML")
    np.testing.assert_array_equal(got.beta, want.beta)
    np.testing.assert_array_equal(got.se, want.se)
