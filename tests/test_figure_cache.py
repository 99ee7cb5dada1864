"""meta.plots.save takes the PNG and PDF of a figure drawn before from a cache keyed
by its SVG drawing (meta._figure_cache): the files are the bytes a fresh rendering
gives, a changed figure (data, or a raster-only setting such as antialiasing) is
rendered anew, and META_FIGURE_CACHE=0 turns the cache off."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from meta import _figure_cache, plots, plots_style
from meta.pool import pool

FORMATS = ("png", "svg", "pdf")


def _figure(shift=0.0):
    yi = np.array([-0.89, -1.59, -1.35, -1.44, -0.22]) + shift
    vi = np.array([0.33, 0.19, 0.42, 0.02, 0.05])
    return plots.forest(pool(yi, vi, slab=[f"Study {i}" for i in range(1, 6)]))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(matplotlib, "get_cachedir", lambda: str(tmp_path / "mplcache"))
    monkeypatch.delenv("META_FIGURE_CACHE", raising=False)
    plots_style._subset.cache_clear()
    calls = []
    render = plots._render

    def counting(fig, fmt, dpi, salt):
        calls.append(fmt)
        return render(fig, fmt, dpi, salt)

    monkeypatch.setattr(plots, "_render", counting)
    yield calls
    plots_style._subset.cache_clear()


def _bytes(paths):
    return [p.read_bytes() for p in paths]


def test_cached_files_are_the_bytes_of_a_fresh_rendering(tmp_path, cache, monkeypatch):
    fig = _figure()
    first = _bytes(plots.save(fig, tmp_path / "a" / "f", formats=FORMATS))
    assert sorted(cache) == ["pdf", "png", "svg"]
    cache.clear()
    again = _bytes(plots.save(_figure(), tmp_path / "b" / "f", formats=FORMATS))  # the same figure, drawn again
    assert cache == ["svg"]  # PNG and PDF from the cache
    monkeypatch.setenv("META_FIGURE_CACHE", "0")
    cache.clear()
    fresh = _bytes(plots.save(_figure(), tmp_path / "c" / "f", formats=FORMATS))
    assert sorted(cache) == ["pdf", "png", "svg"]
    assert first == again == fresh


def test_a_changed_figure_is_rendered_anew(tmp_path, cache):
    a = _bytes(plots.save(_figure(), tmp_path / "a" / "f", formats=FORMATS))
    cache.clear()
    b = _bytes(plots.save(_figure(0.1), tmp_path / "b" / "f", formats=FORMATS))
    assert sorted(cache) == ["pdf", "png", "svg"]
    assert a[0] != b[0] and a[2] != b[2]


def test_raster_only_settings_are_part_of_the_key():
    fig = _figure()
    svg = b"<svg/>"
    k = _figure_cache.key(fig, svg, 300, ())
    artists = fig.findobj(lambda a: hasattr(a, "set_antialiased") and a is not fig.patch)
    assert artists
    for a in artists:
        a.set_antialiased(False)  # the SVG would not change; the PNG does
    assert _figure_cache.key(fig, svg, 300, ()) != k
    assert _figure_cache.key(fig, svg, 150, ()) != _figure_cache.key(fig, svg, 300, ())
    artists[0].set_agg_filter(lambda im, dpi: (im, 0, 0))
    assert _figure_cache.key(fig, svg, 300, ()) is None  # a figure with an agg filter is never cached


def test_off_switch_leaves_no_files(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("META_FIGURE_CACHE", "0")
    plots.save(_figure(), tmp_path / "f", formats=FORMATS)
    assert not (tmp_path / "mplcache" / "meta-figures").exists()
