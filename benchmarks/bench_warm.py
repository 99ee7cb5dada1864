"""Warm `make reproduce` (`meta reproduce --data data --out results` run again on unchanged inputs), old checkout
against this one.

    git worktree add /tmp/warm_old cc6b02b
    .venv/bin/python benchmarks/bench_warm.py --old /tmp/warm_old              # 9 interleaved rounds
    .venv/bin/python benchmarks/bench_warm.py --old /tmp/warm_old --rounds 15 --importtime

Each checkout first runs twice to warm its caches (the figure cache and the run cache in
matplotlib's cache folder, whose keys hold the package source, so each checkout has its own
entries; numba's cache; the page cache). Then, in each round, old and new run one after the other
(the order alternating between rounds) as `python -m meta reproduce --data <data> --out
<tmp>/<side>/results` in fresh interpreters with `PYTHONPATH=<checkout>` and `MPLBACKEND=Agg`,
each side into its own results folder, which every run replaces, as `make reproduce` does.
Before the rounds, the new checkout's warm outputs are compared byte for byte with a
`--no-cache` run of it (every analysis run, every figure drawn), and both sides' outputs are
counted (files, bytes) and compared with each other byte for byte, so it is seen whether the two
sides write the same results folder (an older checkout may write fewer files). Reported: wall time (time.perf_counter) and CPU time of the child
(user + sys from resource.getrusage(RUSAGE_CHILDREN)), medians with min-max over rounds, and
the old/new ratio per round (median, min-max). On a shared host read the ratios: both sides of
each ratio see the same load. `--importtime` adds the import share of one warm run of each
(`python -X importtime`, the cumulative microseconds of the top-level imports).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(checkout: Path, data: Path, out: Path, extra: tuple[str, ...] = (), options: tuple[str, ...] = ()
         ) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "MPLBACKEND": "Agg"}
    for name in ("META_FIGURE_CACHE", "META_RUN_CACHE", "META_RUN_CACHE_DIR"):
        env.pop(name, None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, *extra, "-m", "meta", "reproduce", "--data", str(data), "--out", str(out),
                        *options], env=env, capture_output=True, text=True, cwd=str(checkout))
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{checkout}: meta reproduce failed:\n{p.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stderr


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fmt(xs: list[float], unit: str = "s") -> str:
    return f"{statistics.median(xs):.2f} {unit} ({min(xs):.2f}-{max(xs):.2f})"


def _import_seconds(stderr: str) -> float:
    """Sum of the cumulative times of top-level imports in `python -X importtime` output."""
    total = 0
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cum, name = line.split("|")
            if not name.startswith("  ") and cum.strip().isdigit():
                total += int(cum)
    return total / 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="the old checkout (a git worktree)")
    ap.add_argument("--new", type=Path, default=ROOT, help="the new checkout (default: this one)")
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args(argv)
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"machine: nproc {os.cpu_count()}, CPU {cpu_model}, load average {os.getloadavg()[0]:.2f}; "
          f"Python {sys.version.split()[0]}")
    work = Path(tempfile.mkdtemp(prefix="bench_warm-"))
    outs = {"old": work / "old" / "results", "new": work / "new" / "results"}
    checkouts = {"old": args.old, "new": args.new}
    for side in ("old", "new"):  # warm every cache
        _run(checkouts[side], args.data, outs[side])
        _run(checkouts[side], args.data, outs[side])
    full = work / "new-no-cache" / "results"
    _run(args.new, args.data, full, options=("--no-cache",))
    warm, fresh, old = _tree(outs["new"]), _tree(full), _tree(outs["old"])
    same = sorted(warm) == sorted(fresh) and all(warm[n] == fresh[n] for n in warm)
    print(f"outputs: old {len(old)} files, {sum(map(len, old.values())) / 1e6:.2f} MB; new {len(warm)} files, "
          f"{sum(map(len, warm.values())) / 1e6:.2f} MB; new warm run byte-identical to a new --no-cache run: "
          f"{'yes' if same else 'NO'}")
    differ = sorted(set(old) ^ set(warm)) + sorted(n for n in set(old) & set(warm) if old[n] != warm[n])
    print(f"old and new outputs byte-identical: {'yes' if not differ else f'no, {len(differ)} files differ or exist on one side only'}")
    walls = {"old": [], "new": []}
    cpus = {"old": [], "new": []}
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for side in order:
            wall, cpu, _ = _run(checkouts[side], args.data, outs[side])
            walls[side].append(wall)
            cpus[side].append(cpu)
    ratio_wall = [o / n for o, n in zip(walls["old"], walls["new"])]
    ratio_cpu = [o / n for o, n in zip(cpus["old"], cpus["new"])]
    print(f"warm meta reproduce --data {args.data} --out <side>/results, {args.rounds} interleaved rounds; load average now "
          f"{os.getloadavg()[0]:.2f}")
    print(f"  old {args.old}: wall {_fmt(walls['old'])}, CPU {_fmt(cpus['old'])}")
    print(f"  new {args.new}: wall {_fmt(walls['new'])}, CPU {_fmt(cpus['new'])}")
    print(f"  old / new: wall {_fmt(ratio_wall, 'x')}, CPU {_fmt(ratio_cpu, 'x')}  [target >= 1.8x]")
    if args.importtime:
        for side in ("old", "new"):
            _, _, err = _run(checkouts[side], args.data, outs[side], ("-X", "importtime"))
            print(f"  {side}: top-level imports {_import_seconds(err):.2f} s of one warm run (-X importtime)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
