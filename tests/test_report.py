"""meta.report.direction_votes: direction-only evidence shown beside (never instead of) a verdict."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from meta.report import direction_votes


def _run(matched: pd.DataFrame, pooled_rows: list[int]) -> SimpleNamespace:
    return SimpleNamespace(matched=matched, rows=matched[matched["outcomes_row"].isin(pooled_rows)])


def test_one_vote_per_cohort_pooled_row_first_then_smd_then_words():
    matched = pd.DataFrame(
        {
            "outcomes_row": [2, 3, 4, 5, 6],
            "study_id": ["a2009a", "a2009b", "b2010", "c2011", "d2012"],
            "cohort_id": ["a", "a", "b", "c", "d"],
            # a2009a is pooled (+); its sister publication a2009b says the opposite in words: cohort a counts once, as +
            "yi": [0.5, np.nan, np.nan, -0.2, np.nan],
            "direction": [1, -1, -1, pd.NA, pd.NA],  # d2012 states no direction: no vote
        }
    )
    text = direction_votes([_run(matched, [2])], expected=1)
    assert text == "1 of 3 cohorts in the expected direction (a2009a); opposite: b2010, c2011"


def test_no_direction_or_no_expectation_gives_empty():
    matched = pd.DataFrame({"outcomes_row": [2], "study_id": ["x2000"], "cohort_id": ["x"], "yi": [np.nan], "direction": [pd.NA]})
    assert direction_votes([_run(matched, [])], expected=-1) == ""
    matched.loc[0, "direction"] = -1
    assert direction_votes([_run(matched, [])], expected=None) == ""
    assert direction_votes([_run(matched, [])], expected=-1) == "1 of 1 cohorts in the expected direction (x2000)"
