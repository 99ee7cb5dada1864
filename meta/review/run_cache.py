"""Whole runs of ``meta reproduce`` kept between runs: the same inputs, code and libraries give the stored outputs.

A warm ``meta reproduce`` on an unchanged data folder computes what the run before it
computed. :func:`reproduce` therefore looks the run up first, under a key (:func:`run_key`,
SHA-256) made of

* every file of the data folder (its path inside the folder and its bytes), and the
  data folder as given (``--data``);
* the source of every module of the ``meta`` package (:func:`meta._cache_files.feed_source`,
  as the figure cache);
* the options of the run (formats, dpi, HTML report);
* the versions of Python and of the libraries a run uses (numpy, scipy, pandas,
  matplotlib, numba, llvmlite, Pillow, fontTools, kiwisolver, contourpy, pyparsing), read
  from their ``*.dist-info`` folders without importing them; the machine's architecture
  and CPU flags (numpy picks its SIMD kernels by them);
* matplotlib's font list (``fontlist-*.json`` in its cache folder) and each listed font
  file's size and modification time, which decide the glyphs of every figure;
* the environment variables that can change a number: ``NUMBA_*`` (JIT on or off),
  ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` (the order of BLAS
  sums), and ``SOURCE_DATE_EPOCH`` (dates matplotlib writes into PDF files).

Not in the key, because no output depends on it: ``--out`` (no output file names its
folder; the tests compare a cached run into another folder byte for byte), ``MPLBACKEND``
(figures are saved by format, whatever the backend) and the user's ``matplotlibrc``
(:mod:`meta.plots.style` draws under matplotlib's defaults).

**Miss**: the run goes as without a cache (:func:`meta.review.reproduce.reproduce`); just before
its results folder is swapped into place, every file of it is read, and after the swap they
are stored with the lines the run printed and its summary, as one sealed file
``<key>.run`` (:func:`meta._cache_files.store`: the whole entry sealed with its length and
SHA-256, and each output file's length and SHA-256 in its header). Nothing is stored when
the run showed a warning (its warnings then come every time), when the key read again after
the run differs (a data or source file changed during the run), or when the outputs exceed
:data:`MAX_BYTES`.

**Hit**: the entry and every file in it are verified; the results folder is written with
the same rules as a full run (:mod:`meta.review.outputs.results_folder`: refusals, lock,
temporary folder, atomic swap, marker and manifest; a user's own file is never deleted or
overwritten), and the lines the run printed are given to ``progress`` again. Neither pandas,
scipy, matplotlib nor numba is imported. A damaged entry (truncated, edited, unreadable) is
reported through ``log``, removed, and the run goes in full: a hit never gives other bytes
than the full run that stored it.

Entries live in ``meta-runs`` beside the figure cache in matplotlib's cache folder
(``META_RUN_CACHE_DIR`` names another folder), at most :data:`MAX_RUNS` of them (oldest removed
first). ``META_RUN_CACHE=0`` turns the run cache off, and so does ``META_FIGURE_CACHE=0`` (a user
who asks for every figure to be drawn gets a full run); ``meta reproduce --no-cache`` turns off
both for one run. The package source is read when the run starts: code patched at run time
(tests monkeypatching ``meta``) is not in the key; turn the cache off there.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import warnings
from pathlib import Path
from typing import Callable

from meta import _cache_files
from meta.review.outputs.results_folder import MANIFEST, MARKER, ResultsFolder, prepare

__all__ = ["Outcome", "enabled", "folder", "run_key", "reproduce", "MAX_RUNS", "MAX_BYTES"]

SWITCH = "META_RUN_CACHE"
FOLDER_VARIABLE = "META_RUN_CACHE_DIR"
#: entries kept (each holds a whole results folder: ~5 MB for the bundled data)
MAX_RUNS = 8
#: a run whose outputs are larger than this is not stored
MAX_BYTES = 512 * 2**20
#: the libraries whose versions are in the key (distribution names)
LIBRARIES = ("numpy", "scipy", "pandas", "matplotlib", "numba", "llvmlite", "pillow", "fonttools", "kiwisolver",
             "contourpy", "pyparsing")
#: environment variables in the key (besides every NUMBA_* variable)
ENVIRONMENT = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SOURCE_DATE_EPOCH")
_FORMAT = 1  # bump when what a key or an entry holds changes


class Outcome:
    """What :func:`reproduce` did: ``summary`` (the run's one-line summary without its time),
    ``from_cache`` (True: the outputs were copied from ``entry``), ``entry`` (the cache file
    read or written, else None) and ``result`` (the ``ReproduceResult`` of a full run; None on a hit)."""

    __slots__ = ("summary", "from_cache", "entry", "result")

    def __init__(self, summary: str, from_cache: bool, entry: Path | None, result=None):
        self.summary, self.from_cache, self.entry, self.result = summary, from_cache, entry, result


def enabled() -> bool:
    """``META_RUN_CACHE`` and ``META_FIGURE_CACHE`` both on (the default)."""
    return _cache_files.switched_on(SWITCH) and _cache_files.switched_on("META_FIGURE_CACHE")


def folder() -> Path | None:
    """Where entries live: ``META_RUN_CACHE_DIR``, else ``meta-runs`` in matplotlib's cache folder
    (None where matplotlib has no lasting one)."""
    given = os.environ.get(FOLDER_VARIABLE)
    if given:
        return Path(given)
    mpl = _cache_files.matplotlib_cache_dir()
    return None if mpl is None else mpl / "meta-runs"


def _feed(h, name: str, data: bytes) -> None:
    b = name.encode("utf-8", "surrogatepass")
    h.update(b"s%d:" % len(b) + b + b"b%d:" % len(data))
    h.update(data)


def _fonts(h) -> bool:
    """Feed matplotlib's font list and each listed font file's size and modification time; False
    when matplotlib has no lasting cache folder (its font list is then rebuilt in every process)."""
    mpl = _cache_files.matplotlib_cache_dir()
    if mpl is None:
        return False
    for p in sorted(mpl.glob("fontlist-*.json")):
        blob = p.read_bytes()
        _feed(h, p.name, blob)
        try:
            listed = json.loads(blob)
        except ValueError:
            continue
        names = [f.get("fname") for key in ("ttflist", "afmlist") for f in listed.get(key, ()) if isinstance(f, dict)]
        for name in sorted({n for n in names if isinstance(n, str)}):
            try:
                st = os.stat(name)
                stamp = (st.st_size, st.st_mtime_ns)
            except OSError:  # matplotlib's own fonts are listed relative to its data folder: in its version
                stamp = None
            h.update(repr((name, stamp)).encode("utf-8", "surrogatepass"))
    return True


def _cpu() -> tuple:
    machine = os.uname().machine if hasattr(os, "uname") else os.environ.get("PROCESSOR_ARCHITECTURE", "?")
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags = " ".join(sorted(line.split(":", 1)[1].split()))
                    break
    except OSError:
        pass
    return machine, flags


def run_key(data_dir: str | os.PathLike, options: dict) -> str | None:
    """The key of a run of ``data_dir`` with ``options`` (see the module docstring); None when
    matplotlib has no lasting cache folder. Raises ``OSError`` when a file cannot be read."""
    h = hashlib.sha256()
    h.update(b"meta-run%d:" % _FORMAT)
    root = Path(data_dir)
    files = []
    for base, dirs, names in os.walk(root):
        dirs.sort()
        files.extend(Path(base, n) for n in names)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    h.update(repr(("data", os.fspath(data_dir), len(files))).encode("utf-8", "surrogatepass"))
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        _feed(h, p.relative_to(root).as_posix(), p.read_bytes())
    _cache_files.feed_source(h)
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("NUMBA_") or k in ENVIRONMENT)
    h.update(repr((sys.version, sys.implementation.name, sys.byteorder, _cpu(), _cache_files.installed_versions(LIBRARIES),
                   env, sorted(options.items()))).encode("utf-8", "surrogatepass"))
    if not _fonts(h):
        return None
    return h.hexdigest()


class _Damaged(Exception):
    """A cache entry that does not verify."""


def _read_entry(path: Path, key: str):
    """``(header, [(path, bytes view), ...])`` of a verified entry; None if there is none; raises
    :class:`_Damaged` when it is truncated, altered or not the entry of ``key``."""
    try:
        with open(path, "rb") as fh:
            blob = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise _Damaged(f"cannot be read ({e.strerror or e})") from None
    body = _cache_files.unseal(blob)
    if body is None:
        raise _Damaged(f"was damaged ({len(blob)} bytes, content does not match the hash recorded when it was written)")
    try:
        (n,) = struct.unpack("<Q", body[:8])
        header = json.loads(bytes(body[8:8 + n]).decode("utf-8"))
        if header.get("format") != _FORMAT or header.get("key") != key:
            raise _Damaged("was damaged (it is not the entry of this run)")
        offset, files = 8 + n, []
        for rel, size, digest in header["files"]:
            parts = Path(rel).parts
            if Path(rel).is_absolute() or ".." in parts or not parts:
                raise _Damaged(f"was damaged (it names a file outside the results folder ({rel!r}))")
            data = body[offset:offset + size]
            if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                raise _Damaged(f"was damaged ({rel} does not match its recorded length and SHA-256)")
            files.append((rel, data))
            offset += size
        if offset != len(body):
            raise _Damaged("was damaged (it holds bytes after its last file)")
        for d in header["dirs"]:
            if Path(d).is_absolute() or ".." in Path(d).parts:
                raise _Damaged(f"was damaged (it names a folder outside the results folder ({d!r}))")
        header["lines"], header["summary"] = list(map(str, header["lines"])), str(header["summary"])
    except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as e:
        raise _Damaged(f"was damaged (its header cannot be read ({e}))") from None
    return header, files


def _collect(tmp: Path, into: dict) -> None:
    """Read every file of the finished results folder ``tmp`` (except the marker and the manifest,
    which the results folder writes itself) into ``into``; nothing when it exceeds :data:`MAX_BYTES`
    or cannot be read (the run itself goes on: the cache only makes it faster next time)."""
    try:
        _read_tree(tmp, into)
    except OSError:
        into.clear()


def _read_tree(tmp: Path, into: dict) -> None:
    dirs, files, total = [], [], 0
    for base, subdirs, names in os.walk(tmp):
        subdirs.sort()
        rel_base = Path(base).relative_to(tmp)
        dirs.extend((rel_base / d).as_posix() for d in subdirs)
        for n in sorted(names):
            rel = (rel_base / n).as_posix()
            if rel in (MARKER, MANIFEST):
                continue
            if os.path.islink(os.path.join(base, n)):
                return  # not a plain file: such a run is not stored
            data = Path(base, n).read_bytes()
            total += len(data)
            if total > MAX_BYTES:
                return
            files.append((rel, data))
    into["dirs"], into["files"] = dirs, files


def _store(path: Path, key: str, collected: dict, lines: list[str], summary: str) -> bool:
    header = {
        "format": _FORMAT,
        "key": key,
        "dirs": collected["dirs"],
        "files": [[rel, len(data), hashlib.sha256(data).hexdigest()] for rel, data in collected["files"]],
        "lines": lines,
        "summary": summary,
    }
    head = json.dumps(header).encode("ascii")  # \u escapes keep any text, lone surrogates included
    chunks = [struct.pack("<Q", len(head)), head, *(data for _, data in collected["files"])]
    return _cache_files.store(path.parent, path.name, chunks, MAX_RUNS)


def _same_cache_folder() -> bool:
    """matplotlib (imported by a full run) uses the cache folder :func:`folder` derived without it."""
    mpl = sys.modules.get("matplotlib")
    if os.environ.get(FOLDER_VARIABLE) or mpl is None:
        return True
    try:
        return Path(mpl.get_cachedir()).resolve() == _cache_files.matplotlib_cache_dir()
    except (OSError, RuntimeError):
        return False


def reproduce(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    formats: tuple[str, ...] = ("png", "svg", "pdf"),
    dpi: int = 300,
    html: bool = True,
    progress: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
    use_cache: bool = True,
) -> Outcome:
    """:func:`meta.review.reproduce.reproduce` into ``out_dir``, or its stored outputs when the same run
    was made before (see the module docstring). ``progress`` gets the lines of the analyses (replayed on
    a hit), ``log`` the lines about the results folder and the cache. ``use_cache=False`` (or
    :func:`enabled` False): neither read nor write the run cache. Raises what the full run raises
    (``OutputRefused`` on a hit too)."""
    say = progress if callable(progress) else (lambda msg: None)
    note = log if callable(log) else say
    options = {"formats": tuple(formats), "dpi": int(dpi), "html": bool(html)}
    place, key = (folder() if use_cache and enabled() else None), None
    if place is not None:
        try:
            key = run_key(data_dir, options)
        except OSError:  # an unreadable data folder: the full run says which file
            key = None
    entry = place / f"{key}.run" if key is not None else None
    if entry is not None:
        try:
            found = _read_entry(entry, key)
        except _Damaged as e:
            note(f"run cache: {entry} {e}; every analysis runs again and the entry is replaced")
            try:
                os.remove(entry)
            except OSError:
                pass
            found = None
        if found is not None:
            header, files = found
            prepare(out_dir, data_dir, log=note)
            for line in header["lines"]:
                say(line)
            with ResultsFolder(out_dir, data_dir=data_dir, log=note) as results:
                for d in header["dirs"]:
                    (results.tmp / d).mkdir(parents=True, exist_ok=True)
                for rel, data in files:
                    target = results.tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                results.commit()
            try:
                os.utime(entry)  # recently used: pruned last
            except OSError:
                pass
            return Outcome(header["summary"], True, entry)
    return _full_run(data_dir, out_dir, options, say, note, entry, key)


def _full_run(data_dir, out_dir, options, say, note, entry, key) -> Outcome:
    from meta.review.reproduce import reproduce as full

    lines: list[str] = []
    collected: dict = {}
    shown: list[int] = []

    def record(msg: str) -> None:
        lines.append(msg)
        say(msg)

    original = warnings.showwarning

    def seen(*args, **kwargs):  # a run that shows a warning is not stored: its warnings come every time
        shown.append(1)
        return original(*args, **kwargs)

    warnings.showwarning = seen
    try:
        res = full(data_dir, out_dir, **options, progress=record, log=note,
                   collect=(lambda tmp: _collect(tmp, collected)) if entry is not None else None)
    finally:
        if warnings.showwarning is seen:
            warnings.showwarning = original
    summary = res.summary().rsplit(";", 1)[0]
    stored = None
    if entry is not None and collected and not shown and _same_cache_folder():
        try:
            again = run_key(data_dir, options)
        except OSError:
            again = None
        try:
            if again == key and _store(entry, key, collected, lines, summary):
                stored = entry
        except (ValueError, MemoryError):  # a header json cannot encode: the run is not stored
            stored = None
    return Outcome(summary, False, stored, res)
