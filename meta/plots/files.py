"""Writing figures to files, byte-reproducibly: :func:`save` (PNG/SVG/PDF at the figure's own
size, fixed metadata and SVG ids, TrueType PDF fonts) and :func:`draw_and_save` (a plotting call
saved before comes from :mod:`meta._figure_cache`).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Callable, Sequence

import matplotlib
import numpy as np

from meta import _figure_cache
from meta.plots.style import LAYOUT_TABLES, fixed_style, light_pdf_fonts

__all__ = ["save", "draw_and_save"]


# --------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------
# PNG: zlib level 3 instead of Pillow's 6: on our 300-dpi forest plots ~12 % less time per file and
# no larger (213 vs 221 kB measured; benchmarks/README.md), the same pixels
_PIL_KWARGS = {"png": {"pil_kwargs": {"compress_level": 3}}}


@fixed_style
def save(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg", "pdf"), dpi: int = 300) -> list[Path]:
    """Write ``fig`` as ``<stem>.<format>`` for each format; return the paths.

    The figure is written at its own size (no ``bbox_inches="tight"``), so a
    forest plot made at ``width_cm=17`` prints at 17 cm. Dates are left out of
    the SVG/PDF metadata, so reruns give identical files; PDF fonts are
    embedded as TrueType (``pdf.fonttype=42``) so text stays editable, as
    subsets without OpenType layout tables, made once and cached
    (:func:`meta.plots.style.light_pdf_fonts`: the same glyphs, a third of
    the work); PNG is compressed at zlib level 3 (same pixels, no larger).
    The SVG is drawn first, and PNG and PDF files of a figure saved before
    (same SVG bytes, dpi and versions) are taken from a cache
    (:mod:`meta._figure_cache`; ``META_FIGURE_CACHE=0`` turns it off).
    """
    fmts, stem = _save_target(stem, formats, dpi, "save")
    # PNG and PDF of a figure drawn before come from the cache, keyed by its SVG (meta._figure_cache)
    cached = _figure_cache.enabled() and any(f in _figure_cache.FORMATS for f in fmts)
    svg = _render(fig, "svg", dpi, stem.name) if cached else None
    key = _figure_cache.key(fig, svg, dpi, (_PIL_KWARGS, LAYOUT_TABLES)) if cached else None
    out = []
    for fmt in fmts:
        path = stem.parent / f"{stem.name}.{fmt}"
        if fmt == "svg" and svg is not None:
            data = svg
        elif key is not None and fmt in _figure_cache.FORMATS:
            data = _figure_cache.get(key, fmt)
            if data is None:
                data = _render(fig, fmt, dpi, stem.name)
                _figure_cache.put(key, fmt, data)
        else:
            data = _render(fig, fmt, dpi, stem.name)
        path.write_bytes(data)
        out.append(path)
    return out


#: formats the Agg canvas always writes (matplotlib's own PNG, SVG and PDF backends)
_ALWAYS_SUPPORTED = frozenset({"png", "svg", "pdf"})


def _save_target(stem, formats, dpi, caller: str) -> tuple[list[str], Path]:
    """The checked formats (lower case) and stem of a save; the stem's folder is made."""
    if isinstance(formats, str):
        formats = (formats,)
    bad = [f for f in formats if not isinstance(f, str) or f.lower() not in _ALWAYS_SUPPORTED]
    if bad:  # ask matplotlib (importing its canvas: not needed for the formats every Agg canvas writes)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
        bad = [f for f in formats if not isinstance(f, str) or f.lower() not in supported]
    if bad:
        raise ValueError(f"{caller}: unknown format(s) {bad}; choose from {sorted(supported)}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float, np.integer, np.floating)) or not dpi >= 72:
        raise ValueError(f"{caller}: dpi must be a number >= 72 for print (e.g. 300), got {dpi!r}")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    return [f.lower() for f in formats], stem


def draw_and_save(builder: Callable[..., Figure], stem: str | Path, *, args: Sequence = (),
                  kwargs: dict | None = None, formats: Sequence[str] = ("png", "svg", "pdf"),
                  dpi: int = 300) -> list[Path]:
    """``save(builder(*args, **kwargs), stem, formats, dpi)``, or the same files from the cache
    when the same call was saved before: same function, same argument values, same
    ``meta`` source, style, fonts and library versions (:func:`meta._figure_cache.drawing_key`).

    A warm rerun of a pipeline that draws what it drew last time then skips drawing
    altogether; any changed value draws afresh. Only ``meta``'s own plotting functions
    are looked up (their code is part of the key); a ``builder`` of your own, a call
    whose arguments cannot be keyed by value, or one that warns is drawn every time;
    ``META_FIGURE_CACHE=0`` draws every time.
    """
    kwargs = dict(kwargs or {})
    fmts, stem = _save_target(stem, formats, dpi, "draw_and_save")
    key = (_figure_cache.drawing_key(builder, args, kwargs, stem.name, fmts, dpi)
           if _figure_cache.enabled() else None)
    if key is not None:
        files = [_figure_cache.get(key, fmt) for fmt in fmts]
        if all(f is not None for f in files):
            out = []
            for fmt, data in zip(fmts, files):
                path = stem.parent / f"{stem.name}.{fmt}"
                path.write_bytes(data)
                out.append(path)
            return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = save(builder(*args, **kwargs), stem, formats=fmts, dpi=dpi)
    for w in caught:  # warned again under the caller's filters; a call that warns is not cached
        warnings.warn(w.message, w.category, stacklevel=2)
    if key is not None and not caught:
        for fmt, path in zip(fmts, out):
            _figure_cache.put(key, fmt, path.read_bytes())
    return out


def _render(fig: Figure, fmt: str, dpi: int, salt: str) -> bytes:
    """``fig`` saved as ``fmt`` (bytes), with the settings :func:`save` documents."""
    meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt)
    # TrueType (Type 42) fonts in PDF/PS stay editable, as journals' artwork checks prefer;
    # a fixed SVG hash salt keeps element ids stable between runs
    # PDF/PS: font subsets without the OpenType layout tables no viewer reads (meta.plots.style.light_pdf_fonts)
    fonts = light_pdf_fonts() if fmt in ("pdf", "ps", "eps") else contextlib.nullcontext()
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "pdf.fonttype": 42, "ps.fonttype": 42}), fonts:
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta, facecolor="white", **_PIL_KWARGS.get(fmt, {}))
    return buf.getvalue()
