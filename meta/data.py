"""Load and validate the curated data: ``studies.csv``, ``outcomes.csv``, ``review_claims.csv``.

Every problem found is reported with the file, the row number as a spreadsheet
shows it (header = row 1, first data row = row 2), the study and the column, so
a curator can go straight to the cell::

    outcomes.csv, row 14 (study noehren2013), column sd1: must be > 0, got -3.1

Validation only ever *reads* the files (opened in binary read mode); it never
rewrites, normalises or re-saves them.  Files may be UTF-8 with or without a
byte-order mark, with LF or CRLF line ends.  Leading and trailing spaces around
a cell are ignored.  An empty cell means "unknown" (never 0).

Rules checked (one test per rule in ``tests/test_data.py``):

* no placeholders: a cell that is wholly in square brackets (``[title not
  seen]``) is refused in every file -- unknown is an empty cell;

* files and columns: the folder and the three files exist, decode as UTF-8,
  parse as CSV with the header's number of fields on every row, and hold every
  required column (extra columns are allowed and kept as text);
* ``studies.csv``: ``study_id`` present, unique and lowercase author + 4-digit
  year + optional letter (``souza2009b``), its year equal to ``year``;
  ``cohort_id``, ``authors``, ``year`` and ``review_match_reason`` not empty
  (``title``, ``citation``, ``doi``, ``pmid``, ``source_url`` may be empty
  when no page gave them); ``year``, ``n_pfp`` (>= 1), ``n_control`` (>= 0),
  ``pmid`` whole numbers; vocabularies of ``design``, ``population_sex``,
  ``runners``, ``review_match``; ``source_url``/``doi`` well formed;
  ``n_pfp``/``n_control`` only with a ``source_url``;
* ``outcomes.csv``: ``study_id`` names a study of ``studies.csv``;
  ``outcome`` is snake_case; ``comparison`` in the vocabulary; numbers parse as
  numbers (``NA``/``nan`` are refused: leave the cell empty); ``n1``, ``n2``
  whole numbers >= 2; ``sd1``, ``sd2`` > 0; 0 < ``p_value`` <= 1;
  ``p_operator`` is ``=`` or ``<`` and is given exactly when ``p_value`` is;
  ``direction`` is +1 or -1 (or empty) and agrees with the sign of
  ``mean1 - mean2`` / ``mean_diff`` / ``effect_size``; ``mean_diff`` agrees
  in sign with ``mean1 - mean2``; ``effect_size_type`` in its vocabulary and
  only with an ``effect_size``; for ``post_vs_pre`` rows n1 = n2; one unit per outcome
  across rows (empty units and units starting with ``not stated`` are
  unknown and conflict with none); no two rows with the same study, outcome, comparison, timepoint
  and task; every row with a number has a ``source_url``; every row either
  supports at least one SMD route (see :mod:`meta.study_effects`) or its
  ``extraction_note`` says why not;
* ``review_claims.csv``: ``claim_id`` present and unique; ``outcome``,
  ``population``, ``evidence_level`` and ``source_url`` not empty;
  ``comparison`` in the vocabulary; ``expected_direction`` is +1 or -1.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

__all__ = [
    "Problem",
    "DataError",
    "Dataset",
    "load",
    "validate",
    "validate_cli",
    "STUDY_COLUMNS",
    "OUTCOME_COLUMNS",
    "CLAIM_COLUMNS",
    "DESIGNS",
    "POPULATION_SEXES",
    "RUNNERS",
    "REVIEW_MATCHES",
    "COMPARISONS",
    "P_OPERATORS",
    "EFFECT_SIZE_TYPES",
]

STUDIES_FILE = "studies.csv"
OUTCOMES_FILE = "outcomes.csv"
CLAIMS_FILE = "review_claims.csv"

STUDY_COLUMNS = (
    "study_id", "cohort_id", "authors", "year", "title", "journal", "citation", "doi", "pmid",
    "design", "population_sex", "runners", "n_pfp", "n_control", "review_match",
    "review_match_reason", "source_url", "notes",
)
OUTCOME_COLUMNS = (
    "study_id", "outcome", "comparison", "timepoint", "task", "unit", "n1", "mean1", "sd1",
    "n2", "mean2", "sd2", "mean_diff", "p_value", "p_operator", "effect_size",
    "effect_size_type", "direction", "source_url", "source_locator", "extraction_note",
)
CLAIM_COLUMNS = (
    "claim_id", "outcome", "comparison", "population", "expected_direction", "evidence_level",
    "source_url",
)

DESIGNS = ("prospective", "case-control", "intervention-single-group", "intervention-controlled")
POPULATION_SEXES = ("female", "male", "mixed", "unclear")
RUNNERS = ("yes", "no", "unclear")
REVIEW_MATCHES = ("likely", "possible", "unlikely", "excluded")
COMPARISONS = ("pfp_vs_control", "post_vs_pre", "intervention_vs_control")
P_OPERATORS = ("=", "<")
# cohen_d / hedges_g / unspecified are used as SMDs, t as a t statistic; the others are recorded
# truthfully but never converted (see meta.study_effects).
EFFECT_SIZE_TYPES = ("cohen_d", "hedges_g", "unspecified", "t", "odds_ratio", "risk_ratio", "correlation")

# Typed columns of the loaded frames (everything else is nullable text).
_STUDY_INTS = ("year", "n_pfp", "n_control")
_OUTCOME_INTS = ("n1", "n2", "direction")
_OUTCOME_FLOATS = ("mean1", "sd1", "mean2", "sd2", "mean_diff", "p_value", "effect_size")
_CLAIM_INTS = ("expected_direction",)

STUDY_ID_PATTERN = re.compile(r"^[a-z]+(\d{4})[a-z]?$")
OUTCOME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
URL_PATTERN = re.compile(r"^https?://\S+$")
DOI_PATTERN = re.compile(r"^10\.\d{4,9}/\S+$")
UNIT_NOT_STATED = "not stated"  # a unit starting with this is unknown: it conflicts with no other
PLACEHOLDER_PATTERN = re.compile(r"^\[.*\]$", re.DOTALL)
_INT_PATTERN = re.compile(r"^[+-]?\d+$")
_MISSING_WORDS = {"na", "n/a", "nan", "none", "null", "-", "–", "?", "inf", "-inf", "+inf", "infinity"}


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data, located as precisely as possible.

    ``row`` is the spreadsheet row (header = 1, first data row = 2) or ``None``
    for a problem with a whole file or column; ``got`` is the offending cell as
    written (``None`` when no single cell is at fault); ``expected`` says what
    would be valid.
    """

    file: str
    row: int | None
    study_id: str | None
    column: str | None
    message: str
    got: str | None = None
    expected: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
            if self.study_id:
                where += f" (study {self.study_id})"
        if self.column:
            where += f", column {self.column}"
        text = f"{where}: {self.message}"
        if self.got is not None:
            text += f", got {_show(self.got)}"
        return text


def _show(value: str) -> str:
    if value == "":
        return "an empty cell"
    try:
        float(value)
        return value
    except ValueError:
        return repr(value)


class DataError(ValueError):
    """Raised by :func:`load` when the data are invalid; ``problems`` lists every problem."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        n = len(self.problems)
        head = "\n".join(str(p) for p in self.problems[:20])
        more = f"\n... and {n - 20} more" if n > 20 else ""
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in the data:\n{head}{more}")


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class Dataset:
    """The three validated tables.

    Index of each frame: the spreadsheet row number (name ``row``), so any
    derived row can be traced back to its cell.  Whole numbers are ``Int64``
    (nullable), measurements ``float64`` (NaN = not reported), text
    ``string`` (``<NA>`` = empty cell).
    """

    studies: pd.DataFrame
    outcomes: pd.DataFrame
    claims: pd.DataFrame
    path: Path = field(default=Path("data"))

    def summary(self) -> str:
        """One line: counts of studies, outcome rows (and how many have an SMD route), claims."""
        from meta.study_effects import candidate_routes

        routes = [candidate_routes(r) for r in self.outcomes.to_dict("records")]
        usable = sum(bool(r) for r in routes)
        paired = sum(r == ["paired"] for r in routes)
        needs_r = f", {paired} of them paired rows that need a pre-post r" if paired else ""
        return (
            f"data OK: {len(self.studies)} studies, {len(self.outcomes)} outcome rows "
            f"({usable} with a usable SMD route{needs_r}), {len(self.claims)} claims"
        )


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Table:
    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, dict[str, str]], ...]  # (spreadsheet row, {column: stripped cell})


def _read_table(folder: Path, name: str, problems: list[Problem]) -> _Table | None:
    """Read one CSV as text without modifying it; append problems and return None if unreadable."""
    path = folder / name
    if not path.is_file():
        problems.append(Problem(name, None, None, None, f"file not found in {folder}/"))
        return None
    try:
        with open(path, "rb") as fh:  # read-only: validation never writes
            raw = fh.read()
    except OSError as exc:
        problems.append(Problem(name, None, None, None, f"cannot be read ({exc.strerror or exc})"))
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(
            Problem(name, None, None, None,
                    f"is not valid UTF-8 (byte {exc.start}, line {line}); save it as UTF-8")
        )
        return None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    try:
        for rec in reader:
            records.append(rec)
    except csv.Error as exc:
        problems.append(Problem(name, None, None, None,
                                f"is not a readable CSV file (line {reader.line_num}: {exc}; "
                                "check the double quotes)"))
        return None
    if not records or not any(c.strip() for c in records[0]):
        problems.append(Problem(name, None, None, None, "is empty: the first row must be the header"))
        return None
    header = tuple(c.strip() for c in records[0])
    seen: set[str] = set()
    for col in header:
        if col == "":
            problems.append(Problem(name, 1, None, None, "header has an empty column name"))
        elif col in seen:
            problems.append(Problem(name, 1, None, col, "column appears twice in the header"))
        seen.add(col)
    rows = []
    for i, rec in enumerate(records[1:], start=2):
        if not any(c.strip() for c in rec):
            continue  # blank line
        if len(rec) != len(header):
            problems.append(
                Problem(name, i, None, None,
                        f"has {len(rec)} fields but the header has {len(header)}"
                        " (a comma inside a cell needs double quotes)")
            )
            continue
        rows.append((i, {h: c.strip() for h, c in zip(header, rec)}))
    return _Table(name, header, tuple(rows))


def _check_columns(table: _Table, required: tuple[str, ...], problems: list[Problem]) -> bool:
    missing = [c for c in required if c not in table.header]
    for col in missing:
        problems.append(Problem(table.name, None, None, col, "required column is missing from the header"))
    return not missing


# --------------------------------------------------------------------------- cell checks


class _Checker:
    """Collects problems for one table, one cell at a time."""

    def __init__(self, table: _Table, problems: list[Problem]):
        self.table = table
        self.problems = problems

    def add(self, row: int, sid: str | None, column: str | None, message: str,
            got: str | None = None, expected: str | None = None) -> None:
        self.problems.append(Problem(self.table.name, row, sid or None, column, message, got, expected))

    def required(self, row, sid, cells, column) -> bool:
        if cells[column] == "":
            self.add(row, sid, column, "must not be empty")
            return False
        return True

    def vocab(self, row, sid, cells, column, allowed, *, allow_empty=False) -> None:
        v = cells[column]
        if v == "" and allow_empty:
            return
        if v not in allowed:
            exp = "one of " + ", ".join(allowed)
            self.add(row, sid, column, f"must be {exp}", v, exp)

    def number(self, row, sid, cells, column) -> float | None:
        """Parse a real number; None if empty or invalid (invalid is reported)."""
        v = cells[column]
        if v == "":
            return None
        if v.lower() in _MISSING_WORDS:
            self.add(row, sid, column, "must be a number; leave the cell empty when unknown", v, "a number")
            return None
        try:
            x = float(v)
        except ValueError:
            hint = " (use . as the decimal mark)" if re.fullmatch(r"[+-]?\d+,\d+", v) else ""
            self.add(row, sid, column, f"must be a number{hint}", v, "a number")
            return None
        if not math.isfinite(x):
            self.add(row, sid, column, "must be a finite number", v, "a number")
            return None
        return x

    def integer(self, row, sid, cells, column, *, minimum=None) -> int | None:
        v = cells[column]
        if v == "":
            return None
        if not _INT_PATTERN.match(v):
            if v.lower() in _MISSING_WORDS:
                msg = "must be a whole number; leave the cell empty when unknown"
            else:
                msg = "must be a whole number"
            self.add(row, sid, column, msg, v, "a whole number")
            return None
        x = int(v)
        if minimum is not None and x < minimum:
            self.add(row, sid, column, f"must be >= {minimum}", v, f">= {minimum}")
            return None
        return x

    def url(self, row, sid, cells, column) -> None:
        v = cells[column]
        if v and not URL_PATTERN.match(v):
            self.add(row, sid, column, "must be a web address starting with http:// or https://", v)


def _parse_direction(value: str) -> int | None:
    return {"+1": 1, "1": 1, "-1": -1}.get(value)


# --------------------------------------------------------------------------- per-file rules


def _check_studies(table: _Table, problems: list[Problem]) -> set[str]:
    ck = _Checker(table, problems)
    first_row: dict[str, int] = {}
    for row, c in table.rows:
        sid = c["study_id"]
        if ck.required(row, None, c, "study_id"):
            m = STUDY_ID_PATTERN.match(sid)
            if not m:
                ck.add(row, sid, "study_id",
                       "must be lowercase first-author surname + 4-digit year + optional letter, "
                       "e.g. souza2009b", sid, "like souza2009b")
            if sid in first_row:
                ck.add(row, sid, "study_id", f"duplicates the study_id of row {first_row[sid]}", sid)
            else:
                first_row[sid] = row
        for col in ("cohort_id", "authors", "review_match_reason"):
            ck.required(row, sid, c, col)
        if ck.required(row, sid, c, "year"):
            year = ck.integer(row, sid, c, "year")
            if year is not None and not 1900 <= year <= 2100:
                ck.add(row, sid, "year", "must be a 4-digit publication year", c["year"])
            elif year is not None and (m := STUDY_ID_PATTERN.match(sid)) and int(m.group(1)) != year:
                ck.add(row, sid, "year", f"does not match the year in study_id {sid}", c["year"])
        ck.integer(row, sid, c, "n_pfp", minimum=1)
        ck.integer(row, sid, c, "n_control", minimum=0)
        if (c["n_pfp"] or c["n_control"]) and c["source_url"] == "":
            ck.add(row, sid, "source_url",
                   "must not be empty when n_pfp or n_control is given: every number needs the page "
                   "it was read on")
        ck.integer(row, sid, c, "pmid", minimum=1)
        if c["doi"] and not DOI_PATTERN.match(c["doi"]):
            ck.add(row, sid, "doi", "must be a bare DOI like 10.1016/j.gaitpost.2015.11.018", c["doi"])
        ck.vocab(row, sid, c, "design", DESIGNS)
        ck.vocab(row, sid, c, "population_sex", POPULATION_SEXES)
        ck.vocab(row, sid, c, "runners", RUNNERS)
        ck.vocab(row, sid, c, "review_match", REVIEW_MATCHES)
        ck.url(row, sid, c, "source_url")
    return set(first_row)


_NUMERIC_OUTCOME_COLUMNS = ("n1", "mean1", "sd1", "n2", "mean2", "sd2", "mean_diff", "p_value", "effect_size")


def _check_outcomes(table: _Table, study_ids: set[str] | None, problems: list[Problem]) -> None:
    from meta.study_effects import candidate_routes, missing_for_routes

    ck = _Checker(table, problems)
    units: dict[str, tuple[str, int]] = {}  # outcome -> (first unit, row)
    keys: dict[tuple, int] = {}
    for row, c in table.rows:
        sid = c["study_id"]
        if ck.required(row, None, c, "study_id") and study_ids is not None and sid not in study_ids:
            ck.add(row, sid, "study_id", "names no study in studies.csv", sid)
        outcome = c["outcome"]
        if ck.required(row, sid, c, "outcome") and not OUTCOME_PATTERN.match(outcome):
            ck.add(row, sid, "outcome", "must be snake_case (lowercase letters, digits, _)", outcome)
        ck.vocab(row, sid, c, "comparison", COMPARISONS)

        n1 = ck.integer(row, sid, c, "n1", minimum=2)
        n2 = ck.integer(row, sid, c, "n2", minimum=2)
        mean1 = ck.number(row, sid, c, "mean1")
        mean2 = ck.number(row, sid, c, "mean2")
        md = ck.number(row, sid, c, "mean_diff")
        for col in ("sd1", "sd2"):
            sd = ck.number(row, sid, c, col)
            if sd is not None and sd <= 0:
                ck.add(row, sid, col, "must be > 0", c[col], "> 0")
        p = ck.number(row, sid, c, "p_value")
        if p is not None and not 0 < p <= 1:
            ck.add(row, sid, "p_value", "must be > 0 and <= 1", c["p_value"], "0 < p <= 1")
        es = ck.number(row, sid, c, "effect_size")

        op = c["p_operator"]
        if c["p_value"] == "" and op != "":
            ck.add(row, sid, "p_operator", "must be empty when p_value is empty", op)
        elif c["p_value"] != "" and op not in P_OPERATORS:
            ck.add(row, sid, "p_operator",
                   "must be = (exact p) or < (p reported as an inequality) when p_value is given",
                   op, "= or <")

        direction = None
        if c["direction"] != "":
            direction = _parse_direction(c["direction"])
            if direction is None:
                ck.add(row, sid, "direction", "must be +1 or -1, or empty when unknown",
                       c["direction"], "+1 or -1")
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
        ck.vocab(row, sid, c, "effect_size_type", EFFECT_SIZE_TYPES, allow_empty=True)

        if c["comparison"] == "post_vs_pre" and n1 is not None and n2 is not None and n1 != n2:
            ck.add(row, sid, "n2", f"must equal n1 ({n1}) for a post_vs_pre row (same group)", c["n2"])

        if any(c[col] != "" for col in _NUMERIC_OUTCOME_COLUMNS):
            if c["source_url"] == "":
                ck.add(row, sid, "source_url", "must not be empty: every number needs the page it was read on")
        ck.url(row, sid, c, "source_url")

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
            "sd1": _positive(c["sd1"]), "sd2": _positive(c["sd2"]), "mean_diff": md,
            "p_value": p if p is not None and 0 < p <= 1 else None, "effect_size": es,
            "effect_size_type": c["effect_size_type"], "direction": direction,
        }
        if not candidate_routes(parsed) and c["extraction_note"] == "":
            ck.add(row, sid, "extraction_note",
                   f"must say why there is no SMD route ({missing_for_routes(parsed)})")


def _positive(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) and x > 0 else None


def _check_claims(table: _Table, problems: list[Problem]) -> None:
    ck = _Checker(table, problems)
    first_row: dict[str, int] = {}
    for row, c in table.rows:
        cid = c["claim_id"]
        if ck.required(row, None, c, "claim_id"):
            if cid in first_row:
                ck.add(row, None, "claim_id", f"duplicates the claim_id of row {first_row[cid]}", cid)
            else:
                first_row[cid] = row
        for col in ("outcome", "population", "evidence_level", "source_url"):
            ck.required(row, None, c, col)
        ck.vocab(row, None, c, "comparison", COMPARISONS)
        v = c["expected_direction"]
        if _parse_direction(v) is None:
            ck.add(row, None, "expected_direction", "must be +1 or -1", v, "+1 or -1")
        ck.url(row, None, c, "source_url")


def _check_placeholders(table: _Table, problems: list[Problem]) -> None:
    """A cell that is wholly ``[...]`` (e.g. ``[title not seen]``) stands in for an unknown value."""
    for row, c in table.rows:
        for col, v in c.items():
            if PLACEHOLDER_PATTERN.match(v):
                problems.append(Problem(
                    table.name, row, c.get("study_id") or None, col,
                    "looks like a placeholder; leave the cell empty when the value was not seen "
                    "(and say so in the notes)", v, "the value as printed, or an empty cell"))


# --------------------------------------------------------------------------- public API


def _validate(path: str | Path) -> tuple[list[Problem], dict[str, _Table]]:
    folder = Path(path)
    problems: list[Problem] = []
    if not folder.is_dir():
        problems.append(Problem(str(folder), None, None, None,
                                "data folder not found (it should hold studies.csv, outcomes.csv "
                                "and review_claims.csv)"))
        return problems, {}
    tables: dict[str, _Table] = {}
    for name, required in ((STUDIES_FILE, STUDY_COLUMNS), (OUTCOMES_FILE, OUTCOME_COLUMNS),
                           (CLAIMS_FILE, CLAIM_COLUMNS)):
        t = _read_table(folder, name, problems)
        if t is not None and _check_columns(t, required, problems):
            tables[name] = t
    for t in tables.values():
        _check_placeholders(t, problems)
    study_ids = None
    if STUDIES_FILE in tables:
        study_ids = _check_studies(tables[STUDIES_FILE], problems)
    if OUTCOMES_FILE in tables:
        _check_outcomes(tables[OUTCOMES_FILE], study_ids, problems)
    if CLAIMS_FILE in tables:
        _check_claims(tables[CLAIMS_FILE], problems)
    return problems, tables


def validate(path: str | Path = "data") -> list[Problem]:
    """Check the data folder and return every problem found (empty list = valid).

    Never raises for bad data and never writes to the files.
    """
    return _validate(path)[0]


def _frame(table: _Table, ints: tuple[str, ...], floats: tuple[str, ...]) -> pd.DataFrame:
    index = pd.Index([r for r, _ in table.rows], name="row", dtype="int64")
    data = {}
    for col in table.header:
        cells = [c[col] for _, c in table.rows]
        if col in ints:
            vals = [None if v == "" else int(v) for v in cells]
            data[col] = pd.array(vals, dtype="Int64")
        elif col in floats:
            data[col] = [math.nan if v == "" else float(v) for v in cells]
        else:
            data[col] = pd.array([pd.NA if v == "" else v for v in cells], dtype="string")
    df = pd.DataFrame(data, index=index)
    for col in floats:
        df[col] = df[col].astype("float64")
    return df


def load(path: str | Path = "data") -> Dataset:
    """Load and validate the data folder.

    Returns a :class:`Dataset`; raises :class:`DataError` (a ``ValueError``)
    listing every problem if anything is invalid.
    """
    problems, tables = _validate(path)
    if problems:
        raise DataError(problems)
    studies = _frame(tables[STUDIES_FILE], _STUDY_INTS, ())
    outcomes = _frame(tables[OUTCOMES_FILE], _OUTCOME_INTS, _OUTCOME_FLOATS)
    claims = _frame(tables[CLAIMS_FILE], _CLAIM_INTS, ())
    return Dataset(studies=studies, outcomes=outcomes, claims=claims, path=Path(path))


def validate_cli(path: str | Path) -> int:
    """``meta validate --data DIR``: print one summary line (exit 0) or every problem (exit 1)."""
    try:
        problems, _ = _validate(path)
        if not problems:
            print(load(path).summary())
            return 0
    except Exception as exc:  # never a traceback at the command line
        print(f"error: could not validate {path}: {type(exc).__name__}: {exc}")
        return 1
    for p in problems:
        print(p)
    print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found in {path}")
    return 1
