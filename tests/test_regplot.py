"""meta.plots.regplot (meta.plots.bubble_plot): the bubble plot of a meta-regression, checked by what is drawn.

The fitted line and the studies' points are compared with metafor 3.8.1 (tests/r/regression_reference.R:
rma(yi, vi, mods = ~ ablat) on dat.bcg, predict() at ablat 10, 30, 50; weights()).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from meta import plots  # noqa: E402
from meta.plots.bubble_plot import point_sizes  # noqa: E402
from meta.regression import meta_regression  # noqa: E402
from tests._reference import arr  # noqa: E402

REF = json.loads((Path(__file__).parent / "fixtures" / "regression_reference.json").read_text())
BCG = pd.DataFrame(REF["data"]["bcg"])


def _gid(fig, gid):
    return [a for a in fig.findobj() if getattr(a, "get_gid", lambda: None)() == gid]


@pytest.fixture(scope="module")
def res():
    return meta_regression("yi", "vi", ["ablat"], data=BCG, method="REML")


def test_line_is_metafors_prediction(res):
    fig = plots.regplot(res, pi=True)
    assert isinstance(fig, Figure)
    (line,) = _gid(fig, "regression-line")
    x, y = line.get_data()
    ref = next(c for c in REF["predict"] if c["test"] == "z" and c["pi"] == "default")
    inside = arr(ref["newmods"]) >= x[0]  # ablat 10 lies left of the drawn range (13 - 4%)
    assert inside.sum() == 2
    np.testing.assert_allclose(np.interp(arr(ref["newmods"])[inside], x, y), arr(ref["pred"])[inside], rtol=1e-9)
    # the line spans the moderator's range plus 4% on each side (metafor)
    span = BCG.ablat.max() - BCG.ablat.min()
    np.testing.assert_allclose([x[0], x[-1]], [BCG.ablat.min() - 0.04 * span, BCG.ablat.max() + 0.04 * span])
    assert len(_gid(fig, "ci-band")) == 1 and len(_gid(fig, "pi-band")) == 1
    assert len(_gid(fig, "ci-lines")) == 2 and len(_gid(fig, "pi-lines")) == 2


def test_points_are_the_studies_sized_by_weight(res):
    fig = plots.regplot(res)
    (pts,) = _gid(fig, "studies")
    xy = pts.get_offsets()
    got = sorted(map(tuple, np.asarray(xy)))
    want = sorted(zip(BCG.ablat, BCG.yi))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    w = arr(next(f for c in REF["grid"] if c["name"] == "bcg_ablat" for f in c["fits"]
                 if f["method"] == "REML" and f["test"] == "z")["weights"])
    sizes = point_sizes(w)
    assert sizes.min() == pytest.approx(0.5) and sizes.max() == pytest.approx(3.0)
    # largest drawn first, diameter grows with the weight
    drawn = np.sqrt(pts.get_sizes())
    assert np.all(np.diff(drawn) <= 1e-12)
    assert not _gid(fig, "pi-band")


def test_transf_and_choice_of_moderator():
    res = meta_regression("yi", "vi", ["ablat", "year"], data=BCG, method="DL")
    with pytest.raises(ValueError, match="choose one with mod="):
        plots.regplot(res)
    with pytest.raises(ValueError, match="is the intercept"):
        plots.regplot(res, mod=1)
    with pytest.raises(ValueError, match="not a coefficient"):
        plots.regplot(res, mod="alloc")
    fig = plots.regplot(res, mod="year", transf=np.exp, refline=1.0)
    (pts,) = _gid(fig, "studies")
    np.testing.assert_allclose(sorted(np.asarray(pts.get_offsets())[:, 1]), sorted(np.exp(BCG.yi)))
    assert len(_gid(fig, "refline")) == 1
    with pytest.raises(TypeError):
        plots.regplot("not a result")


def test_saved_files_are_byte_reproducible(res, tmp_path):
    a = plots.save(plots.regplot(res, pi=True, title="BCG vaccine and absolute latitude"), tmp_path / "a" / "fig", formats=("svg",))
    b = plots.save(plots.regplot(res, pi=True, title="BCG vaccine and absolute latitude"), tmp_path / "b" / "fig", formats=("svg",))
    assert a[0].read_bytes() == b[0].read_bytes()


@pytest.mark.parametrize("verb", ["forest", "funnel"])
def test_forest_and_funnel_of_a_meta_regression_say_what_draws_it(verb):
    """A meta-regression has no single pooled estimate: the message names regplot and the
    moderator-free pool, instead of an AttributeError about a missing field."""
    from meta.regression import meta_regression

    res = meta_regression([0.1, 0.3, 0.2, 0.5, 0.4, 0.6], [0.04] * 6, mods=np.arange(6.0))
    with pytest.raises(TypeError, match="meta.plots.regplot"):
        getattr(plots, verb)(res)
