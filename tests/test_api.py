"""The public API never pairs the wrong rows, and one fitted object goes
through every verb.

* pandas inputs are paired by index label (meta._checks.align): Series
  holding the same labels in another order give metafor's numbers for the
  studies as labelled; different labels are refused, naming the arguments
  and the labels.
* ``PoolResult`` carries ``yi``, ``vi`` and ``slab``; ``egger(res)``,
  ``trimfill(res)``, ``leave_one_out(res)``, ``cumulative(res, order=)``,
  ``forest(res)``, ``funnel(res)`` take it, as metafor's ``regtest(res)``,
  ``trimfill(res)``, ``leave1out(res)``, ``cumul(res)``, ``forest(res)``,
  ``funnel(res)``.

Reference numbers: metafor 3.8.1 via tests/r/pool_reference.R
(tests/fixtures/pool_reference.json: dat.bcg log risk ratios) and
tests/r/plots_reference.R (tests/fixtures/plots_reference.json:
dat.normand1999 SMDs, dat.hackshaw1998 log odds ratios, their weights,
regtest and trimfill).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from meta import effects, plots  # noqa: E402
from meta.bias import egger, trimfill  # noqa: E402
from meta.pool import PoolResult, cumulative, leave_one_out, pool, pool_many, subgroups  # noqa: E402

FIX = Path(__file__).parent / "fixtures"
POOL = {c["name"]: c for c in json.loads((FIX / "pool_reference.json").read_text())["cases"]}
PLOTS = json.loads((FIX / "plots_reference.json").read_text(encoding="utf-8"))
BCG = POOL["bcg_logrr"]
TOL = 1e-10  # DL and FE are closed forms: metafor's numbers to 1e-10


def bcg_series(perm=None):
    """dat.bcg as Series labelled trial1..trial13 (metafor's row order), optionally permuted."""
    lab = [f"trial{i + 1}" for i in range(len(BCG["yi"]))]
    y = pd.Series(BCG["yi"], index=lab)
    v = pd.Series(BCG["vi"], index=lab)
    if perm is not None:
        y, v = y.iloc[perm], v.iloc[perm]
    return y, v


PERM = np.random.default_rng(2016).permutation(len(BCG["yi"]))


def fit_ref(method="DL", test="z"):
    return next(f for f in BCG["fits"] if f["method"] == method and f["test"] == test and f["level"] == 0.95)


# --------------------------------------------------------------------------- pairing by label


def test_permuted_series_are_paired_by_label_and_give_metafors_numbers():
    y, v = bcg_series()
    ref = fit_ref("DL")
    shuffled = pool(y, v.iloc[PERM], method="DL")  # vi in another order: reordered to yi's
    assert shuffled.estimate == pytest.approx(ref["estimate"], rel=TOL)
    assert shuffled.tau2 == pytest.approx(ref["tau2"], rel=TOL)
    np.testing.assert_allclose(shuffled.weights, ref["weights"], rtol=TOL)
    assert shuffled.slab == tuple(y.index)
    same = pool(y, v, method="DL")
    assert shuffled == same and np.array_equal(shuffled.weights, same.weights)
    # both permuted: the first argument's order is kept, the numbers are the same
    both = pool(y.iloc[PERM], v, method="DL")
    assert both.slab == tuple(y.index[PERM])
    np.testing.assert_allclose(both.weights, np.asarray(ref["weights"])[PERM], rtol=TOL)


def test_leave_one_out_cumulative_subgroups_egger_trimfill_pair_by_label():
    y, v = bcg_series()
    vp = v.iloc[PERM]
    pd.testing.assert_frame_equal(leave_one_out(y, vp), leave_one_out(y, v))
    order = pd.Series(BCG["order"], index=y.index)
    pd.testing.assert_frame_equal(cumulative(y, vp, order.iloc[PERM]), cumulative(y, v, order))
    ref = next(c for c in BCG["cumul"] if c["method"] == "DL" and c["test"] == "z")
    np.testing.assert_allclose(cumulative(y, vp, order.iloc[PERM])["estimate"], ref["estimate"], rtol=TOL)
    groups = pd.Series(BCG["groups"], index=y.index)
    a = subgroups(y, vp, groups.iloc[PERM[::-1]])
    b = subgroups(y, v, groups)
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    assert egger(y, vp) == egger(y, v)
    ta, tb = trimfill(y, vp), trimfill(y, v)
    assert ta.k0 == tb.k0 and ta.result == tb.result
    np.testing.assert_array_equal(ta.filled_yi, tb.filled_yi)


def test_pool_many_pairs_dataframes_by_rows_and_columns():
    rng = np.random.default_rng(1)
    y = pd.DataFrame(rng.normal(size=(4, 5)), index=list("abcd"), columns=[f"s{j}" for j in range(5)])
    v = pd.DataFrame(rng.uniform(0.05, 0.5, size=(4, 5)), index=y.index, columns=y.columns)
    ref = pool_many(y, v, engine="numpy")
    got = pool_many(y, v.iloc[[2, 0, 3, 1], [4, 3, 2, 1, 0]], engine="numpy")
    pd.testing.assert_frame_equal(got, ref)
    with pytest.raises(ValueError, match=r"yi and vi .*indexes hold different labels \(only in yi: \['d'\]; only in vi: \['x'\]\)"):
        pool_many(y, v.rename(index={"d": "x"}), engine="numpy")


@pytest.mark.parametrize(
    "call",
    [
        lambda y, v: pool(y, v),
        lambda y, v: leave_one_out(y, v),
        lambda y, v: cumulative(y, v),
        lambda y, v: subgroups(y, v, ["a"] * 7 + ["b"] * 6),
        lambda y, v: egger(y, v),
        lambda y, v: trimfill(y, v),
    ],
    ids=["pool", "leave_one_out", "cumulative", "subgroups", "egger", "trimfill"],
)
def test_different_labels_are_refused_naming_arguments_and_labels(call):
    y, v = bcg_series()
    v = v.rename(index={"trial3": "trial99"})
    with pytest.raises(ValueError, match=r"yi and vi .*only in yi: \['trial3'\]; only in vi: \['trial99'\]"):
        call(y, v)


def test_other_per_study_arguments_are_paired_too():
    y, v = bcg_series()
    with pytest.raises(ValueError, match=r"yi and groups .*only in groups: \[0, 1, "):
        subgroups(y, v, pd.Series(BCG["groups"]))  # RangeIndex 0..12 beside trial1..trial13
    with pytest.raises(ValueError, match=r"yi and order .*different labels"):
        cumulative(y, v, pd.Series(BCG["order"]))
    with pytest.raises(ValueError, match="duplicated labels"):
        pool(pd.Series([0.1, 0.2, 0.3], index=["a", "a", "b"]), pd.Series([0.1, 0.2, 0.3], index=["a", "b", "a"]))


def test_a_series_beside_a_plain_array_is_taken_by_position():
    y, v = bcg_series(PERM)
    res = pool(y, v.to_numpy())  # documented: as pandas does for Series + ndarray
    np.testing.assert_allclose(res.weights, np.asarray(fit_ref()["weights"])[PERM], rtol=TOL)
    assert res.slab == tuple(y.index)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pool([1e200, -1e200, 0.0], [1.0, 1.0, 1.0]), r"pool: yi, vi give non-finite results"),
        (lambda: pool([0.1, 0.2], [1e-320, 1e-320], method="FE"), r"pool: yi, vi give non-finite results"),
        (lambda: leave_one_out([1e200, -1e200, 0.0], [1.0, 1.0, 1.0]), r"leave_one_out: yi, vi give non-finite"),
        (lambda: cumulative([1e200, -1e200, 0.0], [1.0, 1.0, 1.0]), r"cumulative: yi, vi give non-finite"),
        (lambda: egger([1e200, -1e200, 0.0, 1.0], [1.0, 2.0, 1.0, 3.0]), r"egger: yi, vi give non-finite"),
        (lambda: pool_many(np.array([[1e200, -1e200]]), np.ones((1, 2))), r"pool_many: yi, vi give non-finite"),
        (lambda: pool([0.1, 0.2j], [0.1, 0.1]), r"yi must be real numbers, got complex"),
        (lambda: pool(np.array([0.1, 0.2]), np.array([1 + 0j, 1])), r"vi must be real numbers, got complex"),
        (lambda: pool([True, False], [0.1, 0.1]), r"yi must be real numbers, got booleans"),
        (lambda: pool(pd.Series([0.1, 0.2]), pd.Series([True, True])), r"vi must be real numbers, got booleans"),
        (lambda: egger([0.1, 0.2, 0.3], [True, 0.1, 0.2]), r"egger: vi must be real numbers, got booleans"),
        (lambda: pool_many(np.ones((2, 2), dtype=bool), np.ones((2, 2))), r"yi must be real numbers, got booleans"),
        (lambda: effects.smd(0.5, 1.0, 10.5, 0.0, 1.0, 10), r"n1 must be a whole number .*positions \[0\]: \[10.5\]"),
    ],
)
def test_overflow_complex_boolean_and_non_integer_n_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- one object through every verb


def test_result_carries_its_data_read_only_and_out_of_the_table():
    y, v = bcg_series()
    res = pool(y, v)
    np.testing.assert_array_equal(res.yi, BCG["yi"])
    np.testing.assert_array_equal(res.vi, BCG["vi"])
    assert res.slab == tuple(y.index)
    assert pool(BCG["yi"], BCG["vi"]).slab == tuple(range(1, 14))  # metafor's default 1..k
    assert pool(BCG["yi"], BCG["vi"], slab=y.index).slab == tuple(y.index)
    with pytest.raises(ValueError):
        res.yi[0] = 0.0
    assert not {"yi", "vi", "slab", "weights"} & set(res.to_frame().columns)
    assert "slab" not in repr(res)


def test_egger_of_a_result_is_egger_of_its_arrays():
    fs = PLOTS["funnel_studies"]
    res = pool(fs["yi"], fs["vi"], method="REML")
    assert egger(res) == egger(fs["yi"], fs["vi"])
    assert egger(res).intercept == pytest.approx(PLOTS["egger"]["limit_estimate"], rel=1e-10)


def test_leave_one_out_and_cumulative_of_a_result_use_its_method_and_labels():
    y, v = bcg_series()
    res = pool(y, v, method="REML", test="hksj")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = leave_one_out(res)
        want = leave_one_out(y, v, method=res.method, test="hksj")
    pd.testing.assert_frame_equal(got, want)
    ref = next(c for c in BCG["leave1out"] if c["method"] == "REML" and c["test"] == "hksj")
    np.testing.assert_allclose(got["estimate"], ref["estimate"], rtol=1e-8)
    assert list(got["omitted"]) == list(y.index)
    order = pd.Series(BCG["order"], index=y.index).iloc[PERM]  # paired with the result's slab
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.testing.assert_frame_equal(cumulative(res, order=order),
                                      cumulative(y, v, BCG["order"], method="REML", test="hksj"))
        pd.testing.assert_frame_equal(cumulative(res, order), cumulative(res, order=order))
    with pytest.raises(ValueError, match=r"method='DL' differs from the result's method='REML'"):
        leave_one_out(res, method="DL")
    with pytest.raises(ValueError, match="a PoolResult and vi"):
        leave_one_out(res, v)


def test_trimfill_of_a_result_uses_its_method_and_labels():
    fs = PLOTS["funnel_studies"]
    t = PLOTS["trimfill"]
    res = pool(pd.Series(fs["yi"], index=fs["label"]), pd.Series(fs["vi"], index=fs["label"]), method="DL")
    tf = trimfill(res)
    assert tf.method == "DL" and tf.k0 == t["k0"] == 7
    assert tf.result.estimate == pytest.approx(t["result"]["estimate"], rel=1e-10)
    assert tf.result.slab == tuple(fs["label"]) + tuple(f"Filled {i + 1}" for i in range(7))
    np.testing.assert_allclose(tf.result.yi[-7:], t["filled_yi"], rtol=1e-10)
    assert list(tf.filled) == [False] * 37 + [True] * 7


def _funnel_points(fig, gid):
    (pc,) = [a for a in fig.findobj(lambda o: o.get_gid() == gid)]
    return pc


def test_funnel_of_trimfill_draws_k0_hollow_points_centred_on_the_adjusted_estimate():
    fs = PLOTS["funnel_studies"]
    t = PLOTS["trimfill"]
    res = pool(fs["yi"], fs["vi"], method="DL")
    fig = plots.funnel(trimfill(res))
    filled = _funnel_points(fig, "filled-studies")
    assert len(filled.get_offsets()) == t["k0"] == 7
    np.testing.assert_allclose(np.sort(np.asarray(filled.get_offsets())[:, 0]), np.sort(t["filled_yi"]), rtol=1e-10)
    assert np.allclose(filled.get_facecolors()[:, :3], 1.0)  # hollow
    assert len(_funnel_points(fig, "observed-studies").get_offsets()) == 37
    (centre,) = fig.findobj(lambda o: o.get_gid() == "centre-line")
    assert centre.get_xdata()[0] == pytest.approx(t["result"]["estimate"], rel=1e-10)
    assert t["result"]["estimate"] != pytest.approx(res.estimate, rel=1e-3)  # really the adjusted one


def test_funnel_of_a_result_draws_what_it_holds_k1_included():
    fs = PLOTS["funnel_studies"]
    res = pool(fs["yi"], fs["vi"], method="REML")
    fig = plots.funnel(res)
    np.testing.assert_allclose(np.asarray(_funnel_points(fig, "observed-studies").get_offsets())[:, 1], np.sqrt(fs["vi"]))
    (centre,) = fig.findobj(lambda o: o.get_gid() == "centre-line")
    assert centre.get_xdata()[0] == res.estimate  # REML, not a DL refit
    one = plots.funnel(pool([0.3], [0.04]))
    assert len(_funnel_points(one, "observed-studies").get_offsets()) == 1


def _rows(fig):
    """{label: (weight text, effect text)} read off the drawn forest table, row by row (same y)."""
    tab = next(a for a in fig.axes if a.get_label() == "forest-table")
    by_y: dict[float, list[Text]] = {}
    for t in tab.texts:
        by_y.setdefault(round(t.get_position()[1], 6), []).append(t)
    out = {}
    for cells in by_y.values():
        cells = sorted(cells, key=lambda t: t.get_position()[0])
        words = [c.get_text() for c in cells]
        pct = [w for w in words if w.endswith("%") and w[:-1].replace(".", "").isdigit()]
        if pct and not words[0].startswith(("Total", "Subtotal")):
            out[words[0]] = (pct[0], words[-1].replace("\u2212", "-"))
    return out


def test_forest_with_a_shuffled_study_table_puts_each_weight_beside_its_own_label():
    st = pd.DataFrame(PLOTS["studies"])
    ref = PLOTS["dl"]
    res = pool(st["yi"], st["vi"], method="DL", slab=st["label"])
    shuffled = st.iloc[[8, 3, 0, 6, 1, 7, 2, 5, 4]]
    # matched by label (slab), and for a result with default labels by the (yi, vi) pairs
    for fit in (res, pool(st["yi"].to_numpy(), st["vi"].to_numpy(), method="DL")):
        drawn = _rows(plots.forest(fit, shuffled))
        assert len(drawn) == len(st)
        for lab, yi, vi, w in zip(st["label"], st["yi"], st["vi"], ref["weights"]):
            weight, effect = drawn[lab]
            assert weight == f"{w:.1f}%", lab  # metafor's weights() for this study
            assert effect.startswith(f"{yi:.2f} ["), lab
    # the squares follow the table: the area of the square on each label's row is its weight
    fig = plots.forest(res, shuffled)
    (sq,) = fig.findobj(lambda o: o.get_gid() == "study-markers")
    sizes = sq.get_sizes()
    want = np.asarray(ref["weights"])[[8, 3, 0, 6, 1, 7, 2, 5, 4]]
    np.testing.assert_allclose(sizes / sizes.max(), want / want.max(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(sq.get_offsets())[:, 0], shuffled["yi"], rtol=1e-12)


def test_forest_needs_no_study_table_and_refuses_a_table_of_other_studies():
    st = pd.DataFrame(PLOTS["studies"])
    res = pool(st["yi"], st["vi"], method="DL", slab=st["label"])
    drawn = _rows(plots.forest(res))
    assert {lab: w for lab, (w, _) in drawn.items()} == {
        lab: f"{w:.1f}%" for lab, w in zip(st["label"], PLOTS["dl"]["weights"])}
    other = st.copy()
    other.loc[2, "yi"] += 0.5
    with pytest.raises(ValueError, match=r"rows \['" + st["label"][2] + r"'\] have yi/vi different"):
        plots.forest(res, other)
    with pytest.raises(ValueError, match="do not hold the result's studies"):
        plots.forest(pool(st["yi"], st["vi"]), other)  # default labels 0..8: matched by (yi, vi)
    sub = subgroups(st["yi"], st["vi"], st["region"], slab=st["label"])
    fig = plots.forest(sub)
    assert len(fig.findobj(lambda o: o.get_gid() == "subgroup-diamond")) == len(sub.groups)
    k1 = plots.forest(pool(st["yi"][:1], st["vi"][:1], slab=st["label"][:1]))
    assert _rows(k1) == {}  # one study: not pooled, so no weight column (and no Total row)
    assert st["label"][0] in {t.get_text() for t in k1.axes[0].texts}


def test_forest_of_trimfill_marks_the_filled_studies():
    fs = PLOTS["funnel_studies"]
    tf = trimfill(pool(fs["yi"], fs["vi"], method="DL", slab=fs["label"]))
    fig = plots.forest(tf, xlabel="Log OR (95% CI)")
    (hollow,) = fig.findobj(lambda o: o.get_gid() == "filled-markers")
    np.testing.assert_allclose(np.asarray(hollow.get_offsets())[:, 0], tf.filled_yi, rtol=1e-12)
    assert np.allclose(hollow.get_facecolors()[:, :3], 1.0)
    (diamond,) = fig.findobj(lambda o: o.get_gid() == "pooled-diamond")
    assert diamond.get_xy()[1, 0] == pytest.approx(PLOTS["trimfill"]["result"]["estimate"], rel=1e-10)
    assert "Filled 7" in _rows(fig)
    assert "7 studies filled in" in next(t.get_text() for t in fig.findobj(Text) if t.get_gid() == "trimfill-note")


def test_a_hand_built_result_without_data_is_refused_by_the_verbs():
    res = PoolResult(k=2, estimate=0.1, se=0.1, stat=1.0, p=0.3, ci_low=-0.1, ci_high=0.3, tau2=0.0, tau=0.0,
                     i2=0.0, h2=1.0, q=0.1, q_df=1, q_p=0.7, pi_low=-0.1, pi_high=0.3, weights=np.array([50.0, 50.0]))
    for verb in (leave_one_out, egger, trimfill):
        with pytest.raises(ValueError, match="carries no yi/vi"):
            verb(res)
