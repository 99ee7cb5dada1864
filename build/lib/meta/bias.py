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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta import pool as _pool
from meta.pool import _DEFAULTS, PoolResult, _fmt, _fmt_p, _inputs, pool

__all__ = ["EggerResult", "egger", "TrimFillResult", "trimfill"]


# --------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------
def _as_effects(yi, vi, *, who: str, options: dict | None = None):
    """``(y, v, slab, options)`` of ``verb(yi, vi, ...)`` or ``verb(res, ...)``.

    With a :class:`meta.pool.PoolResult` the data, study labels ``slab`` and
    the options (``method``) come from it (a different one passed as well is
    refused); arrays and Series are checked as :func:`meta.pool.pool` checks
    them (same lengths, pandas inputs paired by label, finite, real, ``vi >
    0``; NaN is refused, not dropped as metafor's na.omit would).  Errors
    start with ``who``.
    """
    options = dict(options or {})
    if not isinstance(yi, PoolResult) and vi is not None and np.size(yi) == 0 and np.size(vi) == 0:
        # let the caller say how many studies it needs
        return np.empty(0), np.empty(0), (), {k: (_DEFAULTS[k] if x is None else x) for k, x in options.items()}
    try:
        y, v, slab, _, opts = _inputs(who, yi, vi, None, {}, options)
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith(who + ":") else f"{who}: {msg}") from None
    return y, v, slab, opts


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


#: residual variance below this fraction of the fitted values' mean square (weighted scale):
#: rounding noise, not information (R's summary.lm warns "essentially perfect fit" below 1e-30)
PERFECT_FIT = 1e-28
#: effects within this many units of rounding (relative to max |yi|) of each other are identical
ROUNDING_ULPS = 64


def identical_effects(y: np.ndarray) -> bool:
    """True when all ``y`` are equal up to rounding: ``max(y) - min(y) <=
    ROUNDING_ULPS * eps * max|y|`` (exactly equal when that is 0)."""
    return bool(np.ptp(y) <= ROUNDING_ULPS * np.finfo(float).eps * np.max(np.abs(y)))


def _no_information_egger(y, fitted, w, phi):
    """Refuse (``ValueError``) a regression whose residual variance is rounding
    noise: identical effects (:func:`identical_effects`), or any essentially
    perfect fit, ``phi < PERFECT_FIT * (mean(f)^2 + var(f))`` with
    ``f = sqrt(w) * fitted`` (the criterion of R's ``summary.lm``, 100 times
    looser).  The t statistic divides by that noise: metafor 3.8.1 prints
    ``t = -1.23, p = 0.31`` for five identical effects (R only warns
    "essentially perfect fit")."""
    if identical_effects(y):
        raise ValueError(
            f"egger: all {y.size} effects are equal (up to rounding, {y[0]!r}): they carry no information "
            "on funnel asymmetry, and the t-test would divide rounding noise by rounding noise "
            "(metafor prints such a p-value with R's warning 'essentially perfect fit'); there is no test to report"
        )
    f = np.sqrt(w) * fitted
    if phi < PERFECT_FIT * (np.mean(f) ** 2 + np.var(f, ddof=1)):
        raise ValueError(
            "egger: the effects lie exactly on a line in sqrt(vi) (residual variance at rounding level, "
            f"{phi:.3g}): the t-test would divide by rounding noise; there is no test to report"
        )


def egger(yi, vi=None, *, level: float | None = None) -> EggerResult:
    """Egger's regression test for funnel-plot asymmetry.

    ``egger(res)`` tests the studies a :class:`meta.pool.PoolResult` was
    fitted on, at its ``level`` unless ``level=`` is given (metafor
    ``regtest(res, model = "lm")``); ``egger(yi, vi)`` the arrays (level 95%).

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
    yi, vi : array-like of length k >= 3 — effect sizes and sampling variances
        (pandas inputs paired by label as in :func:`meta.pool.pool`); or ``yi``
        a PoolResult and no ``vi``.
    level : confidence level for the limit-estimate CI (default: the result's,
        else 95%, metafor's default).

    Raises
    ------
    ValueError
        k < 3 (the regression has two coefficients and needs a residual
        degree of freedom), mismatched lengths, non-finite values, ``vi <= 0``,
        all ``vi`` equal (no spread in the predictor; metafor stops too), or
        effects that carry no information: all ``yi`` equal up to rounding,
        or an essentially perfect fit (residual variance at rounding level),
        where metafor prints a t-test of rounding noise (see
        docs/input-rules.md).
    """
    y, v, _, _ = _as_effects(yi, vi, who="egger")
    if level is None:
        level = yi.level if isinstance(yi, PoolResult) else 0.95
    k = y.size
    if k < 3:
        raise ValueError(
            f"egger: Egger's test needs at least 3 studies (two regression coefficients "
            f"plus one residual degree of freedom), got k = {k}"
        )
    try:
        level = _checks.level_fraction(level)
    except ValueError as exc:
        raise ValueError(f"egger: {exc}") from None
    sei = np.sqrt(v)
    X = np.column_stack([np.ones(k), sei])
    w = 1.0 / v
    with np.errstate(over="ignore", invalid="ignore"):
        beta, xtwx_inv = _wls(y, X, w)
        df = k - 2
        resid = y - X @ beta
        phi = float(np.sum(w * resid**2) / df)
        se = np.sqrt(phi * np.diag(xtwx_inv))
    _checks.finite_results({"intercept": beta[0], "slope": beta[1], "se": se}, "yi, vi", "egger")
    _no_information_egger(y, X @ beta, w, phi)
    t = float(beta[1] / se[1])
    # scipy.stats.t.sf(x, df) = stdtr(df, -x), t.isf(q, df) = -stdtrit(df, q): the same bits without scipy.stats
    p = float(2 * _lazy.special().stdtr(df, -abs(t)))
    crit = -_lazy.special().stdtrit(df, (1 - level) / 2)
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


# --------------------------------------------------------------------------
# trim and fill
# --------------------------------------------------------------------------
_METHODS = ("FE", "DL", "REML", "PM")
_ESTIMATORS = ("L0", "R0", "Q0")


def _sei_slope(y: np.ndarray, v: np.ndarray, method: str) -> tuple[float, float]:
    """Meta-regression ``yi ~ 1 + sqrt(vi)``: (coefficient of sqrt(vi), tau2).

    metafor's ``trimfill`` picks the side from the sign of this coefficient,
    fitted by ``rma(yi, vi, mods = sqrt(vi), method = method)``, so the
    residual heterogeneity is estimated with the mixed-effects-model forms of
    the estimators (Viechtbauer 2010, sec. 3.3; metafor ``rma.uni`` source),
    with ``P = W - W X (X'WX)^-1 X'W``, ``p = 2`` coefficients:

    * FE: ``tau2 = 0``;
    * DL (Raudenbush 2009): ``tau2 = max(0, (y'Py - (k - p)) / tr(P))``, ``W = diag(1/vi)``;
    * REML: Fisher scoring ``tau2 += (y'PPy - tr(P)) / tr(PP)``, ``W = diag(1/(vi + tau2))``,
      from the Hedges (HE) start ``max(0, (y'(I - H)y - tr((I - H) V)) / (k - p))``,
      halving a step that would go below 0, as metafor does; iterated to a
      change < 1e-12 (metafor stops at 1e-5 — only the sign is used);
    * PM: root of the generalised ``Q(tau2) = y'Py = k - p`` (0 if ``Q(0) < k - p``).
    """
    k = y.size
    X = np.column_stack([np.ones(k), np.sqrt(v)])
    p = X.shape[1]

    # Never a k x k matrix (trimfill at k = 3000 held 72 MB per matrix): with
    # M = (X'WX)^-1 (p x p) and u = Py = W (y - X beta),
    #   y'Py = y'u,  y'PPy = u'u,
    #   tr(P) = sum(w) - tr(M X'W^2X),
    #   tr(PP) = sum(w^2) - 2 tr(M X'W^3X) + tr((M X'W^2X)^2).
    def parts(tau2):
        w = 1.0 / (v + tau2)
        beta, M = _wls(y, X, w)
        u = w * (y - X @ beta)
        return beta, w, u, M

    def gram(w):
        return (X * w[:, None]).T @ X  # X'diag(w)X, p x p

    def trace_p(w, M):
        return float(np.sum(w) - np.sum(M * gram(w * w)))

    if method == "FE":
        tau2 = 0.0
    elif method == "DL":
        _, w, u, M = parts(0.0)
        tau2 = max(0.0, float((y @ u - (k - p)) / trace_p(w, M)))
    elif method == "REML":
        # Hedges start: y'(I - H)y = OLS residual sum of squares, tr((I - H)V) = sum(v) - sum(h_ii v_i)
        G_inv = np.linalg.inv(X.T @ X)
        b_ols = G_inv @ (X.T @ y)
        e = y - X @ b_ols
        h = np.einsum("ij,jk,ik->i", X, G_inv, X)
        tau2 = max(0.0, float((e @ e - (np.sum(v) - h @ v)) / (k - p)))
        for _ in range(1000):
            _, w, u, M = parts(tau2)
            G2 = gram(w * w)
            MG = M @ G2
            tr_p = float(np.sum(w) - np.trace(MG))
            tr_pp = float(np.sum(w * w) - 2.0 * np.sum(M * gram(w * w * w)) + np.sum(MG * MG.T))
            adj = float((u @ u - tr_p) / tr_pp)
            while tau2 + adj < 0:
                adj /= 2
            tau2 += adj
            if abs(adj) < 1e-12:
                break
        tau2 = max(0.0, tau2)
    elif method == "PM":
        def excess_q(t2):
            _, _, u, _ = parts(t2)
            return float(y @ u) - (k - p)

        if excess_q(0.0) < 0:
            tau2 = 0.0
        else:
            hi = max(1.0, float(np.var(y)))
            while excess_q(hi) > 0:
                hi *= 10
            tau2 = _lazy.optimize().brentq(excess_q, 0.0, hi, xtol=1e-14, rtol=1e-14)
    else:  # pragma: no cover - checked by trimfill
        raise ValueError(method)
    beta = parts(tau2)[0]
    return float(beta[1]), float(tau2)


@dataclass(frozen=True)
class TrimFillResult:
    """Trim and fill (Duval & Tweedie 2000) as metafor ``trimfill()``.

    Attributes
    ----------
    k0 : estimated number of missing studies (filled in on ``side``).
    se_k0 : metafor's ``se.k0`` (standard error of the k0 estimator, from the
        last iteration; NaN where metafor's formula gives NaN).
    p_k0 : for ``estimator="R0"``, metafor's ``p.k0``, the p-value of
        H0: no missing studies (``0.5 ** (k0 + 1)``); NaN otherwise.
    side : ``"left"`` or ``"right"``: the side on which studies were missing.
    estimator : ``"L0"``, ``"R0"`` or ``"Q0"``.
    method : tau^2 estimator used for the trimming fits and both pooled fits.
    iterations : number of trim/re-estimate iterations until k0 stopped changing.
    yi, vi : the observed studies (input order).
    filled_yi, filled_vi : the ``k0`` filled-in studies, in metafor's order
        (mirror images ``2 * beta - yi`` of the k0 most extreme observed studies
        about the trimmed estimate ``beta``; they keep those studies' ``vi``).
    result : :class:`meta.pool.PoolResult` on observed + filled studies
        (z-test, 95%, as metafor); with ``k0 = 0`` it is ``original``.
    original : :class:`meta.pool.PoolResult` on the observed studies: the
        user's own result for ``trimfill(res)`` (its test and level).
    labels : study labels of the observed rows (the result's ``slab``, the
        Series index, or 1..k as metafor).

    ``result`` carries observed + filled ``yi``, ``vi`` and ``slab`` (filled
    rows ``"Filled 1"``, ... last; the observed labels as text, so that the
    labels are of one kind); :attr:`filled` marks them.
    """

    k0: int
    se_k0: float
    p_k0: float
    side: str
    estimator: str
    method: str
    iterations: int
    yi: np.ndarray = field(repr=False, compare=False)
    vi: np.ndarray = field(repr=False, compare=False)
    filled_yi: np.ndarray = field(compare=False)
    filled_vi: np.ndarray = field(compare=False)
    result: PoolResult = field(repr=False)
    original: PoolResult = field(repr=False)
    labels: tuple = field(repr=False, compare=False)

    def __post_init__(self):
        for name in ("yi", "vi", "filled_yi", "filled_vi"):
            getattr(self, name).setflags(write=False)

    @property
    def filled(self) -> np.ndarray:
        """Boolean per study of ``result`` (observed, then the k0 filled ones)."""
        return np.r_[np.zeros(self.yi.size, bool), np.ones(self.k0, bool)]

    def to_frame(self) -> pd.DataFrame:
        """One row per study, observed then filled: ``study, yi, vi, sei, filled``.

        Filled studies are labelled ``"Filled 1"``, ``"Filled 2"``, ... as in metafor.
        """
        study = list(self.labels) + [f"Filled {i + 1}" for i in range(self.k0)]
        yi = np.concatenate([self.yi, self.filled_yi])
        vi = np.concatenate([self.vi, self.filled_vi])
        return pd.DataFrame(
            {
                "study": study,
                "yi": yi,
                "vi": vi,
                "sei": np.sqrt(vi),
                "filled": np.r_[np.zeros(self.yi.size, bool), np.ones(self.k0, bool)],
            }
        )

    def summary(self) -> str:
        """Text in the layout of metafor's ``print.rma.uni.trimfill``, plus the observed fit."""
        lines = [
            f"Trim and fill (Duval & Tweedie 2000), estimator {self.estimator}, "
            f"tau^2 estimator {self.method}",
            "",
            f"Estimated number of missing studies on the {self.side} side: {self.k0} "
            f"(SE = {_fmt(self.se_k0)})",
        ]
        if self.estimator == "R0":
            lines.append(
                f"Test of H0: no missing studies on the {self.side} side:      "
                f"p-val = {_fmt_p(self.p_k0)}"
            )
        for title, fit in (("Observed studies", self.original), ("Observed + filled studies", self.result)):
            lines += [
                "",
                f"{title} (k = {fit.k}):",
                f"  tau^2 = {fit.tau2:.4f}, I^2 = {fit.i2:.2f}%, "
                f"Q(df = {fit.q_df}) = {fit.q:.4f}, p-val = {_fmt_p(fit.q_p)}",
                f"  estimate = {fit.estimate:.4f} (SE = {fit.se:.4f}), "
                f"{100 * fit.level:g}% CI: {fit.ci_low:.4f}, {fit.ci_high:.4f}; "
                f"{'z' if fit.test == 'z' else 't'} = {fit.stat:.4f}, p = {_fmt_p(fit.p)}",
            ]
        return "\n".join(lines)


def trimfill(yi, vi=None, *, method=None, estimator="L0", side=None, maxiter=100) -> TrimFillResult:
    """Trim and fill: estimate and fill in studies missing from one side of the funnel.

    ``trimfill(res)`` takes the studies, labels and ``method`` of a
    :class:`meta.pool.PoolResult` (metafor ``trimfill(res)``);
    ``trimfill(yi, vi, method=...)`` the arrays (default ``method="DL"``).
    The returned :class:`TrimFillResult` goes on to ``funnel(tf)`` (filled
    studies drawn hollow, centred on the adjusted estimate, as metafor
    ``funnel(trimfill(res))``) and ``forest(tf)`` (filled rows marked).

    Mirrors metafor 3.8 ``trimfill.rma.uni`` (Duval & Tweedie 2000a,b) step by
    step, for ``rma(yi, vi, method = method)``:

    1. ``side`` (if None): ``"right"`` if the coefficient of ``sqrt(vi)`` in
       ``rma(yi, vi, mods = sqrt(vi), method = method)`` is < 0, else ``"left"``
       (missing studies are on the side opposite the excess of small studies).
       For ``"right"`` the effects are negated so the algorithm always trims
       the right tail; the studies are sorted by ``yi`` (stable, as R's ``sort``).
    2. Iterate from ``k0 = 0``: pool the ``k - k0`` smallest effects with
       ``method`` (:func:`meta.pool.pool`) to get ``beta``; rank
       ``|yi - beta|`` over all k studies (ties: first come first,
       ``ties.method = "first"``); ``Sr`` = sum of the signed ranks of the
       studies above ``beta``; then (Duval & Tweedie 2000b, eqs. 5, 6, 9)

       * L0: ``k0 = (4 Sr - k(k+1)) / (2k - 1)``,
         ``se = 4 sqrt(Var Sr) / (2k - 1)``;
       * R0: ``k0 = k - 1 - (largest rank among studies below beta)``,
         ``se = sqrt(2 max(0, k0) + 2)``;
       * Q0: ``k0 = k - 1/2 - sqrt(2k^2 - 4 Sr + 1/4)``,
         ``se = 2 sqrt(Var Sr) / sqrt((k - 1/2)^2 - k0 (2k - k0 - 1))``;

       with ``Var Sr = (k(k+1)(2k+1) + 10k0^3 + 27k0^2 + 17k0 - 18k k0^2
       - 18k k0 + 6k^2 k0) / 24`` at the unrounded k0; then
       ``k0 = max(0, round(k0))`` (round half to even, as R). Stop when k0
       no longer changes (error after ``maxiter`` iterations).
    3. Fill: the k0 largest (trimmed) studies are mirrored about ``beta``
       (``2 beta - yi``, same ``vi``), appended after the observed studies,
       and all ``k + k0`` are pooled with ``method`` (z-test, 95% CI: metafor
       passes neither ``test`` nor ``level`` to the filled fit).  With
       ``k0 = 0`` nothing is filled and ``result`` is the user's own model
       (``trimfill(res)``: ``res`` itself, with its test and level; metafor
       returns ``x``).

    metafor's own default is ``method = "REML"`` (``rma()``'s default); ours
    is ``"DL"``, as everywhere in this package.

    Parameters
    ----------
    yi, vi : array-like (or Series, paired by label; the index labels the rows
        of ``to_frame``); or ``yi`` a PoolResult and no ``vi``.
    method : ``"FE"``, ``"DL"``, ``"REML"`` or ``"PM"``; default the result's,
        else ``"DL"``.  With ``k0 > 0`` the filled fit is ``z``/95% whatever
        the result's test and level: metafor 3.8.1 passes only ``method`` on
        to it; with ``k0 = 0`` ``result`` is ``res`` itself (its test and
        level), as metafor.
    estimator : ``"L0"`` (default), ``"R0"`` or ``"Q0"``.
    side : None (choose as metafor), ``"left"`` or ``"right"``.
    maxiter : iteration limit (metafor default 100).

    Raises
    ------
    ValueError
        bad ``yi``/``vi`` (lengths, non-finite, ``vi <= 0``), k < 2, unknown
        ``method``/``estimator``/``side``, or when metafor stops with an error:
        ``side=None`` with k < 3 or all ``vi`` equal, Q0 with ``2k^2 - 4 Sr + 1/4 < 0``,
        R0 with no study below ``beta``,
        or no convergence within ``maxiter`` iterations; all ``yi`` equal up
        to rounding (no information: metafor does not converge).
    """
    if method is not None and method not in _METHODS:
        raise ValueError(f"trimfill: method must be one of {_METHODS}, got {method!r}")
    y, v, slab, opts = _as_effects(yi, vi, who="trimfill", options={"method": method})
    method = opts["method"]
    if method not in _METHODS:
        raise ValueError(f"trimfill: method must be one of {_METHODS}, got {method!r}")
    if estimator not in _ESTIMATORS:
        raise ValueError(f"trimfill: estimator must be one of {_ESTIMATORS}, got {estimator!r}")
    if side not in (None, "left", "right"):
        raise ValueError(f"trimfill: side must be None, 'left' or 'right', got {side!r}")
    k = y.size
    if k < 2:
        raise ValueError(f"trimfill: trim and fill needs at least 2 studies, got k = {k}")
    labels = tuple(slab)
    if identical_effects(y):
        raise ValueError(
            f"trimfill: all {k} effects are equal (up to rounding, {y[0]!r}): the funnel has no asymmetry "
            "to estimate, and the ranks of |yi - beta| would rank rounding noise (metafor stops: the "
            "algorithm does not converge); there are no missing studies to fill"
        )

    # the measure travels with the fit (funnel(trimfill(res)) labels its axis by it)
    measure = yi.measure if isinstance(yi, PoolResult) else _pool._measure_from(None, yi, vi)
    # the user's own model (its test and level) when given, as metafor's trimfill(res) keeps x
    original = yi if isinstance(yi, PoolResult) else pool(y, v, method=method, slab=labels, measure=measure)
    if side is None:
        if k < 3:
            raise ValueError(
                f"trimfill: cannot choose the side with k = {k} studies: the regression of yi on "
                "sqrt(vi) that picks it has 2 coefficients (metafor stops too); pass "
                "side='left' or side='right'"
            )
        if np.ptp(v) <= ROUNDING_ULPS * np.finfo(float).eps * np.max(v):
            raise ValueError(
                "trimfill: cannot choose the side: all vi are equal, so the regression of yi "
                "on sqrt(vi) that picks it is undefined (metafor stops too); pass "
                "side='left' or side='right'"
            )
        side = "right" if _sei_slope(y, v, method)[0] < 0 else "left"

    ys = -y if side == "right" else y.copy()
    order = np.argsort(ys, kind="stable")
    ys, vs = ys[order], v[order]

    k0, k0_prev, it = 0, -1, 0
    se_k0 = np.nan
    beta = np.nan
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise ValueError(
                f"trimfill: the trim and fill algorithm did not converge in maxiter = {maxiter} iterations"
            )
        beta = pool(ys[: k - k0], vs[: k - k0], method=method).estimate
        dev = ys - beta
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(dev), kind="stable")] = np.arange(1, k + 1)
        signed = np.sign(dev) * ranks
        if estimator == "R0":
            below = signed[signed < 0]
            if below.size == 0:
                raise ValueError(
                    f"trimfill: estimator 'R0' is undefined here: no study lies below the "
                    f"trimmed estimate {beta:.6g} (metafor fails too); try estimator='L0'"
                )
            k0_raw = (k - np.max(-below)) - 1
            se = np.sqrt(2 * max(0.0, k0_raw) + 2)
        else:
            sr = float(np.sum(signed[signed > 0]))
            if estimator == "L0":
                k0_raw = (4 * sr - k * (k + 1)) / (2 * k - 1)
            else:
                disc = 2 * k**2 - 4 * sr + 0.25
                if disc < 0:
                    raise ValueError(
                        f"trimfill: estimator 'Q0' is undefined here (2k^2 - 4 Sr + 1/4 = {disc:.6g} < 0; "
                        "metafor stops with 'missing value where TRUE/FALSE needed'); "
                        "try estimator='L0'"
                    )
                k0_raw = k - 0.5 - np.sqrt(disc)
            var_sr = (
                k * (k + 1) * (2 * k + 1) + 10 * k0_raw**3 + 27 * k0_raw**2 + 17 * k0_raw
                - 18 * k * k0_raw**2 - 18 * k * k0_raw + 6 * k**2 * k0_raw
            ) / 24
            with np.errstate(invalid="ignore"):
                if estimator == "L0":
                    se = 4 * np.sqrt(var_sr) / (2 * k - 1)
                else:
                    se = 2 * np.sqrt(var_sr) / np.sqrt((k - 0.5) ** 2 - k0_raw * (2 * k - k0_raw - 1))
        k0 = int(max(0, np.rint(k0_raw)))
        se_k0 = float(se) if np.isnan(se) else max(0.0, float(se))
        if k0 >= k:
            raise ValueError(
                f"trimfill: estimated k0 = {k0} missing studies is not smaller than k = {k}; "
                "trim and fill cannot trim every study"
            )

    if k0 > 0:
        filled = (ys[k - k0:] - beta) - beta  # (yi.c - beta) as metafor: mirror about beta, negated
        filled_yi = -filled if side == "left" else filled
        filled_vi = vs[k - k0:].copy()
        result = pool(np.r_[y, filled_yi], np.r_[v, filled_vi], method=method,
                      slab=[x if isinstance(x, str) else str(x) for x in labels] + [f"Filled {i + 1}" for i in range(k0)],
                      measure=measure)
    else:
        filled_yi = np.empty(0)
        filled_vi = np.empty(0)
        result = original
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else np.nan
    return TrimFillResult(
        k0=k0,
        se_k0=se_k0,
        p_k0=float(p_k0),
        side=side,
        estimator=estimator,
        method=method,
        iterations=it,
        yi=y.copy(),
        vi=v.copy(),
        filled_yi=filled_yi,
        filled_vi=filled_vi,
        result=result,
        original=original,
        labels=labels,
    )
