"""A result knows its measure (metafor keeps it in the rma object): pool() reads it from an
escalc frame, summary() adds the back-transformed estimate (metafor predict(transf=exp) /
transf.ztor on dat.bcg and dat.mcdaniel1994, tests/r/escalc_reference.R), forest() and funnel()
label and back-transform their axes by it; and the habits of the field: print(res), slab=, a
Series from the fitted table paired by its index in every verb, bayes_pool(res)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta import bayes, bias
from meta.escalc import escalc
from meta.plots import forest, funnel
from meta.pool import PoolResult, cumulative, leave_one_out, pool, subgroups
from tests._reference import arr

REF = json.loads((Path(__file__).parent / "fixtures" / "escalc_reference.json").read_text())
LAB = REF["labels"]
BCG = {c["name"]: c for c in REF["escalc"]}["bcg_OR"]["args"]


def _bcg() -> pd.DataFrame:
    df = pd.DataFrame({"tpos": BCG["ai"], "tneg": BCG["bi"], "cpos": BCG["ci"], "cneg": BCG["di"],
                       "year": arr(LAB["year"]).astype(int), "author": LAB["author"]})
    return escalc("OR", ai="tpos", bi="tneg", ci="cpos", di="cneg", data=df)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]


def test_pool_reads_the_measure_and_back_transforms_as_metafor_predict():
    es = _bcg()
    res = pool(es.yi, es.vi)
    assert res.measure == "OR"
    assert pool(es) == res  # pool(escalc frame) = pool(es.yi, es.vi), metafor rma(yi, vi, data=es)
    for ours, theirs in (("estimate", "estimate"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("tau2", "tau2")):
        assert getattr(res, ours) == pytest.approx(LAB[theirs], rel=1e-10)
    text = res.summary()
    assert "measure = OR (Log Odds Ratio)" in text
    for key in ("exp_estimate", "exp_ci_low", "exp_ci_high", "exp_pi_low", "exp_pi_high"):
        assert f"{LAB[key]:.4f}" in text, key
    assert repr(res) == text == str(res)  # print(res) is metafor's print


def test_measure_argument_and_default():
    assert pool([0.1, 0.3], [0.01, 0.02]).measure == "GEN"
    assert pool([0.1, 0.3], [0.01, 0.02], measure="rr").measure == "RR"
    assert "Back-transformed" not in pool([0.1, 0.3], [0.01, 0.02]).summary()
    with pytest.raises(ValueError, match=r"measure must be one of .*'OR'"):
        pool([0.1, 0.3], [0.01, 0.02], measure="LOGOR")
    with pytest.raises(ValueError, match=r"without yi and vi columns"):
        pool(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    with pytest.raises(ValueError, match=r"vi is missing"):
        pool([0.1, 0.2])


def test_zcor_back_transformed_with_tanh():
    z = LAB["zcor"]
    es = pd.DataFrame({"yi": z["yi"], "vi": z["vi"]})
    res = pool(es, measure="ZCOR")
    text = res.summary()
    for key in ("r_estimate", "r_ci_low", "r_ci_high"):
        assert f"{z[key]:.4f}" in text, key
    fig = forest(res, max_rows=None)  # all 160 studies as the labelled table, with its Total row
    want = f"{z['r_estimate']:.2f} [{z['r_ci_low']:.2f}, {z['r_ci_high']:.2f}]"
    assert want in _texts(fig)
    assert "Correlation Coefficient (95% CI)" in _texts(fig)
    caterpillar = forest(res)  # k = 160 > max_rows: the caterpillar plot's Total line is back-transformed too
    assert any(t.startswith(f"Total (95% CI): {want}") for t in _texts(caterpillar))
    assert "Correlation Coefficient (95% CI)" in _texts(caterpillar)
    assert funnel(res).axes[0].get_xlabel() == "Correlation Coefficient"


def test_forest_ratio_axis_and_overrides():
    res = pool(_bcg())
    fig = forest(res)
    texts = _texts(fig)
    assert "Odds Ratio (95% CI)" in texts
    assert f"{LAB['exp_estimate']:.2f} [{LAB['exp_ci_low']:.2f}, {LAB['exp_ci_high']:.2f}]" in texts
    ax = [a for a in fig.axes if a.get_label() == "forest"][0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "1" in labels and all(float(x) > 0 for x in labels)
    np.testing.assert_allclose(np.exp(ax.get_xticks()), [float(x) for x in labels], rtol=1e-12)
    raw = forest(res, atransf=False)
    assert "Log[OR] (95% CI)" in _texts(raw)
    assert f"{LAB['estimate']:.2f}".replace("-", "\u2212") in " ".join(_texts(raw))
    lin = forest(res, transf=np.exp)  # metafor transf=exp: values drawn as odds ratios, null line at 1
    null = [ln for ln in lin.findobj() if getattr(ln, "get_gid", lambda: None)() == "null-line"][0]
    assert null.get_xdata()[0] == 1.0
    assert forest(res, xlabel="OR [95% CI]") is not None
    with pytest.raises(TypeError, match="transf must be a function"):
        forest(res, transf="exp")


def test_funnel_of_escalc_columns_reads_their_measure():
    es = _bcg()
    assert funnel(es.yi, es.vi).axes[0].get_xlabel() == "Odds Ratio (log scale)"


def test_smd_and_generic_labels():
    yi, vi = [0.2, 0.5, -0.1], [0.04, 0.05, 0.03]
    assert "SMD (95% CI)" in _texts(forest(pool(yi, vi, measure="SMD")))
    assert "Estimate (95% CI)" in _texts(forest(pool(yi, vi)))
    assert funnel(pool(yi, vi)).axes[0].get_xlabel() == "Observed Outcome"
    assert funnel(pool(yi, vi, measure="SMD")).axes[0].get_xlabel() == "Standardized Mean Difference"
    assert funnel(pool(yi, vi), xlabel="SMD").axes[0].get_xlabel() == "SMD"


def test_measure_travels_through_trimfill_and_subgroups():
    res = pool(_bcg())
    tf = bias.trimfill(res)
    assert tf.result.measure == "OR" and tf.original.measure == "OR"
    assert funnel(tf).axes[0].get_xlabel() == "Odds Ratio (log scale)"
    es = _bcg()
    sg = subgroups(es.yi, es.vi, es.year > 1960)
    assert sg.overall.measure == "OR" and all(g.measure == "OR" for g in sg.groups.values())
    sg2 = subgroups(es.yi.to_numpy(), es.vi.to_numpy(), (es.year > 1960).to_numpy(), measure="OR")
    assert sg2.overall.measure == "OR" and "Odds Ratio (95% CI)" in _texts(forest(sg2))


def test_cumulative_order_from_the_same_table_as_slab():
    """pool(df.yi, df.vi, slab=df.author) then cumulative(res, order=df.year): the Series pair by
    the table's index (metafor cumul(res, order=year) on dat.bcg)."""
    es = _bcg()
    res = pool(es.yi, es.vi, slab=es.author)
    out = cumulative(res, order=es.year)
    ref = LAB["cumul_year"]
    np.testing.assert_allclose(out["estimate"], ref["estimate"], rtol=1e-10)
    np.testing.assert_allclose(out["ci_low"], ref["ci_low"], rtol=1e-10)
    assert list(out["added"]) == [LAB["author"][int(i) - 1] for i in ref["slab"]]
    # the order may also be labelled by slab, or given in the table's other order
    by_slab = pd.Series(es.year.to_numpy(), index=[f"s{i}" for i in range(len(es))])
    res2 = pool(es.yi, es.vi, slab=list(by_slab.index))
    np.testing.assert_allclose(cumulative(res2, order=by_slab.iloc[::-1])["estimate"], ref["estimate"], rtol=1e-10)
    np.testing.assert_allclose(cumulative(res, order=es.year.iloc[::-1])["estimate"], ref["estimate"], rtol=1e-10)
    with pytest.raises(ValueError, match="match neither the index of the data .* nor its slab"):
        cumulative(res, order=pd.Series(es.year.to_numpy(), index=range(100, 100 + len(es))))


def test_slab_everywhere_labels_alias():
    es = _bcg()
    res = pool(es.yi, es.vi)
    a = leave_one_out(res, slab=es.author)
    np.testing.assert_allclose(a["estimate"], LAB["leave1out"]["estimate"], rtol=1e-10)
    assert list(a["omitted"]) == list(es.author)
    assert list(leave_one_out(res, labels=es.author)["omitted"]) == list(es.author)
    with pytest.raises(ValueError, match="pass the study labels once, as slab="):
        leave_one_out(res, slab=es.author, labels=es.author)
    with pytest.raises(ValueError, match="differs from the result's method.*refit with pool"):
        leave_one_out(res, method="REML")


def test_bayes_pool_takes_a_fitted_result():
    es = _bcg()
    res = pool(es, level=0.9)
    a = bayes.bayes_pool(res)
    b = bayes.bayes_pool(es.yi, es.vi, level=0.9)
    assert a == b and a.level == 0.9
    assert bayes.bayes_pool(es) == bayes.bayes_pool(es.yi, es.vi)
    with pytest.raises(ValueError, match="pass the result alone"):
        bayes.bayes_pool(res, es.vi)


def test_hand_built_result_repr_falls_back():
    r = PoolResult(k=1, estimate=0.1, se=0.1, stat=1.0, p=0.3, ci_low=-0.1, ci_high=0.3, tau2=0.0, tau=0.0, i2=0.0,
                   h2=1.0, q=0.0, q_df=0, q_p=1.0, pi_low=-0.1, pi_high=0.3, weights=np.array([100.0]), method="BOGUS")
    assert repr(r).startswith("PoolResult(k=1")
