"""Compiled kernel for :func:`meta.pool.pool_many` with ``method="FE"`` or
``"DL"`` and ``test="z"`` (optional: needs numba, ``pip install meta[fast]``).

Why a second implementation of the fixed-effect and DerSimonian-Laird fits
exists at all: the numpy path (:mod:`meta._estimators`, shared with
:func:`meta.pool.pool`) makes ~30 passes over the padded ``studies x
analyses`` block plus ~60 over the per-analysis vectors; simulation work
asks for more (1000x a loop of statsmodels ``combine_effects``;
measurements in ``benchmarks/README.md``).  This kernel copies each block
of analyses once into cache-sized ``studies x analyses`` work arrays and
runs every step as a loop over the block's analyses that compiles to SIMD
instructions (8 analyses per AVX-512 instruction), the special functions
included: the normal tail, ``exp`` and ``erfc`` are the branch-free
arithmetic of :mod:`meta._vecmath` (Cody's rational approximations as in
R's ``pnorm``, a Cody-Waite ``exp``; no C library call in the loops).

The closed forms are not restated here: DL tau2, I2, the intervals are the
functions of :mod:`meta._formulas` that :func:`meta._estimators.finish`
also calls, compiled with ``numba.njit(inline="always")`` into the kernel;
the chi-square tail is the same closed form (A&S 26.4.4-26.4.5, the same
coefficient table) arranged so that one ``exp(-h)`` serves both terms
(:func:`_chi2_sf`).  Rounding differs from the numpy engine's in the order
of numpy's sums, in ``se = 1/sqrt(sum w)``, in the p-value (the rational functions of R's
``pnorm`` on ``|est| sqrt(sum w)``, within 4 ulp of 40-digit values, here, scipy's ``erfc(|est/se|/sqrt 2)``
there) and in the chi-square tail (here within 9 ulp of 40-digit values
for df <= 30, 3 ulp for df <= 10: tests/test_vecmath.py); the tests hold
the two engines to 1e-12 relative on random ragged data and both to
metafor's fixtures.  REML, PM and the HKSJ test always use the numpy path.

Formulas (sources in :mod:`meta._estimators`): ``w0 = 1/v``;
``est0 = sum(w0 y)/sum(w0)``; ``Q = sum(w0 (y - est0)^2)`` (0 for k = 1);
DL ``tau2 = max(0, (Q - (k-1)) / (sum(w0) - sum(w0^2)/sum(w0)))``;
``w = 1/(v + tau2)``; ``est = sum(w y)/sum(w)``; ``se = sqrt(1/sum(w))``;
``p = 2 pnorm(-|est/se|)``; I2 as metafor (FE from Q, DL from tau2 and
the typical within-study variance); ``q_p`` from the closed forms of the
chi-square tail; ``df > 200`` (or a series that overflows) is left NaN here
and filled by :func:`scipy.special.chdtrc` by the caller.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import types
from pathlib import Path

import numpy as np

from meta import _formulas as _f
from meta import _vecmath
from meta import _vecmath as _v

# numba is optional and heavy to import (~0.5 s): look for it now, import it
# and compile the kernel on first use only.
AVAILABLE = importlib.util.find_spec("numba") is not None
CHI2_DFMAX = 200  # as meta._estimators.chi2_sf: larger df go to scipy's chdtrc
_ERFC_THRESH2 = _vecmath.ERFC_THRESH2  # erfc(sqrt h) = 1 - sqrt(h) R1(h) up to here
_ERFC_BIG_Q = 32.0  # Q = 2h > 32: sqrt(h) > 4, Cody's third range of erfc
_PNORM_MID = _vecmath.M_SQRT_32  # |z| above: the third range of pnorm
_BLOCK = 512  # analyses per block of the kernel (fewer blocks: each costs ~0.5 us of loop set-up) ...
_BLOCK_CELLS = 6144  # ... at most ~this many values per work array (48 kB: the three stay in the L2 cache), 64 analyses at least


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

    Rows are fitted in blocks of up to ``_BLOCK`` analyses.  A block's ``y``
    and ``v`` are read once, in tiles of 8 analyses transposed in registers
    (:func:`_copy_block`), into ``studies x analyses`` work arrays; while a
    block is computed, the next block's rows are asked for a slice at a time
    (:func:`_prefetch_part`), so that on data larger than the cache reading
    memory overlaps the arithmetic instead of preceding it; the next
    pass stores ``w0`` (0 at the padding, selected without a branch) and
    forms k and the fixed-effect sums, two studies per step; a row whose
    sums are not finite is checked study by study (:func:`_cell`).  The
    passes over studies select y = 0, w = 0 at the padding (NaN in ``y``)
    as they read it.  Every loop runs over the
    analyses of a block with the same operations in each lane, which the
    compiler turns into SIMD instructions, the special functions included
    (:mod:`meta._vecmath`); where a range of pnorm or erfc is needed by no
    row of the block, or no row has an odd df, that code is left out.  The
    sums run in study order, padding adding exact zeros."""
    m, n = y.shape
    nr = n + (n & 1)  # rows of the work arrays: pairs, the last one padding where n is odd
    bsz = max(1, min(_BLOCK, max(64, _BLOCK_CELLS // nr // 8 * 8), m))  # analyses per block
    ld = bsz + 8  # row length of the work arrays: rows 4 kB apart (bsz = 512) would share the L1 cache's sets
    yt = np.full((nr, ld), np.nan)
    vt = np.ones((nr, ld))
    wt = np.empty((nr, ld))
    kb = np.empty(bsz, np.int64)
    sw0 = np.empty(bsz)
    sw0sq = np.empty(bsz)
    swy = np.empty(bsz)
    est0 = np.empty(bsz)
    q = np.empty(bsz)
    tau2 = np.empty(bsz)
    sw = np.empty(bsz)
    zabs = np.empty(bsz)
    crit = np.empty(bsz)
    dd = np.empty(bsz, np.int64)
    coef = np.empty(bsz)
    acc = np.empty(bsz)
    one_crit = True
    for k in range(pcrit.shape[0]):
        one_crit &= pcrit[k] == pcrit[0]
    overflow = 0
    redo = 0
    # the next block's rows are asked for (prefetched) a slice at a time, in
    # the passes over pairs of studies of the current block
    y_at, v_at, row_bytes = y.ctypes.data, v.ctypes.data, y.strides[0]
    if row_bytes != v.strides[0] or row_bytes <= 0:
        row_bytes = 0  # no prefetch
    parts = 3 * (nr // 2)
    for s in range(0, m, bsz):
        c = min(bsz, m - s)
        nlo = (s + c) * row_bytes
        nhi = min(m, s + c + bsz) * row_bytes
        part = 0
        # Loops that compute store into 1-D views only (rows of the work arrays
        # and of out): with 2-D indexing the compiler cannot prove that a store
        # does not alias a load and leaves the loop scalar.
        yb = y[s:s + c]
        vb = v[s:s + c]
        _copy_block(yb, vb, yt, vt, c)  # the block's rows, transposed
        for a in range(c):
            kb[a] = 0
            sw0[a] = 0.0
            sw0sq[a] = 0.0
            swy[a] = 0.0
        # k and the fixed-effect sums (w0 = 0 at the padding; NaN where vi <= 0
        # or not a number: _cell).  Rows in pairs (half the loads and stores of
        # the sums), added in study order
        for i in range(0, nr, 2):
            _prefetch_part(y_at, v_at, nlo, nhi, part, parts)
            part += 1
            ya, va, wa = yt[i], vt[i], wt[i]
            yb2, vb2, wb2 = yt[i + 1], vt[i + 1], wt[i + 1]
            for a in range(c):
                y0, w0, n0 = _cell(ya[a], va[a])
                y1, w1, n1 = _cell(yb2[a], vb2[a])
                wa[a] = w0
                wb2[a] = w1
                kb[a] += np.int64(n0) + np.int64(n1)
                sw0[a] = sw0[a] + w0 + w1
                sw0sq[a] = sw0sq[a] + w0 * w0 + w1 * w1
                swy[a] = swy[a] + w0 * y0 + w1 * y1
        # a row with no study, or sums that are not finite (an invalid study
        # among them: NaN w0, infinite yi; or valid values that overflow) is
        # checked study by study
        nbad = 0
        for a in range(c):
            nbad += (kb[a] == 0) | (not (sw0[a] < math.inf)) | (not (abs(swy[a]) < math.inf))
        if nbad:
            for a in range(c):
                if kb[a] == 0 or _cell_bad_rows(yt, vt, n, a):
                    return s + a
        # Cochran's Q about the fixed-effect estimate (0 for k = 1), DL tau2;
        # the padding (y NaN, w0 = 0) adds r = 0
        for a in range(c):
            est0[a] = swy[a] / sw0[a]
            q[a] = 0.0
            sw[a] = 0.0
            swy[a] = 0.0
        for i in range(0, nr, 2):
            _prefetch_part(y_at, v_at, nlo, nhi, part, parts)
            part += 1
            ya, wa = yt[i], wt[i]
            yb2, wb2 = yt[i + 1], wt[i + 1]
            for a in range(c):
                e = est0[a]
                y0 = ya[a]
                y1 = yb2[a]
                r0 = (y0 if y0 == y0 else e) - e
                r1 = (y1 if y1 == y1 else e) - e
                q[a] = q[a] + r0 * r0 * wa[a] + r1 * r1 * wb2[a]
        for a in range(c):
            k = kb[a]
            qa = max(q[a], 0.0) if k > 1 else 0.0
            q[a] = qa
            tau2[a] = 0.0 if fe or k == 1 else _f.tau2_dl(qa, k - 1, sw0[a], sw0sq[a])
        # random-effects weights 1/(v + tau2) (= 1/v bit for bit where tau2 = 0), 0 at the padding
        for i in range(0, nr, 2):
            _prefetch_part(y_at, v_at, nlo, nhi, part, parts)
            part += 1
            ya, va = yt[i], vt[i]
            yb2, vb2 = yt[i + 1], vt[i + 1]
            for a in range(c):
                t = tau2[a]
                y0 = ya[a]
                y1 = yb2[a]
                w0 = 1.0 / (va[a] + t) if y0 == y0 else 0.0
                w1 = 1.0 / (vb2[a] + t) if y1 == y1 else 0.0
                sw[a] = sw[a] + w0 + w1
                swy[a] = swy[a] + w0 * (y0 if y0 == y0 else 0.0) + w1 * (y1 if y1 == y1 else 0.0)
        # estimate, se (1/sqrt(sum w)), CI, prediction interval: its critical value
        # per k gathered first (an indexed load in a loop that stores would keep
        # that loop scalar), or one value for all k
        o_k, o_est, o_se, o_lo, o_hi = out[0, s:s + c], out[1, s:s + c], out[2, s:s + c], out[3, s:s + c], out[4, s:s + c]
        o_p, o_tau2, o_i2, o_q, o_qp = out[5, s:s + c], out[6, s:s + c], out[7, s:s + c], out[8, s:s + c], out[9, s:s + c]
        o_pilo, o_pihi = out[10, s:s + c], out[11, s:s + c]
        if one_crit:
            for a in range(c):
                crit[a] = pcrit[0]
        else:
            for a in range(c):
                crit[a] = pcrit[kb[a]]
        nover = 0
        for a in range(c):
            e = swy[a] / sw[a]
            root = math.sqrt(sw[a])
            sea = 1.0 / root
            t2 = tau2[a]
            zabs[a] = abs(e) * root  # |est / se| without a division
            lo, hi = _f.interval(e, zcrit, sea)
            plo, phi = _f.pi_bounds(e, crit[a], sea, t2, False)
            o_k[a] = kb[a]
            o_est[a] = e
            o_se[a] = sea
            o_lo[a] = lo
            o_hi[a] = hi
            o_tau2[a] = t2
            o_q[a] = q[a]
            o_pilo[a] = lo if pi_is_ci else plo
            o_pihi[a] = hi if pi_is_ci else phi
            finite = (abs(e) < math.inf) & (sea < math.inf) & (t2 < math.inf) & (q[a] < math.inf)
            nover += not finite
        overflow += nover
        # I2: k = 1 gives 0 (as metafor); FE with Q = 0: max(0, -inf) = 0
        if fe:
            for a in range(c):
                i2 = _f.i2_from_q(q[a], kb[a] - 1)
                o_i2[a] = i2 if kb[a] > 1 else 0.0
        else:
            for a in range(c):
                i2 = _f.i2_from_tau2(tau2[a], _f.typical_variance(kb[a] - 1, sw0[a], sw0sq[a]))
                o_i2[a] = i2 if kb[a] > 1 else 0.0
        # p = 2 pnorm(-|z|); the range |z| > sqrt(32) only in blocks that have one
        nbig = 0
        for a in range(c):
            nbig += zabs[a] > _PNORM_MID
        if nbig:
            for a in range(c):
                o_p[a] = _v.pnorm2_ranges(zabs[a], True)
        else:
            for a in range(c):
                o_p[a] = _v.pnorm2_ranges(zabs[a], False)
        redo += _chi2_block(q, kb, c, tab, dd, acc, coef, o_qp)
    return -1 - (overflow > 0) - 2 * (redo > 0)


def _copy_rows(yb, vb, yt, vt, lo, hi):
    """``yt[i, a] = yb[a, i]``, ``vt[i, a] = vb[a, i]`` for the rows ``lo <= a < hi``
    of a block (strided reads, contiguous writes)."""
    for i in range(yb.shape[1]):
        yr = yt[i]
        vr = vt[i]
        for a in range(lo, hi):
            yr[a] = yb[a, i]
            vr[a] = vb[a, i]


def _copy_block(yb, vb, yt, vt, c):
    """The ``c`` rows of a block (analyses x studies) transposed into the work
    arrays ``yt``, ``vt`` (studies x analyses): :func:`_copy_rows` (compiled:
    :func:`_copy_block_tiled`)."""
    _copy_rows(yb, vb, yt, vt, 0, c)


def _copy_block_tiled(yb, vb, yt, vt, c):
    """:func:`_copy_block` in tiles of 8 analyses x up to 8 studies, each read
    as 8 row vectors and transposed in registers (``_tile8``, ``_tile4``,
    ``_tile2``: :func:`_tile_intrinsics`); the rows beyond a multiple of 8, and
    blocks whose rows are not contiguous, by :func:`_copy_rows`.  Compiled
    only (it computes with the arrays' addresses)."""
    n = yb.shape[1]
    c8 = c - c % 8
    if yb.strides[1] != 8 or vb.strides[1] != 8 or yb.strides[0] != vb.strides[0] or yt.strides[1] != 8:
        c8 = 0
    rs = yb.strides[0] // 8  # row stride of the input, in values
    ds = yt.strides[0] // 8  # row stride of the work arrays
    ya, va, yd, vd = yb.ctypes.data, vb.ctypes.data, yt.ctypes.data, vt.ctypes.data
    for a0 in range(0, c8, 8):
        j0 = 0
        while j0 < n:
            nc = min(8, n - j0)
            src = (a0 * rs + j0) * 8
            dst = (j0 * ds + a0) * 8
            if nc > 4:
                _tile8(ya + src, rs, nc, yd + dst, ds)
                _tile8(va + src, rs, nc, vd + dst, ds)
            elif nc > 2:
                _tile4(ya + src, rs, nc, yd + dst, ds)
                _tile4(va + src, rs, nc, vd + dst, ds)
            else:
                _tile2(ya + src, rs, nc, yd + dst, ds)
                _tile2(va + src, rs, nc, vd + dst, ds)
            j0 += nc
    _copy_rows(yb, vb, yt, vt, c8, c)


def _prefetch_part(ya, va, lo, hi, part, parts):
    """Ask for the ``part``-th of ``parts`` equal slices of the bytes ``[lo, hi)``
    of the arrays at addresses ``ya`` and ``va`` (64-byte cache lines,
    ``_prefetch``: :func:`_tile_intrinsics`): the kernel asks for the next
    block's rows a slice at a time while it computes the current block, so
    that reading memory overlaps the arithmetic.  Compiled only."""
    for at in (ya, va):
        first = (at + lo) // 64  # the lines that hold bytes at + lo ... at + hi - 1
        lines = (at + hi + 63) // 64 - first if hi > lo else 0
        for line in range(first + lines * part // parts, first + lines * (part + 1) // parts):
            _prefetch(line * 64)


def _prefetch(address):
    """A hint to the memory system, nothing when the kernel runs as plain Python
    (compiled: the LLVM intrinsic of :func:`_tile_intrinsics`)."""
    return None


def _no_prefetch(ya, va, lo, hi, part, parts):
    """:func:`_prefetch_part` where the LLVM intrinsics are not used: nothing."""
    return None


def _transpose8(rows, shuffle):
    """The 8 columns of the 8 x 8 matrix whose rows are the vectors ``rows``:
    three rounds of ``shuffle(a, b, lanes)`` (lanes of the concatenation of a
    and b), pairs of lanes, then pairs of pairs, then halves."""
    lo1, hi1 = [0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15]
    lo2, hi2 = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    lo3, hi3 = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
    t = [shuffle(rows[r & ~1], rows[r | 1], hi1 if r & 1 else lo1) for r in range(8)]
    u = [None] * 8
    for g in (0, 4):
        for j in range(2):
            u[g + j] = shuffle(t[g + j], t[g + j + 2], lo2)
            u[g + j + 2] = shuffle(t[g + j], t[g + j + 2], hi2)
    return [shuffle(u[j & 3], u[(j & 3) + 4], hi3 if j & 4 else lo3) for j in range(8)]


def _tile_intrinsics(numba):
    """``_tile8``, ``_tile4``, ``_tile2``: numba intrinsics ``tile(src, rs, nc,
    dst, ds)`` (addresses in bytes, strides in float64 values) that read 8
    rows of ``W`` (8, 4, 2) values at ``src`` (row stride ``rs``; only the
    first ``nc <= W`` of each, masked loads) and write the first ``nc``
    columns of that 8 x W tile as vectors of 8 at ``dst`` (row stride ``ds``).
    The transpose is LLVM ``shufflevector``s (:func:`_transpose8` for W = 8;
    below, the rows concatenated and the columns picked out)."""
    from llvmlite import ir
    from numba.core import cgutils
    from numba.core import types as nt
    from numba.core.extending import intrinsic

    def make(width):
        def codegen(context, builder, signature, args):
            src, rs, nc, dst, ds = args
            dbl, i64, i32, i1 = ir.DoubleType(), ir.IntType(64), ir.IntType(32), ir.IntType(1)
            vin, vout = ir.VectorType(dbl, width), ir.VectorType(dbl, 8)
            pin, pout = vin.as_pointer(), vout.as_pointer()
            suffix = (lambda w: "p0") if getattr(pin, "is_opaque", False) else (lambda w: f"p0v{w}f64")
            load = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vin, [pin, i32, ir.VectorType(i1, width), vin]),
                f"llvm.masked.load.v{width}f64.{suffix(width)}")
            store = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [vout, pout, i32, ir.VectorType(i1, 8)]),
                f"llvm.masked.store.v8f64.{suffix(8)}")
            splat = builder.insert_element(ir.Constant(ir.VectorType(i64, width), ir.Undefined), nc, ir.Constant(i32, 0))
            splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(i32, width), [0] * width))
            mask = builder.icmp_signed("<", ir.Constant(ir.VectorType(i64, width), list(range(width))), splat)
            zero = ir.Constant(vin, [0.0] * width)
            rows = [builder.call(load, [builder.inttoptr(builder.add(src, builder.mul(rs, ir.Constant(i64, 8 * r))), pin),
                                        ir.Constant(i32, 8), mask, zero]) for r in range(8)]

            def shuffle(a, b, lanes):
                return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, len(lanes)), lanes))

            if width == 8:
                cols = _transpose8(rows, shuffle)
            else:
                cat = rows
                while len(cat) > 1:
                    w = cat[0].type.count
                    cat = [shuffle(cat[r], cat[r + 1], list(range(2 * w))) for r in range(0, len(cat), 2)]
                cols = [shuffle(cat[0], cat[0], [r * width + j for r in range(8)]) for j in range(width)]
            on, off = ir.Constant(ir.VectorType(i1, 8), [1] * 8), ir.Constant(ir.VectorType(i1, 8), [0] * 8)
            for j in range(width):
                at = builder.inttoptr(builder.add(dst, builder.mul(ds, ir.Constant(i64, 8 * j))), pout)
                keep = builder.select(builder.icmp_signed(">", nc, ir.Constant(i64, j)), on, off)
                builder.call(store, [cols[j], at, ir.Constant(i32, 8), keep])
            return context.get_dummy_value()

        @intrinsic
        def tile(typingctx, src, rs, nc, dst, ds):
            return nt.void(nt.intp, nt.intp, nt.intp, nt.intp, nt.intp), codegen

        return tile

    def prefetch_codegen(context, builder, signature, args):
        (addr,) = args
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        name = "llvm.prefetch.p0" if getattr(i8p, "is_opaque", False) else "llvm.prefetch.p0i8"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
        # read (0), keep in all cache levels (3), data cache (1)
        builder.call(fn, [builder.inttoptr(addr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    @intrinsic
    def prefetch(typingctx, addr):
        return nt.void(nt.intp), prefetch_codegen

    return {"_tile8": make(8), "_tile4": make(4), "_tile2": make(2), "_prefetch": prefetch}


def _cell(yi, vi):
    """One study's ``(y, w0, study)`` for the kernel's sums: ``y`` (0 at the
    padding, ``yi`` NaN), ``w0 = 1/vi`` (0 at the padding; NaN where ``1/vi``
    is not > 0: vi < 0, -0, inf or NaN, so the sum of w0 is NaN) and whether
    it is a study.  ``vi = +0`` gives ``w0 = inf``, as a subnormal vi does;
    :func:`_cell_bad_rows` tells them apart."""
    study = yi == yi
    w = np.float64(1.0) / vi  # IEEE division in plain Python too (vi = 0 at the padding)
    return (yi if study else 0.0), ((w if w > 0.0 else math.nan) if study else 0.0), study


def _cell_bad_rows(yt, vt, n, a):
    """Whether column ``a`` of the work arrays holds an invalid study: yi
    infinite, or vi not finite and > 0."""
    for i in range(n):
        yi = yt[i, a]
        vi = vt[i, a]
        if yi == yi and not ((vi > 0.0) & (vi < math.inf) & (abs(yi) < math.inf)):
            return True
    return False


def _chi2_block(q, kb, c, tab, dd, acc, coef, o_qp):
    """``q_p`` of the first ``c`` rows (Q ``q``, k ``kb``) into ``o_qp``:
    :func:`_chi2_sf`; 1 where k = 1 (as metafor), NaN where df > 200 or the
    series overflows (returns how many are NaN).  ``tab`` is
    ``meta._estimators.CHI2_TABLE``; ``dd``, ``acc``, ``coef`` work arrays."""
    ecol = tab.shape[1] - 1 - (tab.shape[1] - 1) % 2  # the table's last even and odd df columns
    ocol = tab.shape[1] - 2 + (tab.shape[1] - 1) % 2
    # the polynomial P(h) of every row by Horner's rule over the block's
    # longest sum (zeros above a row's own terms leave its sum exact, as the
    # table's zeros do): a coefficient depends on df only through its parity,
    # so it is selected from the table's last even and odd columns, not gathered
    jb = 1
    for a in range(c):
        df = kb[a] - 1
        d = df if df <= CHI2_DFMAX else 1  # df > 200: q_p NaN below, filled by the caller
        dd[a] = d
        jb = max(jb, d // 2)
    jb = min(jb, tab.shape[0])
    for a in range(c):
        acc[a] = 0.0
    for j in range(jb - 1, -1, -1):
        ce = tab[j, ecol]  # 1/j! (even df)
        co = tab[j, ocol]  # (2/sqrt(pi)) 2^j / (1 3 ... (2j+1)) (odd df)
        for a in range(c):
            d = dd[a]
            cf = co if d & 1 else ce
            cf = cf if j < (d >> 1) else 0.0  # a row's own terms: j < df // 2
            acc[a] = acc[a] * (0.5 * q[a]) + cf
    # the tail; erfc(sqrt h) only in blocks with an odd df, its range h > 16 only where some h is
    nodd = 0
    nbig = 0
    for a in range(c):
        odd = dd[a] & 1
        nodd += odd
        nbig += odd & (q[a] > _ERFC_BIG_Q)
    if nbig:
        for a in range(c):
            coef[a] = _chi2_sf(acc[a], 0.5 * q[a], dd[a], True, True)
    elif nodd:
        for a in range(c):
            coef[a] = _chi2_sf(acc[a], 0.5 * q[a], dd[a], True, False)
    else:
        for a in range(c):
            coef[a] = _chi2_sf(acc[a], 0.5 * q[a], dd[a], False, False)
    nredo = 0
    for a in range(c):
        k = kb[a]
        qp = 1.0 if k == 1 else coef[a]  # k = 1: Q = 0, p = 1 (as metafor)
        qp = qp if (k - 1 <= CHI2_DFMAX) & (abs(qp) < math.inf) else math.nan
        o_qp[a] = qp
        nredo += qp != qp
    return nredo


def _chi2_sf(poly, h, df, odd, big):
    """Chi-square upper tail at ``x = 2h`` with ``df`` (1 ... 200) degrees of
    freedom from ``poly = P(h)``: the closed forms of
    :func:`meta._formulas.chi2_sf_even` / ``chi2_sf_odd`` (Abramowitz & Stegun
    26.4.4-26.4.5), both evaluated and the right one selected, with one
    ``exp(-h) = m 2^j`` for both (:func:`meta._vecmath.exp_neg_split`) and
    ``erfc(sqrt h)`` from ``h`` itself (:func:`meta._vecmath.erfc_sqrt_parts`):
    even ``P(h) exp(-h)``; odd ``sqrt(h) P(h) exp(-h) + erfc(sqrt h)``, as
    ``(sqrt(h) P(h) + R(sqrt h)) exp(-h)`` where ``erfc(sqrt h) = exp(-h) R``
    (``sqrt h > 0.46875``).  The scale ``2^j`` is applied last, so a large
    ``P(h)`` times a subnormal ``exp(-h)`` keeps its precision.  ``odd``
    False: even df only; ``big`` False: no odd df with ``h > 16`` (constants
    where compiled: the code of what is absent is dropped)."""
    m, j = _v.exp_neg_split(h)
    even = _v.scale2(m * poly, j)
    if not odd:
        return even
    sh = math.sqrt(h)
    small, ratio = _v.erfc_sqrt_parts(h, sh, big)
    odd_big = _v.scale2(m * (sh * poly + ratio), j)
    odd_small = sh * poly * _v.scale2(m, j) + small
    res_odd = odd_small if h <= _ERFC_THRESH2 else odd_big
    return res_odd if df & 1 else even


_compiled = None
_COMPILED_HELPERS: dict = {}  # tiled (bool) -> the compiled helpers


def _njit_globals(numba, tiled=True):
    """Globals for the compiled kernel: ``_f`` rebound to a module of the njit
    versions of :mod:`meta._formulas`, ``_v`` to those of :mod:`meta._vecmath`,
    and the kernel's own helpers compiled, all inlined where called
    (error_model="numpy": IEEE division, x/0 = inf or NaN as numpy, instead
    of ZeroDivisionError).  ``tiled``: the block copy is
    :func:`_copy_block_tiled` (LLVM masked loads and shuffles), else the plain
    :func:`_copy_rows`.  Built once per process."""
    if tiled not in _COMPILED_HELPERS:
        jit = types.ModuleType("meta._formulas_njit")
        for name in _f.__all__:
            setattr(jit, name, numba.njit(inline="always", error_model="numpy")(getattr(_f, name)))
        glb = {**_kernel.__globals__, "_f": jit, "_v": _vecmath.njit_namespace(numba)}
        if tiled:
            glb.update(_tile_intrinsics(numba))
        for helper in (_copy_rows, _copy_block_tiled, _prefetch_part, _no_prefetch, _cell, _cell_bad_rows, _chi2_sf,
                       _chi2_block):
            if helper in (_copy_block_tiled, _prefetch_part) and not tiled:
                continue
            fn = types.FunctionType(helper.__code__, glb, helper.__name__)
            glb[helper.__name__] = numba.njit(inline="always", error_model="numpy")(fn)
        glb["_copy_block"] = glb["_copy_block_tiled"] if tiled else _plain_copy_block(numba, glb)
        if not tiled:
            glb["_prefetch_part"] = glb["_no_prefetch"]
        names = ("_f", "_v", "_copy_rows", "_copy_block", "_prefetch_part", "_cell", "_cell_bad_rows", "_chi2_sf",
                 "_chi2_block")
        _COMPILED_HELPERS[tiled] = {name: glb[name] for name in names}
    return {**_kernel.__globals__, **_COMPILED_HELPERS[tiled]}


def _plain_copy_block(numba, glb):
    """:func:`_copy_block` compiled with the globals ``glb`` (the plain copy, :func:`_copy_rows`)."""
    fn = types.FunctionType(_copy_block.__code__, glb, _copy_block.__name__)
    return numba.njit(inline="always", error_model="numpy")(fn)


def _compile(fn, numba, tiled=True, **options):
    """``fn`` compiled with the globals of :func:`_njit_globals`.  Its name
    carries a digest of the modules compiled into it: numba's on-disk cache
    is keyed by this file alone, and would otherwise serve a kernel built
    from an older :mod:`meta._vecmath` or :mod:`meta._formulas`."""
    clone = types.FunctionType(fn.__code__, _njit_globals(numba, tiled), fn.__name__)
    clone.__qualname__ = f"{fn.__qualname__}_{'' if tiled else 'plain_'}{_sources_digest()}"
    clone.__module__, clone.__doc__ = fn.__module__, fn.__doc__
    return numba.njit(error_model="numpy", **options)(clone)


def _sources_digest() -> str:
    """A short digest of the source of meta/_vecmath.py and meta/_formulas.py."""
    h = hashlib.sha256()
    for mod in (_vecmath, _f):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:12]


def kernel():
    """The compiled :func:`_kernel` (compiled on the first call in a process,
    or loaded from numba's on-disk cache).  Raises ``ImportError`` if numba
    is missing or cannot be imported."""
    global _compiled
    if _compiled is None:
        import numba

        fn = _compile(_kernel, numba, cache=True, nogil=True)
        try:
            _probe(fn)
        except Exception:  # noqa: BLE001 - an LLVM that cannot emit the tiled copy's masked loads
            # the same kernel with the plain block copy: the same results, a slower copy
            fn = _compile(_kernel, numba, tiled=False, cache=True, nogil=True)
        _compiled = fn
    return _compiled


def _probe(fn):
    """Compile ``fn`` (the kernel) for C-ordered float64 input by fitting a
    small block: a numba or LLVM version that rejects the tiled copy's
    intrinsics raises here, on the first use in a process, not in a user's call."""
    y = np.zeros((9, 9))
    fn(y, np.ones((9, 9)), False, 1.96, np.full(10, 1.96), False, _est_table(), np.empty((12, 9)))


def _est_table():
    from meta import _estimators  # imported on first use only: _estimators imports this module's flags

    return _estimators.CHI2_TABLE


def _chi2_many(x, df, tab, out):
    """:func:`_chi2_block` (the kernel's ``q_p``) on ``x`` (chi-square values)
    with ``df`` (int64, 1 ... 200) degrees of freedom, in blocks of
    ``_BLOCK``; NaN where the kernel leaves ``q_p`` to scipy.  For the tests."""
    m = x.shape[0]
    bsz = max(1, min(_BLOCK, m))
    kb = np.empty(bsz, np.int64)
    q = np.empty(bsz)
    dd = np.empty(bsz, np.int64)
    acc = np.empty(bsz)
    coef = np.empty(bsz)
    for s in range(0, m, bsz):
        c = min(bsz, m - s)
        for a in range(c):
            kb[a] = df[s + a] + 1
            q[a] = x[s + a]
        _chi2_block(q, kb, c, tab, dd, acc, coef, out[s:s + c])
    return out


_compiled_chi2 = None


def chi2_many():
    """The compiled :func:`_chi2_many` (the kernel's chi-square tail on its own)."""
    global _compiled_chi2
    if _compiled_chi2 is None:
        import numba

        _compiled_chi2 = _compile(_chi2_many, numba, cache=True)
    return _compiled_chi2


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
