"""The data files' columns and vocabularies as data: what :mod:`meta.data` validates against.

:data:`SCHEMA` declares, per file, every documented column (required in the header or
optional, kind, cell required, minimum, vocabulary); one generic check in :mod:`meta.data`
reads it, and ``data/README.md`` documents the same columns (a test keeps them in step). The
values the code interprets (designs, comparisons, p operators, effect-size types, ...) are
named here; ``data/vocabulary.csv`` lists every allowed value with its meaning, and is what
the validator checks cells against. The number grammar, the study-id, URL and DOI patterns and
the spreadsheet formula starts are here too. Nothing here reads a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Column", "SCHEMA", "required_columns", "STUDY_COLUMNS", "OUTCOME_COLUMNS", "CLAIM_COLUMNS",
    "PUBLISHED_POOLED_COLUMNS", "VOCABULARY_KEYS", "DESIGNS", "POPULATION_SEXES", "RUNNERS", "REVIEW_MATCHES",
    "REVIEW_SETS", "DEFAULT_REVIEW_SET", "COMPARISONS", "P_OPERATORS", "EFFECT_SIZE_TYPES", "NUMBER_PATTERN",
    "STUDY_ID_PATTERN", "URL_PATTERN", "DOI_PATTERN", "PLACEHOLDER_PATTERN", "FORMULA_STARTS", "PUBLISHED_KEY",
]

STUDIES_FILE = "studies.csv"
OUTCOMES_FILE = "outcomes.csv"
CLAIMS_FILE = "review_claims.csv"
VOCABULARY_FILE = "vocabulary.csv"
PUBLISHED_POOLED_FILE = "published_pooled.csv"

# Values the code interprets (meta.study_effects, meta.reproduce); vocabulary.csv lists them with
# their meanings and is what the validator checks against.
DESIGNS = ("prospective", "case-control", "intervention-single-group", "intervention-controlled")
POPULATION_SEXES = ("female", "male", "mixed", "unclear")
RUNNERS = ("yes", "no", "unclear")
REVIEW_MATCHES = ("likely", "possible", "unlikely", "excluded")
REVIEW_SETS = ("original", "update")
DEFAULT_REVIEW_SET = "original"  # a studies.csv without the review_set column is the original review
COMPARISONS = ("pfp_vs_control", "post_vs_pre", "intervention_vs_control")
P_OPERATORS = ("=", "<")
# cohen_d / hedges_g / unspecified are used as SMDs, t as a t statistic; the others are recorded
# truthfully but never converted (see meta.study_effects).
EFFECT_SIZE_TYPES = ("cohen_d", "hedges_g", "unspecified", "t", "odds_ratio", "risk_ratio", "correlation")


# --------------------------------------------------------------------------- column specs


@dataclass(frozen=True)
class Column:
    """One documented column of a data file (constraints as data; PyMARE's ``Options`` idea).

    ``kind``: ``text``, ``int`` (whole number), ``number`` (real, :data:`NUMBER_PATTERN`),
    ``direction`` (+1/-1), ``vocab`` (a value of ``vocabulary`` in ``vocabulary.csv``; default
    the column's own name), ``url`` (http/https), ``doi`` (bare DOI).  ``header``: the header
    must have the column (False: optional column).  ``cell``: the cell must not be empty.
    ``minimum``: smallest allowed whole number.
    """

    name: str
    kind: str = "text"
    header: bool = True
    cell: bool = False
    minimum: int | None = None
    vocabulary: str | None = None

    @property
    def vocab_key(self) -> str | None:
        return (self.vocabulary or self.name) if self.kind == "vocab" else None


def _c(name: str, kind: str = "text", **kw) -> Column:
    return Column(name, kind, **kw)


SCHEMA: dict[str, tuple[Column, ...]] = {
    STUDIES_FILE: (
        _c("study_id", cell=True), _c("cohort_id", cell=True), _c("authors", cell=True),
        _c("year", "int", cell=True), _c("title"), _c("journal"), _c("citation"), _c("doi", "doi"),
        _c("pmid", "int", minimum=1), _c("design", "vocab", cell=True),
        _c("population_sex", "vocab", cell=True), _c("runners", "vocab", cell=True),
        _c("n_pfp", "int", minimum=1), _c("n_control", "int", minimum=0),
        _c("review_match", "vocab", cell=True), _c("review_match_reason", cell=True),
        _c("source_url", "url"), _c("notes"),
        _c("review_set", "vocab", header=False),  # missing column or empty cell = original
    ),
    OUTCOMES_FILE: (
        _c("study_id", cell=True), _c("outcome", "vocab", cell=True), _c("comparison", "vocab", cell=True),
        _c("timepoint", "vocab"), _c("task", "vocab"), _c("unit", "vocab"),
        _c("n1", "int", minimum=2), _c("mean1", "number"), _c("sd1", "number"),
        _c("n2", "int", minimum=2), _c("mean2", "number"), _c("sd2", "number"),
        _c("mean_diff", "number"), _c("p_value", "number"), _c("p_operator", "vocab"),
        _c("effect_size", "number"), _c("effect_size_type", "vocab"), _c("direction", "direction"),
        _c("source_url", "url"), _c("source_locator"), _c("extraction_note"),
        _c("ci_low", "number", header=False), _c("ci_high", "number", header=False),
        _c("ci_level", "number", header=False), _c("se", "number", header=False),
    ),
    CLAIMS_FILE: (
        _c("claim_id", cell=True), _c("outcome", "vocab", cell=True), _c("comparison", "vocab", cell=True),
        _c("population", "vocab", cell=True), _c("expected_direction", "direction", cell=True),
        _c("evidence_level", "vocab", cell=True), _c("source_url", "url", cell=True),
        _c("design", "vocab", header=False, vocabulary="review_claims.csv:design"),
        _c("intervention", "vocab", header=False), _c("construct", "vocab", header=False),
        _c("claim_text", header=False),
    ),
    VOCABULARY_FILE: (
        _c("column", cell=True), _c("value", cell=True), _c("meaning", cell=True),
        _c("construct", header=False),
    ),
    # the declarations of meta.analysis (read and checked there, with the same reader)
    "analyses.csv": (
        _c("analysis_id", cell=True), _c("title"), _c("outcome", "vocab", cell=True),
        _c("comparison", "vocab", cell=True), _c("filters"), _c("smd_convention"), _c("method"),
        _c("favours_left"), _c("favours_right"), _c("claim_ids"), _c("notes"),
        # optional (meta.analysis checks them): small-study tests below k = 10, an assumed pre-post r
        _c("small_study_min_k", "int", header=False, minimum=3), _c("prepost_r", "number", header=False),
        _c("prepost_r_source", header=False),
        _c("es_scale", header=False),  # the scale pooled (meta.analysis.ES_SCALES); empty = the comparison's
    ),
    PUBLISHED_POOLED_FILE: (
        _c("source_id", cell=True), _c("source_citation", cell=True), _c("doi", "doi"),
        _c("outcome", "vocab", cell=True), _c("population"), _c("task", "vocab"), _c("design"),
        _c("k", "int", minimum=1), _c("n", "int", minimum=1), _c("smd", "number"),
        _c("ci_low", "number"), _c("ci_high", "number"), _c("ci_level", "number"),
        _c("evidence_level"), _c("sign_convention"), _c("url", "url", cell=True), _c("locator"),
        _c("notes"),
    ),
}
#: the project's vocabulary, used for a data folder that has no vocabulary.csv of its own
DEFAULT_VOCABULARY = Path(__file__).resolve().parents[1] / "data" / VOCABULARY_FILE
#: vocabulary.csv keys derived from other vocabulary rows rather than listed: the constructs of the outcomes
DERIVED_VOCABULARIES = {"construct": ("outcome", "construct")}


def required_columns(file: str) -> tuple[str, ...]:
    """The columns a file's header must have."""
    return tuple(c.name for c in SCHEMA[file] if c.header)


STUDY_COLUMNS = required_columns(STUDIES_FILE)
OUTCOME_COLUMNS = required_columns(OUTCOMES_FILE)
CLAIM_COLUMNS = required_columns(CLAIMS_FILE)
PUBLISHED_POOLED_COLUMNS = required_columns(PUBLISHED_POOLED_FILE)

#: vocabulary keys (vocabulary.csv ``column``) the schema refers to, in schema order
VOCABULARY_KEYS = tuple(dict.fromkeys(
    c.vocab_key for cols in SCHEMA.values() for c in cols
    if c.vocab_key and c.vocab_key not in DERIVED_VOCABULARIES))

STUDY_ID_PATTERN = re.compile(r"^[a-z]+(\d{4})[a-z]?$")
URL_PATTERN = re.compile(r"^https?://\S+$")
DOI_PATTERN = re.compile(r"^10\.\d{4,9}/\S+$")
UNIT_NOT_STATED = "not stated"  # a unit starting with this is unknown: it conflicts with no other
PLACEHOLDER_PATTERN = re.compile(r"^\[.*\]$", re.DOTALL)
#: the only spellings of a real number accepted (Python's float() would also take 8_2, inf, nan, 1_000)
NUMBER_PATTERN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$", re.ASCII)
INT_PATTERN = re.compile(r"^[+-]?\d+$", re.ASCII)
MISSING_WORDS = {"na", "n/a", "nan", "none", "null", "-", "–", "?", "inf", "-inf", "+inf", "infinity"}
#: first characters that make a spreadsheet run a cell as a formula (OWASP "CSV injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: columns that identify one pooled estimate of published_pooled.csv (source_id names the review)
PUBLISHED_KEY = ("source_id", "outcome", "population", "task", "design")
