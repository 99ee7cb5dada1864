"""Small-study effects: Egger's regression test and Duval & Tweedie's trim and fill.

Both functions take plain arrays (or pandas Series) of effect sizes ``yi`` and
their sampling variances ``vi`` and return frozen dataclasses with
``to_frame()`` and ``summary()``, numerically equal to metafor 3.8's
``regtest(x, model = "lm")`` and ``trimfill()`` (checked in
``tests/test_bias.py`` against ``tests/fixtures/bias_reference.json``, written by
``tests/r/bias_reference.R``).

References
----------
Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis
detected by a simple, graphical test. BMJ 315:629-634.
Sterne JAC, Egger M (2005). Regression methods to detect publication and other
bias in meta-analysis. In: Rothstein, Sutton & Borenstein (eds), Publication
Bias in Meta-Analysis, ch. 6. Wiley.
Duval S, Tweedie R (2000a). Trim and fill: a simple funnel-plot-based method of
testing and adjusting for publication bias in meta-analysis. Biometrics
56:455-463.
Duval S, Tweedie R (2000b). A nonparametric "trim and fill" method of
accounting for publication bias in meta-analysis. JASA 95:89-98.
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
J Stat Softw 36(3). (``regtest``, ``trimfill``, meta-regression tau^2.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["EggerResult", "egger", "TrimFillResult", "trimfill"]


# --------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------
def _as_effects(yi, vi, *, min_k: int, who: str) -> tuple[np.ndarray, np.ndarray, pd.Index | None]:
    """Return ``yi``, ``vi`` as 1-d float arrays (and the index if ``yi`` is a Series).

    Refuses, naming the argument and the 0-based positions: different lengths,
    non-finite values (NaN is not silently dropped, unlike metafor's na.omit)
    and ``vi <= 0``.
    """
    index = yi.index if isinstance(yi, pd.Series) else None
    arrays = {}
    for name, value in (("yi", yi), ("vi", vi)):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{who}: {name} must be numeric ({exc})") from None
        if arr.ndim != 1:
            raise ValueError(f"{who}: {name} must be one-dimensional, got shape {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(
                f"{who}: {name} must be finite (no NaN or inf); "
                f"bad values at positions {bad.tolist()}: {arr[bad].tolist()}"
            )
        arrays[name] = arr
    y, v = arrays["yi"], arrays["vi"]
    if y.size != v.size:
        raise ValueError(f"{who}: yi and vi must have the same length, got {y.size} and {v.size}")
    bad = np.flatnonzero(v <= 0)
    if bad.size:
        raise ValueError(
            f"{who}: vi (sampling variances) must be > 0; "
            f"bad values at positions {bad.tolist()}: {v[bad].tolist()}"
        )
    if y.size < min_k:
        raise ValueError(f"{who}: needs at least {min_k} studies, got k = {y.size}")
    return y, v, index


def _wls(y: np.ndarray, X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares by QR (as R's ``lm``): coefficients and (X'WX)^-1."""
    sw = np.sqrt(w)
    q, r = np.linalg.qr(X * sw[:, None])
    if np.min(np.abs(np.diag(r))) <= 1e-10 * np.max(np.abs(np.diag(r))):
        raise ValueError(
            "the design matrix [1, sqrt(vi)] is not of full rank: all vi are equal, "
            "so the standard error cannot be used as a predictor"
        )
    beta = np.linalg.solve(r, q.T @ (y * sw))
    r_inv = np.linalg.inv(r)
    return beta, r_inv @ r_inv.T


# --------------------------------------------------------------------------
# Egger's regression test
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class EggerResult:
    """Egger's regression test for funnel-plot asymmetry (metafor ``regtest(model="lm")``).

    The fitted line is ``yi = intercept + slope * sei`` (weighted least squares,
    weights ``1/vi``), i.e. the coefficient names of metafor's ``regtest`` fit.

    Attributes
    ----------
    k : number of studies.
    intercept, intercept_se : coefficient of the constant = metafor's "limit
        estimate" ``est`` (the effect expected in a study with ``sei -> 0``);
        it equals the *slope* of Egger et al.'s (1997) regression of
        ``yi/sei`` on ``1/sei``.
    ci_low, ci_high : ``level`` t-interval for ``intercept`` (metafor ``ci.lb``,
        ``ci.ub``).
    slope, slope_se : coefficient of ``sei``; it equals the *intercept* of
        Egger et al.'s (1997) regression (their "bias" coefficient).
    t, df, p : the asymmetry test, ``t = slope / slope_se`` on ``df = k - 2``
        degrees of freedom, two-sided ``p`` (metafor ``zval``, ``dfs``, ``pval``;
        Egger et al.'s t-test of their intercept).
    level : confidence level for ``ci_low``/``ci_high``.
    """

    k: int
    intercept: float
    intercept_se: float
    slope: float
    slope_se: float
    t: float
    df: int
    p: float
    ci_low: float
    ci_high: float
    level: float = 0.95

    def to_frame(self) -> pd.DataFrame:
        """One row with every field (column names as the attributes)."""
        return pd.DataFrame([{f: getattr(self, f) for f in self.__dataclass_fields__}])

    def summary(self) -> str:
        """Text in the layout of metafor's ``print.regtest``."""
        pct = f"{100 * self.level:g}%"
        return "\n".join(
            [
                "Regression Test for Funnel Plot Asymmetry (Egger et al. 1997)",
                "",
                "Model:     weighted regression with multiplicative dispersion",
                "Predictor: standard error",
                f"k = {self.k}",
                "",
                f"Test for Funnel Plot Asymmetry: t = {self.t:.4f}, df = {self.df}, "
                f"p = {_fmt_p(self.p)}",
                f"Limit Estimate (as sei -> 0):   b = {self.intercept:.4f} "
                f"({pct} CI: {self.ci_low:.4f}, {self.ci_high:.4f})",
                f"Asymmetry coefficient (sei):    {self.slope:.4f} (SE = {self.slope_se:.4f})",
            ]
        )


def _fmt_p(p: float) -> str:
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


def egger(yi, vi, *, level: float = 0.95) -> EggerResult:
    """Egger's regression test for funnel-plot asymmetry.

    Equal to metafor 3.8 ``regtest(yi, vi, model = "lm")`` (default predictor
    ``"sei"``): the weighted least-squares regression

        yi = b0 + b1 * sei + e_i,   weights w_i = 1/vi,   Var(e_i) = phi * vi,

    with the multiplicative dispersion ``phi`` estimated from the residuals
    (an ordinary ``lm(yi ~ sei, weights = 1/vi)``). The asymmetry test is the
    t-test of ``b1`` (``t = b1 / se(b1)``, ``df = k - 2``); ``b0`` is the
    "limit estimate" (effect as ``sei -> 0``) with a t-based CI.

    Same test as Egger et al. (1997, BMJ 315:629): they regress the standard
    normal deviate on precision by ordinary least squares,

        yi/sei = a + b * (1/sei) + u_i,

    and test ``a``. Multiplying through by ``sei`` gives
    ``yi = b + a * sei + sei * u_i``: the same model with ``Var(sei u_i) ∝ vi``,
    so OLS on the SND scale is WLS with weights ``1/vi`` on the ``yi`` scale,
    with identical residual sums of squares. Hence Egger's intercept ``a`` =
    ``slope`` here, Egger's slope ``b`` = ``intercept`` here, and their
    t statistics, df and p-values coincide (Sterne & Egger 2005, sec. 6.3).

    Parameters
    ----------
    yi, vi : array-like of length k >= 3 — effect sizes and sampling variances.
    level : confidence level for the limit-estimate CI (metafor default 95%).

    Raises
    ------
    ValueError
        k < 3 (the regression has two coefficients and needs a residual
        degree of freedom), mismatched lengths, non-finite values, ``vi <= 0``,
        or all ``vi`` equal (no spread in the predictor).
    """
    y, v, _ = _as_effects(yi, vi, min_k=0, who="egger")
    k = y.size
    if k < 3:
        raise ValueError(
            f"egger: Egger's test needs at least 3 studies (two regression coefficients "
            f"plus one residual degree of freedom), got k = {k}"
        )
    if not 0 < level < 1:
        raise ValueError(f"egger: level must be in (0, 1), got {level}")
    sei = np.sqrt(v)
    X = np.column_stack([np.ones(k), sei])
    w = 1.0 / v
    beta, xtwx_inv = _wls(y, X, w)
    df = k - 2
    resid = y - X @ beta
    phi = float(np.sum(w * resid**2) / df)
    se = np.sqrt(phi * np.diag(xtwx_inv))
    t = float(beta[1] / se[1])
    p = float(2 * stats.t.sf(abs(t), df))
    crit = stats.t.isf((1 - level) / 2, df)
    return EggerResult(
        k=k,
        intercept=float(beta[0]),
        intercept_se=float(se[0]),
        slope=float(beta[1]),
        slope_se=float(se[1]),
        t=t,
        df=df,
        p=p,
        ci_low=float(beta[0] - crit * se[0]),
        ci_high=float(beta[0] + crit * se[0]),
        level=level,
    )
