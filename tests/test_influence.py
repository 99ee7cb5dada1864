"""meta.influence against metafor 3.8.1 influence(), rstandard(), rstudent() and baujat()
(tests/fixtures/influence_reference.json, from tests/r/influence_reference.R).

Data: dat.bcg (escalc RR), dat.normand1999 (escalc MD), dat.hackshaw1998 and adversarial
inputs (k = 2, k = 3, identical effects, tau2 = 0 boundary, one huge outlier), every
estimator (FE, DL, REML, ML, PM, EB, HE, HS, SJ) with the z and the Knapp-Hartung test.
Tolerances: closed-form estimators (FE, DL, HE, HS, SJ) 1e-9 relative; iterative ones
(REML, ML, PM, EB; metafor run with threshold/tol 1e-12) 1e-7 relative; both with an
absolute floor of 1e-10 (values that are 0 up to rounding, e.g. dffits when every yi is equal).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta import influence as influence_module
from meta.influence import DIAGNOSTICS, InfluenceResult, baujat, influence, rstandard, rstudent
from meta.pool import PoolResult, pool
from tests._reference import arr

FIXTURE = Path(__file__).parent / "fixtures" / "influence_reference.json"
REF = json.loads(FIXTURE.read_text())
CASES = {c["name"]: c for c in REF["cases"]}
ITERATIVE = {"REML", "ML", "PM", "EB"}
FITS = [(c["name"], f) for c in REF["cases"] for f in c["fits"]]


def _id(p):
    name, f = p
    return f"{name}-{f['method']}-{f['test']}"


def tol(method):
    return {"rtol": 1e-7 if method in ITERATIVE else 1e-9, "atol": 1e-10}


def fit_of(name, f):
    c = CASES[name]
    return pool(arr(c["yi"]), arr(c["vi"]), method=f["method"], test=f["test"])


def test_fixture_is_from_metafor_381():
    assert REF["metafor"] == "3.8.1"
    assert {"bcg_logrr", "normand1999_md", "hackshaw1998_logor", "k2", "k3", "identical_effects",
            "tau2_zero_boundary", "huge_outlier"} <= set(CASES)


@pytest.mark.parametrize("case", [p for p in FITS if "influence" in p[1]], ids=_id)
def test_influence_matches_metafor(case):
    """rstudent, dffits, cook.d, cov.r, tau2.del, QE.del, hat, weight and dfbs of metafor
    influence(rma(yi, vi, method=, test=)), and its "*" rule (is.infl; NA counts as not flagged)."""
    name, f = case
    inf = influence(fit_of(name, f))
    ref = f["influence"]
    for key in DIAGNOSTICS + ("dfbetas",):
        np.testing.assert_allclose(getattr(inf, key), arr(ref[key]), equal_nan=True, err_msg=key, **tol(f["method"]))
    np.testing.assert_array_equal(inf.is_infl, arr(ref["is_infl"]) == 1)


@pytest.mark.parametrize("case", [p for p in FITS if "influence" not in p[1]], ids=_id)
def test_influence_refused_where_metafor_stops(case):
    """Every yi equal with test='knha': s2w = 0, so var(estimate) = 0 and metafor's
    influence() stops (chol of vb fails); we raise a ValueError saying why."""
    name, f = case
    assert name == "identical_effects" and f["test"] == "hksj"
    with pytest.raises(ValueError, match="variance of the estimate is .*, not positive"):
        influence(fit_of(name, f))


@pytest.mark.parametrize("case", FITS, ids=_id)
def test_rstandard_matches_metafor(case):
    name, f = case
    rs = rstandard(fit_of(name, f))
    for key in ("resid", "se", "z"):
        np.testing.assert_allclose(rs[key].to_numpy(), arr(f["rstandard"][key]), equal_nan=True, err_msg=key,
                                   **tol(f["method"]))


@pytest.mark.parametrize("case", [p for p in FITS if "baujat" in p[1]], ids=_id)
def test_baujat_coordinates_match_metafor(case):
    name, f = case
    bj = baujat(fit_of(name, f))
    np.testing.assert_allclose(bj["x"].to_numpy(), arr(f["baujat"]["x"]), equal_nan=True, **tol(f["method"]))
    np.testing.assert_allclose(bj["y"].to_numpy(), arr(f["baujat"]["y"]), equal_nan=True, **tol(f["method"]))


def test_rstudent_is_influences_residual():
    c = CASES["bcg_logrr"]
    f = next(f for f in c["fits"] if f["method"] == "REML" and f["test"] == "hksj")
    res = fit_of("bcg_logrr", f)
    rs = rstudent(res)
    np.testing.assert_allclose(rs["z"].to_numpy(), arr(f["influence"]["rstudent"]), rtol=1e-7)
    np.testing.assert_allclose(rs["resid"].to_numpy() / rs["se"].to_numpy(), rs["z"].to_numpy(), rtol=1e-14)


def test_huge_outlier_is_flagged_and_printed():
    """The study 5 units away is influential in metafor's rule (and only it, under DL)."""
    c = CASES["huge_outlier"]
    f = next(f for f in c["fits"] if f["method"] == "DL" and f["test"] == "z")
    assert arr(f["influence"]["is_infl"]).tolist() == [0, 0, 0, 0, 0, 0, 1]
    res = pool(arr(c["yi"]), arr(c["vi"]), method="DL", slab=list("abcdefg"))
    inf = influence(res)
    df = inf.to_frame()
    assert list(df.index) == list("abcdefg") and df.index.name == "slab"
    assert list(df.columns) == list(DIAGNOSTICS) + ["dfbetas", "inf", "is_infl"]
    assert df["inf"].tolist() == [""] * 6 + ["*"]
    lines = inf.summary().splitlines()
    g_line = next(ln for ln in lines if ln.startswith("g "))
    assert g_line.rstrip().endswith("*")
    assert "1 of 7 flagged" in lines[-1]


def test_slab_from_pandas_index():
    c = CASES["bcg_logrr"]
    y = pd.Series(arr(c["yi"]), index=[f"trial{i}" for i in range(1, 14)])
    inf = influence(pool(y, arr(c["vi"]), method="DL"))
    assert inf.slab[0] == "trial1" and inf.to_frame().index[-1] == "trial13"


def test_blocks_do_not_change_the_result(monkeypatch):
    """The leave-one-out fits run in blocks of omitted studies (memory O(k x block)); tiny
    blocks give the same numbers as one block."""
    c = CASES["hackshaw1998_logor"]
    res = pool(arr(c["yi"]), arr(c["vi"]), method="REML", test="hksj")
    whole = influence(res).to_frame()
    monkeypatch.setattr(influence_module, "_BLOCK_CELLS", 50)  # blocks of one or two omitted studies (k = 37)
    pieces = influence(res).to_frame()
    pd.testing.assert_frame_equal(whole, pieces, rtol=1e-13)


def test_result_is_frozen_and_read_only():
    c = CASES["k3"]
    inf = influence(pool(arr(c["yi"]), arr(c["vi"])))
    assert isinstance(inf, InfluenceResult) and inf.p == 1 and inf.k == 3
    with pytest.raises(Exception):
        inf.k = 4
    with pytest.raises(ValueError):
        inf.hat[0] = 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="k >= 2"):
        influence(pool([0.1], [0.1]))
    hand = PoolResult(k=2, estimate=0, se=1, stat=0, p=1, ci_low=-2, ci_high=2, tau2=0, tau=0, i2=0, h2=1, q=0,
                      q_df=1, q_p=1, pi_low=-2, pi_high=2, weights=np.array([50.0, 50.0]))
    with pytest.raises(ValueError, match="carries no yi/vi"):
        influence(hand)
    with pytest.raises(TypeError, match="meta.pool.pool"):
        influence([0.1, 0.2])
    with pytest.raises(TypeError, match="meta.pool.pool"):
        rstandard({"yi": [1, 2]})


def test_k2_each_deleted_fit_is_one_study():
    """k = 2: each fit without a study is that other study (tau2 = 0, Q = 0), as metafor."""
    c = CASES["k2"]
    inf = influence(pool(arr(c["yi"]), arr(c["vi"]), method="REML"))
    assert inf.tau2_del.tolist() == [0.0, 0.0] and inf.qe_del.tolist() == [0.0, 0.0]
    np.testing.assert_allclose(inf.estimate_del, arr(c["yi"])[::-1], rtol=0)
    assert math.isfinite(inf.rstudent[0])
