"""meta._fast: the compiled FE/DL kernel behind pool_many(engine="numba").

The kernel is a second implementation of the formulas in meta._estimators, so
it is held to the numpy engine directly (1e-12 relative on every column,
NaN where NaN), on data like the benchmark's and on edge cases; the metafor
fixtures are checked for both engines in tests/test_pool_many.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import meta.many as mp
from meta import _estimators as _est
from meta import _fast
from meta.pool import pool, pool_many

COLUMNS = ["k", "estimate", "se", "ci_low", "ci_high", "p", "tau2", "i2", "q", "q_p", "pi_low", "pi_high"]


def ragged(m, kmax=10, seed=0, scatter=False):
    """m analyses, k uniform on 1..kmax, padding at the end (or scattered)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, kmax + 1, size=m)
    v = rng.uniform(0.005, 0.8, size=(m, kmax))
    tau2 = rng.choice([0.0, 0.02, 0.1, 0.5], size=(m, 1))
    y = rng.normal(0.3, np.sqrt(v + tau2))
    pad = np.arange(kmax)[None, :] >= k[:, None]
    if scatter:
        pad = rng.permuted(pad, axis=1)
    y[pad] = np.nan
    v[pad] = rng.choice([np.nan, -1.0, 0.0, 7.0], size=pad.sum())  # vi is ignored at padding
    return y, v


def assert_frames_close(a, b, rtol=1e-12):
    assert list(a.columns) == COLUMNS and list(b.columns) == COLUMNS
    assert a["k"].dtype == np.int64 and b["k"].dtype == np.int64
    assert (a["k"] == b["k"]).all()
    for c in COLUMNS[1:]:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        assert (np.isnan(x) == np.isnan(y)).all(), c
        ok = ~np.isnan(x)
        err = np.abs(x[ok] - y[ok]) / (1 + np.abs(y[ok]))
        assert err.max(initial=0) <= rtol, (c, err.max(), int(np.argmax(err)))


@pytest.mark.parametrize("method", ["FE", "DL"])
@pytest.mark.parametrize("pi", ["z", "t"])
@pytest.mark.parametrize("level", [0.95, 0.8])
@pytest.mark.parametrize("scatter", [False, True])
def test_kernel_equals_numpy_engine(method, pi, level, scatter):
    Y, V = ragged(3000, seed=hash((method, pi, level, scatter)) % 2**16, scatter=scatter)
    a = pool_many(Y, V, method=method, pi=pi, level=level, engine="numba")
    b = pool_many(Y, V, method=method, pi=pi, level=level, engine="numpy")
    assert_frames_close(a, b)


def test_auto_uses_the_kernel_for_fe_dl_z_only(monkeypatch):
    calls = []
    real = _fast.kernel

    def spy():
        calls.append(1)
        return real()

    monkeypatch.setattr(_fast, "kernel", spy)
    Y, V = ragged(20, seed=1)
    for kw in ({"method": "DL"}, {"method": "FE", "pi": "t", "level": 0.9}):
        before = len(calls)
        pool_many(Y, V, **kw)
        assert len(calls) > before, kw
    before = len(calls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kw in ({"method": "REML"}, {"method": "PM"}, {"method": "DL", "test": "hksj"}, {"method": "DL", "engine": "numpy"}):
            pool_many(Y, V, **kw)
    assert len(calls) == before


def test_uncompiled_kernel_gives_the_compiled_answer():
    """The same source run by plain Python (what numba compiles), on a few
    analyses including k = 1, FE with Q = 0 and an odd/even df mix."""
    Y, V = ragged(40, kmax=7, seed=2, scatter=True)
    Y[0, :] = np.nan
    Y[0, 3] = 0.2
    Y[1, :3], V[1, :3] = 0.5, 0.25  # equal effects, exact weights: Q = 0 exactly
    Y[1, 3:] = np.nan
    pcrit = np.where(np.arange(8) > 2, special.stdtrit(np.maximum(np.arange(8) - 2, 1), 0.975), np.nan)
    for fe in (True, False):
        out_py, out_nb = np.empty((12, 40)), np.empty((12, 40))
        args = (Y, V, fe, special.ndtri(0.975), pcrit, False, _est.CHI2_TABLE)
        assert _fast._kernel(*args, out_py) == -1
        assert _fast.kernel()(*args, out_nb) == -1
        np.testing.assert_allclose(out_py, out_nb, rtol=1e-14, atol=1e-300)
        assert out_py[0, 0] == 1 and out_py[8, 0] == 0 and out_py[9, 0] == 1  # k = 1: Q = 0, p = 1
        if fe:
            assert out_py[8, 1] == 0 and out_py[7, 1] == 0  # FE, Q = 0: I2 = max(0, -inf) = 0, as metafor and the numpy engine


def test_kernel_reports_the_first_bad_row():
    Y = np.array([[0.1, 0.2], [0.3, 0.4], [np.nan, np.nan]])
    V = np.array([[0.1, 0.1], [0.1, -0.1], [0.1, 0.1]])
    out = np.empty((12, 3))
    args = (Y, V, False, 1.96, np.full(3, 1.96), False, _est.CHI2_TABLE, out)
    assert _fast.kernel()(*args) == 1
    assert _fast._kernel(*args) == 1


def test_more_than_200_studies_take_scipy_for_q_p():
    rng = np.random.default_rng(5)
    k = 250
    y, v = rng.normal(0, 0.5, k), rng.uniform(0.01, 0.2, k)
    Y = np.full((2, k), np.nan)
    V = np.full((2, k), np.nan)
    Y[0], V[0] = y, v
    Y[1, :5], V[1, :5] = y[:5], v[:5]
    df = pool_many(Y, V, method="DL", engine="numba")
    r = pool(y, v, method="DL")
    assert df["q_p"].iloc[0] == pytest.approx(float(special.chdtrc(k - 1, df["q"].iloc[0])), rel=1e-14)
    assert df["q_p"].iloc[0] == pytest.approx(r.q_p, rel=1e-10)
    assert_frames_close(df, pool_many(Y, V, method="DL", engine="numpy"))


def test_extreme_weights_agree_between_engines():
    """Variances 1e-12 .. 1e12 in one analysis and 1e-300 in another: the
    kernel divides as numpy does (IEEE: no ZeroDivisionError)."""
    Y = np.array([[0.1, 0.9, np.nan], [0.5, -0.5, 2.0], [0.3, 0.31, 0.29]])
    V = np.array([[1e-12, 1e12, np.nan], [1e-300, 1.0, 1.0], [1e-8, 1e-8, 1e-8]])
    for method in ("FE", "DL"):
        with np.errstate(all="ignore"):
            assert_frames_close(pool_many(Y, V, method=method, engine="numba"), pool_many(Y, V, method=method, engine="numpy"))


def test_index_kept_and_fortran_order_input():
    Y, V = ragged(30, seed=4)
    idx = pd.Index([f"a{i}" for i in range(30)], name="analysis")
    df = pool_many(pd.DataFrame(np.asfortranarray(Y), index=idx), np.asfortranarray(V), engine="numba")
    assert df.index.equals(idx)
    assert_frames_close(df.reset_index(drop=True), pool_many(Y, V, engine="numpy"))


def test_engine_errors(monkeypatch):
    Y, V = ragged(5, seed=6)
    with pytest.raises(ValueError, match="engine must be one of 'auto', 'numpy', 'numba'"):
        pool_many(Y, V, engine="c")
    with pytest.raises(ValueError, match='engine="numba" covers method "FE" and "DL" with test="z"'):
        pool_many(Y, V, method="REML", engine="numba")
    with pytest.raises(ValueError, match='engine="numba" covers'):
        pool_many(Y, V, test="hksj", engine="numba")

    def broken():
        raise ImportError("numba built for another numpy")

    monkeypatch.setattr(_fast, "kernel", broken)
    with pytest.raises(ValueError, match=r'needs numba: pip install "meta\[fast\]".*another numpy'):
        pool_many(Y, V, engine="numba")
    monkeypatch.setattr(_fast, "AVAILABLE", True)
    with pytest.warns(RuntimeWarning, match="cannot be imported.*numpy engine"):
        df = pool_many(Y, V)
    assert _fast.AVAILABLE is False  # warned once, then numpy silently
    assert_frames_close(df, pool_many(Y, V, engine="numpy"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool_many(Y, V)


def test_no_numba_means_numpy_engine(monkeypatch):
    monkeypatch.setattr(_fast, "AVAILABLE", False)
    monkeypatch.setattr(mp._fast, "kernel", lambda: pytest.fail("kernel used without numba"))
    Y, V = ragged(10, seed=7)
    assert_frames_close(pool_many(Y, V), pool_many(Y, V, engine="numpy"))


def test_uncompiled_kernel_over_several_blocks_gives_the_compiled_answer():
    """More analyses than one block: the compiled kernel asks for each next
    block while it computes the current one (plain Python: a no-op hint)."""
    Y, V = ragged(_fast._BLOCK + 77, kmax=5, seed=4, scatter=True)
    args = (Y, V, False, special.ndtri(0.975), np.full(6, special.ndtri(0.975)), False, _est.CHI2_TABLE)
    out_py, out_nb = np.empty((12, Y.shape[0])), np.empty((12, Y.shape[0]))
    assert _fast._kernel(*args, out_py) == -1
    assert _fast.kernel()(*args, out_nb) == -1
    np.testing.assert_allclose(out_py, out_nb, rtol=1e-14, atol=1e-300)
