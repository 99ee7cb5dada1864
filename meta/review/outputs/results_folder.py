"""The results folder: which folder ``meta reproduce`` may write, how it is replaced, and its tables.

A results folder is ours when it holds the marker file :data:`MARKER`
(``.meta-results``); ``meta reproduce`` writes one into every folder it creates
and replaces nothing else. The rules, checked on resolved paths (``..`` and
symlinks followed) before anything is created:

* refused (:class:`OutputRefused`, one line): the data folder, a folder inside
  it or containing it; the working directory or a folder containing it; the
  home folder or a folder containing it; a file system root or mount point; an
  existing file; a non-empty folder without our marker;
* accepted: a folder that does not exist yet, an empty folder, a folder holding
  our marker.

:func:`prepare` checks, locks and recovers before a long run; writing
(:class:`ResultsFolder`): take a lock, recover what a killed run left,
write into the sibling ``<parent>/.<name>.tmp-XXXX/<name>/`` (marker first),
then swap with two renames -- old ``<name>`` to ``.<name>.tmp-XXXX/previous/<name>``,
new to ``<name>`` -- and remove the temporary folder. Each step can be killed:

* killed while writing: ``<name>`` is untouched; the next run removes the
  temporary folder;
* killed between the two renames: ``<name>`` is missing; the next run moves
  ``previous/<name>`` back;
* killed after the second rename: the new results are in place; the next run
  removes the temporary folder with the old ones.

Our folders are removed marker last, so a half-removed folder is still
recognisably ours. A temporary folder holding anything unmarked is left alone
(and reported).

Lock: ``fcntl.flock`` on ``<parent>/.<name>.lock`` (non-blocking; a second run
is refused with :class:`OutputBusy`). The kernel drops the lock when its
process dies, so a killed run never blocks the next one; the lock file is
removed by the run that holds it (a stale one is harmless and reused). Without
``fcntl`` (Windows) there is no lock.

:func:`write_tables` writes the CSV outputs of a run into it (``meta.review.outputs.csvsafe``: a text
cell a spreadsheet would run as a formula gets a leading ``'``).

Library code: raises, never prints; ``meta.cli`` turns the exceptions into one
line and an exit code.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "MARKER",
    "MARKER_TEXT",
    "MANIFEST",
    "foreign_files",
    "OutputRefused",
    "OutputBusy",
    "check_target",
    "is_ours",
    "recover",
    "prepare",
    "ResultsFolder",
    "write_tables",
    "read_inputs",
    "write_inputs",
]

MARKER = ".meta-results"
#: every file the run that wrote the folder put there, one relative path a line (written last, before the swap)
MANIFEST = ".meta-manifest"
MARKER_TEXT = (
    "This folder was written by `meta reproduce` (package meta).\n"
    "The next `meta reproduce` into it replaces the whole folder: do not keep your own files here.\n"
)


class OutputRefused(Exception):
    """``--out`` names a folder meta must not replace; ``str(e)`` is one line saying why."""


class OutputBusy(OutputRefused):
    """Another run holds the lock of this results folder."""


# --------------------------------------------------------------------------- the guard


def _resolve(p: str | os.PathLike) -> Path:
    return Path(os.fspath(p)).resolve()


def _within(a: Path, b: Path) -> bool:
    """True if ``a`` lies strictly inside ``b`` (both resolved)."""
    return b in a.parents


def is_ours(folder: Path) -> bool:
    """An empty folder, or one holding our marker file."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return False
    return (folder / MARKER).is_file() or not any(folder.iterdir())


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def foreign_files(folder: Path) -> list[str]:
    """Files in one of our results folders that the run which wrote it did not write (per its
    :data:`MANIFEST`): a user's own notes, an edited copy. Empty when the folder has no manifest."""
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return []
    listed = set(manifest.read_text(encoding="utf-8").splitlines())
    return sorted(_files_under(Path(folder)) - listed - {MARKER, MANIFEST})


def write_manifest(folder: Path) -> None:
    """List every file under ``folder`` in its :data:`MANIFEST` (call when nothing more is written)."""
    names = sorted(_files_under(folder) - {MANIFEST})
    (folder / MANIFEST).write_text("".join(n + "\n" for n in names), encoding="utf-8")


def check_target(out_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Resolve ``out_dir`` and return it, or raise :class:`OutputRefused` (nothing is created).

    ``data_dir`` is the data folder (``--data``); the working directory and the
    home folder are read from the process (``HOME``).
    """
    given = os.fspath(out_dir)
    target = _resolve(out_dir)

    def refuse(reason: str, advice: str = "choose another --out, e.g. results") -> None:
        raise OutputRefused(f"refusing --out {given}: {target} {reason}; {advice}")

    if target.parent == target or os.path.ismount(target):
        refuse("is a file system root (a mount point cannot be replaced)", "choose a folder inside it")
    try:
        home = _resolve(Path.home())
    except (RuntimeError, KeyError):  # pragma: no cover - no HOME and no passwd entry
        home = None
    data = _resolve(data_dir) if data_dir is not None else None
    cwd = _resolve(os.getcwd())
    if home is not None and target == home:
        refuse("is your home folder")
    if data is not None and target == data:
        refuse("is the data folder (--data)")
    if target == cwd:
        refuse("is the working directory")
    if data is not None and _within(target, data):
        refuse(f"lies inside the data folder {data}")
    if data is not None and _within(data, target):
        refuse(f"contains the data folder {data}")
    if _within(cwd, target):
        refuse(f"contains the working directory {cwd}")
    if home is not None and _within(home, target):
        refuse(f"contains your home folder {home}")
    if target.exists() and not target.is_dir():
        refuse("is an existing file, not a folder")
    if target.is_dir() and not is_ours(target):
        refuse(
            f"is a folder that meta did not write (not empty, no {MARKER} file)",
            "empty it yourself or choose another --out",
        )
    if target.is_dir():
        foreign = foreign_files(target)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            refuse(f"holds files the previous run did not write ({shown}; see its {MANIFEST}), which a new run "
                   "would delete", "move them out of the folder, or choose another --out")
    return target


# --------------------------------------------------------------------------- removing and recovering


def _remove_ours(folder: Path) -> None:
    """Remove one of our folders, marker last (a kill midway leaves it recognisably ours)."""
    for entry in list(folder.iterdir()):
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    marker = folder / MARKER
    if marker.exists():
        marker.unlink()
    folder.rmdir()


def _temp_folders(target: Path) -> list[Path]:
    return sorted(p for p in target.parent.glob(f".{target.name}.tmp-*") if p.is_dir() and not p.is_symlink())


def _remove_temp(work: Path, name: str) -> bool:
    """Remove ``work`` if everything in it is ours; False (and nothing removed) otherwise."""
    new, prev = work / name, work / "previous"
    prev_inner = prev / name
    entries = {e.name for e in work.iterdir()}
    if not entries <= {name, "previous"}:
        return False
    if new.exists() and not is_ours(new):
        return False
    if prev.exists():
        if prev.is_symlink() or not prev.is_dir() or not {e.name for e in prev.iterdir()} <= {name}:
            return False
        if prev_inner.exists() and not is_ours(prev_inner):
            return False
    if prev_inner.exists():
        _remove_ours(prev_inner)
    if prev.exists():
        prev.rmdir()
    if new.exists():
        _remove_ours(new)
    work.rmdir()
    return True


def recover(target: Path) -> list[str]:
    """Clean up what killed runs left beside ``target``; returns one message per action.

    Call with the lock held (every temporary folder is then stale). A missing
    ``target`` with ``previous/<name>`` in a temporary folder (killed between the
    two renames) is moved back; temporary folders holding only our folders are
    removed; others are left alone and reported.
    """
    target = Path(target)
    name = target.name
    messages: list[str] = []
    for work in _temp_folders(target):
        prev_inner = work / "previous" / name
        if not target.exists() and not target.is_symlink() and prev_inner.is_dir():
            os.replace(prev_inner, target)
            messages.append(f"restored the previous results {target} from {prev_inner} (a run was killed while swapping folders)")
        try:
            removed = _remove_temp(work, name)
        except OSError as e:  # e.g. a folder inside it made read-only: never let it block this run
            messages.append(f"could not remove {work}, left by an earlier run ({e.strerror or e}: "
                            f"{getattr(e, 'filename', '') or work}); remove it yourself (chmod -R u+w first)")
            continue
        if removed:
            messages.append(f"removed {work}, left by an interrupted run")
        else:
            messages.append(f"left {work} alone: it holds files meta did not write; remove it yourself")
    return messages


# --------------------------------------------------------------------------- lock


class _Lock:
    """``fcntl.flock`` on ``<parent>/.<name>.lock``; released by the kernel if the process dies."""

    def __init__(self, target: Path):
        self.path = target.parent / f".{target.name}.lock"
        self.target = target
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows: no lock
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise OutputBusy(
                    f"another meta reproduce (pid {holder}) is writing {self.target}; "
                    f"wait for it to finish or choose another --out"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:  # the holder we waited for may have removed the file: lock the one on disk
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: a waiting run then re-opens a fresh file
        except FileNotFoundError:  # pragma: no cover
            pass
        finally:
            os.close(self.fd)
            self.fd = None


def prepare(out_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Before a long run: :func:`check_target`, then -- if the parent folder exists -- take the lock
    for a moment (:class:`OutputBusy` now, not after the computation) and :func:`recover`.

    Creates nothing that stays: the lock file is removed again. Returns the resolved target.
    """
    target = check_target(out_dir, data_dir)
    if target.parent.is_dir():
        lock = _Lock(target)
        lock.acquire()
        try:
            for msg in recover(target):
                (log or (lambda m: None))(msg)
        finally:
            lock.release()
        target = check_target(out_dir, data_dir)
    return target


# --------------------------------------------------------------------------- writing


class _DeferSigint:
    """Hold Ctrl-C back while the swap and its clean-up run (a few renames and removals)."""

    def __enter__(self):
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, lambda *a: None)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        return False


class ResultsFolder:
    """Write a results folder safely::

        with ResultsFolder(target, data_dir=data, log=print) as folder:
            (folder.tmp / "report.md").write_text(...)
            folder.commit()

    On entering: check the target again (:func:`check_target`), create its
    parent, take the lock, :func:`recover`, create the temporary folder with the
    marker. :meth:`commit` swaps it into place. Leaving without commit (an
    exception, Ctrl-C) removes the temporary folder and leaves ``target`` as it
    was.
    """

    def __init__(self, target: str | os.PathLike, *, data_dir: str | os.PathLike | None = None, log: Callable[[str], None] | None = None):
        self.given = target
        self.data_dir = data_dir
        self.log = log or (lambda msg: None)
        self.target: Path = _resolve(target)
        self.work: Path | None = None
        self.tmp: Path | None = None
        self.committed = False
        self._lock: _Lock | None = None

    def __enter__(self) -> "ResultsFolder":
        self.target = check_target(self.given, self.data_dir)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _Lock(self.target)
        self._lock.acquire()
        try:
            for msg in recover(self.target):
                self.log(msg)
            self.target = check_target(self.given, self.data_dir)
            # <parent>/.results.tmp-XXXX/results: the inner folder has the target's own name, so an
            # ignore rule for the results folder (.gitignore "results/") also hides a killed run's copy
            self.work = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-", dir=self.target.parent))
            self.tmp = self.work / self.target.name
            self.tmp.mkdir()
            (self.tmp / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        except BaseException:
            self._cleanup()
            raise
        return self

    def commit(self) -> None:
        """Swap the temporary folder into place; the old results are removed after.

        Once the new folder is in place the run has succeeded: failing to remove
        the old results is reported through ``log`` (the next run removes them).
        """
        write_manifest(self.tmp)
        with _DeferSigint():
            swap_into_place(self.tmp, self.target, self.work)
            self.committed = True
            try:
                self._remove_work()
            except OSError as e:
                self.log(f"could not remove the previous results in {self.work} ({e.strerror or e}); the next run removes them")
                self.work = None

    def _remove_work(self) -> None:
        if self.work is not None and self.work.exists():
            if not _remove_temp(self.work, self.target.name):  # pragma: no cover - only our folders in it
                self.log(f"left {self.work} alone: it holds files meta did not write; remove it yourself")
        self.work = None

    def _cleanup(self) -> None:
        try:
            self._remove_work()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __exit__(self, *exc) -> bool:
        self._cleanup()
        return False


def swap_into_place(tmp: Path, out_dir: Path, work: Path) -> None:
    """Replace ``out_dir`` by ``tmp`` with two renames (the old folder moves to ``work/previous``).

    If the second rename fails the old folder is put back, so ``out_dir`` is always
    either the complete old results or the complete new ones. A kill between the
    two renames is repaired by :func:`recover`.
    """
    old = None
    if out_dir.exists():
        old = work / "previous"
        old.mkdir()
        old = old / out_dir.name
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old, out_dir)
        raise


def write_tables(res, folder: Path) -> None:
    """The CSV outputs of a ``meta.review.reproduce.ReproduceResult``: effect_sizes, pooled, sensitivity,
    robustness (one row per analysis x method), prepost_r_sensitivity (the pre-post r sweep),
    leave_one_out, set_aside, claims, coverage, cumulative (leave_one_out and set_aside with the
    evidence set of each run: ``res.runs`` original, ``res.updated``)."""
    import pandas as pd

    from meta.review.outputs.csvsafe import write_csv  # a text cell a spreadsheet would run as a formula gets a leading '

    write_csv(res.effects, folder / "effect_sizes.csv")
    write_csv(res.to_frame(), folder / "pooled.csv")
    write_csv(res.sensitivity, folder / "sensitivity.csv")
    if hasattr(res, "robustness_frame"):
        write_csv(res.robustness_frame(), folder / "robustness.csv")
    if getattr(res, "prepost_r", None) is not None:
        write_csv(res.prepost_r, folder / "prepost_r_sensitivity.csv")
    both = [*res.runs, *getattr(res, "updated", ())]
    loo = [r.leave_one_out.assign(analysis_id=r.analysis.analysis_id, set=r.evidence) for r in both if r.leave_one_out is not None]
    if loo:
        df = pd.concat(loo, ignore_index=True)
        df = df[["set", "analysis_id"] + [c for c in df.columns if c not in ("set", "analysis_id")]]
        write_csv(df, folder / "leave_one_out.csv")
    aside = [
        r.set_aside.assign(analysis_id=r.analysis.analysis_id, set=r.evidence)[
            ["set", "analysis_id", "outcomes_row", "study_id", "cohort_id", "outcome", "route", "reason"]]
        for r in both
        if len(r.set_aside)
    ]
    if getattr(res, "cumulative", None) is not None:
        write_csv(res.cumulative, folder / "cumulative.csv")
    if aside:
        write_csv(pd.concat(aside, ignore_index=True), folder / "set_aside.csv")
    write_csv(res.claims, folder / "claims.csv")
    from meta.review.running.dependent import frame as dependent_frame

    write_csv(dependent_frame(both), folder / "dependent.csv")
    if res.coverage is not None:
        write_csv(res.coverage, folder / "coverage.csv", index=True)


# --------------------------------------------------------------------------- inputs/ snapshot


def read_inputs(data_dir: str | os.PathLike) -> dict[str, bytes]:
    """The bytes of the data files a run reads (:data:`meta.review.outputs.diff.INPUT_KEYS`: studies, outcomes,
    analyses, review_claims, published_pooled, vocabulary), read once, before the run loads them.

    A file the folder does not have (``published_pooled.csv`` is optional) is left out.
    Raises ``OSError`` naming the file when one cannot be read.
    """
    from meta.review.outputs.diff import INPUT_KEYS

    folder = Path(data_dir)
    out: dict[str, bytes] = {}
    for name in INPUT_KEYS:
        path = folder / name
        if path.is_file():
            out[name] = path.read_bytes()
    return out


def write_inputs(inputs: dict[str, bytes], results: str | os.PathLike) -> list[Path]:
    """Write ``inputs`` (:func:`read_inputs`) into ``<results>/inputs/``; the paths written.

    Two copies of each file, because the folder users open is not the one ``meta diff`` reads:

    * ``inputs/<name>.csv`` -- the rows as a spreadsheet may open them: every cell a spreadsheet
      would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR; numbers and lone signs excepted)
      gets a leading ``'`` (:func:`meta.review.outputs.csvsafe.safe_cell`), as in every other CSV
      of the results folder;
    * ``inputs/exact/<name>.csv.bytes`` -- the file byte for byte (no spreadsheet opens ``.bytes``
      by default), which ``meta diff`` compares row by row, so a results folder always says
      exactly which data produced it.
    """
    import csv
    import io

    from meta.review.outputs.csvsafe import safe_row
    from meta.review.outputs.diff import EXACT_DIR, EXACT_SUFFIX, INPUTS_DIR

    folder = Path(results) / INPUTS_DIR
    exact = Path(results) / EXACT_DIR
    exact.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in inputs.items():
        path = exact / (name + EXACT_SUFFIX)
        path.write_bytes(data)
        written.append(path)
        buf = io.StringIO(newline="")
        try:  # row by row, so the file is never held as one list of rows
            rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
            csv.writer(buf, lineterminator="\n").writerows(map(safe_row, rows))
        except (UnicodeDecodeError, csv.Error):  # validation refuses such files before a run gets here
            continue
        safe = folder / name
        safe.write_text(buf.getvalue(), encoding="utf-8", newline="")
        written.append(safe)
    return written
