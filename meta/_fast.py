"""Compiled kernel for :func:`meta.pool.pool_many` with ``method="FE"`` or
``"DL"`` and ``test="z"`` (optional: needs numba, ``pip install meta[fast]``).

Why a second implementation of the fixed-effect and DerSimonian-Laird fits
exists at all: the numpy path (:mod:`meta._estimators`, shared with
:func:`meta.pool.pool`) makes ~30 passes over the padded ``studies x
analyses`` block plus ~60 over the per-analysis vectors; simulation work
asks for more (1000x a loop of statsmodels ``combine_effects``;
measurements in ``benchmarks/README.md``).  This kernel reads each block of
analyses once into cache-sized work arrays and runs every step as a loop
over the block's analyses that compiles to SIMD instructions, about 2x
faster than the numpy engine (half of its time is libm's ``erfc`` and ``exp``).  Its closed
forms are not restated here: DL tau2, I2, the chi-square tail, the intervals
are the functions of :mod:`meta._formulas` that :func:`meta._estimators.finish`
also calls, compiled with ``numba.njit(inline="always")`` into the kernel
(same coefficient table; rounding may differ from the numpy engine's in the
order of numpy's sums, in ``se = 1/sqrt(sum w)``, in the p-value's argument
and in the normal tail, libm's ``erfc`` instead of scipy's), and the tests hold the two to 1e-12
relative on random ragged data and both to metafor's fixtures; REML, PM and
the HKSJ test always use the numpy path.

Formulas (sources in :mod:`meta._estimators`): ``w0 = 1/v``;
``est0 = sum(w0 y)/sum(w0)``; ``Q = sum(w0 (y - est0)^2)`` (0 for k = 1);
DL ``tau2 = max(0, (Q - (k-1)) / (sum(w0) - sum(w0^2)/sum(w0)))``;
``w = 1/(v + tau2)``; ``est = sum(w y)/sum(w)``; ``se = sqrt(1/sum(w))``;
``p = erfc(|est/se| / sqrt 2)``; I2 as metafor (FE from Q, DL from tau2 and
the typical within-study variance); ``q_p`` from the closed forms of the
chi-square tail (Abramowitz & Stegun 26.4.4-26.4.5); ``df > 200`` (or a
series that overflows) is left NaN here and filled by
:func:`scipy.special.chdtrc` by the caller.
"""

from __future__ import annotations

import importlib.util
import math
import types

import numpy as np

from meta import _formulas as _f

# numba is optional and heavy to import (~0.5 s): look for it now, import it
# and compile the kernel on first use only.
AVAILABLE = importlib.util.find_spec("numba") is not None
_SQRT1_2 = math.sqrt(0.5)
CHI2_DFMAX = 200  # as meta._estimators.chi2_sf: larger df go to scipy's chdtrc
_BLOCK = 256  # analyses per block of the kernel: its work arrays (n x 256 values) stay in the L1/L2 cache


def _kernel(y, v, fe, zcrit, pcrit, pi_is_ci, tab, out):
    """Fit every row of ``y``, ``v`` (m x n, NaN in ``y`` = no study) into
    ``out`` (12 x m, rows in the order of ``meta.many._MANY_COLUMNS``:
    k, estimate, se, ci_low, ci_high, p, tau2, i2, q, q_p, pi_low, pi_high).  ``pcrit[k]`` is
    the prediction-interval critical value for k studies; ``tab`` the
    chi-square coefficient table ``meta._estimators.CHI2_TABLE``.
    Returns the first row with invalid input (no study, infinite yi, vi not
    finite and > 0 where yi is a number; nothing from its block on is
    valid), or, all rows valid, ``-1 - flags``: ``flags & 1`` where some
    estimate, se, tau2 or Q is not finite (sums that overflow: the caller
    names the rows), ``flags & 2`` where some ``q_p`` is NaN (df > 200 or an
    overflowing series: the caller fills them with scipy); -1 = neither.

    Rows are fitted in blocks of ``_BLOCK`` analyses, copied to ``studies x
    analyses`` work arrays (padding: y = 0, v = inf, so 1/v = 0 and the sums
    need no branch), so that every loop below runs over the analyses of a
    block with the same operations in each lane and the compiler turns it
    into SIMD instructions.  The sums run in study order, padding adding
    exact zeros.  The special functions (erfc, exp)
    are libm's, called in loops of their own (the others stay SIMD)."""
    m, n = y.shape
    jcap = tab.shape[0]
    bsz = max(1, min(_BLOCK, m))
    yt = np.empty((n, bsz))
    vt = np.empty((n, bsz))
    kb = np.empty(bsz, np.int64)
    badv = np.empty(bsz, np.int64)
    sw0 = np.empty(bsz)
    sw0sq = np.empty(bsz)
    swy = np.empty(bsz)
    est0 = np.empty(bsz)
    q = np.empty(bsz)
    tau2 = np.empty(bsz)
    sw = np.empty(bsz)
    est = np.empty(bsz)
    se = np.empty(bsz)
    zarg = np.empty(bsz)
    h = np.empty(bsz)
    acc = np.empty(bsz)
    dd = np.empty(bsz, np.int64)
    ieven = np.empty(bsz, np.int64)
    iodd = np.empty(bsz, np.int64)
    overflow = 0
    redo = 0
    for s in range(0, m, bsz):
        c = min(bsz, m - s)
        for a in range(c):
            for i in range(n):
                yt[i, a] = y[s + a, i]
                vt[i, a] = v[s + a, i]
        for a in range(c):
            kb[a] = 0
            badv[a] = 0
            sw0[a] = 0.0
            sw0sq[a] = 0.0
            swy[a] = 0.0
        # k, the fixed-effect sums, validity; padding set to y = 0, v = inf
        for i in range(n):
            for a in range(c):
                yi = yt[i, a]
                vi = vt[i, a]
                study = yi == yi
                good = (vi > 0.0) & (vi < math.inf) & (abs(yi) < math.inf)
                badv[a] += study & (not good)
                kb[a] += study
                yi = yi if study else 0.0
                vi = vi if study else math.inf
                yt[i, a] = yi
                vt[i, a] = vi
                w0 = 1.0 / vi
                sw0[a] += w0
                sw0sq[a] += w0 * w0
                swy[a] += w0 * yi
        for a in range(c):
            if kb[a] == 0 or badv[a] != 0:
                return s + a
        # Cochran's Q about the fixed-effect estimate (0 for k = 1), DL tau2
        for a in range(c):
            est0[a] = swy[a] / sw0[a]
            q[a] = 0.0
            sw[a] = 0.0
            swy[a] = 0.0
        for i in range(n):
            for a in range(c):
                r = yt[i, a] - est0[a]
                q[a] += r * r * (1.0 / vt[i, a])
        for a in range(c):
            k = kb[a]
            qa = max(q[a], 0.0) if k > 1 else 0.0
            q[a] = qa
            tau2[a] = 0.0 if fe or k == 1 else _f.tau2_dl(qa, k - 1, sw0[a], sw0sq[a])
        # random-effects weights 1/(v + tau2) (= 1/v bit for bit where tau2 = 0)
        for i in range(n):
            for a in range(c):
                w = 1.0 / (vt[i, a] + tau2[a])
                sw[a] += w
                swy[a] += w * yt[i, a]
        # estimate, se (1/sqrt(sum w)), intervals, I2
        for a in range(c):
            e = swy[a] / sw[a]
            root = math.sqrt(sw[a])
            est[a] = e
            se[a] = 1.0 / root
            zarg[a] = abs(e) * root * _SQRT1_2  # |est / se| / sqrt(2) without a division
        for a in range(c):
            lo, hi = _f.interval(est[a], zcrit, se[a])
            out[3, s + a] = lo
            out[4, s + a] = hi
        if pi_is_ci:
            for a in range(c):
                out[10, s + a] = out[3, s + a]
                out[11, s + a] = out[4, s + a]
        else:
            for a in range(c):
                plo, phi = _f.pi_bounds(est[a], pcrit[kb[a]], se[a], tau2[a], False)
                out[10, s + a] = plo
                out[11, s + a] = phi
        # I2: k = 1 gives 0 (as metafor); FE with Q = 0: max(0, -inf) = 0
        if fe:
            for a in range(c):
                i2 = _f.i2_from_q(q[a], kb[a] - 1)
                out[7, s + a] = i2 if kb[a] > 1 else 0.0
        else:
            for a in range(c):
                i2 = _f.i2_from_tau2(tau2[a], _f.typical_variance(kb[a] - 1, sw0[a], sw0sq[a]))
                out[7, s + a] = i2 if kb[a] > 1 else 0.0
        for a in range(c):
            e = est[a]
            out[0, s + a] = kb[a]
            out[1, s + a] = e
            out[2, s + a] = se[a]
            out[6, s + a] = tau2[a]
            out[8, s + a] = q[a]
            finite = (abs(e) < math.inf) & (se[a] < math.inf) & (tau2[a] < math.inf) & (q[a] < math.inf)
            overflow += not finite
            h[a] = 0.5 * q[a]
            df = kb[a] - 1
            dd[a] = df if df <= CHI2_DFMAX else 1  # df > 200: q_p NaN below, filled by the caller
        for a in range(c):
            out[5, s + a] = math.erfc(zarg[a])
        # q_p: the polynomial P(h) of every row by Horner's rule over the block's
        # longest sum (the table's zeros above a row's own terms leave its sum
        # exact), then the even and the odd df apart (erfc only for odd df)
        jb = 1
        ne = 0
        no = 0
        for a in range(c):
            d = dd[a]
            jb = max(jb, d // 2)
            ieven[ne] = a
            iodd[no] = a
            odd = d & 1
            ne += 1 - odd
            no += odd
        jb = min(jb, jcap)
        for a in range(c):
            acc[a] = tab[jb - 1, dd[a]]
        for j in range(jb - 2, -1, -1):
            for a in range(c):
                acc[a] = acc[a] * h[a] + tab[j, dd[a]]
        for x in range(ne):
            a = ieven[x]
            out[9, s + a] = _f.chi2_sf_even(acc[a], h[a])
        for x in range(no):
            a = iodd[x]
            sh = math.sqrt(h[a])
            out[9, s + a] = _f.chi2_sf_odd(acc[a], h[a], sh, math.erfc(sh))
        for a in range(c):
            k = kb[a]
            qp = 1.0 if k == 1 else out[9, s + a]  # k = 1: Q = 0, p = 1 (as metafor)
            qp = math.nan if k - 1 > CHI2_DFMAX else qp
            out[9, s + a] = qp
            redo += not (abs(qp) < math.inf)
    return -1 - (overflow > 0) - 2 * (redo > 0)


_compiled = None


def kernel():
    """The compiled :func:`_kernel` (compiled on the first call in a process,
    or loaded from numba's on-disk cache).  Raises ``ImportError`` if numba
    is missing or cannot be imported."""
    global _compiled
    if _compiled is None:
        import numba

        # The formulas of meta._formulas, compiled and inlined into the kernel:
        # the kernel's global ``_f`` is rebound to a module of their njit versions.
        # error_model="numpy": IEEE division (x/0 = inf or NaN, as numpy) instead of ZeroDivisionError
        jit = types.ModuleType("meta._formulas_njit")
        for name in _f.__all__:
            setattr(jit, name, numba.njit(inline="always", error_model="numpy")(getattr(_f, name)))
        fn = types.FunctionType(_kernel.__code__, {**_kernel.__globals__, "_f": jit}, _kernel.__name__)
        fn.__qualname__, fn.__module__, fn.__doc__ = _kernel.__qualname__, _kernel.__module__, _kernel.__doc__
        _compiled = numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    return _compiled


# --------------------------------------------------------------------------- REML / ML tau2 (pool_many)


def _mle_score(ys, vs, k, t, ml, info):
    """REML (ML) score and step information of one analysis at tau2 = t:
    :func:`meta._estimators.reml_score` on scalars."""
    sw = 0.0
    swy = 0.0
    for i in range(k):
        w = 1.0 / (vs[i] + t)
        sw += w
        swy += w * ys[i]
    est = swy / sw
    sw2 = 0.0
    sw3 = 0.0
    swr2 = 0.0
    swu = 0.0
    supu = 0.0
    for i in range(k):
        w = 1.0 / (vs[i] + t)
        u = w * (ys[i] - est)
        w2 = w * w
        sw2 += w2
        sw3 += w2 * w
        swr2 += u * u
        swu += u * w
        supu += u * u * w
    if ml:
        score = swr2 - sw
        fisher = sw2
    else:
        score = swr2 - (sw - sw2 / sw)
        fisher = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
    if not info:
        return score, 0.0
    obs = 2.0 * (supu - swu * swu / sw) - fisher
    return score, (obs if obs > 0 else fisher)


def _mle_loglik(ys, vs, k, t, ml):
    """:func:`meta._estimators.reml_loglik` of one analysis."""
    sw = 0.0
    swy = 0.0
    logs = 0.0
    for i in range(k):
        w = 1.0 / (vs[i] + t)
        sw += w
        swy += w * ys[i]
        logs += math.log(w)
    est = swy / sw
    rss = 0.0
    for i in range(k):
        r = ys[i] - est
        rss += r * r / (vs[i] + t)
    return -0.5 * (-logs + (0.0 if ml else math.log(sw)) + rss)


def _mle_kernel(y, v, ml, maxiter, rtol, per_octave, grid_max, out):
    """REML (ML) tau2 of every row of ``y``, ``v`` (m x n, NaN in ``y`` = no
    study) into ``out``: :func:`meta._estimators.tau2_mle` row by row (the
    same grid of each analysis, brackets, Newton/bisection steps and
    comparison with the boundary 0), compiled.  A row whose root finder has
    not converged after ``maxiter`` steps gets NaN (the caller finishes it
    with brentq, as the numpy code does)."""
    m, n = y.shape
    ys = np.empty(n)
    vs = np.empty(n)
    s = np.empty(grid_max + 1)
    grid = np.empty(grid_max + 1)
    for a in range(m):
        k = 0
        for i in range(n):
            yi = y[a, i]
            if yi == yi:
                ys[k] = yi
                vs[k] = v[a, i]
                k += 1
        if k < 2:
            out[a] = 0.0
            continue
        ymax = ys[0]
        ymin = ys[0]
        vmax = vs[0]
        vmin = vs[0]
        vsum = 0.0
        for i in range(k):
            ymax = max(ymax, ys[i])
            ymin = min(ymin, ys[i])
            vmax = max(vmax, vs[i])
            vmin = min(vmin, vs[i])
            vsum += vs[i]
        r = ymax - ymin
        up = 1.01 * max(vmax, 2.0 * k / max(k - 1, 1) * r * r)
        low = min(vmin / 16.0, up / 16.0)
        g = int(min(grid_max, max(8, math.ceil(per_octave * math.log2(up / low)) + 1)))
        step = 1.0 / (g - 1)
        grid[0] = 0.0
        for j in range(g):
            f = j * step if j < g - 1 else 1.0
            grid[j + 1] = low * (up / low) ** f
        for j in range(g + 1):
            s[j] = _mle_score(ys, vs, k, grid[j], ml, False)[0]
        scale = vsum / k
        best = 0.0
        best_ll = -math.inf
        found = False
        failed = False
        for j in range(g):
            if not (s[j] > 0 and s[j + 1] <= 0):
                continue
            lo = grid[j]
            hi = grid[j + 1]
            t = lo
            step_old = math.inf
            root = math.nan
            for _ in range(maxiter):
                f, gg = _mle_score(ys, vs, k, t, ml, True)
                if f > 0:
                    lo = t
                if f < 0:
                    hi = t
                new = t + f / gg
                if not (new == new) or abs(new) == math.inf or new <= lo or new >= hi or abs(new - t) > 0.5 * step_old:
                    new = 0.5 * (lo + hi)
                if f == 0:
                    new = t
                step_old = abs(new - t)
                tol = rtol * (new + scale)
                if f == 0 or step_old <= tol or hi - lo <= tol:
                    root = new
                    break
                t = new
            if not (root == root):
                failed = True
                break
            ll = _mle_loglik(ys, vs, k, root, ml)
            if not found or ll >= best_ll:
                best = root
                best_ll = ll
                found = True
        if failed:
            out[a] = math.nan
        elif found and best_ll > _mle_loglik(ys, vs, k, 0.0, ml):
            out[a] = best
        else:
            out[a] = 0.0
    return out


_compiled_mle = None


def mle_kernel():
    """The compiled :func:`_mle_kernel` (compiled on first use, cached on disk)."""
    global _compiled_mle
    if _compiled_mle is None:
        import numba

        jit = numba.njit(inline="always", error_model="numpy")
        glb = {**_mle_kernel.__globals__, "_mle_score": jit(_mle_score), "_mle_loglik": jit(_mle_loglik)}
        fn = types.FunctionType(_mle_kernel.__code__, glb, _mle_kernel.__name__)
        fn.__qualname__, fn.__module__, fn.__doc__ = _mle_kernel.__qualname__, _mle_kernel.__module__, _mle_kernel.__doc__
        _compiled_mle = numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    return _compiled_mle
