"""The report tells the truth at a glance: a first screen with the summary per claim, every verdict with
its robustness, every evidence set with its figures, what the updated set changed, one source for
coverage and gaps, declared tasks, and levels of evidence from a named rule.

Every test runs on a copy of tests/fixtures/data_good with a few rows added (built by :func:`build`):
an original case-control set of two studies for peak hip adduction, two newer studies (one sharing
willson2008's cohort, so the one-row-per-cohort rule sets willson2008's averaged row aside in the
updated set), a static row of the same outcome and comparison, and a prospective single study.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meta.review import reproduce

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "tests" / "fixtures" / "data_good"
FAST = dict(formats=("png",), dpi=72, progress=None)
NEW_STUDY = dict(title="test fixture study", journal="Test J", citation="Test J 2020;1:1-2", doi="", pmid="",
                 design="case-control", population_sex="female", runners="yes", n_pfp="20", n_control="20",
                 review_match="unlikely", review_match_reason="published after the review's search",
                 source_url="https://example.org/fixture", notes="test fixture", review_set="update")
ROW = dict(comparison="pfp_vs_control", timepoint="baseline", task="running", unit="deg", mean_diff="", p_value="",
           p_operator="", effect_size="", effect_size_type="", direction="", source_url="https://example.org/fixture",
           source_locator="test fixture", extraction_note="test fixture values")


def build(folder: Path, *, analyses: list[dict] | None = None, quality: dict | None = None) -> Path:
    """data_good plus the rows described in the module docstring, and analyses.csv."""
    shutil.copytree(GOOD, folder)
    st = pd.read_csv(folder / "studies.csv", dtype=str, keep_default_na=False)
    st["review_set"] = "original"
    st = pd.concat([st, pd.DataFrame([
        {**NEW_STUDY, "study_id": "willson2020", "cohort_id": "willson2008", "authors": "Willson JD", "year": "2020"},
        {**NEW_STUDY, "study_id": "fresh2021", "cohort_id": "fresh2021", "authors": "Fresh A", "year": "2021",
         "n_pfp": "25", "n_control": "25"},
    ])], ignore_index=True)
    for c in ("quality_scale", "quality_score", "quality_max", "quality_source"):
        st[c] = ""
    st["quality_source"] = "not found: test fixture"
    for sid, (score, mx) in (quality or {}).items():
        m = st["study_id"] == sid
        st.loc[m, ["quality_scale", "quality_score", "quality_max", "quality_source"]] = \
            ["modified Downs and Black", str(score), str(mx), "https://example.org/fixture, table 1"]
    st.to_csv(folder / "studies.csv", index=False)
    out = pd.read_csv(folder / "outcomes.csv", dtype=str, keep_default_na=False)
    add = [
        {**ROW, "study_id": "souza2009b", "outcome": "peak_hip_adduction", "n1": "19", "mean1": "10.1", "sd1": "3.5",
         "n2": "19", "mean2": "7.0", "sd2": "3.3"},
        {**ROW, "study_id": "willson2020", "outcome": "peak_hip_adduction", "n1": "20", "mean1": "10.0", "sd1": "3.0",
         "n2": "20", "mean2": "8.0", "sd2": "3.0"},
        {**ROW, "study_id": "fresh2021", "outcome": "peak_hip_adduction", "n1": "25", "mean1": "9.5", "sd1": "3.0",
         "n2": "25", "mean2": "7.0", "sd2": "3.2"},
        # a static measure of the same outcome and comparison: never pooled into a running analysis silently
        {**ROW, "study_id": "noehren2012a", "outcome": "peak_hip_adduction", "task": "static", "n1": "16",
         "mean1": "5.0", "sd1": "2.0", "n2": "16", "mean2": "9.0", "sd2": "2.0"},
    ]
    out = pd.concat([out, pd.DataFrame(add)], ignore_index=True).fillna("")
    out.to_csv(folder / "outcomes.csv", index=False)
    base = {"comparison": "pfp_vs_control", "smd_convention": "revman", "method": "DL", "favours_left": "Less in PFP",
            "favours_right": "Greater in PFP", "notes": "", "evidence_rule": ""}
    if analyses is None:
        analyses = [
            {**base, "analysis_id": "cc_add", "title": "Case-control peak hip adduction", "outcome": "peak_hip_adduction",
             "filters": "design=case-control", "claim_ids": "c01", "task": "running|averaged_across_tasks"},
            {**base, "analysis_id": "pro_add", "title": "Prospective peak hip adduction", "outcome": "peak_hip_adduction",
             "filters": "design=prospective", "claim_ids": "", "task": "",
             "favours_left": "Less in future PFP", "favours_right": "Greater in future PFP"},
        ]
    pd.DataFrame([{**base, **a} for a in analyses]).to_csv(folder / "analyses.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("truth")
    data = build(base / "data")
    res = reproduce.reproduce(data, base / "results", **FAST)
    return res, base / "results"


def _md(out: Path) -> str:
    return (out / "report.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- 1. first screen

def test_report_opens_with_its_honest_title_what_the_data_allows_and_a_summary_row_per_claim(run):
    res, out = run
    md = _md(out)
    assert md.startswith("# Neal et al. (2016): a reproduction and update from publicly accessible data\n")
    first = md[: md.index("## Contents")]
    assert "reproduced\n" not in first.splitlines()[0]
    assert "## Summary: each claim of the review" in first and "## Methods" not in first
    table = [ln for ln in first.splitlines() if ln.startswith("| c0")]
    assert [ln.split("|")[1].strip() for ln in table] == ["c01", "c02"]  # one row per claim of review_claims.csv
    head = next(ln for ln in first.splitlines() if ln.startswith("| claim |"))
    for col in ("the review says", "review's level", "original set: k, SMD", "original: verdict",
                "original: level (rule)", "updated set: k, SMD", "updated: verdict", "updated: level (rule)"):
        assert col in head, col
    c01 = table[0]
    assert "moderate" in c01 and "k = 2: " in c01 and "k = 3: " in c01 and "holds under" in c01
    # methods come after the results; the contents link to headings that exist in the html
    assert md.index("## Analyses") < md.index("## Methods")
    html = (out / "report.html").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(#([a-z0-9-]+)\)", md):
        assert f'id="{target}"' in html, target
    assert "<title>Neal et al. (2016): a reproduction and update from publicly accessible data</title>" in html


# --------------------------------------------------------------------------- 2. verdicts with robustness

def test_every_verdict_carries_its_robustness_and_a_single_study_is_never_robust(run):
    res, out = run
    pooled = pd.read_csv(out / "pooled.csv", dtype=str, keep_default_na=False)
    for _, r in pooled.iterrows():
        k = int(r["k"])
        if k == 1:
            assert r["holds_under"] == "single study" and r["fragile"] == "", dict(r)
            assert r["verdict"].endswith("(single study)")
        elif k >= 2:
            assert re.fullmatch(r"\d of \d", r["holds_under"]) and r["fragile"] in ("True", "False")
            assert re.search(r"\(holds under \d of \d methods(: fragile)?\)$", r["verdict"])
            assert r["verdict"].endswith(": fragile)") == (r["fragile"] == "True")
    rob = pd.read_csv(out / "robustness.csv", dtype=str, keep_default_na=False)
    one = rob.loc[rob["analysis_id"] == "pro_add"]
    assert len(one) and (one["holds_under"] == "single study").all() and (one["fragile"] == "").all()
    claims = pd.read_csv(out / "claims.csv", dtype=str, keep_default_na=False)
    assert all("(" in v for v in claims["verdict_text"])
    md = _md(out)
    # wherever a method count is printed, it is "n of m methods"; no k = 1 line carries one
    assert "holds under 1 of" not in md and "5 of 5, fragile: False" not in md
    single = [ln for ln in md.splitlines() if "Single study (not pooled)" in ln]
    assert single and all("single study" in ln and " of 5" not in ln for ln in single)


# --------------------------------------------------------------------------- 3. figures per set

def test_every_analysis_and_set_has_its_figures_and_the_report_shows_both_sets_side_by_side(run):
    res, out = run
    figs = out / "figures"
    pooled = pd.read_csv(out / "pooled.csv", dtype=str, keep_default_na=False)
    md = _md(out)
    for _, r in pooled.iterrows():
        aid, s, k = r["analysis_id"], r["set"], int(r["k"])
        if k == 0:
            continue
        own = figs / f"{aid}_{s}_forest.png"
        shared = figs / f"{aid}_original_forest.png"
        assert own.is_file() or (s == "updated" and shared.is_file()), (aid, s)
        if k >= 2:
            assert (figs / f"{aid}_{s}_robustness.png").is_file() or (figs / f"{aid}_original_robustness.png").is_file()
    # cc_add differs between the sets (k 2 -> 3): both drawn, side by side in one table row
    assert (figs / "cc_add_original_forest.png").is_file() and (figs / "cc_add_updated_forest.png").is_file()
    assert (figs / "cc_add_updated_robustness.png").is_file()
    row = next(ln for ln in md.splitlines() if "figures/cc_add_original_forest.png" in ln)
    assert row.startswith("| ") and "figures/cc_add_updated_forest.png" in row
    # every referenced figure exists, and the methods count what was drawn
    refs = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert refs and all((out / p).is_file() for p in refs)
    forests = sorted(p.name for p in figs.glob("*_forest.png"))
    pairs = int((pooled["k"].astype(int) >= 1).sum())  # 4 pairs; pro_add's updated set shares the original's file
    assert f"forest plots for {pairs} analysis x evidence-set pairs ({len(forests)} files)" in md and "Forest and robustness plots were drawn for every analysis" not in md


# --------------------------------------------------------------------------- 4. what the update changed

def test_updated_set_names_the_studies_added_and_the_rows_set_aside_beside_the_estimate(run):
    res, out = run
    md = _md(out)
    sec = md[md.index("(`cc_add`)"):]
    sec = sec[: sec.index("\n### ")] if "\n### " in sec else sec
    upd = sec[sec.index("**Updated set**"):]
    assert "willson2020 (2020)" in upd and "fresh2021 (2021)" in upd
    assert "Set aside in the updated set (one row per cohort): willson2008" in upd
    assert "same cohort willson2008 as willson2020" in upd and "decided by task" in upd
    assert "k: 2 -> 3" in upd and "**Pooled (DL, k = 3):**" in upd


# --------------------------------------------------------------------------- 5. one source per fact

def test_coverage_gaps_and_counts_come_from_one_table_and_no_template_text_reaches_the_report(run):
    res, out = run
    md = _md(out)
    assert "Generated by" not in md and "do not edit" not in md
    eff = res.effects
    cov = res.coverage
    finite = np.isfinite(pd.to_numeric(eff["yi"], errors="coerce"))
    for sid, row in cov.iterrows():
        for outcome, cell in row.items():
            rows = eff.loc[(eff["study_id"] == sid) & (eff["outcome"] == outcome)]
            routes = set(rows.loc[finite.reindex(rows.index).to_numpy(), "route"])
            if cell in ("", "\u2013"):
                assert not routes, (sid, outcome, cell, routes)
            else:
                assert set(cell.split(", ")) == routes, (sid, outcome, cell, routes)
    # willy2012b's post vs pre means and SDs give no r: the coverage and the gaps both say "no usable numbers"
    assert cov.loc["willy2012b", "peak_hip_adduction"] == "\u2013"
    gaps = md[md.index("### Outcome rows with no usable route"):]
    assert "willy2012b" in gaps[: gaps.index("###", 5)]
    # the study counts are explained: the review's 28 publications, the candidates, the newer studies
    assert "The review included 28 publications" in md and "2 newer studies" in md
    assert re.search(r"holds \d+ studies: \d+ candidates for the review's publications", md)


# --------------------------------------------------------------------------- 7. tasks

def test_a_row_of_another_task_never_enters_silently(run, tmp_path):
    res, out = run
    cc = {r.analysis.analysis_id: r for r in res.runs}["cc_add"]
    assert "noehren2012a" not in set(cc.rows["study_id"])
    assert list(cc.other_task["task"]) == ["static"]
    md = _md(out)
    assert "Left out: rows of another task than the analysis declares" in md and "task `static`" in md
    # declared, the static row enters (and says so in the study table's task column)
    data = build(tmp_path / "data", analyses=[
        {"analysis_id": "cc_add", "title": "t", "outcome": "peak_hip_adduction", "filters": "design=case-control",
         "claim_ids": "", "task": "running|averaged_across_tasks|static"}])
    r2 = reproduce.reproduce(data, None, progress=None)
    assert "static" in set(r2.runs[0].rows["task"])
    # an empty declaration is running only: the averaged_across_tasks row is left out and listed
    data = build(tmp_path / "data2", analyses=[
        {"analysis_id": "cc_add", "title": "t", "outcome": "peak_hip_adduction", "filters": "design=case-control",
         "claim_ids": "", "task": ""}])
    r3 = reproduce.reproduce(data, None, progress=None).runs[0]
    assert set(r3.other_task["task"]) == {"static", "averaged_across_tasks"} and set(r3.rows["task"]) == {"running"}


def test_a_task_outside_the_vocabulary_is_refused_with_row_and_column(tmp_path):
    from meta.review.inputs.analysis import AnalysesError, load_analyses

    data = build(tmp_path / "data", analyses=[
        {"analysis_id": "cc_add", "title": "t", "outcome": "peak_hip_adduction", "filters": "design=case-control",
         "claim_ids": "", "task": "runing"}])
    with pytest.raises(AnalysesError, match=r"analyses.csv, row 2 \(analysis cc_add\), column task"):
        load_analyses(data)


# --------------------------------------------------------------------------- 6. levels of evidence

def test_levels_of_evidence_are_ranges_while_quality_is_unknown_and_compared_with_the_review(run, tmp_path):
    res, out = run
    claims = pd.read_csv(out / "claims.csv", dtype=str, keep_default_na=False).set_index(["set", "claim_id"])
    c = claims.loc[("updated", "c01")]
    assert c["review_level"] == "moderate" and c["level_rule"] == "van_tulder_dorrestijn"
    assert c["level"].endswith("quality unknown") and " to " in c["level"]
    assert c["level_vs_review"]
    md = _md(out)
    assert "## Levels of evidence" in md and "https://pmc.ncbi.nlm.nih.gov/articles/PMC6090995/table/Tab1" in md
    assert "not accessible" in md[md.index("## Levels of evidence"):]
    # with every quality known (all high), the level is one level, no longer a range
    data = build(tmp_path / "data", quality={"souza2009b": (14, 16), "willson2008": (13, 16), "willson2020": (15, 16),
                                             "fresh2021": (14, 16)})
    r = reproduce.reproduce(data, None, progress=None)
    cl = r.claims.set_index(["set", "claim_id"])
    assert " to " not in cl.loc[("updated", "c01"), "level"] and "unknown" not in cl.loc[("updated", "c01"), "level"]


def test_an_unknown_evidence_rule_is_refused(tmp_path):
    from meta.review.inputs.analysis import AnalysesError, load_analyses

    data = build(tmp_path / "data", analyses=[
        {"analysis_id": "cc_add", "title": "t", "outcome": "peak_hip_adduction", "filters": "design=case-control",
         "claim_ids": "", "task": "running", "evidence_rule": "gut_feeling"}])
    with pytest.raises(AnalysesError, match=r"column evidence_rule: must be one of van_tulder_dorrestijn"):
        load_analyses(data)


# --------------------------------------------------------------------------- 8. forest labels

@pytest.mark.filterwarnings("ignore:forest. the table needs")
def test_favours_labels_are_never_split_mid_phrase():
    from meta.plots import forest
    from meta.pool import pool

    r = pool([0.8], [0.1], method="DL")
    st = pd.DataFrame({"label": ["A very long study label (averaged across tasks) 2008"], "yi": [0.8], "vi": [0.1]})
    fig = forest(r, st, favours=("Less in future PFP", "Greater in future PFP"), title="t")
    fav = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() in ("favours-left", "favours-right")]
    assert fav == ["Less in future PFP", "Greater in future PFP"]
