"""Levels of evidence of the review's analyses: the best-evidence-synthesis rule an analysis names
(``analyses.csv`` column ``evidence_rule``, :data:`meta.evidence_synthesis.RULES`) applied to one run.

:func:`analysis_grade` reads k, the primary analysis' p-value, the heterogeneity Q test's p-value and
each pooled study's quality (``studies.csv`` ``quality_score`` / ``quality_max``; empty = unknown, so
the level is a range) and returns :class:`meta.evidence_synthesis.EvidenceGrade`.
:func:`compare_levels` sets the review's stated level (``review_claims.csv`` ``evidence_level``)
beside it. The review's own rule text is not accessible; the rule used is named in every output.
"""

from __future__ import annotations

import pandas as pd

from meta.evidence_synthesis import LEVELS, RULES, EvidenceGrade, grade, quality_category

__all__ = ["analysis_grade", "study_qualities", "compare_levels", "level_name", "rule_of"]


def rule_of(analysis):
    """The :class:`meta.evidence_synthesis.EvidenceRule` an analysis names (its ``evidence_rule``)."""
    return RULES[getattr(analysis, "evidence_rule", "") or "van_tulder_dorrestijn"]


def study_qualities(rows: pd.DataFrame, rule) -> list[str | None]:
    """One quality category per pooled row (``high``/``medium``/``low``; None = unknown)."""
    if "quality_score" not in rows or "quality_max" not in rows:
        return [None] * len(rows)
    return [quality_category(s, m, rule) for s, m in zip(rows["quality_score"], rows["quality_max"])]


def analysis_grade(run) -> EvidenceGrade:
    """The level the analysis' rule gives its run (k = 0: ``no data``)."""
    rule = rule_of(run.analysis)
    if run.k == 0 or run.result is None:
        return grade(0, None, None, (), rule=rule)
    q_p = getattr(run.result, "q_p", None) if run.k >= 2 else None
    return grade(run.k, run.result.p, q_p, study_qualities(run.rows, rule), rule=rule)


def level_name(value) -> str:
    """A level as the rule spells it (``very_limited`` in review_claims.csv -> ``very limited``)."""
    return "" if value is None or (isinstance(value, float) and value != value) else str(value).replace("_", " ").strip()


_RANK = {lvl: len(LEVELS) - i for i, lvl in enumerate(LEVELS)}  # strong 4 ... very limited 1


def compare_levels(review_level, g: EvidenceGrade) -> str:
    """How the review's stated level relates to the level the rule gives here."""
    rv = level_name(review_level)
    if not rv:
        return "the review states no level"
    if rv not in _RANK:
        return f"the review's level {rv!r} is not one of the rule's levels"
    if g.k == 0:
        return "not gradable here: no usable data"
    lo, hi = _RANK.get(g.low, 0), _RANK.get(g.high, 0)
    r = _RANK[rv]
    if lo <= r <= hi:
        return "within the rule's range here" + (" (depends on the unknown quality)" if lo != hi else "")
    if r > hi:
        return "stronger than the rule gives here"
    return "weaker than the rule gives here"
