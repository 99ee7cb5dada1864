"""meta.review.running.evidence: the original and updated evidence sets of an analysis, and meta.review.inputs.published: the
successors' pooled results matched by outcome construct (signs as printed)."""

from __future__ import annotations

import pandas as pd
import pytest

from meta.review.inputs.analysis import Analysis, parse_filters
from meta.review.running.evidence import ORIGINAL, SETS, UPDATED, analysis_scale, evidence_sets
from meta.review.inputs.published import outcome_constructs, published_for


def _table() -> pd.DataFrame:
    rows = [
        # study, outcome, comparison, design, review_match, review_set, es_scale
        ("old1", "peak_hip_adduction", "pfp_vs_control", "case-control", "likely", "original", "raw_sd"),
        ("old2", "hip_adduction", "pfp_vs_control", "case-control", "possible", "", "raw_sd"),  # empty = original
        ("old3", "peak_hip_adduction", "pfp_vs_control", "case-control", "unlikely", "original", "raw_sd"),
        ("new1", "peak_hip_adduction", "pfp_vs_control", "case-control", "unlikely", "update", "raw_sd"),
        ("new2", "peak_hip_adduction", "pfp_vs_control", "prospective", "unlikely", "update", "raw_sd"),
        ("new3", "peak_hip_adduction", "pfp_vs_control", "case-control", "unlikely", "update", ""),  # no SMD
        ("new4", "peak_hip_adduction", "post_vs_pre", "intervention-single-group", "unlikely", "update", "change_sd"),
        ("new5", "peak_hip_adduction", "post_vs_pre", "intervention-single-group", "unlikely", "update", "raw_sd"),
        ("old4", "peak_hip_adduction", "post_vs_pre", "intervention-single-group", "likely", "original", "raw_sd"),
        ("old5", "peak_hip_adduction", "post_vs_pre", "intervention-single-group", "likely", "original", "unstated"),
    ]
    t = pd.DataFrame(rows, columns=["study_id", "outcome", "comparison", "design", "review_match", "review_set", "es_scale"])
    t["review_set"] = t["review_set"].astype("string")
    t.insert(0, "outcomes_row", range(2, 2 + len(t)))
    return t


def _analysis(filters="design=case-control", outcomes=("peak_hip_adduction", "hip_adduction"), comparison="pfp_vs_control"):
    return Analysis("a1", "A1", tuple(outcomes), comparison, parse_filters(filters))


def _ids(df):
    return list(df["study_id"])


def test_original_set_is_todays_selection_and_updated_adds_newer_studies_passing_the_declared_filters():
    s = evidence_sets(_table(), _analysis())
    assert tuple(s) == SETS == (ORIGINAL, UPDATED)
    # original: review_set original (empty cell = original) and the default review_match=likely|possible
    assert _ids(s[ORIGINAL].matched) == ["old1", "old2"]
    assert s[ORIGINAL].added.empty and s[ORIGINAL].added_studies == ()
    # updated: plus the update studies passing design=case-control, whatever their review_match (unlikely);
    # a row without an SMD stays in the set (reported as unusable later); old3 (unlikely, original) stays out
    assert _ids(s[UPDATED].matched) == ["old1", "old2", "new1", "new3"]
    assert s[UPDATED].added_studies == ("new1", "new3")


def test_an_explicit_review_match_filter_applies_to_update_studies_too():
    s = evidence_sets(_table(), _analysis("design=case-control;review_match=likely|possible"))
    assert _ids(s[UPDATED].matched) == ["old1", "old2"]
    s = evidence_sets(_table(), _analysis("design=case-control;review_match=likely|unlikely"))
    assert _ids(s[ORIGINAL].matched) == ["old1", "old3"]
    assert _ids(s[UPDATED].matched) == ["old1", "old3", "new1", "new3"]


def test_scales_are_never_mixed_post_vs_pre_is_pooled_on_raw_sd():
    a = _analysis("design=intervention-single-group", outcomes=("peak_hip_adduction",), comparison="post_vs_pre")
    assert analysis_scale(a) == "raw_sd"
    s = evidence_sets(_table(), a)
    assert _ids(s[ORIGINAL].matched) == ["old4"] and _ids(s[ORIGINAL].other_scale) == ["old5"]
    assert _ids(s[UPDATED].matched) == ["new5", "old4"]  # table order
    assert _ids(s[UPDATED].other_scale) == ["new4", "old5"]  # d_z and an unstated standardiser: never pooled here
    assert s[UPDATED].scale == "raw_sd"


def test_table_without_review_set_column_is_all_original():
    t = _table().drop(columns="review_set")
    s = evidence_sets(t, _analysis())
    assert _ids(s[ORIGINAL].matched) == ["old1", "old2"] and _ids(s[UPDATED].matched) == ["old1", "old2"]


def test_unknown_filter_key_is_named():
    with pytest.raises(KeyError, match="nope"):
        evidence_sets(_table(), _analysis("nope=1"))


def test_bundled_data_neal2019_enters_case_control_hip_adduction_only_in_the_updated_set():
    from pathlib import Path

    from meta.review.inputs.analysis import load_analyses
    from meta.review.inputs.data import load
    from meta.review.running.run import effect_table

    root = Path(__file__).resolve().parent / "fixtures" / "review_data"
    table = effect_table(load(root))
    a = {x.analysis_id: x for x in load_analyses(root)}["cc_hip_adduction"]
    s = evidence_sets(table, a)
    assert "neal2019" not in set(s[ORIGINAL].matched["study_id"])
    assert "neal2019" in s[UPDATED].added_studies
    # gait retraining analyses name their studies: bramah2019 (update, d_z) does not enter them
    g = {x.analysis_id: x for x in load_analyses(root)}["gr_hip_adduction"]
    assert evidence_sets(table, g)[UPDATED].added_studies == ()


# --------------------------------------------------------------------------- published pooled results

VOCAB = pd.DataFrame(
    [("outcome", "peak_hip_adduction", "hip_adduction"), ("outcome", "hip_adduction", "hip_adduction"),
     ("outcome", "contralateral_pelvic_drop", "contralateral_pelvic_drop"), ("outcome", "pain_vas", "pain"),
     ("outcome", "pain", "pain"), ("outcome", "cadence", ""), ("design", "case-control", pd.NA)],
    columns=["column", "value", "construct"],
)
PUBLISHED = pd.DataFrame(
    [("s1", "hip_adduction", "case-control (pooled)", -0.2, "PFP minus control"),
     ("s2", "contralateral_pelvic_drop", "case-control", -0.46, "AS PRINTED, NOT FLIPPED: greater drop printed negative"),
     ("s3", "pain", "randomised controlled trials (intervention vs comparator)", -1.38, "intervention minus comparator"),
     ("s4", "cadence", "case-control", -0.43, "PFP minus control")],
    columns=["source_id", "outcome", "design", "smd", "sign_convention"],
)


def test_constructs_from_the_vocabulary_an_outcome_without_one_is_its_own():
    c = outcome_constructs(VOCAB)
    assert c["peak_hip_adduction"] == "hip_adduction" and c["cadence"] == "cadence" and "case-control" not in c


def test_published_rows_match_by_construct_signs_and_notes_as_printed():
    p = published_for(PUBLISHED, VOCAB, outcomes=["peak_hip_adduction"])
    assert list(p["source_id"]) == ["s1"] and p["construct"].iloc[0] == "hip_adduction"
    p = published_for(PUBLISHED, VOCAB, outcomes=["contralateral_pelvic_drop"])
    assert p["smd"].iloc[0] == -0.46  # never flipped
    assert p["sign_convention"].iloc[0] == "AS PRINTED, NOT FLIPPED: greater drop printed negative"
    assert list(published_for(PUBLISHED, VOCAB, constructs=["pain"])["source_id"]) == ["s3"]
    assert published_for(PUBLISHED, VOCAB, outcomes=["knee_flexion"]).empty
    assert published_for(None, VOCAB, outcomes=["pain"]).empty


def test_bundled_published_pooled_pelvic_drop_sign_kept():
    from pathlib import Path

    from meta.review.inputs.data import load

    ds = load(Path(__file__).resolve().parent / "fixtures" / "review_data")
    p = published_for(ds.published_pooled, ds.vocabulary, outcomes=["contralateral_pelvic_drop"])
    row = p.loc[p["source_id"] == "bazettjones2023"].iloc[0]
    assert row["smd"] == -0.46 and "NOT FLIPPED" in row["sign_convention"]


def test_published_rows_match_the_kind_of_question_when_a_comparison_is_given():
    assert list(published_for(PUBLISHED, VOCAB, outcomes=["pain_vas"], comparison="post_vs_pre")["source_id"]) == ["s3"]
    assert published_for(PUBLISHED, VOCAB, outcomes=["pain_vas"], comparison="pfp_vs_control").empty
    assert list(published_for(PUBLISHED, VOCAB, outcomes=["hip_adduction"], comparison="pfp_vs_control")["source_id"]) == ["s1"]
    assert published_for(PUBLISHED, VOCAB, outcomes=["hip_adduction"], comparison="post_vs_pre").empty
