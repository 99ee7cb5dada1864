"""Heterogeneity and small-study extras of a fitted meta-analysis, as metafor 3.8.1:

* :func:`se_tau2` - the standard error of the tau2 estimate that ``rma()``
  prints (``res$se.tau2``), with metafor's formula for each estimator;
* :func:`confint_pl` - the profile-likelihood CI for tau2 (metafor
  ``confint(res, type="PL")``, ML/REML; also ``meta.confint.confint(type="PL")``);
* :func:`ranktest` - Begg & Mazumdar's (1994) rank correlation test for
  funnel plot asymmetry (metafor ``ranktest``);
* :func:`fsn` - fail-safe N (metafor 3.8.1 ``fsn``: Rosenthal 1979, Orwin
  1983, Rosenberg 2005).

Every function takes a :class:`meta.pool.PoolResult` (its ``yi``, ``vi`` and
options); :func:`ranktest` and :func:`fsn` also take ``yi, vi`` as metafor does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta._format import metafor_num as _fmt, metafor_p as _fmt_p
from meta._qprofile import ConfintResult
from meta._tau2_profile import profile_ci
from meta._zeroin import zeroin

__all__ = ["se_tau2", "confint_pl", "ranktest", "RanktestResult", "fsn", "FsnResult", "FSN_TYPES"]

_EPS = np.finfo(float).eps


def _data(res, who: str):
    if not (hasattr(res, "estimate") and hasattr(res, "tau2") and hasattr(res, "method")):
        raise TypeError(f"{who}: res must be a fitted result from meta.pool.pool(); got {type(res).__name__}")
    if getattr(res, "yi", None) is None or getattr(res, "vi", None) is None:
        raise ValueError(f"{who}: this result carries no yi/vi (built by hand); fit it with meta.pool.pool(yi, vi)")
    return np.asarray(res.yi, dtype=float), np.asarray(res.vi, dtype=float)


# --------------------------------------------------------------------------- se of tau2


def _psq_sum(w: np.ndarray, a, b) -> float:
    """``sum_ij P_ij^2 a_i b_j`` for ``P = W - w w' / sum(w)`` (the projection of
    the intercept-only model), in O(k): ``P_ij^2 = w_i^2 (1 - 2 w_i / S) [i = j]
    + w_i^2 w_j^2 / S^2``."""
    s = w.sum()
    w2 = w * w
    a = np.broadcast_to(a, w.shape)
    b = np.broadcast_to(b, w.shape)
    return float(np.sum(w2 * a * b * (1.0 - 2.0 * w / s)) + np.dot(w2, a) * np.dot(w2, b) / (s * s))


def se_tau2(res) -> float:
    """Standard error of the tau2 estimate as metafor 3.8.1 ``rma.uni``
    computes ``se.tau2`` (intercept-only model, ``p = 1``), with ``t`` the
    (truncated) estimate and ``P = W - w w'/sum(w)``:

    * ``"DL"``: ``sqrt(2 (k-1) + 4 t tr(P) + 2 t^2 tr(PP)) / tr(P)``, ``w = 1/v``;
    * ``"HS"``: the same numerator over ``sum(1/v)``;
    * ``"HE"``: ``sqrt(2 tr(PVPV) + 4 t tr(PV) + 2 t^2 (k-1)) / (k-1)`` with the
      unweighted ``P = I - J/k``;
    * ``"SJ"``: ``t0/(k-1) sqrt(2 tr(PVPV) + 4 t tr(PVP) + 2 t^2 tr(PP))``,
      ``w = 1/(v + t0)``, ``t0 = sum((y - ybar)^2)/k`` (the starting value);
    * ``"ML"``: ``sqrt(2 / sum(w^2))``; ``"REML"``: ``sqrt(2 / tr(PP))``;
      ``"PM"``, ``"EB"``: ``sqrt(2 k^2/(k-1)) / sum(w)``; all with
      ``w = 1/(v + t)`` (inverse of the Fisher information, or the delta
      method for the moment estimators; Viechtbauer 2005);
    * ``"FE"`` and k = 1: NaN (metafor: NA).
    """
    y, v = _data(res, "se_tau2")
    k = y.size
    method = res.method
    if method == "FE" or k < 2:
        return math.nan
    t = max(float(res.tau2), 0.0)
    if method in ("DL", "HS"):
        w = 1.0 / v
        s = w.sum()
        trp = s - np.dot(w, w) / s
        num = math.sqrt(2 * (k - 1) + 4 * t * trp + 2 * t * t * _psq_sum(w, 1.0, 1.0))
        return num / (trp if method == "DL" else s)
    if method == "HE":
        one = np.ones(k)
        trpv = v.sum() * (1.0 - 1.0 / k)
        return math.sqrt(2 * _psq_sum(one, v, v) + 4 * t * trpv + 2 * t * t * (k - 1)) / (k - 1)
    if method == "SJ":
        t0 = float(np.sum((y - y.mean()) ** 2)) / k
        w = 1.0 / (v + t0)
        inner = 2 * _psq_sum(w, v, v) + 4 * t * _psq_sum(w, 1.0, v) + 2 * t * t * _psq_sum(w, 1.0, 1.0)
        return t0 / (k - 1) * math.sqrt(inner)
    w = 1.0 / (v + t)
    if method == "ML":
        return math.sqrt(2.0 / np.dot(w, w))
    if method == "REML":
        return math.sqrt(2.0 / _psq_sum(w, 1.0, 1.0))
    if method in ("PM", "EB"):
        return math.sqrt(2.0 * k * k / (k - 1)) / w.sum()
    raise ValueError(f"se_tau2: unknown method {method!r}")  # pragma: no cover - PoolResult methods are checked


# --------------------------------------------------------------------------- profile likelihood CI


def confint_pl(res, level: float | None = None) -> ConfintResult:
    """Profile-likelihood confidence interval for tau2, tau, I2 and H2 of an
    ML or REML fit (metafor 3.8.1 ``confint(res, type="PL")``; method and
    bounds in :mod:`meta._tau2_profile`).  ``level``: default the fit's.
    Returns the :class:`meta.confint.ConfintResult` of the Q-profile CI with
    ``type="PL"``."""
    y, v = _data(res, "confint_pl")
    return profile_ci(res, y, v, level)


# --------------------------------------------------------------------------- rank correlation test


@dataclass(frozen=True)
class RanktestResult:
    """Begg & Mazumdar's rank correlation test (metafor ``ranktest``):
    Kendall's ``tau`` between the standardised effects and the variances and
    its two-sided ``p``; ``exact``: p from the exact null distribution (no
    ties), else the normal approximation with tie corrections (R
    ``cor.test(method="kendall")``)."""

    k: int
    tau: float
    p: float
    exact: bool

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"k": self.k, "tau": self.tau, "p": self.p, "exact": self.exact}])

    def summary(self) -> str:
        p = _fmt_p(self.p)
        return ("Rank Correlation Test for Funnel Plot Asymmetry\n\n"
                f"Kendall's tau = {_fmt(self.tau)}, p {'< .0001' if p == '<.0001' else '= ' + p}"
                + ("" if self.exact else " (normal approximation: ties)"))


def _kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (R ``cor(method="kendall")``), O(k^2) in blocks of rows."""
    n = x.size
    s = 0.0
    nx = ny = 0.0
    step = max(1, (1 << 20) // max(n, 1))
    for a in range(0, n, step):
        dx = np.sign(x[a:a + step, None] - x[None, :])
        dy = np.sign(y[a:a + step, None] - y[None, :])
        s += float(np.sum(dx * dy))
        nx += float(np.count_nonzero(dx))
        ny += float(np.count_nonzero(dy))
    denom = math.sqrt(nx * ny)
    return s / denom if denom > 0 else math.nan


def _mahonian_cdf(n: int) -> np.ndarray:
    """``P(T <= q)``, q = 0..n(n-1)/2, for the number ``T`` of inversions
    (equivalently of discordant pairs) of a random permutation of n: the
    exact null distribution of Kendall's statistic (R's ``pkendall``),
    built by adding one element at a time (a uniform sliding-window sum)."""
    dist = np.ones(1)
    for m in range(2, n + 1):
        c = np.concatenate([[0.0], np.cumsum(dist)])
        size = dist.size + m - 1
        hi = np.minimum(np.arange(size) + 1, dist.size)
        lo = np.maximum(np.arange(size) - m + 1, 0)
        dist = (c[hi] - c[lo]) / m
    return np.cumsum(dist)


def _tie_counts(x: np.ndarray) -> np.ndarray:
    _, counts = np.unique(x, return_counts=True)
    return counts[counts > 1].astype(float)


def _kendall_test(x: np.ndarray, y: np.ndarray):
    """R ``cor.test(x, y, method="kendall", exact=TRUE)``: tau, p, exact."""
    n = x.size
    r = _kendall_tau_b(x, y)
    if not math.isfinite(r):
        return math.nan, math.nan, False
    ties = min(np.unique(x).size, np.unique(y).size) < n
    if not ties:
        npairs = n * (n - 1) // 2
        q = int(np.round((r + 1) * n * (n - 1) / 4))
        cdf = _mahonian_cdf(n)

        def pk(j):  # P(T <= j)
            return 0.0 if j < 0 else 1.0 if j >= npairs else float(cdf[j])

        # upper tail P(T >= q) = P(T <= npairs - q) by symmetry (R: 1 - pkendall(q - 1))
        p = pk(npairs - q) if q > n * (n - 1) / 4 else pk(q)
        return r, min(2 * p, 1.0), True
    xt, yt = _tie_counts(x), _tie_counts(y)
    t0 = n * (n - 1) / 2
    t1 = float(np.sum(xt * (xt - 1))) / 2
    t2 = float(np.sum(yt * (yt - 1))) / 2
    s = r * math.sqrt((t0 - t1) * (t0 - t2))
    v0 = n * (n - 1) * (2 * n + 5)
    vt = float(np.sum(xt * (xt - 1) * (2 * xt + 5)))
    vu = float(np.sum(yt * (yt - 1) * (2 * yt + 5)))
    v1 = float(np.sum(xt * (xt - 1))) * float(np.sum(yt * (yt - 1)))
    v2 = float(np.sum(xt * (xt - 1) * (xt - 2))) * float(np.sum(yt * (yt - 1) * (yt - 2)))
    var_s = (v0 - vt - vu) / 18 + v1 / (2 * n * (n - 1)) + (v2 / (9 * n * (n - 1) * (n - 2)) if n > 2 else 0.0)
    z = s / math.sqrt(var_s)
    return r, float(_lazy.special().erfc(abs(z) / math.sqrt(2))), False


def _yi_vi(yi, vi, who: str):
    """``(y, v)`` from a fitted result or from ``yi, vi`` (checked as :func:`meta.pool.pool` does)."""
    if hasattr(yi, "estimate") and hasattr(yi, "tau2"):
        if vi is not None:
            raise ValueError(f"{who}: got a result and vi; pass either the result alone ({who}(res)) or yi and vi")
        return _data(yi, who)
    if vi is None:
        raise ValueError(f"{who} needs a fitted result (meta.pool.pool) or yi and vi")
    from meta.pool import _check_pair  # the shared checks of every pooling input

    args, _ = _checks.align({"yi": yi, "vi": vi})
    return _check_pair(args["yi"], args["vi"])


def ranktest(yi, vi=None) -> RanktestResult:
    """Rank correlation test for funnel plot asymmetry (Begg & Mazumdar 1994,
    Biometrics 50:1088-1101), as metafor 3.8.1 ``ranktest(res)``: with
    ``w = 1/v``, ``b = sum(w y)/sum(w)`` (always the fixed-effect estimate),
    ``y* = (y - b) / sqrt(v - 1/sum(w))``, Kendall's tau-b between ``y*``
    and ``v``; p two-sided from the exact distribution of Kendall's
    statistic when there are no ties (metafor passes ``exact=TRUE``), else
    from the normal approximation with tie corrections (R ``cor.test``).
    All ``y*`` equal (e.g. identical effects): tau and p are NaN (R: NA).
    Takes a PoolResult or ``yi, vi``; needs k >= 2."""
    y, v = _yi_vi(yi, vi, "ranktest")
    if y.size < 2:
        raise ValueError(f"ranktest needs at least 2 studies (k >= 2); got k = {y.size}")
    w = 1.0 / v
    theta = np.dot(w, y) / w.sum()
    ystar = (y - theta) / np.sqrt(v - 1.0 / w.sum())
    tau, p, exact = _kendall_test(ystar, v)
    return RanktestResult(k=int(y.size), tau=float(tau), p=float(p), exact=bool(exact))


# --------------------------------------------------------------------------- fail-safe N

FSN_TYPES = ("Rosenthal", "Orwin", "Rosenberg")


@dataclass(frozen=True)
class FsnResult:
    """Fail-safe N (metafor ``fsn``): ``fsnum`` (number of null studies),
    ``type``, ``alpha``, ``pval`` (observed significance; Rosenthal: one-sided
    Stouffer, or Fisher's combined p), ``meanes`` (Orwin/Rosenberg: the
    average effect), ``target`` (Orwin: the target effect size)."""

    type: str
    fsnum: float
    alpha: float
    pval: float = math.nan
    meanes: float = math.nan
    target: float = math.nan
    test: str = "Stouffer"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"type": self.type, "fsnum": self.fsnum, "alpha": self.alpha, "pval": self.pval,
                              "meanes": self.meanes, "target": self.target}])

    def summary(self) -> str:
        lines = [f"Fail-safe N Calculation Using the {self.type} Approach", ""]
        if self.type == "Rosenthal":
            lines += [f"Observed Significance Level: {_fmt_p(self.pval)}", f"Target Significance Level:   {self.alpha:g}"]
        elif self.type == "Orwin":
            lines += [f"Average Effect Size: {_fmt(self.meanes)}", f"Target Effect Size:  {_fmt(self.target)}"]
        else:
            lines += [f"Average Effect Size:         {_fmt(self.meanes)}",
                      f"Observed Significance Level: {_fmt_p(self.pval)}", f"Target Significance Level:   {self.alpha:g}"]
        fs = "Inf" if math.isinf(self.fsnum) else f"{self.fsnum:.0f}"
        lines += ["", f"Fail-safe N: {fs}"]
        return "\n".join(lines)





def _fisher_p(n: float, pi: np.ndarray) -> float:
    """metafor ``.fsn.fisher`` + alpha: Fisher's combined p of the k studies and
    ``n`` null studies with p = 0.5 (R's ``rep(0.5, n)`` keeps ``floor(n)``
    of them; the df use ``n`` itself)."""
    x2 = -2.0 * (float(np.sum(np.log(pi))) + math.floor(n) * math.log(0.5))
    return float(_lazy.special().chdtrc(2 * (pi.size + n), x2))


def fsn(yi, vi=None, *, sei=None, type: str = "Rosenthal", alpha: float = 0.05, target: float | None = None,
        weighted: bool = False, test: str = "Stouffer") -> FsnResult:
    """Fail-safe N, as metafor 3.8.1 ``fsn(yi, vi, type=, alpha=, target=,
    weighted=)`` (``test="Fisher"`` is metafor's ``fsn(..., test="Fisher")``):

    * ``"Rosenthal"`` (1979): ``z_i = y_i / sqrt(v_i)``, ``z = |sum z_i| / sqrt(k)``,
      observed one-sided p ``1 - Phi(z)``, ``N = max(0, k (z / z_alpha)^2 - k)``
      with ``z_alpha = qnorm(1 - alpha)`` (Stouffer); with ``test="Fisher"``
      the N at which Fisher's combined p of the studies and N studies with
      p = 0.5 reaches ``alpha`` (R's ``uniroot`` on ``[0, 1000]``, extended
      upwards);
    * ``"Orwin"`` (1983): ``N = max(0, k (m - target) / target)`` with ``m`` the
      mean of ``y`` (``weighted=True``: weighted by ``1/v``), ``target``
      default ``m / 2`` (its sign made that of ``m``; 0 gives ``inf``);
      ``vi`` is needed only when ``weighted``;
    * ``"Rosenberg"`` (2005): ``N = max(0, k ((sum(w y) / z_{alpha/2})^2 - sum(w)) / sum(w))``,
      ``w = 1/v``, observed two-sided p of the fixed-effect estimate.

    N is rounded up to a whole number unless within ``sqrt(eps)`` of one
    (metafor).  metafor's ``type="REM"`` (a simulation with R's random
    numbers) is not offered.  Takes a PoolResult or ``yi`` with ``vi`` (or
    ``sei``)."""
    kind = {t.lower(): t for t in FSN_TYPES}.get(type.lower() if isinstance(type, str) else type)
    if kind is None:
        raise ValueError(f"type must be one of {', '.join(map(repr, FSN_TYPES))}; got {type!r}"
                         + (" (metafor's 'REM' is a simulation and is not offered)" if str(type).upper() == "REM" else ""))
    tst = {"stouffer": "Stouffer", "fisher": "Fisher"}.get(test.lower() if isinstance(test, str) else test)
    if tst is None:
        raise ValueError(f"test must be 'Stouffer' or 'Fisher'; got {test!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1); got {alpha!r}")
    if sei is not None:
        if vi is not None:
            raise ValueError("fsn: give vi or sei, not both")
        vi = np.asarray(_checks.numbers(sei, "sei"), dtype=float) ** 2
    need_v = kind != "Orwin" or weighted
    if not need_v and vi is None and not hasattr(yi, "tau2"):
        y = np.atleast_1d(_checks.numbers(yi, "yi")).astype(float)
        if y.ndim != 1 or y.size == 0 or not np.isfinite(y).all():
            raise ValueError("yi must be a non-empty one-dimensional array of finite numbers")
        v = np.ones(y.size)
    else:
        y, v = _yi_vi(yi, vi, "fsn")
    k = y.size
    pval = meanes = tgt = math.nan
    sp = _lazy.special()
    if kind == "Rosenthal" and tst == "Stouffer":
        z = abs(float(np.sum(y / np.sqrt(v))) / math.sqrt(k))
        pval = float(sp.ndtr(-z))
        n = max(0.0, k * (z / float(sp.ndtri(1 - alpha))) ** 2 - k)
    elif kind == "Rosenthal":
        pi = sp.ndtr(-np.abs(y / np.sqrt(v)))
        pval = _fisher_p(0, pi)
        if pval >= alpha:
            n = 0.0
        else:
            def f(x):
                return _fisher_p(x, pi) - alpha
            lo, hi = 0.0, 1000.0
            flo, fhi = f(lo), f(hi)
            delta = 0.01 * max(1e-4, abs(hi))
            while fhi < 0:  # R uniroot(extendInt="upX")
                hi += delta
                fhi = f(hi)
                delta *= 2
            n = zeroin(f, lo, hi, flo, fhi, _EPS ** 0.25)
    elif kind == "Orwin":
        meanes = float(np.dot(1.0 / v, y) / np.sum(1.0 / v)) if weighted else float(np.mean(y))
        tgt = meanes / 2 if target is None else float(target)
        if tgt == 0:
            n = math.inf
        else:
            if np.sign(tgt) != np.sign(meanes):
                tgt = -tgt
            n = max(0.0, k * (meanes - tgt) / tgt)
    else:
        w = 1.0 / v
        meanes = float(np.dot(w, y) / w.sum())
        zval = meanes / math.sqrt(1.0 / w.sum())
        wp = (float(np.dot(w, y)) / float(sp.ndtri(1 - alpha / 2))) ** 2 - float(w.sum())
        pval = float(2 * sp.ndtr(-abs(zval)))
        n = max(0.0, k * wp / float(w.sum()))
    if math.isfinite(n) and abs(n - round(n)) >= _EPS ** 0.5:
        n = float(math.ceil(n))
    elif math.isfinite(n):
        n = float(np.round(n))
    return FsnResult(type=kind, fsnum=n, alpha=float(alpha), pval=pval, meanes=meanes, target=tgt, test=tst)
