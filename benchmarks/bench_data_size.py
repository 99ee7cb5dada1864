"""How `meta validate` and `meta reproduce` scale with the number of outcome rows.

Generates SYNTHETIC data folders in a temporary directory (never in data/): the bundled
outcomes.csv rows are copied under new study ids (the bundled studies.csv rows copied with them,
cohort_id made unique per copy, every copied row marked "SYNTHETIC" in studies.csv notes and
outcomes.csv source_locator), until the folder holds the requested number of outcome rows. The copies join
the existing analyses of analyses.csv (same outcomes, comparisons, designs, review_match), so k
grows with the rows; no analysis is added. analyses.csv, review_claims.csv, vocabulary.csv and
published_pooled.csv are copied unchanged.

Each size is measured in a fresh interpreter per call (`python -m meta validate --data <tmp>` and
`python -m meta reproduce --data <tmp> --out <tmp>`), wall time with time.perf_counter and peak
RSS and CPU time (user + sys) of the child from resource.getrusage(RUSAGE_CHILDREN) (each call in
its own wrapper process, so the maximum is that call's). Prints the median with min-max over
rounds. On a shared host the CPU time is the steadier number (wall time includes waiting for a core).

    .venv/bin/python benchmarks/bench_data_size.py                       # 10k, 30k, 100k rows, 3 rounds
    .venv/bin/python benchmarks/bench_data_size.py --sizes 100000 --rounds 1 --keep /tmp/big
    .venv/bin/python benchmarks/bench_data_size.py --generate-only /tmp/big --sizes 100000
    .venv/bin/python benchmarks/bench_data_size.py --what compute        # reproduce's computation share

``--what compute`` runs ``meta.review.reproduce.reproduce(folder, out_dir=None)``: every analysis,
sensitivity sweep, robustness panel and claim computed, no figure drawn and no file written (the
share of ``reproduce`` before its outputs).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
MARK = "SYNTHETIC benchmark copy (benchmarks/bench_data_size.py), not a real study"


def _letters(j: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'ba', ...: a letters-only tag (study ids allow only letters before the year)."""
    out = ""
    while True:
        out = chr(ord("a") + j % 26) + out
        j //= 26
        if not j:
            return out


def _read(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, header: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def generate(folder: Path, n_rows: int) -> dict:
    """Write a synthetic data folder with ``n_rows`` outcome rows (the bundled ones first)."""
    import re

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("analyses.csv", "review_claims.csv", "vocabulary.csv", "published_pooled.csv"):
        if (DATA / name).exists():
            shutil.copy(DATA / name, folder / name)
    s_head, studies = _read(DATA / "studies.csv")
    o_head, outcomes = _read(DATA / "outcomes.csv")
    pattern = re.compile(r"^([a-z]+)(\d{4}[a-z]?)$")
    out_rows = list(outcomes)
    out_studies = list(studies)
    copy = 0
    while len(out_rows) < n_rows:
        tag = "syn" + _letters(copy)
        ids = {}
        for s in studies:
            m = pattern.match(s["study_id"])
            ids[s["study_id"]] = f"{m.group(1)}{tag}{m.group(2)}"
        for s in studies:
            new = dict(s)
            new["study_id"] = ids[s["study_id"]]
            new["cohort_id"] = f"{s['cohort_id']}_{tag}"
            new["notes"] = MARK
            out_studies.append(new)
        for o in outcomes:
            if len(out_rows) >= n_rows:
                break
            new = dict(o)
            new["study_id"] = ids[o["study_id"]]
            # marked in source_locator; extraction_note is left as it is, since it decides a validation rule
            new["source_locator"] = f"{MARK}; {o['source_locator']}"
            out_rows.append(new)
        copy += 1
    _write(folder / "studies.csv", s_head, out_studies)
    _write(folder / "outcomes.csv", o_head, out_rows)
    (folder / "SYNTHETIC.txt").write_text(MARK + "\n", encoding="utf-8")
    return {"outcome_rows": len(out_rows), "studies": len(out_studies),
            "outcomes_mb": (folder / "outcomes.csv").stat().st_size / 1e6}


#: ``--what compute``: ``reproduce(folder, out_dir=None)``, every analysis computed, nothing drawn or written
_COMPUTE = "import sys; from meta.review.reproduce import reproduce; reproduce(sys.argv[1], None)"

_WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rss = ru.ru_maxrss / 1024  # kB -> MB on Linux
print(json.dumps({"rc": p.returncode, "s": dt, "cpu": ru.ru_utime + ru.ru_stime, "mb": rss, "err": p.stderr[-2000:]}))
"""


def measure(cmd: list[str], timeout: float) -> dict:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True,
                         env=env, timeout=timeout, cwd=ROOT)
    return json.loads(out.stdout)


def _fmt(xs: list[float], unit: str, digits: int = 2) -> str:
    return f"{statistics.median(xs):.{digits}f} {unit} ({min(xs):.{digits}f}-{max(xs):.{digits}f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,30000,100000", help="outcome rows, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--what", default="validate,reproduce",
                    help="validate, reproduce and/or compute (reproduce without writing: no figures, no files)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--keep", help="generate into this folder (kept) instead of a temporary one")
    ap.add_argument("--generate-only", help="only write a synthetic folder here (one size)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.generate_only:
        info = generate(Path(args.generate_only), sizes[0])
        print(f"wrote {args.generate_only}: {info}")
        return 0
    print(f"machine: nproc {os.cpu_count()}, CPU {_cpu()}, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.2f}")
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="meta_bench_size_"))
    try:
        for n in sizes:
            folder = base / f"synthetic_{n}"
            if folder.exists():
                shutil.rmtree(folder)
            info = generate(folder, n)
            print(f"{n} rows: {info['studies']} studies, outcomes.csv {info['outcomes_mb']:.1f} MB", flush=True)
            results: dict[str, list[dict]] = {w: [] for w in args.what.split(",")}
            for _ in range(args.rounds):  # interleaved: validate, reproduce, validate, ...
                for what in results:
                    cmd = [sys.executable, "-m", "meta", what, "--data", str(folder)]
                    if what == "compute":  # reproduce without writing: its computation share, no figures or files
                        cmd = [sys.executable, "-W", "ignore", "-c", _COMPUTE, str(folder)]
                    if what == "reproduce":
                        out = base / f"results_{n}"
                        shutil.rmtree(out, ignore_errors=True)
                        cmd += ["--out", str(out)]
                    r = measure(cmd, args.timeout)
                    if r["rc"] not in (0,):
                        print(f"  {what} exited {r['rc']}: {r['err']}", flush=True)
                    results[what].append(r)
            for what, rs in results.items():
                print(f"  {what:9s} {n:>7d} rows: wall {_fmt([r['s'] for r in rs], 's')}, "
                      f"CPU {_fmt([r['cpu'] for r in rs], 's')}, "
                      f"peak RSS {_fmt([r['mb'] for r in rs], 'MB', 0)}  [{len(rs)} rounds]", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
