"""Inputs are not copied, and pool_many's memory stays a fraction of its input.

``meta._checks.numbers`` returns a float64 array as it is (pool_many on a
1,000,000 x 10 grid used to hold each input twice); the peak of pool_many's
own allocations (tracemalloc: numpy reports its buffers to it) stays below
0.75 x the input, nearly all of it the output table.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from meta import _checks
from meta import _estimators as _est
from meta.pool import pool_many


def test_float64_contiguous_input_is_not_copied():
    a = np.linspace(0.1, 1.0, 50)
    assert _checks.numbers(a, "yi") is a
    f = np.asfortranarray(np.ones((4, 3)))
    assert np.shares_memory(_checks.numbers(f, "vi"), f)
    s = pd.Series(a)
    assert np.shares_memory(_checks.numbers(s, "yi"), a) or np.shares_memory(_checks.numbers(s, "yi"), s.to_numpy())
    # other dtypes are still converted (a copy), and still refused when not real numbers
    i = np.arange(5)
    out = _checks.numbers(i, "yi")
    assert out.dtype == np.float64 and not np.shares_memory(out, i)
    with pytest.raises(ValueError, match="booleans"):
        _checks.numbers(np.array([True, False]), "yi")
    with pytest.raises(ValueError, match="complex"):
        _checks.numbers(np.array([1 + 2j]), "yi")


def _grid(m, n=10, seed=1):
    rng = np.random.default_rng(seed)
    v = rng.random((m, n))
    v += 0.01
    y = rng.random((m, n))
    y[::2, 6:] = np.nan  # ragged rows
    return y, v


@pytest.fixture(scope="module")
def grid():
    return _grid(1_000_000)  # the size of the measured problem: 160 MB of input


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_pool_many_peak_below_three_quarters_of_the_input(engine, grid):
    pytest.importorskip("numba") if engine == "numba" else None
    y, v = grid
    pool_many(y[:100], v[:100], engine=engine)  # compile / load the kernel first
    tracemalloc.start()
    try:
        df = pool_many(y, v, method="DL" if engine == "numba" else "FE", engine=engine)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    inp = y.nbytes + v.nbytes
    assert len(df) == y.shape[0]
    # output: 11 float columns + k = 0.6 x input; with a copy of each input the peak was 1.6-1.9 x
    assert peak <= 0.75 * inp, f"peak {peak / inp:.2f} x input"


def _old_sei_slope(y, v, method):
    """The k x k form of meta.bias._sei_slope (P = W - W X (X'WX)^-1 X'W), restated for comparison."""
    from meta.bias import _wls

    k = y.size
    X = np.column_stack([np.ones(k), np.sqrt(v)])
    p = 2

    def parts(t):
        w = 1.0 / (v + t)
        beta, inv = _wls(y, X, w)
        wx = X * w[:, None]
        return beta, np.diag(w) - wx @ inv @ wx.T

    if method == "DL":
        _, P = parts(0.0)
        tau2 = max(0.0, float((y @ P @ y - (k - p)) / np.trace(P)))
    else:  # REML
        H = X @ np.linalg.solve(X.T @ X, X.T)
        R = np.eye(k) - H
        tau2 = max(0.0, float((y @ R @ y - np.trace(R * v[None, :])) / (k - p)))
        for _ in range(1000):
            _, P = parts(tau2)
            PP = P @ P
            adj = float((y @ PP @ y - np.trace(P)) / np.trace(PP))
            while tau2 + adj < 0:
                adj /= 2
            tau2 += adj
            if abs(adj) < 1e-12:
                break
        tau2 = max(0.0, tau2)
    return float(parts(tau2)[0][1]), tau2


def _funnel(k, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.005, 0.3, k)
    y = rng.normal(0.2 + 0.8 * np.sqrt(v), np.sqrt(v + 0.05))  # small-study effect
    return y, v


@pytest.mark.parametrize("method", ["DL", "REML"])
def test_sei_slope_without_k_by_k_equals_the_matrix_form(method):
    from meta.bias import _sei_slope

    for seed in range(5):
        y, v = _funnel(25, seed)
        new, old = _sei_slope(y, v, method), _old_sei_slope(y, v, method)
        np.testing.assert_allclose(new, old, rtol=1e-12, atol=1e-14)


def test_trimfill_reml_k3000_never_forms_a_k_by_k_matrix():
    from meta.bias import trimfill

    y, v = _funnel(3000, 42)
    tracemalloc.start()
    try:
        res = trimfill(y, v, method="REML")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.k0 >= 0
    # one 3000 x 3000 float matrix is 72 MB; the fit needs O(k) arrays
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_chi2_tail_of_many_large_df_values_in_bounded_memory_with_the_same_bits(monkeypatch):
    """cumulative() at k = 10^5 asks for 10^5 chi-square tails with df up to 200: the
    coefficients (terms x values) are gathered in slices, not as one 80 MB array, and
    slicing changes no bit."""
    from scipy import special

    rng = np.random.default_rng(3)
    m = 100_000
    df = rng.integers(1, 260, m)
    x = rng.uniform(0.0, 400.0, m)
    tracemalloc.start()
    got = _est.chi2_sf(x, df)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8e6, peak / 1e6  # result 0.8 MB + slices of CHI2_CELLS cells; one gather: 80 MB
    monkeypatch.setattr(_est, "CHI2_CELLS", 10**12)
    assert np.array_equal(got, _est.chi2_sf(x, df))
    ref = special.chdtrc(df, x)
    assert np.all(np.abs(got - ref) <= 1e-12 * ref + 1e-300)
