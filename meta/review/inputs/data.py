"""Load and validate the curated data: ``studies.csv``, ``outcomes.csv``, ``review_claims.csv``,
``vocabulary.csv`` and (optional) ``published_pooled.csv``.

Every problem found is reported with the file, the row number as a spreadsheet
shows it (header = row 1, first data row = row 2), the study and the column, so
a curator can go straight to the cell::

    data/outcomes.csv, row 14 (study noehren2013), column sd1: must be > 0, got -3.1

Validation only ever *reads* the files (opened in binary read mode); it never
rewrites, normalises or re-saves them.  Files may be UTF-8 with or without a
byte-order mark, with LF or CRLF line ends.  Leading and trailing spaces around
a cell are ignored.  An empty cell means "unknown" (never 0).

Constraints as data: :data:`meta.review.inputs.schema.SCHEMA` (imported here as
``SCHEMA``) declares, per file, every documented column (required in the
header or optional, kind, cell required, minimum, vocabulary); one generic
check here reads it, :func:`_frame` takes the column types from it, and
``data/README.md`` documents the same columns (a test keeps them in step).  The allowed values of every fixed-list column live in
``data/vocabulary.csv`` (``column,value,meaning[,construct]``), read from the
data folder being validated.  Rules that tie several cells together are code
below.

Severity: a :class:`Problem` is an ``"error"`` (the data cannot be loaded) or
a ``"warning"`` (loaded; ``meta validate`` prints it and still exits 0):
unknown extra columns, cells a spreadsheet would run as a formula, a printed
CI that does not contain its own estimate.

Rules checked (one test per rule in ``tests/test_data.py``):

* files and columns: the folder and the files exist, decode as UTF-8, parse as
  comma-separated CSV (a semicolon-separated file is named as such) with the
  header's number of fields on every row, no column twice in the header, and
  every required column; an undocumented column is a warning;
* no placeholders: a cell that is wholly in square brackets (``[title not
  seen]``) is refused in every file -- unknown is an empty cell;
* vocabularies: every column with a fixed list (:data:`SCHEMA` kind
  ``vocab``) holds a value of that column in ``vocabulary.csv``, exactly
  (case variants are errors; the message suggests the close match);
  ``review_claims.csv`` ``construct`` is a construct of an outcome in the
  vocabulary;
* numbers follow a strict grammar (:data:`NUMBER_PATTERN`: no ``_``, no
  thousands separators, no ``inf``/``nan``, no hex); whole numbers are digits;
* ``studies.csv``: ``study_id`` unique and lowercase author + 4-digit year +
  optional letter (``souza2009b``), its year equal to ``year``; ``n_pfp``
  >= 1, ``n_control`` >= 0, only with a ``source_url``; ``doi`` bare;
  ``review_set`` (optional column; a missing column or an empty cell = ``original``);
* ``outcomes.csv``: ``study_id`` names a study of ``studies.csv``; ``n1``,
  ``n2`` whole numbers >= 2 and not more than the study's group sizes (see
  :func:`_group_limit`); ``sd1``, ``sd2``, ``se`` > 0; 0 < ``p_value`` <= 1;
  ``p_operator`` given exactly when ``p_value`` is; ``direction`` is +1 or -1
  (or empty) and agrees with the sign of ``mean1 - mean2`` / ``mean_diff`` /
  ``effect_size``; ``mean_diff`` agrees in sign with ``mean1 - mean2``;
  ``effect_size_type`` only with an ``effect_size``; ``ci_low``/``ci_high``
  together, lower < upper, with a ``ci_level`` in (0, 1); a CI that does not
  contain the row's ``mean_diff`` (else ``effect_size``) is a warning; for
  ``post_vs_pre`` rows n1 = n2; one unit per outcome across rows (units
  starting with ``not stated`` are unknown and conflict with none); no two
  rows with the same study, outcome, comparison, timepoint and task; every row
  with a number has a ``source_url``; every row either supports at least one
  SMD route (see :mod:`meta.review.inputs.study_effects`) or its ``extraction_note`` says
  why not;
* ``review_claims.csv``: ``claim_id`` unique; ``expected_direction`` +1 or -1;
* ``published_pooled.csv`` (optional): one row per (``source_id``, outcome,
  population, task, design); ``smd`` inside
  its CI (warning otherwise); ``ci_level`` in (0, 1); ``url`` http(s);
* input cells a spreadsheet would run as a formula (starting with ``=``,
  ``+``, ``-``, ``@``, tab or CR; numbers in number columns and vocabulary
  values such as ``=`` excepted) are warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# the columns, vocabularies and cell checks (meta.review.inputs.schema)
from meta.review.inputs.schema import (
    Problem,
    DataError,
    errors,
    Table,
    read_table,
    check_columns,
    check_known_columns,
    read_vocabulary,
    vocabulary_of,
    CellChecker,
    check_schema,
    check_placeholders,
    check_invisible,
    check_identifier_spellings,
    P_MIN,
    CI_LEVEL_RANGE,
    CI_MIN_RELATIVE_WIDTH,
    check_formulas,
    collector_paused,
    STUDIES_FILE,
    OUTCOMES_FILE,
    CLAIMS_FILE,
    VOCABULARY_FILE,
    PUBLISHED_POOLED_FILE,
    DESIGNS,
    POPULATION_SEXES,
    RUNNERS,
    REVIEW_MATCHES,
    REVIEW_SETS,
    DEFAULT_REVIEW_SET,
    COMPARISONS,
    P_OPERATORS,
    EFFECT_SIZE_TYPES,
    Column,
    SCHEMA,
    DEFAULT_VOCABULARY,
    required_columns,
    STUDY_COLUMNS,
    OUTCOME_COLUMNS,
    CLAIM_COLUMNS,
    PUBLISHED_POOLED_COLUMNS,
    STUDY_ID_PATTERN,
    UNIT_NOT_STATED,
    NUMBER_PATTERN,
    PUBLISHED_KEY,
)

__all__ = [
    "Problem",
    "DataError",
    "Dataset",
    "Column",
    "SCHEMA",
    "load",
    "check_folder",
    "CheckedFolder",
    "validate",
    "read_vocabulary",
    "STUDY_COLUMNS",
    "OUTCOME_COLUMNS",
    "CLAIM_COLUMNS",
    "PUBLISHED_POOLED_COLUMNS",
    "DESIGNS",
    "POPULATION_SEXES",
    "RUNNERS",
    "REVIEW_MATCHES",
    "REVIEW_SETS",
    "COMPARISONS",
    "P_OPERATORS",
    "EFFECT_SIZE_TYPES",
    "NUMBER_PATTERN",
]



# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class Dataset:
    """The validated tables.

    Index of each frame: the spreadsheet row number (name ``row``), so any
    derived row can be traced back to its cell.  Whole numbers are ``Int64``
    (nullable), measurements ``float64`` (NaN = not reported), text
    ``string`` (``<NA>`` = empty cell).  ``studies`` always has
    ``review_set`` (``original`` where the file has no such column or an empty cell); ``outcomes`` always has ``ci_low``, ``ci_high``,
    ``ci_level`` and ``se`` (NaN where the file has no such column).
    ``published_pooled`` is None when the folder has no ``published_pooled.csv``.
    ``warnings``: the warning-level problems found while loading.
    """

    studies: pd.DataFrame
    outcomes: pd.DataFrame
    claims: pd.DataFrame
    path: Path = field(default=Path("data"))
    vocabulary: pd.DataFrame | None = None
    published_pooled: pd.DataFrame | None = None
    warnings: tuple[Problem, ...] = ()

    def summary(self) -> str:
        """One line: counts of studies, outcome rows (and how many have an SMD route), claims."""
        from meta.review.inputs.study_effects import _route_masks

        out = self.outcomes
        masks = _route_masks({c: out[c].to_numpy() for c in out.columns}, len(out))
        n_routes = sum(m.astype(int) for m in masks.values()) if masks else np.zeros(len(out), dtype=int)
        usable = int(np.count_nonzero(n_routes))
        paired = int(np.count_nonzero(masks["paired"] & (n_routes == 1)))
        needs_r = f", {paired} of them paired rows that need a pre-post r" if paired else ""
        return (
            f"data OK: {len(self.studies)} studies, {len(self.outcomes)} outcome rows "
            f"({usable} with a usable SMD route{needs_r}), {len(self.claims)} claims"
        )


# --------------------------------------------------------------------------- per-file rules


def _check_studies(table: Table, vocab, problems: list[Problem]) -> dict[str, dict]:
    """Returns {study_id: parsed row} for the first row of each study_id."""
    ck = CellChecker(table, problems)
    parsed_rows = check_schema(table, vocab, problems)
    check_identifier_spellings(table, ("study_id", "cohort_id"), problems)
    first_row: dict[str, int] = {}
    studies: dict[str, dict] = {}
    for (row, c), p in zip(table.rows, parsed_rows):
        sid = c["study_id"]
        m = STUDY_ID_PATTERN.match(sid)
        if sid:
            if not m:
                ck.add(row, sid, "study_id",
                       "must be lowercase first-author surname + 4-digit year + optional letter, "
                       "e.g. souza2009b", sid, "like souza2009b")
            if sid in first_row:
                ck.add(row, sid, "study_id", f"duplicates the study_id of row {first_row[sid]}", sid)
            else:
                first_row[sid] = row
                studies[sid] = p
        year = p.get("year")
        if year is not None and not 1900 <= year <= 2100:
            ck.add(row, sid, "year", "must be a 4-digit publication year", c["year"])
        elif year is not None and m and int(m.group(1)) != year:
            ck.add(row, sid, "year", f"does not match the year in study_id {sid}", c["year"])
        if (c["n_pfp"] or c["n_control"]) and c["source_url"] == "":
            ck.add(row, sid, "source_url",
                   "must not be empty when n_pfp or n_control is given: every number needs the page "
                   "it was read on")
    return studies


_NUMERIC_OUTCOME_COLUMNS = ("n1", "mean1", "sd1", "n2", "mean2", "sd2", "mean_diff", "p_value", "effect_size",
                            "ci_low", "ci_high", "se")


def _group_limit(comparison: str, task: str, group: str) -> tuple[str, ...]:
    """Which ``studies.csv`` group size(s) bound ``n1`` / ``n2`` of an outcome row (summed if two).

    ``pfp_vs_control``: n1 <= n_pfp, n2 <= n_control.  ``post_vs_pre``: both are the one
    group measured twice: the PFP group (n_pfp), or the control group (n_control) for the
    task ``exhaustive_run_control_group``.  ``intervention_vs_control``: the intervention arm
    is people with PFP (n1 <= n_pfp); the control arm or condition may be people with PFP or
    without, so n2 <= n_pfp + n_control.
    """
    if comparison == "pfp_vs_control":
        return ("n_pfp",) if group == "n1" else ("n_control",)
    if comparison == "post_vs_pre":
        return ("n_control",) if task == "exhaustive_run_control_group" else ("n_pfp",)
    if comparison == "intervention_vs_control":
        return ("n_pfp",) if group == "n1" else ("n_pfp", "n_control")
    return ()


def _check_outcomes(table: Table, studies: dict[str, dict] | None, vocab, problems: list[Problem]) -> None:
    from meta.review.inputs.study_effects import candidate_routes, missing_for_routes

    ck = CellChecker(table, problems)
    parsed_rows = check_schema(table, vocab, problems)
    units: dict[str, tuple[str, int]] = {}  # outcome -> (first unit, row)
    keys: dict[tuple, int] = {}
    suspect = _suspect_outcome_rows(table, parsed_rows, studies)
    for (row, c), p, check in zip(table.rows, parsed_rows, suspect):
        if not check:  # no rule below can fire on this row: only remember its unit and key
            unit, outcome = c["unit"], c["outcome"]
            if unit and outcome and outcome not in units and not unit.lower().startswith(UNIT_NOT_STATED):
                units[outcome] = (unit, row)
            keys.setdefault((c["study_id"], outcome, c["comparison"], c["timepoint"], c["task"]), row)
            continue
        sid = c["study_id"]
        if sid and studies is not None and sid not in studies:
            ck.add(row, sid, "study_id", "names no study in studies.csv", sid)
        outcome = c["outcome"]
        n1, n2 = p["n1"], p["n2"]
        mean1, mean2, md, es = p["mean1"], p["mean2"], p["mean_diff"], p["effect_size"]
        for col in ("sd1", "sd2", "se"):
            x = p.get(col)
            if x is not None and x <= 0:
                ck.add(row, sid, col, "must be > 0", c[col], "> 0")
        pv = p["p_value"]
        if pv is not None and not 0 < pv <= 1:
            ck.add(row, sid, "p_value", "must be > 0 and <= 1", c["p_value"], "0 < p <= 1")
        elif pv is not None and pv < P_MIN:
            ck.add(row, sid, "p_value", f"must be >= {P_MIN:g}: below it 1 - p/2 rounds to 1 in double precision "
                   "and the t statistic the p stands for is lost (for a printed p < 0.0001 write 0.0001 with "
                   "p_operator <)", c["p_value"], f">= {P_MIN:g}")

        op = c["p_operator"]
        if c["p_value"] == "" and op != "":
            ck.add(row, sid, "p_operator", "must be empty when p_value is empty", op)
        elif c["p_value"] != "" and op == "":  # a value outside the vocabulary is reported by the schema
            ck.add(row, sid, "p_operator",
                   "must be = (exact p) or < (p reported as an inequality) when p_value is given",
                   op, "= or <")

        direction = p["direction"]
        if direction is not None:
            diff = mean1 - mean2 if mean1 is not None and mean2 is not None else md
            if diff is not None and diff != 0 and (diff > 0) != (direction > 0):
                what = "mean1 - mean2" if md is None or mean1 is not None and mean2 is not None else "mean_diff"
                ck.add(row, sid, "direction",
                       f"contradicts the sign of {what} ({diff:+.4g})", c["direction"])
        if direction is not None and es is not None and es != 0 and (es > 0) != (direction > 0):
            ck.add(row, sid, "effect_size",
                   f"its sign contradicts direction {c['direction']} (effect sizes are signed "
                   "group 1 minus group 2)", c["effect_size"])
        if mean1 is not None and mean2 is not None and md is not None and md * (mean1 - mean2) < 0:
            ck.add(row, sid, "mean_diff",
                   f"its sign contradicts mean1 - mean2 ({mean1 - mean2:+.4g})", c["mean_diff"])
        if c["effect_size_type"] and c["effect_size"] == "":
            ck.add(row, sid, "effect_size_type", "is given but effect_size is empty", c["effect_size_type"])

        if c["comparison"] == "post_vs_pre" and n1 is not None and n2 is not None and n1 != n2:
            ck.add(row, sid, "n2", f"must equal n1 ({n1}) for a post_vs_pre row (same group)", c["n2"])
        if studies is not None and sid in studies:
            for col, n in (("n1", n1), ("n2", n2)):
                if col == "n2" and c["comparison"] == "post_vs_pre":
                    continue  # the same group as n1 (n1 = n2 is checked above)
                limit_cols = _group_limit(c["comparison"], c["task"], col)
                limits = [studies[sid].get(lc) for lc in limit_cols]
                if n is None or not limit_cols or any(x is None for x in limits):
                    continue
                if n > sum(limits):
                    name = " + ".join(limit_cols)
                    ck.add(row, sid, col,
                           f"{n} exceeds {name} ({sum(limits)}) of study {sid} in studies.csv "
                           f"(for {c['comparison']}, {col} is bounded by {name}); fix one of them", c[col])

        _check_ci(ck, row, sid, c, p, estimate=("mean_diff", md) if md is not None else ("effect_size", es))

        if any(c.get(col, "") != "" for col in _NUMERIC_OUTCOME_COLUMNS):
            if c["source_url"] == "":
                ck.add(row, sid, "source_url", "must not be empty: every number needs the page it was read on")

        unit = c["unit"]
        if unit and not unit.lower().startswith(UNIT_NOT_STATED) and outcome:
            if outcome not in units:
                units[outcome] = (unit, row)
            elif units[outcome][0] != unit:
                first_unit, first_row = units[outcome]
                ck.add(row, sid, "unit",
                       f"differs from the unit of outcome {outcome} in row {first_row} ({first_unit!r}); "
                       "use one unit per outcome", unit)

        key = (sid, outcome, c["comparison"], c["timepoint"], c["task"])
        if key in keys:
            ck.add(row, sid, None,
                   f"repeats row {keys[key]} (same study_id, outcome, comparison, timepoint, task)")
        else:
            keys[key] = row

        parsed = {
            "comparison": c["comparison"], "n1": n1, "n2": n2, "mean1": mean1, "mean2": mean2,
            "sd1": _positive(p["sd1"]), "sd2": _positive(p["sd2"]), "mean_diff": md,
            "p_value": pv if pv is not None and 0 < pv <= 1 else None, "effect_size": es,
            "effect_size_type": c["effect_size_type"], "direction": direction,
        }
        if not candidate_routes(parsed) and c["extraction_note"] == "":
            ck.add(row, sid, "extraction_note",
                   f"must say why there is no SMD route ({missing_for_routes(parsed)})")


def _suspect_outcome_rows(table: Table, parsed_rows: list[dict], studies: dict[str, dict] | None) -> list[bool]:
    """The rows on which a rule of :func:`_check_outcomes` may fire (at least those; a row left out
    here provably passes every rule, so only its unit and key are remembered).

    The rules' conditions column by column with numpy (NaN for an empty or invalid cell, so a
    comparison with it is False as the rules skip it), the first-unit and repeated-key rules in one
    pass of dictionary look-ups, and the SMD-route rule with
    :func:`meta.review.inputs.study_effects._route_masks` on the values the rule reads."""
    from meta.review.inputs.study_effects import _route_masks

    n = len(parsed_rows)
    cells = [c for _, c in table.rows]

    def num(col: str) -> np.ndarray:
        return np.array([p.get(col) for p in parsed_rows], dtype=float)

    def filled(col: str) -> np.ndarray:
        return np.array([v != "" for v in table.column(col)], dtype=bool)

    def text(col: str) -> np.ndarray:
        return np.array(table.column(col), dtype=object)

    flag = np.zeros(n, dtype=bool)
    sid = text("study_id")
    if studies is not None:
        flag |= np.array([s != "" and s not in studies for s in sid], dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        v = {c: num(c) for c in ("n1", "n2", "mean1", "mean2", "sd1", "sd2", "se", "mean_diff", "p_value",
                                 "effect_size", "direction", "ci_low", "ci_high", "ci_level")}
        for col in ("sd1", "sd2", "se"):
            flag |= v[col] <= 0
        pv = v["p_value"]
        flag |= ~np.isnan(pv) & ~((pv > 0) & (pv <= 1) & (pv >= P_MIN))
        flag |= filled("p_value") != filled("p_operator")
        d, m1, m2, md, es = v["direction"], v["mean1"], v["mean2"], v["mean_diff"], v["effect_size"]
        diff = np.where(np.isnan(m1) | np.isnan(m2), md, m1 - m2)
        has_d = ~np.isnan(d)
        flag |= has_d & ~np.isnan(diff) & (diff != 0) & ((diff > 0) != (d > 0))
        flag |= has_d & ~np.isnan(es) & (es != 0) & ((es > 0) != (d > 0))
        flag |= md * (m1 - m2) < 0
        flag |= filled("effect_size_type") & ~filled("effect_size")
        comparison, task = text("comparison"), text("task")
        pre_post = comparison == "post_vs_pre"
        n1, n2 = v["n1"], v["n2"]
        flag |= pre_post & (n1 != n2) & ~np.isnan(n1) & ~np.isnan(n2)
        if studies is not None:
            def size(col: str) -> np.ndarray:
                return np.array([studies[s].get(col) if s in studies else None for s in sid], dtype=float)

            pfp, control = size("n_pfp"), size("n_control")
            nan = np.full(n, np.nan)
            lim1 = np.where(comparison == "pfp_vs_control", pfp,
                            np.where(pre_post, np.where(task == "exhaustive_run_control_group", control, pfp),
                                     np.where(comparison == "intervention_vs_control", pfp, nan)))
            lim2 = np.where(comparison == "pfp_vs_control", control,
                            np.where(comparison == "intervention_vs_control", pfp + control, nan))
            flag |= (n1 > lim1) | (n2 > lim2)
        lo, hi, level = v["ci_low"], v["ci_high"], v["ci_level"]
        has_lo, has_hi = filled("ci_low"), filled("ci_high")
        flag |= has_lo != has_hi
        flag |= (has_lo | has_hi) != filled("ci_level")
        flag |= ~(lo < hi) & ~np.isnan(lo) & ~np.isnan(hi)
        flag |= hi - lo <= CI_MIN_RELATIVE_WIDTH * np.maximum(np.abs(lo), np.abs(hi))
        low, high = CI_LEVEL_RANGE
        flag |= ~np.isnan(level) & ~((level > low) & (level < high))
        est = np.where(np.isnan(md), es, md)
        flag |= ~np.isnan(lo) & ~np.isnan(hi) & ~np.isnan(est) & ~((lo <= est) & (est <= hi))
        numbers = np.zeros(n, dtype=bool)
        for col in _NUMERIC_OUTCOME_COLUMNS:
            numbers |= filled(col)
        flag |= numbers & ~filled("source_url")
        positive = {col: np.where(v[col] > 0, v[col], np.nan) for col in ("sd1", "sd2")}
        route_columns = {"comparison": comparison, "n1": n1, "n2": n2, "mean1": m1, "mean2": m2,
                         "mean_diff": md, "effect_size": es, "direction": d,
                         "p_value": np.where((pv > 0) & (pv <= 1), pv, np.nan),
                         "effect_size_type": text("effect_size_type"), **positive}
    any_route = np.zeros(n, dtype=bool)
    for mask in _route_masks(route_columns, n).values():
        any_route |= mask
    flag |= ~any_route & ~filled("extraction_note")
    units: dict[str, str] = {}
    keys: set[tuple] = set()
    for i, c in enumerate(cells):
        unit, outcome = c["unit"], c["outcome"]
        if unit and outcome and not unit.lower().startswith(UNIT_NOT_STATED):
            if units.setdefault(outcome, unit) != unit:
                flag[i] = True
        key = (c["study_id"], outcome, c["comparison"], c["timepoint"], c["task"])
        if key in keys:
            flag[i] = True
        keys.add(key)
    return flag.tolist()


def _check_ci(ck: CellChecker, row: int, sid: str | None, c: dict, p: dict, *, estimate: tuple[str, float | None]) -> None:
    """ci_low/ci_high together, lower < upper, ci_level in (0, 1) and given with a CI; the CI should
    contain the row's own estimate (a warning: the CI is then not used)."""
    lo, hi, level = p.get("ci_low"), p.get("ci_high"), p.get("ci_level")
    for a, b in (("ci_low", "ci_high"), ("ci_high", "ci_low")):
        if c.get(a, "") != "" and c.get(b, "") == "":
            ck.add(row, sid, b, f"must be given together with {a} (a CI needs both limits)")
    if lo is not None and hi is not None and not lo < hi:
        ck.add(row, sid, "ci_high", f"must be > ci_low ({c['ci_low']})", c["ci_high"])
        lo = hi = None
    elif lo is not None and hi is not None and hi - lo <= CI_MIN_RELATIVE_WIDTH * max(abs(lo), abs(hi)):
        ck.add(row, sid, "ci_high", f"is so close to ci_low ({c['ci_low']}) that the CI's width is lost in "
               "rounding; check the printed limits", c["ci_high"])
        lo = hi = None
    low, high = CI_LEVEL_RANGE
    if level is not None and not low < level < high:
        if 50 < level < 100:
            hint = f"it looks like a percentage: write {level / 100:g} for a {level:g}% CI"
        elif 0 < level <= low:
            hint = f"it looks like alpha: a CI at alpha {level:g} has level {1 - level:g}"
        else:
            hint = "e.g. 0.95 for a 95% CI"
        ck.add(row, sid, "ci_level", f"must be the CI's level as a proportion between {low:g} and {high:g} "
               f"({hint})", c["ci_level"], f"{low:g} < x < {high:g}")
    has_ci = c.get("ci_low", "") != "" or c.get("ci_high", "") != ""
    if has_ci and c.get("ci_level", "") == "":
        ck.add(row, sid, "ci_level", "must be given when ci_low/ci_high are (the CI's level, e.g. 0.95)")
    elif not has_ci and c.get("ci_level", "") != "":
        ck.add(row, sid, "ci_level", "is given but ci_low and ci_high are empty", c["ci_level"])
    name, est = estimate
    if lo is not None and hi is not None and est is not None and not lo <= est <= hi:
        ck.add(row, sid, "ci_low",
               f"CI does not contain the estimate: {name} {est:g} is outside [{lo:g}, {hi:g}]; check the "
               "printed values (the CI is not used)", severity="warning")


def _positive(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) and x > 0 else None


def _check_claims(table: Table, vocab, problems: list[Problem]) -> None:
    ck = CellChecker(table, problems)
    check_schema(table, vocab, problems, sid_column=None)
    first_row: dict[str, int] = {}
    for row, c in table.rows:
        cid = c["claim_id"]
        if cid:
            if cid in first_row:
                ck.add(row, None, "claim_id", f"duplicates the claim_id of row {first_row[cid]}", cid)
            else:
                first_row[cid] = row


def _check_published_pooled(table: Table, vocab, problems: list[Problem]) -> None:
    ck = CellChecker(table, problems)
    parsed_rows = check_schema(table, vocab, problems, sid_column=None)
    first_row: dict[tuple, int] = {}
    for (row, c), p in zip(table.rows, parsed_rows):
        key = tuple(c.get(k, "") for k in PUBLISHED_KEY)
        if c["source_id"]:
            if key in first_row:
                ck.add(row, None, "source_id",
                       f"repeats row {first_row[key]}: one row per pooled estimate, told apart by "
                       f"{', '.join(PUBLISHED_KEY)}", " / ".join(key))
            else:
                first_row[key] = row
        _check_ci(ck, row, None, c, p, estimate=("smd", p.get("smd")))


# --------------------------------------------------------------------------- public API


@dataclass
class CheckedFolder:
    """A data folder read and checked once: every problem, the tables as read, the vocabulary."""

    problems: list[Problem]
    tables: dict[str, Table]
    vocab: dict[str, tuple[str, ...]] | None
    studies: dict[str, dict] | None = None


def check_folder(path: str | Path) -> CheckedFolder:
    """Read every data file of the folder once and check it; the one pass that :func:`validate`,
    :func:`load` and the analysis declarations (:mod:`meta.review.inputs.analysis`) share."""
    with collector_paused():  # no reference cycles are made here (see collector_paused)
        return _check_folder(Path(path))


def _check_folder(folder: Path) -> CheckedFolder:
    problems: list[Problem] = []
    if not folder.is_dir():
        problems.append(Problem(str(folder), None, None, None,
                                "data folder not found (it should hold studies.csv, outcomes.csv, "
                                "review_claims.csv and vocabulary.csv)"))
        return CheckedFolder(problems, {}, None)
    tables: dict[str, Table] = {}
    files = [STUDIES_FILE, OUTCOMES_FILE, CLAIMS_FILE, VOCABULARY_FILE]
    if (folder / PUBLISHED_POOLED_FILE).exists():
        files.append(PUBLISHED_POOLED_FILE)
    for name in files:
        where = folder
        if name == VOCABULARY_FILE and not (folder / name).exists() and DEFAULT_VOCABULARY.is_file():
            where = DEFAULT_VOCABULARY.parent  # a folder without its own vocabulary uses the project's
        t = read_table(where, name, problems)
        if t is not None and check_columns(t, required_columns(name), problems):
            tables[name] = t
            check_known_columns(t, problems)
    vocab = vocabulary_of(folder, problems, tables[VOCABULARY_FILE]) if VOCABULARY_FILE in tables else None
    for t in tables.values():
        check_placeholders(t, problems)
        check_invisible(t, problems)
        check_formulas(t, problems, vocab)
    studies = None
    if STUDIES_FILE in tables:
        studies = _check_studies(tables[STUDIES_FILE], vocab, problems)
    if OUTCOMES_FILE in tables:
        _check_outcomes(tables[OUTCOMES_FILE], studies, vocab, problems)
    if CLAIMS_FILE in tables:
        _check_claims(tables[CLAIMS_FILE], vocab, problems)
    if PUBLISHED_POOLED_FILE in tables:
        _check_published_pooled(tables[PUBLISHED_POOLED_FILE], vocab, problems)
    return CheckedFolder(problems, tables, vocab, studies)


def validate(path: str | Path = "data") -> list[Problem]:
    """Check the data folder and return every problem found, errors and warnings
    (``Problem.severity``; empty list = valid and clean).

    Never raises for bad data and never writes to the files.
    """
    return check_folder(path).problems


def _frame(table: Table, ints: tuple[str, ...] = (), floats: tuple[str, ...] = ()) -> pd.DataFrame:
    """Typed frame of a validated table; types from :data:`SCHEMA` (``ints``/``floats`` add to them)."""
    specs = {c.name: c.kind for c in SCHEMA.get(table.name, ())}
    ints = tuple(ints) + tuple(n for n, k in specs.items() if k in ("int", "direction"))
    floats = tuple(floats) + tuple(n for n, k in specs.items() if k == "number")
    index = pd.Index([r for r, _ in table.rows], name="row", dtype="int64")
    data = {}
    for col in table.header:
        cells = table.column(col)
        if col in ints:
            vals = [None if v == "" else int(v) for v in cells]
            data[col] = pd.array(vals, dtype="Int64")
        elif col in floats:
            data[col] = pd.array([math.nan if v == "" else float(v) for v in cells], dtype="float64")
        else:
            data[col] = pd.array([pd.NA if v == "" else v for v in cells], dtype="string")
    return pd.DataFrame(data, index=index)


def load(path: str | Path = "data", *, checked: CheckedFolder | None = None) -> Dataset:
    """Load and validate the data folder.

    Returns a :class:`Dataset`; raises :class:`DataError` (a ``ValueError``)
    listing every error if anything is invalid (warnings are kept in
    ``Dataset.warnings``). ``checked``: the folder as :func:`check_folder` already read it
    (it is not read again).
    """
    checked = check_folder(path) if checked is None else checked
    errs = errors(checked.problems)
    if errs:
        raise DataError(errs)
    with collector_paused():  # typed frames of every cell: no reference cycles (see collector_paused)
        return _load(path, checked)


def _load(path: str | Path, checked: CheckedFolder) -> Dataset:
    tables = checked.tables
    studies = _frame(tables[STUDIES_FILE])
    if "review_set" not in studies:
        studies["review_set"] = pd.array([DEFAULT_REVIEW_SET] * len(studies), dtype="string")
    else:
        studies["review_set"] = studies["review_set"].fillna(DEFAULT_REVIEW_SET)
    outcomes = _frame(tables[OUTCOMES_FILE])
    for col in ("ci_low", "ci_high", "ci_level", "se"):
        if col not in outcomes:
            outcomes[col] = pd.array([math.nan] * len(outcomes), dtype="float64")
    claims = _frame(tables[CLAIMS_FILE])
    vocabulary = _frame(tables[VOCABULARY_FILE])
    pooled = _frame(tables[PUBLISHED_POOLED_FILE]) if PUBLISHED_POOLED_FILE in tables else None
    warnings = tuple(p for p in checked.problems if not p.is_error)
    return Dataset(studies=studies, outcomes=outcomes, claims=claims, path=Path(path),
                   vocabulary=vocabulary, published_pooled=pooled, warnings=warnings)
