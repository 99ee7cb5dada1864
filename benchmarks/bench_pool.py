"""Benchmark meta.pool.pool_many against loops of pool(), statsmodels and metafor.

Run from the repository root (a script, not a test):

    .venv/bin/python benchmarks/bench_pool.py            # full run (~1-2 min)
    .venv/bin/python benchmarks/bench_pool.py --no-r     # skip the metafor loop
    .venv/bin/python benchmarks/bench_pool.py --quick    # FE/DL/REML vs statsmodels only (~30 s)

Data: ``--m`` (default 20,000) ragged analyses, k drawn uniformly from 2..10,
vi ~ U(0.01, 0.5), true tau2 drawn from {0, 0.02, 0.1, 0.5}, seed 20160601;
NaN padding to 10 columns.

Timed side by side, in one run:

* ``pool_many`` (FE, DL, REML, PM) on all m analyses (median and best of 21
  calls; the ratios use the median), with each engine that applies: the
  compiled kernel (``engine="numba"``, FE and DL, when numba is installed;
  compiled by a warm-up call before timing) and the numpy engine;
* a Python loop of ``pool()`` on all m analyses;
* a Python loop of statsmodels ``combine_effects`` on all m analyses:
  ``method_re="chi2"`` (DerSimonian-Laird) is compared with DL and FE;
  statsmodels has no REML, so REML and PM are compared with its only
  iterative estimator, ``method_re="iterated"`` (Paule-Mandel);
* if ``Rscript`` with metafor is available: a loop of ``rma()`` in R on the
  first ``--r-subset`` analyses (default 2,000), timed inside R and scaled
  linearly to m (stated in the output).

``--quick`` times only FE, DL and REML against statsmodels, in ``--rounds``
(default 7) interleaved rounds so that both sides see the same load on a
shared machine: per round, ``pool_many`` (median of 5 calls on all m analyses)
and a statsmodels loop on the first ``--sm-subset`` analyses (default 2,000;
a Python loop costs the same per call, so the time is scaled linearly to m).
It reports the medians over rounds and the median, lowest and highest
per-round ratio.  No metafor, no memory run.

Then peak memory of ``pool_many`` on ``--big`` x 10 (default 1,000,000 x 10)
for DL and REML, measured with tracemalloc (numpy reports its buffers to
tracemalloc), against the 160 MB of input (yi and vi, float64).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meta.pool import pool, pool_many  # noqa: E402

KMAX = 10


def make_data(m: int, seed: int = 20160601):
    rng = np.random.default_rng(seed)
    k = rng.integers(2, KMAX + 1, size=m)
    v = rng.uniform(0.01, 0.5, size=(m, KMAX))
    tau2 = rng.choice([0.0, 0.02, 0.1, 0.5], size=(m, 1))
    y = rng.normal(0.3, np.sqrt(v + tau2))
    pad = np.arange(KMAX)[None, :] >= k[:, None]
    y[pad] = np.nan
    v[pad] = np.nan
    return y, v, k


def timed(fn, repeat=1):
    """(median, best) seconds over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(min(times))


def variants():
    """(label, method, engine) timed: the compiled kernel (meta._fast, numba)
    for FE and DL where numba is installed, and the numpy engine for all."""
    from meta import _fast

    out = []
    for method in ("FE", "DL", "REML", "PM"):
        if method in ("FE", "DL") and _fast.AVAILABLE:
            out.append((f"{method} numba", method, "numba"))
        out.append((f"{method} numpy", method, "numpy"))
    return out


def warm_up(y, v):
    """Compile (or load from numba's cache) the kernel before timing it."""
    for _, method, engine in variants():
        pool_many(y[:50], v[:50], method=method, engine=engine)


def loop_pool(y, v, k, method):
    for i in range(len(k)):
        pool(y[i, : k[i]], v[i, : k[i]], method=method)


def loop_statsmodels(y, v, k, method_re):
    from statsmodels.stats.meta_analysis import combine_effects

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(k)):
            combine_effects(y[i, : k[i]], v[i, : k[i]], method_re=method_re)


R_SCRIPT = r"""
suppressMessages(library(metafor))
a <- commandArgs(TRUE)
y <- as.matrix(read.csv(a[1], header = FALSE)); v <- as.matrix(read.csv(a[2], header = FALSE))
k <- rowSums(!is.na(y))
for (m in c("FE", "DL", "REML", "PM")) {
  t0 <- proc.time()[["elapsed"]]
  for (i in seq_len(nrow(y))) {
    r <- tryCatch(rma(y[i, 1:k[i]], v[i, 1:k[i]], method = m), error = function(e) NULL)
  }
  cat(m, proc.time()[["elapsed"]] - t0, "\n")
}
"""


def metafor_times(y, v, n):
    """Seconds for a loop of rma() over the first n analyses, per method."""
    if shutil.which("Rscript") is None:
        return None
    ok = subprocess.run(["Rscript", "-e", "library(metafor)"], capture_output=True)
    if ok.returncode != 0:
        return None
    with tempfile.TemporaryDirectory() as d:
        fy, fv, fr = Path(d, "y.csv"), Path(d, "v.csv"), Path(d, "b.R")
        np.savetxt(fy, y[:n], delimiter=",", fmt="%.17g")
        np.savetxt(fv, v[:n], delimiter=",", fmt="%.17g")
        fr.write_text(R_SCRIPT)
        res = subprocess.run(["Rscript", str(fr), str(fy), str(fv)], capture_output=True, text=True)
    if res.returncode != 0:
        print(res.stderr, file=sys.stderr)
        return None
    return {line.split()[0]: float(line.split()[1]) for line in res.stdout.strip().splitlines()}


def peak_memory(m: int, method: str, engine: str):
    y, v, _ = make_data(m, seed=1)
    input_mb = (y.nbytes + v.nbytes) / 1e6
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    df = pool_many(y, v, method=method, engine=engine)
    secs = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out_mb = df.memory_usage(deep=True).sum() / 1e6
    return input_mb, peak / 1e6, out_mb, secs


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    cpu = cpu_model()
    return (
        f"nproc {os.cpu_count()}; CPU {cpu}; Python {platform.python_version()}; numpy {np.__version__}; "
        f"{platform.system()} {platform.release()}"
    )


def quick(y, v, k, rounds: int, subset: int) -> None:
    """Interleaved rounds of pool_many and a scaled statsmodels loop (see --quick)."""
    m = len(k)
    n = min(subset, m)
    sm_for = {"FE": "chi2", "DL": "chi2", "REML": "iterated"}
    todo = [x for x in variants() if x[1] in sm_for]
    rows = {label: [] for label, _, _ in todo}
    for _ in range(rounds):
        for label, meth, engine in todo:
            t_many = timed(lambda meth=meth, engine=engine: pool_many(y, v, method=meth, engine=engine), repeat=5)[0]
            t_sm = timed(lambda re=sm_for[meth]: loop_statsmodels(y[:n], v[:n], k[:n], re))[0] * m / n
            rows[label].append((t_many, t_sm, t_sm / t_many))
    print(f"quick: {rounds} interleaved rounds; pool_many median of 5 calls on {m}; statsmodels loop on {n}, scaled x{m / n:g}\n")
    print(f"{'method engine':13} {'pool_many s':>12} {'statsmodels s':>22} {'x statsmodels (median, range)':>32}")
    for label, meth, _ in todo:
        a = np.array(rows[label])
        med = np.median(a, axis=0)
        print(
            f"{label:13} {med[0]:12.4f} {med[1]:12.2f} ({sm_for[meth]:>8}) {med[2]:14.0f} ({a[:, 2].min():.0f}-{a[:, 2].max():.0f})"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=20_000, help="analyses (default 20000)")
    ap.add_argument("--r-subset", type=int, default=2_000, help="analyses timed in R, then scaled (default 2000)")
    ap.add_argument("--no-r", action="store_true", help="skip the metafor loop")
    ap.add_argument("--big", type=int, default=1_000_000, help="rows for the peak-memory run (default 1000000)")
    ap.add_argument("--quick", action="store_true", help="FE/DL/REML vs statsmodels only, interleaved rounds")
    ap.add_argument("--rounds", type=int, default=7, help="rounds for --quick (default 7)")
    ap.add_argument("--sm-subset", type=int, default=2_000, help="analyses in the statsmodels loop for --quick (default 2000)")
    args = ap.parse_args(argv)

    print(f"machine: {machine()}")
    blas_env = {key: val for key, val in os.environ.items() if "BLAS" in key or key.startswith(("OMP_", "MKL_"))}
    print(f"BLAS/OpenMP environment: {blas_env or 'none set'}")
    y, v, k = make_data(args.m)
    print(f"data: {args.m} analyses, k = 2..10 (mean {k.mean():.2f}), seed 20160601")
    warm_up(y, v)
    print(f"engines: {', '.join(label for label, _, _ in variants())} (numba kernel compiled before timing)\n")
    if args.quick:
        quick(y, v, k, args.rounds, args.sm_subset)
        return 0

    many, best = {}, {}
    for label, method, engine in variants():
        many[label], best[label] = timed(lambda method=method, engine=engine: pool_many(y, v, method=method, engine=engine), repeat=21)
    loop = {}
    for method in ("FE", "DL", "REML", "PM"):
        loop[method] = timed(lambda method=method: loop_pool(y, v, k, method))[0]
    sm = {
        "chi2": timed(lambda: loop_statsmodels(y, v, k, "chi2"))[0],
        "iterated": timed(lambda: loop_statsmodels(y, v, k, "iterated"))[0],
    }
    sm_for = {"FE": "chi2", "DL": "chi2", "REML": "iterated", "PM": "iterated"}
    r = None
    if not args.no_r:
        n = min(args.r_subset, args.m)
        r_raw = metafor_times(y, v, n)
        if r_raw is not None:
            r = {mm: s * args.m / n for mm, s in r_raw.items()}
            print(f"metafor: rma() loop timed in R on the first {n} analyses, scaled x{args.m / n:g} to {args.m}\n")
        else:
            print("metafor: Rscript/metafor not available, skipped\n")

    print("pool_many: median (best) of 21 calls; loops: one run each; ratios use the median\n")
    head = f"{'method engine':13} {'pool_many s':>17} {'pool() loop s':>14} {'statsmodels loop s':>22} {'metafor loop s':>15}"
    head += f" {'x pool()':>9} {'x statsmodels':>14} {'x metafor':>10}"
    print(head)
    for label, method, _ in variants():
        smt = sm[sm_for[method]]
        rt = r[method] if r else float("nan")
        print(
            f"{label:13} {many[label]:8.4f} ({best[label]:.4f}) {loop[method]:14.2f} {smt:15.2f} ({sm_for[method]:>8})"
            f" {rt:14.1f} {loop[method] / many[label]:9.0f} {smt / many[label]:14.0f} {rt / many[label]:10.0f}"
        )

    print(f"\npeak memory of pool_many on {args.big:,} x {KMAX} (tracemalloc):")
    for label, method, engine in variants():
        if method == "PM" or (method == "FE" and engine == "numpy"):
            continue
        inp, peak, out, secs = peak_memory(args.big, method, engine)
        print(
            f"  {label:13} input {inp:.0f} MB, peak during pool_many {peak:.0f} MB "
            f"({peak / inp:.2f} x input; output DataFrame {out:.0f} MB), {secs:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
