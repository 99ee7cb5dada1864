"""meta.effects against R metafor 3.8.1 escalc (tests/r/effects_reference.R).

Reference values live in tests/fixtures/effects_reference.json; regenerate with
``Rscript tests/r/effects_reference.R``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.meta_analysis import effectsize_smd

from meta import effects
from meta.effects import (
    smd,
    smd_from_d,
    smd_from_md,
    smd_from_p,
    smd_from_t,
    smd_paired,
)

REF = json.loads(
    (Path(__file__).parent / "fixtures" / "effects_reference.json").read_text()
)
RTOL = 1e-8
VARIANCES = ["ls", "ub", "revman"]


def arr(x):
    return np.asarray(x, dtype=float)


def assert_matches(frame, ref, rtol=RTOL):
    """yi and vi equal the R reference to rtol (absolute 1e-12 for exact zeros)."""
    np.testing.assert_allclose(frame["yi"].to_numpy(), arr(ref["yi"]), rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(frame["vi"].to_numpy(), arr(ref["vi"]), rtol=rtol, atol=0)


def test_fixture_comes_from_metafor_3_8_1():
    assert REF["metafor_version"] == "3.8.1"
    assert REF["generated_by"] == "tests/r/effects_reference.R"


# ---------------------------------------------------------------- means route
@pytest.mark.parametrize("variance", VARIANCES)
def test_smd_matches_metafor_escalc_on_normand_gibson_and_edge_cases(variance):
    d = REF["smd_means"]
    out = smd(arr(d["m1i"]), arr(d["sd1i"]), arr(d["n1i"]),
              arr(d["m2i"]), arr(d["sd2i"]), arr(d["n2i"]), variance=variance)
    assert list(out.columns) == ["yi", "vi"]
    assert len(out) == len(d["label"]) > 20
    assert_matches(out, d[variance])


def test_smd_revman_matches_statsmodels_effectsize_smd():
    d = REF["smd_means"]
    g, v = effectsize_smd(arr(d["m1i"]), arr(d["sd1i"]), arr(d["n1i"]),
                          arr(d["m2i"]), arr(d["sd2i"]), arr(d["n2i"]))
    out = smd(arr(d["m1i"]), arr(d["sd1i"]), arr(d["n1i"]),
              arr(d["m2i"]), arr(d["sd2i"]), arr(d["n2i"]), variance="revman")
    np.testing.assert_allclose(out["yi"], g, rtol=1e-12)
    np.testing.assert_allclose(out["vi"], v, rtol=1e-12)


def test_ls_and_revman_differ_so_the_option_is_not_ignored():
    a = smd(1.0, 1.0, 5, 0.0, 1.0, 5, variance="ls")
    b = smd(1.0, 1.0, 5, 0.0, 1.0, 5, variance="revman")
    c = smd(1.0, 1.0, 5, 0.0, 1.0, 5, variance="ub")
    assert a["vi"].iloc[0] != b["vi"].iloc[0] != c["vi"].iloc[0]


def test_hedges_j_matches_gamma_definition_and_is_nan_for_m_le_1():
    from scipy.special import gamma

    m = np.array([2.0, 5.0, 30.0])
    expected = gamma(m / 2) / (np.sqrt(m / 2) * gamma((m - 1) / 2))
    np.testing.assert_allclose(effects.hedges_j(m), expected, rtol=1e-13)
    assert np.isnan(effects.hedges_j(1.0))


# ------------------------------------------------------------- other routes
@pytest.mark.parametrize("variance", VARIANCES)
def test_smd_from_t_matches_metafor_escalc_ti(variance):
    d = REF["smd_t"]
    out = smd_from_t(arr(d["ti"]), arr(d["n1i"]), arr(d["n2i"]), variance=variance)
    assert_matches(out, d[variance])


@pytest.mark.parametrize("variance", VARIANCES)
def test_smd_from_d_matches_metafor_escalc_di(variance):
    d = REF["smd_d"]
    out = smd_from_d(arr(d["di"]), arr(d["n1i"]), arr(d["n2i"]), variance=variance)
    assert_matches(out, d[variance])


@pytest.mark.parametrize("variance", VARIANCES)
def test_smd_from_p_matches_r_qt_then_escalc_ti(variance):
    d = REF["smd_p"]
    out = smd_from_p(arr(d["p"]), arr(d["n1i"]), arr(d["n2i"]), arr(d["direction"]),
                     variance=variance)
    assert list(out.columns) == ["yi", "vi", "p_inequality"]
    assert not out["p_inequality"].any()
    assert_matches(out, d[variance])


@pytest.mark.parametrize("variance", VARIANCES)
@pytest.mark.parametrize("source", ["from_se", "from_ci", "from_p"])
def test_smd_from_md_matches_r_cochrane_6_5_2_3_then_escalc(source, variance):
    d = REF["smd_md"]
    common = dict(md=arr(d["md"]), n1=arr(d["n1i"]), n2=arr(d["n2i"]), variance=variance)
    if source == "from_se":
        out = smd_from_md(se=arr(d["se"]), **common)
    elif source == "from_p":
        out = smd_from_md(p=arr(d["p"]), **common)
    else:
        # rows have different CI levels; the level argument is a scalar
        parts = [
            smd_from_md(md=d["md"][i], n1=d["n1i"][i], n2=d["n2i"][i],
                        ci_low=d["ci_low"][i], ci_high=d["ci_high"][i],
                        level=d["level"][i], variance=variance)
            for i in range(len(d["md"]))
        ]
        out = pd.concat(parts, ignore_index=True)
    assert list(out.columns) == ["yi", "vi", "p_inequality"]
    assert_matches(out, d[source][variance])


def test_smd_paired_with_r_matches_metafor_smcr():
    d = REF["paired"]
    out = smd_paired(arr(d["m_pre"]), arr(d["sd_pre"]), arr(d["m_post"]),
                     arr(d["sd_post"]), arr(d["ni"]), r=arr(d["ri"]))
    assert list(out.columns) == ["yi", "vi"]
    assert_matches(out, d["smcr"])


def test_smd_paired_with_sd_change_matches_metafor_smcc():
    d = REF["paired"]
    out = smd_paired(arr(d["m_pre"]), arr(d["sd_pre"]), arr(d["m_post"]),
                     arr(d["sd_post"]), arr(d["ni"]), sd_change=arr(d["sd_change"]))
    assert_matches(out, d["smcc"])


# ---------------------------------------------------------- p inequalities
def test_p_inequality_refused_by_default_with_the_choices_explained():
    with pytest.raises(ValueError, match=r"inequality='bound'.*under-states") as e:
        smd_from_p([0.03, 0.05], 20, 20, [1, -1], p_operator=["=", "<"])
    assert "positions [1]" in str(e.value)
    with pytest.raises(ValueError, match="inequality"):
        smd_from_md(2.0, 20, 20, p=0.05, p_operator="<")


def test_p_inequality_bound_treats_p_lt_x_as_p_eq_x_and_flags_rows():
    out = smd_from_p([0.05, 0.05], 20, 20, 1, p_operator=["<", "="], inequality="bound")
    assert out["p_inequality"].tolist() == [True, False]
    assert out["yi"].iloc[0] == out["yi"].iloc[1]
    md = smd_from_md([3.0, 3.0], 20, 20, p=0.05, p_operator=["<", "="], inequality="bound")
    assert md["p_inequality"].tolist() == [True, False]
    np.testing.assert_allclose(md["yi"], out["yi"], rtol=1e-12)


def test_p_operator_other_than_eq_or_lt_is_refused():
    with pytest.raises(ValueError, match=r"p_operator must be '=' .* bad at positions \[0\]"):
        smd_from_p(0.2, 10, 10, 1, p_operator=">")


# ------------------------------------------------------------ index, shapes
def test_series_index_is_kept_and_scalars_broadcast():
    idx = pd.Index(["a", "b", "c"], name="study")
    out = smd(pd.Series([1.0, 2.0, 3.0], index=idx), 1.0, 10,
              pd.Series([0.0, 0.0, 0.0], index=idx), 1.0, 12)
    assert out.index.equals(idx)
    single = smd(1.0, 1.0, 10, 0.0, 1.0, 12)
    assert len(single) == 1
    assert out["yi"].iloc[0] == single["yi"].iloc[0]


def test_series_are_paired_by_label_and_different_labels_are_refused():
    # the same labels in another order: paired by label (meta._checks.align, as meta.pool)
    m1 = pd.Series([1.0, 2.0], index=["a", "b"])
    n2 = pd.Series([20, 10], index=["b", "a"])
    out = smd(m1, 1.0, 10, 0.0, 1.0, n2)
    ref = smd([1.0, 2.0], 1.0, 10, 0.0, 1.0, [10, 20])
    assert out.index.tolist() == ["a", "b"]
    np.testing.assert_array_equal(out.to_numpy(), ref.to_numpy())
    with pytest.raises(ValueError, match=r"m1 and m2 are pandas objects whose indexes hold different labels "
                                         r"\(only in m1: \[0\]; only in m2: \[2\]\)"):
        smd(pd.Series([1.0, 2.0], index=[0, 1]), 1.0, 10,
            pd.Series([0.0, 0.0], index=[1, 2]), 1.0, 10)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: smd(0, 1, [10, 10.5], 0, 1, 10), r"n1 must be a whole number .*positions \[1\]: \[10.5\]"),
        (lambda: smd_paired(0, 1, 1, 1, 10.5, r=0.5), r"n must be a whole number"),
        (lambda: smd([True, False], 1, 10, 0, 1, 10), r"m1 must be real numbers, got booleans"),
        (lambda: smd(pd.Series([True, False]), 1, 10, 0, 1, 10), r"m1 must be real numbers, got booleans"),
        (lambda: smd(0, 1, 10, np.array([1 + 2j]), 1, 10), r"m2 must be real numbers, got complex"),
        (lambda: smd(0, 1, 10, 0, 1, True), r"n2 must be real numbers, got booleans"),
        (lambda: smd(1e308, 1e-308, 10, -1e308, 1e-308, 10), r"m1, sd1, n1, m2, sd2, n2 give a non-finite yi"),
    ],
)
def test_non_integer_n_booleans_complex_and_overflow_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mismatched_lengths_name_the_arguments():
    with pytest.raises(ValueError, match="m1 has 3, m2 has 2"):
        smd([1, 2, 3], 1, 10, [1, 2], 1, 10)
    with pytest.raises(ValueError, match="length-1 arrays are not stretched"):
        smd([1, 2, 3], [1.0], 10, 0, 1, 10)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: smd(0, [1.0, 2.0, -1.0, 3.0, 4.0, 0.0], 10, 0, 1, 10),
         r"sd1 must be > 0; bad at positions \[2, 5\]: \[-1.0, 0.0\]"),
        (lambda: smd(0, 1, [10, 1], 0, 1, 10), r"n1 must be >= 2 .*positions \[1\]: \[1.0\]"),
        (lambda: smd([0, np.nan], 1, 10, 0, 1, 10), r"m1 must be finite .*positions \[1\]"),
        (lambda: smd(0, 1, 10, 0, [1, np.inf], 10), r"sd2 must be finite .*positions \[1\]"),
        (lambda: smd(0, 1, 10, 0, 1, 10, variance="LS"), r"variance must be one of"),
        (lambda: smd("a", 1, 10, 0, 1, 10), r"m1 must be numeric"),
        (lambda: smd_from_p([0.5, 0, 1.2], 10, 10, 1),
         r"p must be a two-sided p-value in \(0, 1\]; bad at positions \[1, 2\]"),
        (lambda: smd_from_p(0.5, 10, 10, [1, 0, -1]), r"direction must be \+1 .*positions \[1\]"),
        (lambda: smd_paired(0, 1, 1, 1, 10, r=[0.5, 1.0, -1.2]),
         r"r must be a correlation strictly between -1 and 1; bad at positions \[1, 2\]"),
        (lambda: smd_paired(0, 1, 1, 1, 2, r=0.5), r"n must be >= 3"),
        (lambda: smd_paired(0, 1, 1, 1, 10), r"exactly one of r= .* or sd_change="),
        (lambda: smd_paired(0, 1, 1, 1, 10, r=0.5, sd_change=1), r"exactly one of r="),
        (lambda: smd_from_md(1.0, 10, 10), r"exactly one source"),
        (lambda: smd_from_md(1.0, 10, 10, se=1, p=0.1), r"exactly one source"),
        (lambda: smd_from_md(1.0, 10, 10, ci_low=0.0), r"ci_low and ci_high"),
        (lambda: smd_from_md(5.0, 10, 10, ci_low=0.0, ci_high=2.0), r"md must lie inside"),
        (lambda: smd_from_md(1.0, 10, 10, ci_low=2.0, ci_high=0.0), r"ci_high must be > ci_low"),
        (lambda: smd_from_md(0.0, 10, 10, p=0.01), r"md is 0 but p < 1"),
        (lambda: smd_from_md(1.0, 10, 10, se=[1, -1]), r"se must be > 0; bad at positions \[1\]"),
        (lambda: smd_from_t([1.0, np.nan], 10, 10), r"t must be finite"),
        (lambda: smd_from_d(1.0, 10, [10, 1.5]), r"n2 must be >= 2"),
    ],
)
def test_bad_input_names_argument_and_positions(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_error_lists_index_labels_for_labelled_series():
    sd = pd.Series([1.0, -2.0], index=["smith2010", "jones2012"])
    with pytest.raises(ValueError, match=r"positions \[1\] \(index labels \['jones2012'\]\)"):
        smd(0, sd, 10, 0, 1, 10)


# --------------------------------------------------------- property tests
ns = st.integers(min_value=2, max_value=400)
means = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
sds = st.floats(min_value=1e-2, max_value=1e2, allow_nan=False)
variances = st.sampled_from(VARIANCES)


@settings(max_examples=60, deadline=None)
@given(m1=means, sd1=sds, n1=ns, m2=means, sd2=sds, n2=ns, variance=variances)
def test_swapping_groups_flips_yi_and_keeps_vi(m1, sd1, n1, m2, sd2, n2, variance):
    a = smd(m1, sd1, n1, m2, sd2, n2, variance=variance)
    b = smd(m2, sd2, n2, m1, sd1, n1, variance=variance)
    np.testing.assert_allclose(b["yi"], -a["yi"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b["vi"], a["vi"], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(m1=means, sd1=sds, n1=ns, m2=means, sd2=sds, n2=ns, variance=variances,
       c=st.floats(min_value=1e-3, max_value=1e3))
def test_rescaling_units_leaves_yi_and_vi_unchanged(m1, sd1, n1, m2, sd2, n2, variance, c):
    a = smd(m1, sd1, n1, m2, sd2, n2, variance=variance)
    b = smd(c * m1, c * sd1, n1, c * m2, c * sd2, n2, variance=variance)
    np.testing.assert_allclose(b["yi"], a["yi"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b["vi"], a["vi"], rtol=1e-9)


@settings(max_examples=60, deadline=None)
@given(m1=means, sd1=sds, n1=ns, m2=means, sd2=sds, n2=ns, variance=variances)
def test_t_route_agrees_with_means_route(m1, sd1, n1, m2, sd2, n2, variance):
    sp = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / (n1 + n2 - 2))
    t = (m1 - m2) / (sp * np.sqrt(1 / n1 + 1 / n2))
    a = smd(m1, sd1, n1, m2, sd2, n2, variance=variance)
    b = smd_from_t(t, n1, n2, variance=variance)
    np.testing.assert_allclose(b["yi"], a["yi"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b["vi"], a["vi"], rtol=1e-9)


@settings(max_examples=60, deadline=None)
@given(t=st.floats(min_value=-30, max_value=30).filter(lambda v: abs(v) > 1e-3),
       n1=ns, n2=ns, variance=variances)
def test_p_route_round_trips_with_t_route(t, n1, n2, variance):
    p = 2 * stats.t.sf(abs(t), n1 + n2 - 2)
    a = smd_from_t(t, n1, n2, variance=variance)
    b = smd_from_p(p, n1, n2, np.sign(t), variance=variance)
    np.testing.assert_allclose(b["yi"], a["yi"], rtol=1e-7)
    np.testing.assert_allclose(b["vi"], a["vi"], rtol=1e-7)
    c = smd_from_md(t * 2.5, n1, n2, p=p, variance=variance)
    np.testing.assert_allclose(c["yi"], b["yi"], rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(md=means.filter(lambda v: abs(v) > 1e-6), se=sds, n1=ns, n2=ns, variance=variances)
def test_md_routes_agree_for_the_same_se(md, se, n1, n2, variance):
    q = stats.t.ppf(0.975, n1 + n2 - 2)
    a = smd_from_md(md, n1, n2, se=se, variance=variance)
    b = smd_from_md(md, n1, n2, ci_low=md - q * se, ci_high=md + q * se, variance=variance)
    p = 2 * stats.t.sf(abs(md) / se, n1 + n2 - 2)
    c = smd_from_t(md / se, n1, n2, variance=variance)
    np.testing.assert_allclose(b["yi"], a["yi"], rtol=1e-9)
    np.testing.assert_allclose(c["yi"], a["yi"], rtol=1e-9)
    if p > 1e-12:  # p underflow makes the p route ill-conditioned
        d = smd_from_md(md, n1, n2, p=p, variance=variance)
        np.testing.assert_allclose(d["yi"], a["yi"], rtol=1e-6)


def test_nullable_series_missing_value_is_reported_by_position_and_label():
    n1 = pd.Series([10, pd.NA, 12], dtype="Int64", index=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"n1 must be finite .*positions \[1\] \(index labels \['b'\]\)"):
        smd(0.5, 1.0, n1, 0.0, 1.0, 10)
    with pytest.raises(ValueError, match="m1 must be numeric"):
        smd(pd.Series(["x", "y"]), 1.0, 10, 0.0, 1.0, 10)


def test_p_operator_may_be_a_series_and_is_read_per_row():
    idx = pd.Index([7, 3], name="row")
    out = smd_from_p(pd.Series([0.01, 0.01], index=idx), 30, 30, 1,
                     p_operator=pd.Series(["<", " = "], index=idx), inequality="bound")
    assert out.index.equals(idx)
    assert out["p_inequality"].tolist() == [True, False]
