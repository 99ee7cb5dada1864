"""Leave-one-out and cumulative refits in bounded memory (the engine behind
:func:`meta.pool.leave_one_out` and :func:`meta.pool.cumulative`).

Each of the k refits is one analysis of up to k studies.  Materialising all
of them as a k x (k - 1) matrix costs O(k^2) memory (5.9 GB at k = 10,000);
here nothing larger than a block of about :data:`CELLS` cells is held at
once, so memory is O(k) plus a fixed block:

* per-refit sums that the estimator allows in closed form are O(k) in time
  too: the fixed-effect sums ``sum(w0)``, ``sum(w0^2)``, ``sum(w0 y)`` and
  Cochran's Q of every refit from the totals (leave-one-out: the total minus
  the study's contribution; cumulative: running sums), hence FE completely
  and the tau2 of DL, HS and HE (closed forms of Q, ``sum(w0)``,
  ``sum(w0^2)`` and the unweighted moments);
* the random-effects weights ``1 / (v + tau2)`` differ in every refit (tau2
  does): from :data:`SERIES_MIN_K` studies the weighted sums of DL, HS and HE
  come from a series in ``tau2 - t0`` around one value (O(k) time,
  :func:`_weighted_series`), otherwise (and for refits whose tau2 is far from
  ``t0``) block by block (O(k^2) time, three passes over each block);
* the iterative estimators (REML, ML, PM, EB) and SJ run the shared
  estimator code (:func:`meta._estimators.fit_core`) on blocks of refits.

Q of a refit from the totals: with ``c`` the weighted mean of all studies
(as rounded), ``d = y - c``, ``S = sum(w)``, ``A = sum(w d)`` (~0),
``B = sum(w d^2)``: ``Q_(-i) = (B - w_i d_i^2) - (A - w_i d_i)^2 / (S - w_i)``
and ``est_(-i) = c + (A - w_i d_i) / (S - w_i)``, exact algebra for any
centre, so the rounding of ``c`` (an ulp of ``|y|``, not of the spread) does
not enter to first order (it would in West's 1979 downdate
``Q - w_i (y_i - m)^2 S / (S - w_i)``).
Its rounding error is a few ulp of ``Q``, not of ``Q_(-i)``; where
``Q_(-i) < Q / 2`` the refit's Q is summed directly instead.  That is at
most ~5 refits: the drops ``Q - Q_(-i) = w_i d_i^2 S / (S - w_i)`` add up to
about ``Q`` except for the one study that may hold more than half of the
weight, so few can exceed ``Q / 2`` (likewise for the unweighted sum of
squares of HE, at most 2).  Cumulative Q runs West's forward update in study order, on ``y - c``.  So the
results agree with fitting each refit on its own to ~1e-13 relative
(``tests/test_refits.py`` holds them to 1e-12 against the matrix fit).

Peak memory of the temporaries: ``BLOCK_BYTES`` (64 MB) at most, plus O(k)
per-refit sums (``tests/test_refits.py`` measures it with tracemalloc).
"""

from __future__ import annotations

import numpy as np

from meta import _estimators as _est

__all__ = ["leave_one_out_core", "cumulative_core", "CELLS", "BLOCK_BYTES"]

BLOCK_BYTES = 64 * 2**20  # temporaries of one block, at most
CELLS = 2**19  # cells (refits x studies) per block: ~12 arrays of 8 bytes each stay below BLOCK_BYTES
CLOSED = ("FE", "DL", "HS", "HE")  # per-refit tau2 from O(k) sums
_LOSS = 0.5  # a refit that keeps less than half of Q is summed directly (at most ~5 refits: see docstring)


def _sum(a):
    """Plain ufunc sum (pairwise; no BLAS threads on a 1-D reduction)."""
    return float(np.add.reduce(a))


def _direct_q(y, w):
    """Cochran's Q of one set of studies, two passes."""
    sw = np.add.reduce(w)
    m = np.add.reduce(w * y) / sw
    d = y - m
    return max(float(np.add.reduce(w * d * d)), 0.0), float(m)


# --------------------------------------------------------------------------- fixed-effect sums


def _loo_fixed(y, v):
    """Per leave-one-out refit: k, sw0, sw0sq, est0, q (FE sums), from the totals."""
    k = y.size
    w = 1.0 / v
    S, S2 = _sum(w), _sum(w * w)
    c = _sum(w * y) / S  # centre: the weighted mean, rounded
    d = y - c  # exact where y is within a factor 2 of c (Sterbenz)
    wd = w * d
    A = _sum(wd)  # ~0, but not exactly: c is rounded
    B = _sum(wd * d)
    Q = max(B - A * A / S, 0.0)
    sw0 = S - w
    sw0sq = S2 - w * w
    with np.errstate(divide="ignore", invalid="ignore"):
        a = A - wd
        est0 = c + a / sw0
        q = (B - wd * d) - a * a / sw0
    redo = np.flatnonzero(~(q >= _LOSS * Q) | ~np.isfinite(est0) | ~(sw0 > 0))
    for i in redo:  # the few refits where the difference cancels: sum them directly
        keep = np.ones(k, bool)
        keep[i] = False
        wi = w[keep]
        sw0[i] = _sum(wi)
        sw0sq[i] = _sum(wi * wi)
        q[i], est0[i] = _direct_q(y[keep], wi)
    q = np.maximum(q, 0.0)
    if k - 1 == 1:
        q[:] = 0.0
    return np.full(k, k - 1, dtype=np.int64), sw0, sw0sq, est0, q


def _cum_fixed(y, v):
    """Per cumulative step j (studies 0..j): k, sw0, sw0sq, est0, q (West's update)."""
    w = 1.0 / v
    sw0 = np.cumsum(w)
    sw0sq = np.cumsum(w * w)
    k = y.size
    est0 = np.empty(k)
    q = np.empty(k)
    c = _sum(w * y) / sw0[-1]
    d = y - c  # West's update on y - c: its running mean rounds to the spread, not to |y|
    S = m = Q = 0.0
    for j, (wj, yj) in enumerate(zip(w.tolist(), d.tolist())):
        S_new = S + wj
        d = yj - m
        m += wj * d / S_new
        Q += wj * d * (yj - m)  # = w d^2 S_old / S_new
        S = S_new
        est0[j] = m
        q[j] = Q
    est0 += c
    q = np.maximum(q, 0.0)
    q[0] = 0.0
    return np.arange(1, k + 1, dtype=np.int64), sw0, sw0sq, est0, q


def _loo_unweighted(y, v):
    """Per leave-one-out refit: sum((y - ybar)^2) and sum(v) (Hedges' estimator)."""
    k = y.size
    c = _sum(y) / k
    d = y - c
    A, B = _sum(d), _sum(d * d)
    rss_all = B - A * A / k
    n = k - 1
    rss = (B - d * d) - (A - d) ** 2 / n
    redo = np.flatnonzero(~(rss >= _LOSS * rss_all))
    for i in redo:
        keep = np.ones(k, bool)
        keep[i] = False
        yi = y[keep]
        dd = yi - _sum(yi) / n
        rss[i] = _sum(dd * dd)
    return np.maximum(rss, 0.0), _sum(v) - v


def _cum_unweighted(y, v):
    k = y.size
    rss = np.empty(k)
    m = R = 0.0
    for j, yj in enumerate((y - _sum(y) / k).tolist()):
        d = yj - m
        m += d / (j + 1)
        R += d * (yj - m)
        rss[j] = R
    return np.maximum(rss, 0.0), np.cumsum(v)


def _tau2_closed(method, k, q, sw0, sw0sq, rss_u=None, sv=None):
    if method == "FE":
        return np.zeros(k.size)
    if method == "DL":
        return _est.tau2_dl(q, k, sw0, sw0sq)
    if method == "HS":
        return _est.tau2_hs(q, k, sw0)
    with np.errstate(invalid="ignore", divide="ignore"):  # HE, Viechtbauer 2005 eq. 6
        t = (rss_u - (k - 1) / k * sv) / (k - 1)
    return np.where(k > 1, np.maximum(t, 0.0), 0.0)


# --------------------------------------------------------------------------- weighted sums, block by block


def _weighted(y, v, tau2, rows, want_rss, loo):
    """sw, est (and rss = sum(w (y - est)^2)) of the refits ``rows`` with
    ``w = 1/(v + tau2[row])``: leave-one-out (all studies but the row's own) or
    cumulative (studies 0..row).  Blocks of at most CELLS cells."""
    n = rows.size
    sw, est = np.empty(n), np.empty(n)
    rss = np.empty(n) if want_rss else None
    k = y.size
    pos = 0
    while pos < n:
        if loo:
            width = k
        else:
            width = int(rows[pos]) + 1
        c = max(1, min(n - pos, CELLS // width))
        if not loo:  # rows ascend: the block's widest row sets the width
            while c > 1 and (int(rows[pos + c - 1]) + 1) * c > CELLS:
                c = max(1, c // 2)
            width = int(rows[pos + c - 1]) + 1
        r = rows[pos : pos + c]
        t = tau2[r]
        W = np.add(v[None, :width], t[:, None])
        np.divide(1.0, W, out=W)
        if loo:
            W[np.arange(c), r] = 0.0
        else:
            W[np.arange(width)[None, :] > r[:, None]] = 0.0
        s = np.add.reduce(W, axis=1)
        e = np.einsum("ij,j->i", W, y[:width]) / s
        sw[pos : pos + c], est[pos : pos + c] = s, e
        if want_rss:
            D = np.subtract(y[None, :width], e[:, None])
            D *= D
            rss[pos : pos + c] = np.einsum("ij,ij->i", W, D)
        pos += c
    return sw, est, rss


SERIES_MIN_K = 2000  # from this many studies the random-effects sums of refits use the series below
_RHO = 0.25  # |tau2_row - tau2_0| / min(v + tau2_0) up to which a refit uses the series
_TERMS = 31  # 0.25^31 / 0.75 < 2^-61: the truncation is below rounding


def _weighted_series(y, v, tau2, rows, want_rss, loo):
    """:func:`_weighted` in O(k) time where the refits' tau2 lie close to one
    value ``t0`` (leave-one-out: all of them, the tau2 of k - 1 of the same
    studies; cumulative: the later steps).  With ``a_j = v_j + t0`` and
    ``d = tau2_row - t0``, ``sum_j 1/(a_j + d) = sum_n (-d)^n sum_j a_j^-(n+1)``
    (a geometric series in ``d / a_j``, ``|d| <= a_min / 4``), and likewise
    for ``sum y_j/(a_j + d)`` and ``sum (y_j - c)^2/(a_j + d)`` (``c``: a
    centre, so that the residual sum does not cancel).  31 terms leave a
    truncation error below 2^-61 of the sum.  Refits with ``|d| > a_min / 4``
    go to :func:`_weighted`.  Leave-one-out subtracts the row's own term;
    cumulative uses running sums of the powers."""
    t = tau2[rows]
    t0 = float(np.median(t)) if loo else float(tau2[-1])
    a = v + t0
    inv = 1.0 / a
    d = t - t0
    near = np.abs(d) <= _RHO * float(a.min())
    sw, est = np.empty(rows.size), np.empty(rows.size)
    rss = np.empty(rows.size) if want_rss else None
    far = rows[~near]
    if far.size:
        fs, fe, fr = _weighted(y, v, tau2, far, want_rss, loo)
        sw[~near], est[~near] = fs, fe
        if want_rss:
            rss[~near] = fr
    r, dn = rows[near], -d[near]
    if r.size == 0:
        return sw, est, rss
    c = _sum(y * inv) / _sum(inv)
    yc = y - c
    yc2 = yc * yc
    F = np.zeros(r.size)
    G = np.zeros(r.size)
    H = np.zeros(r.size) if want_rss else None
    for n in range(_TERMS, 0, -1):  # Horner in -d, highest power first
        pw = inv**n
        if loo:
            f, g = _sum(pw), _sum(pw * yc)
            h = _sum(pw * yc2) if want_rss else 0.0
        else:
            f, g = np.cumsum(pw)[r], np.cumsum(pw * yc)[r]
            h = np.cumsum(pw * yc2)[r] if want_rss else 0.0
        F = F * dn + f
        G = G * dn + g
        if want_rss:
            H = H * dn + h
    if loo:  # minus the refit's own study
        own = 1.0 / (v[r] + t[near])
        F -= own
        G -= own * yc[r]
        if want_rss:
            H -= own * yc2[r]
    sw[near] = F
    e = G / F  # the weighted mean of y - c
    est[near] = c + e
    if want_rss:
        rss[near] = np.maximum(H - e * G, 0.0)  # sum w (y - c - e)^2
    return sw, est, rss


# --------------------------------------------------------------------------- generic: blocks of the estimator code


def _scratch(scratch, block):
    """Three flat work arrays of at least ``block.size`` values for
    :func:`meta._estimators.fit_core`: ``scratch`` if large enough, else new
    ones.  Kept from block to block: fresh memory at every block (and at
    every point of the REML/ML score scan) costs page faults, measured
    ~1.5x the time of leave_one_out REML at k = 3,000."""
    if scratch is not None and scratch[0].size >= block.size:
        return scratch
    return [np.empty(block.size) for _ in range(3)]


def _shaped(scratch, block):
    """Views of the flat arrays ``scratch`` shaped like ``block`` (C-ordered)."""
    return [s[: block.size].reshape(block.shape) for s in scratch]


def _loo_block(y, pos, c):
    """``y`` without study ``r``, for ``r = pos .. pos + c - 1``, as the
    columns of a ``(k - 1) x c`` array: row ``i`` is ``y[i]`` above the
    omitted study and ``y[i + 1]`` from it on, so only the rows ``pos ..
    pos + c - 1`` differ between the columns (copies by row, no index array)."""
    k = y.size
    out = np.empty((k - 1, c))
    out[:pos] = y[:pos, None]
    out[pos + c :] = y[pos + c + 1 :, None]
    i = np.arange(pos, min(pos + c, k - 1))[:, None]
    out[pos : pos + i.size] = np.where(i < np.arange(pos, pos + c)[None, :], y[i], y[i + 1])
    return out


def _generic(y, v, method, want_rss, loo):
    """fit_core on blocks of refits (studies x refits, as the estimators take
    them); blocks of CELLS cells, as the closed forms': peak ~42 MB
    (tracemalloc; leave_one_out and cumulative, REML and PM, k = 1,000 to
    10,000), below BLOCK_BYTES.  Half as many cells (peak ~21 MB) made
    leave_one_out REML at k = 10,000 ~10 % slower: the C-ordered sums run
    row by row, each row as long as the block has refits (CELLS / k)."""
    k = y.size
    nrows = k
    out = {c: np.empty(nrows, dtype=np.int64 if c == "k" else float) for c in _est.CORE_KEYS}
    scratch = None
    pos = 0
    while pos < nrows:
        if loo:
            width = k - 1
            c = max(1, min(nrows - pos, CELLS // max(width, 1)))
            yb, vb = _loo_block(y, pos, c), _loo_block(v, pos, c)
            mask = np.ones(yb.shape, bool)
        else:
            c = max(1, min(nrows - pos, CELLS // (pos + 1)))
            while c > 1 and (pos + c) * c > CELLS:
                c = max(1, c // 2)
            width = pos + c
            r = np.arange(pos, pos + c)
            mask = np.arange(width)[:, None] <= r[None, :]
            yb = np.where(mask, y[:width, None], 0.0)
            vb = np.where(mask, v[:width, None], np.inf)
        scratch = _scratch(scratch, yb)
        core = _est.fit_core(yb, vb, mask, method=method, rss=want_rss, scratch=_shaped(scratch, yb))
        for key in _est.CORE_KEYS:
            if core[key] is not None:
                out[key][pos : pos + c] = core[key]
        del yb, vb, mask, core
        pos += c
    if not want_rss:
        out["rss"] = None
    return out


# --------------------------------------------------------------------------- public


def _core(y, v, method, test, loo):
    want_rss = test in _est.ADJUSTED_TESTS
    if method not in CLOSED:
        return _generic(y, v, method, want_rss, loo)
    k, sw0, sw0sq, est0, q = (_loo_fixed if loo else _cum_fixed)(y, v)
    rss_u = sv = None
    if method == "HE":
        rss_u, sv = (_loo_unweighted if loo else _cum_unweighted)(y, v)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        tau2 = _tau2_closed(method, k, q, sw0, sw0sq, rss_u, sv)
    sw, est = sw0.copy(), est0.copy()
    rss = q.copy() if want_rss else None  # tau2 = 0: w = w0, rss = Q
    rows = np.flatnonzero(tau2 > 0)
    if rows.size:
        weighted = _weighted_series if y.size >= SERIES_MIN_K else _weighted
        s, e, r = weighted(y, v, tau2, rows, want_rss, loo)
        sw[rows], est[rows] = s, e
        if want_rss:
            rss[rows] = r
    return {"k": k, "q": q, "sw0": sw0, "sw0sq": sw0sq, "tau2": tau2, "sw": sw, "est": est, "rss": rss}


def leave_one_out_core(y, v, method, test):
    """:func:`meta._estimators.fit_core`'s per-analysis sums for the k
    leave-one-out refits of ``y``, ``v`` (1-D, k >= 2), in bounded memory."""
    return _core(np.ascontiguousarray(y, dtype=float), np.ascontiguousarray(v, dtype=float), method, test, True)


def cumulative_core(y, v, method, test):
    """The same for the k cumulative refits (studies 0..j, in the given order)."""
    return _core(np.ascontiguousarray(y, dtype=float), np.ascontiguousarray(v, dtype=float), method, test, False)


def blocks_for(k: int) -> int:
    """Refits per block at k studies (for the docs and tests)."""
    return max(1, CELLS // max(k, 1))

