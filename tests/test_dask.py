"""pool_many on Dask arrays: the same table as the in-memory call, value for value.

Run on a local dask.distributed cluster of 2 workers (threads, processes=False:
starts in ~1 s); skipped when dask is not installed (extra ``meta[dask]``,
part of the ``test`` extra so CI runs it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

from meta.pool import pool_many  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _grid(m=3000, n=10, seed=4):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.5, (m, n))
    y = rng.normal(0.3, np.sqrt(v + rng.choice([0.0, 0.05, 0.3], (m, 1))))
    y[::3, 6:] = np.nan  # ragged rows
    y[7, 1:] = np.nan  # k = 1
    return y, v


@pytest.mark.filterwarnings("ignore:test='hksj' needs k >= 2")  # row 7 (k = 1), warned from a worker thread
@pytest.mark.parametrize("method,test", [("DL", "z"), ("REML", "hksj"), ("PM", "z")])
def test_dask_result_equals_the_in_memory_call(client, method, test):
    y, v = _grid()
    # chunks by rows (and a column split, which pool_many joins)
    lazy = pool_many(da.from_array(y, chunks=(700, 5)), da.from_array(v, chunks=(1000, 10)), method=method, test=test)
    assert hasattr(lazy, "dask")  # a lazy Dask collection, nothing computed yet
    with pytest.warns(UserWarning, match="k >= 2") if test != "z" else _nothing():
        ref = pool_many(y, v, method=method, test=test)
    got = client.compute(lazy).result()
    pd.testing.assert_frame_equal(got, ref, check_exact=True)


def test_dask_yi_with_numpy_vi_and_bad_input(client):
    y, v = _grid(500)
    got = pool_many(da.from_array(y, chunks=(128, 10)), v, method="FE").compute()
    pd.testing.assert_frame_equal(got, pool_many(y, v, method="FE"), check_exact=True)
    with pytest.raises(ValueError, match="same shape"):
        pool_many(da.from_array(y, chunks=(128, 10)), v[:, :5])
    bad = v.copy()
    bad[3, 0] = -1.0
    with pytest.raises(ValueError, match="vi must be finite and > 0"):
        pool_many(da.from_array(y, chunks=(128, 10)), bad).compute()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
