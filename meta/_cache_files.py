"""Files kept between runs: where they live, how each is sealed and checked, and the key material they share.

Two caches use this module: :mod:`meta._figure_cache` (figure files) and
:mod:`meta.review.run_cache` (whole runs of ``meta reproduce``). It imports neither numpy
nor matplotlib, so a cache hit that needs neither does not pay for them:

* :func:`seal` / :func:`unseal`: every cached file ends with a tag, the length of its
  content and the content's SHA-256; a truncated, padded or edited file unseals to None;
* :func:`store`: write a sealed file atomically (a temporary file, then ``os.replace``) and
  :func:`prune` the folder to a number of files (oldest first);
* :func:`matplotlib_cache_dir`: the folder ``matplotlib.get_cachedir()`` returns, found by
  the same rules without importing matplotlib (``MPLCONFIGDIR``; ``$XDG_CACHE_HOME`` or
  ``~/.cache`` + ``matplotlib`` on Linux; ``~/.matplotlib`` on macOS; ``%LOCALAPPDATA%``
  on Windows), or None where matplotlib would fall back to a temporary folder;
* :func:`feed_source`: the source of every module of the ``meta`` package (a changed
  line of code is a new key);
* :func:`installed_versions`: versions of installed distributions read from their
  ``*.dist-info`` folder names on ``sys.path`` (what :mod:`importlib.metadata` reads,
  without its 50-70 ms of imports);
* :func:`switched_on`: the ``META_*_CACHE`` environment switches (``0``, ``off``, ``no``,
  ``false`` turn a cache off).
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import threading
from pathlib import Path

#: every sealed file ends with this tag, its content's length (8 bytes) and SHA-256 (32 bytes)
TRAILER = b"meta-figure-cache-v1"
TRAILER_SIZE = len(TRAILER) + 8 + 32
#: the ``meta`` package folder (its source is key material)
PACKAGE = Path(__file__).resolve().parent


def switched_on(variable: str) -> bool:
    """False when the environment variable says ``0``, ``off``, ``no`` or ``false``; True otherwise."""
    return os.environ.get(variable, "1").strip().lower() not in ("0", "off", "no", "false")


def trailer(data) -> bytes:
    """The seal of ``data`` (bytes or a memoryview): tag, length, SHA-256."""
    return TRAILER + struct.pack("<Q", len(data)) + hashlib.sha256(data).digest()


def seal(data: bytes) -> bytes:
    return data + trailer(data)


def unseal(blob) -> memoryview | None:
    """The content of a sealed file (a view into ``blob``), or None when it is truncated, padded or altered."""
    view = memoryview(blob)
    if len(view) < TRAILER_SIZE:
        return None
    body, tag = view[:-TRAILER_SIZE], bytes(view[-TRAILER_SIZE:])
    if not tag.startswith(TRAILER) or struct.unpack("<Q", tag[len(TRAILER):len(TRAILER) + 8])[0] != len(body):
        return None
    return body if hashlib.sha256(body).digest() == tag[-32:] else None


def store(folder: str | os.PathLike, name: str, chunks, max_files: int) -> bool:
    """Write the concatenated ``chunks`` sealed (:func:`seal`) as ``folder/name``, atomically, then
    :func:`prune` ``folder`` to ``max_files``. False, leaving nothing behind (a temporary file is
    removed on every error path, e.g. a full disk), when the folder cannot be written."""
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        h = hashlib.sha256()
        size = 0
        with open(tmp, "wb") as fh:
            for c in chunks:
                fh.write(c)
                h.update(c)
                size += len(c)
            fh.write(TRAILER + struct.pack("<Q", size) + h.digest())
        os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        tmp = None
        prune(folder, max_files)
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass


def prune(folder: str | os.PathLike, max_files: int) -> None:
    """Above ``max_files`` files, remove the oldest (by modification time) down to half of it."""
    names = [n for n in os.listdir(folder) if not n.endswith(".tmp")]
    if len(names) <= max_files:
        return
    paths = sorted((os.path.join(folder, n) for n in names), key=lambda p: os.stat(p).st_mtime)
    for p in paths[: len(paths) - max_files // 2]:
        try:
            os.remove(p)
        except OSError:
            pass


def matplotlib_cache_dir() -> Path | None:
    """``matplotlib.get_cachedir()`` by matplotlib's own rules, without importing it; None where matplotlib
    would use a temporary folder (no home, or the folder is not writable)."""
    try:
        given = os.environ.get("MPLCONFIGDIR")
        if given:
            folder = Path(given)
        elif sys.platform.startswith(("linux", "freebsd")):
            folder = Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "matplotlib")
        elif sys.platform == "win32":
            old = Path.home() / ".matplotlib"
            local = os.environ.get("LOCALAPPDATA")
            folder = old if old.is_dir() or not local else Path(local) / "matplotlib"
        else:
            folder = Path.home() / ".matplotlib"
        folder = folder.resolve()
    except (RuntimeError, OSError):  # no home folder
        return None
    return folder if folder.is_dir() and os.access(folder, os.W_OK) else None


def feed_source(h) -> None:
    """Feed every ``*.py`` file of the ``meta`` package into hash ``h``: its path inside the package and
    its bytes, each tagged with its length (the encoding :func:`meta._figure_cache._feed` gives the
    pair ``(path, bytes)``). Raises ``OSError`` when a file cannot be read."""
    for p in sorted(PACKAGE.rglob("*.py")):
        name = str(p.relative_to(PACKAGE)).encode("utf-8", "surrogatepass")
        data = p.read_bytes()
        h.update(b"(2:" + b"s%d:" % len(name) + name + b"b%d:" % len(data))
        h.update(data)


def _normalised(name: str) -> str:
    return name.replace("-", "_").replace(".", "_").lower()


def installed_versions(names) -> tuple:
    """``(name, version)`` of each distribution, from the first ``<name>-<version>.dist-info`` (or
    ``.egg-info``) folder on ``sys.path``, the order imports search; ``"?"`` when none is found."""
    want = {_normalised(n) for n in names}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            listing = os.listdir(entry or ".")
        except OSError:
            continue
        for f in listing:
            if f.endswith((".dist-info", ".egg-info")):
                name, _, version = f.rsplit(".", 1)[0].partition("-")
                n = _normalised(name)
                if n in want and n not in found:
                    found[n] = version
    return tuple((n, found.get(_normalised(n), "?")) for n in names)
