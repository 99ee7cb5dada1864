"""Coverage of DL-Wald and HKSJ intervals at k = 3, simulated across a Dask cluster.

    .venv/bin/python benchmarks/dask_coverage.py                      # a local cluster of 2 workers
    .venv/bin/python benchmarks/dask_coverage.py --scheduler tcp://host:8786 --m 10000000

Each row of the simulated grid is one meta-analysis of k = 3 studies with true
effect mu = 0, between-study variance tau2 (one of ``--tau2``) and
within-study variances vi ~ U(0.01, 0.5).  The rows are generated chunk by
chunk on the workers (dask.array's random generator), pooled there by
``meta.pool.pool_many`` (which takes Dask arrays and returns a lazy result),
and only the table of interval ends comes back: a simulation grid runs on an
existing cluster with the code of an in-memory run.  Needs ``pip install
"meta[dask]"``.  Prints, per tau2, the share of 95% intervals that contain 0
(DerSimonian-Laird with the Wald z interval, and with the Hartung-Knapp /
Sidik-Jonkman t interval).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meta.pool import pool_many  # noqa: E402

K = 3


def simulate(m: int, tau2: float, chunk: int, seed: int):
    """yi, vi (Dask arrays, m x K, chunked by rows) of m meta-analyses with mu = 0."""
    import dask.array as da

    rs = da.random.RandomState(seed)
    vi = rs.uniform(0.01, 0.5, size=(m, K), chunks=(chunk, K))
    yi = rs.standard_normal(size=(m, K), chunks=(chunk, K)) * da.sqrt(vi + tau2)
    return yi, vi


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=200_000, help="meta-analyses per tau2 (default 200000)")
    ap.add_argument("--tau2", type=float, nargs="+", default=[0.0, 0.05, 0.2], help="between-study variances")
    ap.add_argument("--chunk", type=int, default=50_000, help="rows per chunk (one task each)")
    ap.add_argument("--scheduler", default=None, help="address of an existing dask scheduler (default: a local cluster)")
    args = ap.parse_args(argv)

    import dask
    from dask.distributed import Client, LocalCluster

    cluster = None
    if args.scheduler is None:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    client = Client(args.scheduler or cluster)
    try:
        t0 = time.perf_counter()
        lazy = {}
        for j, tau2 in enumerate(args.tau2):
            yi, vi = simulate(args.m, tau2, args.chunk, seed=20160601 + j)
            lazy[(tau2, "DL, Wald z")] = pool_many(yi, vi, method="DL", test="z")
            lazy[(tau2, "DL, HKSJ t")] = pool_many(yi, vi, method="DL", test="hksj")
        tables = dask.compute(lazy)[0]  # one graph: the data of each tau2 are simulated once
        secs = time.perf_counter() - t0
        print(f"k = {K}, mu = 0, vi ~ U(0.01, 0.5); {args.m:,} meta-analyses per tau2; {len(client.scheduler_info()['workers'])} workers")
        print(f"{'tau2':>6}  {'interval':<12} {'coverage of 95% CI':>19}")
        for (tau2, name), df in tables.items():
            cover = float(((df["ci_low"] <= 0) & (df["ci_high"] >= 0)).mean())
            print(f"{tau2:6.2f}  {name:<12} {cover:19.4f}")
        print(f"{secs:.1f} s on the cluster")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
