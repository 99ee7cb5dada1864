"""meta reproduce: analyses.csv, the unit-of-analysis rule, the claims rule, and the whole
pipeline on the bundled data (outputs exist and agree with each other), bad data, atomic write."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from meta import report, reproduce
from meta.reproduce import AnalysesError, load_analyses, parse_filters, unit_of_analysis

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
FAST = dict(formats=("png",), dpi=72, html=True, progress=None)

# --------------------------------------------------------------------------- analyses.csv


def test_filters_parse_keys_values_and_negation():
    f = parse_filters("design=case-control; population_sex=female|mixed;task!=averaged_across_tasks")
    assert [str(x) for x in f] == ["design=case-control", "population_sex=female|mixed", "task!=averaged_across_tasks"]
    assert parse_filters("") == ()


@pytest.mark.parametrize("bad", ["design", "=female", "design="])
def test_filters_refuse_malformed_clauses(bad):
    with pytest.raises(ValueError, match="filter clause"):
        parse_filters(bad)


def test_review_match_default_added_unless_named():
    a = reproduce.Analysis("x", "x", ("o",), "pfp_vs_control", parse_filters("design=prospective"))
    assert "review_match=likely|possible" in [str(f) for f in a.effective_filters]
    b = reproduce.Analysis("x", "x", ("o",), "pfp_vs_control", parse_filters("review_match=likely"))
    assert [str(f) for f in b.effective_filters] == ["review_match=likely"]


def test_bundled_analyses_csv_is_valid():
    analyses = load_analyses(DATA)
    ids = [a.analysis_id for a in analyses]
    assert len(ids) == len(set(ids)) >= 10
    assert {a.smd_convention for a in analyses} <= {"revman", "ls"}


def test_analyses_csv_errors_name_row_and_column(tmp_path):
    df = pd.read_csv(DATA / "analyses.csv", dtype=str, keep_default_na=False)
    df.loc[1, "comparison"] = "pfp_versus_control"
    df.loc[2, "method"] = "ML"
    df.loc[3, "analysis_id"] = df.loc[0, "analysis_id"]
    df.to_csv(tmp_path / "analyses.csv", index=False)
    with pytest.raises(AnalysesError) as e:
        load_analyses(tmp_path)
    text = "\n".join(e.value.problems)
    assert f"analyses.csv, row 3 (analysis {df.loc[1, 'analysis_id']}), column comparison" in text
    assert "pfp_vs_control" in text  # says what would be valid
    assert "row 4" in text and "column method" in text
    assert "row 5" in text and "duplicate id" in text


# --------------------------------------------------------------------------- unit of analysis


def _rows(*recs):
    cols = ["outcomes_row", "study_id", "cohort_id", "task", "route", "n1", "n2", "yi", "vi"]
    return pd.DataFrame([dict(zip(cols, r)) for r in recs])


def test_unit_of_analysis_prefers_running_then_route_then_n():
    rows = _rows(
        (2, "souza2009a", "souza", "averaged_across_tasks", "means_sd", 21, 20, 1.1, 0.1),
        (3, "souza2009b", "souza", "running", "p_only", 19, 19, 1.5, 0.12),
        (4, "dierks2008", "dierks", "running", "p_only", 20, 20, 0.3, 0.1),
        (5, "dierks2011", "dierks", "running", "md_p", 20, 20, 0.4, 0.1),
        (6, "a2010", "a", "running", "means_sd", 10, 10, 0.1, 0.2),
        (7, "a2011", "a", "running", "means_sd", 12, 12, 0.2, 0.2),
        (8, "solo2012", "solo2012", "running", "p_only", 15, 15, 0.9, 0.15),
    )
    kept, aside = unit_of_analysis(rows)
    assert list(kept["study_id"]) == ["souza2009b", "dierks2011", "a2011", "solo2012"]  # outcomes.csv order
    assert kept["cohort_id"].is_unique
    reasons = dict(zip(aside["study_id"], aside["reason"]))
    assert set(reasons) == {"souza2009a", "dierks2008", "a2010"}
    assert "decided by task" in reasons["souza2009a"]
    assert "decided by route" in reasons["dierks2008"]
    assert "decided by n" in reasons["a2010"]


def test_unit_of_analysis_empty_cohort_falls_back_to_study():
    rows = _rows((2, "x2010", None, "running", "p_only", 10, 10, 0.1, 0.1), (3, "y2011", "", "running", "p_only", 10, 10, 0.2, 0.1))
    kept, aside = unit_of_analysis(rows)
    assert len(kept) == 2 and len(aside) == 0


# --------------------------------------------------------------------------- claims rule


@pytest.mark.parametrize(
    "k, est, lo, hi, expected, verdict",
    [
        (3, 0.5, 0.1, 0.9, 1, "agrees"),
        (3, -0.5, -0.9, -0.1, -1, "agrees"),
        (3, 0.5, -0.1, 1.1, 1, "direction only"),
        (3, -0.5, -0.9, -0.1, 1, "disagrees"),
        (3, -0.1, -0.5, 0.3, 1, "disagrees"),
        (1, 0.5, 0.1, 0.9, 1, "insufficient data"),
        (0, np.nan, np.nan, np.nan, 1, "insufficient data"),
        (2, 0.1, -0.2, 0.4, 0, "agrees"),
    ],
)
def test_claim_rule(k, est, lo, hi, expected, verdict):
    assert report.classify(k, est, lo, hi, expected) == verdict


def test_markdown_to_html_handles_emitted_constructs():
    md = "# T\n\nSome **bold** and `code` <b>.\n\n| a | b |\n| --- | --- |\n| 1 | x \\| y |\n\n- item\n\n![Forest](figures/f.png)\n"
    h = report.markdown_to_html(md, title="t")
    assert "<h1>T</h1>" in h and "<strong>bold</strong>" in h and "<code>code</code>" in h
    assert "&lt;b&gt;" in h  # text is escaped
    assert "<td>x | y</td>" in h and "<th>a</th>" in h
    assert "<li>item</li>" in h and '<img alt="Forest" src="figures/f.png"' in h


# --------------------------------------------------------------------------- end to end vs metafor

REF = ROOT / "tests" / "fixtures" / "reproduce_reference.json"


def _write_synthetic(folder: Path, ref: dict) -> Path:
    """The data set of tests/r/reproduce_reference.R as CSV files meta.data accepts."""
    folder.mkdir(parents=True, exist_ok=True)
    st = pd.DataFrame(ref["studies"])
    out = pd.DataFrame(ref["outcomes"])
    n = out.set_index("study_id")
    st = st.assign(
        authors="Synthetic A",
        year=[s[-4:] for s in st["study_id"]],
        title="synthetic study",
        journal="Test J",
        citation="Test J 2000;1:1-2",
        doi="",
        pmid="",
        population_sex="female",
        runners="yes",
        n_pfp=[int(n.loc[s, "n1"]) for s in st["study_id"]],
        n_control=[int(n.loc[s, "n2"]) for s in st["study_id"]],
        review_match_reason="synthetic",
        source_url="https://example.org/synthetic",
        notes="",
    )
    st.to_csv(folder / "studies.csv", index=False)
    has_p = out["p_value"].notna()
    out = out.assign(
        outcome="peak_hip_adduction",
        comparison="pfp_vs_control",
        timepoint="baseline",
        task="running",
        unit="deg",
        mean_diff="",
        p_operator=np.where(has_p, "=", ""),
        effect_size="",
        effect_size_type="",
        direction=[f"{d:+.0f}" if pd.notna(d) else "" for d in out["direction"]],
        source_url="https://example.org/synthetic",
        source_locator="tests/r/reproduce_reference.R",
        extraction_note="",
    )
    for c in ("n1", "n2"):
        out[c] = out[c].astype(int)
    out.to_csv(folder / "outcomes.csv", index=False)
    pd.DataFrame(
        [
            {"claim_id": "c1", "outcome": "peak_hip_adduction", "comparison": "pfp_vs_control", "population": "runners",
             "expected_direction": "+1", "evidence_level": "moderate", "source_url": "https://example.org/x",
             "claim_text": "PFP greater peak hip adduction"},
            {"claim_id": "c2", "outcome": "peak_hip_adduction", "comparison": "pfp_vs_control", "population": "female runners",
             "expected_direction": "+1", "evidence_level": "very limited", "source_url": "https://example.org/x",
             "claim_text": "prospective risk factor"},
            {"claim_id": "c3", "outcome": "peak_hip_flexion", "comparison": "pfp_vs_control", "population": "runners",
             "expected_direction": "-1", "evidence_level": "moderate", "source_url": "https://example.org/x",
             "claim_text": "less hip flexion"},
        ]
    ).to_csv(folder / "review_claims.csv", index=False)
    rows = [
        ("cc_add", "Case-control adduction", "peak_hip_adduction", "design=case-control", "c1"),
        ("pro_add", "Prospective adduction", "peak_hip_adduction", "design=prospective", "c2"),
        ("cc_flex", "Case-control flexion", "peak_hip_flexion", "design=case-control", "c3"),
    ]
    pd.DataFrame(
        [
            {"analysis_id": a, "title": t, "outcome": o, "comparison": "pfp_vs_control", "filters": f,
             "smd_convention": "revman", "method": "DL", "favours_left": "Less in PFP", "favours_right": "Greater in PFP",
             "claim_ids": c, "notes": ""}
            for a, t, o, f, c in rows
        ]
    ).to_csv(folder / "analyses.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    import json

    ref = json.loads(REF.read_text())
    folder = _write_synthetic(tmp_path_factory.mktemp("synthetic") / "data", ref)
    out = folder.parent / "results"
    res = reproduce.reproduce(folder, out, **FAST)
    return ref, res, out


def test_end_to_end_matches_metafor(synthetic):
    """Row selection, unit of analysis and the pooled fit equal metafor rma() on the rows R chose (1e-9)."""
    ref, res, out = synthetic
    pooled = pd.read_csv(out / "pooled.csv").set_index("analysis_id")
    row = pooled.loc["cc_add"]
    assert row["studies"].split(";") == ref["used"]
    m = ref["variants"]["revman DL"]
    for c in ("k", "estimate", "se", "ci_low", "ci_high", "p", "tau2", "i2", "q", "q_p", "pi_low", "pi_high"):
        assert row[c] == pytest.approx(m[c], rel=1e-9, abs=1e-12), c
    assert row["egger_p"] == pytest.approx(ref["egger_p"], rel=1e-8)
    assert row["trimfill_k0"] == ref["trimfill_k0"]
    eff = pd.read_csv(out / "effect_sizes.csv")
    used = eff.loc[eff["used_in"].fillna("").str.contains("cc_add")]
    np.testing.assert_allclose(used["yi"], ref["yi_revman"], rtol=1e-10)
    np.testing.assert_allclose(used["vi_ls"], ref["vi_ls"], rtol=1e-10)


def test_sensitivity_variants_match_metafor(synthetic):
    """DL/REML/PM, RevMan vs ls SMDs and HKSJ each equal the corresponding metafor fit."""
    ref, res, out = synthetic
    sens = pd.read_csv(out / "sensitivity.csv")
    sens = sens.loc[sens["analysis_id"] == "cc_add"].set_index("variant")
    for variant, m in ref["variants"].items():
        for c in ("estimate", "ci_low", "ci_high", "p", "tau2"):
            assert sens.loc[variant, c] == pytest.approx(m[c], rel=1e-7, abs=1e-10), (variant, c)


def test_set_aside_and_small_k_are_reported(synthetic):
    ref, res, out = synthetic
    runs = {r.analysis.analysis_id: r for r in res.runs}
    assert list(runs["cc_add"].set_aside["study_id"]) == ["dup2013"]
    assert runs["pro_add"].status == "single_study" and runs["cc_flex"].status == "no_data"
    md = (out / "report.md").read_text()
    assert "dup2013" in md and "decided by route" in md
    gaps = md.split("## Gaps")[1]
    assert "`pro_add`" in gaps.split("### No usable data")[0]
    assert "`cc_flex`" in gaps.split("### No usable data")[1]
    claims = pd.read_csv(out / "claims.csv").set_index("claim_id")
    assert claims.loc["c1", "verdict"] == "agrees"  # metafor: 0.45 [>0]
    assert claims.loc["c2", "verdict"] == "insufficient data"
    assert claims.loc["c3", "verdict"] == "insufficient data"
