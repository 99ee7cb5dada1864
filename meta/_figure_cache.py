"""Figure files kept between runs, keyed by the plotting call or by its SVG drawing.

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
Sealing, atomic writes and pruning are :mod:`meta._cache_files`, which the run
cache of ``meta reproduce`` (:mod:`meta.review.run_cache`) shares.

One level up, :func:`meta.plots.draw_and_save` skips drawing altogether for a
plotting call made before: its files are kept under a key of the call itself
(:func:`drawing_key`), made of

* the function (module and name) and every argument, fed value by value
  (numbers by their bits, strings, arrays by dtype, shape and bytes, data frames
  column by column with their index and dtypes, dataclasses such as
  ``PoolResult`` field by field, other objects of ``meta``'s own classes
  attribute by attribute); an argument of any other type makes the call
  uncacheable, and it is drawn;
* the source of every module of the ``meta`` package (a changed plotting or
  formatting line is a new key), the file name (it salts the SVG ids), formats
  and dpi;
* the rcParams :mod:`meta.plots.style` draws under, the fonts matplotlib can
  find (file, size, modification time) and the versions of Python, numpy,
  pandas, scipy, matplotlib, FreeType, Pillow, fontTools and kiwisolver.

Only functions of the ``meta`` package are cached this way (their code is in
the key); a function of your own passed to ``draw_and_save`` is drawn every
time. A call that warns is never cached, so its warnings come every time. The
source is read once per process: after editing ``meta``'s own files (or
patching its modules at run time) restart the interpreter or set
``META_FIGURE_CACHE=0``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import os
import struct
import sys
from pathlib import PurePath

import matplotlib
import numpy as np

from meta import _cache_files

FORMATS = ("png", "pdf")
MAX_FILES = 600
_FORMAT = 2  # bump when what a key covers changes (2: files sealed with length and hash)
_DRAWING_FORMAT = 2  # bump when what a drawing key covers changes (2: files sealed)


def enabled() -> bool:
    return _cache_files.switched_on("META_FIGURE_CACHE")


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
    """The cached file, verified against the length and SHA-256 recorded when it was written.

    A damaged file (truncated, corrupt, edited) is removed with a one-line ``RuntimeWarning`` and
    reported as a miss, so the figure is drawn again and the cache entry replaced: a cache hit is
    always the bytes of a fresh rendering.
    """
    path = os.path.join(_folder(), f"{k}.{fmt}")
    try:
        with open(path, "rb") as fh:
            blob = fh.read()
    except OSError:
        return None
    data = _cache_files.unseal(blob)
    if data is None:
        import warnings

        warnings.warn(f"figure cache: {path} was damaged ({len(blob)} bytes, content does not match the hash "
                      "recorded when it was written); the figure is drawn again and the file replaced",
                      RuntimeWarning, stacklevel=2)
        try:
            os.remove(path)
        except OSError:
            pass
    return None if data is None else bytes(data)


def put(k: str, fmt: str, data: bytes) -> None:
    """Store ``data`` sealed with its length and SHA-256 (:func:`get` verifies both), atomically; a
    folder that cannot be written (a full disk) leaves nothing behind (:func:`meta._cache_files.store`)."""
    _cache_files.store(_folder(), f"{k}.{fmt}", (data,), MAX_FILES)


# --------------------------------------------------------------------------- a plotting call's key


class Uncacheable(TypeError):
    """An argument :func:`drawing_key` cannot feed by value (the call is drawn, not cached)."""


def _feed(h, obj) -> None:
    """Feed ``obj`` into hash ``h`` by value, each item tagged with its type and length, so that
    different values (0 and 0.0, -0.0 and 0.0, a tuple and a list, "ab","c" and "a","bc") never
    share their bytes.  Raises :class:`Uncacheable` for a type it does not know."""
    import pandas as pd

    if obj is None:
        h.update(b"N")
    elif obj is pd.NA:
        h.update(b"A")
    elif obj is pd.NaT:
        h.update(b"Z")
    elif isinstance(obj, np.generic):  # before float/int: np.float64 is a float
        a = np.asarray(obj)
        h.update(b"g%s:" % a.dtype.str.encode())
        if a.dtype == object:
            raise Uncacheable(type(obj).__name__)
        h.update(a.tobytes())
    elif isinstance(obj, bool):
        h.update(b"T" if obj else b"F")
    elif isinstance(obj, int):
        h.update(b"i%d;" % obj)
    elif isinstance(obj, float):
        h.update(b"f" + struct.pack("<d", obj))
    elif isinstance(obj, str):
        b = obj.encode("utf-8", "surrogatepass")
        h.update(b"s%d:" % len(b) + b)
    elif isinstance(obj, bytes):
        h.update(b"b%d:" % len(obj) + obj)
    elif isinstance(obj, enum.Enum):
        _feed(h, (type(obj).__module__, type(obj).__qualname__, obj.name))
    elif isinstance(obj, PurePath):
        _feed(h, ("path", str(obj)))
    elif isinstance(obj, (tuple, list)):
        h.update(b"(%d:" % len(obj) if isinstance(obj, tuple) else b"[%d:" % len(obj))
        for x in obj:
            _feed(h, x)
    elif isinstance(obj, dict):
        h.update(b"{%d:" % len(obj))
        for k, v in obj.items():  # in order: a legend or a column order may follow it
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            h.update(b"O%s:" % repr(obj.shape).encode())
            for x in obj.ravel(order="C"):
                _feed(h, x)
        elif obj.dtype.kind in "biufcSUmM?":  # dtype.str names the unit of datetimes and timedeltas
            h.update(b"a%s%s:" % (obj.dtype.str.encode(), repr(obj.shape).encode()))
            h.update(np.ascontiguousarray(obj).tobytes())
        else:  # structured arrays (may hold objects) and the like
            raise Uncacheable(f"array of {obj.dtype}")
    elif isinstance(obj, pd.DataFrame):
        h.update(b"D%d:" % obj.shape[1])
        _feed(h, obj.index)
        _feed(h, dict(obj.attrs))
        for j in range(obj.shape[1]):
            _feed(h, obj.iloc[:, j])
    elif isinstance(obj, pd.Series):
        h.update(b"S")
        _feed(h, obj.name)
        _feed(h, str(obj.dtype))
        if isinstance(obj.dtype, pd.CategoricalDtype):  # the order of the categories is not in str(dtype)
            _feed(h, (obj.dtype.categories.to_numpy(), bool(obj.dtype.ordered)))
        _feed(h, obj.index)
        _feed(h, obj.to_numpy())
    elif isinstance(obj, pd.Index):
        h.update(b"I")
        _feed(h, type(obj).__name__)
        _feed(h, str(obj.dtype))
        _feed(h, list(obj.names))
        _feed(h, obj.to_numpy())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _feed(h, ("dataclass", type(obj).__module__, type(obj).__qualname__))
        for f in dataclasses.fields(obj):
            _feed(h, f.name)
            _feed(h, getattr(obj, f.name))
    elif type(obj).__module__.split(".")[0] == "meta" and hasattr(obj, "__dict__") and not callable(obj):
        # one of our own classes (e.g. meta.bayes' posterior): attribute by attribute; its code is in the key
        _feed(h, ("object", type(obj).__module__, type(obj).__qualname__))
        _feed(h, dict(sorted(vars(obj).items())))
    else:
        raise Uncacheable(type(obj).__name__)


@functools.lru_cache(maxsize=1)
def _environment() -> bytes:
    """What every drawing key shares in one process: the package's source, the style, the fonts
    and the versions (see the module docstring)."""
    from importlib import metadata

    from matplotlib import font_manager

    from meta.plots.style import _style_items

    h = hashlib.sha256()
    _cache_files.feed_source(h)

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    import pandas as pd

    _feed(h, (sys.version, np.__version__, pd.__version__, version("scipy"), version("kiwisolver"), _versions()))
    h.update(repr(_style_items()).encode())
    fm = font_manager.fontManager
    fonts = []
    for f in sorted(fm.ttflist + fm.afmlist, key=lambda f: (str(f.fname), f.name, f.style, str(f.weight))):
        try:
            st = os.stat(f.fname)
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        fonts.append((str(f.fname), f.name, f.style, f.variant, str(f.weight), str(f.stretch), stamp))
    h.update(repr(fonts).encode())
    return h.digest()


def drawing_key(builder, args, kwargs, name: str, formats, dpi) -> str | None:
    """The key of the files ``builder(*args, **kwargs)`` saves as ``name.<format>`` at ``dpi``
    (see the module docstring), or None: ``builder`` is not a function of the ``meta``
    package (its code would not be in the key), an argument cannot be fed by value, or
    the package's source cannot be read."""
    module = getattr(builder, "__module__", None) or ""
    if module != "meta" and not module.startswith("meta."):
        return None  # code outside the package is not in the key: a user's own function is drawn every time
    h = hashlib.sha256()
    h.update(b"drawing%d:" % _DRAWING_FORMAT)
    try:
        h.update(_environment())
    except OSError:
        return None
    try:
        _feed(h, (getattr(builder, "__module__", "?"), getattr(builder, "__qualname__", repr(builder))))
        _feed(h, tuple(args))
        _feed(h, dict(kwargs))
        _feed(h, (name, tuple(formats), int(dpi)))
    except (Uncacheable, RecursionError):
        return None
    return "d-" + h.hexdigest()
