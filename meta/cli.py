"""Command line: ``meta validate`` and ``meta reproduce`` (also ``python -m meta ...``).

Bad input never ends in a traceback: each subcommand prints what is wrong and
exits 1.
"""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="meta",
        description="Rerun, check and extend Neal et al. (2016), runners with patellofemoral pain.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check data/*.csv and print every problem found")
    v.add_argument("--data", default="data", help="folder holding studies.csv, outcomes.csv, ... (default: data)")
    r = sub.add_parser("reproduce", help="run every analysis and write tables, figures and report.md")
    r.add_argument("--data", default="data", help="data folder (default: data)")
    r.add_argument("--out", default="results", help="output folder (default: results)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        from meta.analysis import validate_cli

        return validate_cli(args.data)
    if args.command == "reproduce":
        from meta.reproduce import reproduce_cli

        return reproduce_cli(args.data, args.out)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
