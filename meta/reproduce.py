"""Orchestration of ``meta reproduce``: rerun every analysis of Neal et al. (2016) and write the results.

:func:`reproduce` reads the validated data (``meta.data.load``) and the declared
analyses (``meta.analysis``), computes one SMD per outcome row
(``meta.run.effect_table``), runs each analysis (``meta.run.run_analysis``: row
selection, unit of analysis, pooling, small-study tests), the sensitivity sweep
(``meta.sensitivity``, including the pre-post r sweep), the robustness panel of every
analysis (``meta.run``, judged against its first claim's direction), the claims verdicts
(``meta.claims``) and the coverage table
(``meta.coverage``), draws the figures (``meta.figures``) and writes
``effect_sizes.csv``, ``pooled.csv``, ``sensitivity.csv``, ``robustness.csv``,
``prepost_r_sensitivity.csv``, ``leave_one_out.csv``, ``set_aside.csv``, ``claims.csv``,
``coverage.csv`` (``meta.outputs.write_tables``),
``figures/`` and ``report.md`` / ``report.html`` (``meta.report``) into a results folder
swapped into place only when everything succeeded (``meta.outputs.ResultsFolder``).
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

from meta.analysis import ANALYSES_FILE, DEFAULT_REVIEW_MATCH, AnalysesError, check_analyses, load_analyses
from meta.claims import analysis_direction, claims_table
from meta.figures import FUNNEL_MIN_K, draw_figures
from meta.outputs import ResultsFolder, prepare, write_tables
from meta.run import BIAS_MIN_K, EFFECT_OPTIONS, LEVEL, AnalysisRun, effect_table, run_analysis
from meta.sensitivity import PREPOST_R_SWEEP, prepost_r_sensitivity, sensitivity

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
    prepost_r: pd.DataFrame | None = None  # the pre-post r sweep (meta.sensitivity.prepost_r_sensitivity)

    def robustness_frame(self) -> pd.DataFrame:
        """``robustness.csv``: one row per analysis (k >= 1) x method of its robustness panel."""
        from meta.robustness import COLUMNS

        frames = []
        for r in self.runs:
            rob = r.robustness
            if rob is None:
                continue
            f = rob.to_frame()
            f.insert(0, "analysis_id", r.analysis.analysis_id)
            f["direction"] = {1: "+", -1: "-", 0: "0", None: ""}[rob.direction]
            f["direction_source"] = rob.direction_source
            f["holds_under"] = rob.holds_under
            f["fragile"] = rob.fragile
            frames.append(f)
        cols = ["analysis_id", *COLUMNS, "direction", "direction_source", "holds_under", "fragile"]
        return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)

    def to_frame(self) -> pd.DataFrame:
        """The pooled table (``pooled.csv``)."""
        return pd.concat([r.to_frame() for r in self.runs], ignore_index=True)

    def summary(self) -> str:
        n = {s: sum(r.status == s for r in self.runs) for s in ("pooled", "single_study", "no_data")}
        return (
            f"{len(self.runs)} analyses: {n['pooled']} pooled, {n['single_study']} single-study, "
            f"{n['no_data']} with no usable data; {len(self.effects)} outcome rows; {self.elapsed:.1f} s"
        )


def _effects_out(table: pd.DataFrame, runs: list[AnalysisRun]) -> pd.DataFrame:
    used: dict[int, list[str]] = {}
    aside: dict[int, list[str]] = {}
    for r in runs:
        for rid in r.rows["outcomes_row"]:
            used.setdefault(int(rid), []).append(r.analysis.analysis_id)
        for rid in r.set_aside["outcomes_row"]:
            aside.setdefault(int(rid), []).append(r.analysis.analysis_id)
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
    out["used_in"] = [";".join(used.get(int(i), [])) for i in out["outcomes_row"]]
    out["set_aside_in"] = [";".join(aside.get(int(i), [])) for i in out["outcomes_row"]]
    return out


def reproduce(
    data_dir: str | os.PathLike = "data",
    out_dir: str | os.PathLike | None = "results",
    *,
    formats: tuple[str, ...] = ("png", "svg", "pdf"),
    dpi: int = 300,
    html: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ReproduceResult:
    """Run every analysis of ``data_dir/analyses.csv`` and write ``out_dir``.

    ``out_dir`` is checked first (``meta.outputs.prepare``: never the data
    folder, the working directory, home, a root, a file or a folder meta did not
    write; raises ``meta.outputs.OutputRefused``; a killed run's leftovers are
    repaired). The run writes into a temporary folder beside it, marked as ours,
    and swaps it into place only when everything succeeded
    (``meta.outputs.ResultsFolder``), so an interrupted run never leaves a
    half-written results folder and an existing one is replaced only at the very
    end. ``out_dir=None`` computes without writing (no figures).
    ``progress``: called with one line per analysis (and per repaired leftover);
    None (default) is silent.

    Raises ``meta.data.DataError`` or ``meta.analysis.AnalysesError`` on invalid input,
    before anything is written; ``OSError`` if writing fails (the old results stay).
    """
    from meta.analysis import analysis_problems
    from meta.coverage import coverage_table
    from meta.data import DataError, errors, load

    say = progress if callable(progress) else (lambda msg: None)
    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    if out_dir is not None:  # refuse, or repair what a killed run left, before the long part
        prepare(out_dir, data_dir, log=say)
    try:
        dataset = load(data_dir)
    except DataError as e:  # report analyses.csv's problems too, as meta validate does
        more = errors(analysis_problems(data_dir)[0]) if (data_dir / ANALYSES_FILE).exists() else []
        raise DataError(e.problems + more) from None
    analyses = load_analyses(data_dir)
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
    runs = []
    directions = {a.analysis_id: analysis_direction(a, claims) for a in analyses}
    tables = {None: table}  # effect tables by assumed pre-post r (an analysis' prepost_r)
    for i, a in enumerate(analyses, 1):
        r = a.prepost_r if a.comparison == "post_vs_pre" else None
        if r not in tables:
            tables[r] = effect_table(dataset, r=r)
        run = run_analysis(tables[r], a, level=settings["level"], direction=directions[a.analysis_id], prepost_r=r)
        runs.append(run)
        say(f"[{i}/{len(analyses)}] {run.progress_line()}")
    sens = sensitivity(runs, level=settings["level"])
    # the r sweep judges each analysis against its claim, else against the sign of its own primary estimate
    sweep_dirs = {r.analysis.analysis_id: (directions[r.analysis.analysis_id] if directions[r.analysis.analysis_id] is not None
                                           else (r.robustness.direction if r.robustness is not None else None)) for r in runs}
    prepost = prepost_r_sensitivity(dataset, analyses, sweep_dirs, level=settings["level"])
    claims_frame = claims_table(claims, runs)
    coverage = coverage_table(dataset)

    if out_dir is None:
        return ReproduceResult(tuple(runs), _effects_out(table, runs), sens, claims_frame, coverage, settings,
                               time.perf_counter() - t0, prepost)

    from meta import report

    with ResultsFolder(out_dir, data_dir=data_dir, log=say) as folder:
        tmp = folder.tmp
        fig_dir = tmp / "figures"
        fig_dir.mkdir()
        final_runs = []
        for run in runs:
            figs = draw_figures(run, fig_dir, formats=formats, dpi=dpi)  # funnel plot from the analysis' own bias_min_k
            final_runs.append(replace(run, figures=figs))
        res = ReproduceResult(tuple(final_runs), _effects_out(table, final_runs), sens, claims_frame, coverage, settings, 0.0,
                              prepost)
        write_tables(res, tmp)
        md = report.render(res)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        if html:
            (tmp / "report.html").write_text(report.markdown_to_html(md, title="Neal et al. (2016) reproduced"), encoding="utf-8")
        folder.commit()
    return replace(res, elapsed=time.perf_counter() - t0)


# --------------------------------------------------------------------------- re-exports
# Names that tests, notebooks/reproduce.ipynb and README imported from meta.reproduce before the
# review layer was split (meta.analysis, meta.run, meta.sensitivity, meta.claims, meta.figures,
# meta.outputs). Kept for one release; new code imports them from their own module.
from meta.analysis import (  # noqa: E402,F401
    ANALYSES_COLUMNS,
    CONVENTIONS,
    METHODS,
    Analysis,
    Filter,
    parse_filters,
)
from meta.data import COMPARISONS  # noqa: E402,F401
from meta.figures import GROUP_LABELS  # noqa: E402,F401
from meta.run import AVERAGED_TASK, annotate, effect_columns, select_rows, unit_of_analysis, usable  # noqa: E402,F401
from meta.sensitivity import SENSITIVITY_VARIANTS  # noqa: E402,F401
from meta.study_effects import ROUTE_RANK  # noqa: E402,F401
