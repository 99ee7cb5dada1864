"""Profile-likelihood confidence interval for tau2 (metafor 3.8.1 ``confint(res,
type="PL")`` on an ML or REML fit; Hardy & Thompson 1996, Stat Med 15:619-629;
Viechtbauer 2007, Stat Med 26:37-52): the computation behind
:func:`meta.heterogeneity.confint_pl` and ``meta.confint.confint(type="PL")``.

The interval holds the tau2 whose likelihood-ratio statistic against the fit
stays below the chi-square critical value with 1 df:

    ``LRT(tau2) = -2 (ll(tau2) - ll(tau2_hat)) <= qchisq(level, 1)``

with ``ll`` the restricted (REML) or full (ML) log-likelihood of the
intercept-only model at a fixed tau2 (the estimate profiled out:
``-1/2 [sum log(v + tau2) + log sum(w) + sum(w (y - est)^2)]`` for REML,
without ``log sum(w)`` for ML; :func:`meta._estimators.reml_loglik`; the
constants cancel in the difference).  Bounds as metafor's
``confint.rma.uni``: search interval ``[0, tau2_max]``,
``tau2_max = max(100, 10 tau2_hat)``; lower bound 0 when ``LRT(0)`` is below
the critical value, else the root in ``[0, tau2_hat]``; upper bound
``tau2_max`` (flagged ``">"``) when ``LRT(tau2_max)`` is below the critical
value, else the root in ``[tau2_hat, tau2_max]``.  I2 and H2 bounds from the
tau2 bounds through the typical within-study variance, as the Q-profile CI
(:mod:`meta._qprofile`).  Roots by :func:`scipy.optimize.brentq` to machine
precision (metafor's ``uniroot`` default tolerance is ``eps^0.25``; the
reference runs it with ``control = list(tol = 1e-12)``).
"""

from __future__ import annotations

import math

import numpy as np

from meta import _checks, _estimators, _lazy
from meta._qprofile import ConfintResult

__all__ = ["profile_ci"]

PL_METHODS = ("ML", "REML")


def _loglik(y: np.ndarray, v: np.ndarray, tau2: float, ml: bool) -> float:
    yy, vv = y[:, None], v[:, None]
    mask = np.ones(yy.shape, dtype=bool)
    return float(_estimators.reml_loglik(yy, vv, mask, np.array([tau2]), ml=ml)[0])


def profile_ci(res, yi, vi, level: float | None = None) -> ConfintResult:
    """Profile-likelihood CI of tau2, tau, I2 and H2 of the ML or REML fit
    ``res`` on its data ``yi``, ``vi`` (see the module docstring)."""
    y, v = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    if level is None:
        level = res.level
    level = _checks.level_fraction(level)
    if res.method not in PL_METHODS:
        raise ValueError(
            f"confint(type='PL'): the profile likelihood needs a likelihood-based fit, method 'ML' or 'REML'; "
            f"got method={res.method!r} (use the Q-profile CI, type='QP', for the other estimators)"
        )
    if res.k < 2:
        raise ValueError("confint needs at least 2 studies (k >= 2); got k = 1 (metafor stops too)")
    ml = res.method == "ML"
    t_hat = float(res.tau2)
    ll_hat = _loglik(y, v, t_hat, ml)
    crit = float(_lazy.special().chdtri(1, 1.0 - level))  # qchisq(level, 1)
    tmax = max(100.0, 10.0 * t_hat)

    def f(t: float) -> float:
        return -2.0 * (_loglik(y, v, t, ml) - ll_hat) - crit

    def root(a: float, b: float) -> float:
        return _lazy.optimize().brentq(f, a, b, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)

    lb_sign = ub_sign = ""
    lo = 0.0 if f(0.0) < 0 else root(0.0, t_hat)
    if f(tmax) < 0:
        hi, ub_sign = tmax, ">"
    else:
        hi = root(t_hat, tmax)
    w0 = 1.0 / v
    s2 = (y.size - 1) * w0.sum() / (w0.sum() ** 2 - np.dot(w0, w0))

    def i2(t):
        return 100.0 * t / (s2 + t)

    def h2(t):
        return t / s2 + 1.0

    return ConfintResult(
        k=int(res.k), method=res.method, level=float(level),
        estimate=(t_hat, math.sqrt(t_hat), res.i2, res.h2),
        ci_low=(lo, math.sqrt(lo), i2(lo), h2(lo)),
        ci_high=(hi, math.sqrt(hi), i2(hi), h2(hi)),
        ci_null=False, lb_sign=lb_sign, ub_sign=ub_sign, tau2_max=float(tmax), type="PL",
    )
