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

from meta.review.running import claims as claims_mod
from meta.review import reproduce
from meta.review.outputs import report
from meta.review.outputs import results_folder as outputs
from meta.review.outputs.results_folder import MARKER, MARKER_TEXT
from meta.review.inputs.analysis import AnalysesError, Analysis, load_analyses, parse_filters
from meta.review.running.run import unit_of_analysis
from meta.review.running.sensitivity import SENSITIVITY_VARIANTS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
#: the review data as a frozen fixture, whose session run (tests/conftest.py) the bundled-data tests read
SNAPSHOT = ROOT / "tests" / "fixtures" / "review_data"
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
    a = Analysis("x", "x", ("o",), "pfp_vs_control", parse_filters("design=prospective"))
    assert "review_match=likely|possible" in [str(f) for f in a.effective_filters]
    b = Analysis("x", "x", ("o",), "pfp_vs_control", parse_filters("review_match=likely"))
    assert [str(f) for f in b.effective_filters] == ["review_match=likely"]


def test_bundled_analyses_csv_is_valid():
    analyses = load_analyses(DATA)
    ids = [a.analysis_id for a in analyses]
    assert len(ids) == len(set(ids)) >= 10
    assert {a.smd_convention for a in analyses} <= {"revman", "ls"}


def test_analyses_csv_errors_name_row_and_column(tmp_path):
    df = pd.read_csv(DATA / "analyses.csv", dtype=str, keep_default_na=False)
    df.loc[1, "comparison"] = "pfp_versus_control"
    df.loc[2, "method"] = "ML2"
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
    assert claims_mod.classify(k, est, lo, hi, expected) == verdict


def test_markdown_to_html_handles_emitted_constructs():
    md = "# T\n\nSome **bold** and `code` <b>.\n\n| a | b |\n| --- | --- |\n| 1 | x \\| y |\n\n- item\n\n![Forest](figures/f.png)\n"
    h = report.markdown_to_html(md, title="t")
    assert '<h1 id="t">T</h1>' in h and "<strong>bold</strong>" in h and "<code>code</code>" in h
    assert "&lt;b&gt;" in h  # text is escaped
    assert "<td>x | y</td>" in h and "<th>a</th>" in h
    assert "<li>item</li>" in h and '<img alt="Forest" src="figures/f.png"' in h


# --------------------------------------------------------------------------- end to end vs metafor

REF = ROOT / "tests" / "fixtures" / "reproduce_reference.json"


def _write_synthetic(folder: Path, ref: dict) -> Path:
    """The data set of tests/r/reproduce_reference.R as CSV files meta.review.inputs.data accepts."""
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
            {"claim_id": "c2", "outcome": "peak_hip_adduction", "comparison": "pfp_vs_control", "population": "female_runners",
             "expected_direction": "+1", "evidence_level": "very_limited", "source_url": "https://example.org/x",
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
             "claim_ids": c, "notes": "",
             # Egger/trim-and-fill need k >= 10 by default (Sterne et al. 2011); cc_add (k = 5) lowers it
             # explicitly so that they still run and are compared with metafor below
             "small_study_min_k": "3" if a == "cc_add" else ""}
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
    pooled = _original(pd.read_csv(out / "pooled.csv")).set_index("analysis_id")
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
    sens = _original(pd.read_csv(out / "sensitivity.csv"))
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
    gaps = md.split("## Data coverage and gaps")[1]
    assert "`pro_add` (original set)" in gaps.split("### No usable data")[0]
    assert "`cc_flex`" in gaps.split("### No usable data")[1]
    claims = _original(pd.read_csv(out / "claims.csv")).set_index("claim_id")
    assert claims.loc["c1", "verdict"] == "agrees"  # metafor: 0.45 [>0]
    assert claims.loc["c2", "verdict"] == "insufficient data"
    assert claims.loc["c3", "verdict"] == "insufficient data"


# --------------------------------------------------------------------------- bundled data


def _original(df: pd.DataFrame) -> pd.DataFrame:
    """The original evidence set's rows of a results table (both sets: tests/test_living.py)."""
    return df.loc[df["set"] == "original"].reset_index(drop=True)


def _used(eff: pd.DataFrame, aid: str) -> pd.DataFrame:
    return eff.loc[eff["used_in"].fillna("").str.split(";").map(lambda ids: aid in ids)]


@pytest.fixture(scope="module")
def bundled(snapshot_results):
    """The session's run of the review data snapshot (tests/conftest.py: PNG at 72 dpi, with report.html)."""
    return None, snapshot_results


def test_bundled_outputs_exist(bundled):
    res, out = bundled
    for name in ("effect_sizes.csv", "pooled.csv", "sensitivity.csv", "claims.csv", "coverage.csv", "report.md", "report.html"):
        assert (out / name).is_file(), name
    assert not list(out.parent.glob(".results.*")), "temporary folders or lock left behind"
    assert (out / MARKER).read_text() == MARKER_TEXT  # marks the folder as ours: the next run may replace it


def test_bundled_pooled_agrees_with_effect_sizes_and_pool(bundled):
    """pooled.csv k = rows of effect_sizes.csv used; estimate = meta.pool.pool on exactly those rows."""
    from meta.pool import pool

    res, out = bundled
    pooled = _original(pd.read_csv(out / "pooled.csv"))
    eff = pd.read_csv(out / "effect_sizes.csv")
    assert len(eff) == len(pd.read_csv(SNAPSHOT / "outcomes.csv"))  # every outcome row, usable or not
    analyses = {a.analysis_id: a for a in load_analyses(SNAPSHOT)}
    assert list(pooled["analysis_id"]) == list(analyses)
    n_pooled = 0
    for _, row in pooled.iterrows():
        a = analyses[row["analysis_id"]]
        used = _used(eff, a.analysis_id)
        assert row["k"] == len(used), a.analysis_id
        assert used["cohort_id"].is_unique, f"{a.analysis_id} pools two rows of one cohort"
        assert set(used["outcome"]) <= set(a.outcomes) and (used["comparison"] == a.comparison).all()
        assert used["review_match"].isin(["likely", "possible"]).all()
        y = used["yi" if a.smd_convention == "revman" else "yi_ls"].to_numpy()
        v = used["vi" if a.smd_convention == "revman" else "vi_ls"].to_numpy()
        if row["k"] >= 2:
            n_pooled += 1
            r = pool(y, v, method=a.method)
            assert row["estimate"] == pytest.approx(r.estimate, rel=1e-12)
            assert row["ci_low"] == pytest.approx(r.ci_low, rel=1e-12)
            assert row["tau2"] == pytest.approx(r.tau2, rel=1e-12, abs=1e-15)
            both = used["n1"].sum() + (0 if a.comparison == "post_vs_pre" else used["n2"].sum())
            assert row["n_total"] == both  # post_vs_pre: the same people twice, counted once
        elif row["k"] == 1:
            assert row["estimate"] == pytest.approx(y[0], rel=1e-12)
            assert row["status"] == "single_study" and np.isnan(row["tau2"])
        else:
            assert row["status"] == "no_data" and np.isnan(row["estimate"])
        if row["k"] >= analyses[row["analysis_id"]].bias_min_k:  # 10 unless analyses.csv lowers it
            assert np.isfinite(row["egger_p"]) and row["trimfill_k0"] >= 0
        else:
            assert np.isnan(row["egger_p"])
    assert n_pooled >= 1


def test_bundled_every_analysis_reported_with_figures(bundled):
    res, out = bundled
    pooled = _original(pd.read_csv(out / "pooled.csv"))
    md = (out / "report.md").read_text()
    no_data = md.split("### No usable data (original set)")[1].split("###")[0]
    for _, row in pooled.iterrows():
        aid = row["analysis_id"]
        assert f"(`{aid}`)" in md  # its own section
        forest = out / "figures" / f"{aid}_original_forest.png"
        funnel = out / "figures" / f"{aid}_original_funnel.png"
        if row["k"] == 0:
            assert f"`{aid}`" in no_data and not forest.exists()
        else:
            assert forest.is_file() and forest.stat().st_size > 1000
            assert f"figures/{aid}_original_forest.png" in md
        assert funnel.is_file() == (row["k"] >= 10)  # no bundled analysis lowers small_study_min_k


def test_bundled_claims_one_line_each(bundled):
    res, out = bundled
    claims = pd.read_csv(SNAPSHOT / "review_claims.csv")
    md = (out / "report.md").read_text()
    section = md.split("## Claims of the review")[1].split("\n## ")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| claim") and not ln.startswith("| ---")]
    assert len(lines) == len(claims)
    for cid, line in zip(claims["claim_id"], lines):
        assert line.startswith(f"| {cid}: ")
        assert any(f"| {v} (" in line for v in claims_mod.VERDICTS)  # each verdict with its robustness
    table = _original(pd.read_csv(out / "claims.csv"))
    assert list(table["claim_id"]) == list(claims["claim_id"])


def test_bundled_sensitivity_covers_every_pooled_analysis(bundled):
    res, out = bundled
    pooled = _original(pd.read_csv(out / "pooled.csv"))
    sens = _original(pd.read_csv(out / "sensitivity.csv"))
    multi = set(pooled.loc[pooled["k"] >= 2, "analysis_id"])
    assert set(sens["analysis_id"]) == multi
    for aid in multi:
        s = sens.loc[sens["analysis_id"] == aid].set_index("variant")
        assert set(s.index) == {v[0] for v in SENSITIVITY_VARIANTS}
        p = pooled.set_index("analysis_id").loc[aid]
        assert s.loc["primary", "estimate"] == pytest.approx(p["estimate"], rel=1e-12)
        # HKSJ changes the interval, not the DL estimate
        assert s.loc["revman DL HKSJ", "estimate"] == pytest.approx(s.loc["revman DL", "estimate"], rel=1e-12)
    loo = _original(pd.read_csv(out / "leave_one_out.csv"))
    assert set(loo["analysis_id"]) == multi


# --------------------------------------------------------------------------- command line, bad data, atomic write


def test_cli_bad_data_exits_1_with_messages_and_writes_nothing(tmp_path, capsys):
    from meta.cli import main

    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    o = pd.read_csv(data / "outcomes.csv", dtype=str, keep_default_na=False)
    i = int(np.flatnonzero(o["sd1"] != "")[0])
    o.loc[i, "sd1"] = "-3.1"
    o.to_csv(data / "outcomes.csv", index=False)
    out = tmp_path / "results"
    assert main(["reproduce", "--data", str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"outcomes.csv, row {i + 2}" in err and "sd1" in err and "-3.1" in err
    assert "Traceback" not in err
    assert not out.exists() and os.listdir(tmp_path) == ["data"]


def test_cli_bad_analyses_csv_exits_1(tmp_path, capsys):
    from meta.cli import main

    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    a = pd.read_csv(data / "analyses.csv", dtype=str, keep_default_na=False)
    a.loc[0, "filters"] = "desgin=case-control"
    a.to_csv(data / "analyses.csv", index=False)
    assert main(["reproduce", "--data", str(data), "--out", str(tmp_path / "results")]) == 1
    err = capsys.readouterr().err
    assert "unknown key 'desgin'" in err and a.loc[0, "analysis_id"] in err
    assert not (tmp_path / "results").exists()


def test_cli_progress_lines_and_final_line(synthetic, tmp_path, capsys):
    from meta.cli import main

    ref, res, out = synthetic
    data = out.parent / "data"
    assert main(["reproduce", "--data", str(data), "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    m = ref["variants"]["revman DL"]
    assert err[0] == f"[1/3] cc_add: k=4, SMD {m['estimate']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]"
    assert err[1].startswith("[2/3] pro_add: k=1, single study")
    assert err[2] == "[3/3] cc_flex: k=0, no usable data (0 row(s) without a route)"
    assert err[3].startswith("done: 3 analyses: 1 pooled, 1 single-study, 1 with no usable data") and err[3].endswith(" s")
    for ext in ("png", "svg", "pdf"):  # the command line writes every format
        assert (tmp_path / "r" / "figures" / f"cc_add_original_forest.{ext}").is_file()


def test_failure_mid_run_leaves_previous_results_intact(synthetic, tmp_path, monkeypatch):
    ref, res, out = synthetic
    data = out.parent / "data"
    target = tmp_path / "results"
    reproduce.reproduce(data, target, **FAST)
    (target / "report.md").write_text("old run")  # a file of the previous run, recognisable
    before = sorted(p.relative_to(target) for p in target.rglob("*"))

    def boom(*a, **k):
        raise RuntimeError("simulated crash while writing the report")

    monkeypatch.setattr(report, "render", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        reproduce.reproduce(data, target, **FAST)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert (target / "report.md").read_text() == "old run"
    assert sorted(os.listdir(tmp_path)) == ["results"]  # no temporary folder left
    monkeypatch.undo()
    reproduce.reproduce(data, target, **FAST)  # a good run replaces the folder as a whole
    assert (target / "report.md").read_text() != "old run"
    assert sorted(os.listdir(tmp_path)) == ["results"]


def test_failed_rename_puts_previous_results_back(synthetic, tmp_path, monkeypatch):
    ref, res, out = synthetic
    data = out.parent / "data"
    target = tmp_path / "results"
    reproduce.reproduce(data, target, **FAST)
    (target / "report.md").write_text("old run")
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:  # old -> aside worked; new -> results fails
            raise OSError("simulated rename failure")
        return real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky)
    with pytest.raises(OSError, match="simulated rename"):
        reproduce.reproduce(data, target, **FAST)
    assert (target / "report.md").read_text() == "old run"
    assert sorted(os.listdir(tmp_path)) == ["results"]


def test_outcome_without_any_row_is_noted(synthetic):
    ref, res, out = synthetic
    runs = {r.analysis.analysis_id: r for r in res.runs}
    assert "no row of outcomes.csv has outcome 'peak_hip_flexion'" in runs["cc_flex"].notes
    assert runs["cc_add"].notes == ()
    assert "no row of outcomes.csv has outcome 'peak_hip_flexion'" in (out / "report.md").read_text()
