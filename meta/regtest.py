"""Regression test for funnel-plot asymmetry as metafor 3.8.1 ``regtest()`` (Egger's test and its variants).

:func:`regtest` adds a measure of study precision (``predictor``) to the
model of a fit and tests its coefficient (Egger et al. 1997; Sterne & Egger
2005, in Rothstein et al., Publication Bias in Meta-Analysis, ch. 6;
Viechtbauer 2010, J Stat Softw 36(3), sec. 3.6):

* ``model="rma"`` (metafor's default): the mixed-effects meta-regression
  ``rma(yi, vi, mods = cbind(X, predictor), method=, test=)`` of
  :func:`meta.regression.meta_regression`, same method, test and level as
  the fit (``REML``, z, 95% for plain arrays, as metafor);
* ``model="lm"``: weighted least squares ``lm(yi ~ X + predictor, weights =
  1/vi)`` (t test with ``k - p - 1`` df); with predictor ``"sei"`` and no
  moderators this is Egger's original test, also :func:`meta.bias.egger`.

Predictors (metafor's names): ``"sei"`` (standard error), ``"vi"``
(variance), ``"ni"`` (sample size), ``"ninv"`` (1/n), ``"sqrtni"``
(sqrt(n)), ``"sqrtninv"`` (1/sqrt(n)); the last four need ``ni``.  For
``"sei"``, ``"vi"``, ``"ninv"`` and ``"sqrtninv"`` without moderators the
intercept is the limit estimate (the effect as precision goes to infinity)
with its CI (``est, ci_lb, ci_ub``; metafor prints it as "Limit Estimate").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta import _estimators as _est
from meta import regression as _reg
from meta._format import metafor_num as _fmt, metafor_p as _fmt_p
from meta.pool import PoolResult

__all__ = ["RegtestResult", "regtest", "PREDICTORS"]

PREDICTORS = ("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")
_LIMIT = ("sei", "vi", "ninv", "sqrtninv")  # predictors that vanish as precision grows: intercept = limit estimate
_DESCRIBE = {"sei": "standard error", "vi": "sampling variance", "ni": "sample size", "ninv": "inverse of the sample size",
             "sqrtni": "square root sample size", "sqrtninv": "inverse of the square root sample size"}


@dataclass(frozen=True, eq=False, repr=False)
class RegtestResult:
    """metafor ``regtest`` result: ``zval`` (t under a t-based test or
    ``model="lm"``), ``pval``, ``dfs`` (df, None for z) of the predictor's
    coefficient; ``est, ci_lb, ci_ub`` the limit estimate (NaN where not
    defined); ``fit`` the model with the predictor (a
    :class:`meta.regression.RegressionResult`; None for ``model="lm"``)."""

    model: str
    predictor: str
    zval: float
    pval: float
    dfs: int | None
    method: str
    test: str
    level: float
    k: int
    est: float
    ci_lb: float
    ci_ub: float
    fit: Any = None

    def to_frame(self) -> pd.DataFrame:
        """One row: ``model, predictor, method, k, zval, pval, dfs, est, ci_lb, ci_ub``."""
        return pd.DataFrame([{"model": self.model, "predictor": self.predictor, "method": self.method, "k": self.k,
                              "zval": self.zval, "pval": self.pval, "dfs": self.dfs, "est": self.est,
                              "ci_lb": self.ci_lb, "ci_ub": self.ci_ub}])

    def summary(self) -> str:
        """metafor's ``print.regtest`` text."""
        kind = ("weighted regression with multiplicative dispersion" if self.model == "lm" else
                "fixed-effects meta-regression model" if self.method == "FE" else "mixed-effects meta-regression model")
        stat = "z" if self.dfs is None else "t"
        df = "" if self.dfs is None else f", df = {self.dfs}"
        p = _fmt_p(self.pval)
        lines = ["Regression Test for Funnel Plot Asymmetry", "", f"Model:     {kind}",
                 f"Predictor: {_DESCRIBE[self.predictor]}", "",
                 f"Test for Funnel Plot Asymmetry: {stat} = {_fmt(self.zval)}{df}, p {'< .0001' if p == '<.0001' else '= ' + p}"]
        if np.isfinite(self.est):
            what = {"sei": "sei", "vi": "vi", "ninv": "ninv", "sqrtninv": "ni"}[self.predictor]
            lines.append(f"Limit Estimate (as {what} -> 0):   b = {_fmt(self.est)} "
                         f"(CI: {_fmt(self.ci_lb)}, {_fmt(self.ci_ub)})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def _source(x, vi, ni, options):
    """``(y, v, X, names, slab, ni, method, test, level)`` of a fit or of arrays; a pandas ``ni``
    is paired by label with the result's ``slab`` (or with the pandas ``yi``/``vi``)."""
    method, test, level = options["method"], options["test"], options["level"]
    if isinstance(x, (_reg.RegressionResult, PoolResult)):
        if vi is not None:
            raise ValueError("regtest: got a fitted result and vi; pass either the result alone (regtest(res)) or yi and vi")
        if x.yi is None or x.vi is None:
            raise ValueError("regtest: this result carries no yi/vi (built by hand); pass yi and vi")
        y, v = np.asarray(x.yi), np.asarray(x.vi)
        if isinstance(x, _reg.RegressionResult):
            X, names = np.asarray(x.X), list(x.names)
        else:
            X, names = np.ones((y.size, 1)), ["intrcpt"]
        method = x.method if method is None else method
        test = x.test if test is None else test
        level = x.level if level is None else level
        if isinstance(ni, pd.Series):
            ref = pd.Series(np.zeros(y.size), index=pd.Index(x.slab, tupleize_cols=False))
            ni = _checks.align({"result.slab": ref, "ni": ni})[0]["ni"]
        return y, v, X, names, x.slab, ni, method, test, level
    if vi is None:
        raise ValueError("regtest: vi is missing; pass yi and vi, or a fitted result")
    args, index = _checks.align({"yi": x, "vi": vi, "ni": ni})
    y, v = _reg._study_arrays(args["yi"], args["vi"])
    slab = tuple(index) if index is not None else tuple(range(1, y.size + 1))
    return (y, v, np.ones((y.size, 1)), ["intrcpt"], slab, args["ni"], "REML" if method is None else method,
            "z" if test is None else test, 0.95 if level is None else level)


def _lm(y, v, X, level):
    """Weighted least squares with weights ``1/v`` and estimated dispersion (R ``lm(weights=)``):
    coefficients, their SEs, t statistics and df."""
    k, p = X.shape
    w = 1.0 / v
    vb = _reg._inv_xwx(X, w)
    beta = vb @ (X.T @ (w * y))
    r = y - X @ beta
    df = k - p
    sigma2 = float((w * r * r).sum()) / df
    se = np.sqrt(np.diag(vb) * sigma2)
    return beta, se, beta / se, df


def regtest(
    x,
    vi=None,
    *,
    model: str = "rma",
    predictor: str = "sei",
    ni=None,
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
) -> RegtestResult:
    """Regression test for funnel-plot asymmetry (metafor 3.8.1 ``regtest``; see module docstring).

    ``x``: a :class:`meta.regression.RegressionResult` or
    :class:`meta.pool.PoolResult` (its data, moderators, method, test and
    level are used; ``level=`` may override the level, as metafor), or
    effect sizes ``yi`` with ``vi`` (then REML, z test, 95%, as metafor).
    ``ni``: sample sizes, one per study, needed for the predictors
    ``"ni"``, ``"ninv"``, ``"sqrtni"``, ``"sqrtninv"``; a Series is paired
    by label with the result's ``slab`` (or the pandas ``yi``/``vi``), an
    array is taken by position.

    Raises ``ValueError`` for an unknown ``model``/``predictor``, a missing
    or invalid ``ni``, or a model matrix that is no longer of full rank after
    adding the predictor (metafor's error), e.g. all ``vi`` equal.
    """
    model = _checks.option(model, "model", ("rma", "lm"), {}, "metafor regtest(model=)")
    predictor = _checks.option(predictor, "predictor", PREDICTORS, {}, "metafor regtest(predictor=)")
    opts = {"method": method, "test": test, "level": level}
    y, v, X, names, slab, ni, method, test, level = _source(x, vi, ni, opts)
    method, test, level, _ = _checks.estimator_options(method, test, level, "default")
    k = y.size
    if predictor in ("ni", "ninv", "sqrtni", "sqrtninv"):
        if ni is None:
            raise ValueError(f"regtest: predictor={predictor!r} needs the sample sizes ni= (one per study)")
        n = _checks.numbers(ni, "ni").ravel()
        if n.size != k:
            raise ValueError(f"ni must have one entry per study ({k}); got {n.size}")
        bad = ~np.isfinite(n) | (n <= 0)
        if bad.any():
            raise ValueError(f"ni must be finite and > 0; offending positions (0-based): {_checks.positions(bad)}")
        col = {"ni": n, "ninv": 1.0 / n, "sqrtni": np.sqrt(n), "sqrtninv": 1.0 / np.sqrt(n)}[predictor]
    else:
        col = np.sqrt(v) if predictor == "sei" else v
    Xf = np.column_stack([X, col])
    if _reg._redundant(Xf).any():
        raise ValueError("regtest: the model matrix is no longer of full rank after adding the predictor "
                         f"{predictor!r} (metafor's error; e.g. all vi equal); the test is not defined")
    p = X.shape[1]
    int_first = bool(np.all(np.abs(X[:, 0] - 1.0) < 1e-8))
    limit = predictor in _LIMIT and p == 1 and int_first
    nan = math.nan
    if model == "rma":
        mods = pd.DataFrame(Xf, columns=[*names, predictor])
        with np.errstate(all="ignore"):
            fit = _reg.meta_regression(y, v, mods, method=method, test=test, level=level, slab=slab, intercept=False)
        j = fit.p - 1
        est, lo, hi = (float(fit.beta[0]), float(fit.ci_lb[0]), float(fit.ci_ub[0])) if limit else (nan, nan, nan)
        return RegtestResult(model, predictor, float(fit.zval[j]), float(fit.pval[j]), fit.ddf, method, fit.test, level,
                             k, est, lo, hi, fit)
    if k <= Xf.shape[1]:
        raise ValueError(f"regtest(model='lm') needs k > {Xf.shape[1]} studies; got k = {k}")
    beta, se, t, df = _lm(y, v, Xf, level)
    pval = float(2.0 * _lazy.special().stdtr(df, -abs(t[-1])))
    if limit:
        crit = _est.t_crit(df, 1.0 - (1.0 - level) / 2.0)
        est, lo, hi = float(beta[0]), float(beta[0] - crit * se[0]), float(beta[0] + crit * se[0])
    else:
        est = lo = hi = nan
    return RegtestResult(model, predictor, float(t[-1]), pval, df, method, test, level, k, est, lo, hi, None)
