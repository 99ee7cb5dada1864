"""Levels of evidence from a best-evidence synthesis rule: a named rule object with its criteria
and quality cut-offs as data, and :func:`grade`, which applies it to one body of evidence.

Systematic reviews in sports physiotherapy state each conclusion as a *level of evidence*
(strong / moderate / limited / very limited / conflicting) from the number of studies, their
methodological quality and the consistency and significance of their results: the
"best-evidence synthesis" of van Tulder et al. (2003, Spine 28:1290-1299), adapted to pooled
results by Dorrestijn et al. (2009). A rule here is one :class:`EvidenceRule`: an ordered tuple of
:class:`Criterion` rows (the first row a body of evidence satisfies gives its level) plus the
quality cut-offs that turn a study's score into high / medium / low. :func:`grade` returns an
:class:`EvidenceGrade`; when some studies' quality is unknown it returns the range of levels the
rule could give (every unknown study low, and every unknown study high: the levels are monotone
in quality, so these are the two ends).

Nothing here knows a data folder; a review passes k, the pooled test, the heterogeneity test and
one quality score (or None) per study.

References: van Tulder M, Furlan A, Bombardier C, Bouter L (2003) Updated method guidelines for
systematic reviews in the Cochrane Collaboration Back Review Group. Spine 28(12):1290-1299.
Dorrestijn O, Stevens M, Winters JC, van der Meer K, Diercks RL (2009) Conservative or surgical
treatment for subacromial impingement syndrome? J Shoulder Elbow Surg 18(4):652-660.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Criterion", "EvidenceRule", "EvidenceGrade", "grade", "quality_category", "RULES", "VAN_TULDER_DORRESTIJN",
           "LEVELS", "NO_LEVEL"]

#: levels from strongest to weakest (a rule uses a subset); "conflicting" is outside the order
LEVELS = ("strong", "moderate", "limited", "very limited")
#: what :func:`grade` says when no criterion of the rule is met (e.g. a non-significant result)
NO_LEVEL = "no level (criteria not met)"
QUALITIES = ("high", "medium", "low")


@dataclass(frozen=True)
class Criterion:
    """One row of a rule's table: the level given when every condition holds.

    ``studies``: ``"one"`` (k = 1) or ``"multiple"`` (k >= 2); ``significant``: the pooled (or
    single-study) test at the rule's alpha; ``consistent``: True (heterogeneity Q test p >= alpha),
    False (p < alpha) or None (either; a single study); ``min_high``: at least this many
    high-quality studies; ``min_medium``: at least this many studies of medium quality or better.
    """

    level: str
    studies: str
    significant: bool
    consistent: bool | None = None
    min_high: int = 0
    min_medium: int = 0

    def met(self, k: int, significant: bool, consistent: bool | None, n_high: int, n_medium_or_better: int) -> bool:
        if (self.studies == "one") != (k == 1) or k < 1:
            return False
        if significant != self.significant:
            return False
        if self.consistent is not None and consistent is not None and consistent != self.consistent:
            return False
        if self.consistent is not None and consistent is None:
            return False
        return n_high >= self.min_high and n_medium_or_better >= self.min_medium


@dataclass(frozen=True)
class EvidenceRule:
    """A best-evidence-synthesis rule as data (see the module docstring).

    ``criteria``: tried in order, the first met gives the level; ``quality_cutoffs``: a study is
    ``high`` when score / maximum >= ``quality_cutoffs["high"]``, ``medium`` when >=
    ``quality_cutoffs["medium"]``, else ``low`` -- a *setting*, stated beside every grade;
    ``alpha``: the significance level of the pooled test and of the heterogeneity (Q) test;
    ``source``: where the rule is printed; ``text``: the rule in words (a paraphrase of the source
    table, with its provenance); ``cutoff_source``: where the cut-offs come from.
    """

    name: str
    label: str
    criteria: tuple[Criterion, ...]
    quality_cutoffs: dict = field(default_factory=lambda: {"high": 0.7, "medium": 0.4})
    alpha: float = 0.05
    source: str = ""
    text: str = ""
    cutoff_source: str = ""

    def with_cutoffs(self, high: float, medium: float) -> "EvidenceRule":
        """The same rule with other quality cut-offs (fractions of the scale's maximum)."""
        if not (0 < medium <= high <= 1):
            raise ValueError(f"with_cutoffs: need 0 < medium <= high <= 1, got high={high!r}, medium={medium!r}")
        from dataclasses import replace

        return replace(self, quality_cutoffs={"high": float(high), "medium": float(medium)},
                       cutoff_source="set by the caller")

    def to_frame(self) -> pd.DataFrame:
        """The criteria table, one row per criterion."""
        return pd.DataFrame([c.__dict__ for c in self.criteria])


#: van Tulder et al. (2003) as adapted by Dorrestijn et al. (2009), in the form printed at
#: https://pmc.ncbi.nlm.nih.gov/articles/PMC6090995/table/Tab1 (Table 1 of a 2018 BMC
#: Musculoskelet Disord review, doi:10.1186/s12891-018-2204-6)
VAN_TULDER_DORRESTIJN = EvidenceRule(
    name="van_tulder_dorrestijn",
    label="Best-evidence synthesis (van Tulder et al. 2003, adapted by Dorrestijn et al. 2009)",
    criteria=(
        Criterion("strong", "multiple", True, True, min_high=2),
        Criterion("moderate", "one", True, None, min_high=1),
        Criterion("moderate", "multiple", True, False, min_high=1),
        Criterion("moderate", "multiple", True, True, min_medium=2),
        Criterion("limited", "one", True, None, min_medium=1),
        Criterion("limited", "multiple", True, False, min_medium=1),
        Criterion("limited", "multiple", True, True),
        Criterion("very limited", "one", True, None),
        Criterion("very limited", "multiple", True, False),
        Criterion("conflicting", "multiple", False, False),
    ),
    quality_cutoffs={"high": 0.7, "medium": 0.4},
    alpha=0.05,
    source="https://pmc.ncbi.nlm.nih.gov/articles/PMC6090995/table/Tab1",
    text=(
        "Paraphrase of Table 1 at the source address (read 2026-12-07): strong = consistent, statistically "
        "significant pooled results from multiple studies including at least two of high quality; moderate = "
        "significant results in one high-quality study, or inconsistent significant pooled results including at "
        "least one high-quality study, or consistent significant pooled results from multiple medium-quality "
        "studies; limited = significant results in one medium-quality study, or inconsistent significant pooled "
        "results including at least one medium-quality study, or consistent significant pooled results from "
        "multiple low-quality studies; very limited = significant results in one low-quality study, or "
        "inconsistent significant pooled results from multiple low-quality studies; conflicting = inconsistent, "
        "non-significant pooled results from multiple studies regardless of quality. Pooled results count as "
        "consistent when heterogeneity is not significant (P > 0.05). The table's trials are RCTs rated by PEDro; "
        "here the same criteria are applied to the review's observational and single-group studies."
    ),
    cutoff_source=(
        "a setting. The source rates PEDro scores high >= 7/10, medium 4-6/10, low <= 3/10; applied here as "
        "fractions of the scale maximum. The review used a modified Downs and Black "
        "checklist for observational studies (items tabled at https://bjsm.bmj.com/highwire/markup/88344/expansion), "
        "but no accessible page gives its cut-off for high quality."
    ),
)

#: the rules an analysis may name (``analyses.csv`` column ``evidence_rule``)
RULES: dict[str, EvidenceRule] = {VAN_TULDER_DORRESTIJN.name: VAN_TULDER_DORRESTIJN}


def quality_category(score, maximum, rule: EvidenceRule = VAN_TULDER_DORRESTIJN) -> str | None:
    """``high`` / ``medium`` / ``low`` from a score and its scale maximum; None when either is missing."""
    try:
        s, m = float(score), float(maximum)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(s) and math.isfinite(m)) or m <= 0:
        return None
    frac = s / m
    if frac >= rule.quality_cutoffs["high"]:
        return "high"
    if frac >= rule.quality_cutoffs["medium"]:
        return "medium"
    return "low"


@dataclass(frozen=True)
class EvidenceGrade:
    """The level a rule gives one body of evidence.

    ``low``/``high``: the levels with every unknown-quality study rated low / high (equal when
    every quality is known); ``n_unknown``: studies of unknown quality; ``text``: the level, or
    the range ``"limited to moderate, quality unknown"``."""

    rule: str
    k: int
    significant: bool | None
    consistent: bool | None
    n_high: int
    n_medium: int
    n_low: int
    n_unknown: int
    low: str
    high: str

    @property
    def text(self) -> str:
        if self.k == 0:
            return "no data"
        if self.low == self.high:
            return self.low + (", quality unknown" if self.n_unknown and self.low in LEVELS else "")
        return f"{self.low} to {self.high}, quality unknown"

    def to_frame(self) -> pd.DataFrame:
        d = dict(self.__dict__)
        d["text"] = self.text
        return pd.DataFrame([d])

    def summary(self) -> str:
        return f"{self.rule}: {self.text} (k = {self.k})"


def _level(rule: EvidenceRule, k, significant, consistent, n_high, n_med) -> str:
    for c in rule.criteria:
        if c.met(k, significant, consistent, n_high, n_med):
            return c.level
    return NO_LEVEL


def grade(k: int, p: float | None, q_p: float | None = None, qualities=(), *,
          rule: EvidenceRule = VAN_TULDER_DORRESTIJN) -> EvidenceGrade:
    """The level ``rule`` gives ``k`` studies whose pooled (k = 1: single-study) test has p-value
    ``p``, whose heterogeneity test has p-value ``q_p`` (k >= 2), and whose quality categories are
    ``qualities`` (one per study: ``"high"``, ``"medium"``, ``"low"`` or None = unknown).

    Significant: ``p < rule.alpha``; consistent: ``q_p >= rule.alpha`` (Dorrestijn et al.: no
    significant heterogeneity). With unknown qualities the grade is a range: :attr:`EvidenceGrade.low`
    rates them all low, :attr:`EvidenceGrade.high` all high.
    """
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise ValueError(f"grade: k must be a whole number >= 0, got {k!r}")
    k = int(k)
    qualities = list(qualities)
    if k and len(qualities) != k:
        raise ValueError(f"grade: qualities must give one category per study (k = {k}), got {len(qualities)}")
    bad = [(i, q) for i, q in enumerate(qualities) if q is not None and q not in QUALITIES]
    if bad:
        raise ValueError(f"grade: qualities must be one of {', '.join(QUALITIES)} or None; bad at positions "
                         f"{[i for i, _ in bad]}: {[q for _, q in bad]}")
    n_high = sum(q == "high" for q in qualities)
    n_med = sum(q == "medium" for q in qualities)
    n_low = sum(q == "low" for q in qualities)
    n_unk = sum(q is None for q in qualities)
    if k == 0:
        return EvidenceGrade(rule.name, 0, None, None, 0, 0, 0, 0, "no data", "no data")
    pv = float(p) if p is not None else math.nan
    significant = bool(pv < rule.alpha) if math.isfinite(pv) else False
    consistent = None
    if k >= 2:
        qv = float(q_p) if q_p is not None else math.nan
        consistent = bool(qv >= rule.alpha) if math.isfinite(qv) else None
    lo = _level(rule, k, significant, consistent, n_high, n_high + n_med)
    hi = _level(rule, k, significant, consistent, n_high + n_unk, n_high + n_med + n_unk)
    return EvidenceGrade(rule.name, k, significant, consistent, n_high, n_med, n_low, n_unk, lo, hi)
