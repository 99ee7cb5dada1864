"""meta.binary.rma_mh / rma_peto against metafor 3.8.1 rma.mh() / rma.peto()
(tests/r/escalc_reference.R): dat.bcg (OR, RR, RD; level 90; correct=FALSE) and a set of
adversarial tables (a zero cell in one arm, no events in both arms, only events in both
arms), with metafor's add/to/drop00 pairs; weights as metafor weights()."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta.binary import BinaryResult, rma_mh, rma_peto
from meta.plots import forest, funnel
from tests._reference import arr

REF = json.loads((Path(__file__).parent / "fixtures" / "escalc_reference.json").read_text())
MH = {c["name"]: c for c in REF["rma_mh"]}
PETO = {c["name"]: c for c in REF["rma_peto"]}
FIELDS = {"k": "k", "k_yi": "k_yi", "estimate": "estimate", "se": "se", "zval": "stat", "pval": "p",
          "ci_low": "ci_low", "ci_high": "ci_high", "q": "q", "q_p": "q_p", "i2": "i2", "h2": "h2"}
OR_FIELDS = {"k_pos": "k_pos", "co": "co", "co_p": "co_p", "cmh": "cmh", "cmh_p": "cmh_p", "bd": "bd", "bd_p": "bd_p",
             "tarone": "tarone", "tarone_p": "tarone_p"}


def _opts(case):
    o = dict(case["opts"] or {})
    for key in ("add", "to", "drop00"):
        if isinstance(o.get(key), list):
            o[key] = tuple(o[key])
    return o


def _check(res, case, fields):
    for theirs, ours in fields.items():
        got, want = float(getattr(res, ours)), arr(case[theirs])[0]
        if np.isnan(want):
            assert np.isnan(got), (case["name"], theirs)
        else:
            assert got == pytest.approx(want, rel=1e-10, abs=1e-13), (case["name"], theirs, got, want)
    for col in ("yi", "vi"):
        np.testing.assert_allclose(getattr(res, col), arr(case[col]), rtol=1e-12, err_msg=f"{case['name']} {col}")
    # metafor weights() are per pooled table (na.omit: tables dropped by drop00[2] left out); ours per study with a yi
    has, w = ~np.isnan(arr(case["yi_f"])), arr(case["weights"])
    np.testing.assert_allclose(res.weights, w[has] if w.size == has.size else w, rtol=1e-12,
                               err_msg=f"{case['name']} weights")


@pytest.mark.parametrize("name", sorted(MH))
def test_rma_mh_matches_metafor(name):
    case = MH[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rma_mh(**case["args"], **_opts(case))
    assert isinstance(res, BinaryResult) and res.method == "MH"
    assert res.measure == case["opts"]["measure"]
    _check(res, case, {**FIELDS, **(OR_FIELDS if res.measure == "OR" else {})})


@pytest.mark.parametrize("name", sorted(PETO))
def test_rma_peto_matches_metafor(name):
    case = PETO[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rma_peto(**case["args"], **_opts(case))
    assert res.measure == "PETO" and res.method == "Peto"
    _check(res, case, {**FIELDS, "k_pos": "k_pos"})


def test_defaults_are_metafors_and_warn_for_missing_study_estimates():
    """rma.mh defaults add=c(1/2, 0), to=c('only0', 'none'), drop00=c(TRUE, FALSE): the double-zero
    and all-event tables have no yi (a warning names them) but stay in the MH sums."""
    case = MH["adv_RD"]
    with pytest.warns(UserWarning, match=r"positions \[2, 3\]"):
        res = rma_mh(**case["args"], measure="RD")
    assert res.k == 6 and res.k_yi == 4
    assert res.estimate == pytest.approx(case["estimate"], rel=1e-12)


def test_summary_and_repr_are_metafor_print():
    res = rma_mh(**MH["bcg_OR"]["args"])
    text = repr(res)
    assert text == res.summary() == str(res)
    assert "Model Results (OR scale):" in text and "Tarone's Test for Heterogeneity" in text
    assert f"{np.exp(MH['bcg_OR']['estimate']):.4f}" in text
    frame = res.to_frame()
    assert frame.loc[0, "exp_estimate"] == pytest.approx(np.exp(MH["bcg_OR"]["estimate"]), rel=1e-12)
    assert "yi" not in frame.columns and "weights" not in frame.columns


def test_data_and_slab_columns():
    a = MH["bcg_RR"]["args"]
    df = pd.DataFrame({"tpos": a["ai"], "tneg": a["bi"], "cpos": a["ci"], "cneg": a["di"]},
                      index=[f"trial {i + 1}" for i in range(len(a["ai"]))])
    res = rma_mh("tpos", "tneg", "cpos", "cneg", measure="RR", data=df)
    assert res.slab == tuple(df.index)
    assert res.estimate == pytest.approx(MH["bcg_RR"]["estimate"], rel=1e-12)


def test_plots_draw_the_fit():
    res = rma_peto(**PETO["bcg"]["args"])
    fig = forest(res)
    texts = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    assert "Odds Ratio (95% CI)" in texts and "Peto, Fixed, 95% CI" in texts
    assert not any(t == "Prediction interval" for t in texts)
    fig2 = funnel(rma_mh(**MH["bcg_OR"]["args"]))
    assert fig2.axes[0].get_xlabel() == "Odds Ratio (log scale)"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rma_mh(ai=[1, 2], bi=[3, -4], ci=[1, 1], di=[3, 3]), r"bi must be >= 0 \(a count\); bad at positions \[1\]"),
        (lambda: rma_mh(ai=[1, 2], bi=[3, 4], ci=[1, 1], di=[3, 3], measure="PETO"), r"rma_peto"),
        (lambda: rma_mh(ai=[1, 2], bi=[3, 4], ci=[1, 1], di=[3, 3], measure="SMD"), r"escalc"),
        (lambda: rma_mh(ai=[1], bi=[3], ci=[1], di=[3], to=("only0", "some")), r"to must be one of"),
        (lambda: rma_mh(ai=[1], bi=[3], ci=[1], di=[3], add=(0.5, 0.5, 0.5)), r"add must be one value or a pair"),
        (lambda: rma_mh(ai=[1], ci=[5], n1i=[3], n2i=[4]), r"ci must be <= n2i.*positions \[0\]"),
        (lambda: rma_peto(ai=[0, 0], bi=[5, 6], ci=[0, 0], di=[5, 5], drop00=False), r"never occurred"),
        (lambda: rma_mh(ai=[4, 0, 6], bi=[16, 0, 14], ci=[8, 0, 9], di=[12, 0, 11]),
         r"tables at positions \[1\] have no participants.*drop00=\(True, True\)"),
        (lambda: rma_peto(ai=[4, 0, 6], bi=[16, 0, 14], ci=[8, 0, 9], di=[12, 0, 11]), r"no participants"),
    ],
)
def test_bad_input(call, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=match):
            call()


def test_all_zero_table_dropped_by_drop00_pair():
    """With drop00=(True, True) the empty table leaves both stages: the fit equals the one without it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = rma_mh(ai=[4, 0, 6], bi=[16, 0, 14], ci=[8, 0, 9], di=[12, 0, 11], drop00=(True, True))
    b = rma_mh(ai=[4, 6], bi=[16, 14], ci=[8, 9], di=[12, 11])
    assert a.k == 2 and a.estimate == b.estimate and a.q == b.q


def test_or_without_events_in_one_arm_is_nan_as_metafor():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rma_mh(ai=[0, 0], bi=[10, 12], ci=[3, 4], di=[7, 8])
    assert np.isnan(res.estimate) and np.isnan(res.se) and np.isnan(res.tarone)
    assert np.isfinite(res.cmh)  # the CMH test needs no estimate (metafor computes it too)


def test_verbs_of_a_pool_result_say_what_to_do_with_an_mh_fit():
    from meta.bias import egger
    from meta.pool import leave_one_out

    res = rma_mh(**MH["bcg_OR"]["args"])
    for verb in (leave_one_out, egger):
        with pytest.raises(ValueError, match=r"Mantel-Haenszel fit is not refitted here.*pool\(res.yi, res.vi"):
            verb(res)
