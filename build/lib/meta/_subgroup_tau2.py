"""One tau2 shared by all subgroups: the mixed-effects model with a subgroup
factor, metafor 3.8.1 ``rma(yi, vi, mods = ~ factor(group), method=)``.

With the design matrix ``X`` of group indicators the hat matrix is block
diagonal, so every quantity of ``rma.uni`` with moderators (Viechtbauer
2010, J Stat Softw 36(3); Raudenbush 2009, in Cooper et al., The Handbook of
Research Synthesis and Meta-Analysis, ch. 16) is a sum over the groups
``g`` of intercept-only quantities, with ``w = 1 / (v + tau2)``,
``S1_g = sum_g(w)``, ``est_g = sum_g(w y) / S1_g``:

* ``P = W - W X (X'WX)^-1 X'W``: ``y'Py = sum_g sum(w (y - est_g)^2)``,
  ``tr(P) = sum_g (S1_g - sum_g(w^2) / S1_g)``, ``y'PPy = sum_g sum(w^2 (y - est_g)^2)``;
* DL (DerSimonian & Laird 1986 with moderators, metafor's ``method="DL"``):
  ``tau2 = max(0, (QE - (k - G)) / tr(P0))``, with ``P0`` and
  ``QE = y'P0y`` (residual heterogeneity) at ``tau2 = 0``;
* REML (Viechtbauer 2005, with ``X``): root of ``y'PPy - tr(P)``; 0 when
  the score at 0 is not positive;
* PM (Paule & Mandel 1982, metafor's generalisation): root of
  ``y'Py = k - G``; 0 when ``QE < k - G``;
* typical within-study variance ``vt = (k - G) / tr(P0)``, residual
  ``I2 = 100 tau2 / (vt + tau2)``, ``H2 = tau2 / vt + 1`` (metafor).

Arrays are ``(n, G)``: studies down the columns of each group, padding
``y = 0``, ``v = inf`` (weight 0), as in :mod:`meta._estimators`.
"""

from __future__ import annotations

import numpy as np
from meta import _lazy

METHODS = ("FE", "DL", "REML", "PM")


def _parts(y, v, tau2):
    """Per-group weights, their sums and the group estimates at ``tau2``."""
    w = 1.0 / (v + tau2)
    s1 = w.sum(axis=0)
    est = (w * y).sum(axis=0) / s1
    return w, s1, est


def residual_q(y, v, tau2):
    """``y'Py = sum_g sum(w (y - est_g)^2)`` (QE at ``tau2 = 0``)."""
    w, _, est = _parts(y, v, tau2)
    return float((w * (y - est) ** 2).sum())


def trace_p(y, v, tau2):
    """``tr(P) = sum_g (S1_g - sum_g(w^2) / S1_g)``."""
    w, s1, _ = _parts(y, v, tau2)
    return float((s1 - (w * w).sum(axis=0) / s1).sum())


def reml_score(y, v, tau2):
    """``y'PPy - tr(P)`` (twice the derivative of the restricted log-likelihood)."""
    w, s1, est = _parts(y, v, tau2)
    return float((w * w * (y - est) ** 2).sum() - (s1 - (w * w).sum(axis=0) / s1).sum())


def _root(f, y, v):
    """Root of the decreasing-at-the-root ``f`` on ``[0, hi]`` (``f(0) > 0``)."""
    finite = np.isfinite(v)
    hi = max(float(np.var(y[finite], ddof=1)) if finite.sum() > 1 else 1.0, float(v[finite].mean()), 1e-8)
    for _ in range(2100):
        if f(hi) < 0:
            break
        hi *= 2.0
    return _lazy.optimize().brentq(f, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)


def tau2_common(y, v, k: int, method: str) -> float:
    """The tau2 shared by the groups (columns) for ``method`` (see module
    docstring); ``k``: total number of studies."""
    g = y.shape[1]
    if method == "FE":
        return 0.0
    df = k - g
    qe = residual_q(y, v, 0.0)
    if method == "DL":
        return max(0.0, (qe - df) / trace_p(y, v, 0.0))
    if method == "PM":
        if qe < df:
            return 0.0
        return _root(lambda t: residual_q(y, v, t) - df, y, v)
    if method == "REML":
        if reml_score(y, v, 0.0) <= 0:
            return 0.0
        return _root(lambda t: reml_score(y, v, t), y, v)
    raise ValueError(method)  # pragma: no cover - checked by callers


def residual(y, v, k: int, tau2: float) -> dict:
    """Residual heterogeneity of the model: ``qe, qe_df, vt, i2, h2``."""
    g = y.shape[1]
    df = k - g
    qe = residual_q(y, v, 0.0)
    vt = df / trace_p(y, v, 0.0) if df > 0 else np.nan
    return {"qe": qe, "qe_df": df, "vt": vt, "i2": 100.0 * tau2 / (vt + tau2), "h2": tau2 / vt + 1.0}
