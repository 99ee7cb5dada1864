"""meta.bias against metafor 3.8.1 (tests/fixtures/bias_reference.json, from tests/r/bias_reference.R)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta.bias import EggerResult, egger

FIXTURE = Path(__file__).parent / "fixtures" / "bias_reference.json"
REF = json.loads(FIXTURE.read_text())

RTOL = 1e-8


def close(actual, expected, rtol=RTOL, atol=0.0):
    """Relative comparison; ``None`` in the fixture is R's NA/NaN."""
    expected = np.nan if expected is None else expected
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def test_fixture_is_from_metafor_381():
    assert REF["metafor_version"] == "3.8.1"
    assert len(REF["egger"]) >= 6


# --------------------------------------------------------------------------
# egger
# --------------------------------------------------------------------------
@pytest.mark.parametrize("ref", REF["egger"], ids=lambda r: r["dataset"])
def test_egger_matches_metafor_regtest_lm(ref):
    """Matches metafor regtest(yi, vi, model = "lm") to 1e-8 (relative)."""
    res = egger(ref["yi"], ref["vi"])
    assert res.k == len(ref["yi"])
    assert res.df == ref["dfs"] == res.k - 2
    close(res.t, ref["zval"])
    close(res.p, ref["pval"])
    close(res.intercept, ref["est"])
    close(res.intercept, ref["coef_intrcpt"])
    close(res.intercept_se, ref["se_intrcpt"])
    close(res.ci_low, ref["ci_lb"])
    close(res.ci_high, ref["ci_ub"])
    close(res.slope, ref["coef_sei"])
    close(res.slope_se, ref["se_sei"])


@pytest.mark.parametrize("ref", REF["egger"], ids=lambda r: r["dataset"])
def test_egger_is_egger_1997_snd_regression(ref):
    """Egger et al. (1997): lm(yi/sei ~ 1/sei); its intercept and t are our slope and t."""
    res = egger(ref["yi"], ref["vi"])
    close(res.slope, ref["egger1997_intercept"])
    close(res.slope_se, ref["egger1997_intercept_se"])
    close(res.t, ref["egger1997_t"])
    close(res.intercept, ref["egger1997_slope"])


def test_egger_accepts_series_and_is_frozen():
    ref = REF["egger"][0]
    res = egger(pd.Series(ref["yi"]), pd.Series(ref["vi"]))
    assert isinstance(res, EggerResult)
    with pytest.raises(AttributeError):
        res.t = 0.0
    frame = res.to_frame()
    assert frame.shape[0] == 1
    assert {"k", "intercept", "intercept_se", "slope", "slope_se", "t", "df", "p"} <= set(frame.columns)
    close(frame.loc[0, "t"], ref["zval"])
    text = res.summary()
    assert f"t = {ref['zval']:.4f}, df = {ref['dfs']}" in text
    assert f"b = {ref['est']:.4f}" in text


def test_egger_level_changes_only_the_ci():
    ref = REF["egger"][0]
    r95 = egger(ref["yi"], ref["vi"])
    r90 = egger(ref["yi"], ref["vi"], level=0.90)
    assert r90.t == r95.t and r90.intercept == r95.intercept
    assert r95.ci_low < r90.ci_low < r90.intercept < r90.ci_high < r95.ci_high


def test_egger_needs_three_studies():
    with pytest.raises(ValueError, match="at least 3 studies"):
        egger([0.1, 0.2], [0.01, 0.02])
    res = egger([0.1, 0.2, 0.5], [0.01, 0.02, 0.04])  # k = 3 works, df = 1
    assert res.df == 1 and math.isfinite(res.t)


@pytest.mark.parametrize(
    "yi, vi, match",
    [
        ([0.1, 0.2, 0.3], [0.01, 0.02], "same length"),
        ([0.1, np.nan, 0.3, 0.4], [0.01, 0.02, 0.03, 0.04], r"yi must be finite.*positions \[1\]"),
        ([0.1, 0.2, 0.3, 0.4], [0.01, 0.02, np.nan, 0.04], r"vi must be finite.*positions \[2\]"),
        ([0.1, 0.2, 0.3, 0.4], [0.01, 0.0, 0.03, -1.0], r"vi .* must be > 0.*positions \[1, 3\]"),
        ([0.1, 0.2, 0.3, 0.4], [0.02, 0.02, 0.02, 0.02], "not of full rank"),
        ([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], None),
    ],
)
def test_egger_bad_input_names_argument(yi, vi, match):
    if match is None:
        with pytest.raises(ValueError, match="level"):
            egger(yi, vi, level=95)
    else:
        with pytest.raises(ValueError, match=match):
            egger(yi, vi)
