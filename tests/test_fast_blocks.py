"""meta._fast: the kernel's blocks of analyses and the flags it hands back.

The kernel fits rows in blocks of ``_fast._BLOCK`` analyses; a bad row in a
later block, the last partial block, and the two conditions it reports
instead of scanning the output in numpy afterwards (overflowing sums, a
chi-square series that overflows) are checked against the numpy engine and
scipy here.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from meta import _estimators as _est
from meta import _fast
from meta.pool import pool_many

pytest.importorskip("numba")


def test_bad_row_in_a_later_block_is_found():
    m = 2 * _fast._BLOCK + 7
    rng = np.random.default_rng(11)
    Y = rng.normal(size=(m, 4))
    V = rng.uniform(0.1, 1.0, size=(m, 4))
    bad = _fast._BLOCK + 3
    V[bad, 2] = -1.0
    out = np.empty((12, m))
    assert _fast.kernel()(Y, V, False, 1.96, np.full(5, 1.96), False, _est.CHI2_TABLE, out) == bad
    with pytest.raises(ValueError, match=rf"vi must be finite and > 0.*\({bad}, 2\)"):
        pool_many(Y, V, engine="numba")


def test_overflowing_chi2_series_is_filled_by_scipy():
    """k = 11 effects of ~1e39: Q ~ 3e79 is finite but h^5 of the series is not;
    the kernel flags the NaN and scipy's chdtrc fills it (as the numpy engine)."""
    y = np.array([[3e39, -2e39, 1e39, 0.5e39, -1e39, 2e39, 0.1e39, -3e39, 1.5e39, 0.7e39, 1e39],
                  [0.1, 0.2, 0.3] + [np.nan] * 8])
    v = np.ones_like(y)
    out = np.empty((12, 2))
    status = _fast.kernel()(y, v, False, 1.96, np.full(12, 1.96), False, _est.CHI2_TABLE, out)
    assert status == -3 and np.isnan(out[9, 0]) and np.isfinite(out[9, 1])  # flag 2: q_p to fill, flag 1 clear
    a = pool_many(y, v, engine="numba")
    b = pool_many(y, v, engine="numpy")
    assert a["q_p"].iloc[0] == special.chdtrc(10, a["q"].iloc[0]) == b["q_p"].iloc[0]
    assert a["q_p"].iloc[1] == pytest.approx(b["q_p"].iloc[1], rel=1e-14)


def test_overflowing_sums_flagged_by_the_kernel():
    y = np.array([[1e200, -1e200, 3.0], [0.1, 0.2, np.nan]])
    v = np.ones_like(y)
    out = np.empty((12, 2))
    status = _fast.kernel()(y, v, False, 1.96, np.full(4, 1.96), False, _est.CHI2_TABLE, out)
    assert status < 0 and (-1 - status) & 1
    with pytest.raises(ValueError, match=r"sums overflow\) in rows \(0-based\) 0:"):
        pool_many(y, v, engine="numba")
    with pytest.raises(ValueError, match=r"sums overflow\) in rows \(0-based\) 0:"):
        pool_many(y, v, engine="numpy")


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_no_analyses_give_an_empty_table(engine):
    df = pool_many(np.empty((0, 3)), np.empty((0, 3)), engine=engine)
    assert df.shape == (0, 12) and df["k"].dtype == np.int64
    assert list(df.columns) == list(pool_many([[0.1]], [[0.1]], engine=engine).columns)


@pytest.mark.parametrize("labels", [False, True])
def test_table_built_from_blocks_equals_the_general_constructor(monkeypatch, labels):
    """pool_many's table from its two blocks (pandas.api.internals) is the table
    pd.DataFrame + insert build: same columns, dtypes, index and values."""
    import pandas as pd

    import meta.many as mp

    rng = np.random.default_rng(12)
    Y = rng.normal(size=(30, 4))
    V = rng.uniform(0.1, 1.0, size=(30, 4))
    Y[::3, 2:] = np.nan
    if labels:
        Y = pd.DataFrame(Y, index=pd.Index([f"a{i}" for i in range(30)], name="analysis"))
    fast = pool_many(Y, V)
    monkeypatch.setattr(mp, "_from_blocks", None)
    general = pool_many(Y, V)
    pd.testing.assert_frame_equal(fast, general, check_exact=True)
    assert fast["k"].dtype == np.int64 and fast.index.equals(general.index)


@pytest.mark.parametrize("method", ["FE", "DL", "REML"])
@pytest.mark.parametrize("pi", ["z", "t", "simple", "higgins"])
def test_numpy_engine_z_columns_are_finish_bit_for_bit(method, pi):
    """The numpy engine writes test="z" results straight into its table
    (meta.many._finish_z); they are meta._estimators.finish's, bit for bit."""
    import meta.many as mp
    from meta import _checks

    rng = np.random.default_rng(13)
    m, n = 500, 6
    k = rng.integers(1, n + 1, size=m)
    v = rng.uniform(0.01, 0.6, size=(n, m))
    y = rng.normal(0.2, np.sqrt(v + 0.1))
    pad = np.arange(n)[:, None] >= k[None, :]
    y[pad], v[pad] = 0.0, np.inf
    _, _, level, pi_c = _checks.estimator_options(method, "z", 0.9, pi)
    core = _est.fit_core(y, v, ~pad, k, method=method)
    ref = _est.finish(core, method=method, test="z", level=level, pi=pi_c)
    res = np.empty((12, m))
    mp._finish_z(core, res, method, level, pi_c)
    for j, c in enumerate(mp._MANY_COLUMNS):
        np.testing.assert_array_equal(res[j], ref[c], err_msg=c)
