"""Speed where users feel it: import time, one ``pool()`` call, a warm
``meta reproduce`` -- every ratio measured side by side in ONE run, in
interleaved rounds, as medians (a script, not a test).

Run from the repository root:

    /work/venv/bin/python benchmarks/bench_speed.py                     # imports + pool()
    /work/venv/bin/python benchmarks/bench_speed.py --old /tmp/perf_old  # + reproduce, old vs this checkout

* ``import``: fresh interpreters alternately run ``import numpy, pandas``
  and ``import meta.pool`` (``--imports`` each, default 15), each timing its
  own import with ``time.perf_counter`` (interpreter start-up excluded);
  ratio of the medians.
* ``pool()``: one call of ``meta.pool.pool(yi, vi)`` (DL, z test) against
  one call of statsmodels ``combine_effects(yi, vi, method_re="chi2")``
  (DerSimonian-Laird) on the same k = 5 studies, in ``--rounds`` rounds
  that alternate the two (each round: the median of 200 calls), ratio of the
  medians.  Both are warm (first call made before timing).
* ``reproduce`` (only with ``--old``): ``python -m meta reproduce --data data
  --out <tmp>`` with ``PYTHONPATH`` set to the old checkout, to this one, and
  to this one with ``META_FIGURE_CACHE=0`` (every figure drawn and rendered; the font
  subset cache stays on), in ``--repro-rounds`` interleaved rounds (default
  3), after one warm-up run of each; ratios of the medians.

* ``pool_many`` (only with ``--old``): the data of ``bench_pool.py`` (20,000
  ragged analyses), each engine and method, old checkout and this one in
  alternating fresh processes (``--pool-many-rounds``, default 5): the check
  that the shared formulas cost the batch path nothing.

It prints the machine (nproc, CPU model, Python, numpy, pandas, scipy,
statsmodels versions) first.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def machine() -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_pool import cpu_model

    cpu = cpu_model()
    import pandas
    import scipy
    import statsmodels

    return (
        f"nproc {os.cpu_count()}, CPU {cpu}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"pandas {pandas.__version__}, scipy {scipy.__version__}, statsmodels {statsmodels.__version__}"
    )


def _import_time(stmt: str, path: Path) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_imports(n: int) -> None:
    base, ours = [], []
    for _ in range(n):
        base.append(_import_time("import numpy, pandas", ROOT))
        ours.append(_import_time("import meta.pool", ROOT))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"import numpy, pandas: median {1e3 * b:.0f} ms; import meta.pool: median {1e3 * o:.0f} ms "
          f"({n} fresh interpreters each, interleaved)  ->  meta.pool / (numpy, pandas) = {o / b:.2f}x  [target <= 1.3x]")


def _per_call(f, calls: int) -> float:
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench_pool(rounds: int) -> None:
    import warnings

    from statsmodels.stats.meta_analysis import combine_effects

    from meta.pool import pool

    rng = np.random.default_rng(20160601)
    vi = rng.uniform(0.01, 0.5, 5)
    yi = rng.normal(0.3, np.sqrt(vi + 0.1))
    ours = lambda: pool(yi, vi)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = lambda: combine_effects(yi, vi, method_re="chi2")  # noqa: E731
        ours(), theirs()
        a, b = [], []
        for _ in range(rounds):
            a.append(_per_call(ours, 200))
            b.append(_per_call(theirs, 200))
    o, s = statistics.median(a), statistics.median(b)
    print(f"pool(yi, vi) k = 5, DL: median {1e6 * o:.1f} us; statsmodels combine_effects(chi2): median {1e6 * s:.1f} us "
          f"({rounds} interleaved rounds of 200 calls)  ->  statsmodels / pool = {s / o:.2f}x  [target >= 1.5x]")


_POOL_MANY = """
import statistics, sys, time
import numpy as np
from meta.pool import pool_many
rng = np.random.default_rng(20160601)
m, n = 20000, 10
k = rng.integers(2, 11, m)
v = rng.uniform(0.01, 0.5, (m, n))
y = rng.normal(0, np.sqrt(v + rng.choice([0, 0.02, 0.1, 0.5], m)[:, None]))
y[np.arange(n)[None, :] >= k[:, None]] = np.nan
out = []
for method, engine in [("FE", "numba"), ("DL", "numba"), ("FE", "numpy"), ("DL", "numpy"), ("REML", "numpy")]:
    pool_many(y, v, method=method, engine=engine)
    ts = []
    for _ in range(3 if method == "REML" else 7):
        t = time.perf_counter()
        pool_many(y, v, method=method, engine=engine)
        ts.append(time.perf_counter() - t)
    out.append(f"{method} {engine}={statistics.median(ts)}")
print(";".join(out))
"""


def _pool_many_times(path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", _POOL_MANY], capture_output=True, text=True, env=env, check=True)
    return {k: float(x) for k, x in (p.split("=") for p in out.stdout.strip().splitlines()[-1].split(";"))}


def bench_pool_many(old: Path, rounds: int) -> None:
    """pool_many on 20,000 ragged analyses (as bench_pool.py), old checkout and this one in
    alternating fresh processes; medians over rounds of each process's median call."""
    a, b = [], []
    for _ in range(rounds):
        a.append(_pool_many_times(old))
        b.append(_pool_many_times(ROOT))
    for key in a[0]:
        o, n = statistics.median(r[key] for r in a), statistics.median(r[key] for r in b)
        print(f"pool_many {key:12s}: old {1e3 * o:7.2f} ms, new {1e3 * n:7.2f} ms  ->  new / old = {n / o:.2f}  "
              f"({rounds} interleaved processes each)")


def _reproduce(path: Path, figure_cache: bool = True) -> float:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONPATH": str(path), "MPLBACKEND": "Agg", "META_FIGURE_CACHE": "1" if figure_cache else "0"}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "meta", "reproduce", "--data", str(ROOT / "data"), "--out", out],
                       env=env, check=True, capture_output=True, cwd=str(path))
        return time.perf_counter() - t


def bench_reproduce(old: Path, rounds: int) -> None:
    _reproduce(old), _reproduce(ROOT)  # warm: font cache, numba cache, figure cache, page cache
    a, b, c = [], [], []
    for _ in range(rounds):
        a.append(_reproduce(old))
        b.append(_reproduce(ROOT))
        c.append(_reproduce(ROOT, figure_cache=False))
    o, n, nc = statistics.median(a), statistics.median(b), statistics.median(c)
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    print(f"meta reproduce (warm): old checkout {old} median {o:.2f} s; this checkout median {n:.2f} s; "
          f"this checkout with META_FIGURE_CACHE=0 median {nc:.2f} s ({rounds} interleaved rounds; old {fmt(a)}; "
          f"new {fmt(b)}; new without figure cache {fmt(c)})  ->  old / new = {o / n:.2f}x  [target >= 2x]; "
          f"old / new without figure cache = {o / nc:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--imports", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--old", type=Path, default=None, help="an old checkout (git worktree) to time reproduce against")
    ap.add_argument("--repro-rounds", type=int, default=3)
    ap.add_argument("--pool-many-rounds", type=int, default=5)
    args = ap.parse_args()
    print(machine())
    bench_imports(args.imports)
    bench_pool(args.rounds)
    if args.old is not None:
        bench_pool_many(args.old, args.pool_many_rounds)
        bench_reproduce(args.old, args.repro_rounds)


if __name__ == "__main__":
    main()
