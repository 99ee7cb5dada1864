"""meta.plots.save takes the PNG and PDF of a figure drawn before from a cache keyed
by its SVG drawing (meta._figure_cache): the files are the bytes a fresh rendering
gives, a changed figure (data, or a raster-only setting such as antialiasing) is
rendered anew, and META_FIGURE_CACHE=0 turns the cache off."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import _background
from meta import _figure_cache, plots
from meta.plots import files as plot_files
from meta.plots import style as plots_style
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
    render = plot_files._render

    def counting(fig, fmt, dpi, salt):
        calls.append(fmt)
        return render(fig, fmt, dpi, salt)

    monkeypatch.setattr(plot_files, "_render", counting)
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


# --------------------------------------------------------------------------- draw_and_save: a plotting call's key

import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

YI = np.array([-0.89, -1.59, -1.35, -1.44, -0.22])
VI = np.array([0.33, 0.19, 0.42, 0.02, 0.05])


def _key(*args, **kwargs):
    return _figure_cache.drawing_key(plots.forest, args, kwargs, "f", ("png",), 72)


@pytest.fixture
def builds(cache, monkeypatch):
    """The number of figures drawn (save() calls) since the test began."""
    calls = []
    save = plots.save

    def counting(fig, stem, *a, **k):
        calls.append(Path(stem).name)
        return save(fig, stem, *a, **k)

    monkeypatch.setattr(plot_files, "save", counting)
    return calls


def test_a_call_made_before_is_not_drawn_again_and_gives_the_same_bytes(tmp_path, builds, monkeypatch):
    res = pool(YI, VI, slab=[f"Study {i}" for i in range(1, 6)])
    first = _bytes(plots.draw_and_save(plots.forest, tmp_path / "a" / "f", args=(res,), kwargs={"title": "T"},
                                       formats=FORMATS))
    assert len(builds) == 1
    again = plots.draw_and_save(plots.forest, tmp_path / "b" / "f", args=(pool(YI.copy(), VI.copy(), slab=res.slab),),
                                kwargs={"title": "T"}, formats=FORMATS)
    assert len(builds) == 1  # equal values, other objects: taken from the cache
    assert [p.name for p in again] == ["f.png", "f.svg", "f.pdf"]
    monkeypatch.setenv("META_FIGURE_CACHE", "0")
    fresh = _bytes(plots.draw_and_save(plots.forest, tmp_path / "c" / "f", args=(res,), kwargs={"title": "T"},
                                       formats=FORMATS))
    assert len(builds) == 2  # switched off: drawn
    assert first == _bytes(again) == fresh


def test_any_changed_value_draws_afresh(tmp_path, builds):
    res = pool(YI, VI)

    def draw(*args, **kwargs):
        plots.draw_and_save(plots.forest, tmp_path / "f", args=args, kwargs=kwargs, formats=("svg",), dpi=72)

    draw(res, title="T")
    draw(res, title="T ")  # a title
    draw(pool(np.nextafter(YI, 1), VI), title="T")  # one ulp in every effect
    draw(res, title="T", favours=("a", "b"))  # a keyword argument
    assert len(builds) == 4
    draw(res, title="T")
    assert len(builds) == 4
    plots.draw_and_save(plots.forest, tmp_path / "g", args=(res,), kwargs={"title": "T"}, formats=("svg",), dpi=72)
    plots.draw_and_save(plots.forest, tmp_path / "f", args=(res,), kwargs={"title": "T"}, formats=("svg",), dpi=100)
    plots.draw_and_save(plots.funnel, tmp_path / "f", args=(res,), kwargs={"title": "T"}, formats=("svg",), dpi=72)
    assert len(builds) == 7  # another file name (it salts the SVG ids), dpi, function


def test_keys_tell_apart_values_that_print_alike():
    assert len({_key(0), _key(0.0), _key(False), _key(-0.0), _key(np.float64(0.0)), _key(None)}) == 6
    assert _key("ab", "c") != _key("a", "bc")
    assert _key((1, 2)) != _key([1, 2])
    assert _key({"a": 1, "b": 2}) != _key({"b": 2, "a": 1})  # order can be a legend's order
    assert _key(np.array([1, 2])) != _key(np.array([1.0, 2.0])) != _key(np.array([[1.0, 2.0]]))
    a = pd.DataFrame({"label": ["x", "y"], "yi": [0.1, 0.2]})
    assert _key(a) == _key(a.copy())
    assert _key(a) != _key(a[["yi", "label"]])  # column order
    assert _key(a) != _key(a.set_axis([5, 6]))  # index
    assert _key(a) != _key(a.astype({"yi": "float32"}))  # dtype
    assert _key(a) != _key(a.rename(columns={"yi": "y"}))
    b = a.copy()
    b.loc[1, "label"] = "z"
    assert _key(a) != _key(b)
    assert _key(a) != _key(a.assign(label=["x", pd.NA]))
    c = a.astype({"label": "category"})
    assert _key(c) != _key(a)
    assert _key(c) != _key(c.assign(label=c["label"].cat.reorder_categories(["y", "x"])))


def test_arguments_it_cannot_key_by_value_are_drawn_every_time(tmp_path, builds):
    class Opaque:
        pass

    assert _key(Opaque()) is None
    assert _key(lambda: 1) is None
    assert _key(np.zeros(2, dtype=[("a", object)])) is None
    assert _key(np.array(["2020-01-01"], dtype="datetime64[D]")) != _key(np.array(["2020-01-01"], dtype="datetime64[s]"))

    res = pool(YI, VI)
    for _ in range(2):  # meta's own function, an argument it cannot key
        plots.draw_and_save(plots.forest, tmp_path / "f", args=(res,), kwargs={"title": "T", "label": Opaque()},
                            formats=("svg",), dpi=72)
    assert len(builds) == 2
    assert not [p for p in (tmp_path / "mplcache" / "meta-figures").glob("d-*")]


def test_a_call_that_warns_is_drawn_and_warns_every_time(tmp_path, builds, monkeypatch):
    import meta.plots.forest_plot as fp

    forest = fp.forest

    def warning_forest(res):  # posing as meta's own (its code is in the key), but it warns
        warnings.warn("label truncated", UserWarning, stacklevel=2)
        return forest(res)

    warning_forest.__module__ = "meta.plots.forest_plot"
    res = pool(YI, VI)
    assert _figure_cache.drawing_key(warning_forest, (res,), {}, "f", ("svg",), 72) is not None
    for _ in range(2):
        with pytest.warns(UserWarning, match="label truncated"):
            plots.draw_and_save(warning_forest, tmp_path / "f", args=(res,), formats=("svg",), dpi=72)
    assert len(builds) == 2


def test_a_function_of_your_own_is_drawn_every_time(tmp_path, builds):
    """Its code is not in the key: editing it and rerunning must never give the old figure."""

    def my_forest(res, title):
        return plots.forest(res, title=title)

    res = pool(YI, VI)
    assert _figure_cache.drawing_key(my_forest, (res, "T"), {}, "f", ("svg",), 72) is None
    for _ in range(2):
        plots.draw_and_save(my_forest, tmp_path / "f", args=(res, "T"), formats=("svg",), dpi=72)
    assert len(builds) == 2
    assert not [p for p in (tmp_path / "mplcache" / "meta-figures").glob("d-*")]


def test_bad_formats_and_dpi_are_refused_before_anything_is_drawn(tmp_path, builds):
    with pytest.raises(ValueError, match="draw_and_save: unknown format"):
        plots.draw_and_save(plots.forest, tmp_path / "f", args=(pool(YI, VI),), formats=("png", "docx"))
    for dpi in (10, "300", None, True, float("nan")):
        with pytest.raises(ValueError, match="dpi must be a number >= 72"):
            plots.draw_and_save(plots.forest, tmp_path / "f", args=(pool(YI, VI),), dpi=dpi)
        with pytest.raises(ValueError, match="save: dpi must be a number >= 72"):
            plots.save(plots.forest(pool(YI, VI)), tmp_path / "f", dpi=dpi)
    assert not builds


def test_the_key_covers_the_fonts_matplotlib_can_find(monkeypatch):
    from matplotlib import font_manager

    _figure_cache._environment.cache_clear()
    before = _key(1.0)
    fm = font_manager.fontManager
    moved = [font_manager.FontEntry(fname=f.fname + ".new", name=f.name, style=f.style, variant=f.variant,
                                    weight=f.weight, stretch=f.stretch, size=f.size) if i == 0 else f
             for i, f in enumerate(fm.ttflist)]
    monkeypatch.setattr(fm, "ttflist", moved)
    _figure_cache._environment.cache_clear()
    try:
        assert _key(1.0) != before
    finally:
        monkeypatch.undo()
        _figure_cache._environment.cache_clear()
    assert _key(1.0) == before


KEY_OF = """
import sys
import numpy as np
from meta import _figure_cache, plots
print(_figure_cache.drawing_key(plots.forest, (np.arange(3.0),), {}, "f", ("png",), 72))
"""


def package_source_keys(tmp: Path) -> None:
    """Background job (tests/_background.py): the key of one forest call computed by a fresh interpreter on meta/,
    on a copy of it, and on the copy with a comment added to meta/diff.py (a module the forest plot never
    calls); each process's exit code, key and stderr go to tmp/keys.json."""
    import json
    import shutil

    root = Path(__file__).resolve().parents[1]

    def key_of(pkg_root):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(PYTHONPATH=str(pkg_root), MPLBACKEND="Agg")
        out = subprocess.run([sys.executable, "-c", KEY_OF], env=env, cwd=tmp, capture_output=True, text=True,
                             timeout=120)
        return {"returncode": out.returncode, "key": out.stdout.strip(), "stderr": out.stderr}

    copy = tmp / "copy"
    shutil.copytree(root / "meta", copy / "meta", ignore=shutil.ignore_patterns("__pycache__"))
    keys = {"copy": key_of(copy), "root": key_of(root)}
    with open(copy / "meta" / "diff.py", "a") as fh:
        fh.write("# a comment\n")
    keys["changed"] = key_of(copy)
    (tmp / "keys.json").write_text(json.dumps(keys))


@pytest.mark.background("test_figure_cache:package_source_keys")
def test_the_key_covers_the_package_source():
    """A changed line anywhere in meta/ (here a comment in a module the forest plot never calls) is a new key."""
    import json

    keys = json.loads((_background.result("test_figure_cache:package_source_keys") / "keys.json").read_text())
    for run in keys.values():
        assert run["returncode"] == 0, run["stderr"]
    same = keys["copy"]["key"]
    assert same.startswith("d-") and same == keys["root"]["key"]
    assert keys["changed"]["key"] != same


SOUZA_ROW = "souza2009a,peak_hip_internal_rotation,pfp_vs_control,baseline,averaged_across_tasks,deg,21,7.6,7.0,"


def warm_rerun(tmp: Path) -> None:
    """Background job (tests/_background.py): meta reproduce four times on a copy of the data snapshot, with the
    figure cache in tmp/mplcache: r1 cold, r2 warm, r3 with the cache off, r4 warm after one changed cell. The
    figures each run drew (plots.save calls) go to tmp/builds.json."""
    import json
    import shutil

    from conftest import BUNDLED
    from meta.review.reproduce import reproduce

    data = tmp / "data"
    shutil.copytree(BUNDLED, data)
    builds = {}
    save = plots.save
    with pytest.MonkeyPatch.context() as mp:  # what the `builds` fixture does
        mp.setattr(matplotlib, "get_cachedir", lambda: str(tmp / "mplcache"))
        mp.delenv("META_FIGURE_CACHE", raising=False)
        plots_style._subset.cache_clear()
        calls = []

        def counting(fig, stem, *a, **k):
            calls.append(Path(stem).name)
            return save(fig, stem, *a, **k)

        mp.setattr(plot_files, "save", counting)
        fast = dict(formats=("png", "svg"), dpi=72, html=False)
        for run in ("r1", "r2", "r3", "r4"):
            if run == "r3":
                mp.setenv("META_FIGURE_CACHE", "0")
            if run == "r4":
                mp.delenv("META_FIGURE_CACHE")
                outcomes = data / "outcomes.csv"
                text = outcomes.read_text()
                builds["souza_rows"] = text.count(SOUZA_ROW)
                outcomes.write_text(text.replace(SOUZA_ROW, SOUZA_ROW.replace(",7.6,", ",7.7,")))
            calls.clear()
            reproduce(data, tmp / run, **fast)
            builds[run] = list(calls)
    (tmp / "builds.json").write_text(json.dumps(builds))


@pytest.mark.background("test_figure_cache:warm_rerun")
def test_a_warm_rerun_draws_only_the_figures_whose_data_changed():
    """meta reproduce twice on the same data draws nothing the second time, and its figures are the
    bytes of a run without the cache; one changed cell redraws only the figures of the analyses it feeds."""
    import json

    tmp = _background.result("test_figure_cache:warm_rerun")
    builds = json.loads((tmp / "builds.json").read_text())
    drawn = sorted(builds["r1"])
    assert any(n.endswith("_forest") for n in drawn) and any(n.endswith("_robustness") for n in drawn)
    assert any(n.endswith("_cumulative") for n in drawn)
    assert builds["r2"] == []
    assert sorted(builds["r3"]) == drawn
    names = sorted(p.name for p in (tmp / "r1" / "figures").iterdir())
    for name in names:
        assert (tmp / "r2" / "figures" / name).read_bytes() == (tmp / "r3" / "figures" / name).read_bytes(), name

    assert builds["souza_rows"] == 1
    assert builds["r4"] and all(n.startswith("cc_hip_internal_rotation") for n in builds["r4"]), builds["r4"]
    changed = [n for n in names if (tmp / "r4" / "figures" / n).read_bytes() != (tmp / "r2" / "figures" / n).read_bytes()]
    assert changed and all(n.startswith("cc_hip_internal_rotation") for n in changed), changed


# --------------------------------------------------------------------------- a damaged cache never reaches an output


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip", "append"])
def test_a_damaged_cache_file_is_redrawn_replaced_and_said(tmp_path, cache, monkeypatch, damage):
    plots.save(_figure(), tmp_path / "a" / "f", formats=FORMATS)
    folder = tmp_path / "mplcache" / "meta-figures"
    files = sorted(folder.iterdir())
    assert files, "the first save filled the cache"
    for f in files:
        blob = f.read_bytes()
        f.write_bytes({"truncate": blob[: len(blob) // 2], "empty": b"",
                       "flip": blob[:100] + bytes([blob[100] ^ 1]) + blob[101:], "append": blob + b"x"}[damage])
    cache.clear()
    with pytest.warns(RuntimeWarning, match="figure cache: .* was damaged"):
        again = _bytes(plots.save(_figure(), tmp_path / "b" / "f", formats=FORMATS))
    assert sorted(cache) == ["pdf", "png", "svg"]  # drawn again, not copied from the damaged files
    monkeypatch.setenv("META_FIGURE_CACHE", "0")
    fresh = _bytes(plots.save(_figure(), tmp_path / "c" / "f", formats=FORMATS))
    assert again == fresh
    monkeypatch.delenv("META_FIGURE_CACHE")
    cache.clear()
    plots.save(_figure(), tmp_path / "d" / "f", formats=FORMATS)
    assert cache == ["svg"], "the damaged entries were replaced by good ones"


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path, cache, monkeypatch):
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_figure_cache.os, "replace", full_disk)
    plots.save(_figure(), tmp_path / "a" / "f", formats=FORMATS)
    monkeypatch.setattr(_figure_cache.os, "replace", real_replace)
    folder = tmp_path / "mplcache" / "meta-figures"
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
