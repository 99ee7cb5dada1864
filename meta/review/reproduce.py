"""Orchestration of ``meta reproduce``: rerun every analysis of Neal et al. (2016) and write the results.

:func:`reproduce` reads the validated data (``meta.review.inputs.data.load``) and the declared
analyses (``meta.review.inputs.analysis``), computes one SMD per outcome row
(``meta.review.running.run.effect_table``), runs each analysis (``meta.review.running.run.run_analysis``: row
selection, unit of analysis, pooling, small-study tests), the sensitivity sweep
(``meta.review.running.sensitivity``, including the pre-post r sweep), the robustness panel of every
analysis (``meta.review.running.run``, judged against its first claim's direction), the claims verdicts
(``meta.review.running.claims``) and the coverage table
(``meta.review.outputs.coverage``), draws the figures (``meta.review.outputs.figures``) and writes
``effect_sizes.csv``, ``pooled.csv``, ``sensitivity.csv``, ``robustness.csv``,
``prepost_r_sensitivity.csv``, ``leave_one_out.csv``, ``set_aside.csv``, ``claims.csv``,
``coverage.csv``, ``cumulative.csv`` (``meta.review.outputs.results_folder.write_tables``),
``inputs/`` (a byte copy of the data files read: ``meta.review.outputs.results_folder.write_inputs``),
``figures/`` and ``report.md`` / ``report.html`` (``meta.review.outputs.report``) into a results folder
swapped into place only when everything succeeded (``meta.review.outputs.results_folder.ResultsFolder``).

Every analysis runs on both evidence sets (``meta.review.running.evidence``): ``runs`` hold the original set,
``updated`` the same analyses on the updated set (``meta.review.running.living.run_sets``); the tables carry
a ``set`` column, ``cumulative.csv`` and ``figures/<analysis>_cumulative.*`` show the updated
set's cumulative meta-analysis by publication year (``meta.review.running.living``).
Nothing here prints: progress goes to the ``progress`` callback (``meta.cli`` passes one).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from meta.review.inputs.analysis import ANALYSES_FILE, DEFAULT_REVIEW_MATCH, AnalysesError, check_analyses, load_analyses
from meta.review.running.claims import analysis_direction, claims_table
from meta.review.outputs.figures import FUNNEL_MIN_K, draw_figures
from meta.review.outputs.results_folder import ResultsFolder, prepare, write_tables
from meta.review.running.run import BIAS_MIN_K, EFFECT_OPTIONS, LEVEL, AnalysisRun, effect_table, run_analysis
from meta.review.running.sensitivity import PREPOST_R_SWEEP, prepost_r_sensitivity, sensitivity
from meta.review.running.evidence import ORIGINAL, UPDATED
from meta.review.running.living import cumulative_table, draw_cumulative, run_sets, same_rows, used_in_columns, with_set
from meta.review.outputs.results_folder import read_inputs, write_inputs

__all__ = ["ReproduceResult", "reproduce"]

#: studies.csv columns left out of effect_sizes.csv (bibliography and free text; see studies.csv)
STUDY_TEXT_COLUMNS = ("authors", "year", "title", "journal", "citation", "doi", "pmid", "n_pfp", "n_control", "review_match_reason", "notes")


@dataclass(frozen=True)
class ReproduceResult:
    """Everything ``reproduce`` wrote, in memory."""

    runs: tuple[AnalysisRun, ...]
    effects: pd.DataFrame
    sensitivity: pd.DataFrame
    claims: pd.DataFrame
    coverage: pd.DataFrame | None
    settings: dict = field(default_factory=dict)
    elapsed: float = 0.0
    updated: tuple[AnalysisRun, ...] = ()  # the same analyses on the updated evidence set (meta.review.running.evidence)
    cumulative: pd.DataFrame | None = None  # cumulative.csv (meta.review.running.living.cumulative_table)
    published: pd.DataFrame | None = None  # published_pooled.csv as loaded
    vocabulary: pd.DataFrame | None = None  # vocabulary.csv as loaded (outcome constructs)
    claims_source: pd.DataFrame | None = None  # review_claims.csv as loaded
    prepost_r: pd.DataFrame | None = None  # the pre-post r sweep (meta.review.running.sensitivity.prepost_r_sensitivity)
    studies: pd.DataFrame | None = None  # studies.csv as loaded (study counts)

    def robustness_frame(self) -> pd.DataFrame:
        """``robustness.csv``: one row per evidence set x analysis (k >= 1) x method of its robustness panel."""
        from meta.robustness import COLUMNS

        frames = []
        upd = {r.analysis.analysis_id: r for r in self.updated}
        runs = [x for r in self.runs for x in (r, upd.get(r.analysis.analysis_id)) if x is not None]
        for r in runs:
            rob = r.robustness
            if rob is None:
                continue
            f = rob.to_frame()
            f.insert(0, "analysis_id", r.analysis.analysis_id)
            f.insert(0, "set", r.evidence)
            f["direction"] = {1: "+", -1: "-", 0: "0", None: ""}[rob.direction]
            f["direction_source"] = rob.direction_source
            # a single study is not pooled: its panel is shown, but no method count and never "not fragile"
            f["holds_under"] = rob.holds_under if r.k >= 2 else "single study"
            f["fragile"] = rob.fragile if r.k >= 2 else ""
            frames.append(f)
            st = r.all_rows.stated if r.all_rows is not None else None
            if st is not None:  # every row of every cohort (CHE + CR2): beside the panel, not counted in it
                from meta.verdicts import verdict

                frames.append(pd.DataFrame([{
                    "set": r.evidence, "analysis_id": r.analysis.analysis_id, "method_id": f"all_rows_che_r{st['r']:g}",
                    "label": f"All rows of every cohort: CHE working model (r = {st['r']:g}), CR2 with Satterthwaite t",
                    "kind": "dependent", "k": st["k_rows"], "estimate": st["estimate"], "ci_low": st["ci_low"],
                    "ci_high": st["ci_high"], "p": st["p"], "tau2": st["sigma2_cohort"] + st["sigma2_within"],
                    "verdict": verdict(st["k_cohorts"], st["estimate"], st["ci_low"], st["ci_high"], rob.direction),
                    "direction": f["direction"].iloc[0], "direction_source": rob.direction_source,
                    "holds_under": f["holds_under"].iloc[0], "fragile": f["fragile"].iloc[0]}]))
        cols = ["set", "analysis_id", *COLUMNS, "direction", "direction_source", "holds_under", "fragile"]
        return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)

    def to_frame(self) -> pd.DataFrame:
        """The pooled table (``pooled.csv``): one row per analysis and evidence set (original, then updated)."""
        upd = {r.analysis.analysis_id: r for r in self.updated}
        runs = [x for r in self.runs for x in (r, upd.get(r.analysis.analysis_id)) if x is not None]
        return pd.concat([r.to_frame() for r in runs], ignore_index=True)

    def summary(self) -> str:
        def counts(runs) -> str:
            n = {s: sum(r.status == s for r in runs) for s in ("pooled", "single_study", "no_data")}
            return f"{n['pooled']} pooled, {n['single_study']} single-study, {n['no_data']} with no usable data"

        upd = f" (updated set: {counts(self.updated)})" if self.updated else ""
        return (
            f"{len(self.runs)} analyses: {counts(self.runs)}{upd}; {len(self.effects)} outcome rows; "
            f"{self.elapsed:.1f} s"
        )


def _effects_out(table: pd.DataFrame, runs: list[AnalysisRun], updated=()) -> pd.DataFrame:
    """``effect_sizes.csv``: the effect table without the bibliography, with the analyses that pool
    or set aside each row in each evidence set (``used_in``, ``used_in_updated``, ...)."""
    keep = [c for c in table.columns if c not in STUDY_TEXT_COLUMNS]
    out = table[keep].copy()
    # a row pooled with an analysis' assumed pre-post r (analyses.csv prepost_r) has no SMD in the
    # base table (no r assumed there): effect_sizes.csv shows the SMD that analysis used (flag r_assumed)
    pos = {int(i): j for j, i in enumerate(out["outcomes_row"])}
    cols = [c for c in ("yi", "vi", "yi_ls", "vi_ls", "route", "es_scale", "flags", "reason", "r") if c in out]
    for r in runs:
        if r.prepost_r is None or not len(r.rows):
            continue
        for _, row in r.rows.iterrows():
            j = pos.get(int(row["outcomes_row"]))
            if j is not None and not np.isfinite(pd.to_numeric(out["yi"].iloc[j], errors="coerce")):
                for c in cols:
                    out.iloc[j, out.columns.get_loc(c)] = row[c]
    return used_in_columns(used_in_columns(out, runs, ""), updated, "_updated")


def _claims_both(claims, runs, updated) -> pd.DataFrame:
    """``claims.csv``: the verdicts of :func:`meta.review.running.claims.claims_table` on each set, ``set`` first,
    claims in file order with the original set's row before the updated one's."""
    frame = pd.concat([with_set(claims_table(claims, runs), ORIGINAL), with_set(claims_table(claims, updated), UPDATED)],
                      ignore_index=True)
    order = {cid: i for i, cid in enumerate(dict.fromkeys(frame["claim_id"]))}
    return frame.sort_values("claim_id", key=lambda c: c.map(order), kind="mergesort").reset_index(drop=True)


def reproduce(
    data_dir: str | os.PathLike = "data",
    out_dir: str | os.PathLike | None = "results",
    *,
    formats: tuple[str, ...] = ("png", "svg", "pdf"),
    dpi: int = 300,
    html: bool = True,
    progress: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
    collect: Callable[[Path], None] | None = None,
) -> ReproduceResult:
    """Run every analysis of ``data_dir/analyses.csv`` and write ``out_dir``.

    ``out_dir`` is checked first (``meta.review.outputs.results_folder.prepare``: never the data
    folder, the working directory, home, a root, a file or a folder meta did not
    write; raises ``meta.review.outputs.results_folder.OutputRefused``; a killed run's leftovers are
    repaired). The run writes into a temporary folder beside it, marked as ours,
    and swaps it into place only when everything succeeded
    (``meta.review.outputs.results_folder.ResultsFolder``), so an interrupted run never leaves a
    half-written results folder and an existing one is replaced only at the very
    end. ``out_dir=None`` computes without writing (no figures).
    ``progress``: called with one line per analysis (and per repaired leftover);
    None (default) is silent. ``log``: when given, the lines about the results folder
    (repaired leftovers, old results left behind) go to it instead of ``progress``.
    ``collect``: called with the finished results folder (its temporary path) just before
    it is swapped into place (``meta.review.run_cache`` keeps a copy from there).

    Raises ``meta.review.inputs.data.DataError`` or ``meta.review.inputs.analysis.AnalysesError`` on invalid input,
    before anything is written; ``OSError`` if writing fails (the old results stay).
    """
    from meta.review.inputs.analysis import analysis_problems
    from meta.review.outputs.coverage import coverage_table
    from meta.review.inputs.data import DataError, check_folder, errors, load

    say = progress if callable(progress) else (lambda msg: None)
    folder_say = log if callable(log) else say
    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    if out_dir is not None:  # refuse, or repair what a killed run left, before the long part
        prepare(out_dir, data_dir, log=folder_say)
    checked = check_folder(data_dir)  # the data folder is read and checked once, here
    try:
        dataset = load(data_dir, checked=checked)
    except DataError as e:  # report analyses.csv's problems too, as meta validate does
        more = errors(analysis_problems(data_dir, checked=checked)[0]) if (data_dir / ANALYSES_FILE).exists() else []
        raise DataError(e.problems + more) from None
    analyses = load_analyses(data_dir, checked=checked)
    table = effect_table(dataset)
    claims = getattr(dataset, "claims", None)
    problems = check_analyses(analyses, table, dataset.studies, claims)
    if problems:
        raise AnalysesError(problems)

    settings = {
        "data_dir": str(data_dir),
        "formats": tuple(formats),
        "dpi": dpi,
        "level": LEVEL,
        **EFFECT_OPTIONS,
        "default_review_match": DEFAULT_REVIEW_MATCH,
        "funnel_min_k": FUNNEL_MIN_K,
        "bias_min_k": BIAS_MIN_K,
        "prepost_r_sweep": PREPOST_R_SWEEP,
    }
    inputs = read_inputs(data_dir) if out_dir is not None else {}  # the bytes this run reads, for inputs/
    runs, updated = [], []
    directions = {a.analysis_id: analysis_direction(a, claims) for a in analyses}
    tables = {None: table}  # effect tables by assumed pre-post r (an analysis' prepost_r)
    texts = {None: {}}  # per effect table, its filter columns' text, worked out once (evidence_sets)
    for i, a in enumerate(analyses, 1):
        r = a.prepost_r if a.comparison == "post_vs_pre" else None
        if r not in tables:
            tables[r] = effect_table(dataset, r=r)
            texts[r] = {}
        # small-study tests from the analysis' own bias_min_k (10 unless analyses.csv lowers it)
        both = run_sets(tables[r], a, run_analysis, texts=texts[r], level=settings["level"],
                        direction=directions[a.analysis_id], prepost_r=r)
        o, u = both[ORIGINAL], both[UPDATED]
        runs.append(o)
        updated.append(u)
        line = o.progress_line()
        if list(u.rows["outcomes_row"]) != list(o.rows["outcomes_row"]):  # newer studies changed this analysis
            line += f"; updated set: {u.progress_line().split(': ', 1)[1]}"
        say(f"[{i}/{len(analyses)}] {line}")
    sens = pd.concat([with_set(sensitivity(runs, level=settings["level"]), ORIGINAL),
                      with_set(sensitivity(updated, level=settings["level"]), UPDATED)], ignore_index=True)
    # the r sweep (original set) judges each analysis against its claim, else against its own primary estimate's sign
    sweep_dirs = {r.analysis.analysis_id: (directions[r.analysis.analysis_id] if directions[r.analysis.analysis_id] is not None
                                           else (r.robustness.direction if r.robustness is not None else None)) for r in runs}
    prepost = prepost_r_sensitivity(dataset, analyses, sweep_dirs, level=settings["level"])
    claims_frame = _claims_both(claims, runs, updated)
    cum = cumulative_table(updated)
    coverage = coverage_table(dataset, effects=table)  # the effect table of the runs: coverage and gaps agree
    living = {"updated": tuple(updated), "cumulative": cum, "published": getattr(dataset, "published_pooled", None),
              "vocabulary": getattr(dataset, "vocabulary", None), "claims_source": claims, "studies": dataset.studies}

    if out_dir is None:
        return ReproduceResult(tuple(runs), _effects_out(table, runs, updated), sens, claims_frame, coverage, settings,
                               time.perf_counter() - t0, **living, prepost_r=prepost)

    from meta.review.outputs import report

    with ResultsFolder(out_dir, data_dir=data_dir, log=folder_say) as folder:
        tmp = folder.tmp
        fig_dir = tmp / "figures"
        fig_dir.mkdir()
        final_runs = []
        for run in runs:
            figs = draw_figures(run, fig_dir, formats=formats, dpi=dpi)  # funnel plot from the analysis' own bias_min_k
            final_runs.append(replace(run, figures=figs))
        final_updated = []
        for o, run in zip(final_runs, updated):
            c = cum.loc[cum["analysis_id"] == run.analysis.analysis_id]
            # the updated set's own forest and robustness plots where its rows differ from the original
            # set's; where they are the same rows, the original set's figures are its figures
            own = o.figures if same_rows(o, run) else draw_figures(run, fig_dir, formats=formats, dpi=dpi)
            final_updated.append(replace(run, figures=own + draw_cumulative(run, c, fig_dir, formats=formats, dpi=dpi)))
        living["updated"] = tuple(final_updated)
        res = ReproduceResult(tuple(final_runs), _effects_out(table, final_runs, final_updated), sens, claims_frame,
                              coverage, settings, 0.0, **living, prepost_r=prepost)
        write_tables(res, tmp)
        write_inputs(inputs, tmp)
        md = report.render(res)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        if html:
            (tmp / "report.html").write_text(report.markdown_to_html(md, title=report.TITLE), encoding="utf-8")
        if collect is not None:
            collect(tmp)
        folder.commit()
    return replace(res, elapsed=time.perf_counter() - t0)
