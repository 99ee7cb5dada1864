"""One fixed matplotlib style for :mod:`meta.plots`, whatever the user's matplotlibrc says.

matplotlib reads ``matplotlibrc`` from the working folder, ``$MATPLOTLIBRC`` or
the user's config folder, and a user's ``savefig.bbox: tight``, serif font,
``lines.linewidth`` or ``axes.formatter.use_locale`` would otherwise change our
forest and funnel plots (their size, fonts and numbers). :func:`fixed_style`
draws and saves under :func:`style`: matplotlib's own defaults
(``matplotlib.rcParamsDefault``, the shipped matplotlibrc) plus the few settings
below, inside :func:`matplotlib.rc_context`, so the user's rcParams are back
in force when our function returns.

Settings that are not about how a figure looks (backend, interactive mode,
toolbar, web agg, ``savefig.directory``, ...) are left as the user has them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
import warnings

import matplotlib

__all__ = ["OUR_RC", "style", "fixed_style", "light_pdf_fonts"]

#: our settings on top of matplotlib's defaults (most restate a default, so that nobody's rc file can change them)
OUR_RC = {
    "font.family": ["sans-serif"],
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: the same font on every machine
    "axes.formatter.use_locale": False,  # tick labels 0.5, never 0,5, whatever the locale
    "axes.unicode_minus": True,
    "savefig.bbox": None,  # figures keep their own size (a 17 cm forest plot prints at 17 cm)
    "savefig.pad_inches": 0.1,
    "savefig.transparent": False,
    "text.usetex": False,
    "pdf.fonttype": 42,  # TrueType in PDF/PS: text stays editable
    "ps.fonttype": 42,
    "svg.fonttype": "path",
    # glyph advances unhinted: a text's width is then the same at every resolution (within 0.3 %), so the
    # widths the layout measures (meta.plots.layout, at 600 dpi) hold in a 300-dpi PNG and on screen; hinted,
    # a line measured to fit came out 2 % wider at 300 dpi (up to 7 % at 72 dpi) and ran off the figure
    "text.hinting": "no_hinting",
}

# rcParams that say how matplotlib runs, not how a figure looks: never touched
_NOT_STYLE = {"backend", "backend_fallback", "interactive", "toolbar", "timezone", "figure.max_open_warning",
              "figure.raise_window", "figure.hooks", "savefig.directory", "tk.window_focus", "docstring.hardcopy",
              "date.epoch"}


@functools.lru_cache(maxsize=1)
def _style_items() -> tuple:
    rc = {k: v for k, v in matplotlib.rcParamsDefault.items() if k not in _NOT_STYLE and not k.startswith("webagg.")}
    rc.update(OUR_RC)
    return tuple(rc.items())


def style() -> dict:
    """The rcParams our figures are drawn and saved with (a fresh dict)."""
    return dict(_style_items())


def fixed_style(fn):
    """Decorator: run ``fn`` under :func:`style` (``matplotlib.rc_context``); the caller's rcParams are restored after."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # fn's warnings (stacklevel=2 there) would name this wrapper as their place: they are recorded and
        # warned again from here once the caller's warning filters are back, so they name the caller's line
        caught: list = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with matplotlib.rc_context(rc=style()):
                    return fn(*args, **kwargs)
        finally:
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=2)

    return wrapper


# --------------------------------------------------------------------------- PDF fonts

#: OpenType layout tables left out of the font subsets embedded in PDF/PS files.  matplotlib
#: lays text out itself and writes every glyph with its position, and a PDF viewer draws an
#: embedded CIDFontType2 font from its outlines and metrics only (glyf, loca, hmtx, ...), so
#: these tables are never read; subsetting them is what made fontTools take ~80 ms per font
#: (DejaVu Sans), ~2.4 s of a warm ``meta reproduce`` (benchmarks/README.md).
LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF", "kern", "MATH", "BASE", "JSTF")

# matplotlib 3.11's own list (matplotlib/backends/_backend_pdf_ps.py, get_glyphs_subset)
_MPL_DROP = ("FFTM", "PfEd", "BDF", "meta", "MERG", "TSIV", "Zapf", "bdat", "bloc", "cidg", "fdsc", "feat", "fmtx",
             "fond", "just", "kerx", "ltag", "morx", "trak", "xref")

_PATCH_LOCK = threading.RLock()


_CACHE_FORMAT = 1  # bump when the subset options change


def _cache_file(path: str, face_index: int, glyphs: frozenset):
    """Where the subset is kept between runs: matplotlib's cache folder
    (``matplotlib.get_cachedir()``, where it keeps its font list too), under a name
    hashing everything the bytes depend on (the font file's path, size and
    modification time, the face, the glyphs, the fontTools and matplotlib versions,
    the dropped tables); None if there is no usable cache folder."""
    import hashlib
    import os

    import fontTools

    try:
        st = os.stat(path)
        folder = os.path.join(matplotlib.get_cachedir(), "meta-font-subsets")
    except OSError:
        return None
    key = repr((_CACHE_FORMAT, path, st.st_size, st.st_mtime_ns, face_index, sorted(glyphs), fontTools.version,
                matplotlib.__version__, LAYOUT_TABLES, _MPL_DROP))
    return os.path.join(folder, hashlib.sha256(key.encode()).hexdigest() + ".ttf")


@functools.lru_cache(maxsize=512)
def _subset(path: str, face_index: int, glyphs: frozenset) -> tuple[bytes, tuple]:
    """The TrueType subset of font ``path`` (face ``face_index``) holding ``glyphs``,
    as matplotlib makes it but without :data:`LAYOUT_TABLES`: its bytes and glyph
    index map.  Cached per process and on disk (:func:`_cache_file`; a warm
    ``meta reproduce`` makes no subset at all): a cached file holds the glyph map
    (JSON, after a 4-byte length) and the font bytes exactly as made."""
    import json
    import os

    cache = _cache_file(path, face_index, glyphs)
    if cache is not None:
        try:
            with open(cache, "rb") as fh:
                blob = fh.read()
            n = int.from_bytes(blob[:4], "big")
            gmap = tuple((int(a), int(b)) for a, b in json.loads(blob[4 : 4 + n]))
            return blob[4 + n :], gmap
        except (OSError, ValueError, TypeError):
            pass  # not cached yet (or unreadable): make it
    data, gmap = _make_subset(path, face_index, glyphs)
    if cache is not None:
        try:
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            head = json.dumps(gmap).encode()
            tmp = f"{cache}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(len(head).to_bytes(4, "big") + head + data)
            os.replace(tmp, cache)  # atomic: a reader sees the whole file or none
        except OSError:
            pass  # read-only cache folder: fine, only slower
    return data, gmap


def _make_subset(path: str, face_index: int, glyphs: frozenset) -> tuple[bytes, tuple]:
    """Subset with fontTools, as matplotlib's ``get_glyphs_subset`` but without :data:`LAYOUT_TABLES`."""
    from fontTools import subset

    options = subset.Options(glyph_names=True, recommended_glyphs=True, layout_features=[])
    options.drop_tables += [*_MPL_DROP, *LAYOUT_TABLES]
    options.font_number = face_index
    font = subset.load_font(path, options)
    subsetter = subset.Subsetter(options=options)
    subsetter.populate(gids=sorted(glyphs))
    subsetter.subset(font)
    fh = io.BytesIO()
    font.save(fh, reorderTables=False)
    font.close()
    return fh.getvalue(), tuple(sorted(subsetter.glyph_index_map.items()))


def _light_glyphs_subset(fontfile, glyphs):
    """Drop-in for matplotlib's ``_backend_pdf_ps.get_glyphs_subset`` (see :func:`light_pdf_fonts`)."""
    from fontTools.ttLib import TTFont
    from matplotlib.backends import _backend_pdf_ps as pdfps

    data, gmap = _subset(str(fontfile), int(getattr(fontfile, "face_index", 0)), frozenset(glyphs))
    # recalcTimestamp=False: matplotlib saves this font again, and a fresh head.modified would change every PDF
    return pdfps.SubsetResults(TTFont(io.BytesIO(data), recalcTimestamp=False), dict(gmap))._as_cm()


@contextlib.contextmanager
def light_pdf_fonts():
    """Within this context, PDF and PS files get TrueType (Type 42) font subsets without
    the OpenType layout tables (:data:`LAYOUT_TABLES`), made once per process for each set
    of glyphs: the same glyph outlines and metrics, ~3x less work per font, and fonts
    that stay editable text (Type 3 would be faster still, but journals' artwork checks
    refuse Type 3 fonts).  matplotlib has no option for this: its subsetting function is
    replaced for the duration (under a lock; restored after), and only where it has the
    form this code was written for (matplotlib >= 3.11: ``SubsetResults``); elsewhere
    matplotlib's own subsetting runs unchanged."""
    try:
        from matplotlib.backends import _backend_pdf_ps as pdfps
    except ImportError:  # pragma: no cover - matplotlib without its PDF backend helpers
        pdfps = None
    if pdfps is None or not hasattr(pdfps, "SubsetResults") or not hasattr(pdfps, "get_glyphs_subset"):
        yield
        return
    with _PATCH_LOCK:
        original = pdfps.get_glyphs_subset
        pdfps.get_glyphs_subset = _light_glyphs_subset
        try:
            yield
        finally:
            pdfps.get_glyphs_subset = original
