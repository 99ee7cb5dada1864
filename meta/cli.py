"""Command line: all printing and exit codes (``meta validate``, ``meta reproduce``, ``meta diff``, ``meta docs``, ``meta coverage``).

Bad input never ends in a traceback: each command prints what is wrong and
exits 1. Printing and exit codes live here only; the library returns values or
raises. ``meta validate``: 0 -- no error (warnings and one summary line printed);
1 -- every problem printed. ``meta coverage`` (:func:`coverage_command`): 0 --
written or up to date; 1 -- invalid data or an unwritable README. ``meta reproduce``:

* 0 -- written;
* 1 -- invalid data (the validator's messages), or an ``OSError`` while writing
  (``meta reproduce: cannot write <path>: <cause>``; the previous results stay);
* 2 -- ``--out`` refused (``meta.review.outputs.results_folder.OutputRefused``: one line saying why) or
  another run is writing the same folder;
* 130 -- Ctrl-C (the previous results are untouched).

``meta diff OLD_RESULTS NEW_RESULTS`` prints :meth:`meta.review.outputs.diff.DiffResult.summary` (input rows,
study SMDs, pooled estimates and claim verdicts that changed) and exits 0 when nothing changed,
1 when something did, 2 when a folder cannot be compared (one line: ``meta diff: <why>``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="meta",
        description="Rerun, check and extend Neal et al. (2016), runners with patellofemoral pain.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    default_data = "./data if it exists, else the dataset bundled with the package"
    v = sub.add_parser("validate", help="check data/*.csv and print every problem found")
    v.add_argument("--data", default=None, help=f"folder holding studies.csv, outcomes.csv, ... (default: {default_data})")
    r = sub.add_parser("reproduce", help="run every analysis and write tables, figures and report.md")
    r.add_argument("--data", default=None, help=f"data folder (default: {default_data})")
    r.add_argument("--out", default="results", help="output folder (default: results)")
    r.add_argument("--no-cache", action="store_true",
                   help="run every analysis and draw every figure: neither the run cache nor the figure cache is "
                        "read or written (docs/run-cache.md)")
    d = sub.add_parser("diff", help="what changed between two results folders (exit 0: nothing, 1: something)")
    d.add_argument("old", metavar="OLD_RESULTS", help="results folder of the earlier run")
    d.add_argument("new", metavar="NEW_RESULTS", help="results folder of the later run")
    d.add_argument("--tolerance", type=float, default=1e-9,
                   help="absolute tolerance for numbers (default 1e-9: reruns on the same data are bit-identical)")
    g = sub.add_parser("docs", help="regenerate the README's pooled excerpt and data/README.md's coverage table")
    g.add_argument("--data", default="data", help="data folder (default: data)")
    g.add_argument("--readme", default="README.md", help="README holding the pooled-excerpt markers (default: README.md)")
    gd = sub.add_parser("get-data", help="copy the dataset bundled with the package into a folder, to edit and rerun")
    gd.add_argument("--to", default="data", help="folder to create (default: data; refused if it exists and is not empty)")
    c = sub.add_parser("coverage", help="regenerate only the coverage table in DATA/README.md")
    c.add_argument("--data", default="data", help="data folder (default: data)")
    return p


class _TolerantStream:
    """A standard stream that a closed pipe or a full disk cannot turn into a traceback.

    The first failed write (``BrokenPipeError`` from ``meta validate | head -1``, ``ENOSPC`` from
    ``> /dev/full``, ``EBADF``) marks the stream dead; later writes are dropped, so a
    ``meta reproduce`` whose progress lines nobody reads still finishes its results.
    """

    def __init__(self, stream, name: str):
        self._stream, self.name, self.error = stream, name, None

    def write(self, text: str) -> int:
        if self.error is None:
            try:
                return self._stream.write(text)
            except (OSError, ValueError) as e:  # ValueError: the stream was closed
                self.error = e
        return len(text)

    def flush(self) -> None:
        if self.error is None:
            try:
                self._stream.flush()
            except (OSError, ValueError) as e:
                self.error = e

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _silence(stream) -> None:
    """Point a dead stream's file descriptor at /dev/null so the interpreter's last flush is quiet."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one command; standard output and error that fail (closed pipe, full disk) end no command
    in a traceback: a closed pipe is silent, as for Unix tools; another write error is one line on
    the other stream if that one still works."""
    real_out, real_err = sys.stdout, sys.stderr
    out = _TolerantStream(real_out, "standard output") if real_out is not None else None
    err = _TolerantStream(real_err, "standard error") if real_err is not None else None
    sys.stdout, sys.stderr = out or real_out, err or real_err
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = real_out, real_err
        for dead, other in ((out, err), (err, out)):
            if dead is None or dead.error is None:
                continue
            _silence(dead._stream)
            if not isinstance(dead.error, BrokenPipeError) and other is not None and other.error is None:
                try:
                    print(f"meta: {dead.name} could not be written ({getattr(dead.error, 'strerror', None) or dead.error}); "
                          "its output is incomplete", file=other._stream, flush=True)
                except (OSError, ValueError):
                    pass


def _main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("validate", "reproduce"):
        from meta.review.inputs.bundled import data_folder

        folder, note = data_folder(args.data)
        if note:
            print(f"meta {args.command}: {note}", file=sys.stderr)
        args.data = str(folder)
    if args.command == "validate":
        return validate_command(args.data)
    if args.command == "reproduce":
        return reproduce_command(args.data, args.out, cache=not args.no_cache)
    if args.command == "get-data":
        return get_data_command(args.to)
    if args.command == "docs":
        return docs_command(args.data, args.readme)
    if args.command == "coverage":
        return coverage_command(args.data)
    if args.command == "diff":
        return diff_command(args.old, args.new, tolerance=args.tolerance)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _version() -> str:
    from meta import __version__

    return __version__


def get_data_command(to: str) -> int:
    """``meta get-data [--to DIR]``: copy the bundled dataset into DIR (0), or say why not (1)."""
    from meta.review.inputs.bundled import bundled_data, copy_bundled

    try:
        files = copy_bundled(to)
    except OSError as e:
        print(f"meta get-data: {e}", file=sys.stderr)
        return 1
    print(f"copied {len(files)} files of the bundled dataset ({bundled_data()}) into {to}/; edit them, then "
          f"`meta validate --data {to}` and `meta reproduce --data {to}`")
    return 0


def diff_command(old: str, new: str, *, tolerance: float = 1e-9) -> int:
    """``meta diff``: 0 nothing changed, 1 something changed, 2 a folder cannot be compared."""
    from meta.review.outputs.diff import DiffError, diff_results

    try:
        res = diff_results(old, new, tolerance=tolerance)
    except DiffError as e:
        print(f"meta diff: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that vanishes or cannot be listed while being read
        print(f"meta diff: cannot read {e.filename or old}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(res.summary())
    return 1 if res.changed else 0


def docs_command(data_dir: str, readme: str) -> int:
    """``meta docs`` (``make docs``): 0 written or already current, 1 invalid data or a missing marker."""
    from meta.review.inputs.analysis import AnalysesError
    from meta.review.inputs.data import DataError
    from meta.review.docs import regenerate

    try:
        done = regenerate(data_dir, readme)
    except (DataError, AnalysesError) as e:
        problems = getattr(e, "problems", None) or [e]
        print(f"meta docs: {len(problems)} problem(s) in {data_dir}; nothing was written:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    except (OSError, ValueError, UnicodeDecodeError) as e:
        print(f"meta docs: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    for path, changed in done:
        print(f"{path}: {'updated' if changed else 'already up to date'}")
    return 0


def print_problems(problems, path, out=None) -> int:
    """Print every problem (errors first, then warnings) and a count; return the exit code."""
    from meta.review.inputs.data import errors

    out = out or sys.stdout
    errs = errors(problems)
    warns = [p for p in problems if not p.is_error]
    for p in errs + warns:
        print(p, file=out)
    if errs:
        w = f" and {len(warns)} warning{'s' if len(warns) != 1 else ''}" if warns else ""
        print(f"{len(errs)} problem{'s' if len(errs) != 1 else ''}{w} found in {path}", file=out)
        return 1
    return 0


def validate_command(path: str | os.PathLike) -> int:
    """``meta validate --data DIR``: every problem of the data files and ``analyses.csv`` (exit 1),
    or the warnings and one summary line (exit 0)."""
    from meta.review.inputs.analysis import validate_folder
    from meta.review.inputs.data import load

    try:
        problems, checked, analyses = validate_folder(path)
        code = print_problems(problems, path)
        if code:
            return code
        ds = load(path, checked=checked)
        n_analyses = None if analyses is None else len(analyses)
        warns = sum(not p.is_error for p in problems)
        line = ds.summary()
        if n_analyses is not None:
            line += f", {n_analyses} analyses"
        print(line + (f"; {warns} warning{'s' if warns != 1 else ''}" if warns else ""))
        return 0
    except Exception as exc:  # never a traceback at the command line
        print(f"error: could not validate {path}: {type(exc).__name__}: {exc}")
        return 1


def coverage_command(data_dir: str) -> int:
    """``meta coverage [--data DIR]``: regenerate the coverage table in DIR/README.md."""
    from meta.review.outputs.coverage import coverage_table, write_coverage
    from meta.review.inputs.data import DataError, load

    try:
        ds = load(data_dir)
    except DataError as exc:
        for prob in exc.problems:
            print(prob)
        print(f"coverage not written: {len(exc.problems)} problem(s) in {data_dir}")
        return 1
    readme = Path(data_dir) / "README.md"
    table = coverage_table(ds)
    try:
        changed = write_coverage(readme, table)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        print(f"coverage not written: {exc}")
        return 1
    state = "updated" if changed else "already up to date"
    print(f"{readme}: coverage table {state} ({table.shape[0]} studies x {table.shape[1]} outcomes)")
    return 0


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)  # sys.stderr looked up at call time (pytest's capsys, redirections)


def _say(msg: str) -> None:
    print(f"meta reproduce: {msg}", file=sys.stderr, flush=True)


def _oserror_line(e: OSError, data_dir: str, out_dir: str) -> str:
    """``cannot write <path>: <cause>`` (``cannot read`` for a file of the data folder)."""
    path = e.filename if e.filename is not None else out_dir
    cause = e.strerror or str(e) or type(e).__name__
    verb = "write"
    try:
        if Path(os.fsdecode(path)).resolve().is_relative_to(Path(data_dir).resolve()):
            verb = "read"
    except (OSError, ValueError, RuntimeError):  # pragma: no cover - an unresolvable path is written, not read
        pass
    if getattr(e, "filename2", None) is not None:
        return f"cannot {verb} {os.fsdecode(path)} (renaming to {os.fsdecode(e.filename2)}): {cause}"
    return f"cannot {verb} {os.fsdecode(path)}: {cause}"


def reproduce_command(data_dir: str, out_dir: str, *, cache: bool = True) -> int:
    """``meta reproduce``: run :func:`meta.review.run_cache.reproduce` (a full run, or the stored outputs of
    the same run made before); its exceptions become one line and an exit code. ``cache=False``
    (``--no-cache``): neither the run cache nor the figure cache (``META_FIGURE_CACHE=0`` while it runs)."""
    saved = os.environ.get("META_FIGURE_CACHE")
    if not cache:
        os.environ["META_FIGURE_CACHE"] = "0"
    try:
        return _reproduce(data_dir, out_dir, cache)
    except KeyboardInterrupt:  # also while importing pandas and matplotlib
        if os.path.isdir(out_dir):
            _say(f"interrupted; the previous results in {out_dir} are untouched")
        else:
            _say(f"interrupted; nothing was written to {out_dir}")
        return 130
    finally:
        if not cache:
            if saved is None:
                os.environ.pop("META_FIGURE_CACHE", None)
            else:
                os.environ["META_FIGURE_CACHE"] = saved


def _reproduce(data_dir: str, out_dir: str, cache: bool = True) -> int:
    # only what a run-cache hit needs is imported up front: the error types of a full run come with it
    from meta.review import run_cache
    from meta.review.outputs.results_folder import OutputRefused

    t0 = time.perf_counter()
    try:
        outcome = run_cache.reproduce(data_dir, out_dir, progress=_progress, log=_progress, use_cache=cache)
    except OutputRefused as e:
        _say(str(e))
        return 2
    except Exception as e:
        from meta.review.inputs.analysis import ANALYSES_FILE, AnalysesError
        from meta.review.inputs.data import DataError

        if isinstance(e, DataError):
            problems = getattr(e, "problems", None) or [e]
            _say(f"{len(problems)} problem(s) in {data_dir}; nothing was written:")
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            return 1
        if isinstance(e, AnalysesError):
            _say(f"{len(e.problems)} problem(s) in {Path(data_dir) / ANALYSES_FILE}; nothing was written:")
            for p in e.problems:
                print(f"  {p}", file=sys.stderr)
            return 1
        if isinstance(e, OSError):
            _say(_oserror_line(e, data_dir, out_dir))
            return 1
        raise
    if outcome.from_cache:
        _say(f"outputs copied from the run cache ({outcome.entry}): the data files, the package source and the "
             "library versions are those of the run that stored them; --no-cache (or META_RUN_CACHE=0) runs "
             "every analysis again")
    print(f"done: {outcome.summary}; written to {out_dir}/ in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
