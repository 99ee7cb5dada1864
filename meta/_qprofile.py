"""Q-profile confidence intervals for tau2, tau, I2 and H2 of a fitted result (the computation behind
:func:`meta.confint.confint` and ``PoolResult.confint()``; below :mod:`meta.pool`, so that the result's
method needs no import of the public module above it).

Q-profile confidence intervals for tau2, tau, I2 and H2 (metafor 3.8.1
``confint()`` on an ``rma.uni`` fit, ``type="QP"``).

Viechtbauer (2007), Stat Med 26:37-52: the generalised Q statistic

    ``Q(tau2) = sum(w (y - est)^2)``, ``w = 1 / (v + tau2)``, ``est = sum(w y) / sum(w)``

follows a chi-square distribution with ``k - 1`` df at the true tau2 and
decreases in tau2, so the CI holds the tau2 with
``chi2_{alpha/2} <= Q(tau2) <= chi2_{1-alpha/2}``: the lower bound solves
``Q(tau2) = chi2_{1-alpha/2, k-1}``, the upper bound
``Q(tau2) = chi2_{alpha/2, k-1}``.  The interval does not depend on the
estimator of tau2 (only the estimate in the first column does).

Bounds as metafor's ``confint.rma.uni`` (search interval
``[0, tau2_max]``, ``tau2_max = max(100, 10 tau2)``):

* ``Q(0) < chi2_{alpha/2}``: both bounds 0 (shown ``<0``), the CI is the
  null/empty set (``ci_null``);
* ``Q(0) < chi2_{1-alpha/2}``: lower bound 0;
* ``Q(tau2_max) > chi2_{alpha/2}``: upper bound ``tau2_max`` (shown
  ``>100``); if even ``Q(tau2_max) > chi2_{1-alpha/2}``, both bounds are
  ``tau2_max``.

tau bounds are the square roots; I2 and H2 bounds follow from the tau2
bounds through the typical within-study variance
``s2 = (k-1) sum(w0) / (sum(w0)^2 - sum(w0^2))``, ``w0 = 1/v`` (Higgins &
Thompson 2002; metafor's ``vt``): ``I2 = 100 tau2 / (s2 + tau2)``,
``H2 = tau2 / s2 + 1``.  Roots by :func:`scipy.optimize.brentq` to machine
precision (metafor's ``uniroot`` default tolerance is ``eps^0.25``; the
tests run it with ``control = list(tol = 1e-12)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from meta import _checks, _estimators, _lazy, _one

__all__ = ["ConfintResult", "q_profile", "confint_of"]

_ROWS = ("tau2", "tau", "I2(%)", "H2")
_RANDOM = tuple(m for m in _estimators.METHODS if m != "FE")  # every estimator of tau2


@dataclass(frozen=True)
class ConfintResult:
    """Q-profile CIs of tau2, tau, I2 (percent) and H2 (metafor
    ``confint(res)$random``).  ``estimate``, ``ci_low``, ``ci_high``: tuples in
    the row order ``tau2, tau, I2(%), H2``; ``lb_sign`` / ``ub_sign``: ``"<"``
    or ``">"`` where a bound is the end of the search interval rather than a
    root (as metafor prints them), else ``""``; ``ci_null``: both bounds fall
    below 0, the CI is the null/empty set; ``type``: ``"QP"`` (Q-profile) or
    ``"PL"`` (profile likelihood, :mod:`meta._tau2_profile`), as metafor's
    ``confint(type=)``."""

    k: int
    method: str
    level: float
    estimate: tuple
    ci_low: tuple
    ci_high: tuple
    ci_null: bool = False
    lb_sign: str = ""
    ub_sign: str = ""
    tau2_max: float = 100.0
    type: str = "QP"

    @property
    def tau2_low(self) -> float:
        return self.ci_low[0]

    @property
    def tau2_high(self) -> float:
        return self.ci_high[0]

    def to_frame(self) -> pd.DataFrame:
        """Rows ``tau2, tau, I2(%), H2``; columns ``estimate, ci_low, ci_high``."""
        return pd.DataFrame(
            {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high},
            index=pd.Index(_ROWS, name="parameter"),
        )

    def summary(self) -> str:
        """metafor's print of ``confint()``: the table, bounds at the end of
        the search interval marked ``<`` / ``>``, and the null-set note."""
        names = ("tau^2", "tau", "I^2(%)", "H^2")
        cells = [
            (n, f"{e:.4f}", self.lb_sign + f"{lo:.4f}", self.ub_sign + f"{hi:.4f}")
            for n, e, lo, hi in zip(names, self.estimate, self.ci_low, self.ci_high)
        ]
        head = ("", "estimate", "ci.lb", "ci.ub")
        width = [max(len(r[j]) for r in [head, *cells]) for j in range(4)]
        how = "profile-likelihood" if self.type == "PL" else "Q-profile"
        lines = [
            f"{100 * self.level:g}% {how} confidence intervals (Viechtbauer 2007; k = {self.k}, tau^2 estimator: {self.method})",
            "",
        ]
        for r in [head, *cells]:
            lines.append(r[0].ljust(width[0]) + "".join(" " + c.rjust(w) for c, w in zip(r[1:], width[1:])))
        if self.ci_null:
            lines += ["", "The upper and lower CI bounds for tau^2 both fall below 0.",
                      "The CIs are therefore equal to the null/empty set."]
        return "\n".join(lines)

    def line(self) -> str:
        """One line for :meth:`meta.pool.PoolResult.summary`."""
        lo, hi = self.ci_low, self.ci_high
        how = "profile likelihood" if self.type == "PL" else "Q-profile"
        if self.ci_null:
            return f"{100 * self.level:g}% CI for tau^2 ({how}): null/empty set (both bounds below 0)"
        return (
            f"{100 * self.level:g}% CI for tau^2 ({how}): {self.lb_sign}{lo[0]:.4f} to {self.ub_sign}{hi[0]:.4f}; "
            f"I^2: {self.lb_sign}{lo[2]:.2f}% to {self.ub_sign}{hi[2]:.2f}%"
        )


class _GenQ:
    """Generalised Q statistic ``sum(w (y - est)^2)`` at ``tau2``, ``w = 1/(v + tau2)``.

    Up to :data:`meta._one.BLOCK` studies: two buffers of k floats allocated
    once per profile (not per evaluation: fresh memory costs page faults).
    Beyond: :meth:`meta._one._Work.pm_q`, the same statistic in blocks of
    BLOCK studies read once per evaluation, each block's sums about its own
    weighted mean merged exactly (Chan, Golub & LeVeque 1983), so that no
    k-sized temporary is made and the data are read once, not twice (the
    value moves by a few ulp against one two-pass sum).  Every sum is a plain
    ufunc reduction (``np.dot`` on 1-D arrays runs OpenBLAS threads, which
    stall on a loaded 2-core machine), so time is linear in k."""

    def __init__(self, y: np.ndarray, v: np.ndarray):
        self.y, self.v = y, v
        self.work = _one._Work(y, v) if y.size > _one.BLOCK else None
        if self.work is None:
            self.w, self.t = np.empty_like(y), np.empty_like(y)

    def __call__(self, tau2: float) -> float:
        if self.work is not None:
            return self.work.pm_q(tau2)
        w = np.add(self.v, tau2, out=self.w)
        np.divide(1.0, w, out=w)
        est = float(np.add.reduce(np.multiply(w, self.y, out=self.t))) / float(np.add.reduce(w))
        r = np.subtract(self.y, est, out=self.t)
        r *= r
        r *= w
        return float(np.add.reduce(r))


def _gen_q(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    """Generalised Q statistic ``sum(w (y - est)^2)`` at ``tau2`` (one evaluation)."""
    return _GenQ(y, v)(tau2)


def q_profile(yi, vi, *, level: float = 0.95, tau2: float = 0.0):
    """Q-profile bounds for tau2 (see module docstring).  ``tau2``: the
    estimate, only used for the search interval ``[0, max(100, 10 tau2)]``.
    Returns ``(low, high, lb_sign, ub_sign, ci_null, tau2_max)``."""
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    k = y.size
    alpha = 1.0 - level
    # scipy.stats.chi2.isf(q, df) = chdtri(df, q), chi2.ppf(q, df) = 2 gammaincinv(df/2, q): the same bits without scipy.stats
    crit_u = float(_lazy.special().chdtri(k - 1, alpha / 2))
    crit_l = float(2 * _lazy.special().gammaincinv((k - 1) / 2, alpha / 2))
    tmin = min(0.0, tau2)
    tmax = max(100.0, 10.0 * tau2, 10.0 * tmin)
    gen_q = _GenQ(y, v)
    q_max = gen_q(tmax)
    q_min = gen_q(tmin)

    def root(target):
        def f(t):
            return gen_q(t) - target

        return _lazy.optimize().brentq(f, tmin, tmax, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)

    lo = hi = math.nan
    lb_sign = ub_sign = ""
    ci_null = False
    if q_min < crit_l:
        lo = hi = tmin
        lb_sign = ub_sign = "<"
        ci_null = tmin <= 0
    elif q_max > crit_l:
        hi, ub_sign = tmax, ">"
    else:
        hi = root(crit_l)
    if q_max > crit_u:
        lo = hi = tmax
        lb_sign = ub_sign = ">"
    elif q_min < crit_u:
        lo = tmin
        if tmin > 0:  # pragma: no cover - tmin is 0 for tau2 >= 0
            lb_sign = "<"
    else:
        lo = root(crit_u)
    return lo, hi, lb_sign, ub_sign, ci_null, tmax


def confint_of(res, yi, vi, level: float | None = None) -> ConfintResult:
    """Q-profile CIs of a fitted result ``res`` (its ``k``, ``method``,
    ``level``, ``tau2``, ``i2``, ``h2``) on its data ``yi``, ``vi``: the work
    behind :func:`meta.confint.confint` and ``PoolResult.confint()``."""
    yi, vi = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    if level is None:
        level = res.level
    level = _checks.level_fraction(level)
    if res.method not in _RANDOM:
        raise ValueError(
            f"confint: the model has no random-effects component (method={res.method!r}); "
            f"use one of {', '.join(map(repr, _RANDOM))}"
        )
    if res.k < 2:
        raise ValueError("confint needs at least 2 studies (k >= 2); got k = 1 (metafor stops too)")
    lo, hi, lb_sign, ub_sign, ci_null, tmax = q_profile(yi, vi, level=level, tau2=res.tau2)
    sw0, _, sw0sq = _estimators._Blocks(yi, vi).sums(0.0, squares=True)  # sum(1/v), sum(1/v^2) in blocks
    s2 = (yi.size - 1) * sw0 / (sw0**2 - sw0sq)

    def i2(t):
        return 100.0 * t / (s2 + t)

    def h2(t):
        return t / s2 + 1.0

    def sqrt(t):
        return math.sqrt(t) if t >= 0 else math.nan

    t2 = res.tau2
    return ConfintResult(
        k=int(res.k),
        method=res.method,
        level=float(level),
        estimate=(t2, sqrt(t2), res.i2, res.h2),
        ci_low=(lo, sqrt(lo), i2(lo), h2(lo)),
        ci_high=(hi, sqrt(hi), i2(hi), h2(hi)),
        ci_null=bool(ci_null),
        lb_sign=lb_sign,
        ub_sign=ub_sign,
        tau2_max=float(tmax),
    )
