"""The living update inside ``meta reproduce``: every analysis on both evidence sets, the cumulative
meta-analysis by publication year, and the tables that carry the set.

* :func:`run_sets` -- one run per evidence set (:mod:`meta.review.running.evidence`) with the review's own
  selection, unit-of-analysis and pooling code (``run_analysis(..., rows=, evidence=)``).
* :func:`cumulative_table` -- ``cumulative.csv``: for every analysis with k >= 2 in the updated
  set, :func:`meta.pool.cumulative` of its pooled result ordered by ``studies.csv`` ``year``
  (ties in input order, as metafor ``cumul()``), one row per step.
* :func:`draw_cumulative` -- ``figures/<analysis>_cumulative.{png,svg,pdf}``
  (:func:`meta.plots.cumulative.cumulative_forest`, saved with :func:`meta.plots.save`).
* :func:`with_set` -- a table with the evidence set as its first column.

Computes and draws; writing the folder is :mod:`meta.review.outputs.results_folder`' job, printing :mod:`meta.cli`'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from meta.review.running.evidence import ORIGINAL, SETS, UPDATED, evidence_sets

__all__ = ["run_sets", "cumulative_table", "cumulative_of", "draw_cumulative", "with_set", "CUMULATIVE_COLUMNS"]

CUMULATIVE_COLUMNS = ("analysis_id", "set", "step", "added", "study_id", "year", "review_set", "k", "estimate", "se",
                      "ci_low", "ci_high", "p", "tau2", "i2")


def with_set(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """``frame`` with a first column ``set`` = ``name`` (a copy)."""
    f = frame.copy()
    if "set" in f.columns:
        f = f.drop(columns="set")
    f.insert(0, "set", name)
    return f


def run_sets(table: pd.DataFrame, analysis, run_analysis, *, texts: dict | None = None, **kw) -> dict:
    """``{"original": AnalysisRun, "updated": AnalysisRun}``: ``run_analysis(table, analysis,
    rows=<the set's matched rows>, evidence=<set>, other_scale=<rows on another scale>, **kw)``
    (``texts``: see :func:`meta.review.running.evidence.evidence_sets`)."""
    sets = evidence_sets(table, analysis, texts=texts)
    first = sets[ORIGINAL]
    runs = {}
    for name in SETS:  # ORIGINAL first
        s = sets[name]
        same_rows = (s.matched.index.equals(first.matched.index) and s.other_scale.index.equals(first.other_scale.index)
                     and _index(s.other_task).equals(_index(first.other_task)))
        if name != ORIGINAL and same_rows:  # no newer study matched: the same rows give the same (deterministic) run
            runs[name] = dataclasses.replace(runs[ORIGINAL], evidence=name)
        else:
            runs[name] = run_analysis(table, analysis, rows=s.matched, evidence=name, other_scale=s.other_scale,
                                      other_task=s.other_task, **kw)
    return runs


def same_rows(a, b) -> bool:
    """True when two runs of one analysis pooled the same outcome rows and set the same rows aside (the
    updated set adds nothing to the estimate): the same numbers and figures serve both. Newer rows without
    a usable SMD may still differ; the report lists them."""
    def ids(frame):
        return list(frame["outcomes_row"]) if frame is not None and "outcomes_row" in frame else []

    return ids(a.rows) == ids(b.rows) and ids(a.set_aside) == ids(b.set_aside)


def _index(frame) -> pd.Index:
    return frame.index if frame is not None else pd.Index([])


def _years(rows: pd.DataFrame) -> np.ndarray | None:
    if "year" not in rows:
        return None
    y = pd.to_numeric(rows["year"], errors="coerce").to_numpy(float)
    return None if np.isnan(y).any() else y


def cumulative_of(run) -> pd.DataFrame | None:
    """The cumulative meta-analysis of one run by publication year (None when k < 2 or a year is missing)."""
    from meta.pool import cumulative

    if run.k < 2 or run.result is None or not hasattr(run.result, "tau2"):
        return None
    years = _years(run.rows)
    if years is None:
        return None
    c = cumulative(run.result, order=years)  # its data, labels (forest labels), method and level
    idx = np.argsort(years, kind="stable")  # the order cumulative() added them (stable, as R's order())
    rows = run.rows.iloc[idx]
    c.insert(0, "step", np.arange(1, len(c) + 1))
    c.insert(2, "study_id", rows["study_id"].astype(str).to_numpy())
    c.insert(3, "year", years[idx].astype(int))
    c.insert(4, "review_set", rows["review_set"].astype("string").fillna("").to_numpy() if "review_set" in rows else "")
    return c


def cumulative_table(runs) -> pd.DataFrame:
    """``cumulative.csv``: :func:`cumulative_of` for every run given (the updated set's), long format."""
    frames = []
    for r in runs:
        c = cumulative_of(r)
        if c is None:
            continue
        c = c.assign(analysis_id=r.analysis.analysis_id, set=getattr(r, "evidence", UPDATED))
        frames.append(c[[x for x in CUMULATIVE_COLUMNS if x in c.columns]])
    if not frames:
        return pd.DataFrame(columns=list(CUMULATIVE_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def draw_cumulative(run, cum: pd.DataFrame, fig_dir: Path, *, formats=("png", "svg", "pdf"), dpi: int = 300) -> tuple[str, ...]:
    """``<fig_dir>/<analysis>_cumulative.<fmt>`` for a run with a cumulative table; paths relative to the results folder."""
    from meta.plots import cumulative_forest, draw_and_save

    if cum is None or len(cum) == 0:
        return ()
    a = run.analysis
    written = draw_and_save(cumulative_forest, Path(fig_dir) / f"{a.analysis_id}_cumulative", args=(cum,),
                            kwargs=dict(years=list(cum["year"]), title=f"{a.title}: cumulative by publication year",
                                        favours=(a.favours_left, a.favours_right),
                                        rows_note=f"every step's numbers are in cumulative.csv (rows whose analysis_id "
                                                  f"is {a.analysis_id})"), formats=formats, dpi=dpi)
    return tuple(str(Path(p).relative_to(Path(fig_dir).parent)) for p in written)


def used_in_columns(out: pd.DataFrame, runs, suffix: str) -> pd.DataFrame:
    """Add ``used_in<suffix>`` / ``set_aside_in<suffix>`` (analyses pooling / setting aside each row)."""
    used: dict[int, list[str]] = {}
    aside: dict[int, list[str]] = {}
    for r in runs:
        for rid in r.rows["outcomes_row"]:
            used.setdefault(int(rid), []).append(r.analysis.analysis_id)
        for rid in r.set_aside["outcomes_row"]:
            aside.setdefault(int(rid), []).append(r.analysis.analysis_id)
    out = out.copy()
    out[f"used_in{suffix}"] = [";".join(used.get(int(i), [])) for i in out["outcomes_row"]]
    out[f"set_aside_in{suffix}"] = [";".join(aside.get(int(i), [])) for i in out["outcomes_row"]]
    return out


__all__ += ["used_in_columns", "same_rows", "ORIGINAL", "UPDATED"]
