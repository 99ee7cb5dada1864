"""pool() on one analysis (meta._one, meta._estimators.fit_one) equals the
2-D estimator code (meta._estimators.fit, the code of pool_many) to 1e-12.

The one-analysis path runs the same algorithms (REML/ML: the same score
grid, brackets and root finder, so the same global maximum) with Python
floats or 1-D ufunc sums; agreement with metafor is in tests/test_pool.py and
tests/test_estimators.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from meta import _estimators as _est
from meta.pool import pool

FIELDS = ("estimate", "se", "stat", "p", "ci_low", "ci_high", "tau2", "i2", "h2", "q", "q_p", "pi_low", "pi_high")


def _two_d(y, v, method, test):
    with np.errstate(all="ignore"):
        return _est.fit(y[:, None], v[:, None], np.ones((y.size, 1), bool), method=method, test=test, weights=True)


def _sets():
    rng = np.random.default_rng(20161)
    for k in (2, 3, 5, 8, 13, 70, 300):  # 70, 300: beyond fit_one's Python-float range (LIST_MAX)
        for tau2 in (0.0, 0.05, 0.5):
            v = rng.uniform(0.005, 0.6, k)
            yield k, rng.normal(0.2, np.sqrt(v + tau2)), v
    # adversarial: equal y, one extreme weight, a large offset, bimodal effects
    yield "equal", np.full(6, 0.4), np.linspace(0.1, 0.3, 6)
    yield "weight", np.array([0.1, 0.5, 0.9, 0.2]), np.array([1e-6, 0.2, 0.3, 0.25])
    yield "offset", 1e3 + rng.normal(0, 0.3, 9), rng.uniform(0.01, 0.1, 9)
    yield "bimodal", np.r_[np.full(5, -1.0), np.full(5, 1.0)] + rng.normal(0, 0.01, 10), np.r_[np.full(5, 0.01), np.full(5, 2.0)]


@pytest.mark.parametrize("method", _est.METHODS)
def test_pool_equals_the_two_dimensional_fit(method):
    worst = 0.0
    for name, y, v in _sets():
        for test in ("z", "hksj"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = pool(y, v, method=method, test=test)
            ref = _two_d(y, v, method, test)
            for f in FIELDS:
                a, b = getattr(res, f), float(ref[f][0])
                if not np.isfinite(b):  # HKSJ with equal y: se = 0, stat = inf in both
                    assert a == b or (np.isnan(a) and np.isnan(b)), f"{name} {method} {test} {f}: {a!r} vs {b!r}"
                    continue
                # floors: Q and H2 are O(1) statistics (Q = 1e-31 vs 0 for equal y is rounding)
                scale = max(abs(b), {"tau2": 1e-12, "i2": 1e-9, "q": 1.0, "h2": 1.0}.get(f, 1e-300))
                if f in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high"):
                    scale = max(scale, float(ref["se"][0]))
                if f == "p":
                    scale *= 1.0 + float(ref["stat"][0]) ** 2
                if f == "q_p":
                    scale *= 1.0 + float(ref["q"][0])
                err = abs(a - b) / scale
                worst = max(worst, err)
                assert err <= 1e-12, f"{name} {method} {test} {f}: {a!r} vs {b!r} ({err:.1e})"
            np.testing.assert_allclose(res.weights, ref["weights"][:, 0], rtol=1e-12)
    assert worst <= 1e-12


def test_large_k_agrees_with_the_two_dimensional_fit():
    """k = 200,000 (the block-wise sums of meta._one): REML and PM tau2 as the 2-D code, to 1e-10."""
    rng = np.random.default_rng(3)
    v = rng.uniform(0.01, 0.5, 200_000)
    y = rng.normal(0.3, np.sqrt(v + 0.1))
    for method in ("REML", "PM"):
        res = pool(y, v, method=method)
        ref = _two_d(y, v, method, "z")
        assert abs(res.tau2 - ref["tau2"][0]) <= 1e-10 * ref["tau2"][0]


def _ragged(m, seed):
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 11, m)
    v = rng.uniform(0.005, 0.6, (m, 10))
    y = rng.normal(0.2, np.sqrt(v + rng.choice([0.0, 0.02, 0.2, 1.0], (m, 1))))
    y[np.arange(10)[None, :] >= k[:, None]] = np.nan
    y[0, :] = [-1, -1, -1, -1, -1, 1, 1, 1, 1, 1]  # two clusters with very different precisions
    v[0, :] = [0.01] * 5 + [2.0] * 5
    return y, v


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_compiled_mle_tau2_equals_the_numpy_engine(method, monkeypatch):
    pytest.importorskip("numba")
    from meta import _fast
    from meta.pool import pool_many

    y, v = _ragged(3000, 8)
    auto = pool_many(y, v, method=method)  # tau2 from the compiled kernel (meta._fast.mle_kernel)
    ref = pool_many(y, v, method=method, engine="numpy")
    scale = np.nanmean(v, axis=1)
    err = np.abs(auto["tau2"] - ref["tau2"]).to_numpy() / (ref["tau2"].to_numpy() + scale)
    assert err.max() <= 1e-12, err.max()
    for c in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high"):
        np.testing.assert_allclose(auto[c], ref[c], rtol=1e-11, atol=1e-13)
    # rows the kernel leaves open (here: every row with a bracket, maxiter = 1) are finished in Python
    kernel = _fast.mle_kernel()
    monkeypatch.setattr(_fast, "mle_kernel", lambda: lambda y, v, ml, maxiter, *a: kernel(y, v, ml, 1, *a))
    again = pool_many(y[:300], v[:300], method=method)
    err = np.abs(again["tau2"] - ref["tau2"][:300]).to_numpy() / (ref["tau2"][:300].to_numpy() + scale[:300])
    assert err.max() <= 1e-12, err.max()
