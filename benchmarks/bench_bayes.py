"""Time meta.bayes.bayes_pool per call (a script, not a test).

Run from the repository root:

    .venv/bin/python benchmarks/bench_bayes.py            # ~10 s
    .venv/bin/python benchmarks/bench_bayes.py --calls 50

For k = 1, 2, 3, 4 and 13 studies (vi ~ U(0.02, 0.2), yi ~ N(0.3, vi + 0.1),
seed 20160601), each tau prior (half-normal, half-Cauchy, scale 0.5) and each
mu prior (uniform, N(0, 1)): median and best of ``--calls`` calls, in
milliseconds per call.  Everything a call returns is computed in it: the
tau quadrature, 7 quantiles, 2 moments per parameter, and the 401-point
density grids.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meta.bayes import bayes_pool  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(20160601)
    print(f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}; "
          f"median (best) of {args.calls} calls, ms per call")
    print(f"{'k':>3} {'tau prior':>11} {'mu prior':>9} {'median':>8} {'best':>8} {'nodes':>6}")
    for k in (1, 2, 3, 4, 13):
        vi = rng.uniform(0.02, 0.2, k)
        yi = rng.normal(0.3, np.sqrt(vi + 0.1))
        for prior in ("halfnormal", "halfcauchy"):
            for mu_prior in (None, (0.0, 1.0)):
                bayes_pool(yi, vi, tau_prior=prior, mu_prior=mu_prior)  # warm-up
                times = []
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    r = bayes_pool(yi, vi, tau_prior=prior, mu_prior=mu_prior)
                    times.append(time.perf_counter() - t0)
                med, best = 1e3 * np.median(times), 1e3 * min(times)
                name = "uniform" if mu_prior is None else "N(0,1)"
                print(f"{k:>3} {prior:>11} {name:>9} {med:>8.2f} {best:>8.2f} {r._post.w_n.size:>6}")


if __name__ == "__main__":
    main()
