"""The two evidence sets every analysis is run on: the review's studies, and the review brought up to date.

``studies.csv`` column ``review_set`` says which set a study belongs to (empty = ``original``):

* ``original`` -- the reconstruction of the review's 28 (published up to the April 2015 search end).
  The **original set** of an analysis is today's selection: the rows of its outcome(s) and
  comparison that pass every filter of ``analyses.csv`` *and* the default
  ``review_match=likely|possible`` (added unless the analysis names ``review_match``;
  :attr:`meta.review.inputs.analysis.Analysis.effective_filters`), restricted to ``review_set=original``.
* ``update`` -- studies published after the review's search. Their ``review_match`` is
  ``unlikely`` by construction (outside the review's search), so the default review-match filter
  does **not** apply to them; a filter written in ``analyses.csv`` (``review_match`` included)
  still does. The **updated set** is the original set plus the rows of ``update`` studies that
  pass the analysis' declared filters.

Scales are never mixed (``es_scale`` of :mod:`meta.review.inputs.study_effects`): an analysis is pooled on
one scale in both sets, the one it declares (``analyses.csv`` column ``es_scale``) or else
:data:`SCALES` by comparison. Rows whose SMD is on another scale are
kept apart (``EvidenceSet.other_scale``) and reported, never pooled. Choice for ``post_vs_pre``:
``raw_sd``, the scale of the review's own pre/post SMDs (RevMan: pre and post means with their
SDs, i.e. standardised by a raw-score SD) and of our ``paired`` route (metafor SMCR, pre-test
SD). A d_z (``change_sd``: standardised by the SD of change, ``change_ci``/``change_se``) is
larger than the raw-score SMD by 1/sqrt(2(1 - r)) for a pre-post correlation r (Morris &
DeShon 2002, eq. 12; Borenstein et al. 2009, ch. 4), which the studies do not report, so it
cannot be converted and is not pooled with raw-score SMDs.

Tasks are never mixed silently: an analysis pools the tasks it declares (``analyses.csv`` column
``task``, default running, :attr:`meta.review.inputs.analysis.Analysis.tasks`); a matching row of
another task (a static or walking measure of the same outcome) is kept apart
(``EvidenceSet.other_task``) and listed in the report.

This module selects rows; it does not pool (see :mod:`meta.pool`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from meta.review.inputs.analysis import Analysis, Filter
from meta.review.inputs.data import DEFAULT_REVIEW_SET

__all__ = ["SETS", "SCALES", "ORIGINAL", "UPDATED", "EvidenceSet", "analysis_scale", "evidence_sets", "set_label",
           "task_mask"]

ORIGINAL = "original"
UPDATED = "updated"
#: the evidence sets, in the order every output lists them
SETS = (ORIGINAL, UPDATED)
#: ``review_set`` value of the studies the updated set adds
UPDATE_REVIEW_SET = "update"
#: the ``es_scale`` an analysis of each comparison is pooled on (see the module docstring for post_vs_pre)
SCALES = {"pfp_vs_control": "raw_sd", "post_vs_pre": "raw_sd", "intervention_vs_control": "raw_sd"}

_SET_LABELS = {ORIGINAL: "Original review (studies to April 2015)",
               UPDATED: "Updated (original plus studies published since)"}


def set_label(name: str) -> str:
    """A reader's name for an evidence set."""
    return _SET_LABELS.get(name, name)


@dataclass(frozen=True)
class EvidenceSet:
    """The rows of one analysis in one evidence set (usable or not; pooling decides later)."""

    name: str  #: ``original`` or ``updated``
    scale: str  #: the es_scale pooled
    matched: pd.DataFrame  #: rows of the set matching the analysis, on ``scale`` or without an SMD
    other_scale: pd.DataFrame  #: matching rows whose SMD is on another es_scale: reported, never pooled
    added: pd.DataFrame  #: the rows of ``update`` studies among ``matched`` (empty for ``original``)
    other_task: pd.DataFrame | None = None  #: matching rows of a task the analysis does not declare: listed, never pooled

    @property
    def added_studies(self) -> tuple[str, ...]:
        """study_id of the update studies with a matching row, in table order."""
        return tuple(dict.fromkeys(self.added["study_id"].astype(str))) if len(self.added) else ()


def analysis_scale(analysis: Analysis) -> str:
    """The es_scale an analysis is pooled on: its declared ``es_scale`` (``analyses.csv``), else
    :data:`SCALES` by comparison (``raw_sd`` for a comparison not listed)."""
    return getattr(analysis, "es_scale", "") or SCALES.get(analysis.comparison, "raw_sd")


def _factor(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, texts)`` with ``texts[codes]`` the cells as text, NA as "" and stripped
    (``series.astype("string").fillna("").str.strip()``), each distinct value converted once."""
    codes, uniques = pd.factorize(series)  # NA -> -1, which picks the "" appended last
    texts = pd.Series(uniques).astype("string").fillna("").str.strip().to_numpy(dtype=object)
    return codes, np.append(texts, "")


def _text(series: pd.Series) -> pd.Series:
    codes, texts = _factor(series)
    return pd.Series(pd.array(texts[codes], dtype="string"), index=series.index)


def _column(table: pd.DataFrame, col: str, texts: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_factor` of ``table[col]``, kept in ``texts`` (see :func:`evidence_sets`) when given."""
    if texts is None:
        return _factor(table[col])
    if col not in texts:
        texts[col] = _factor(table[col])
    return texts[col]


def _isin(series: pd.Series, values, factored: tuple | None = None) -> pd.Series:
    """``_text(series).isin(values)``, judged once per distinct value (``factored``: its :func:`_factor`)."""
    codes, texts = _factor(series) if factored is None else factored
    wanted = set(values)
    return pd.Series(np.array([t in wanted for t in texts], dtype=bool)[codes], index=series.index)


def _hits(table: pd.DataFrame, analysis: Analysis, f: Filter, texts: dict | None = None) -> pd.Series:
    """Rows that pass one filter of ``analysis``."""
    if f.key not in table.columns:
        raise KeyError(f"filter key {f.key!r} of analysis {analysis.analysis_id} is not a column")
    hit = _isin(table[f.key], f.values, _column(table, f.key, texts))
    return ~hit if f.negate else hit


def _mask(table: pd.DataFrame, analysis: Analysis, filters: tuple[Filter, ...], hits=None) -> pd.Series:
    """Rows with the analysis' outcome and comparison that pass every filter of ``filters``
    (``hits``: filter -> rows passing it, computed once for both sets)."""
    keep = table["outcome"].isin(analysis.outcomes) & (table["comparison"] == analysis.comparison)
    for f in filters:
        keep &= hits[f] if hits is not None else _hits(table, analysis, f)
    return keep.fillna(False).astype(bool)


def _review_set(table: pd.DataFrame, texts: dict | None = None) -> pd.Series:
    if "review_set" not in table.columns:
        return pd.Series(DEFAULT_REVIEW_SET, index=table.index, dtype="string")
    codes, texts = _column(table, "review_set", texts)
    texts = np.array([t if t != "" else DEFAULT_REVIEW_SET for t in texts], dtype=object)
    return pd.Series(pd.array(texts[codes], dtype="string"), index=table.index)


def evidence_sets(table: pd.DataFrame, analysis: Analysis, *, texts: dict | None = None) -> dict[str, EvidenceSet]:
    """``{"original": EvidenceSet, "updated": EvidenceSet}`` for one analysis.

    ``table`` is the annotated effect-size table (one row per outcome row with the study's
    columns joined on: ``meta.review.reproduce.effect_table``). Rows keep the table's order, so the
    unit-of-analysis rule and ties in a cumulative analysis see them as in ``outcomes.csv``.
    ``texts``: an empty dict the caller keeps with ``table`` while the table does not change, to
    select the rows of several analyses from it: each filter column's text is then worked out
    once, on first use, instead of once per analysis.
    """
    rs = _review_set(table, texts)
    hits = {f: _hits(table, analysis, f, texts) for f in analysis.effective_filters}
    original = _mask(table, analysis, analysis.effective_filters, hits) & (rs == DEFAULT_REVIEW_SET)
    update = _mask(table, analysis, analysis.filters, hits) & (rs == UPDATE_REVIEW_SET)
    scale = analysis_scale(analysis)
    on_scale = (_isin(table["es_scale"], ("", scale), _column(table, "es_scale", texts)) if "es_scale" in table.columns
                else pd.Series(True, index=table.index))
    in_task = task_mask(table, analysis, texts=texts)
    first = EvidenceSet(name=ORIGINAL, scale=scale, matched=table.loc[original & on_scale & in_task],
                        other_scale=table.loc[original & ~on_scale & in_task], added=table.iloc[0:0],
                        other_task=table.loc[original & ~in_task])
    if not update.any():  # no newer study matches: the updated set holds the same rows
        return {ORIGINAL: first, UPDATED: replace(first, name=UPDATED)}
    rows = original | update
    return {ORIGINAL: first, UPDATED: EvidenceSet(
        name=UPDATED, scale=scale, matched=table.loc[rows & on_scale & in_task],
        other_scale=table.loc[rows & ~on_scale & in_task], added=table.loc[rows & on_scale & in_task & update],
        other_task=table.loc[rows & ~in_task])}


def task_mask(table: pd.DataFrame, analysis: Analysis, *, texts: dict | None = None) -> pd.Series:
    """True where a row's ``task`` is one the analysis declares (:attr:`Analysis.tasks`)
    (``texts``: as for :func:`evidence_sets`)."""
    tasks = getattr(analysis, "tasks", ()) or ()
    if "task" not in table.columns or not tasks:
        return pd.Series(True, index=table.index)
    return _isin(table["task"], tasks, _column(table, "task", texts))
