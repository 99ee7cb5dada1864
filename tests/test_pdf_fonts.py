"""PDF fonts made cheaply (meta.plots.style.light_pdf_fonts): the embedded TrueType
subsets carry the same glyph outlines and advance widths as matplotlib's own
subsets, without the OpenType layout tables no PDF viewer reads, and the PDF bytes
are the same on a rerun whether the subset is made, read from the per-process
cache or read from the disk cache, at any time of day."""

from __future__ import annotations

import io
import re
import zlib

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from fontTools.pens.recordingPen import RecordingPen
from fontTools.ttLib import TTFont

from meta import plots
from meta.plots import style as plots_style
from meta.pool import pool

_STREAM = re.compile(rb"<< /Length1 \d+ /Length (\d+) /Filter /FlateDecode >>\nstream\n")


def _fonts(pdf: bytes) -> list[TTFont]:
    """The TrueType fonts embedded in a matplotlib PDF (FontFile2 streams)."""
    out = []
    for m in _STREAM.finditer(pdf):
        data = zlib.decompress(pdf[m.end() : m.end() + int(m.group(1))])
        out.append(TTFont(io.BytesIO(data)))
    return out


def _outlines(font: TTFont) -> dict:
    gs = font.getGlyphSet()
    out = {}
    for name in font.getGlyphOrder():
        pen = RecordingPen()
        gs[name].draw(pen)
        out[name] = (pen.value, font["hmtx"][name])
    return out


def _figure():
    yi = np.array([-0.89, -1.59, -1.35, -1.44, -0.22])
    vi = np.array([0.33, 0.19, 0.42, 0.02, 0.05])
    return plots.forest(pool(yi, vi, slab=[f"Study {i}" for i in range(1, 6)]))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(matplotlib, "get_cachedir", lambda: str(tmp_path / "mplcache"))
    plots_style._subset.cache_clear()
    yield tmp_path / "mplcache" / "meta-font-subsets"
    plots_style._subset.cache_clear()


def test_embedded_fonts_have_matplotlibs_outlines_without_layout_tables(tmp_path, cache_dir):
    fig = _figure()
    ours = _fonts(plots.save(fig, tmp_path / "ours", formats=("pdf",))[0].read_bytes())
    theirs_file = tmp_path / "theirs.pdf"
    with matplotlib.rc_context({**plots_style.style(), "pdf.fonttype": 42}):
        fig.savefig(theirs_file, format="pdf", metadata={"CreationDate": None, "ModDate": None}, facecolor="white")
    theirs = _fonts(theirs_file.read_bytes())
    assert len(ours) == len(theirs) >= 1
    for a, b in zip(ours, theirs):
        assert not set(plots_style.LAYOUT_TABLES) & set(a.keys())
        assert {"glyf", "loca", "hmtx", "cmap", "head"} <= set(a.keys())
        mine, full = _outlines(a), _outlines(b)
        # matplotlib's subset adds the glyphs its layout tables reach (ligatures "fi", "fl", MATH
        # variants), which no text in the PDF refers to; every glyph drawn is the same in both
        assert mine.items() <= full.items()
    assert any(cache_dir.iterdir())  # kept for the next run


def test_pdf_bytes_do_not_depend_on_the_cache_or_the_clock(tmp_path, cache_dir, monkeypatch):
    import fontTools.ttLib.tables._h_e_a_d as head

    fig = _figure()
    first = plots.save(fig, tmp_path / "a" / "f", formats=("pdf",))[0].read_bytes()  # subsets made
    monkeypatch.setattr(head, "timestampNow", lambda: 3_000_000_000)  # a later time of day
    again = plots.save(fig, tmp_path / "b" / "f", formats=("pdf",))[0].read_bytes()  # per-process cache
    plots_style._subset.cache_clear()
    disk = plots.save(fig, tmp_path / "c" / "f", formats=("pdf",))[0].read_bytes()  # disk cache
    for f in cache_dir.iterdir():
        f.unlink()
    plots_style._subset.cache_clear()
    fresh = plots.save(fig, tmp_path / "d" / "f", formats=("pdf",))[0].read_bytes()  # made again, later
    assert first == again == disk == fresh


def test_matplotlibs_subsetting_is_restored_after_saving(tmp_path):
    from matplotlib.backends import _backend_pdf_ps

    before = _backend_pdf_ps.get_glyphs_subset
    plots.save(_figure(), tmp_path / "f", formats=("pdf",))
    assert _backend_pdf_ps.get_glyphs_subset is before
