"""meta.escalc.escalc against metafor 3.8.1 escalc() (tests/r/escalc_reference.R): every
measure and vtype on dat.bcg, dat.normand1999, dat.mcdaniel1994 and Morris (2008), the
add/to/drop00 continuity corrections on adversarial 2x2 tables, and bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta import effects
from meta.escalc import escalc
from tests._reference import arr

REF = json.loads((Path(__file__).parent / "fixtures" / "escalc_reference.json").read_text())
CASES = {c["name"]: c for c in REF["escalc"]}


def _run(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return escalc(case["measure"], **case["args"], **dict(case["opts"] or {}))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_metafor_escalc(name):
    """yi and vi equal metafor's to 1e-12 relative; NA exactly where metafor has NA."""
    case = CASES[name]
    out = _run(case)
    assert out.attrs["measure"] == case["measure"]
    for col in ("yi", "vi"):
        got, want = out[col].to_numpy(), arr(case[col])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name} {col}: NA pattern")
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-12, atol=1e-15, err_msg=f"{name} {col}")


def test_metafor_fixture_version():
    assert REF["metafor"] == "3.8.1"


def test_smd_delegates_to_effects():
    """escalc('SMD') with vtype LS/UB is meta.effects.smd (the same numbers, the same checks)."""
    c = CASES["normand_SMD_LS"]["args"]
    for vt in ("LS", "UB"):
        out = escalc("SMD", **c, vtype=vt)
        ref = effects.smd(c["m1i"], c["sd1i"], c["n1i"], c["m2i"], c["sd2i"], c["n2i"], variance=vt.lower())
        np.testing.assert_array_equal(out["yi"].to_numpy(), ref["yi"].to_numpy())
        np.testing.assert_array_equal(out["vi"].to_numpy(), ref["vi"].to_numpy())


def test_data_columns_slab_and_attrs():
    """data= with column names appends yi/vi to a copy (metafor append=TRUE); slab becomes the index."""
    c = CASES["bcg_OR"]["args"]
    df = pd.DataFrame({"tpos": c["ai"], "tneg": c["bi"], "cpos": c["ci"], "cneg": c["di"],
                       "trial": [f"t{i}" for i in range(len(c["ai"]))]})
    out = escalc("or", ai="tpos", bi="tneg", ci="cpos", di="cneg", data=df, slab="trial")
    assert list(out.columns) == list(df.columns) + ["yi", "vi"]
    assert list(out.index) == list(df.trial)
    assert "yi" not in df.columns
    assert out.yi.attrs["measure"] == "OR"
    np.testing.assert_allclose(out["yi"].to_numpy(), arr(CASES["bcg_OR"]["yi"]), rtol=1e-12)


def test_series_paired_by_label():
    c = CASES["bcg_RR"]["args"]
    idx = [f"s{i}" for i in range(len(c["ai"]))]
    s = {k: pd.Series(v, index=idx) for k, v in c.items()}
    shuffled = {k: v.iloc[::-1] if k in ("ci", "di") else v for k, v in s.items()}
    out = escalc("RR", **shuffled)
    np.testing.assert_allclose(out["yi"].to_numpy(), arr(CASES["bcg_RR"]["yi"]), rtol=1e-12)
    assert list(out.index) == idx


def test_drop00_and_infinite_warn_with_positions():
    c = CASES["adv_OR_none_FALSE_0.5"]["args"]
    with pytest.warns(UserWarning, match=r"positions \[1, 2, 3, 4, 5\]"):
        escalc("OR", **c, to="none")
    with pytest.warns(UserWarning, match=r"drop00=True"):
        escalc("OR", **c, drop00=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ai=[1, -2], bi=[5, 5], ci=[2, 2], di=[4, 4]), r"ai must be >= 0 \(a count\); bad at positions \[1\]"),
        (dict(ai=[1, 2], bi=[5, 5], ci=[2, 2], di=[4, -1]), r"di must be >= 0.*positions \[1\]"),
        (dict(ai=[1, 12], ci=[2, 2], n1i=[10, 10], n2i=[8, 8]), r"ai must be <= n1i.*positions \[1\]"),
        (dict(ai=[1, 2], bi=[5, 5], ci=[2, 2], di=[4, 4], n1i=[6, 8]), r"n1i must equal ai \+ bi.*positions \[1\]"),
        (dict(ai=[1, np.nan], bi=[5, 5], ci=[2, 2], di=[4, 4]), r"ai must be finite.*positions \[1\]"),
        (dict(ai=[True, 2], bi=[5, 5], ci=[2, 2], di=[4, 4]), r"ai must be real numbers"),
        (dict(ai=[1, 2], ci=[2, 2], di=[4, 4]), r"needs bi or n1i"),
    ],
)
def test_bad_tables(kwargs, match):
    with pytest.raises(ValueError, match=match):
        escalc("OR", **kwargs)


def test_bad_options_name_what_is_valid():
    t = dict(ai=[1], bi=[2], ci=[3], di=[4])
    with pytest.raises(ValueError, match=r"measure must be one of .*'OR'"):
        escalc("LOR", **t)
    with pytest.raises(ValueError, match=r"to must be one of 'only0', 'all', 'if0all', 'none'"):
        escalc("OR", **t, to="some")
    with pytest.raises(ValueError, match=r"add must be a number >= 0"):
        escalc("OR", **t, add=-1)
    with pytest.raises(ValueError, match=r"vtype for measure 'MD' must be one of 'LS', 'UB', 'HO'"):
        escalc("MD", m1i=1, m2i=0, sd1i=1, sd2i=1, n1i=10, n2i=10, vtype="AV")
    with pytest.raises(ValueError, match=r"vtype for measure 'OR' must be one of 'LS'"):
        escalc("OR", **t, vtype="UB")
    with pytest.raises(ValueError, match=r"ri must be a correlation in \[-1, 1\]; bad at positions \[1\]"):
        escalc("ZCOR", ri=[0.2, 1.2], ni=[20, 30])
    with pytest.raises(ValueError, match=r"m2i must be > 0 for ROM"):
        escalc("ROM", m1i=[1, 2], m2i=[1, -2], sd1i=1, sd2i=1, n1i=10, n2i=10)
    with pytest.raises(ValueError, match=r"slab must be unique"):
        escalc("OR", ai=[1, 2], bi=[2, 2], ci=[3, 3], di=[4, 4], slab=["a", "a"])


def test_zcor_small_n_is_na_with_warning():
    """metafor: vi NA for ni <= 3 (with a warning), yi kept."""
    with pytest.warns(UserWarning, match=r"ni <= 3"):
        out = escalc("ZCOR", ri=[0.3, 0.5], ni=[3, 20])
    assert np.isnan(out["vi"].iloc[0])
    assert out["yi"].iloc[0] == pytest.approx(np.arctanh(0.3), rel=1e-15)
    assert out["vi"].iloc[1] == pytest.approx(1 / 17, rel=1e-15)
