"""Figures of one analysis run on one evidence set: its forest plot (k >= 1), its robustness plot
(k >= 2) and, from k >= its ``bias_min_k`` (10 unless ``analyses.csv`` lowers it; Sterne et al.
2011), its funnel plot. File names say the set: ``<analysis>_<set>_forest.png``.

The plots draw the fit the run holds (``AnalysisRun.result``: for k = 1 the study itself,
``meta.pool.pool``'s k = 1 result; ``trimfill``, ``egger``); nothing is refitted here
(metafor: ``forest(res)``, ``funnel(trimfill(res))``). ``meta.plots`` builds matplotlib
``Figure`` objects without pyplot, so no backend is chosen and no figure is left open.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from meta.plots.caterpillar import MAX_ROWS

from meta.review.inputs.analysis import SMALL_STUDY_MIN_K
from meta.review.running.run import AnalysisRun, effect_columns

__all__ = ["draw_figures", "rows_note", "GROUP_LABELS", "FUNNEL_MIN_K", "FOREST_MAX_ROWS"]

#: column headers of the forest plot's group-1 / group-2 columns, per comparison
GROUP_LABELS = {
    "pfp_vs_control": ("PFP", "Control"),
    "post_vs_pre": ("Post", "Pre"),
    "intervention_vs_control": ("Intervention", "Control"),
}
#: smallest k for a funnel plot unless an analysis lowers it (Sterne et al. 2011, BMJ 343:d4002)
FUNNEL_MIN_K = SMALL_STUDY_MIN_K
#: the most studies a forest plot shows as labelled rows; above it a caterpillar plot (meta.plots.caterpillar)
FOREST_MAX_ROWS = MAX_ROWS


def rows_note(run: AnalysisRun) -> str:
    """Where a caterpillar plot's rows are, as its caption says it: the rows of ``effect_sizes.csv`` whose
    ``used_in`` (original set) or ``used_in_updated`` column names the analysis."""
    col = "used_in" if run.evidence == "original" else f"used_in_{run.evidence}"
    return f"every row's numbers are in effect_sizes.csv (rows whose {col} names {run.analysis.analysis_id})"


def draw_figures(run: AnalysisRun, fig_dir: Path, *, formats=("png", "svg", "pdf"), dpi: int = 300,
                 funnel_min_k: int | None = None) -> tuple[str, ...]:
    """Forest plot for every analysis with k >= 1, robustness plot for every pooled one (k >= 2);
    funnel plot where k >=
    ``funnel_min_k`` (default the analysis' own ``bias_min_k``).

    Returns the written paths relative to the results folder.
    """
    from meta.plots import draw_and_save, forest, funnel, robustness_plot

    written: list[Path] = []
    if run.k == 0:
        return ()
    a = run.analysis
    studies = run.rows.copy()
    ycol, vcol = effect_columns(a.smd_convention)
    studies["yi"], studies["vi"] = studies[ycol], studies[vcol]
    for c in ("mean1", "sd1", "mean2", "sd2"):
        if c in studies and pd.to_numeric(studies[c], errors="coerce").isna().any():
            studies = studies.drop(columns=c)
    where = f"{run.evidence} set"
    title = f"{a.title} ({where})" if run.k >= 2 else f"{a.title} ({where}; single study, not pooled)"
    stem = f"{a.analysis_id}_{run.evidence}"
    groups = GROUP_LABELS.get(a.comparison, ("Group 1", "Group 2"))
    # drawn, or taken from the figure cache when this very call was saved before (meta.plots.draw_and_save)
    # above FOREST_MAX_ROWS studies a caterpillar plot, whose caption names the file that holds every row
    written += draw_and_save(forest, fig_dir / f"{stem}_forest", args=(run.result, studies),
                             kwargs=dict(label="label", favours=(a.favours_left, a.favours_right), title=title,
                                         group_labels=groups, max_rows=FOREST_MAX_ROWS, rows_note=rows_note(run)),
                             formats=formats, dpi=dpi)
    if run.robustness is not None and run.k >= 2:  # a single study is not pooled: its panel stays a table
        rtitle = f"{a.title} ({where}): verdict under each method"
        written += draw_and_save(robustness_plot, fig_dir / f"{stem}_robustness", args=(run.robustness,),
                                 kwargs=dict(title=rtitle, favours=(a.favours_left, a.favours_right)),
                                 formats=formats, dpi=dpi)
    if funnel_min_k is None:
        funnel_min_k = a.bias_min_k
    if run.k >= funnel_min_k:
        # the fit draws itself (metafor funnel(res) / funnel(trimfill(res))): filled studies
        # hollow, centred on the adjusted estimate where trim and fill ran
        written += draw_and_save(funnel, fig_dir / f"{stem}_funnel",
                                 args=(run.trimfill if run.trimfill is not None else run.result,),
                                 kwargs=dict(egger=run.egger if run.egger is not None else False, title=f"{a.title} ({where})"),
                                 formats=formats, dpi=dpi)
    return tuple(str(Path(p).relative_to(fig_dir.parent)) for p in written)
