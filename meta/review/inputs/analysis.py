"""Declared analyses: read and check ``data/analyses.csv`` (one row per pooled analysis).

The file is read with the data reader (:func:`meta.review.inputs.data.read_table`: UTF-8,
comma-separated, no column twice in the header) and every problem is reported
as ``data/analyses.csv, row N (analysis X), column C: ...``, never as a
traceback.  Checked, row by row:

* ``analysis_id``: not empty, unique, letters, digits and ``_`` (it names figure files);
* ``outcome``: one or more outcomes separated by ``|``, each in ``vocabulary.csv``;
* ``comparison``: in ``vocabulary.csv``;
* ``filters``: ``key=v1|v2;key2!=v3`` (:func:`parse_filters`); each key a column of
  ``outcomes.csv`` or ``studies.csv``; each value in that column's vocabulary where it has
  one (``study_id`` values: a study of ``studies.csv``);
* ``smd_convention``: :data:`CONVENTIONS` (empty = ``revman``);
* ``method``: :data:`METHODS`, case-insensitive (empty = ``DL``);
* ``es_scale`` (optional): the scale the analysis pools, :data:`ES_SCALES` (``raw_sd``: SMDs
  standardised by a raw-score SD; ``change_sd``: d_z, standardised by the SD of change); empty =
  the default of its comparison (:data:`meta.review.running.evidence.SCALES`);
* ``claim_ids``: ``;``-separated ids of ``review_claims.csv``;
* ``task`` (optional): the task(s) the analysis pools, ``|``-separated values of the ``task``
  vocabulary; empty = :data:`DEFAULT_TASKS` (running). A matching row of another task never
  enters the analysis silently: it is left out and listed (``AnalysisRun.other_task``);
* ``evidence_rule`` (optional): the best-evidence-synthesis rule that grades the analysis, a key of
  :data:`meta.evidence_synthesis.RULES`; empty = :data:`DEFAULT_EVIDENCE_RULE`;
* ``small_study_min_k`` (optional): a whole number >= 3; empty = :data:`SMALL_STUDY_MIN_K` (10:
  funnel plots, Egger's test and trim-and-fill need at least 10 studies, Sterne et al. 2011,
  BMJ 343:d4002); a lower value runs them anyway and the report repeats the warning;
* ``prepost_r`` (optional, ``post_vs_pre`` analyses only): the pre-post correlation assumed for
  rows that do not give their own, strictly between -1 and 1; ``prepost_r_source`` (the
  justification: a study, a reference) is then required;
* the analysis' filters leave at least one outcome row, when some row has its outcome and
  comparison (an outcome with no row yet is "no data", not an error); otherwise the message
  names the filter that matched nothing.

Rows are selected as :func:`meta.review.running.run.select_rows` does (``review_match=likely|possible``
added unless the filters name ``review_match``).  This module imports :mod:`meta.review.inputs.data` and
:mod:`meta._estimators` only; the running of an analysis is :mod:`meta.review.running.run`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from meta.review.inputs import data as _data
from meta.review.inputs import schema
from meta._estimators import METHOD_ALIASES as _METHOD_ALIASES
from meta._estimators import METHODS as _POOL_METHODS
from meta.review.inputs.schema import Problem

__all__ = [
    "Analysis",
    "Filter",
    "AnalysesError",
    "parse_filters",
    "load_analyses",
    "check_analyses",
    "analysis_problems",
    "validate",
    "ANALYSES_FILE",
    "ANALYSES_COLUMNS",
    "CONVENTIONS",
    "METHODS",
    "ES_SCALES",
    "DEFAULT_REVIEW_MATCH",
    "SMALL_STUDY_MIN_K",
    "DEFAULT_TASKS",
    "DEFAULT_EVIDENCE_RULE",
]

ANALYSES_FILE = "analyses.csv"
ANALYSES_COLUMNS = schema.required_columns(ANALYSES_FILE)
CONVENTIONS = ("revman", "ls")
#: tau2 estimators an analysis may name: meta._estimators.METHODS itself (metafor's aliases EE/CE
#: for FE are accepted too and read as FE)
METHODS = _POOL_METHODS
#: scales an analysis may declare (column es_scale; the es_scale values of meta.review.inputs.study_effects that
#: can be pooled -- ``unstated`` cannot)
ES_SCALES = ("raw_sd", "change_sd")
#: review_match values an analysis uses unless its filters name review_match (also the studies
#: meta.review.outputs.coverage lists)
DEFAULT_REVIEW_MATCH = ("likely", "possible")
#: fewest studies for funnel plots, Egger's test and trim-and-fill (Sterne et al. 2011, BMJ 343:d4002;
#: Cochrane Handbook 13.3.5.4); an analysis may lower it explicitly (column small_study_min_k, >= 3)
SMALL_STUDY_MIN_K = 10
#: the task an analysis pools unless its ``task`` column names others (the review is about running)
DEFAULT_TASKS = ("running",)
#: the best-evidence-synthesis rule (meta.evidence_synthesis.RULES) unless ``evidence_rule`` names another
DEFAULT_EVIDENCE_RULE = "van_tulder_dorrestijn"
ANALYSIS_ID_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


class AnalysesError(ValueError):
    """``analyses.csv`` is invalid; ``problems`` holds one readable line per problem
    (``details``: the same as :class:`meta.review.inputs.data.Problem` objects where available)."""

    def __init__(self, problems):
        self.details = [p for p in problems if isinstance(p, Problem)]
        self.problems = [str(p) for p in problems]
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Filter:
    key: str
    negate: bool
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.key}{'!=' if self.negate else '='}{'|'.join(self.values)}"

    def matches(self, value: str) -> bool:
        hit = (value or "").strip() in self.values
        return not hit if self.negate else hit


def parse_filters(text: str) -> tuple[Filter, ...]:
    """Parse ``key=v1|v2;key2!=v3`` into filters; raises ValueError naming the bad clause."""
    out = []
    text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    for clause in (c.strip() for c in text.split(";")):
        if not clause:
            continue
        if "!=" in clause:
            key, _, vals = clause.partition("!=")
            negate = True
        elif "=" in clause:
            key, _, vals = clause.partition("=")
            negate = False
        else:
            raise ValueError(f"filter clause {clause!r} must read key=value or key!=value")
        values = tuple(v.strip() for v in vals.split("|") if v.strip())
        if not key.strip() or not values:
            raise ValueError(f"filter clause {clause!r} needs a key and at least one value")
        if any(ch in key for ch in "=!<> ") or any("=" in v for v in values):
            raise ValueError(f"filter clause {clause!r} must read key=v1|v2 or key!=v1|v2 "
                             "(one = or != per clause; clauses separated by ;)")
        out.append(Filter(key.strip(), negate, values))
    return tuple(out)


@dataclass(frozen=True)
class Analysis:
    """One row of ``data/analyses.csv``."""

    analysis_id: str
    title: str
    outcomes: tuple[str, ...]
    comparison: str
    filters: tuple[Filter, ...]
    smd_convention: str = "revman"
    method: str = "DL"
    favours_left: str = "Favours group 2"
    favours_right: str = "Favours group 1"
    claim_ids: tuple[str, ...] = ()
    notes: str = ""
    small_study_min_k: int | None = None  # None: SMALL_STUDY_MIN_K
    prepost_r: float | None = None  # assumed pre-post r for post_vs_pre rows that give none
    prepost_r_source: str = ""
    es_scale: str = ""  # declared scale (ES_SCALES); empty = the comparison's default
    tasks: tuple[str, ...] = DEFAULT_TASKS  # the tasks pooled (column task); rows of other tasks are listed apart
    evidence_rule: str = DEFAULT_EVIDENCE_RULE  # key of meta.evidence_synthesis.RULES (column evidence_rule)

    @property
    def bias_min_k(self) -> int:
        """Fewest studies for funnel plot, Egger's test and trim-and-fill in this analysis."""
        return SMALL_STUDY_MIN_K if self.small_study_min_k is None else self.small_study_min_k

    @property
    def effective_filters(self) -> tuple[Filter, ...]:
        """Declared filters plus the default ``review_match=likely|possible``."""
        if any(f.key == "review_match" for f in self.filters):
            return self.filters
        return self.filters + (Filter("review_match", False, DEFAULT_REVIEW_MATCH),)


def _split(text: str, sep: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(sep) if x.strip())


def _canonical_method(method: str) -> str | None:
    known = {m.upper(): m for m in METHODS} | {a.upper(): m for a, m in _METHOD_ALIASES.items()}
    return known.get(method.upper())


def analysis_problems(path: str | os.PathLike = "data", *, checked: _data.CheckedFolder | None = None
                      ) -> tuple[list[Problem], list[Analysis]]:
    """Check ``analyses.csv`` (a file, or a data folder holding it) against the data beside it.

    Returns ``(problems, analyses)``; ``analyses`` holds the rows without an error.  Problems
    of the data files themselves are not repeated here (see :func:`meta.review.inputs.data.validate`); where
    a data file is missing or unreadable, the checks that need it are skipped. ``checked``: the
    data folder as :func:`meta.review.inputs.data.check_folder` already read it (not read again).
    """
    path = Path(path)
    if path.is_dir() and not (path.name == ANALYSES_FILE and not (path / ANALYSES_FILE).exists()):
        folder, name = path, ANALYSES_FILE  # a data folder
    else:
        folder, name = path.parent, path.name  # the file itself (or a folder named analyses.csv)
    problems: list[Problem] = []
    table = schema.read_table(folder, name, problems)
    if table is None or not schema.check_columns(table, ANALYSES_COLUMNS, problems):
        return problems, []
    table = replace(table, name=ANALYSES_FILE) if name != ANALYSES_FILE else table
    schema.check_known_columns(table, problems)
    if checked is None and folder.is_dir():
        checked = _data.check_folder(folder)
    vocab = checked.vocab if checked else None
    schema.check_invisible(table, problems)
    schema.check_formulas(table, problems, vocab)
    tables = checked.tables if checked else {}
    outcomes = tables.get(schema.OUTCOMES_FILE)
    studies = tables.get(schema.STUDIES_FILE)
    claims = tables.get(schema.CLAIMS_FILE)
    comparisons = vocab.get("comparison") if vocab and "comparison" in vocab else schema.COMPARISONS
    outcome_names = vocab.get("outcome") if vocab else None
    vocab_file = getattr(vocab, "file", None)
    keys = _filter_keys(outcomes, studies)
    study_ids = {c["study_id"] for _, c in studies.rows} if studies is not None else None
    claim_ids = {c["claim_id"] for _, c in claims.rows} if claims is not None else None
    merged = _merged_rows(outcomes, studies) if outcomes is not None and studies is not None else None

    out: list[Analysis] = []
    seen: dict[str, int] = {}
    for row, c in table.rows:
        aid = c["analysis_id"]
        start = len(problems)

        def add(column, message, got=None, severity="error"):
            problems.append(Problem(ANALYSES_FILE, row, aid or None, column, message, got, None,
                                    severity, table.folder, "analysis"))

        if not aid:
            add("analysis_id", "must not be empty")
        elif aid in seen:
            add("analysis_id", f"duplicate id {aid!r} (first used in row {seen[aid]})")
        elif not ANALYSIS_ID_PATTERN.match(aid):
            add("analysis_id", "use letters, digits and _ only (it names figure files)", aid)
        seen.setdefault(aid, row)

        outcomes_of = _split(c["outcome"], "|")
        if not outcomes_of:
            add("outcome", "must name at least one outcome (a|b for several)")
        elif outcome_names is not None:
            for o in outcomes_of:
                if o not in outcome_names:
                    add("outcome", schema.vocabulary_message(o, outcome_names, vocab_file or schema.VOCABULARY_FILE))
        comparison = c["comparison"]
        if comparison not in comparisons:
            add("comparison", schema.vocabulary_message(comparison, tuple(comparisons), vocab_file or schema.VOCABULARY_FILE)
                if comparison else "must not be empty; valid: " + ", ".join(comparisons))
        conv = c["smd_convention"] or "revman"
        if conv not in CONVENTIONS:
            add("smd_convention", f"must be one of {', '.join(CONVENTIONS)} (empty = revman)", conv)
        method = _canonical_method(c["method"] or "DL")
        if method is None:
            add("method", f"must be one of {', '.join(METHODS)} (any case; {'/'.join(_METHOD_ALIASES)} = FE; "
                "empty = DL)", c["method"])
        scale = (c.get("es_scale") or "").strip()
        if scale and scale not in ES_SCALES:
            add("es_scale", f"must be one of {', '.join(ES_SCALES)} (empty = the default scale of the "
                "comparison)" + schema.suggest(scale, ES_SCALES), scale)
        try:
            filters = parse_filters(c["filters"])
        except ValueError as e:
            add("filters", str(e))
            filters = ()
        for f in filters:
            if keys is not None and f.key not in keys:
                add("filters", f"unknown key {f.key!r} in {str(f)!r}; valid keys are columns of outcomes.csv "
                    f"or studies.csv: {', '.join(sorted(keys))}{schema.suggest(f.key, sorted(keys))}")
                continue
            allowed = _filter_values(f.key, vocab, study_ids)
            for v in f.values:
                if allowed is not None and v not in allowed:
                    what = "a study_id of studies.csv" if f.key == "study_id" else f"in the vocabulary of column {f.key}"
                    add("filters", f"value {v!r} of filter {str(f)!r} is not {what}; valid: "
                        + (", ".join(allowed) if len(allowed) <= 15 else f"{', '.join(list(allowed)[:12])}, ...")
                        + schema.suggest(v, allowed))
        cids = _split(c["claim_ids"], ";")
        if claim_ids is not None:
            for cid in cids:
                if cid not in claim_ids:
                    add("claim_ids", f"{cid!r} is not a claim_id of review_claims.csv"
                        + schema.suggest(cid, sorted(claim_ids)))
        min_k, r, r_source = _optional_columns(c, comparison, add)
        tasks = _split(c.get("task") or "", "|") or DEFAULT_TASKS
        task_names = vocab.get("task") if vocab and "task" in vocab else None
        if task_names is not None:
            for t in tasks:
                if t not in task_names:
                    add("task", schema.vocabulary_message(t, tuple(task_names), vocab_file or schema.VOCABULARY_FILE))
        rule = (c.get("evidence_rule") or "").strip() or DEFAULT_EVIDENCE_RULE
        from meta.evidence_synthesis import RULES

        if rule not in RULES:
            add("evidence_rule", f"must be one of {', '.join(RULES)} (empty = {DEFAULT_EVIDENCE_RULE})"
                + schema.suggest(rule, tuple(RULES)), rule)
        if len(problems) > start:
            continue
        a = Analysis(
            analysis_id=aid,
            title=c["title"] or aid,
            outcomes=outcomes_of,
            comparison=comparison,
            filters=filters,
            smd_convention=conv,
            method=method,
            favours_left=c["favours_left"] or "Favours group 2",
            favours_right=c["favours_right"] or "Favours group 1",
            claim_ids=cids,
            notes=c["notes"],
            small_study_min_k=min_k,
            prepost_r=r,
            prepost_r_source=r_source,
            es_scale=scale,
            tasks=tasks,
            evidence_rule=rule,
        )
        if merged is not None:
            empty = _filter_matching_nothing(a, merged)
            if empty is not None:
                add("filters", empty)
                continue
        out.append(a)
    return problems, out


def _optional_columns(c, comparison: str, add):
    """``small_study_min_k``, ``prepost_r``, ``prepost_r_source`` of one row (problems via ``add``)."""
    text = {k: (c.get(k) or "").strip() for k in ("small_study_min_k", "prepost_r", "prepost_r_source")}
    min_k = r = None
    if text["small_study_min_k"]:
        v = text["small_study_min_k"]
        if not re.fullmatch(r"[+]?\d+", v) or int(v) < 3:
            add("small_study_min_k", "must be a whole number >= 3 (Egger's test needs 3 studies); empty = "
                f"{SMALL_STUDY_MIN_K} (Sterne et al. 2011, BMJ 343:d4002)", v)
        else:
            min_k = int(v)
    if text["prepost_r"]:
        v = text["prepost_r"]
        try:
            r = float(v) if schema.NUMBER_PATTERN.match(v) else None
        except ValueError:
            r = None
        if r is None or not -1 < r < 1:
            add("prepost_r", "must be a correlation strictly between -1 and 1, e.g. 0.5", v)
            r = None
        elif comparison != "post_vs_pre":
            add("prepost_r", f"applies only to post_vs_pre analyses (this one is {comparison or 'empty'}); "
                "leave it empty", v)
        if not text["prepost_r_source"]:
            add("prepost_r_source", "must say where the assumed prepost_r comes from (a study or reference "
                "that reports the pre-post correlation of this outcome)")
    elif text["prepost_r_source"]:
        add("prepost_r_source", "is given but prepost_r is empty: state the r it justifies, or leave both empty",
            text["prepost_r_source"], severity="warning")
    return min_k, r, text["prepost_r_source"]


def _filter_keys(outcomes, studies) -> set[str] | None:
    if outcomes is None or studies is None:
        return None
    return set(outcomes.header) | set(studies.header) | {"review_set"}


def _filter_values(key: str, vocab, study_ids) -> tuple[str, ...] | None:
    if key == "study_id":
        return tuple(sorted(study_ids)) if study_ids is not None else None
    if vocab is None:
        return None
    for file in (schema.OUTCOMES_FILE, schema.STUDIES_FILE):
        for col in schema.SCHEMA[file]:
            if col.name == key and col.vocab_key:
                return vocab.get(col.vocab_key)
    return None


class _MergedRows:
    """The outcome rows with their study's columns (outcome columns win, as
    meta.review.running.run.annotate), grouped by (outcome, comparison) and merged when an analysis
    first asks for the group: one pass over the rows, not one per analysis."""

    def __init__(self, outcomes, studies):
        self.by_id: dict[str, dict[str, str]] = {}
        for _, s in studies.rows:
            self.by_id.setdefault(s["study_id"], s)
        self.groups: dict[tuple, list[dict[str, str]]] = {}
        for _, o in outcomes.rows:
            self.groups.setdefault((o.get("outcome"), o.get("comparison")), []).append(o)
        self.merged: dict[tuple, list[dict[str, str]]] = {}

    def matching(self, outcomes: tuple[str, ...], comparison: str) -> list[dict[str, str]]:
        """The merged rows with one of ``outcomes`` and ``comparison`` (grouped by outcome)."""
        out: list[dict[str, str]] = []
        for o in dict.fromkeys(outcomes):
            key = (o, comparison)
            if key not in self.merged:
                self.merged[key] = [{"review_set": schema.DEFAULT_REVIEW_SET, **self.by_id.get(r["study_id"], {}), **r}
                                    for r in self.groups.get(key, ())]
            out.extend(self.merged[key])
        return out


def _merged_rows(outcomes, studies) -> _MergedRows:
    """Each outcome row with its study's columns (see :class:`_MergedRows`)."""
    return _MergedRows(outcomes, studies)


def _filter_matching_nothing(a: Analysis, rows: _MergedRows) -> str | None:
    """None if some row passes every filter, or no row has the analysis' outcome and comparison
    at all (no data yet); else a message naming the first filter that leaves no row (what it says
    does not depend on the rows' order)."""
    cur = rows.matching(a.outcomes, a.comparison)
    if not cur:
        return None
    for f in a.effective_filters:
        nxt = [r for r in cur if f.matches(r.get(f.key, ""))]
        if not nxt and f not in a.filters and all(r.get("review_set") == "update" for r in cur):
            return None  # only newer studies: no data in the original set yet, the updated set has them
        if not nxt:
            seen = sorted({r.get(f.key, "") or "(empty)" for r in cur})
            default = "" if f in a.filters else (" (the default filter, added because the filters do not "
                                                 "name review_match)")
            return (f"filter {str(f)!r}{default} matches none of the {len(cur)} outcome row(s) with outcome "
                    f"{'|'.join(a.outcomes)} and comparison {a.comparison}"
                    f"{' left by the filters before it' if f is not a.effective_filters[0] else ''}; "
                    f"their {f.key} values: {', '.join(seen)}")
        cur = nxt
    return None


def load_analyses(path: str | os.PathLike = "data", *, checked: _data.CheckedFolder | None = None) -> list[Analysis]:
    """Read and check ``analyses.csv`` (a file, or a data folder holding it).

    Raises :class:`AnalysesError` listing every error as
    ``data/analyses.csv, row N (analysis X), column C: ...``.
    """
    problems, analyses = analysis_problems(path, checked=checked)
    errs = schema.errors(problems)
    if errs:
        raise AnalysesError(errs)
    return analyses


def check_analyses(analyses, effects, studies, claims) -> list[str]:
    """Cross-check analyses against loaded tables: filter keys exist, claim ids exist.

    :func:`load_analyses` on a data folder already checks this; this form checks analyses built in code.
    """
    problems = []
    columns = set(effects.columns) | set(studies.columns)
    claim_ids = set(claims["claim_id"].astype(str)) if claims is not None and "claim_id" in claims else None
    for a in analyses:
        for f in a.filters:
            if f.key not in columns:
                problems.append(
                    f"{ANALYSES_FILE}, analysis {a.analysis_id}, column filters: unknown key {f.key!r}; "
                    f"valid keys are columns of the effect-size table or studies.csv: {', '.join(sorted(columns))}"
                )
        if claim_ids is not None:
            for c in a.claim_ids:
                if c not in claim_ids:
                    problems.append(f"{ANALYSES_FILE}, analysis {a.analysis_id}, column claim_ids: {c!r} is not a claim_id of review_claims.csv")
    return problems


# --------------------------------------------------------------------------- meta validate


def validate(path: str | os.PathLike = "data") -> list[Problem]:
    """Every problem of the data folder: the data files (:func:`meta.review.inputs.data.validate`) and, if
    present, ``analyses.csv``."""
    return validate_folder(path)[0]


def validate_folder(path: str | os.PathLike = "data") -> tuple[list[Problem], _data.CheckedFolder, list[Analysis] | None]:
    """The data folder read once: every problem (data files, then ``analyses.csv`` if present),
    the checked folder (for :func:`meta.review.inputs.data.load`) and the analyses without an
    error (None when the folder has no ``analyses.csv``)."""
    folder = Path(path)
    checked = _data.check_folder(folder)
    problems = list(checked.problems)
    analyses = None
    if folder.is_dir() and (folder / ANALYSES_FILE).exists():
        with schema.collector_paused():  # no reference cycles are made here (see collector_paused)
            found, analyses = analysis_problems(folder, checked=checked)
        problems += found
    return problems, checked, analyses
