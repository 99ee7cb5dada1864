"""Why meta.pool does not wrap statsmodels: on a set with Q < df, statsmodels 0.15
``combine_effects(method_re="chi2")`` (DerSimonian-Laird) leaves tau² negative and its
random-effects CI undefined, while metafor truncates tau² at 0 (DerSimonian & Laird 1986).

The test pins both sides against the metafor fixture, so it fails if we stop agreeing with
metafor, and it tells us when statsmodels changes its behaviour (then this note can go).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from meta.pool import pool

FIXTURE = Path(__file__).parent / "fixtures" / "pool_reference.json"


def _case():
    cases = json.loads(FIXTURE.read_text())["cases"]
    case = next(c for c in cases if c["name"] == "k8_q_below_df")
    dl = next(f for f in case["fits"] if f["method"] == "DL" and f["test"] == "z" and f["level"] == 0.95)
    return np.array(case["yi"]), np.array(case["vi"]), dl


def test_ours_truncates_tau2_like_metafor_where_statsmodels_goes_negative():
    sm = pytest.importorskip("statsmodels.stats.meta_analysis")
    yi, vi, ref = _case()
    assert ref["q"] < ref["q_df"] and ref["tau2"] == 0

    ours = pool(yi, vi, method="DL")
    assert ours.tau2 == 0
    assert ours.estimate == pytest.approx(ref["estimate"], rel=1e-10)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((ref["ci_low"], ref["ci_high"]), rel=1e-10)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sm.combine_effects(yi, vi, method_re="chi2")
        frame = res.summary_frame()
    assert res.tau2 < 0  # statsmodels 0.15: not truncated
    assert np.isnan(frame.loc["random effect", "ci_low"])
    assert frame.loc["random effect", "eff"] != pytest.approx(ref["estimate"], rel=1e-3)
