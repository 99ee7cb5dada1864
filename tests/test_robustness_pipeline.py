"""The robustness panel, honest small-study tests and pre-post correlations wired into
`meta reproduce`.

Each test states the behaviour the pipeline did not have before: it fails on the code
before this branch (no robustness.csv, no holds_under/fragile columns, small-study tests
from k = 3, no prepost_r columns, no r sweep).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _csvrows import read_rows as _rows, write_rows as _write  # tests/ is on sys.path under pytest

from meta.review.inputs import analysis

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "data"
FILE = "analyses.csv"




def set_cells(folder: Path, analysis_id: str, **cells: str) -> int:
    """Set cells of one analysis (adding the optional columns to the header if needed); return its row."""
    rows = _rows(folder / FILE)
    for col in cells:
        if col not in rows[0]:
            rows[0].append(col)
            for r in rows[1:]:
                r.append("")
    for i, r in enumerate(rows):
        if r[0] == analysis_id:
            for col, v in cells.items():
                r[rows[0].index(col)] = v
            _write(folder / FILE, rows)
            return i + 1
    raise KeyError(analysis_id)


def problems_at(folder: Path, row: int, column: str):
    return [p for p in analysis.analysis_problems(folder)[0] if (p.file, p.row, p.column) == (FILE, row, column)]


# --------------------------------------------------------------------------- analyses.csv columns


def test_small_study_min_k_defaults_to_ten_and_may_be_lowered_explicitly(folder):
    plain = {a.analysis_id: a for a in analysis.load_analyses(folder)}
    assert analysis.SMALL_STUDY_MIN_K == 10
    assert all(a.bias_min_k == 10 for a in plain.values())
    set_cells(folder, "cc_hip_adduction", small_study_min_k="5")
    got = {a.analysis_id: a for a in analysis.load_analyses(folder)}
    assert got["cc_hip_adduction"].small_study_min_k == 5 and got["cc_hip_adduction"].bias_min_k == 5


@pytest.mark.parametrize("value", ["2", "0", "4.5", "ten", "-3"])
def test_small_study_min_k_must_be_a_whole_number_of_at_least_three(folder, value):
    row = set_cells(folder, "cc_hip_adduction", small_study_min_k=value)
    (p,) = problems_at(folder, row, "small_study_min_k")
    assert p.is_error and ">= 3" in str(p) and "Sterne" in str(p)


def test_prepost_r_with_its_source_is_read(folder):
    set_cells(folder, "gr_pain", prepost_r="0.5", prepost_r_source="Example source, Table 2")
    a = {a.analysis_id: a for a in analysis.load_analyses(folder)}["gr_pain"]
    assert a.prepost_r == 0.5 and a.prepost_r_source == "Example source, Table 2"


@pytest.mark.parametrize("value", ["1", "-1", "1.2", "abc", "0,5"])
def test_prepost_r_must_lie_strictly_between_minus_one_and_one(folder, value):
    row = set_cells(folder, "gr_pain", prepost_r=value, prepost_r_source="a source")
    (p,) = problems_at(folder, row, "prepost_r")
    assert p.is_error and "strictly between -1 and 1" in str(p)


def test_prepost_r_needs_a_source(folder):
    row = set_cells(folder, "gr_pain", prepost_r="0.5")
    (p,) = problems_at(folder, row, "prepost_r_source")
    assert p.is_error and "where the assumed prepost_r comes from" in str(p)


def test_prepost_r_only_for_post_vs_pre(folder):
    row = set_cells(folder, "cc_hip_adduction", prepost_r="0.5", prepost_r_source="a source")
    (p,) = problems_at(folder, row, "prepost_r")
    assert p.is_error and "only to post_vs_pre" in str(p)


def test_a_source_without_r_is_a_warning(folder):
    row = set_cells(folder, "gr_pain", prepost_r_source="a source")
    (p,) = problems_at(folder, row, "prepost_r_source")
    assert not p.is_error


# --------------------------------------------------------------------------- the pipeline end to end

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from meta.review import reproduce  # noqa: E402
from meta.bayes import bayes_pool  # noqa: E402
from meta.pool import pool  # noqa: E402
from meta.robustness import DEFAULT_PANEL, robustness  # noqa: E402

PANEL_IDS = [p.method_id for p in DEFAULT_PANEL]
#: two analyses added to a copy of the bundled analyses.csv: bazettjones2013's post-run rows (real data;
#: the prepost_r and its source are TEST VALUES, not a published correlation)
EXTRA = [
    {"analysis_id": "bz_knee_flexion", "title": "Exhaustive run: knee flexion (post vs pre)", "outcome": "knee_flexion",
     "comparison": "post_vs_pre", "filters": "study_id=bazettjones2013", "smd_convention": "revman", "method": "DL",
     "favours_left": "Less after", "favours_right": "More after", "claim_ids": "", "notes": "",
     "prepost_r": "0.5", "prepost_r_source": "test value for tests/test_robustness_pipeline.py (not a published r)",
     "task": "exhaustive_run"},
    {"analysis_id": "bz_pelvic_tilt", "title": "Exhaustive run: anterior pelvic tilt (post vs pre)",
     "outcome": "anterior_pelvic_tilt", "comparison": "post_vs_pre", "filters": "study_id=bazettjones2013",
     "smd_convention": "revman", "method": "DL", "favours_left": "Less after", "favours_right": "More after",
     "claim_ids": "", "notes": "", "task": "exhaustive_run"},
]


@pytest.fixture(scope="module")
def piped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("robust") / "data"
    shutil.copytree(BUNDLED, folder)
    an = pd.read_csv(folder / FILE, dtype=str, keep_default_na=False)
    an["small_study_min_k"] = ""
    an.loc[an["analysis_id"] == "cc_hip_internal_rotation_any", "small_study_min_k"] = "3"  # lowered explicitly
    an = pd.concat([an, pd.DataFrame(EXTRA)], ignore_index=True).fillna("")
    an.to_csv(folder / FILE, index=False)
    out = folder.parent / "results"
    res = reproduce.reproduce(folder, out, formats=("png", "svg", "pdf"), dpi=72, html=False)
    return res, out, folder


def _original(out: Path, name: str) -> pd.DataFrame:
    """A results table, original evidence set only (the tables carry a set column: original / updated)."""
    t = pd.read_csv(out / name)
    return t.loc[t["set"] == "original"].drop(columns="set").reset_index(drop=True) if "set" in t else t


def _used(out: Path, aid: str) -> pd.DataFrame:
    eff = pd.read_csv(out / "effect_sizes.csv")
    return eff.loc[eff["used_in"].fillna("").str.split(";").map(lambda ids: aid in ids)]


def test_robustness_csv_one_row_per_analysis_and_method_equal_to_direct_fits(piped):
    res, out, _ = piped
    rob = _original(out, "robustness.csv")
    rob = rob.loc[rob["kind"] != "dependent"]  # the all-rows row beside the panel (tests/test_dependent.py)
    pooled = _original(out, "pooled.csv").set_index("analysis_id")
    with_data = list(pooled.index[pooled["k"] >= 1])
    assert list(dict.fromkeys(rob["analysis_id"])) == with_data
    for aid, g in rob.groupby("analysis_id", sort=False):
        assert list(g["method_id"]) == PANEL_IDS
        used = _used(out, aid)
        yi, vi = used["yi"].to_numpy(), used["vi"].to_numpy()
        assert (g["k"] == len(used)).all()
        t = g.set_index("method_id")
        # the primary row is the pooled.csv result
        for c in ("estimate", "ci_low", "ci_high"):
            assert t.loc["dl_z", c] == pytest.approx(pooled.loc[aid, c], rel=1e-12)
        for pm in DEFAULT_PANEL[1:]:
            if pm.kind == "bayes":
                b = bayes_pool(yi, vi, tau_prior=pm.tau_prior, tau_scale=pm.tau_scale)
                want = (b.mu_median, b.mu_ci_low, b.mu_ci_high)
            else:
                with pytest.warns(UserWarning) if (len(yi) == 1 and pm.test != "z") else _nothing():
                    r = pool(yi, vi, method=pm.method, test=pm.test)
                want = (r.estimate, r.ci_low, r.ci_high)
            got = t.loc[pm.method_id, ["estimate", "ci_low", "ci_high"]].to_numpy(float)
            np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=f"{aid} {pm.method_id}")
        holds = f"{(g['verdict'] == g['verdict'].iloc[0]).sum()} of 5" if len(yi) >= 2 else "single study"
        assert (g["holds_under"] == holds).all()  # one study is not pooled: no method count


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_pooled_and_claims_say_under_how_many_methods_the_verdict_holds(piped):
    res, out, _ = piped
    pooled = _original(out, "pooled.csv").set_index("analysis_id")
    rob = _original(out, "robustness.csv")
    for aid, g in rob.groupby("analysis_id"):
        assert pooled.loc[aid, "holds_under"] == g["holds_under"].iloc[0]
        if pooled.loc[aid, "k"] >= 2:
            assert bool(pooled.loc[aid, "fragile"]) == (g["verdict"].nunique() > 1)
        else:  # a single study is never called robust (nor "not fragile")
            assert pooled.loc[aid, "holds_under"] == "single study" and pd.isna(pooled.loc[aid, "fragile"])
    assert pd.isna(pooled.loc["cc_pelvic_drop", "holds_under"])  # k = 0: nothing to judge
    # cc_hip_internal_rotation_any: the common-effect CI excludes 0, the random-effects ones do not
    assert pooled.loc["cc_hip_internal_rotation_any", "holds_under"] == "4 of 5"
    assert bool(pooled.loc["cc_hip_internal_rotation_any", "fragile"])
    claims = _original(out, "claims.csv").set_index("claim_id")
    c03 = res.claims.loc[res.claims["set"] == "original"].set_index("claim_id").loc["C03"]
    run = {r.analysis.analysis_id: r for r in res.runs}["cc_hip_internal_rotation"]
    direct = robustness(run.yi, run.vi, direction=+1)  # C03 expects greater internal rotation in PFP
    assert claims.loc["C03", "holds_under"] == direct.holds_under == c03["holds_under"]
    assert bool(claims.loc["C03", "fragile"]) == direct.fragile
    assert pd.isna(claims.loc["C04", "holds_under"])  # k = 0


def test_robustness_figures_for_every_pooled_analysis(piped):
    res, out, _ = piped
    pooled = _original(out, "pooled.csv")
    for _, row in pooled.iterrows():
        for ext in ("png", "svg", "pdf"):
            f = out / "figures" / f"{row['analysis_id']}_original_robustness.{ext}"
            assert f.is_file() == (row["k"] >= 2), f  # a single study's panel is a table, not a figure
    md = (out / "report.md").read_text()
    assert ("![Robustness plot, original and updated set (the same rows): cc_hip_internal_rotation]"
            "(figures/cc_hip_internal_rotation_original_robustness.png)") in md


def test_report_names_the_primary_analysis_the_panel_and_each_verdicts_robustness(piped):
    res, out, _ = piped
    md = (out / "report.md").read_text()
    methods = md.split("## Methods")[1].split("## Pooled results")[0]
    assert "The primary analysis is the review's own: DerSimonian-Laird with a Wald z interval" in methods
    for pm in DEFAULT_PANEL[1:]:
        assert pm.label in methods
    claims = md.split("## Claims of the review")[1].split("## Analyses")[0]
    assert "| verdict (robustness) |" in claims
    assert "| direction only (holds under 5 of 5 methods) |" in claims  # C03
    section = md.split("(`cc_hip_internal_rotation_any`)")[1].split("\n### ")[0]
    assert "the verdict holds under **4 of 5** methods -- **fragile**" in section
    assert "| Common effect (fixed effect, inverse variance), z CI |" in section


def test_small_study_tests_only_from_ten_studies_unless_lowered(piped):
    res, out, _ = piped
    pooled = _original(out, "pooled.csv").set_index("analysis_id")
    md = (out / "report.md").read_text()
    # k = 3, default threshold 10: no Egger, no trim-and-fill, no funnel plot (before: run from k = 3)
    assert pooled.loc["cc_hip_internal_rotation", "k"] == 3
    assert np.isnan(pooled.loc["cc_hip_internal_rotation", "egger_p"])
    assert not (out / "figures" / "cc_hip_internal_rotation_original_funnel.png").exists()
    assert "Small-study tests: not run (k = 3 < 10; Sterne et al. 2011)." in md
    # k = 4 with small_study_min_k = 3 in analyses.csv: they run, and the report repeats the warning
    assert np.isfinite(pooled.loc["cc_hip_internal_rotation_any", "egger_p"])
    assert (out / "figures" / "cc_hip_internal_rotation_any_original_funnel.png").is_file()
    methods = md.split("## Methods")[1].split("## Pooled results")[0]
    assert "were run only where k >= 10" in methods and "BMJ 343:d4002" in methods
    assert "lowers that threshold explicitly for `cc_hip_internal_rotation_any` (k >= 3)" in methods
    assert "threshold lowered in analyses.csv: very low power" in md


def test_prepost_r_assumed_where_the_analysis_states_it_and_derived_where_the_row_gives_it(piped):
    res, out, _ = piped
    runs = {r.analysis.analysis_id: r for r in res.runs}
    kf, pt = runs["bz_knee_flexion"], runs["bz_pelvic_tilt"]
    # knee flexion: p reported as "< 0.001" gives no r; the analysis' assumed r = 0.5 is used
    assert kf.k == 1 and kf.rows["flags"].iloc[0] == "r_assumed" and kf.rows["r"].iloc[0] == 0.5
    # anterior pelvic tilt: an exact paired p (0.001) gives the row its own r; no r assumed
    assert pt.k == 1 and pt.rows["flags"].iloc[0] == "r_derived"
    from meta.effects import r_from_paired_p

    r = r_from_paired_p(5.1, 6.7, 13.3 - 7.2, 0.001, 19)[0]  # outcomes.csv: pre 7.2 (5.1), post 13.3 (6.7), n 19
    assert pt.rows["r"].iloc[0] == pytest.approx(r, rel=1e-12)
    eff = pd.read_csv(out / "effect_sizes.csv").set_index("outcomes_row")
    kf_row = eff.loc[int(kf.rows["outcomes_row"].iloc[0])]
    assert kf_row["flags"] == "r_assumed" and np.isfinite(kf_row["yi"]) and kf_row["used_in"] == "bz_knee_flexion"
    methods = (out / "report.md").read_text().split("## Methods")[1].split("## Pooled results")[0]
    assert "`bz_knee_flexion` (r = 0.5: test value for tests/test_robustness_pipeline.py (not a published r))" in methods
    assert "flag `r_derived`" in methods


def test_prepost_r_sweep_csv_and_report(piped):
    res, out, _ = piped
    sweep = pd.read_csv(out / "prepost_r_sensitivity.csv")
    pp = [r.analysis.analysis_id for r in res.runs if r.analysis.comparison == "post_vs_pre"]
    assert list(dict.fromkeys(sweep["analysis_id"])) == pp
    for aid, g in sweep.groupby("analysis_id"):
        assert list(g["r"]) == [0.2, 0.5, 0.8]
    kf = sweep.loc[sweep["analysis_id"] == "bz_knee_flexion"].set_index("r")
    assert (kf["k"] == 1).all() and (kf["n_r_assumed"] == 1).all() and (kf["declared_r"] == 0.5).all()
    # SMCR: the SMD does not depend on r, its variance 2(1 - r)/n + g^2/(2n) does
    assert kf["estimate"].nunique() == 1 and kf.loc[0.2, "ci_high"] > kf.loc[0.8, "ci_high"]
    pt = sweep.loc[sweep["analysis_id"] == "bz_pelvic_tilt"]
    assert (pt["n_r_derived"] == 1).all() and (pt["n_r_assumed"] == 0).all() and pt["ci_low"].nunique() == 1
    md = (out / "report.md").read_text()
    assert "### Pre-post correlation" in md and "| analysis | r = 0.2 | r = 0.5 | r = 0.8 | verdict depends on r |" in md


def test_prepost_r_sweep_shows_a_verdict_that_depends_on_r(tmp_path):
    """Two SYNTHETIC post vs pre rows (copies of the bazettjones2013 row layout with invented means, only in
    memory for this test): d = 0.35 each, n = 19. With r = 0.2 the pooled CI includes 0, with r = 0.8 it
    excludes it, so the sweep flags the verdict as depending on r."""
    from meta.review.inputs import data
    from meta.review.inputs.analysis import Analysis, parse_filters
    from meta.review.running.sensitivity import prepost_r_sensitivity

    ds = data.load(BUNDLED)
    base = ds.outcomes.loc[ds.outcomes["study_id"] == "bazettjones2013"].iloc[[0]]
    rows = []
    for sid, m_pre in (("synthpre2001", 10.0), ("synthpre2002", 20.0)):
        r = base.copy()
        r["study_id"], r["outcome"] = sid, "knee_flexion"
        r["mean2"], r["sd2"], r["mean1"], r["sd1"] = m_pre, 5.0, m_pre + 0.35 * 5.0, 5.0
        r["p_value"], r["p_operator"] = np.nan, pd.NA
        rows.append(r)
    st = ds.studies.loc[ds.studies["study_id"] == "bazettjones2013"].iloc[[0, 0]].copy()
    st["study_id"] = st["cohort_id"] = ["synthpre2001", "synthpre2002"]
    outcomes = pd.concat([ds.outcomes] + rows, ignore_index=True)
    outcomes.index = pd.RangeIndex(2, 2 + len(outcomes), name=ds.outcomes.index.name)
    synth = dataclasses.replace(ds, outcomes=outcomes, studies=pd.concat([ds.studies, st], ignore_index=True))
    a = Analysis("synth", "synthetic", ("knee_flexion",), "post_vs_pre", parse_filters("study_id=synthpre2001|synthpre2002"),
                 tasks=("exhaustive_run",))
    sweep = prepost_r_sensitivity(synth, [a], {"synth": +1}).set_index("r")
    assert (sweep["k"] == 2).all() and (sweep["n_r_assumed"] == 2).all()
    assert sweep.loc[0.2, "verdict"] == "direction only" and sweep.loc[0.8, "verdict"] == "agrees"
    assert sweep["depends_on_r"].all()
