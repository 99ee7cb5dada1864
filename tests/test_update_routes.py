"""Routes for what newer studies report, against metafor 3.8.1 escalc (tests/r/update_routes_reference.R).

* a mean difference with its CI or SE (Cochrane Handbook 6.5.2.3) -> ``smd_from_md``, metafor
  ``escalc("SMD", ti = md / se)``;
* a reported d (or g) with its CI -> ``smd_from_d_ci`` (vi = J^2 se^2, se from the CI width on the
  d scale), compared with escalc's n-based vi for d;
* a within-group mean change with its CI or SE -> ``smd_change`` (d_z), metafor
  ``escalc("SMCC")``; a reported d_z -> ``smd_from_dz``;
* and how :func:`meta.review.inputs.study_effects.study_effects` picks them per row (route, ``es_scale``, flags).

Regenerate the fixture with ``Rscript tests/r/update_routes_reference.R``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta import effects
from meta.review.inputs import data
from meta.review.inputs.study_effects import ES_SCALES, ROUTE_RANK, ROUTES, study_effects

REF = json.loads((Path(__file__).parent / "fixtures" / "update_routes_reference.json").read_text())
RTOL = 1e-10


def arr(x):
    return np.asarray(x, dtype=float)


def close(frame, yi, vi, rtol=RTOL):
    np.testing.assert_allclose(frame["yi"].to_numpy(), arr(yi), rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(frame["vi"].to_numpy(), arr(vi), rtol=rtol, atol=0)


def test_fixture_comes_from_metafor_3_8_1():
    assert REF["metafor_version"] == "3.8.1"
    assert REF["generated_by"] == "tests/r/update_routes_reference.R"


# ------------------------------------------------------------------ mean difference with CI / SE
@pytest.mark.parametrize("variance", ["ls", "ub", "revman"])
def test_md_with_ci_matches_metafor_smd_from_t(variance):
    d = REF["md"]["input"]
    ref = REF["md"]["ci"][variance]
    for i, level in enumerate(d["level"]):  # smd_from_md takes one scalar level
        got = effects.smd_from_md(d["md"][i], d["n1"][i], d["n2"][i], ci_low=d["lo"][i],
                                  ci_high=d["hi"][i], level=level, variance=variance)
        close(got, [ref["yi"][i]], [ref["vi"][i]])


@pytest.mark.parametrize("variance", ["ls", "ub", "revman"])
def test_md_with_se_matches_metafor_smd_from_t(variance):
    d = REF["md"]["input"]
    got = effects.smd_from_md(arr(d["md"]), arr(d["n1"]), arr(d["n2"]), se=arr(d["se"]), variance=variance)
    close(got, REF["md"]["se"][variance]["yi"], REF["md"]["se"][variance]["vi"])


# ------------------------------------------------------------------ d with its CI
@pytest.mark.parametrize("variance", ["ls", "revman"])
def test_d_with_ci_variance_is_j_squared_times_ci_se_squared(variance):
    d = REF["d_ci"]["input"]
    ref = REF["d_ci"][variance]
    for i, level in enumerate(d["level"]):
        got = effects.smd_from_d_ci(d["d"][i], d["lo"][i], d["hi"][i], d["n1"][i], d["n2"][i],
                                    level=level, variance=variance)
        close(got, [ref["yi"][i]], [ref["vi"][i]])


def test_g_with_ci_is_kept_and_its_variance_is_the_ci_se_squared():
    d = REF["d_ci"]["input"]
    got = effects.smd_from_d_ci(arr(d["d"]), arr(d["lo"]), arr(d["hi"]), arr(d["n1"]), arr(d["n2"]),
                                es_type="g", level=0.95)
    rows = [i for i, lv in enumerate(d["level"]) if lv == 0.95]
    close(got.iloc[rows], arr(REF["d_ci"]["g"]["yi"])[rows], arr(REF["d_ci"]["g"]["vi"])[rows])


def test_d_with_ci_agrees_with_escalc_n_based_variance_when_the_ci_is_the_hedges_olkin_one():
    """Same yi as escalc(SMD, di=); vi differs from escalc's n-based vi only by J^2 and d^2 vs g^2."""
    d = REF["d_ci"]["input"]
    esc = REF["d_ci"]["escalc_d_with_n"]
    for i, level in enumerate(d["level"]):
        got = effects.smd_from_d_ci(d["d"][i], d["lo"][i], d["hi"][i], d["n1"][i], d["n2"][i], level=level)
        assert got["yi"].iloc[0] == pytest.approx(esc["yi"][i], rel=1e-10)
        n = d["n1"][i] + d["n2"][i]
        assert got["vi"].iloc[0] == pytest.approx(esc["vi"][i], rel=1.2 * 6 / (4 * n - 9))  # ~ 1 - J^2
        assert got["vi"].iloc[0] != pytest.approx(esc["vi"][i], rel=1e-6)  # not the same formula


def test_d_with_ci_refuses_a_ci_without_its_estimate_and_a_bad_level():
    with pytest.raises(ValueError, match=r"d must lie inside \[ci_low, ci_high\]"):
        effects.smd_from_d_ci(0.9, 1.0, 2.0, 20, 20)
    with pytest.raises(ValueError, match="ci_high must be > ci_low"):
        effects.smd_from_d_ci(0.9, 2.0, 1.0, 20, 20)
    with pytest.raises(ValueError, match="level must be a fraction in"):
        effects.smd_from_d_ci(0.9, 0.3, 1.5, 20, 20, level=100)
    with pytest.raises(ValueError, match="es_type must be one of"):
        effects.smd_from_d_ci(0.9, 0.3, 1.5, 20, 20, es_type="r")


# ------------------------------------------------------------------ within-group change -> d_z
@pytest.mark.parametrize("source", ["ci", "se"])
def test_mean_change_matches_metafor_smcc(source):
    c = REF["change"]["input"]
    ref = REF["change"][source]
    if source == "se":
        got = effects.smd_change(arr(c["md"]), arr(c["n"]), se=arr(c["se"]))
        close(got, ref["yi"], ref["vi"])
        return
    for i, level in enumerate(c["level"]):
        got = effects.smd_change(c["md"][i], c["n"][i], ci_low=c["lo"][i], ci_high=c["hi"][i], level=level)
        close(got, [ref["yi"][i]], [ref["vi"][i]])


def test_reported_dz_matches_metafor_smcc():
    z = REF["dz"]["input"]
    close(effects.smd_from_dz(arr(z["dz"]), arr(z["n"])), REF["dz"]["yi"], REF["dz"]["vi"])


def test_mean_change_input_rules():
    with pytest.raises(ValueError, match="exactly one source of precision"):
        effects.smd_change(-3.0, 12)
    with pytest.raises(ValueError, match="exactly one source of precision"):
        effects.smd_change(-3.0, 12, se=1.0, ci_low=-4, ci_high=-2)
    with pytest.raises(ValueError, match="together"):
        effects.smd_change(-3.0, 12, ci_low=-4)
    with pytest.raises(ValueError, match=r"md must lie inside"):
        effects.smd_change(3.12, 12, ci_low=-4.37, ci_high=-1.88)
    with pytest.raises(ValueError, match=r"n must be >= 3"):
        effects.smd_change(-3.0, 2, se=1.0)
    with pytest.raises(ValueError, match=r"se must be > 0"):
        effects.smd_change(-3.0, 12, se=0.0)


# ------------------------------------------------------------------ study_effects picks the route
def frame(*rows):
    base = {c: np.nan for c in data.OUTCOME_COLUMNS + ("ci_low", "ci_high", "ci_level", "se")}
    base.update(study_id="x2020", outcome="peak_hip_adduction", comparison="pfp_vs_control",
                timepoint="baseline", task="running", p_operator=None, effect_size_type=None,
                source_url="https://example.org", source_locator="abstract")
    return pd.DataFrame([{**base, **r} for r in rows])


NEAL = dict(n1=20, n2=20, mean_diff=4.9, ci_low=1.4, ci_high=8.2, ci_level=0.95, p_value=0.01,
            p_operator="=", effect_size=0.91, effect_size_type="cohen_d", direction=1)


def test_md_ci_is_preferred_to_md_p_and_reported_es_and_matches_metafor():
    got = study_effects(frame(NEAL), variance="ls").iloc[0]
    assert got["route"] == "md_ci" and got["es_scale"] == "raw_sd" and got["flags"] == ""
    assert got["yi"] == pytest.approx(REF["md"]["ci"]["ls"]["yi"][0], rel=RTOL)
    assert got["vi"] == pytest.approx(REF["md"]["ci"]["ls"]["vi"][0], rel=RTOL)


def test_md_se_route_and_missing_ci_level_is_flagged():
    got = study_effects(frame(dict(n1=15, n2=17, mean_diff=-2.5, se=0.8)), variance="ls").iloc[0]
    assert got["route"] == "md_se"
    assert got["yi"] == pytest.approx(REF["md"]["se"]["ls"]["yi"][1], rel=RTOL)
    row = {**NEAL, "ci_level": np.nan}
    got = study_effects(frame(row), variance="ls").iloc[0]
    assert got["route"] == "md_ci" and got["flags"] == "ci_level_assumed"


def test_ci_that_excludes_its_estimate_is_flagged_and_not_used():
    # mazzella: knee extension moment 'MD = -0.11 (-0.07, 0.29)'; no p: no route left
    row = dict(n1=26, n2=24, mean_diff=-0.11, ci_low=-0.07, ci_high=0.29, ci_level=0.95)
    got = study_effects(frame(row)).iloc[0]
    assert got["route"] == "none" and math.isnan(got["yi"])
    assert got["flags"] == "ci_excludes_estimate" and "md_ci not used" in got["reason"]
    # with a p-value the row falls through to md_p, keeping the flag
    got = study_effects(frame({**row, "p_value": 0.3, "p_operator": "="})).iloc[0]
    assert got["route"] == "md_p" and got["flags"] == "ci_excludes_estimate"


def test_md_ci_not_centred_on_its_estimate_is_flagged_and_not_used():
    # mazzella: peak knee flexion 'MD = 0.19 (-2.72, 2.33)': inside, but the centre is -0.195
    got = study_effects(frame(dict(n1=26, n2=24, mean_diff=0.19, ci_low=-2.72, ci_high=2.33,
                                   ci_level=0.95))).iloc[0]
    assert got["route"] == "none" and got["flags"] == "ci_not_centred"
    # bramah2019-like rounding (3.12 vs centre 3.125) is not flagged
    got = study_effects(frame(dict(comparison="post_vs_pre", n1=12, n2=12, mean_diff=-3.12,
                                   ci_low=-4.37, ci_high=-1.88, ci_level=0.95))).iloc[0]
    assert got["route"] == "change_ci" and got["flags"] == "d_z"


def test_change_ci_gives_d_z_on_the_change_sd_scale_matching_metafor_smcc():
    c = REF["change"]["input"]
    rows = [dict(comparison="post_vs_pre", n1=c["n"][i], n2=c["n"][i], mean_diff=c["md"][i],
                 ci_low=c["lo"][i], ci_high=c["hi"][i], ci_level=c["level"][i]) for i in range(len(c["md"]))]
    got = study_effects(frame(*rows), r=None)
    assert list(got["route"]) == ["change_ci"] * len(rows)
    assert list(got["es_scale"]) == ["change_sd"] * len(rows)
    assert all("d_z" in f.split(";") for f in got["flags"])
    close(got, REF["change"]["ci"]["yi"], REF["change"]["ci"]["vi"])
    se_rows = [dict(comparison="post_vs_pre", n1=c["n"][i], n2=c["n"][i], mean_diff=c["md"][i], se=c["se"][i])
               for i in range(len(c["md"]))]
    got = study_effects(frame(*se_rows))
    assert list(got["route"]) == ["change_se"] * len(rows)
    close(got, REF["change"]["se"]["yi"], REF["change"]["se"]["vi"])


def test_paired_means_still_come_first_and_stay_on_the_raw_sd_scale():
    row = dict(comparison="post_vs_pre", n1=12, n2=12, mean1=10.0, sd1=3.0, mean2=13.0, sd2=3.5,
               mean_diff=-3.0, se=0.6)
    assert study_effects(frame(row), r=0.5).iloc[0][["route", "es_scale"]].tolist() == ["paired", "raw_sd"]
    # the SE of the change gives the row its own pre-post r (Follmann et al. 1992; tests/test_prepost.py),
    # so the paired route is used without an assumed r (before: change_se, "paired design needs r")
    got = study_effects(frame(row), r=None).iloc[0]
    sd_change = 0.6 * 12 ** 0.5
    r = (3.5**2 + 3.0**2 - sd_change**2) / (2 * 3.5 * 3.0)
    assert got["route"] == "paired" and got["flags"] == "r_derived" and got["es_scale"] == "raw_sd"
    assert got["r"] == pytest.approx(r, rel=1e-12)


def test_reported_within_group_d_uses_smcc_variance_and_says_the_standardiser_is_unstated():
    z = REF["dz"]["input"]
    got = study_effects(frame(dict(comparison="post_vs_pre", n1=11, n2=11, effect_size=1.7,
                                   effect_size_type="cohen_d", direction=-1))).iloc[0]
    assert got["route"] == "reported_es_within" and got["es_scale"] == "unstated"
    assert got["flags"] == "es_standardiser_unstated"
    assert got["yi"] == pytest.approx(REF["dz"]["yi"][0], rel=RTOL)
    assert got["vi"] == pytest.approx(REF["dz"]["vi"][0], rel=RTOL)
    assert z["dz"][0] == -1.7


def test_reported_d_with_its_own_ci_uses_the_ci_variance():
    d = REF["d_ci"]["input"]
    row = dict(n1=d["n1"][0], n2=d["n2"][0], effect_size=d["d"][0], effect_size_type="cohen_d",
               ci_low=d["lo"][0], ci_high=d["hi"][0], ci_level=0.95, direction=1)
    got = study_effects(frame(row), variance="ls").iloc[0]
    assert got["route"] == "reported_es_ci" and got["es_scale"] == "raw_sd"
    assert got["vi"] == pytest.approx(REF["d_ci"]["ls"]["vi"][0], rel=RTOL)
    # a d whose CI excludes it falls back to the n-based reported_es route, flagged
    got = study_effects(frame({**row, "ci_low": 1.0, "ci_high": 2.0}), variance="ls").iloc[0]
    assert got["route"] == "reported_es" and got["flags"] == "ci_excludes_estimate"
    assert got["vi"] == pytest.approx(REF["d_ci"]["escalc_d_with_n"]["vi"][0], rel=RTOL)


def test_every_route_has_a_rank_and_a_scale():
    assert set(ROUTES) <= set(ROUTE_RANK)
    assert set(ES_SCALES) == set(ROUTES)
    assert set(ES_SCALES.values()) == {"raw_sd", "change_sd", "unstated"}
