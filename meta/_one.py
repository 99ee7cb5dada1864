"""tau2 of ONE analysis (1-D ``y``, ``v``), for :func:`meta._estimators.fit_one`
(hence :func:`meta.pool.pool`): the estimators of :mod:`meta._estimators`
without their 2-D (studies x analyses) machinery.

Same algorithms, same formulas, same tolerances as
:func:`meta._estimators.tau2_mle` (REML, ML), :func:`~meta._estimators.tau2_pm`
(PM, EB), :func:`~meta._estimators.tau2_he` and
:func:`~meta._estimators.tau2_sj` (sources there); only the bookkeeping
differs:

* the REML/ML score scan over the log grid (the global-maximum guarantee:
  every sign change + to - of the score on a grid with spacing factor
  sqrt(2) up to a proven bound of every root, see ``tau2_mle``) is one
  vectorised evaluation of the (grid points x studies) array, in tiles of
  the same number of cells at every k (:func:`_scan`, :func:`_scan_blocks`);
* Newton / bisection (Press et al. 2007, ``rtsafe``) runs on Python floats
  for the one bracket (or few) found, with the same rules as
  :func:`meta._estimators._bracketed_root`;
* every sum over the studies is a plain ufunc reduction (no BLAS: its
  threads stall on a loaded 2-core machine), taken in blocks of
  :data:`BLOCK` studies in buffers allocated once per call (no k-sized
  temporary: at k = 1,000,000 each would be 8 MB of fresh memory, paid in
  page faults and cache misses), so time grows linearly in k.  Up to
  BLOCK studies that is one block: the same numpy calls on the whole
  arrays; beyond, the blocks' pairwise sums are added in block order, which
  moves a sum by a few ulp against one pairwise sum over all k.

Results agree with the 2-D code to rounding (tests/test_estimators.py,
tests/test_pool.py hold both to metafor).
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np

from meta import _estimators as _est
from meta import _lazy

__all__ = ["tau2_one", "CELLS"]

CELLS = 2**16  # grid x study cells evaluated at once in the score scan (0.5 MB per temporary)
LIST_MAX = _est.LIST_MAX  # up to this many studies the root finder works on Python floats
BLOCK = 16384  # studies per block of the sums for large k (128 kB per buffer: stays in cache)
_add = np.add.reduce
_mul = operator.mul


class _Work:
    """Sums over the studies of one analysis for large k, in blocks of
    :data:`BLOCK` studies: each block's weights are computed into buffers
    allocated once per call and summed while they are in cache (one pass over
    ``y``, ``v`` per statistic instead of a dozen over k-sized temporaries:
    at k = 1,000,000 those spill every cache and the time per study
    doubles).  Every sum is a plain ufunc reduction (no BLAS threads)."""

    def __init__(self, y, v):
        self.y, self.v = y, v
        k = y.size
        n = min(k, BLOCK)
        self.w, self.r, self.t = np.empty(n), np.empty(n), np.empty(n)
        self.blocks = [(a, min(a + BLOCK, k)) for a in range(0, k, BLOCK)]

    def _weights(self, a, b, tau2):
        w = np.add(self.v[a:b], tau2, out=self.w[: b - a])
        return np.divide(1.0, w, out=w)

    def sums(self, tau2):
        """sum(w), est."""
        sw = swy = 0.0
        for a, b in self.blocks:
            w = self._weights(a, b, tau2)
            sw += float(_add(w))
            swy += float(_add(np.multiply(w, self.y[a:b], out=self.t[: b - a])))
        return None, sw, swy / sw

    def score(self, tau2, ml=False, info=False):
        """:func:`meta._estimators.reml_score` for one analysis."""
        _, sw, est = self.sums(tau2)
        sw2 = swr2 = sw3 = swu = supu = 0.0
        for a, b in self.blocks:
            n = b - a
            w = self._weights(a, b, tau2)
            wr = np.subtract(self.y[a:b], est, out=self.r[:n])
            wr *= w  # u = w (y - est)
            t = np.multiply(w, w, out=self.t[:n])
            sw2 += float(_add(t))
            if info and not ml:
                t *= w
                sw3 += float(_add(t))
            t = np.multiply(wr, wr, out=self.t[:n])
            swr2 += float(_add(t))
            if info:
                t *= w  # w u^2
                supu += float(_add(t))
                swu += float(_add(np.multiply(wr, w, out=self.t[:n])))
        score = swr2 - (sw if ml else sw - sw2 / sw)
        if not info:
            return score
        fisher = sw2 if ml else sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
        obs = 2.0 * (supu - swu * swu / sw) - fisher
        return score, (obs if obs > 0 else fisher)

    def loglik(self, tau2, ml=False):
        """:func:`meta._estimators.reml_loglik` for one analysis."""
        _, sw, est = self.sums(tau2)
        logs = rss = 0.0
        for a, b in self.blocks:
            n = b - a
            w = self._weights(a, b, tau2)
            r = np.subtract(self.y[a:b], est, out=self.r[:n])
            r *= r
            r *= w
            rss += float(_add(r))
            logs += float(_add(np.log(w, out=self.t[:n])))
        return -0.5 * (-logs + (0.0 if ml else math.log(sw)) + rss)

    def pm_q(self, tau2, deriv=False):
        """:func:`meta._estimators._pm_q` for one analysis (several blocks: :meth:`_pm_q_merged`)."""
        if len(self.blocks) > 1:
            return self._pm_q_merged(tau2, deriv)
        _, sw, est = self.sums(tau2)
        q = g = 0.0
        for a, b in self.blocks:
            n = b - a
            w = self._weights(a, b, tau2)
            r = np.subtract(self.y[a:b], est, out=self.r[:n])
            wr = np.multiply(w, r, out=self.t[:n])
            if deriv:
                g += float(_add(np.multiply(wr, wr, out=w)))
            q += float(_add(np.multiply(wr, r, out=r)))
        return (q, g) if deriv else q

    def _pm_q_merged(self, tau2, deriv=False):
        """:meth:`pm_q` in one pass over the studies: each block's sums about
        its own weighted mean ``m_b = sum_b(w y) / sum_b(w)``, merged as Chan,
        Golub & LeVeque (1983) merge sums of squares:
        ``Q = sum_b [q_b + sw_b d_b^2]`` and (slope)
        ``sum w^2 (y - est)^2 = sum_b [g_b + 2 d_b x_b + d_b^2 s_b]``, with
        ``d_b = m_b - est``, ``q_b = sum_b w (y - m_b)^2``,
        ``g_b = sum_b w^2 (y - m_b)^2``, ``x_b = sum_b w^2 (y - m_b)``,
        ``s_b = sum_b w^2`` (exact identities; every ``q_b``, ``g_b`` and
        ``sw_b d_b^2`` is >= 0, so nothing cancels in Q).  Reads ``y`` and
        ``v`` once per evaluation instead of twice; Q moves by a few ulp
        against the two-pass sum."""
        parts = []
        for a, b in self.blocks:
            n = b - a
            yb, t = self.y[a:b], self.t[:n]
            w = self._weights(a, b, tau2)
            sw_b = float(_add(w))
            swy_b = float(_add(np.multiply(w, yb, out=t)))
            r = np.subtract(yb, swy_b / sw_b, out=self.r[:n])
            u = np.multiply(w, r, out=t)  # w (y - m_b)
            q_b = float(_add(np.multiply(u, r, out=r)))
            if deriv:
                x_b = float(_add(np.multiply(w, u, out=r)))
                s_b = float(_add(np.multiply(w, w, out=r)))
                g_b = float(_add(np.multiply(u, u, out=w)))
                parts.append((sw_b, swy_b, q_b, g_b, x_b, s_b))
            else:
                parts.append((sw_b, swy_b, q_b))
        est = math.fsum(p[1] for p in parts) / math.fsum(p[0] for p in parts)
        q = g = 0.0
        for p in parts:
            d = p[1] / p[0] - est
            q += p[2] + p[0] * d * d
            if deriv:
                g += p[3] + 2.0 * d * p[4] + d * d * p[5]
        return (q, g) if deriv else q


class _ListWork:
    """:class:`_Work` on Python floats, for small k (a numpy call on five
    values costs more than the arithmetic; sums in study order)."""

    def __init__(self, y, v):
        self.yl, self.vl = y.tolist(), v.tolist()

    def sums(self, tau2):
        w = [1.0 / (x + tau2) for x in self.vl]
        sw = sum(w)
        return w, sw, sum(map(_mul, w, self.yl)) / sw

    def score(self, tau2, ml=False, info=False):
        w, sw, est = self.sums(tau2)
        wr = [wi * (yi - est) for wi, yi in zip(w, self.yl)]
        w2 = list(map(_mul, w, w))
        sw2 = sum(w2)
        score = sum(map(_mul, wr, wr)) - (sw if ml else sw - sw2 / sw)
        if not info:
            return score
        if ml:
            fisher = sw2
        else:
            sw3 = sum(map(_mul, w2, w))
            fisher = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
        wu = list(map(_mul, wr, w))
        swu = sum(wu)
        upu = sum(map(_mul, wu, wr)) - swu * swu / sw
        obs = 2.0 * upu - fisher
        return score, (obs if obs > 0 else fisher)

    def loglik(self, tau2, ml=False):
        w, sw, est = self.sums(tau2)
        logs = sum(map(math.log, w))
        rss = sum(wi * (yi - est) ** 2 for wi, yi in zip(w, self.yl))
        return -0.5 * (-logs + (0.0 if ml else math.log(sw)) + rss)

    def pm_q(self, tau2, deriv=False):
        w, sw, est = self.sums(tau2)
        r = [yi - est for yi in self.yl]
        wr = list(map(_mul, w, r))
        q = sum(map(_mul, wr, r))
        return (q, sum(map(_mul, wr, wr))) if deriv else q


def _work(y, v):
    return _ListWork(y, v) if y.size <= LIST_MAX else _Work(y, v)


def _centred_ss(y) -> float:
    """``sum((y - mean(y))^2)`` in one pass in blocks of :data:`BLOCK` studies
    (one reused buffer): each block's sum of squares about its own mean,
    merged exactly as Chan, Golub & LeVeque (1983),
    ``sum_b [ss_b + n_b (mean_b - mean)^2]``.  Up to BLOCK studies: the numpy
    calls ``d = y - mean``, ``sum(d * d)`` on the whole array, the same bits."""
    k = y.size
    buf = np.empty(min(k, BLOCK))
    parts = []
    for a in range(0, k, BLOCK):
        yb = y[a : a + BLOCK]
        s = float(_add(yb))
        d = np.subtract(yb, s / yb.size, out=buf[: yb.size])
        parts.append((yb.size, s, float(_add(np.multiply(d, d, out=d)))))
    mean = math.fsum(p[1] for p in parts) / k if len(parts) > 1 else parts[0][1] / k
    return sum(p[2] + p[0] * (p[1] / p[0] - mean) ** 2 for p in parts)


def _rtsafe(fun, lo, hi, scale, maxiter=_est.MAXITER, start=None):
    """Root of ``f`` with ``f(lo) > 0 >= f(hi)``: :func:`meta._estimators._bracketed_root`
    for one bracket (``fun(t)`` returns ``f(t)`` and a positive slope estimate),
    from ``start`` (default ``lo``).  Newton converges quadratically and stops
    when a step is below ``1e-12 (t + scale)``, so the start moves the result
    by far less than that."""
    t = lo if start is None else start
    step_old = math.inf
    for _ in range(maxiter):
        f, g = fun(t)
        if f > 0:
            lo = t
        if f < 0:
            hi = t
        try:
            new = t + f / g
        except ZeroDivisionError:
            new = math.nan
        if not math.isfinite(new) or new <= lo or new >= hi or abs(new - t) > 0.5 * step_old:
            new = 0.5 * (lo + hi)
        if f == 0:
            new = t
        step_old = abs(new - t)
        tol = _est._RTOL * (new + scale)
        if f == 0 or step_old <= tol or hi - lo <= tol:
            return new
        t = new

    def f1(x):
        return fun(x)[0]

    return hi if f1(hi) == 0 else _lazy.optimize().brentq(f1, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)


def _scan_small(y, v, grid, ml):
    """:func:`_scan` for a (grid x studies) array of a few hundred cells: the
    fewest numpy calls (the sums as products with a vector: single-threaded
    BLAS at this size)."""
    w = np.add.outer(grid, v)
    np.divide(1.0, w, out=w)
    sw = _add(w, axis=1)
    wr = np.subtract(y, (w @ y / sw)[:, None])
    wr *= w
    score = np.einsum("ij,ij->i", wr, wr)
    if ml:
        return score - sw
    return score - sw + np.einsum("ij,ij->i", w, w) / sw


def _scan(y, v, grid, ml):
    """REML (ML) score at every grid point (vectorised in blocks of CELLS cells)."""
    k = y.size
    if grid.size * k <= 1024:
        return _scan_small(y, v, grid, ml)
    out = np.empty(grid.size)
    step = max(1, CELLS // k)
    for a in range(0, grid.size, step):
        g = grid[a : a + step, None]
        w = np.add(v[None, :], g)
        np.divide(1.0, w, out=w)
        sw = _add(w, axis=1)
        est = _add(w * y[None, :], axis=1) / sw
        wr = np.subtract(y[None, :], est[:, None])
        wr *= w
        wr *= wr
        w *= w
        sw2 = _add(w, axis=1)
        out[a : a + step] = _add(wr, axis=1) - (sw if ml else sw - sw2 / sw)
    return out


def _scan_blocks(y, v, grid, ml):
    """:func:`_scan` for k > :data:`BLOCK`: the (grid points x studies) array
    in tiles of :data:`BLOCK` studies x ``CELLS // BLOCK`` grid points (the
    same cells per numpy call as :func:`_scan`, so the time per study and
    grid point does not change with k; the two tiles are reused, no k-sized
    temporary).  Each tile gives, per grid point, its block's sums about
    the block's own weighted mean ``m_b = sum_b(w y) / sum_b(w)``:
    ``sw_b``, ``swy_b``, ``g_b = sum_b w^2 (y - m_b)^2``,
    ``x_b = sum_b w^2 (y - m_b)``, ``s_b = sum_b w^2``; the blocks are merged
    as Chan, Golub & LeVeque (1983) merge sums of squares,
    ``sum w^2 (y - est)^2 = sum_b [g_b + 2 d_b x_b + d_b^2 s_b]`` with
    ``d_b = m_b - est`` (exact identities; ``|2 d_b x_b| <= g_b + d_b^2 s_b``
    by Cauchy-Schwarz, so the merge cannot cancel more than the sum it
    gives).  Products are summed by ``einsum`` (numpy's own loops, no BLAS)."""
    k, g = y.size, grid.size
    rows = max(1, CELLS // BLOCK)
    nb = -(-k // BLOCK)
    parts = np.empty((5, nb, g))
    wbuf, dbuf = np.empty(rows * BLOCK), np.empty(rows * BLOCK)
    for ib, a in enumerate(range(0, k, BLOCK)):
        yb, vb = y[a : a + BLOCK], v[a : a + BLOCK]
        n = yb.size
        for c in range(0, g, rows):
            gg = grid[c : c + rows]
            h = gg.size
            w = np.add(vb[None, :], gg[:, None], out=wbuf[: h * n].reshape(h, n))
            np.divide(1.0, w, out=w)
            sw = _add(w, axis=1)
            swy = np.einsum("ij,j->i", w, yb)
            d = np.subtract(yb[None, :], (swy / sw)[:, None], out=dbuf[: h * n].reshape(h, n))
            u = np.multiply(w, d, out=d)  # w (y - m_b)
            p = parts[:, ib, c : c + h]
            p[0], p[1] = sw, swy
            p[2] = np.einsum("ij,ij->i", u, u)
            p[3] = np.einsum("ij,ij->i", w, u)
            p[4] = np.einsum("ij,ij->i", w, w)
    sw_b, swy_b, g_b, x_b, s_b = parts
    sw = _add(sw_b, axis=0)
    d = swy_b / sw_b - _add(swy_b, axis=0) / sw
    swr2 = _add(g_b + 2.0 * d * x_b + d * d * s_b, axis=0)
    return swr2 - (sw if ml else sw - _add(s_b, axis=0) / sw)


@functools.lru_cache(maxsize=None)
def _fractions(g):
    """``[0, linspace(0, 1, g)]``: the grid's exponents (the first entry becomes tau2 = 0)."""
    f = np.concatenate([[0.0], np.linspace(0.0, 1.0, g)])
    f.setflags(write=False)
    return f


def tau2_mle(y, v, ml=False, maxiter=_est.MAXITER):
    """REML (ML) tau2 of one analysis: :func:`meta._estimators.tau2_mle` with m = 1
    (the same grid, brackets, root finder and comparison with the boundary 0)."""
    k = y.size
    if k < 2:
        return 0.0
    work = _work(y, v)
    if k <= LIST_MAX:  # a numpy call on a few values costs more than the arithmetic
        R = max(work.yl) - min(work.yl)
        vmax, vmin, vsum = max(work.vl), min(work.vl), sum(work.vl)
    else:
        R = float(y.max() - y.min())
        vmax, vmin, vsum = float(v.max()), float(v.min()), float(_add(v))
    up = 1.01 * max(vmax, 2.0 * k / max(k - 1, 1) * R * R)  # _estimators._upper
    low = min(vmin / 16.0, up / 16.0)
    octaves = math.log2(up / low)
    g = int(min(_est.GRID_MAX, max(8, math.ceil(_est.GRID_PER_OCTAVE * octaves) + 1)))
    grid = low * (up / low) ** _fractions(g)
    grid[0] = 0.0
    # the caller silences overflow (pool's errstate)
    s = (_scan(y, v, grid, ml) if k <= BLOCK else _scan_blocks(y, v, grid, ml)).tolist()
    jj = [j for j in range(g) if s[j] > 0 and s[j + 1] <= 0]  # each a local maximum
    if not jj:
        return 0.0
    grid = grid.tolist()
    scale = vsum / k
    best, best_ll = 0.0, None
    for j in jj:
        lo, hi = grid[j], grid[j + 1]
        start = lo + (hi - lo) * (s[j] / (s[j] - s[j + 1]))  # regula falsi: ~2 Newton steps fewer
        if not lo < start < hi:
            start = lo
        root = _rtsafe(lambda t: work.score(t, ml=ml, info=True), lo, hi, scale, maxiter, start)
        if len(jj) == 1 and s[0] > 0 and s[0] * root > 1e-6 * k:
            # the only local maximum, and the likelihood rises from 0 (score > 0 up to the
            # bracket): it beats the boundary by ~score(0) root / 4, far above the rounding
            # of the log-likelihoods (~1e-15 k), so comparing them would only confirm it
            return root
        ll = work.loglik(root, ml=ml)
        if best_ll is None or ll >= best_ll:  # the last of equal likelihoods, as the 2-D code's lexsort
            best, best_ll = root, ll
    return best if best_ll > work.loglik(0.0, ml=ml) else 0.0


def tau2_pm(y, v, maxiter=_est.MAXITER):
    """Paule-Mandel tau2 of one analysis: :func:`meta._estimators.tau2_pm` with m = 1."""
    k = y.size
    if k < 2:
        return 0.0
    df = float(k - 1)
    work = _work(y, v)
    if not work.pm_q(0.0) > df:
        return 0.0
    if k <= LIST_MAX:
        ybar = sum(work.yl) / k
        hi = sum((x - ybar) ** 2 for x in work.yl) / df
        scale = sum(work.vl) / k
    else:
        hi = _centred_ss(y) / df
        scale = float(_add(v)) / k

    def fun(t):
        q, g = work.pm_q(t, deriv=True)
        return q - df, g

    return _rtsafe(fun, 0.0, hi, scale, maxiter)


def tau2_he(y, v):
    """Hedges (1983) tau2 of one analysis (:func:`meta._estimators.tau2_he`)."""
    k = y.size
    if k < 2:
        return 0.0
    t = (_centred_ss(y) - (k - 1) / k * float(_add(v))) / (k - 1)
    return max(t, 0.0)


def tau2_sj(y, v):
    """Sidik & Jonkman (2005) tau2 of one analysis (:func:`meta._estimators.tau2_sj`)."""
    k = y.size
    if k < 2:
        return 0.0
    t0 = _centred_ss(y) / k
    # sum(w (y - est)^2), w = 1/(v + t0): the generalised Q in blocks (numpy at every k, as the 2-D code)
    return max(t0 * _Work(y, v).pm_q(t0) / (k - 1), 0.0)


def tau2_one(y, v, method, q=None, sw0=None):
    """tau2 of one analysis by ``method`` (canonical name; FE and DL are
    computed by the caller); ``q``, ``sw0`` (Cochran's Q and sum(1/v)) for HS."""
    if method in ("REML", "ML"):
        return tau2_mle(y, v, ml=method == "ML")
    if method in ("PM", "EB"):
        return tau2_pm(y, v)
    if method == "HE":
        return tau2_he(y, v)
    if method == "SJ":
        return tau2_sj(y, v)
    if method == "HS":
        return max((q - y.size) / sw0, 0.0) if y.size > 1 else 0.0
    raise ValueError(method)  # pragma: no cover - checked by callers
