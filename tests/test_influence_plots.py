"""meta.plots.baujat, influence_plot and gosh_plot: they draw what metafor 3.8.1 computes
(baujat coordinates, influence diagnostics and flags, gosh subsets) from
tests/fixtures/influence_reference.json, with metafor's reference lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from meta.gosh import gosh
from meta.influence import influence
from meta.plots import baujat_plot, gosh_plot, influence_plot, save
from meta.pool import pool
from tests._reference import arr

FIXTURE = Path(__file__).parent / "fixtures" / "influence_reference.json"
REF = json.loads(FIXTURE.read_text())
CASES = {c["name"]: c for c in REF["cases"]}


def fit_ref(name, method, test="z"):
    c = CASES[name]
    f = next(f for f in c["fits"] if f["method"] == method and f["test"] == test)
    return pool(arr(c["yi"]), arr(c["vi"]), method=method, test=test), f


def by_gid(fig, gid):
    for ax in fig.axes:
        for art in [*ax.collections, *ax.lines, *ax.texts, *ax.patches]:
            if art.get_gid() == gid:
                return art
    raise KeyError(gid)


def axes(fig, label):
    return next(ax for ax in fig.axes if ax.get_label() == label)


def test_baujat_plot_draws_metafors_coordinates():
    res, f = fit_ref("bcg_logrr", "DL")
    fig = baujat_plot(res)
    assert isinstance(fig, Figure)
    pts = by_gid(fig, "baujat-points").get_offsets()
    np.testing.assert_allclose(pts[:, 0], arr(f["baujat"]["x"]), rtol=1e-9)
    np.testing.assert_allclose(pts[:, 1], arr(f["baujat"]["y"]), rtol=1e-9)
    ax = axes(fig, "baujat")
    assert ax.get_xlabel() == "Squared Pearson Residual" and ax.get_ylabel() == "Influence on Overall Result"
    assert by_gid(fig, "baujat-label-3").get_text() == "4"  # default slab 1..k, as metafor
    fe, _ = fit_ref("bcg_logrr", "FE")
    assert axes(baujat_plot(influence(fe)), "baujat").get_xlabel() == "Contribution to Overall Heterogeneity"


def test_influence_plot_panels_flags_and_reference_lines():
    res, f = fit_ref("huge_outlier", "DL")
    fig = influence_plot(res)
    names = ["rstudent", "dffits", "cook.d", "cov.r", "tau2.del", "QE.del", "hat", "weight"]
    assert [ax.get_label() for ax in fig.axes] == [f"panel-{n}" for n in names]
    keys = ["rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del", "hat", "weight"]
    flagged = arr(f["influence"]["is_infl"]) == 1
    assert flagged.tolist() == [False] * 6 + [True]
    k = len(flagged)
    for name, key in zip(names, keys):
        pts = by_gid(fig, f"{name}-points").get_offsets()
        np.testing.assert_allclose(pts[:, 1], arr(f["influence"][key]), rtol=1e-9, atol=1e-12)
        red = by_gid(fig, f"{name}-flagged").get_offsets()
        np.testing.assert_array_equal(red[:, 0], np.flatnonzero(flagged) + 1)
    assert by_gid(fig, "dffits-ref-1").get_ydata()[0] == pytest.approx(3 * math.sqrt(1 / (k - 1)), rel=1e-15)
    assert by_gid(fig, "cook.d-ref-0").get_ydata()[0] == pytest.approx(0.454936423119572, rel=1e-12)  # qchisq(.5, 1)
    assert by_gid(fig, "hat-ref-1").get_ydata()[0] == pytest.approx(3 / k, rel=1e-15)
    assert by_gid(fig, "weight-ref-0").get_ydata()[0] == pytest.approx(100 / k, rel=1e-15)
    assert by_gid(fig, "rstudent-ref-2").get_ydata()[0] == pytest.approx(1.959963984540054, rel=1e-15)
    assert axes(fig, "panel-cov.r").get_yscale() == "log"
    nine = influence_plot(influence(res), dfbetas=True, labels="slab", logcov=False)
    assert nine.axes[-1].get_label() == "panel-dfbetas" and axes(nine, "panel-cov.r").get_yscale() == "linear"
    np.testing.assert_allclose(by_gid(nine, "dfbetas-points").get_offsets()[:, 1], arr(f["influence"]["dfbetas"]),
                               rtol=1e-9)
    with pytest.raises(ValueError, match="labels"):
        influence_plot(res, labels="names")


def test_gosh_plot_draws_every_subset():
    c = CASES["bcg8_logrr"]
    ref = next(g for g in c["gosh"] if g["method"] == "DL")
    g = gosh(pool(arr(c["yi"]), arr(c["vi"]), method="DL"))
    fig = gosh_plot(g)
    pts = by_gid(fig, "gosh-points").get_offsets()
    np.testing.assert_allclose(pts[:, 0], arr(ref["estimate"]), rtol=1e-9)
    np.testing.assert_allclose(pts[:, 1], arr(ref["i2"]), rtol=1e-9, atol=1e-8)
    assert by_gid(fig, "gosh-points").get_alpha() == pytest.approx(255 ** -0.2)
    assert {ax.get_label() for ax in fig.axes} == {"gosh", "gosh-xhist", "gosh-yhist"}
    tau = gosh_plot(g, het="tau2", xhist=False, yhist=False, out=3)
    with_ = by_gid(tau, "gosh-points-with").get_offsets()
    without = by_gid(tau, "gosh-points-without").get_offsets()
    assert len(with_) == g.incl[:, 2].sum() == 128 and len(without) == 127
    np.testing.assert_allclose(np.sort(with_[:, 1]), np.sort(arr(ref["tau2"])[g.incl[:, 2]]), rtol=1e-9, atol=1e-12)
    assert [ax.get_label() for ax in tau.axes] == ["gosh"]


def test_gosh_plot_bad_input():
    c = CASES["k3"]
    g = gosh(pool(arr(c["yi"]), arr(c["vi"]), method="FE"))
    with pytest.raises(ValueError, match="tau2"):
        gosh_plot(g, het="tau2")
    with pytest.raises(ValueError, match="het must be"):
        gosh_plot(g, het="I^2")
    with pytest.raises(ValueError, match="out must be one of"):
        gosh_plot(g, out="nope")
    with pytest.raises(TypeError, match="meta.gosh.gosh"):
        gosh_plot(pool(arr(c["yi"]), arr(c["vi"])))
    with pytest.raises(TypeError, match="PoolResult or an InfluenceResult"):
        baujat_plot([1, 2, 3])


def test_byte_reproducible_and_callers_rc_untouched(tmp_path):
    res, _ = fit_ref("k3", "REML")
    with matplotlib.rc_context({"lines.linewidth": 7.0, "font.family": "serif"}):
        paths = []
        for name in ("a", "b"):
            fig = influence_plot(res, title="k = 3")
            paths += save(fig, tmp_path / name / "infl", formats=("svg",))
        assert matplotlib.rcParams["lines.linewidth"] == 7.0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert by_gid(influence_plot(res), "hat-line").get_linewidth() == 0.7  # our style, not the caller's
