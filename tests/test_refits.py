"""leave_one_out / cumulative in bounded memory (meta._refits).

The refits used to be fitted as one k x (k - 1) matrix (5.9 GB at k =
10,000).  They now run in blocks, with O(k) sums where the estimator has a
closed form.  These tests hold the new engine to the matrix fit (the old
code, restated here) to 1e-12 relative, and measure the memory at k = 20,000
with tracemalloc.  Agreement with metafor's leave1out()/cumul() is in
tests/test_pool.py (the pool_reference.json fixtures).
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest

from meta import _estimators as _est
from meta import _refits
from meta.pool import _STEP_COLUMNS, cumulative, leave_one_out

METHODS = _est.METHODS
TESTS = ("z", "hksj", "adhoc")


def _matrix(y2, v2, mask, method, test):
    """The chunk-free fit of every refit at once (rows = refits), as the code was."""
    t = np.ascontiguousarray
    with np.errstate(all="ignore"):
        out = _est.fit(t(y2.T), t(v2.T), t(mask.T), method=method, test=test)
    return pd.DataFrame({c: out[c] for c in _STEP_COLUMNS})


def _old_loo(y, v, method, test):
    k = y.size
    keep = ~np.eye(k, dtype=bool)
    y2 = y[None, :].repeat(k, 0)[keep].reshape(k, k - 1)
    v2 = v[None, :].repeat(k, 0)[keep].reshape(k, k - 1)
    return _matrix(y2, v2, np.ones((k, k - 1), bool), method, test)


def _old_cum(y, v, method, test):
    k = y.size
    mask = np.tri(k, k, dtype=bool)
    return _matrix(np.where(mask, y[None, :], 0.0), np.where(mask, v[None, :], np.inf), mask, method, test)


def _data(kind, k, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.5, k)
    y = rng.normal(0.3, np.sqrt(v + 0.1))
    if kind == "outlier":  # one study carries nearly all of Q: the subtraction would cancel
        y[3] = 40.0
        v[3] = 0.01
    elif kind == "drift":  # cumulative means far from the overall one
        y = y + np.linspace(0, 50, k)
    elif kind == "offset":  # large common offset
        y = y + 1e4
    elif kind == "homogeneous":  # Q < k - 1: tau2 = 0 in most refits
        y = rng.normal(0.3, np.sqrt(v) * 0.3)
    return y, v


def _close(new, old, what):
    for c in _STEP_COLUMNS:
        a, b = new[c].to_numpy(float), old[c].to_numpy(float)
        scale = np.maximum(np.abs(b), 1.0 if c in ("estimate", "ci_low", "ci_high", "stat") else 1e-300)
        if c in ("estimate", "ci_low", "ci_high"):  # locations: relative to the se
            scale = np.maximum(scale, old["se"].to_numpy())
        if c in ("tau2", "i2", "h2", "q"):  # 0 in one, ~1e-17 in the other
            scale = np.maximum(np.abs(b), 1e-9)
        # tail probabilities: a relative change e of the statistic moves p by ~ e stat^2 (z) or e q (chi-square)
        if c == "p":
            scale = np.maximum(np.abs(b), 1e-300) * (1.0 + old["stat"].to_numpy() ** 2)
        if c == "q_p":
            scale = np.maximum(np.abs(b), 1e-300) * (1.0 + old["q"].to_numpy())
        err = np.max(np.abs(a - b) / scale)
        assert err <= 1e-12, f"{what} {c}: {err:.2e}"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["random", "outlier", "drift", "offset", "homogeneous"])
def test_refits_equal_the_matrix_fit(method, kind):
    y, v = _data(kind, 23, 11)
    for test in TESTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _close(leave_one_out(y, v, method=method, test=test).drop(columns="omitted"), _old_loo(y, v, method, test),
                   f"leave_one_out {method} {test} {kind}")
            _close(cumulative(y, v, method=method, test=test).drop(columns="added"), _old_cum(y, v, method, test),
                   f"cumulative {method} {test} {kind}")


@pytest.mark.parametrize("k", [2, 3])
def test_smallest_k_equal_the_matrix_fit(k):
    y, v = _data("random", k, 3)
    for method in ("FE", "DL", "REML", "HE"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _close(leave_one_out(y, v, method=method).drop(columns="omitted"), _old_loo(y, v, method, "z"), f"loo k={k}")
            _close(cumulative(y, v, method=method).drop(columns="added"), _old_cum(y, v, method, "z"), f"cum k={k}")


def test_blocks_of_the_iterative_estimators_equal_the_matrix_fit(monkeypatch):
    """Several blocks (tiny CELLS) give what one block gives."""
    y, v = _data("random", 40, 5)
    monkeypatch.setattr(_refits, "CELLS", 200)
    for method in ("REML", "PM", "DL"):
        _close(leave_one_out(y, v, method=method).drop(columns="omitted"), _old_loo(y, v, method, "z"), f"loo {method}")
        _close(cumulative(y, v, method=method).drop(columns="added"), _old_cum(y, v, method, "z"), f"cum {method}")


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


K_BIG = 20_000
# O(k) result columns (~15 arrays of k floats = 2.4 MB) plus one block of temporaries
BOUND = 40 * 2**20


def test_leave_one_out_k20000_in_bounded_memory():
    y, v = _data("random", K_BIG, 7)
    peak = _peak(lambda: leave_one_out(y, v, method="DL"))
    # the matrix fit would hold k x (k - 1) floats several times: 3.2 GB per copy
    assert peak < BOUND, f"peak {peak / 2**20:.1f} MB"


def test_cumulative_k20000_in_bounded_memory():
    y, v = _data("random", K_BIG, 8)
    peak = _peak(lambda: cumulative(y, v, method="DL"))
    assert peak < BOUND, f"peak {peak / 2**20:.1f} MB"


def test_leave_one_out_iterative_in_bounded_memory():
    y, v = _data("random", 600, 9)
    peak = _peak(lambda: leave_one_out(y, v, method="REML"))
    assert peak < _refits.BLOCK_BYTES, f"peak {peak / 2**20:.1f} MB"


@pytest.mark.parametrize("method", ["DL", "HE", "HS"])
def test_series_for_large_k_equals_the_blocked_sums(method, monkeypatch):
    """From SERIES_MIN_K studies the random-effects sums of the refits come from
    a series around one tau2 (O(k)); they equal the direct sums to 1e-12."""
    y, v = _data("random", 2500, 12)
    y[7] = 6.0  # leaving it out moves tau2 far: that refit takes the direct sums
    got = {}
    for min_k in (2000, 10**9):
        monkeypatch.setattr(_refits, "SERIES_MIN_K", min_k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got[min_k] = [fn(y, v, method=method, test=t) for fn in (leave_one_out, cumulative) for t in ("z", "hksj")]
    for new, old in zip(got[2000], got[10**9]):
        _close(new.iloc[:, 1:], old.iloc[:, 1:], f"series {method}")
