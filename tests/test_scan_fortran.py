"""The REML/ML score scan on Fortran-ordered copies (meta._estimators
``_scan_fortran``, used for blocks with many studies per analysis: the
refits of leave_one_out / cumulative) gives the brackets, and so the tau2,
of the C-ordered scan bit for bit: each sign is checked against a rounding
bound (``_score_bound``) and recomputed C-ordered where unsure."""

from __future__ import annotations

import numpy as np
import pytest

from meta import _estimators as E


def _sets(n, m, seed, offset=0.0, padded=False):
    """``m`` analyses of up to ``n`` studies (studies x analyses): variances
    10^U(-3, 1), true tau2 from 0 to 10, 15 % outliers (5-20 SDs), a common
    ``offset``; ``padded``: analysis j has its first n - j studies (as cumulative's blocks)."""
    rng = np.random.default_rng(seed)
    v = 10 ** rng.uniform(-3, 1, (n, m))
    t2 = rng.choice([0.0, 0.01, 0.1, 1.0, 10.0], m)
    y = offset + rng.normal(0, 1, m) + rng.normal(0, 1, (n, m)) * np.sqrt(v + t2)
    out = rng.random((n, m)) < 0.15
    y += out * rng.choice([-1, 1], (n, m)) * rng.uniform(5, 20, (n, m)) * np.sqrt(v + t2)
    mask = np.ones((n, m), bool)
    if padded:
        mask = np.arange(n)[:, None] < (n - np.arange(m))[None, :]
    return np.where(mask, y, 0.0), np.where(mask, v, np.inf), mask, mask.sum(0)


def _grid(y, v, mask, k):
    up = E._upper(y, v, mask, k)
    low = np.minimum(v.min(axis=0) / 16.0, up / 16.0)
    g = np.clip(np.ceil(E.GRID_PER_OCTAVE * np.log2(up / low)).astype(np.int64) + 1, 8, E.GRID_MAX)
    return low, up / low, g


def _scans(y, v, mask, k, ml):
    low, ratio, g = _grid(y, v, mask, k)
    c = E._score_scan(y, v, low, ratio, g, ml, None)
    f = E._score_scan(y, v, low, ratio, g, ml, None, np.asfortranarray(y), np.asfortranarray(v))
    return c, f


CASES = [(300, 8, 0.0, False), (300, 8, 1e4, False), (120, 7, 1e8, True), (64, 4, 0.0, True), (40, 2, -3e3, False)]


@pytest.mark.parametrize("ml", [False, True])
@pytest.mark.parametrize("n, m, offset, padded", CASES)
def test_fortran_scan_brackets_equal_the_c_scan(n, m, offset, padded, ml):
    for seed in range(6):
        y, v, mask, k = _sets(n, m, seed, offset, padded)
        c, f = _scans(y, v, mask, k, ml)
        assert (c is None) == (f is None)
        if c is not None:
            for a, b in zip(c, f):
                assert np.array_equal(a, b)


@pytest.mark.parametrize("factor", [0.0, np.inf])
def test_every_sign_taken_from_either_order_gives_the_same_brackets(factor, monkeypatch):
    """UNSURE_FACTOR inf: every score recomputed C-ordered; 0: none (here,
    well-conditioned data, no score near 0 at a grid point)."""
    monkeypatch.setattr(E, "UNSURE_FACTOR", factor)
    y, v, mask, k = _sets(200, 6, 4)
    for ml in (False, True):
        c, f = _scans(y, v, mask, k, ml)
        for a, b in zip(c, f):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("offset", [0.0, 1e4, 1e8])
def test_score_bound_covers_the_difference_of_the_two_orders(offset):
    y, v, mask, k = _sets(500, 6, 9, offset)
    fy, fv = np.asfortranarray(y), np.asfortranarray(v)
    ymax = np.abs(fy).max(axis=0)
    differ = 0
    for t in np.geomspace(1e-4, 1e3, 40):
        tt = np.full(y.shape[1], t)
        for ml in (False, True):
            sc = E.reml_score(y, v, tt, ml=ml)
            sf, bound = E._score_bound(fy, fv, tt, ymax, ml, E._work_like(fy))
            assert (np.abs(sf - sc) <= 2 * bound).all()
            assert (4 * bound < np.abs(sc)).mean() > 0.5  # not vacuous: most signs decided without recomputing
            differ += int((sf != sc).sum())
    assert differ > 0  # the orders do round differently


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_tau2_same_bits_with_and_without_the_fortran_scan(method, monkeypatch):
    ml = method == "ML"
    for padded, offset in ((False, 0.0), (True, 1e4)):
        y, v, mask, k = _sets(250, 9, 21, offset, padded)
        assert E._scan_fortran(y)
        f = E.tau2_mle(y, v, mask, k, ml=ml)
        monkeypatch.setattr(E, "SCAN_FORTRAN_RATIO", 10**9)
        assert not E._scan_fortran(y)
        c = E.tau2_mle(y, v, mask, k, ml=ml)
        monkeypatch.undo()
        assert np.array_equal(f, c)
        assert (f > 0).any()


def test_scan_order_by_shape():
    assert not E._scan_fortran(np.empty((10, 4096)))  # pool_many's blocks
    assert E._scan_fortran(np.empty((2999, 87)))  # leave_one_out's at k = 3,000
    assert not E._scan_fortran(np.empty((5000, 1)))  # one analysis
