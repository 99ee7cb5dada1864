"""PNG and PDF files of a figure kept between runs, keyed by its SVG drawing.

A warm ``meta reproduce`` draws the same figures as the run before; rendering
them at 300 dpi (PNG) and with embedded fonts (PDF) was most of its time.
:func:`meta.plots.save` therefore draws the SVG first (the cheapest of the three,
and wanted anyway), and looks the PNG and PDF up under a key made of

* the SVG bytes: every path, text outline (``svg.fonttype: path``), colour,
  line width and embedded image, so any change of data, labels, fonts or layout
  gives a new key;
* what the SVG does not show but a raster can: each artist's antialiasing,
  snapping and sketch settings (a figure with an ``agg_filter`` is never cached);
* the format, dpi, the save options of :mod:`meta.plots` and the versions of
  matplotlib, FreeType, Pillow and fontTools.

A hit returns the bytes written the first time (the tests check they equal a
fresh rendering).  The files live in matplotlib's cache folder
(``matplotlib.get_cachedir()``, where its font list is), at most
:data:`MAX_FILES` of them (oldest removed first); set ``META_FIGURE_CACHE=0`` to
render every time.  A cache folder that cannot be written only makes it slower.
"""

from __future__ import annotations

import hashlib
import os
import threading

import matplotlib

FORMATS = ("png", "pdf")
MAX_FILES = 400
_FORMAT = 1  # bump when what a key covers changes


def enabled() -> bool:
    return os.environ.get("META_FIGURE_CACHE", "1").strip().lower() not in ("0", "off", "no", "false")


def _folder() -> str:
    return os.path.join(matplotlib.get_cachedir(), "meta-figures")


def _versions() -> tuple:
    import fontTools
    import PIL
    from matplotlib import ft2font

    return (matplotlib.__version__, ft2font.__freetype_version__, PIL.__version__, fontTools.version)


def _raster_state(fig):
    """Per-artist settings that change a PNG but not the SVG; None if the figure cannot be cached."""
    state = []
    for a in fig.findobj():
        if a.get_agg_filter() is not None:
            return None
        aa = a.get_antialiased() if hasattr(a, "get_antialiased") else None
        if hasattr(aa, "tolist"):
            aa = aa.tolist()
        state.append((type(a).__name__, aa, a.get_snap(), a.get_rasterized(), a.get_sketch_params()))
    return state


def key(fig, svg: bytes, dpi: int, options) -> str | None:
    """The cache key of ``fig`` drawn as ``svg`` (see the module docstring), or None."""
    state = _raster_state(fig)
    if state is None:
        return None
    h = hashlib.sha256()
    h.update(repr((_FORMAT, dpi, options, _versions(), state)).encode())
    h.update(svg)
    return h.hexdigest()


def get(k: str, fmt: str) -> bytes | None:
    try:
        with open(os.path.join(_folder(), f"{k}.{fmt}"), "rb") as fh:
            return fh.read()
    except OSError:
        return None


def put(k: str, fmt: str, data: bytes) -> None:
    folder = _folder()
    try:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{k}.{fmt}")
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        _prune(folder)
    except OSError:
        pass


def _prune(folder: str) -> None:
    names = [n for n in os.listdir(folder) if not n.endswith(".tmp")]
    if len(names) <= MAX_FILES:
        return
    paths = sorted((os.path.join(folder, n) for n in names), key=lambda p: os.stat(p).st_mtime)
    for p in paths[: len(paths) - MAX_FILES // 2]:
        try:
            os.remove(p)
        except OSError:
            pass
