"""Pooled results that successor reviews published (``data/published_pooled.csv``), matched to ours.

A published row belongs beside one of our analyses or claims when its outcome measures the same
**construct** (``vocabulary.csv`` column ``construct`` of the outcome; e.g. ``peak_hip_adduction``
and ``hip_adduction`` are both ``hip_adduction``). Nothing is recomputed and no sign is changed:
``smd``, ``ci_low`` and ``ci_high`` are the source's as printed, and ``sign_convention`` is the
recorded note on what the source's sign means, to be shown verbatim beside the number (the source's
sign can differ from ours, group 1 minus group 2; Bazett-Jones et al. print "greater" pelvic drop
with a negative SMD). Population, task and design are carried along: a successor may pool walking
and running, or all injuries, and a reader must see that.

With ``comparison=`` the kind of question must match too: ``published_pooled.csv`` has no
comparison column, so a published row whose ``design`` names an intervention or a trial
(:data:`INTERVENTION_WORDS`) answers an intervention question (our ``post_vs_pre`` and
``intervention_vs_control``), any other row a group comparison (``pfp_vs_control``). A pooled
effect of gait retraining on pain is thus never put beside a PFP-vs-control difference in pain.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

__all__ = ["outcome_constructs", "published_for", "question_kind", "PUBLISHED_COLUMNS", "INTERVENTION_WORDS"]

#: words of ``published_pooled.csv`` ``design`` that make a row an intervention result (case-insensitive)
INTERVENTION_WORDS = ("intervention", "trial")
#: kind of question of each of our comparisons
_KIND = {"pfp_vs_control": "group", "post_vs_pre": "intervention", "intervention_vs_control": "intervention"}


def question_kind(design) -> str:
    """``intervention`` when a published row's design names an intervention or trial, else ``group``."""
    d = "" if design is None or (isinstance(design, float) and design != design) or design is pd.NA else str(design).lower()
    return "intervention" if any(w in d for w in INTERVENTION_WORDS) else "group"

#: columns of the matched table (``published_pooled.csv`` columns plus ``construct``)
PUBLISHED_COLUMNS = ("source_id", "source_citation", "outcome", "construct", "population", "task", "design", "k",
                     "n", "smd", "ci_low", "ci_high", "ci_level", "evidence_level", "sign_convention", "url",
                     "locator")


def outcome_constructs(vocabulary: pd.DataFrame | None) -> dict[str, str]:
    """``{outcome: construct}`` from ``vocabulary.csv`` (rows with ``column == "outcome"``).

    An outcome without a construct is its own construct.
    """
    if vocabulary is None or len(vocabulary) == 0 or "column" not in vocabulary:
        return {}
    v = vocabulary.loc[vocabulary["column"].astype("string") == "outcome"]
    out: dict[str, str] = {}
    for value, construct in zip(v["value"].astype("string"), v.get("construct", pd.Series(pd.NA, index=v.index))):
        if pd.isna(value):
            continue
        c = "" if construct is None or pd.isna(construct) else str(construct).strip()
        out[str(value)] = c or str(value)
    return out


def published_for(published: pd.DataFrame | None, vocabulary: pd.DataFrame | None, *,
                  outcomes: Iterable[str] = (), constructs: Iterable[str] = (),
                  comparison: str | None = None) -> pd.DataFrame:
    """The published pooled results on the constructs of ``outcomes`` (and/or the given ``constructs``),
    and, with ``comparison``, of the same kind of question (:func:`question_kind`).

    Rows in file order, with the columns :data:`PUBLISHED_COLUMNS` (missing ones empty); signs as
    printed. An empty frame when nothing matches or there is no ``published_pooled.csv``.
    """
    cols = list(PUBLISHED_COLUMNS)
    if published is None or len(published) == 0:
        return pd.DataFrame(columns=cols)
    of = outcome_constructs(vocabulary)
    wanted = {of.get(str(o), str(o)) for o in outcomes} | {str(c) for c in constructs if c is not None and str(c)}
    if not wanted:
        return pd.DataFrame(columns=cols)
    p = published.copy()
    p["construct"] = [of.get(str(o), str(o)) for o in p["outcome"].astype("string").fillna("")]
    keep = p["construct"].isin(wanted)
    if comparison is not None:
        kind = _KIND.get(str(comparison), "group")
        design = p["design"] if "design" in p else pd.Series("", index=p.index)
        keep &= pd.Series([question_kind(d) == kind for d in design], index=p.index)
    hit = p.loc[keep]
    for c in cols:
        if c not in hit:
            hit = hit.assign(**{c: pd.NA})
    return hit[cols]
