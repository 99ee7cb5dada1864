"""Thousands of meta-analyses at once: :func:`pool_many` and its two engines.

Each row of a 2-D ``yi``/``vi`` pair is one analysis (NaN padding for
ragged rows), fitted with the estimators of :func:`meta.pool.pool` (which
runs the same code with one row) and agreeing with it to 1e-10:

* the numpy engine: :mod:`meta._estimators` vectorised over rows, in blocks
  transposed into a work space kept between calls (fresh memory costs page
  faults on a virtual machine), every method;
* the numba engine: the compiled kernel of :mod:`meta._fast` (optional
  dependency), FE and DL with the z test.

``meta.pool.pool_many`` is this function (imported there, as before).
Timings: ``benchmarks/bench_pool.py`` and ``benchmarks/README.md``.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta import _estimators as _est
from meta import _fast
from meta import _formulas as _f

__all__ = ["pool_many"]

_INF_BITS = np.array(np.inf).view(np.int64)
_CHUNK = 8192  # at most this many rows per block in pool_many (bounds memory) ...
_BLOCK_CELLS = 81920  # ... and about this many cells (rows x columns): 640 kB per work array (on 20,000 x 10, DL 3 % and REML 10 % faster than half as many)
_FINISH_ROWS = 32768  # pool_many runs the per-analysis tests and intervals on up to this many rows at once (their kept work space: ~4 MB)


def _many_input_error(y: np.ndarray, v: np.ndarray) -> None:
    """Raise the ValueError describing what is wrong with pool_many's input."""
    if np.isinf(y).any():
        raise ValueError(f"yi must not be infinite; offending (row, column), 0-based: {_checks.positions(np.isinf(y))}")
    mask = ~np.isnan(y)
    empty = ~mask.any(axis=1)
    if empty.any():
        raise ValueError(f"yi has rows with no finite study; offending rows (0-based): {_checks.positions(empty)}")
    with np.errstate(invalid="ignore"):
        badv = mask & ~(np.isfinite(v) & (v > 0))
    raise ValueError(
        f"vi must be finite and > 0 where yi is finite; offending (row, column), 0-based: {_checks.positions(badv)}"
    )


def _valid_input(y: np.ndarray, v: np.ndarray) -> bool:
    """Whether every row has a study and each study a finite ``yi`` and a finite ``vi > 0``
    (the conditions :func:`_many_input_error` reports)."""
    mask = ~np.isnan(y)
    vs = v[mask]
    with np.errstate(invalid="ignore"):
        return bool(mask.any(axis=1).all() and np.isfinite(y[mask]).all() and (np.isfinite(vs) & (vs > 0)).all())


_ENGINES = ("auto", "numpy", "numba")


def _use_fast(engine: str, method: str, test: str, pi: str = "default") -> bool:
    """Whether pool_many runs the compiled kernel (see its ``engine``)."""
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, _ENGINES))}; got {engine!r}")
    applies = method in ("FE", "DL") and test == "z" and pi != "simple"
    if engine == "numba":
        if not applies:
            raise ValueError(
                f'engine="numba" covers method "FE" and "DL" with test="z" and pi other than "simple"; '
                f"got method={method!r}, test={test!r}, pi={pi!r}"
            )
        try:
            _fast.kernel()
        except ImportError as exc:
            raise ValueError(f'engine="numba" needs numba: pip install "meta[fast]" (or use engine="numpy"); {exc}') from None
        return True
    if engine == "numpy" or not applies or not _fast.AVAILABLE:
        return False
    try:
        _fast.kernel()
    except ImportError as exc:  # installed but broken (e.g. built for another numpy): say so, once per process
        _fast.AVAILABLE = False
        warnings.warn(f"numba is installed but cannot be imported ({exc}); pool_many uses its numpy engine", RuntimeWarning, stacklevel=3)
        return False
    return True


def _use_fast_mle(engine: str, method: str) -> bool:
    """Whether pool_many takes REML/ML tau2 from the compiled kernel (``engine="auto"`` with numba)."""
    if engine != "auto" or method not in ("REML", "ML") or not _fast.AVAILABLE:
        return False
    try:
        _fast.mle_kernel()
    except ImportError as exc:
        _fast.AVAILABLE = False
        warnings.warn(f"numba is installed but cannot be imported ({exc}); pool_many uses its numpy engine", RuntimeWarning, stacklevel=3)
        return False
    return True


def _mle_tau2(y, v, method: str) -> np.ndarray:
    """REML/ML tau2 of every row by the compiled kernel; rows it leaves open
    (no convergence in MAXITER steps, or invalid input) are finished by the
    numpy code of one analysis (:mod:`meta._one`, brentq as last resort)."""
    from meta import _one

    y = np.ascontiguousarray(y)
    v = np.ascontiguousarray(v)
    tau2 = np.empty(y.shape[0])
    with np.errstate(all="ignore"):
        _fast.mle_kernel()(y, v, method == "ML", _est.MAXITER, _est._RTOL, _est.GRID_PER_OCTAVE, _est.GRID_MAX, tau2)
        for a in np.flatnonzero(np.isnan(tau2)):
            keep = ~np.isnan(y[a])
            try:
                tau2[a] = _one.tau2_mle(y[a, keep], v[a, keep], ml=method == "ML")
            except (ArithmeticError, ValueError):  # invalid row: the numpy engine reports it
                tau2[a] = np.nan
    return tau2


def _pool_many_fast(y, v, index, method: str, level: float, pi: str) -> tuple[np.ndarray, bool]:
    """pool_many through the compiled kernel of :mod:`meta._fast`: ``out``
    (12 x m) and whether some estimate, se, tau2 or Q is not finite (the
    kernel checks that as it writes them)."""
    m, n = y.shape
    y = np.ascontiguousarray(y)
    v = np.ascontiguousarray(v)
    alpha = 1.0 - level
    zcrit = _est.z_crit(1.0 - alpha / 2)
    if pi == "default":  # _est.pi_crit's value for every k, without its broadcast and copy
        pcrit = np.full(n + 1, zcrit)
    else:  # per k, as meta._estimators.finish (z test)
        pcrit = _est.pi_crit(pi, np.arange(n + 1), zcrit, fe=method == "FE", level=level)
    out = np.empty((len(_MANY_COLUMNS), m))
    status = _fast.kernel()(y, v, method == "FE", zcrit, pcrit, pi == "default" and method == "FE", _est.CHI2_TABLE, out)
    if status >= 0:
        _many_input_error(y, v)
    flags = -1 - status
    if flags & 2:  # q_p NaN where df > 200 (or the series overflowed): scipy, as chi2_sf does
        q_p = out[_MANY_COLUMNS.index("q_p")]
        redo = ~np.isfinite(q_p)
        q_p[redo] = _lazy.special().chdtrc(out[0, redo] - 1, out[_MANY_COLUMNS.index("q"), redo])
    return out, bool(flags & 1)


def _many_frame(out: np.ndarray, index) -> pd.DataFrame:
    """pool_many's DataFrame from ``out`` (12 x m, rows in the order of
    _MANY_COLUMNS, k as float): one float block (a view of ``out``) plus k as
    int64.  Built from the two blocks directly where pandas offers it
    (``pandas.api.internals``, pandas >= 3): after the kernel has filled the
    caches with the data, the general constructor and ``insert`` spend ~0.1
    ms in cold Python code, measured ~8 % of a 20,000-analysis fit."""
    k = out[:1].astype(np.int64)
    if _from_blocks is not None:
        return _from_blocks([(k, _K_PLACE), (out[1:], _FLOAT_PLACE)],
                            index=pd.RangeIndex(out.shape[1]) if index is None else index, columns=_MANY_INDEX)
    df = pd.DataFrame(out[1:].T, columns=_MANY_FLOAT_INDEX, index=index, copy=False)
    df.insert(0, "k", k[0])
    return df


try:
    from pandas.api.internals import create_dataframe_from_blocks as _from_blocks
except ImportError:  # pandas < 3
    _from_blocks = None
_K_PLACE = np.array([0])
_FLOAT_PLACE = np.arange(1, 12)


_WORKSPACE = threading.local()
_WORKSPACE_KEEP = 4 * _BLOCK_CELLS  # work space up to this many cells is kept between calls


def _workspace(cells: int, rows: int, block_rows: int, fin_rows: int):
    """Work arrays for :func:`pool_many`: five float and two int64 arrays of
    ``cells`` values, a bool one, per-analysis sums for ``rows`` analyses,
    one float array of ``block_rows`` values and the temporaries of
    :func:`_finish_z` for ``rows`` analyses (``fin_rows`` float rows, two
    int64).  Kept per thread between calls when small (a few MB): fresh
    memory is paid for in page faults, which on a virtual machine cost
    microseconds per 4 kB page (4.6 us measured on our 2-core VM), more than
    the arithmetic done on it (fresh temporaries in the finishing step cost
    up to ~780 faults per 20,000-analysis DL call, depending on the heap)."""
    ws = getattr(_WORKSPACE, "arrays", None)
    if (ws is not None and ws[0].shape[1] >= cells and ws[3]["k"].size >= rows and ws[4].size >= block_rows
            and ws[5].shape[0] >= fin_rows):
        return ws
    ws = (
        np.empty((5, cells)),
        np.empty(cells, dtype=bool),
        np.empty((2, cells), dtype=np.int64),
        {c: np.empty(rows, dtype=np.int64 if c == "k" else float) for c in _est.CORE_KEYS},
        np.empty(block_rows),
        np.empty((fin_rows, rows)),
        np.empty((2, rows), dtype=np.int64),
    )
    if cells <= _WORKSPACE_KEEP and rows <= _FINISH_ROWS:
        _WORKSPACE.arrays = ws
    return ws


_MANY_COLUMNS = ["k", "estimate", "se", "ci_low", "ci_high", "p", "tau2", "i2", "q", "q_p", "pi_low", "pi_high"]
_MANY_FLOAT_INDEX = pd.Index(_MANY_COLUMNS[1:])  # built once: ~100 us per call otherwise
_MANY_INDEX = pd.Index(_MANY_COLUMNS)


def pool_many(
    yi, vi, *, method: str = "DL", test: str = "z", level: float = 0.95, pi: str = "z", engine: str = "auto"
) -> pd.DataFrame:
    """Pool each row of the 2-D arrays ``yi`` and ``vi`` (m analyses x up
    to n studies; NaN in ``yi`` marks a missing study, so ragged rows are
    padded with NaN; ``vi`` is ignored there).  Same estimators as
    :func:`meta.pool.pool`, and each row agrees with it to 1e-10.

    ``engine``:

    * ``"numpy"``: the code of :func:`meta.pool.pool` (which runs it with m = 1),
      vectorised over rows, REML and PM included (all rows iterate together;
      each stops when it has converged).  Rows are processed in blocks of
      about 81,920 cells (8192 rows of 10 studies), which bounds memory to
      the input plus a few MB plus the output.
    * ``"numba"``: a compiled kernel (:mod:`meta._fast`; needs the optional
      numba, ``pip install "meta[fast]"``) that reads each block of up to 512
      analyses once and fits it with SIMD loops, about 2x faster; only for
      ``method="FE"`` or ``"DL"`` with ``test="z"``.  The first call in a
      process compiles it (about 2 s, cached on disk after).
    * ``"auto"`` (default): ``"numba"`` where it is installed and applies,
      else ``"numpy"``; for REML and ML (any test) the numpy engine with
      tau2 from a compiled kernel of the same algorithm (:mod:`meta._fast`;
      the same grid, brackets and root finder, so the same global maximum;
      agrees with ``engine="numpy"`` to ~1e-13), about 5x faster.

    Returns a DataFrame with one row per analysis (index kept if ``yi`` is a
    DataFrame) and columns ``k, estimate, se, ci_low, ci_high, p, tau2, i2, q,
    q_p, pi_low, pi_high``.

    DataFrames ``yi`` and ``vi`` are paired by label (rows by index,
    columns by name; see :func:`meta._checks.align`); a DataFrame beside a
    plain array is taken by position.

    Raises ``ValueError`` if the shapes or labels differ, a row has no finite
    ``yi``, ``yi`` is infinite, ``vi`` is not finite and > 0 where ``yi`` is
    finite, the input is boolean or complex, or a row's sums overflow.

    Past one machine: ``yi`` (and ``vi``) may be Dask arrays (rows =
    analyses, chunked by rows; optional dependency ``pip install
    "meta[dask]"``).  The result is then lazy: a ``dask.delayed`` object
    whose ``.compute()`` (or ``client.compute(...)``, ``dask.compute(...)``)
    is the DataFrame of the in-memory call, equal to it value for value.
    Each row chunk is fitted by this function as one task, where the chunk
    lives (e.g. on the workers of a ``dask.distributed`` cluster), and the
    chunks' tables are concatenated in row order.  Checks of the data run
    when the chunks are computed.  (Not a ``dask.dataframe``: that needs
    pyarrow, which the ``dask`` extra does not install.)
    """
    method, test, level, pi = _checks.estimator_options(method, test, level, pi)
    if _is_dask(yi) or _is_dask(vi):
        return _pool_many_dask(yi, vi, method, test, level, pi, engine)
    fast = _use_fast(engine, method, test, pi)
    (args, index) = _checks.align({"yi": yi, "vi": vi})
    if not isinstance(args["yi"], pd.DataFrame):
        index = None
    y = _checks.numbers(args["yi"], "yi")
    v = _checks.numbers(args["vi"], "vi")
    if y.ndim != 2 or v.ndim != 2:
        raise ValueError(f"yi and vi must be 2-D (analyses x studies); got shapes {y.shape} and {v.shape}")
    if y.shape != v.shape:
        raise ValueError(f"yi and vi must have the same shape; got {y.shape} and {v.shape}")
    if y.shape[1] == 0:
        raise ValueError("yi has no columns: at least one study per analysis is needed")
    if fast:
        out, check = _pool_many_fast(y, v, index, method, level, pi)
    else:
        tau2 = _mle_tau2(y, v, method) if _use_fast_mle(engine, method) else None
        out, k1 = _pool_many_numpy(y, v, index, method, test, level, pi, tau2)
        check = True
    bad = _not_finite(out, test) if check else None
    if bad is not None:
        if not _valid_input(y, v):
            _many_input_error(y, v)
        raise ValueError(
            f"pool_many: yi, vi give non-finite results (sums overflow) in rows (0-based) {_checks.positions(bad)}: "
            "the values are too large or too small to compute with in double precision; rescale them"
        )
    if not fast:
        _checks.warn_k1(test, k1)  # once the input is known to be valid
    return _many_frame(out, index)


def _is_dask(x) -> bool:
    """A Dask array (told by its type's module, so dask is imported only when it is used)."""
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "to_delayed")


def _many_block(yb, vb, start: int, method, test, level, pi, engine) -> pd.DataFrame:
    """One row chunk of a Dask input, fitted in memory; index = the rows' global positions."""
    df = pool_many(yb, vb, method=method, test=test, level=level, pi=pi, engine=engine)
    df.index = pd.RangeIndex(start, start + len(df))
    return df


def _pool_many_dask(yi, vi, method, test, level, pi, engine):
    """pool_many on Dask arrays: a lazy dask DataFrame, one partition per row chunk."""
    import dask
    import dask.array as da

    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, _ENGINES))}; got {engine!r}")
    y = yi if _is_dask(yi) else _checks.numbers(yi, "yi")
    v = vi if _is_dask(vi) else _checks.numbers(vi, "vi")
    if y.ndim != 2 or v.ndim != 2:
        raise ValueError(f"yi and vi must be 2-D (analyses x studies); got shapes {y.shape} and {v.shape}")
    if y.shape != v.shape:
        raise ValueError(f"yi and vi must have the same shape; got {y.shape} and {v.shape}")
    if not _is_dask(y):
        y = da.from_array(y, chunks=v.chunks)
    if not _is_dask(v):
        v = da.from_array(v, chunks=y.chunks)
    if y.shape[1] == 0:
        raise ValueError("yi has no columns: at least one study per analysis is needed")
    y = y.rechunk({1: -1})  # every study of an analysis in one block
    v = v.rechunk(y.chunks)
    starts = np.cumsum((0,) + tuple(y.chunks[0])).tolist()
    fit = dask.delayed(_many_block, pure=True)
    parts = [
        fit(yb, vb, s0, method, test, level, pi, engine)
        for yb, vb, s0 in zip(y.to_delayed().ravel(), v.to_delayed().ravel(), starts[:-1])
    ]
    return dask.delayed(_concat, pure=True)(parts)


def _concat(parts) -> pd.DataFrame:
    """The partitions of a Dask pool_many, in row order (indexes already global)."""
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts)


_CHECKED = [_MANY_COLUMNS.index(c) for c in ("estimate", "se", "tau2", "q")]


def _not_finite(out: np.ndarray, test: str) -> np.ndarray | None:
    """Rows (analyses) of ``out`` whose estimate, se, tau2 or Q is not finite,
    or None; one pass per column (a 4 x m copy would cost a fifth of the input's memory).
    An se that is NaN on purpose -- ``test="hksj"`` with no information on its variance factor
    (:func:`meta._estimators.warn_hksj_no_information`) -- is not an overflow."""
    ok = None
    se = _MANY_COLUMNS.index("se")
    for j in _CHECKED:
        fin = np.isfinite(out[j])
        if j == se and test == "hksj":
            fin |= np.isnan(out[j])
        if not fin.all():
            ok = fin if ok is None else ok & fin
    return None if ok is None else ~ok


_CLOSED_FORM = ("FE", "DL", "HS")  # methods whose results are NaN or infinite for an infinite yi
_Z_DIRECT = {"est": _MANY_COLUMNS.index("estimate"), "tau2": _MANY_COLUMNS.index("tau2"), "q": _MANY_COLUMNS.index("q")}


def _block_views(work, flags, bits, n: int, c: int):
    """The work space of :func:`_workspace` as the arrays of one block of
    ``c`` analyses (studies x analyses): ``y``, ``v``, three scratch arrays
    (float), the padding flags (bool) and two int64 masks."""
    yc, vc, *scratch = (x.reshape(n, c) for x in work[:, : c * n])
    keep, inf_pad = (b[: c * n].reshape(n, c) for b in bits)
    return yc, vc, scratch, flags[: c * n].reshape(n, c), keep, inf_pad


def _load_block(yr, vr, views, kd, count_type, scan_y: bool) -> int:
    """Rows ``yr``, ``vr`` (analyses x studies) transposed into the block
    ``views`` (:func:`_block_views`) with ``y = 0``, ``v = inf`` at the
    padding, and each analysis's number of studies written into ``kd``.
    Returns the smallest k, or 0 if the block's input is not valid: k >= 1
    and 0 < vi < inf for each study (and, with ``scan_y``, a finite yi)."""
    yc, vc, _, pad, keep, inf_pad = views
    n = yc.shape[0]
    np.copyto(yc, yr.T)
    np.copyto(vc, vr.T)
    np.isnan(yc, out=pad)
    pad8 = pad.view(np.uint8)
    np.subtract(n, np.add.reduce(pad8, axis=0, dtype=count_type), out=kd, dtype=np.int64)
    # padding y = 0, v = inf, set branch-free on the bit patterns (a
    # masked copy is several times slower on an irregular NaN pattern)
    np.subtract(pad8, np.uint8(1), out=keep, dtype=np.int64, casting="unsafe")  # all bits set where a study is
    np.invert(keep, out=inf_pad)  # inf where padding (int64 to int64: no cast from the bools)
    inf_pad &= _INF_BITS
    yb, vb = yc.view(np.int64), vc.view(np.int64)
    yb &= keep
    vb &= keep
    # valid input: k >= 1 and 0 < vi < inf for each study (NaN fails
    # both): the largest vi while the padding holds 0, the smallest
    # once it holds inf.  yi is not NaN at a study by definition; an
    # infinite yi makes a closed-form method's estimate or Q NaN or
    # infinite, which the check of the results finds (pool_many then
    # names the input); the iterative methods are not run on it.
    kmin = int(kd.min())
    ok = kmin > 0 and vc.max() < np.inf
    vb |= inf_pad
    ok = ok and vc.min() > 0 and (not scan_y or (-np.inf < yc.min() and yc.max() < np.inf))
    return kmin if ok else 0


def _pool_many_numpy(y, v, index, method: str, test: str, level: float, pi: str, tau2=None) -> tuple[np.ndarray, int]:
    """pool_many through the vectorised estimator code of :mod:`meta._estimators`
    (``tau2``: per-row estimates already computed, or None): ``out`` (12 x m)
    and the number of analyses with k = 1 that fell back to the z test."""
    m, n = y.shape
    res = np.empty((len(_MANY_COLUMNS), m))
    # Blocks of `rows` analyses are transposed into a reused work space
    # (fresh memory costs page faults) and fitted by fit_core (FE and DL:
    # fit_closed_into, straight into the per-analysis arrays); the sums of
    # up to _FINISH_ROWS analyses are then turned into tests and intervals
    # by one call of finish (fewer, longer numpy calls).
    rows = max(1, min(_CHUNK, max(256, _BLOCK_CELLS // n), m))
    span = max(rows, _FINISH_ROWS // rows * rows)
    work, flags, bits, sums, est0, fwork, iwork = _workspace(rows * n, min(span, m), rows, _finish_rows(n))
    count_type = np.uint8 if n < 256 else np.int64
    rss = test in _est.ADJUSTED_TESTS
    scan_y = method not in _CLOSED_FORM  # see _load_block
    closed = tau2 is None and method in ("FE", "DL")
    keys = [key for key in _est.CORE_KEYS if rss or key != "rss"]
    views = _block_views(work, flags, bits, n, rows)
    bad = False
    k1 = 0
    kmin_all = n
    for s0 in range(0, m, span):
        c0 = min(span, m - s0)
        dest = sums
        if test == "z":  # estimate, tau2 and Q straight into their columns of res
            dest = {**sums, **{key: res[j, s0 : s0 + c0] for key, j in _Z_DIRECT.items()}}
        for s in range(s0, s0 + c0, rows):
            c = min(rows, s0 + c0 - s)
            if c != views[0].shape[1]:
                views = _block_views(work, flags, bits, n, c)
            block = slice(s - s0, s - s0 + c)
            kd = dest["k"][block]
            with np.errstate(invalid="ignore"):
                kmin = _load_block(y[s : s + c], v[s : s + c], views, kd, count_type, scan_y)
            if not kmin:
                bad = True
                break
            kmin_all = min(kmin_all, kmin)
            yc, vc, scratch, pad = views[:4]
            # FE, DL: straight into dest (one analysis: fit_core, which sums it as
            # it sums it among others, see _estimators._twice); an infinite yi
            # gives inf - inf, k = 1 DL's 0 / 0 (found, or set, in the results)
            if closed and c > 1:
                with np.errstate(invalid="ignore", divide="ignore"):
                    _est.fit_closed_into(yc, vc, kd, {key: dest[key][block] for key in keys}, method=method,
                                         scratch=scratch, est0=est0[:c], rss=rss, k1=kmin == 1)
                continue
            mk = ~pad if method in _est.NEEDS_MASK else None
            with contextlib.nullcontext() if scan_y else np.errstate(invalid="ignore"):  # an infinite yi: inf - inf
                core = _est.fit_core(yc, vc, mk, kd, method=method, rss=rss, scratch=scratch,
                                     tau2=None if tau2 is None else tau2[s : s + c])
            for key in keys[1:]:
                dest[key][block] = core[key]
        if bad:
            break
        part = {key: (a[:c0] if rss or key != "rss" else None) for key, a in dest.items()}
        if test == "z":
            _finish_z(part, res[:, s0 : s0 + c0], method, level, pi, fwork, iwork, k1=kmin_all == 1)
            continue
        out = _est.finish(part, method=method, test=test, level=level, pi=pi)
        for j, col in enumerate(_MANY_COLUMNS):
            res[j, s0 : s0 + c0] = out[col]
        k1 += int((part["k"] == 1).sum())
    if bad:
        _many_input_error(y, v)
    return res, k1


def _finish_rows(n: int) -> int:
    """Float rows of :func:`_finish_z`'s work space for up to ``n`` studies:
    what chi2_sf uses (``df // 2 + 4``: x/2, the coefficients, three for the
    odd df), at most 16 (beyond, chi2_sf allocates its temporaries)."""
    return min(max(1, (n - 1) // 2) + 4, 16)


def _finish_z(core, res: np.ndarray, method: str, level: float, pi: str, work=None, iwork=None, k1: bool = True) -> None:
    """:func:`meta._estimators.finish` for ``test="z"``, only the columns of
    pool_many, written into ``res`` (12 x m, rows in the order of
    _MANY_COLUMNS) in place: the same operations in the same order (so the
    same bits) without the columns pool_many drops (stat, tau, H2) and
    without a temporary and a copy per column.  ``work`` (float, rows x m)
    and ``iwork`` (int64, 2 x m): temporaries kept between calls (fresh
    memory costs page faults; allocated here if None); ``k1``: whether some
    analysis may have k = 1 (False skips metafor's k = 1 rules)."""
    k, q, sw0, sw0sq, tau2, sw, est = (core[c] for c in _est.CORE_KEYS[:7])
    m = k.size
    if work is None:
        work, iwork = np.empty((_finish_rows(int(k.max(initial=1))), m)), np.empty((2, m), dtype=np.int64)
    col = dict(zip(_MANY_COLUMNS, res))
    res[0] = k
    for c, a in (("estimate", est), ("tau2", tau2), ("q", q)):
        if not np.may_share_memory(col[c], a):  # pool_many writes these into res already
            np.copyto(col[c], a)
    se = np.divide(1.0, sw, out=col["se"])
    np.sqrt(se, out=se)
    zcrit = _est.z_crit(1.0 - (1.0 - level) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.divide(est, se, out=col["p"])  # the z statistic, then its two-sided p (norm_sf2)
        np.abs(p, out=p)
        p *= _est._SQRT1_2
        _est.erfc_grouped(p, out=p)  # erfc, its branches grouped
        half = np.multiply(zcrit, se, out=col["ci_high"])  # _formulas.interval: est -+ crit se
        np.subtract(est, half, out=col["ci_low"])
        np.add(est, half, out=col["ci_high"])
        df = np.subtract(k, 1, out=iwork[0, :m])
        i2 = col["i2"]
        if method == "FE":  # _f.i2_from_q(q, df), in place; Q = 0 (k > 1): max(0, -inf) = 0, as metafor
            np.subtract(q, df, out=i2)
            np.multiply(100.0, i2, out=i2)
            i2 /= q
            np.maximum(i2, 0.0, out=i2)
        else:  # _f.i2_from_tau2(tau2, _f.typical_variance(df, sw0, sw0sq)), in place
            np.multiply(sw0, sw0, out=i2)
            i2 -= sw0sq
            s2 = np.multiply(df, sw0, out=work[0, :m])
            s2 /= i2
            s2 += tau2
            np.multiply(100.0, tau2, out=i2)
            i2 /= s2
        _est.chi2_sf(q, np.maximum(df, 1, out=iwork[1, :m]), out=col["q_p"], work=work)
        if k1:
            one = np.flatnonzero(k == 1)  # metafor: Q = 0, p = 1, I2 = 0
            if one.size:
                col["q_p"][one] = 1.0
                i2[one] = 0.0
        if pi == "default" and method == "FE":
            np.copyto(col["pi_low"], col["ci_low"])
            np.copyto(col["pi_high"], col["ci_high"])
        else:
            # _f.pi_bounds(est, pcrit, se, tau2, simple), in place
            pcrit = zcrit if pi == "default" else _est.pi_crit(pi, k, zcrit, fe=method == "FE", level=level)
            if pi == "simple":
                half = np.sqrt(tau2, out=col["pi_high"])
            else:
                half = np.multiply(se, se, out=col["pi_high"])
                half += tau2
                np.sqrt(half, out=half)
            half *= pcrit
            np.subtract(est, half, out=col["pi_low"])
            np.add(est, half, out=half)
