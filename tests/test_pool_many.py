"""meta.many.pool_many (also imported as meta.pool.pool_many): many meta-analyses at once.

Each row must agree with metafor 3.8.1 (fixtures from tests/r/pool_reference.R)
and with meta.pool.pool() on the same studies to 1e-10, with both engines
(numpy, and the compiled FE/DL kernel of meta._fast; tests/test_fast.py
compares the two directly).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meta.many as mp
from meta.pool import pool, pool_many

REF = json.loads((Path(__file__).parent / "fixtures" / "pool_reference.json").read_text())
COLUMNS = ["k", "estimate", "se", "ci_low", "ci_high", "p", "tau2", "i2", "q", "q_p", "pi_low", "pi_high"]
METHODS = ["FE", "DL", "REML", "PM"]


def padded(rows, width=None, shuffle_seed=None):
    """Stack ragged (yi, vi) rows into NaN-padded 2-D arrays."""
    width = width or max(len(y) for y, _ in rows)
    Y = np.full((len(rows), width), np.nan)
    V = np.full((len(rows), width), np.nan)
    rng = np.random.default_rng(shuffle_seed)
    for i, (y, v) in enumerate(rows):
        pos = np.arange(len(y)) if shuffle_seed is None else np.sort(rng.choice(width, len(y), replace=False))
        Y[i, pos], V[i, pos] = y, v
    return Y, V


def agree_with_pool(df, rows, method, test="z", pi="z", level=0.95):
    for i, (y, v) in enumerate(rows):
        r = pool(y, v, method=method, test=test, pi=pi, level=level)
        for c in COLUMNS:
            a, b = df[c].iloc[i], getattr(r, c)
            assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-10 * (1 + abs(b)), (i, c, a, b)


CASE_ROWS = [(np.atleast_1d(c["yi"]).astype(float), np.atleast_1d(c["vi"]).astype(float)) for c in REF["cases"]]


# (method, test, engine): the numpy engine runs everything; the compiled one
# (meta._fast, numba) covers FE and DL with the z test.
ENGINE_CASES = [(m, t, "numpy") for m in METHODS for t in ("z", "hksj")] + [("FE", "z", "numba"), ("DL", "z", "numba")]


@pytest.mark.parametrize("method,test,engine", ENGINE_CASES)
def test_rows_match_metafor_and_pool(method, test, engine):
    """All fixture data sets (k = 1 ... 16) in one ragged matrix, NaN padding
    scattered inside the rows (not only at the end)."""
    Y, V = padded(CASE_ROWS, width=20, shuffle_seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = pool_many(Y, V, method=method, test=test, engine=engine)
        agree_with_pool(df, CASE_ROWS, method, test)
    rtol, atol = (1e-8, 1e-12) if method in ("FE", "DL") else (1e-6, 1e-8)
    for i, case in enumerate(REF["cases"]):
        ref = next(f for f in case["fits"] if f["method"] == method and f["test"] == test and f["level"] == 0.95)
        for c in COLUMNS:
            want = np.nan if ref[c] is None else ref[c]
            np.testing.assert_allclose(df[c].iloc[i], want, rtol=rtol, atol=atol, err_msg=f"{case['name']} {c}")


@pytest.mark.parametrize("method,engine", [(m, "numpy") for m in METHODS] + [("FE", "numba"), ("DL", "numba")])
def test_300_random_ragged_analyses_match_metafor(method, engine):
    """300 random analyses (k = 2..12, a third with vi spanning 1000x, true
    tau2 from 0 to 1) fitted one by one with metafor rma() + predict() in R;
    pool_many fits them in one call."""
    batch = REF["random_batch"]
    f = lambda rows: np.array([[np.nan if x is None else x for x in r] for r in rows], float)  # noqa: E731
    Y, V, R = f(batch["yi"]), f(batch["vi"]), f(batch[method])
    assert not np.isnan(R).any()  # metafor converged on every analysis (REML: stepadj fallback)
    df = pool_many(Y, V, method=method, engine=engine)
    assert (df["k"].to_numpy() == (~np.isnan(Y)).sum(axis=1)).all()
    rtol, atol = (1e-8, 1e-12) if method in ("FE", "DL") else (1e-6, 1e-8)
    for j, c in enumerate(batch["columns"]):
        np.testing.assert_allclose(df[c].to_numpy(), R[:, j], rtol=rtol, atol=atol, err_msg=f"{method} {c}")


ragged = st.lists(
    st.lists(st.tuples(st.floats(-3, 3, allow_nan=False), st.floats(1e-3, 3.0, allow_nan=False)), min_size=1, max_size=8),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(
    ragged,
    st.sampled_from(METHODS),
    st.sampled_from(["z", "hksj"]),
    st.sampled_from(["z", "t"]),
    st.integers(0, 2**16),
    st.sampled_from(["numpy", "auto"]),  # auto = compiled kernel for FE/DL with z
)
def test_property_pool_many_equals_pool_row_by_row(data, method, test, pi, seed, engine):
    rows = [(np.array([a for a, _ in r]), np.array([b for _, b in r])) for r in data]
    Y, V = padded(rows, width=9, shuffle_seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = pool_many(Y, V, method=method, test=test, pi=pi, engine=engine)
        agree_with_pool(df, rows, method, test, pi)
    assert (df["tau2"] >= 0).all()
    assert list(df["k"]) == [len(y) for y, _ in rows]


def test_blocks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(3)
    k = rng.integers(2, 9, size=50)
    rows = [(rng.normal(0.3, 0.5, n), rng.uniform(0.01, 0.5, n)) for n in k]
    Y, V = padded(rows)
    whole = pool_many(Y, V, method="REML")
    monkeypatch.setattr(mp, "_CHUNK", 7)
    pd.testing.assert_frame_equal(pool_many(Y, V, method="REML"), whole)


def test_dataframe_index_is_kept_and_columns_are_fixed():
    Y = pd.DataFrame([[0.1, 0.4, np.nan], [0.2, 0.3, 0.5]], index=["a", "b"])
    V = np.array([[0.1, 0.2, np.nan], [0.1, 0.1, 0.1]])
    df = pool_many(Y, V, method="PM")
    assert list(df.index) == ["a", "b"] and list(df.columns) == COLUMNS
    assert list(df["k"]) == [2, 3]


def test_reml_fisher_scoring_failure_case_converges_in_bulk():
    ref = REF["reml_fail"]
    Y = np.tile(ref["yi"], (100, 1))
    V = np.tile(ref["vi"], (100, 1))
    df = pool_many(Y, V, method="REML")
    np.testing.assert_allclose(df["tau2"], ref["tau2"], rtol=1e-6)


@pytest.mark.parametrize(
    "Y,V,match",
    [
        (np.zeros((2, 3)), np.ones((2, 2)), "same shape"),
        (np.zeros(3), np.ones(3), "2-D"),
        (np.array([[0.1, 0.2], [np.nan, np.nan]]), np.ones((2, 2)), r"yi has rows with no finite study; offending rows \(0-based\): 1"),
        (np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([[0.1, 0.0], [0.1, np.nan]]), r"vi must be finite and > 0.*\(0, 1\), \(1, 1\)"),
        (np.array([[0.1, np.inf]]), np.ones((1, 2)), r"yi must not be infinite.*\(0, 1\)"),
    ],
)
@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_bad_input_raises_value_error(Y, V, match, engine):
    with pytest.raises(ValueError, match=match):
        pool_many(Y, V, engine=engine)


@pytest.mark.parametrize("method", ["FE", "DL", "HS", "REML"])
@pytest.mark.parametrize("test", ["z", "hksj"])
def test_infinite_yi_named_for_every_method_without_warnings(method, test):
    """The closed-form methods find an infinite yi in their results (NaN or
    infinite estimate or Q) rather than by a scan; the message names it all
    the same, with no warning before it (neither numpy's inf - inf nor the
    k = 1 fall-back of hksj)."""
    import warnings

    Y = np.array([[0.1, 0.2, 0.3], [0.1, np.inf, np.nan], [-np.inf, np.inf, 0.2], [np.inf, np.nan, np.nan]])
    V = np.full((4, 3), 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"yi must not be infinite.*\(1, 1\), \(2, 0\), \(2, 1\), \(3, 0\)"):
            pool_many(Y, V, method=method, test=test, engine="numpy")


def test_padding_vi_is_ignored_where_yi_is_nan_and_hksj_k1_warns():
    Y = np.array([[0.5, np.nan], [0.1, 0.3]])
    V = np.array([[0.1, -5.0], [0.1, 0.2]])
    with pytest.warns(UserWarning, match="k = 1"):
        df = pool_many(Y, V, test="hksj")
    assert df["k"].tolist() == [1, 2] and df["estimate"].iloc[0] == 0.5


@pytest.mark.parametrize("method", ["FE", "DL", "REML", "ML", "PM"])
def test_row_alone_equals_the_row_among_others(method):
    """An analysis's result does not depend on the analyses fitted with it,
    bit for bit: with more than 8 studies numpy sums one column pairwise but
    several columns study by study, so a lone analysis (alone in the call,
    or the last one still iterating) is summed as two columns
    (meta._estimators._twice)."""
    rng = np.random.default_rng(21)
    m, n = 40, 12
    k = rng.integers(9, n + 1, size=m)
    V = rng.uniform(0.01, 0.5, size=(m, n))
    Y = rng.normal(0.2, np.sqrt(V + rng.choice([0.0, 0.05, 0.3], size=(m, 1))))
    Y[np.arange(n)[None, :] >= k[:, None]] = np.nan
    whole = pool_many(Y, V, method=method, engine="numpy")
    for i in range(m):
        alone = pool_many(Y[i : i + 1], V[i : i + 1], method=method, engine="numpy")
        pd.testing.assert_frame_equal(alone.reset_index(drop=True), whole.iloc[i : i + 1].reset_index(drop=True), check_exact=True)


def test_erfc_grouped_is_scipys_erfc_bit_for_bit():
    """pool_many's p-values take scipy's erfc with the arguments below 1 and
    the rest grouped (branch prediction): the same values, element for element."""
    from scipy import special

    from meta import _estimators as E

    rng = np.random.default_rng(22)
    x = np.concatenate([rng.uniform(0, 1, 3000), rng.uniform(1, 30, 3000), rng.normal(0, 3, 3000),
                        [0.0, -0.0, 1.0, np.nextafter(1.0, 0.0), 8.0, 26.7, np.inf, -np.inf, np.nan]])
    rng.shuffle(x)
    want = special.erfc(x)
    np.testing.assert_array_equal(E.erfc_grouped(x), want)
    y = x.copy()
    assert E.erfc_grouped(y, out=y) is y
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(E.erfc_grouped(x[:100]), want[:100])  # short: scipy's erfc directly
