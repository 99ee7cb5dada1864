"""meta.plots: forest and funnel plots checked by their structure, not by eye.

Reference numbers (pooled estimates, weights, heterogeneity, Egger, trim and
fill) and the expected RevMan-style text lines come from R metafor 3.8.1 via
tests/r/plots_reference.R -> tests/fixtures/plots_reference.json: forest data
are metafor's dat.normand1999 (SMD), funnel data dat.hackshaw1998 (log OR).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from meta import plots  # noqa: E402
from meta.bias import egger, trimfill  # noqa: E402
from meta.pool import PoolResult, SubgroupResult, pool, subgroups  # noqa: E402

REF = json.loads((Path(__file__).parent / "fixtures" / "plots_reference.json").read_text(encoding="utf-8"))
Z95 = 1.959963984540054


# --------------------------------------------------------------------------
# result objects: the real meta.pool / meta.bias results on metafor's data.
# The plots must show metafor's numbers, so each test compares what is drawn
# with the R fixture (which also cross-checks pool/bias on these data).
# --------------------------------------------------------------------------
SPEC = {"dl": dict(n=None, method="DL"), "dl_hksj": dict(n=None, method="DL", test="hksj"),
        "dl_k1": dict(n=1, method="DL"), "dl_k2": dict(n=2, method="DL")}


def studies(n: int | None = None, numbers: bool = True) -> pd.DataFrame:
    df = pd.DataFrame(REF["studies"])
    if not numbers:
        df = df[["label", "region", "yi", "vi"]]
    return df.iloc[:n].reset_index(drop=True) if n else df


def dl(name: str = "dl", **over) -> PoolResult:
    """meta.pool.pool on dat.normand1999 as fitted for fixture ``name``; ``over``
    replaces fields (to build degenerate inputs such as a NaN prediction interval)."""
    spec = dict(SPEC[name])
    st = studies(spec.pop("n"))
    res = pool(st["yi"], st["vi"], **spec)
    return dataclasses.replace(res, **over) if over else res


def subgroup_result() -> SubgroupResult:
    st = studies()
    return subgroups(st["yi"], st["vi"], st["region"], method="DL")


@functools.lru_cache(maxsize=None)
def dl_forest():
    """The plain normand1999 forest, drawn once and only read by the tests."""
    return plots.forest(dl(), studies())


@functools.lru_cache(maxsize=None)
def subgroup_forest():
    return plots.forest(subgroup_result(), studies(numbers=False), subgroup="region")


# --------------------------------------------------------------------------
# helpers to find artists
# --------------------------------------------------------------------------
def forest_axes(fig):
    return next(a for a in fig.axes if a.get_label() == "forest")


def by_gid(fig, gid):
    return [a for a in fig.findobj(lambda o: o.get_gid() == gid)]


def texts(fig):
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def plain(s: str) -> str:
    return s.replace("\u2212", "-").replace("\n", " ")


def text_of(fig, gid):
    found = by_gid(fig, gid)
    assert len(found) == 1, f"expected one text with gid {gid}, got {len(found)}"
    return plain(found[0].get_text())


@pytest.fixture(autouse=True)
def _close_nothing():
    """Every figure is a bare Figure: pyplot's registry must stay empty."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


# --------------------------------------------------------------------------
# forest
# --------------------------------------------------------------------------
def test_one_square_per_study_with_area_proportional_to_weight():
    fig = dl_forest()
    (markers,) = by_gid(fig, "study-markers")
    assert isinstance(markers, PathCollection)
    assert len(markers.get_offsets()) == REF["dl"]["k"] == 9
    np.testing.assert_allclose(np.asarray(markers.get_offsets())[:, 0], REF["studies"]["yi"])
    w = np.asarray(REF["dl"]["weights"])
    np.testing.assert_allclose(markers.get_sizes() / markers.get_sizes().max(), w / w.max(), rtol=1e-12)


def test_pooled_diamond_vertices_are_metafor_estimate_and_ci():
    fig = dl_forest()
    (diamond,) = by_gid(fig, "pooled-diamond")
    assert isinstance(diamond, Polygon)
    x = diamond.get_xy()[:, 0]
    r = REF["dl"]
    np.testing.assert_allclose([x.min(), x.max()], [r["ci_low"], r["ci_high"]], rtol=1e-12)
    np.testing.assert_allclose(sorted(x[:4])[1:3], [r["estimate"]] * 2, rtol=1e-12)
    assert diamond.get_label() == "pooled-diamond"


def test_revman_lines_match_text_formatted_in_r():
    fig = dl_forest()
    assert text_of(fig, "heterogeneity") == REF["dl"]["heterogeneity_line"]
    assert text_of(fig, "overall-effect") == REF["dl"]["overall_line"]
    assert REF["dl"]["heterogeneity_line"] == \
        "Heterogeneity: Tau\u00b2 = 0.54; Chi\u00b2 = 123.73, df = 8 (P < 0.00001); I\u00b2 = 94%"


def test_hksj_reports_t_with_df():
    fig = plots.forest(dl("dl_hksj"), studies())
    assert text_of(fig, "overall-effect") == REF["dl_hksj"]["overall_line"]
    assert "t = " in REF["dl_hksj"]["overall_line"]


@pytest.mark.parametrize("p, text", [(0.0406, "P = 0.04"), (0.00187, "P = 0.002"), (0.000675, "P = 0.0007"),
                                     (3e-6, "P < 0.00001"), (0.99, "P = 0.99"), (0.00996, "P = 0.01")])
def test_p_values_in_revman_style(p, text):
    assert plots.format_p(p) == text


def test_study_rows_show_label_effect_ci_and_weight():
    fig = dl_forest()
    shown = {plain(t.get_text()) for t in texts(fig)}
    for i, lab in enumerate(REF["studies"]["label"]):
        y, v = REF["studies"]["yi"][i], REF["studies"]["vi"][i]
        lo, hi = y - Z95 * np.sqrt(v), y + Z95 * np.sqrt(v)
        assert lab in shown
        assert f"{y:.2f} [{lo:.2f}, {hi:.2f}]" in shown
        assert f"{REF['dl']['weights'][i]:.1f}%" in shown
    # RevMan columns from the raw data; totals are the sums over studies
    for col in ("Mean", "SD", "Total", "Weight", "Study or Subgroup"):
        assert col in shown
    assert str(sum(REF["studies"]["n1"])) in shown and str(sum(REF["studies"]["n2"])) in shown


def test_study_ci_whiskers_are_yi_plus_minus_z_se():
    fig = dl_forest()
    (ci,) = by_gid(fig, "study-ci")
    segs = sorted(ci.get_segments(), key=lambda s: s[0][1])  # top row first (y grows downwards)
    yi, vi = np.asarray(REF["studies"]["yi"]), np.asarray(REF["studies"]["vi"])
    np.testing.assert_allclose([s[0][0] for s in segs], yi - Z95 * np.sqrt(vi), rtol=1e-9)
    np.testing.assert_allclose([s[1][0] for s in segs], yi + Z95 * np.sqrt(vi), rtol=1e-9)


def _clipped_sides(fig, st, res=None):
    """Interval ends beyond the axis: study CIs, and the pooled CI and PI of ``res``."""
    x0, x1 = forest_axes(fig).get_xlim()
    yi, vi = st["yi"].to_numpy(), st["vi"].to_numpy()
    lo, hi = yi - Z95 * np.sqrt(vi), yi + Z95 * np.sqrt(vi)
    if res is not None:
        lo = np.append(lo, [res.ci_low, res.pi_low])
        hi = np.append(hi, [res.ci_high, res.pi_high])
    return int((lo < x0).sum() + (hi > x1).sum())


def test_axis_contains_every_ci_when_nothing_is_extreme():
    st = studies()
    fig = plots.forest(dl(), st)
    assert _clipped_sides(fig, st) == 0
    assert by_gid(fig, "ci-arrow") == []
    x0, x1 = forest_axes(fig).get_xlim()
    assert x0 == -x1  # symmetric about the line of no effect
    (null,) = by_gid(fig, "null-line")
    assert tuple(null.get_xdata()) == (0, 0)


def test_very_wide_ci_is_clipped_with_an_arrow_per_side():
    st = studies(4)
    st.loc[1, "vi"] = 25.0  # se 5: CI about -10.1 to 9.5, both sides clipped
    res = pool(st["yi"], st["vi"], method="DL")
    fig = plots.forest(res, st)
    arrows = by_gid(fig, "ci-arrow")
    assert _clipped_sides(fig, st) == len(arrows) == 2
    x0, x1 = forest_axes(fig).get_xlim()
    assert sorted(a.get_marker() for a in arrows) == ["<", ">"]
    assert sorted(a.get_xdata()[0] for a in arrows) == [x0, x1]


def test_user_xlim_draws_arrows_for_each_clipped_side():
    st = studies()
    fig = plots.forest(dl(), st, xlim=(-1.5, 1.5))
    assert forest_axes(fig).get_xlim() == (-1.5, 1.5)
    # Orpington-Moderate, -Severe and the prediction interval's lower end
    assert len(by_gid(fig, "ci-arrow")) == _clipped_sides(fig, st, dl()) == 3
    fig = plots.forest(dl(), st, xlim=(-0.5, 0.5))  # the pooled CI too
    assert len(by_gid(fig, "ci-arrow")) == _clipped_sides(fig, st, dl()) == 13


def test_prediction_interval_bar_when_k_at_least_3():
    fig = dl_forest()
    (pi,) = by_gid(fig, "prediction-interval")
    np.testing.assert_allclose(sorted(pi.get_xdata()), [REF["dl"]["pi_low"], REF["dl"]["pi_high"]])
    fig = plots.forest(dl(pi_low=np.nan, pi_high=np.nan), studies())
    assert by_gid(fig, "prediction-interval") == []
    fig = plots.forest(dl("dl_k2"), studies(2))
    assert by_gid(fig, "prediction-interval") == []


def test_single_study_draws_no_pooled_diamond_and_no_pooled_method_header():
    """k = 1: the study itself, with its z test (metafor's k = 1 fit); nothing pooled, so no Total row,
    no diamond, no "IV, Fixed/Random" header, no weight and no heterogeneity line."""
    fig = plots.forest(dl("dl_k1"), studies(1))
    assert REF["dl_k1"]["heterogeneity_line"] == "Heterogeneity: Not applicable"
    assert not by_gid(fig, "heterogeneity")
    assert text_of(fig, "overall-effect") == REF["dl_k1"]["overall_line"].replace("Test for overall effect",
                                                                                   "Single study, not pooled")
    assert len(by_gid(fig, "study-markers")[0].get_offsets()) == 1
    assert by_gid(fig, "pooled-diamond") == []
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert not any(t.startswith(("IV,", "Total (")) or t.endswith("%") for t in texts), texts


def test_two_studies():
    fig = plots.forest(dl("dl_k2"), studies(2))
    assert text_of(fig, "heterogeneity") == REF["dl_k2"]["heterogeneity_line"]
    assert len(by_gid(fig, "study-markers")[0].get_offsets()) == 2


def test_all_effects_on_one_side_keep_the_line_of_no_effect():
    st = studies()
    st["yi"] = np.abs(st["yi"]) + 0.5
    r = pool(st["yi"], st["vi"], method="DL")
    fig = plots.forest(r, st)
    x0, x1 = forest_axes(fig).get_xlim()
    assert x0 < 0 < x1 and len(by_gid(fig, "null-line")) == 1
    assert _clipped_sides(fig, st) == len(by_gid(fig, "ci-arrow"))


def test_favours_labels_in_the_callers_words_either_side_of_null():
    fig = plots.forest(dl(), studies(), favours=("Favours specialist care", "Favours routine care"))
    left, right = by_gid(fig, "favours-left")[0], by_gid(fig, "favours-right")[0]
    assert plain(left.get_text()) == "Favours specialist care"
    assert plain(right.get_text()) == "Favours routine care"
    ax = forest_axes(fig)
    to_px = ax.transData.transform
    null_px = to_px((0, 0))[0]
    r = fig.canvas.get_renderer()
    assert left.get_window_extent(r).x1 <= null_px <= right.get_window_extent(r).x0


def test_subgroup_sections_with_subtotal_diamonds_and_difference_test():
    fig = subgroup_forest()
    diamonds = by_gid(fig, "subgroup-diamond")
    assert len(diamonds) == len(REF["subgroups"]["groups"]) == 2
    for d in diamonds:
        g = REF["subgroups"]["groups"][d.get_label()]
        x = d.get_xy()[:, 0]
        np.testing.assert_allclose([x.min(), x.max()], [g["ci_low"], g["ci_high"]], rtol=1e-12)
    assert len(by_gid(fig, "pooled-diamond")) == 1
    assert text_of(fig, "subgroup-differences") == REF["subgroups"]["differences_line"]
    het = {plain(t.get_text()) for t in by_gid(fig, "heterogeneity")}
    want = {g["heterogeneity_line"] for g in REF["subgroups"]["groups"].values()} | {REF["dl"]["heterogeneity_line"]}
    assert het == want
    shown = {plain(t.get_text()) for t in texts(fig)}
    for g in REF["subgroups"]["groups"]:  # subtotal weight = sum of the group's study weights
        idx = [i for i, r in enumerate(REF["studies"]["region"]) if r == g]
        assert f"{sum(REF['dl']['weights'][i] for i in idx):.1f}%" in shown
    assert len(by_gid(fig, "study-markers")[0].get_offsets()) == 9


def test_not_estimable_rows_are_listed_without_a_marker():
    st = studies(4)
    st.loc[2, ["yi", "vi"]] = np.nan
    ok = st["yi"].notna()
    res = pool(st["yi"][ok], st["vi"][ok], method="DL")
    fig = plots.forest(res, st)
    assert len(by_gid(fig, "study-markers")[0].get_offsets()) == 3
    assert "Not estimable" in {t.get_text() for t in texts(fig)}


def test_readable_at_two_column_width_and_nothing_overlaps_or_is_cut_off():
    long_title = "Length of hospital stay, specialist versus routine care (metafor dat.normand1999), " * 2
    for fig in (plots.forest(dl(), studies(), title=long_title),
                subgroup_forest(),
                plots.forest(dl("dl_k1"), studies(1))):
        assert fig.get_figwidth() == pytest.approx(17 / 2.54)
        fig.canvas.draw()  # tick and axis labels are placed at draw time
        r = fig.canvas.get_renderer()
        ts = texts(fig)
        assert min(t.get_fontsize() for t in ts) >= 7
        boxes = [t.get_window_extent(r) for t in ts]
        fb = fig.bbox
        for t, b in zip(ts, boxes):
            assert b.x0 >= fb.x0 - 0.5 and b.x1 <= fb.x1 + 0.5 and b.y0 >= fb.y0 - 0.5 and b.y1 <= fb.y1 + 0.5, \
                f"text {t.get_text()!r} is cut off"
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i].padded(-0.5), boxes[j].padded(-0.5)
                assert not a.overlaps(b), f"{ts[i].get_text()!r} overlaps {ts[j].get_text()!r}"


def test_height_grows_with_rows():
    h = [plots.forest(dl("dl_k2"), studies(2)).get_figheight(), plots.forest(dl(), studies()).get_figheight()]
    assert h[1] > h[0]


def test_save_writes_png_svg_pdf_at_300_dpi(tmp_path):
    fig = dl_forest()
    paths = plots.save(fig, tmp_path / "sub" / "forest")
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    with open(paths[0], "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert abs(width - fig.get_figwidth() * 300) <= 1 and abs(height - fig.get_figheight() * 300) <= 1
    assert paths[1].read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert paths[2].read_bytes()[:5] == b"%PDF-"


def test_save_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        plots.save(plots.forest(dl("dl_k1"), studies(1)), tmp_path / "x", formats=("png", "docx"))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="author"):
        plots.forest(dl(), studies(), label="author")
    with pytest.raises(TypeError, match="subgroup="):
        plots.forest(subgroup_result(), studies())
    with pytest.raises(TypeError, match="SubgroupResult"):
        plots.forest(dl(), studies(), subgroup="region")
    with pytest.raises(ValueError, match="fitted on 9 studies but studies has 4 rows"):
        plots.forest(dl(), studies(4))


# --------------------------------------------------------------------------
# funnel
# --------------------------------------------------------------------------
FS = REF["funnel_studies"]


def trimfill_result():
    return trimfill(FS["yi"], FS["vi"], method="DL")


def egger_result():
    return egger(FS["yi"], FS["vi"])


def test_funnel_points_inverted_axis_and_pseudo_limits():
    res = pool(FS["yi"], FS["vi"], method="DL")
    assert res.estimate == pytest.approx(REF["funnel_dl"]["estimate"], rel=1e-10)
    fig = plots.funnel(FS["yi"], FS["vi"], result=res, xlabel="Log odds ratio")
    (obs,) = by_gid(fig, "observed-studies")
    assert len(obs.get_offsets()) == len(FS["yi"]) == 37
    np.testing.assert_allclose(np.asarray(obs.get_offsets())[:, 1], np.sqrt(FS["vi"]))
    ax = fig.axes[0]
    y0, y1 = ax.get_ylim()
    assert y1 == 0 and y0 >= max(np.sqrt(FS["vi"]))  # 0 at the top
    (ci,) = by_gid(fig, "pseudo-ci")
    x, y = np.asarray(ci.get_xdata()), np.asarray(ci.get_ydata())
    np.testing.assert_allclose(x, res.estimate + np.array([-Z95, 0, Z95]) * y, rtol=1e-9)
    assert by_gid(fig, "filled-studies") == [] and by_gid(fig, "egger-line") == []
    assert not [p for p in fig.findobj(lambda o: str(o.get_gid()).startswith("contour"))]


def test_funnel_contours_egger_and_filled_studies():
    t = REF["trimfill"]
    e = REF["egger"]
    fig = plots.funnel(FS["yi"], FS["vi"], contours=True, egger=egger_result(),
                       trimfill=trimfill_result())
    for gid in ("contour-p>0.10", "contour-p0.10", "contour-p0.05", "contour-p0.01"):
        assert len(by_gid(fig, gid)) == 1, gid
    # contours are centred on 0: the 95% wedge's half-width at the bottom is 1.96 * se
    (tri,) = by_gid(fig, "contour-p0.05")
    xy = tri.get_xy()
    se_lim = fig.axes[0].get_ylim()[0]
    np.testing.assert_allclose(sorted(xy[:3, 0]), [-2.5758293035489 * se_lim, 0, 2.5758293035489 * se_lim])
    (fil,) = by_gid(fig, "filled-studies")
    assert len(fil.get_offsets()) == t["k0"] == 7
    np.testing.assert_allclose(np.asarray(fil.get_offsets())[:, 0], t["filled_yi"])
    face = fil.get_facecolors()
    assert np.allclose(face[:, :3], 1.0) or np.allclose(face[:, 3], 0.0)  # hollow
    (obs,) = by_gid(fig, "observed-studies")
    assert np.allclose(obs.get_facecolors()[:, :3], 0.0)  # filled black
    # centred on the trim-and-fill estimate, as metafor funnel(trimfill(res))
    (centre,) = by_gid(fig, "centre-line")
    assert centre.get_xdata()[0] == pytest.approx(t["result"]["estimate"])
    (eg,) = by_gid(fig, "egger-line")
    ex, ey = np.asarray(eg.get_xdata()), np.asarray(eg.get_ydata())
    np.testing.assert_allclose(ex, e["limit_estimate"] + e["asymmetry"] * ey, rtol=1e-12)


def test_funnel_drops_missing_rows_with_a_warning():
    y = list(FS["yi"][:5]) + [np.nan]
    v = list(FS["vi"][:5]) + [0.1]
    with pytest.warns(UserWarning, match=r"positions \[5\]"):
        fig = plots.funnel(y, v, result=pool(FS["yi"][:5], FS["vi"][:5]))
    assert len(by_gid(fig, "observed-studies")[0].get_offsets()) == 5
    # arrays that are not the result's studies are refused: the plot never pairs a fit with other data
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="not the studies the result was fitted on"):
        plots.funnel(y, v, result=pool(FS["yi"], FS["vi"]))


def test_funnel_with_filled_studies_is_centred_on_the_adjusted_estimate_only():
    tf = trimfill_result()
    # the old call with the observed fit as centre would draw filled studies around the wrong line
    with pytest.raises(ValueError, match="centred on the adjusted estimate"):
        plots.funnel(FS["yi"], FS["vi"], result=tf.original, trimfill=tf)
    fig = plots.funnel(FS["yi"], FS["vi"], result=tf.result, trimfill=tf)  # the old form, consistent
    (centre,) = by_gid(fig, "centre-line")
    assert centre.get_xdata()[0] == pytest.approx(REF["trimfill"]["result"]["estimate"])
    with pytest.raises(ValueError, match="pass a result"):
        plots.funnel()


def test_funnel_text_readable_and_inside_the_figure():
    fig = plots.funnel(FS["yi"], FS["vi"], contours=True, trimfill=trimfill_result(),
                       egger=True,
                       title="Passive smoking and lung cancer (metafor dat.hackshaw1998), a long title")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    assert min(t.get_fontsize() for t in texts(fig)) >= 7
    b = fig.get_tightbbox(r)  # inches; everything drawn, tick labels outside the view excluded
    assert b.x0 >= -0.01 and b.y0 >= -0.01 and b.x1 <= fig.get_figwidth() + 0.01 and b.y1 <= fig.get_figheight() + 0.01


def test_funnel_default_centre_is_the_pooled_estimate():
    fig = plots.funnel(FS["yi"], FS["vi"])
    (centre,) = by_gid(fig, "centre-line")
    assert centre.get_xdata()[0] == pytest.approx(REF["funnel_dl"]["estimate"], rel=1e-10)


def test_weight_column_and_label_name_are_honoured():
    st = studies(3).rename(columns={"label": "study"})
    st["weight"] = [50.0, 30.0, 20.0]
    res = pool(st["yi"], st["vi"], method="DL")
    fig = plots.forest(res, st, label="study")  # weights come from the column, not the result
    sizes = by_gid(fig, "study-markers")[0].get_sizes()
    np.testing.assert_allclose(sizes / sizes.max(), [1.0, 0.6, 0.4])
    shown = {t.get_text() for t in texts(fig)}
    assert {"50.0%", "30.0%", "20.0%", "Edinburgh"} <= shown


def test_too_wide_a_table_shrinks_to_7pt_then_widens_with_a_warning():
    st = studies(3)
    st.loc[0, "label"] = "A very long study label, with a long comment about its population and design " * 2
    with pytest.warns(UserWarning, match="wider than width_cm=17"):
        fig = plots.forest(pool(st["yi"], st["vi"]), st)
    assert fig.get_figwidth() > 17 / 2.54
    assert min(t.get_fontsize() for t in texts(fig)) == 7


def test_saved_files_are_identical_on_rerun_and_pdf_fonts_are_truetype(tmp_path):
    fig = plots.forest(dl("dl_k2"), studies(2))
    a = plots.save(fig, tmp_path / "a" / "f", formats=("svg", "pdf"))
    b = plots.save(fig, tmp_path / "b" / "f", formats=("svg", "pdf"))
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes(), x.name
    pdf = a[1].read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf


def test_non_numeric_cells_are_refused_by_row_and_nullable_missing_is_not_estimable():
    st = studies(3)
    st["sd1"] = st["sd1"].astype(object)
    st.loc[1, "sd1"] = "7 (range)"
    with pytest.raises(ValueError, match=r"studies\['sd1'\] must be numeric; rows 1"):
        plots.forest(pool(st["yi"], st["vi"]), st)
    st = studies(3)
    st["yi"] = st["yi"].astype("Float64")
    st.loc[2, "yi"] = pd.NA
    fig = plots.forest(dl("dl_k2"), st)
    assert len(by_gid(fig, "study-markers")[0].get_offsets()) == 2
