"""meta.vcalc.vcalc against metafor 3.8.1 vcalc() and clubSandwich impute_covariance_matrix()
(tests/r/multilevel_reference.R, dat.assink2016: effect sizes within studies)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from meta.vcalc import vcalc, vcalc_triplets

REF = json.loads((Path(__file__).parent / "fixtures" / "multilevel_reference.json").read_text())["vcalc"]


def _dense(trip, k):
    t = np.array(trip)
    V = np.zeros((k, k))
    V[t[:, 0].astype(int), t[:, 1].astype(int)] = t[:, 2]
    return V


@pytest.mark.parametrize("case", REF["cases"], ids=lambda c: f"rho={c['rho']}")
def test_matches_metafor_vcalc(case):
    k = len(REF["vi"])
    V = vcalc(REF["vi"], REF["study"], obs=REF["esid"], rho=case["rho"])
    np.testing.assert_allclose(V, _dense(case["V_triplets"], k), rtol=1e-14, atol=0)


def test_matches_clubsandwich_impute_covariance_matrix():
    """clubSandwich impute_covariance_matrix(vi, study, r = 0.6) is the same matrix (R: max diff 1e-16)."""
    k = len(REF["vi"])
    assert REF["impute_max_abs_diff"] < 1e-15
    V = vcalc(REF["vi"], REF["study"], rho=0.6)
    np.testing.assert_allclose(V, _dense(REF["impute"], k), rtol=1e-14, atol=0)


def test_rows_in_any_order():
    """Shuffled rows (studies not contiguous): V stays in input order, as metafor and clubSandwich."""
    sh = REF["shuffled"]
    order = np.array(sh["order"])
    vi = np.array(REF["vi"])[order]
    st = np.array(REF["study"])[order]
    es = np.array(REF["esid"])[order]
    V = vcalc(vi, st, obs=es, rho=0.6)
    np.testing.assert_allclose(V, _dense(sh["V_triplets"], vi.size), rtol=1e-14)
    np.testing.assert_allclose(V, _dense(sh["impute"], vi.size), rtol=1e-14)


def test_same_obs_in_a_cluster_is_correlation_one():
    """Two rows with the same obs in a cluster are one observation: correlation 1, so that block is singular
    (metafor warns: "The var-cov matrix appears to be not positive definite in cluster 1")."""
    rep = REF["repeated"]
    with pytest.warns(UserWarning, match=r"not positive definite \(rho = 0.5\) in cluster\(s\) \[1\]"):
        V = vcalc(rep["vi"], rep["cluster"], obs=rep["obs"], rho=0.5)
    np.testing.assert_allclose(V, np.array(rep["V"]), rtol=1e-14)


def test_triplets_equal_dense():
    i, j, v = vcalc_triplets(REF["vi"], REF["study"], obs=REF["esid"], rho=0.6)
    V = np.zeros((100, 100))
    V[i, j] = v
    np.testing.assert_array_equal(V, vcalc(REF["vi"], REF["study"], obs=REF["esid"], rho=0.6))


def test_not_positive_definite_warns_once():
    with pytest.warns(UserWarning, match=r"not positive definite \(rho = 1.0\) in cluster\(s\) \[1, "):
        vcalc(REF["vi"], REF["study"], rho=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vcalc(REF["vi"], REF["study"], rho=0.6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(vi=[0.1, -0.2], cluster=[1, 1], rho=0.5), r"vi must be finite and > 0; offending positions \(0-based\): 1"),
    (dict(vi=[0.1, 0.2], cluster=[1, 1, 2], rho=0.5), "cluster must have one value per effect size"),
    (dict(vi=[0.1, 0.2], cluster=[1, None], rho=0.5), "cluster must not be missing"),
    (dict(vi=[0.1, 0.2], cluster=[1, 1], rho=1.5), r"rho must be one number in \[-1, 1\]"),
    (dict(vi=[0.1, 0.2], cluster=[1, 1], rho=[0.1, 0.2]), r"rho must be one number in \[-1, 1\]"),
    (dict(vi=[0.1, 0.2], cluster=[1, 1], rho=True), "rho must be real numbers"),
    (dict(vi=[], cluster=[], rho=0.5), "vi is empty"),
])
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vcalc(kwargs.pop("vi"), kwargs.pop("cluster"), **kwargs)


@pytest.mark.parametrize("rho", ["0.5", b"0.5"])
def test_rho_given_as_text_is_refused(rho):
    with pytest.raises(ValueError, match="rho must be one number in \\[-1, 1\\], not text"):
        vcalc([0.1, 0.2], [1, 1], rho=rho)
