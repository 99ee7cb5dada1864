"""Compiled kernel for :func:`meta.pool.pool_many` with ``method="FE"`` or
``"DL"`` and ``test="z"`` (optional: needs numba, ``pip install meta[fast]``).

Why a second implementation of the fixed-effect and DerSimonian-Laird fits
exists at all: the numpy path (:mod:`meta._estimators`, shared with
:func:`meta.pool.pool`) makes ~30 passes over the padded ``studies x
analyses`` block plus ~60 over the per-analysis vectors, and on our 2-core VM
stays 1.5-2x short of the speed asked for simulation work (1000x a loop of
statsmodels ``combine_effects``; measurements in ``benchmarks/README.md``).
This kernel does one pass per analysis and is about 2x faster.  Its closed
forms are not restated here: DL tau2, I2, the chi-square tail, the intervals
are the functions of :mod:`meta._formulas` that :func:`meta._estimators.finish`
also calls, compiled with ``numba.njit(inline="always")`` into the kernel
(same coefficient table; rounding differs only where sums run in study order
instead of numpy's order and ``se`` is ``1/sqrt(sum w)``), and the tests hold the two to 1e-12
relative on random ragged data and both to metafor's fixtures; REML, PM and
the HKSJ test always use the numpy path.

Formulas (sources in :mod:`meta._estimators`): ``w0 = 1/v``;
``est0 = sum(w0 y)/sum(w0)``; ``Q = sum(w0 (y - est0)^2)`` (0 for k = 1);
DL ``tau2 = max(0, (Q - (k-1)) / (sum(w0) - sum(w0^2)/sum(w0)))``;
``w = 1/(v + tau2)``; ``est = sum(w y)/sum(w)``; ``se = sqrt(1/sum(w))``;
``p = erfc(|est/se| / sqrt 2)``; I2 as metafor (FE from Q, DL from tau2 and
the typical within-study variance); ``q_p`` from the closed forms of the
chi-square tail (Abramowitz & Stegun 26.4.4-26.4.5); ``df > 200`` is left
NaN here and filled by :func:`scipy.special.chdtrc` by the caller.
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
_CHI2_DFMAX = 200  # as meta._estimators.chi2_sf: larger df go to scipy's chdtrc


def _kernel(y, v, fe, zcrit, pcrit, pi_is_ci, tab, out):
    """Fit every row of ``y``, ``v`` (m x n, NaN in ``y`` = no study) into
    ``out`` (12 x m, rows in the order of ``meta.many._MANY_COLUMNS``:
    k, estimate, se, ci_low, ci_high, p, tau2, i2, q, q_p, pi_low, pi_high).  ``pcrit[k]`` is
    the prediction-interval critical value for k studies; ``tab`` the
    chi-square coefficient table ``meta._estimators.CHI2_TABLE``.
    Returns -1, or the first row with invalid input (no study, infinite yi,
    vi not finite and > 0 where yi is a number); nothing after it is valid."""
    m, n = y.shape
    jcap = tab.shape[0]
    ys = np.empty(n)  # the row's studies, packed (padding skipped once)
    vs = np.empty(n)
    ws = np.empty(n)  # 1 / v
    for a in range(m):
        k = 0
        sw0 = 0.0
        sw0sq = 0.0
        swy = 0.0
        ok = True  # and-ed without branches: ~5 % faster than returning at once
        for i in range(n):
            yi = y[a, i]
            if yi != yi:
                continue
            vi = v[a, i]
            ok &= (vi > 0.0) & (vi < math.inf) & (abs(yi) < math.inf)
            w0 = 1.0 / vi
            ys[k] = yi
            vs[k] = vi
            ws[k] = w0
            k += 1
            sw0 += w0
            sw0sq += w0 * w0
            swy += w0 * yi
        if k == 0 or not ok:
            return a
        est0 = swy / sw0
        q = 0.0
        if k > 1:
            for i in range(k):
                r = ys[i] - est0
                q += r * r * ws[i]
            q = max(q, 0.0)
        df = k - 1
        tau2 = 0.0
        if not fe and k > 1:
            tau2 = _f.tau2_dl(q, df, sw0, sw0sq)
        if tau2 == 0.0:  # w = 1/(v + 0) = w0: the same sums, bit for bit
            sw = sw0
            est = est0
        else:
            sw = 0.0
            swy = 0.0
            for i in range(k):
                w = 1.0 / (vs[i] + tau2)
                sw += w
                swy += w * ys[i]
            est = swy / sw
        # phase 1 keeps what phase 2 needs in out's rows (overwritten there)
        out[0, a] = k
        out[1, a] = est
        out[2, a] = sw
        out[6, a] = tau2
        out[7, a] = sw0
        out[8, a] = q
        out[9, a] = sw0sq
    # phase 2: tests, intervals, heterogeneity, from the per-analysis sums
    # (a loop of its own for readability; measured the same speed as one loop)
    for a in range(m):
        k = int(out[0, a])
        est = out[1, a]
        tau2 = out[6, a]
        sw0 = out[7, a]
        q = out[8, a]
        sw0sq = out[9, a]
        df = k - 1
        root = math.sqrt(out[2, a])  # sqrt(sum of weights)
        se = 1.0 / root
        p = math.erfc(abs(est) * root * _SQRT1_2)  # |est / se| without a division: ~5 % faster
        lo, hi = _f.interval(est, zcrit, se)
        # heterogeneity: k = 1 gives Q = 0, p = 1, I2 = 0 (as metafor)
        if k == 1:
            i2 = 0.0
            q_p = 1.0
        else:
            if fe:
                i2 = _f.i2_from_q(q, df)  # Q = 0: max(0, -inf) = 0, as metafor
            else:
                i2 = _f.i2_from_tau2(tau2, _f.typical_variance(df, sw0, sw0sq))
            if df > _CHI2_DFMAX:
                q_p = math.nan
            else:
                h = 0.5 * q
                acc = _f.chi2_poly(tab, h, df, min(max(1, df // 2), jcap))
                if df % 2 == 1:
                    sh = math.sqrt(h)
                    q_p = _f.chi2_sf_odd(acc, h, sh, math.erfc(sh))
                else:
                    q_p = _f.chi2_sf_even(acc, h)
        if pi_is_ci:
            plo = lo
            phi = hi
        else:
            plo, phi = _f.pi_bounds(est, pcrit[k], se, tau2, False)
        out[2, a] = se
        out[3, a] = lo
        out[4, a] = hi
        out[5, a] = p
        out[7, a] = i2
        out[9, a] = q_p
        out[10, a] = plo
        out[11, a] = phi
    return -1


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
