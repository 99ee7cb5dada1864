"""Time the output stages of `meta reproduce` on a large SYNTHETIC data folder: figures, cumulative figures,
CSV tables, report.md and report.html, each as wall time (perf_counter) and CPU time (process_time).

The folder is made by benchmarks/bench_data_size.py (`generate`: the bundled rows copied under new study
ids, every copy marked SYNTHETIC), or an existing one is given with --data. Each round runs
`meta.review.reproduce.reproduce(data, out)` in a fresh interpreter with every figure drawn
(META_FIGURE_CACHE=0); the stage functions that `reproduce` calls (draw_figures, draw_cumulative,
write_tables, report.render, report.markdown_to_html) are wrapped with timers in that interpreter.
Prints the median with min-max over rounds. On a shared host the CPU time is the steadier number.

    .venv/bin/python benchmarks/bench_output_stages.py --rows 30000 --rounds 3
    .venv/bin/python benchmarks/bench_output_stages.py --data /tmp/big --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("figures", "cumulative_fig", "tables", "report_md", "report_html")

_CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import meta.review.reproduce as R
from meta.review.outputs import report
W, C = {}, {}
def timed(key, f):
    W[key] = C[key] = 0.0
    def g(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            W[key] += time.perf_counter() - t
            C[key] += time.process_time() - c
    return g
R.draw_figures = timed("figures", R.draw_figures)
R.draw_cumulative = timed("cumulative_fig", R.draw_cumulative)
R.write_tables = timed("tables", R.write_tables)
report.render = timed("report_md", report.render)
report.markdown_to_html = timed("report_html", report.markdown_to_html)
t0, c0 = time.perf_counter(), time.process_time()
R.reproduce(sys.argv[1], sys.argv[2])
out = {"total": [time.perf_counter() - t0, time.process_time() - c0]}
for k in W:
    out[k] = [W[k], C[k]]
out["output"] = [sum(W.values()), sum(C.values())]
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=30000, help="outcome rows of the synthetic folder")
    ap.add_argument("--data", help="an existing data folder instead of a generated one")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_data_size import _cpu, generate

    base = Path(tempfile.mkdtemp(prefix="meta_bench_out_"))
    try:
        data = Path(args.data) if args.data else base / "data"
        if not args.data:
            generate(data, args.rows)
        print(f"machine: nproc {os.cpu_count()}, CPU {_cpu()}, Python {sys.version.split()[0]}, "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"command: META_FIGURE_CACHE=0 reproduce({data}, <tmp>) per round, {args.rounds} rounds")
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT), META_FIGURE_CACHE="0")
        runs = []
        for _ in range(args.rounds):
            out = base / "results"
            shutil.rmtree(out, ignore_errors=True)
            p = subprocess.run([sys.executable, "-c", _CHILD, str(data), str(out)], capture_output=True, text=True,
                               env=env, cwd=ROOT)
            if p.returncode:
                print(p.stderr[-2000:])
                return 1
            runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
        for key in ("total", "output", *STAGES):
            print(f"  {key:15s} wall {_fmt([r[key][0] for r in runs])} s, CPU {_fmt([r[key][1] for r in runs])} s")
        print(f"  peak RSS {_fmt([r['peak_rss_mb'] for r in runs])} MB  [{len(runs)} rounds]")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
