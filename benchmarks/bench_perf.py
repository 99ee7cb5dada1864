"""Every speed and memory target of the library in ONE run (a script, not a test).

Run from the repository root:

    .venv/bin/python benchmarks/bench_perf.py            # everything, ~2 min on 2 cores
    .venv/bin/python benchmarks/bench_perf.py --quick    # smaller sizes, no k = 10^6 Bayes, < 1 min

The host is shared and noisy, so every ratio is taken side by side: the two
sides of a ratio run alternately in ``--rounds`` rounds (default 7), and the
script prints the median of the per-round ratios with their min-max.  Times
are CPU time of the process (``time.process_time``; everything timed runs on
one thread), which a descheduled moment does not inflate.  Memory
is the peak of the allocations made during one call (tracemalloc: numpy
reports its buffers to it), the input itself not counted.

Sections:

1. memory -- ``pool_many`` on 1,000,000 x 10 (peak / input, target <= 0.75);
   ``leave_one_out`` / ``cumulative`` at k = 1,000 ... 100,000 (peak in MB,
   bound 64 MB of temporaries plus O(k) results); ``trimfill(method="REML")``
   at k = 3,000 (a k x k matrix would be 72 MB); ``bayes_pool`` at k =
   10^4 ... 10^6 (peak / input).
2. one fit at k = 5 -- ``pool(method="REML")``, ``"PM"``, ``"DL"`` against
   statsmodels ``combine_effects(method_re="iterated")`` (its only iterative
   estimator; ``"chi2"`` for DL as well): "x faster", target >= 2 for REML and PM.
3. batch -- ``pool_many`` on the 20,000 ragged analyses of ``bench_pool.py``
   against a loop of statsmodels ``combine_effects`` on 2,000 of them
   (scaled x10); DL numba >= 1000x, DL numpy >= 600x, REML >= 100x; and DL
   numba against the floor: the cheapest compiled pass that reads ``yi`` and
   ``vi`` once and writes the 12 output columns (target <= 1.5x), and against
   the two divisions per study every DL fit needs (``1/v``, ``1/(v + tau2)``)
   done alone, which shows how much of the floor any exact fit can reach.  "REML auto" is the
   default engine (tau2 from the compiled kernel of :mod:`meta._fast` where
   numba is installed), "REML numpy" the numpy engine alone.
4. super-linearity -- time per study (per analysis for ``pool_many``) of
   ``pool`` (DL, REML, PM), ``confint`` (REML) and ``pool_many`` at sizes
   10 ... 10^6, in interleaved rounds; for each step x10 the ratio
   ``t(10 n) / (10 t(n))`` (1 = linear; a super-linear step shows as > 1).
   Beside them the floor of ``pool_many`` at each size (the compiled pass of
   section 3 writing into a newly allocated 12 x n table, as ``pool_many``
   returns one), the step of every row at every size, and the share of
   system CPU time (page faults on fresh memory) in each.  The cases run in
   a new random order at each size of each round (fresh memory costs more
   after a call that freed many small pieces).  From 1,000 up each call is
   also timed with a cold cache (128 MB read before it): in the first table
   a call at 10,000 finds its 1.6 MB of data still in the cache from the
   call before, one at 100,000 reads its 16 MB from memory, so part of a
   step there is the cache, not the code.  The verdict is taken on the
   cold-cache steps: linear up to 1.10 (one case's rounds differ by more
   than that here), and for ``pool_many`` a step no larger than the floor's
   at the same size (the cost of fresh memory for its new table).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pool import cpu_model, make_data  # noqa: E402

from meta.bayes import bayes_pool  # noqa: E402
from meta.bias import trimfill  # noqa: E402
from meta.confint import confint  # noqa: E402
from meta import many  # noqa: E402
from meta.pool import cumulative, leave_one_out, pool, pool_many  # noqa: E402

warnings.simplefilter("ignore")  # k = 1 fall-backs, statsmodels' own warnings


def machine() -> str:
    import pandas
    import scipy

    try:
        import statsmodels

        sm = statsmodels.__version__
    except ImportError:  # pragma: no cover
        sm = "-"
    try:
        import numba

        nb = numba.__version__
    except ImportError:  # pragma: no cover
        nb = "-"
    load = os.getloadavg()
    return (
        f"nproc {os.cpu_count()}; CPU {cpu_model()}; Linux {platform.release()}; Python {platform.python_version()}; "
        f"numpy {np.__version__}, pandas {pandas.__version__}, scipy {scipy.__version__}, statsmodels {sm}, numba {nb}; "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


# CPU time of this process, not wall time: on a shared host a short call that is
# descheduled for a few ms would look 5x slower than a long loop that averages
# the load; the code timed here runs on one thread (no BLAS threads), so CPU
# time is its run time.
TIMER = time.process_time


def clock(fn, repeat=1):
    """Median CPU seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = TIMER()
        fn()
        times.append(TIMER() - t0)
    return float(np.median(times))


def peak(fn):
    """(peak bytes of the allocations during fn(), seconds)."""
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1], time.perf_counter() - t0
    finally:
        tracemalloc.stop()


def fmt(ratios, digits=2):
    a = np.asarray(ratios, dtype=float)
    return f"{np.median(a):.{digits}f} ({a.min():.{digits}f}-{a.max():.{digits}f})"


def studies(k, seed=3, tau2=0.1):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.5, k)
    return rng.normal(0.3, np.sqrt(v + tau2)), v


# --------------------------------------------------------------------------- 1. memory


def memory(quick: bool) -> None:
    print("\n## 1. Memory (tracemalloc peak of the call's own allocations)\n")
    m = 1_000_000
    y, v, _ = make_data(m, seed=1)
    inp = y.nbytes + v.nbytes
    for label, method, engine in (("DL numba", "DL", "numba"), ("DL numpy", "DL", "numpy"), ("REML numpy", "REML", "numpy")):
        pool_many(y[:100], v[:100], method=method, engine=engine)
        many._WORKSPACE.arrays = None  # the work space pool_many keeps between calls made anew: a first call's peak
        b, s = peak(lambda: pool_many(y, v, method=method, engine=engine))
        print(f"pool_many {m:,} x 10, {label:10}: peak {b / 1e6:6.1f} MB = {b / inp:.3f} x input ({inp / 1e6:.0f} MB), {s:.2f} s  [target <= 0.75]")
    del y, v
    sizes = (1_000, 10_000, 100_000)
    for method in ("FE", "DL", "REML"):
        for k in sizes:
            if method == "REML" and k > 10_000:
                continue  # iterative: O(k^2) time with the score scan per refit (k = 10,000 ~ a minute)
            if method == "DL" and k > (20_000 if quick else 100_000):
                continue
            yk, vk = studies(k)
            for fn in (leave_one_out, cumulative):
                b, s = peak(lambda: fn(yk, vk, method=method))
                print(f"{fn.__name__:13} {method:4} k = {k:>7,}: peak {b / 2**20:6.1f} MB, {s:7.2f} s  [bound: 64 MB + O(k)]")
    yk, vk = studies(3000, seed=42)
    yk = yk + 0.8 * np.sqrt(vk)
    b, s = peak(lambda: trimfill(yk, vk, method="REML"))
    print(f"trimfill REML k = 3,000: peak {b / 2**20:.1f} MB (one k x k matrix: {3000**2 * 8 / 2**20:.0f} MB), {s:.2f} s")
    for k in (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000):
        yk, vk = studies(k)
        b, s = peak(lambda: bayes_pool(yk, vk))
        print(f"bayes_pool k = {k:>9,}: peak {b / 2**20:6.1f} MB = {b / (yk.nbytes + vk.nbytes):.2f} x input, {s:6.1f} s  [memory linear in k]")


# --------------------------------------------------------------------------- 2. one fit


def one_fit(rounds: int) -> None:
    from statsmodels.stats.meta_analysis import combine_effects

    print(f"\n## 2. One fit at k = 5 vs statsmodels combine_effects ({rounds} interleaved rounds of 50 data sets x 4 calls)\n")
    rng = np.random.default_rng(20160601)
    sets = []
    for _ in range(50):
        v = rng.uniform(0.01, 0.5, 5)
        sets.append((rng.normal(0.3, np.sqrt(v + rng.choice([0.0, 0.02, 0.1, 0.5]))), v))

    def per_call(fn):
        t0 = TIMER()
        for _ in range(4):
            for y, v in sets:
                fn(y, v)
        return (TIMER() - t0) / (4 * len(sets))

    ours = {"REML": "iterated", "PM": "iterated", "DL": "chi2"}
    for fn in [lambda y, v, m=m: pool(y, v, method=m) for m in ours] + [lambda y, v: combine_effects(y, v, method_re="iterated")]:
        fn(*sets[0])
    ratios = {m: [] for m in ours}
    ratios["DL vs iterated"] = []
    times = {m: [] for m in list(ours) + ["sm iterated", "sm chi2"]}
    for _ in range(rounds):
        sm_it = per_call(lambda y, v: combine_effects(y, v, method_re="iterated"))
        sm_chi = per_call(lambda y, v: combine_effects(y, v, method_re="chi2"))
        times["sm iterated"].append(sm_it)
        times["sm chi2"].append(sm_chi)
        for m, sm_name in ours.items():
            t = per_call(lambda y, v, m=m: pool(y, v, method=m))
            times[m].append(t)
            ratios[m].append((sm_it if sm_name == "iterated" else sm_chi) / t)
            if m == "DL":
                ratios["DL vs iterated"].append(sm_it / t)
    med = {k: np.median(x) * 1e6 for k, x in times.items()}
    print(f"median per call: statsmodels iterated {med['sm iterated']:.0f} us, chi2 {med['sm chi2']:.0f} us; "
          f"pool REML {med['REML']:.0f} us, PM {med['PM']:.0f} us, DL {med['DL']:.0f} us")
    print(f"pool(method='REML') x faster than statsmodels 'iterated': {fmt(ratios['REML'])}  [target >= 2]")
    print(f"pool(method='PM')   x faster than statsmodels 'iterated': {fmt(ratios['PM'])}  [target >= 2]")
    print(f"pool(method='DL')   x faster than statsmodels 'chi2':     {fmt(ratios['DL'])}")


# --------------------------------------------------------------------------- 3. batch


def _floor_kernel(divisions=False):
    """The floor: a compiled pass that reads every ``yi`` and ``vi`` once and
    writes 12 values per analysis into ``out``, as cheaply as this machine
    does it: the padding (NaN) is skipped by a select, not a branch (ragged
    rows would mispredict it), and ``fastmath`` lets the sums over a row's
    studies run as vector operations in any order (the floor's own sums need
    no particular rounding; pool_many's must run in study order).

    ``divisions``: what the two divisions per study of any
    DerSimonian-Laird fit cost alone: ``1/v`` and ``1/(v + 0.1)`` summed
    instead of ``y`` and ``v`` (IEEE divisions, as the fixed-effect and the
    random-effects weights need; a constant of the compiled code)."""
    import numba

    @numba.njit(cache=False, nogil=True, fastmath=True, error_model="numpy")
    def floor(y, v, out):
        m, n = y.shape
        for a in range(m):
            s = 0.0
            t = 0.0
            for i in range(n):
                yi = y[a, i]
                ok = yi == yi
                vi = v[a, i]
                if divisions:
                    s += 1.0 / vi if ok else 0.0
                    t += 1.0 / (vi + 0.1) if ok else 0.0
                else:
                    s += yi if ok else 0.0
                    t += vi if ok else 0.0
            for j in range(12):
                out[j, a] = s + j * t
        return out

    return floor


def batch(rounds: int, m: int, sm_subset: int) -> None:
    from statsmodels.stats.meta_analysis import combine_effects

    print(f"\n## 3. Batch: pool_many on {m:,} ragged analyses (k 2..10) vs a statsmodels loop ({rounds} interleaved rounds)\n")
    y, v, k = make_data(m)
    n = min(sm_subset, m)

    def sm_loop(method_re):
        for i in range(n):
            combine_effects(y[i, : k[i]], v[i, : k[i]], method_re=method_re)

    floor = _floor_kernel()
    recip = _floor_kernel(divisions=True)
    out = np.empty((12, m))
    floor(y, v, out)
    recip(y, v, out)
    todo = [("DL numba", "DL", "numba", "chi2"), ("DL numpy", "DL", "numpy", "chi2"), ("REML auto", "REML", "auto", "iterated"),
            ("REML numpy", "REML", "numpy", "iterated")]
    for _, method, engine, _ in todo:
        pool_many(y, v, method=method, engine=engine)
    ratios = {t[0]: [] for t in todo}
    to_floor, secs = [], {t[0]: [] for t in todo}
    floor_s, recip_s, to_recip = [], [], []
    for _ in range(rounds):
        sm = {name: clock(lambda name=name: sm_loop(name)) * m / n for name in ("chi2", "iterated")}
        f = clock(lambda: floor(y, v, out), repeat=9)
        floor_s.append(f)
        recip_s.append(clock(lambda: recip(y, v, out), repeat=9))
        for label, method, engine, sm_name in todo:
            t = clock(lambda method=method, engine=engine: pool_many(y, v, method=method, engine=engine), repeat=5)
            secs[label].append(t)
            ratios[label].append(sm[sm_name] / t)
            if label == "DL numba":
                to_floor.append(t / f)
                to_recip.append(t / recip_s[-1])
    targets = {"DL numba": ">= 1000", "DL numpy": ">= 600", "REML auto": ">= 100", "REML numpy": ">= 100"}
    for label, *_ in todo:
        print(f"pool_many {label:10} {np.median(secs[label]) * 1e3:7.2f} ms; x statsmodels loop: {fmt(ratios[label], 0)}  [target {targets[label]}]")
    print(f"floor (read yi, vi once, write 12 x m): {np.median(floor_s) * 1e3:.2f} ms; pool_many DL numba / floor: {fmt(to_floor)}  [target <= 1.5]")
    print(f"two divisions per study alone (1/v, 1/(v + tau2)): {np.median(recip_s) * 1e3:.2f} ms = "
          f"{np.median(np.array(recip_s) / np.array(floor_s)):.2f} x the floor; pool_many DL numba / this: {fmt(to_recip)}")


# --------------------------------------------------------------------------- 4. super-linearity


STEP_TOLERANCE = 1.10  # a step up to this counts as linear: one case's rounds differ by more than 10 % here
FLUSH_BYTES = 128 << 20  # read before a cold call: more than the last-level cache of any current server CPU


def cold_call(fn, flush, reps):
    """Median CPU seconds of ``reps`` calls of ``fn``, each after reading
    ``flush`` (not timed), so that the call finds none of its data in the cache."""
    times = []
    for _ in range(reps):
        np.add.reduce(flush)
        t0 = TIMER()
        fn()
        times.append(TIMER() - t0)
    return float(np.median(times))


def _cpu():
    """(user, system) CPU seconds of this process so far (getrusage: microseconds, not clock ticks)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def scaling(rounds: int, quick: bool) -> None:
    print(f"\n## 4. Time per study (per analysis for pool_many) from 10 to 10^6 ({rounds} interleaved rounds)\n")
    sizes = [10, 100, 1_000, 10_000, 100_000] + ([] if quick else [1_000_000])
    data = {n: studies(n) for n in sizes}
    grids = {n: make_data(n, seed=5)[:2] for n in sizes}
    floor = _floor_kernel()
    cases = {
        "pool DL": lambda n: pool(*data[n]),
        "pool REML": lambda n: pool(*data[n], method="REML"),
        "pool PM": lambda n: pool(*data[n], method="PM"),
        "confint REML": lambda n: confint(*data[n], method="REML"),
        "pool_many DL numba": lambda n: pool_many(*grids[n], engine="numba"),
        "pool_many DL numpy": lambda n: pool_many(*grids[n], engine="numpy"),
        "pool_many REML": lambda n: pool_many(*grids[n], method="REML"),
        # what any function pays that reads the grid once and returns a new 12 x n table
        "floor, new 12 x n": lambda n: floor(*grids[n], np.empty((12, n))),
    }
    for fn in cases.values():
        fn(10)
    per = {c: {n: [] for n in sizes} for c in cases}
    sys_share = {c: {n: [] for n in sizes} for c in cases}
    # the cases run in a new random order at each size of each round: what a call pays for fresh
    # memory depends on what ran before it (memory the previous call freed in small pieces has to
    # be compacted into huge pages again), so no case always follows the same one
    rng = np.random.default_rng(20160601)
    names = list(cases)
    cold_sizes = [n for n in sizes if n >= 1_000]
    cold = {c: {n: [] for n in cold_sizes} for c in cases}
    flush = np.ones(FLUSH_BYTES // 8)
    for _ in range(rounds):
        for n in sizes:
            reps = max(1, 20_000 // n)
            for c in rng.permutation(names):
                fn = cases[c]
                u0, s0 = _cpu()
                per[c][n].append(clock(lambda: [fn(n) for _ in range(reps)]) / reps / n)
                u1, s1 = _cpu()
                sys_share[c][n].append((s1 - s0) / max(u1 - u0 + s1 - s0, 1e-9))
                if n in cold_sizes:  # the same call with nothing of its data in the cache
                    cold[c][n].append(cold_call(lambda: fn(n), flush, max(1, 2_000 // n)) / n)
    head = "".join(f"{n:>10,}" for n in sizes)
    print(f"{'ns per study':22}{head}   worst step t(10n)/(10 t(n)), median (min-max) over rounds")
    for c in cases:
        med = [np.median(per[c][n]) * 1e9 for n in sizes]
        steps = [np.array(per[c][b]) / np.array(per[c][a]) for a, b in zip(sizes[:-1], sizes[1:])]
        worst = int(np.argmax([np.median(s) for s in steps]))
        print(f"{c:22}" + "".join(f"{x:10.1f}" for x in med)
              + f"   {sizes[worst]:,} -> {sizes[worst + 1]:,}: {fmt(steps[worst])}")
    print("\nstep t(10n)/(10 t(n)) at each size, median over rounds (1 = linear)")
    print(f"{'':22}" + "".join(f"{f'-> {b:,}':>12}" for b in sizes[1:]))
    for c in cases:
        steps = [np.median(np.array(per[c][b]) / np.array(per[c][a])) for a, b in zip(sizes[:-1], sizes[1:])]
        print(f"{c:22}" + "".join(f"{x:12.2f}" for x in steps))
    print(f"\nstep t(10n)/(10 t(n)) with a cold cache: before each call {FLUSH_BYTES >> 20} MB are read, so that no data"
          " of an earlier call is in the cache at any size;\nmedian (min-max) over rounds")
    print(f"{'':22}" + "".join(f"{f'-> {b:,}':>20}" for b in cold_sizes[1:]))
    cold_steps = {c: [np.array(cold[c][b]) / np.array(cold[c][a]) for a, b in zip(cold_sizes[:-1], cold_sizes[1:])]
                  for c in cases}
    for c in cases:
        print(f"{c:22}" + "".join(f"{fmt(x):>20}" for x in cold_steps[c]))
    floor_name = "floor, new 12 x n"
    print(f"\nverdict (target: no super-linear step; a cold-cache step counts as one above {STEP_TOLERANCE:.2f}, the spread"
          " of one case's rounds on this machine,\nunless the floor's step at that size is as large: the cost of fresh"
          " memory for a new table of that size, which no function returning one avoids)")
    for c in cases:
        if c == floor_name:
            continue
        worst = []
        for i, st in enumerate(cold_steps[c]):
            med = float(np.median(st))
            if med > STEP_TOLERANCE:
                floor_med = float(np.median(cold_steps[floor_name][i]))
                worst.append(f"{cold_sizes[i]:,} -> {cold_sizes[i + 1]:,}: {med:.2f}"
                             + (f" (floor {floor_med:.2f}: as the floor)" if c.startswith("pool_many") and floor_med >= med
                                else f" (floor {floor_med:.2f}: SUPER-LINEAR)"))
        print(f"{c:22}" + ("; ".join(worst) if worst else f"linear (every step <= {STEP_TOLERANCE:.2f})"))
    print("\nsystem CPU time (the kernel's: page faults on fresh memory) as a share of the CPU time, median over rounds")
    print(f"{'':22}{head}")
    for c in cases:
        print(f"{c:22}" + "".join(f"{np.median(sys_share[c][n]):10.0%}" for n in sizes))
    print("(the floor row reads the grid once and writes a newly allocated 12 x n table, as pool_many returns one;"
          " its step is the cost of fresh memory on this machine, which no function returning that table avoids)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (no k = 10^6 for Bayes and the scaling run)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    ap.add_argument("--m", type=int, default=20_000, help="analyses in the batch comparison (default 20000)")
    ap.add_argument("--sm-subset", type=int, default=2_000, help="analyses in the statsmodels loop, scaled to m")
    ap.add_argument("--only", nargs="+", choices=("memory", "one", "batch", "scaling"), help="run only these sections")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"command: python benchmarks/bench_perf.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    run = set(args.only or ("memory", "one", "batch", "scaling"))
    if "one" in run:
        one_fit(args.rounds)
    if "batch" in run:
        batch(args.rounds, args.m, args.sm_subset)
    if "scaling" in run:
        scaling(args.rounds, args.quick)
    if "memory" in run:
        memory(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
