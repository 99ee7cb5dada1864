"""meta.evidence_synthesis: the best-evidence-synthesis rule of van Tulder et al. (2003) as adapted by
Dorrestijn et al. (2009), in the form of Table 1 at https://pmc.ncbi.nlm.nih.gov/articles/PMC6090995/table/Tab1,
applied row by row; unknown quality gives the range of levels the rule allows."""

from __future__ import annotations

import pytest

from meta.evidence_synthesis import NO_LEVEL, RULES, VAN_TULDER_DORRESTIJN, grade, quality_category

SIG, NS = 0.01, 0.30  # pooled p-values: significant / not at alpha 0.05
CONS, INCONS = 0.60, 0.01  # Q-test p-values: consistent / inconsistent


@pytest.mark.parametrize("quality, level", [("high", "moderate"), ("medium", "limited"), ("low", "very limited")])
def test_one_significant_study_by_its_quality(quality, level):
    assert grade(1, SIG, None, [quality]).text == level


def test_one_non_significant_study_meets_no_criterion():
    assert grade(1, NS, None, ["high"]).text == NO_LEVEL


@pytest.mark.parametrize("qualities, level", [
    (["high", "high"], "strong"),
    (["high", "medium"], "moderate"),  # multiple studies of medium quality or better
    (["medium", "medium", "low"], "moderate"),
    (["high", "low"], "limited"),  # consistent, significant, but only one study of medium quality or better
    (["low", "low"], "limited"),
])
def test_consistent_significant_pooled_results(qualities, level):
    assert grade(len(qualities), SIG, CONS, qualities).text == level


@pytest.mark.parametrize("qualities, level", [(["high", "low"], "moderate"), (["medium", "low"], "limited"),
                                              (["low", "low"], "very limited")])
def test_inconsistent_significant_pooled_results(qualities, level):
    assert grade(len(qualities), SIG, INCONS, qualities).text == level


def test_inconsistent_non_significant_is_conflicting_and_consistent_non_significant_meets_none():
    assert grade(3, NS, INCONS, ["low", "high", None]).text == "conflicting"
    assert grade(3, NS, CONS, ["high"] * 3).text == NO_LEVEL


def test_unknown_quality_gives_the_range_from_all_low_to_all_high():
    g = grade(2, SIG, CONS, [None, None])
    assert (g.low, g.high, g.n_unknown) == ("limited", "strong", 2)
    assert g.text == "limited to strong, quality unknown"
    g1 = grade(1, SIG, None, [None])
    assert g1.text == "very limited to moderate, quality unknown"
    assert grade(2, SIG, CONS, ["medium", None]).text == "limited to moderate, quality unknown"
    assert grade(2, SIG, INCONS, ["high", None]).text == "moderate, quality unknown"  # the same level either way
    assert grade(0, None).text == "no data"


def test_quality_categories_follow_the_stated_cutoffs_and_can_be_changed():
    assert [quality_category(s, 10) for s in (7, 6, 4, 3)] == ["high", "medium", "medium", "low"]
    assert quality_category("", 10) is None and quality_category(5, None) is None
    strict = VAN_TULDER_DORRESTIJN.with_cutoffs(high=0.8, medium=0.5)
    assert quality_category(7, 10, strict) == "medium" and quality_category(4, 10, strict) == "low"
    with pytest.raises(ValueError, match="medium <= high"):
        VAN_TULDER_DORRESTIJN.with_cutoffs(high=0.5, medium=0.6)


def test_the_rule_is_a_named_documented_object():
    r = RULES["van_tulder_dorrestijn"]
    assert r.source == "https://pmc.ncbi.nlm.nih.gov/articles/PMC6090995/table/Tab1"
    assert "setting" in r.cutoff_source and "Downs and Black" in r.cutoff_source
    assert list(r.to_frame()["level"])[:2] == ["strong", "moderate"]


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="qualities must give one category per study"):
        grade(2, SIG, CONS, ["high"])
    with pytest.raises(ValueError, match=r"qualities must be one of high, medium, low or None; bad at positions \[1\]"):
        grade(2, SIG, CONS, ["high", "good"])
    with pytest.raises(ValueError, match="k must be a whole number"):
        grade(-1, SIG)
