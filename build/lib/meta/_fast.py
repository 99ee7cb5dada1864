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
