"""One tau2 shared by all subgroups: the mixed-effects model with a subgroup
factor, metafor 3.8.1 ``rma(yi, vi, mods = ~ factor(group), method=)``.

With the design matrix ``X`` of group indicators (``p = G`` coefficients)
the hat matrix is block diagonal, so every quantity of ``rma.uni`` with
moderators (Viechtbauer 2010, J Stat Softw 36(3); Raudenbush 2009, in Cooper
et al., The Handbook of Research Synthesis and Meta-Analysis, ch. 16;
metafor 3.8.1 ``R/rma.uni.r``) is a sum over the groups ``g`` of
intercept-only quantities, with ``w = 1 / (v + tau2)``, ``S1_g = sum_g(w)``,
``est_g = sum_g(w y) / S1_g``:

* ``P = W - W X (X'WX)^-1 X'W``: ``y'Py = sum_g sum(w (y - est_g)^2)``,
  ``tr(P) = sum_g (S1_g - sum_g(w^2) / S1_g)``, ``y'PPy = sum_g sum(w^2 (y - est_g)^2)``;
  ``QE = y'P0y`` (residual heterogeneity) and ``P0`` at ``tau2 = 0``.

Every estimator that :func:`meta.pool.pool` accepts, in metafor's
moderator form (all truncated at 0, as metafor):

* FE: 0;
* DL (DerSimonian & Laird 1986 with moderators): ``(QE - (k - G)) / tr(P0)``;
* HS (metafor ``"HS"``): ``(QE - k) / sum(1/v)``;
* HE (Hedges 1983 with moderators): ``(RSS - tr((I - H) V)) / (k - G)``
  with the ordinary least-squares residuals, ``RSS = sum_g sum((y - ybar_g)^2)``
  (``ybar_g`` the unweighted group mean) and
  ``tr((I - H) V) = sum(v) - sum_g sum_g(v) / n_g``;
* SJ (Sidik & Jonkman 2005, metafor's start): ``tau2_0 = sum((y - ybar)^2) / k``
  over all studies (metafor's ``var(yi) (k-1)/k``, without the moderators),
  ``tau2 = tau2_0 y'P(tau2_0)y / (k - G)``;
* PM (Paule & Mandel 1982) and EB (Morris 1983; metafor's iteration
  ``tau2 + (k/(k-G) y'Py - k) / sum(w)`` stops at the same point): root of
  ``y'Py = k - G`` (strictly decreasing in tau2); 0 when ``QE <= k - G``;
* REML and ML (Viechtbauer 2005 with ``X``): the GLOBAL maximiser over
  ``tau2 >= 0`` of the restricted log-likelihood
  ``-1/2 [sum log(v + tau2) + sum_g log S1_g + y'Py]`` (ML: without the
  ``log S1_g`` term), found as :func:`meta._estimators.tau2_mle` finds it
  for ``pool()``: the score (REML ``y'PPy - tr(P)``, ML ``y'PPy - sum(w)``)
  is scanned at 0 and on a log grid up to a proven bound of every root
  (:func:`upper`); each sign change + to - (a local maximum) is solved by
  brentq and the highest of these and the boundary 0 wins (a tie keeps 0).
  metafor runs Fisher scoring from the HE estimate instead and can stop at a
  lower local maximum.

Residual statistics: typical within-study variance ``vt = (k - G) / tr(P0)``,
``I2 = 100 tau2 / (vt + tau2)``, ``H2 = tau2 / vt + 1`` (metafor).

Arrays are ``(n, G)``: studies down the columns of each group, padding
``y = 0``, ``v = inf`` (weight 0), as in :mod:`meta._estimators`.
"""

from __future__ import annotations

import math

import numpy as np
from meta import _lazy

METHODS = ("FE", "DL", "REML", "PM", "ML", "HE", "HS", "SJ", "EB")
GRID_PER_OCTAVE = 4  # score scan for the global maximum (spacing factor 2**0.25)
GRID_MAX = 800


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


def reml_score(y, v, tau2, ml=False):
    """``y'PPy - tr(P)`` (twice the derivative of the restricted
    log-likelihood); with ``ml`` the ML score ``y'PPy - sum(w)``."""
    w, s1, est = _parts(y, v, tau2)
    ypp = float((w * w * (y - est) ** 2).sum())
    return ypp - float(s1.sum() if ml else (s1 - (w * w).sum(axis=0) / s1).sum())


def loglik(y, v, tau2, ml=False):
    """Restricted (``ml``: full) log-likelihood up to a constant:
    ``-1/2 [sum log(v + tau2) + sum_g log S1_g + y'Py]`` (ML without the
    ``log S1_g`` term; Viechtbauer 2005, eqs. 8 and 10 with ``X``)."""
    w, s1, est = _parts(y, v, tau2)
    finite = np.isfinite(v)
    logv = float(np.log(v[finite] + tau2).sum())
    return -0.5 * (logv + (0.0 if ml else float(np.log(s1).sum())) + float((w * (y - est) ** 2).sum()))


def upper(y, v, k: int) -> float:
    """A tau2 beyond which the REML and ML scores are negative: with ``R``
    the range of ``y`` and ``vmax = max(v)``, for ``t >= vmax``
    ``y'PPy <= k R^2 / t^2`` while ``tr(P) >= (k - G) / (2t)`` and
    ``sum(w) >= k / (2t)``, so ``t > max(vmax, 2 k R^2 / (k - G))`` suffices."""
    finite = np.isfinite(v)
    yf, vf = y[finite], v[finite]
    g = y.shape[1]
    r = float(yf.max() - yf.min())
    return 1.01 * max(float(vf.max()), 2.0 * k / max(k - g, 1) * r * r)


def _brentq(f, a, b):
    return _lazy.optimize().brentq(f, a, b, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)


def tau2_mle(y, v, k: int, ml=False) -> float:
    """Global maximiser of the restricted (``ml``: full) likelihood over
    ``tau2 >= 0`` (see the module docstring)."""
    finite = np.isfinite(v)
    up = upper(y, v, k)
    low = min(float(v[finite].min()) / 16.0, up / 16.0)
    octaves = math.log2(up / low)
    n = int(min(GRID_MAX, max(16, math.ceil(GRID_PER_OCTAVE * octaves) + 1)))
    grid = np.r_[0.0, low * (up / low) ** np.linspace(0.0, 1.0, n)]
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.array([reml_score(y, v, t, ml) for t in grid])
    best, best_ll = 0.0, loglik(y, v, 0.0, ml)
    for j in np.flatnonzero((s[:-1] > 0) & (s[1:] <= 0)):
        a, b = grid[j], grid[j + 1]
        root = b if s[j + 1] == 0 else _brentq(lambda t: reml_score(y, v, t, ml), a, b)
        ll = loglik(y, v, root, ml)
        if ll > best_ll:
            best, best_ll = float(root), ll
    return best


def _root(f, y, v):
    """Root of the decreasing-at-the-root ``f`` on ``[0, hi]`` (``f(0) > 0``)."""
    finite = np.isfinite(v)
    hi = max(float(np.var(y[finite], ddof=1)) if finite.sum() > 1 else 1.0, float(v[finite].mean()), 1e-8)
    for _ in range(2100):
        if f(hi) < 0:
            break
        hi *= 2.0
    return _brentq(f, 0.0, hi)


def tau2_common(y, v, k: int, method: str) -> float:
    """The tau2 shared by the groups (columns) for ``method``, one of
    :data:`METHODS` (see module docstring); ``k``: total number of studies
    (more than the number of groups)."""
    g = y.shape[1]
    df = k - g
    finite = np.isfinite(v)
    if method == "FE":
        return 0.0
    qe = residual_q(y, v, 0.0)
    if method == "DL":
        return max(0.0, (qe - df) / trace_p(y, v, 0.0))
    if method == "HS":
        return max(0.0, (qe - k) / float((1.0 / v[finite]).sum()))
    if method == "HE":
        n_g = finite.sum(axis=0)
        ybar = np.where(finite, y, 0.0).sum(axis=0) / n_g
        rss = float((np.where(finite, y - ybar, 0.0) ** 2).sum())
        sv = np.where(finite, v, 0.0).sum(axis=0)
        return max(0.0, (rss - float(sv.sum() - (sv / n_g).sum())) / df)
    if method == "SJ":
        yf = y[finite]
        t0 = float(((yf - yf.mean()) ** 2).sum()) / k
        return max(0.0, t0 * residual_q(y, v, t0) / df)
    if method in ("PM", "EB"):
        if qe <= df:
            return 0.0
        return _root(lambda t: residual_q(y, v, t) - df, y, v)
    if method in ("REML", "ML"):
        return tau2_mle(y, v, k, ml=method == "ML")
    raise ValueError(f"tau2 estimator must be one of {', '.join(map(repr, METHODS))}; got {method!r}")


def residual(y, v, k: int, tau2: float) -> dict:
    """Residual heterogeneity of the model: ``qe, qe_df, vt, i2, h2``."""
    g = y.shape[1]
    df = k - g
    qe = residual_q(y, v, 0.0)
    vt = df / trace_p(y, v, 0.0) if df > 0 else np.nan
    return {"qe": qe, "qe_df": df, "vt": vt, "i2": 100.0 * tau2 / (vt + tau2), "h2": tau2 / vt + 1.0}
