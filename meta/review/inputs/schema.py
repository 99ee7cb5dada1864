"""Validation in one place: the data files' columns and vocabularies as data, and the checks that read them.

:data:`SCHEMA` declares, per file, every documented column (required in the header or
optional, kind, cell required, minimum, vocabulary); one generic check (:func:`check_schema`)
reads it, and ``data/README.md`` documents the same columns (a test keeps them in step). The
values the code interprets (designs, comparisons, p operators, effect-size types, ...) are
named here; ``data/vocabulary.csv`` lists every allowed value with its meaning, and is what
the validator checks cells against. The number grammar, the study-id, URL and DOI patterns and
the spreadsheet formula starts are here too, with the checks every input file shares:
:class:`Problem` (file, row, column, what would be valid), :func:`read_table` (read without
modifying), :func:`check_columns`, :class:`CellChecker`, vocabulary reading and suggestions,
:func:`check_placeholders`, :func:`check_formulas`. :mod:`meta.review.inputs.data` (the data
files' own rules) and :mod:`meta.review.inputs.analysis` (``analyses.csv``) both check through them.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import gc
import io
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from meta.review.inputs.bundled import bundled_data

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

# Values the code interprets (meta.review.inputs.study_effects, meta.review.reproduce); vocabulary.csv lists them with
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
# truthfully but never converted (see meta.review.inputs.study_effects).
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
        # study quality (meta.evidence_synthesis): empty = unknown, the reason in quality_source
        _c("quality_scale", header=False), _c("quality_score", "number", header=False),
        _c("quality_max", "number", header=False), _c("quality_source", header=False),
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
    # the declarations of meta.review.inputs.analysis (read and checked there, with the same reader)
    "analyses.csv": (
        _c("analysis_id", cell=True), _c("title"), _c("outcome", "vocab", cell=True),
        _c("comparison", "vocab", cell=True), _c("filters"), _c("smd_convention"), _c("method"),
        _c("favours_left"), _c("favours_right"), _c("claim_ids"), _c("notes"),
        # optional (meta.review.inputs.analysis checks them): small-study tests below k = 10, an assumed pre-post r
        _c("small_study_min_k", "int", header=False, minimum=3), _c("prepost_r", "number", header=False),
        _c("prepost_r_source", header=False),
        _c("es_scale", header=False),  # the scale pooled (meta.review.inputs.analysis.ES_SCALES); empty = the comparison's
        _c("task", header=False), _c("evidence_rule", header=False),  # checked in meta.review.inputs.analysis
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
DEFAULT_VOCABULARY = bundled_data() / VOCABULARY_FILE  # used by a data folder without its own vocabulary.csv
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

#: largest magnitude of any number cell: far beyond any measurement, SD, n or p of this field, and small
#: enough that squares and products of two cells stay exact to the printed digits in double precision
NUMBER_MAX = 1e12
#: largest whole number (n1, n2, n_pfp, ...): no cohort is larger, and N, n1 n2 and N - 3.94 stay exact
INT_MAX = 10**9
#: smallest usable p-value: below it 1 - p/2 rounds to 1 in double precision, so the t statistic a
#: p-only or mean-difference-and-p row stands for cannot be recovered (a paper printing p < 0.0001 is
#: entered as 0.0001 with p_operator <)
P_MIN = 1e-15
#: a CI's level is a proportion in this open interval (0.95 for a 95% CI); 0.05 is alpha, 95 a percentage
CI_LEVEL_RANGE = (0.5, 1.0)
#: a CI narrower than this fraction of its larger limit cannot be told from rounding of the printed limits
CI_MIN_RELATIVE_WIDTH = 1e-9
#: first characters that make a spreadsheet run a cell as a formula (OWASP "CSV injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: columns that identify one pooled estimate of published_pooled.csv (source_id names the review)
PUBLISHED_KEY = ("source_id", "outcome", "population", "task", "design")


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data, located as precisely as possible.

    ``row`` is the spreadsheet row (header = 1, first data row = 2) or ``None``
    for a problem with a whole file or column; ``got`` is the offending cell as
    written (``None`` when no single cell is at fault or the message quotes
    it); ``expected`` says what would be valid.  ``severity`` is ``"error"``
    or ``"warning"``; ``folder`` (the data folder, when known) is printed
    before the file name; ``subject`` names what ``study_id`` identifies (``"analysis"`` in
    ``analyses.csv``).
    """

    file: str
    row: int | None
    study_id: str | None
    column: str | None
    message: str
    got: str | None = None
    expected: str | None = None
    severity: str = "error"
    folder: str | None = field(default=None, compare=False)
    subject: str = field(default="study", compare=False)  # what study_id names: "study", "analysis"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.folder.rstrip('/')}/{self.file}" if self.folder else self.file
        if self.row is not None:
            where += f", row {self.row}"
            if self.study_id:
                where += f" ({self.subject} {self.study_id})"
        if self.column:
            where += f", column {self.column}"
        lead = "warning: " if self.severity == "warning" else ""
        text = f"{where}: {lead}{self.message}"
        if self.got is not None:
            text += f", got {show_cell(self.got)}"
        return text


def show_cell(value: str) -> str:
    if value == "":
        return "an empty cell"
    if NUMBER_PATTERN.match(value):
        return value
    return repr(value)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that stop loading (``severity == "error"``)."""
    return [p for p in problems if p.is_error]



class DataError(ValueError):
    """Raised by :func:`load` when the data are invalid; ``problems`` lists every error."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        n = len(self.problems)
        head = "\n".join(str(p) for p in self.problems[:20])
        more = f"\n... and {n - 20} more" if n > 20 else ""
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in the data:\n{head}{more}")


# --------------------------------------------------------------------------- reading


@contextlib.contextmanager
def collector_paused():
    """Pause Python's cyclic garbage collector while a data folder is read and checked.

    Reading a table makes one dict per row and one str per cell (1.5 million objects for
    100,000 outcome rows), none of them in a reference cycle; without the pause the collector
    walks the growing set of live containers again and again (5-10% of the CPU time of
    ``meta validate`` at that size). Reference counting still frees everything as usual;
    the collector is restored (if it was on) when the block ends, also on an error."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass(frozen=True)
class Table:
    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, dict[str, str]], ...]  # (spreadsheet row, {column: stripped cell})
    raw: tuple[dict[str, str], ...] = ()  # the same cells unstripped (for the formula check)
    folder: str | None = None
    columns: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)  # see column()

    def column(self, name: str) -> list[str]:
        """The stripped cells of one column, row by row ("" for a column the header lacks): the
        values of ``rows``, kept column by column (read_table fills them with one transposition;
        otherwise built on first use)."""
        got = self.columns.get(name)
        if got is None:
            got = self.columns[name] = [c.get(name, "") for _, c in self.rows]
        return got


def read_table(folder: Path, name: str, problems: list[Problem]) -> Table | None:
    """Read one CSV as text without modifying it; append problems and return None if unreadable."""
    path = Path(folder) / name
    fd = str(folder)

    def bad(message: str, row: int | None = None, column: str | None = None) -> None:
        problems.append(Problem(name, row, None, column, message, folder=fd))

    if path.is_dir():
        bad(f"is a folder, not a file (expected a CSV file named {name} in {folder}/)")
        return None
    if not path.is_file():
        bad(f"file not found in {folder}/")
        return None
    try:
        with open(path, "rb") as fh:  # read-only: validation never writes
            raw = fh.read()
    except OSError as exc:
        bad(f"cannot be read ({exc.strerror or exc})")
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad(f"is not valid UTF-8 (byte {exc.start}, line {line}); save it as UTF-8")
        return None
    if "\x00" in text:
        bad("is not a text file (it holds NUL bytes); save it as a UTF-8 CSV file")
        return None
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    if first_line.count(";") > first_line.count(","):
        bad(f"looks semicolon-separated (its header has {first_line.count(';')} semicolons and "
            f"{first_line.count(',')} commas); save it with commas as the separator")
        return None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    try:
        for rec in reader:
            records.append(rec)
    except csv.Error as exc:
        bad(f"is not a readable CSV file (line {reader.line_num}: {exc}; check the double quotes)")
        return None
    if not records or not any(c.strip() for c in records[0]):
        bad("is empty: the first row must be the header")
        return None
    header = tuple(c.strip() for c in records[0])
    seen: set[str] = set()
    for col in header:
        if col == "":
            bad("header has an empty column name", 1)
        elif col in seen:
            bad("column appears twice in the header; delete one of them", 1, col)
        seen.add(col)
    rows = []
    raws = []
    kept = []
    width = len(header)
    for i, rec in enumerate(records[1:], start=2):
        stripped = list(map(str.strip, rec))
        if not any(stripped):
            continue  # blank line
        if len(rec) != width:
            bad(f"has {len(rec)} fields but the header has {len(header)}"
                " (a comma inside a cell needs double quotes)", i)
            continue
        cells = dict(zip(header, stripped))
        rows.append((i, cells))
        kept.append(stripped)
        raws.append(cells if stripped == rec else dict(zip(header, rec)))  # one dict when nothing was stripped
    # the same cells column by column (the checks read a column at a time); a name twice in the
    # header keeps its last cell, as the row dicts do
    columns = {col: list(vals) for col, vals in zip(header, zip(*kept))} if kept else {col: [] for col in header}
    return Table(name, header, tuple(rows), tuple(raws), fd, columns)


def check_columns(table: Table, required: tuple[str, ...], problems: list[Problem]) -> bool:
    missing = [c for c in required if c not in table.header]
    if required and len(missing) > len(required) / 2:
        # not this table at all (another file, or garbage): one problem instead of one per column and row
        problems[:] = [p for p in problems if not (p.file == table.name and p.folder == table.folder)]
        problems.append(Problem(table.name, 1, None, None,
                                f"does not look like {table.name}: its first row lacks most of the required "
                                f"columns ({len(missing)} of {len(required)} missing: {', '.join(missing)})",
                                folder=table.folder))
        return False
    for col in missing:
        problems.append(Problem(table.name, None, None, col, "required column is missing from the header",
                                folder=table.folder))
    return not missing


def check_known_columns(table: Table, problems: list[Problem]) -> None:
    known = {c.name for c in SCHEMA.get(table.name, ())}
    for col in table.header:
        if col and col not in known:
            problems.append(Problem(
                table.name, None, None, col,
                f"is not a documented column of {table.name} (see data/README.md); it is kept as text "
                "but nothing reads it -- check the spelling", severity="warning", folder=table.folder))


# --------------------------------------------------------------------------- vocabulary


def read_vocabulary(path: str | Path = "data") -> dict[str, tuple[str, ...]]:
    """The allowed values per vocabulary key of ``vocabulary.csv`` in a data folder.

    Keys are column names (``task``) or ``file:column`` where one name has two lists
    (``review_claims.csv:design``); ``construct`` is derived from the outcome rows.
    Raises :class:`DataError` if the file is missing or invalid.
    """
    problems: list[Problem] = []
    vocab = vocabulary_of(Path(path), problems)
    if errors(problems) or vocab is None:
        raise DataError(errors(problems))
    return vocab


def vocabulary_of(folder: Path, problems: list[Problem], table: Table | None = None) -> dict[str, tuple[str, ...]] | None:
    if table is None:
        table = read_table(folder, VOCABULARY_FILE, problems)
        if table is None or not check_columns(table, required_columns(VOCABULARY_FILE), problems):
            return None
    ck = CellChecker(table, problems)
    out: dict[str, list[str]] = {}
    constructs: dict[str, str] = {}
    first: dict[tuple[str, str], int] = {}
    valid_keys = VOCABULARY_KEYS
    for row, c in table.rows:
        ok = all(ck.required(row, None, c, col) for col in ("column", "value", "meaning"))
        key, value = c["column"], c["value"]
        if key and key not in valid_keys:
            ck.add(row, None, "column", f"{key!r} is not a column with a vocabulary; valid: "
                   + ", ".join(valid_keys) + suggest(key, valid_keys))
            continue
        if not ok:
            continue
        if (key, value) in first:
            ck.add(row, None, "value", f"{value!r} repeats row {first[key, value]} (column {key})")
            continue
        first[key, value] = row
        out.setdefault(key, []).append(value)
        if key == "outcome":
            if c.get("construct", "") == "":
                ck.add(row, None, "construct", "must name the outcome's construct (what it measures; "
                       "outcomes of one construct may be pooled deliberately)")
            else:
                constructs[value] = c["construct"]
    for key in valid_keys:
        if key not in out:
            problems.append(Problem(VOCABULARY_FILE, None, None, "column",
                                    f"has no rows for column {key}: list its allowed values with their meanings",
                                    folder=table.folder))
    vocab = Vocabulary({k: tuple(v) for k, v in out.items()})
    vocab["construct"] = tuple(dict.fromkeys(constructs.values()))
    vocab.file = str(Path(table.folder or folder) / VOCABULARY_FILE)
    return vocab


class Vocabulary(dict):
    """``{vocabulary key: allowed values}`` read from ``file`` (the path messages name)."""

    file: str = VOCABULARY_FILE


def suggest(value: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    lower = {a.lower(): a for a in allowed}
    hit = lower.get(value.lower()) or lower.get(value.lower().replace(" ", "_").replace("-", "_"))
    if hit is None:
        close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.6)
        if not close:
            close = difflib.get_close_matches(value.lower(), list(lower), n=1, cutoff=0.6)
            close = [lower[c] for c in close]
        hit = close[0] if close else None
    return f" (did you mean {hit!r}?)" if hit else ""


def vocabulary_message(value: str, allowed: tuple[str, ...], vocab_file: str) -> str:
    """``'Running' is not in data/vocabulary.csv; valid: running, ... (did you mean 'running'?)``."""
    shown = ", ".join(allowed) if len(allowed) <= 15 else (
        ", ".join(allowed[:12]) + f", ... ({len(allowed)} values)")
    return f"{value!r} is not in {vocab_file}; valid: {shown or '(none listed)'}{suggest(value, allowed)}"


# --------------------------------------------------------------------------- cell checks


class CellChecker:
    """Collects problems for one table, one cell at a time."""

    def __init__(self, table: Table, problems: list[Problem]):
        self.table = table
        self.problems = problems

    def add(self, row: int, sid: str | None, column: str | None, message: str,
            got: str | None = None, expected: str | None = None, severity: str = "error") -> None:
        self.problems.append(Problem(self.table.name, row, sid or None, column, message, got, expected,
                                     severity, self.table.folder))

    def required(self, row, sid, cells, column) -> bool:
        if cells.get(column, "") == "":
            self.add(row, sid, column, "must not be empty")
            return False
        return True

    def vocab(self, row, sid, cells, column, allowed, *, allow_empty=True, vocab_file=None) -> bool:
        v = cells.get(column, "")
        if v == "" and allow_empty:
            return True
        if v not in allowed:
            vf = vocab_file or getattr(allowed, "file", None) or str(Path(self.table.folder or ".") / VOCABULARY_FILE)
            self.add(row, sid, column, vocabulary_message(v, tuple(allowed), vf),
                     expected="a value of column " + column + " in " + VOCABULARY_FILE)
            return False
        return True

    def number(self, row, sid, cells, column) -> float | None:
        """Parse a real number (:data:`NUMBER_PATTERN`); None if empty or invalid (invalid is reported)."""
        v = cells.get(column, "")
        if v == "":
            return None
        if v.lower() in MISSING_WORDS:
            self.add(row, sid, column, "must be a number; leave the cell empty when unknown", v, "a number")
            return None
        if not NUMBER_PATTERN.match(v):
            if re.fullmatch(r"[+-]?\d+,\d+", v):
                hint = " (use . as the decimal mark)"
            elif "_" in v or re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", v):
                hint = " (no _ or thousands separators: write the digits as printed, e.g. 8.2 or 1200)"
            else:
                hint = " (digits with an optional . and exponent, e.g. -0.4 or 1e-3)"
            self.add(row, sid, column, f"must be a number{hint}", v, "a number")
            return None
        x = float(v)
        if not math.isfinite(x) or abs(x) > NUMBER_MAX:
            self.add(row, sid, column, f"must be a finite number no larger than {NUMBER_MAX:g} in magnitude "
                     "(beyond it the arithmetic that uses the cell overflows or loses its digits)", v,
                     f"|x| <= {NUMBER_MAX:g}")
            return None
        return x

    def integer(self, row, sid, cells, column, *, minimum=None) -> int | None:
        v = cells.get(column, "")
        if v == "":
            return None
        if not INT_PATTERN.match(v):
            if v.lower() in MISSING_WORDS:
                msg = "must be a whole number; leave the cell empty when unknown"
            else:
                msg = "must be a whole number"
            self.add(row, sid, column, msg, v, "a whole number")
            return None
        x = int(v)
        if abs(x) > INT_MAX:
            self.add(row, sid, column, f"must be <= {INT_MAX:,}".replace(",", " ") + " (no cohort is larger; "
                     "beyond it sample-size arithmetic is no longer exact)", v, f"<= {INT_MAX}")
            return None
        if minimum is not None and x < minimum:
            self.add(row, sid, column, f"must be >= {minimum}", v, f">= {minimum}")
            return None
        return x

    def url(self, row, sid, cells, column) -> None:
        v = cells.get(column, "")
        if v and not URL_PATTERN.match(v):
            self.add(row, sid, column, "must be a web address starting with http:// or https://", v)


def _parse_direction(value: str) -> int | None:
    return {"+1": 1, "1": 1, "-1": -1}.get(value)


def check_schema(table: Table, vocab: dict[str, tuple[str, ...]] | None, problems: list[Problem],
                  sid_column: str | None = "study_id") -> list[dict]:
    """The per-column rules of :data:`SCHEMA` for every row; returns the parsed rows
    (numbers as int/float/None; text as the stripped cell)."""
    ck = CellChecker(table, problems)
    specs = [c for c in SCHEMA[table.name] if c.name in table.header]
    parsed_rows = []
    names = [col.name for col in specs]
    fast = _clean_cells(table, specs, vocab) if specs else [()] * len(table.rows)
    for (row, c), values in zip(table.rows, fast):
        if _DIRTY not in values:  # every cell passes every rule: the parsed values, no problem to report
            parsed = {"_row": row}
            parsed.update(zip(names, values))
            parsed_rows.append(parsed)
            continue
        sid = c.get(sid_column, "") if sid_column else None
        parsed: dict = {"_row": row}
        for col in specs:
            v = c[col.name]
            if col.cell and v == "":
                valid = vocab.get(col.vocab_key) if vocab and col.vocab_key else None
                ck.add(row, sid if col.name != sid_column else None, col.name,
                       "must not be empty" + (f"; valid: {', '.join(valid)}" if valid and len(valid) <= 15 else ""))
                parsed[col.name] = None
                continue
            if col.kind == "int":
                parsed[col.name] = ck.integer(row, sid, c, col.name, minimum=col.minimum)
            elif col.kind == "number":
                parsed[col.name] = ck.number(row, sid, c, col.name)
            elif col.kind == "direction":
                d = _parse_direction(v) if v else None
                if v and d is None:
                    ck.add(row, sid, col.name, "must be +1 or -1" + ("" if col.cell else ", or empty when unknown"),
                           v, "+1 or -1")
                parsed[col.name] = d
            else:
                if col.kind == "vocab" and vocab is not None and v and not PLACEHOLDER_PATTERN.match(v):
                    key = col.vocab_key
                    if key in vocab:
                        ck.vocab(row, sid, c, col.name, vocab[key], vocab_file=getattr(vocab, "file", None))
                elif col.kind == "url":
                    ck.url(row, sid, c, col.name)
                elif col.kind == "doi" and v and not DOI_PATTERN.match(v):
                    ck.add(row, sid, col.name, "must be a bare DOI like 10.1016/j.gaitpost.2015.11.018", v)
                parsed[col.name] = v
        parsed_rows.append(parsed)
    return parsed_rows


#: marks a cell that :func:`_clean_cells` leaves to the cell-by-cell checks of :func:`check_schema`
_DIRTY = object()
_DIRECTIONS = {"+1": 1, "1": 1, "-1": -1}


def _clean_int(v: str, minimum: int | None):
    if v == "":
        return None
    if not INT_PATTERN.match(v):
        return _DIRTY
    x = int(v)
    return x if abs(x) <= INT_MAX and (minimum is None or x >= minimum) else _DIRTY


def _clean_cells(table: Table, specs: list[Column], vocab) -> list[tuple]:
    """Per row, the parsed value of each column of ``specs`` where the cell passes every rule of
    :func:`check_schema` without a problem (the value :func:`check_schema` would store), or
    :data:`_DIRTY` where it might not (those rows go through the cell-by-cell checks, which report).

    Column by column, so the checks run as tight loops over one column's cells; text and
    vocabulary columns are judged once per distinct value."""
    columns = []
    for col in specs:
        cells = table.column(col.name)
        if col.kind == "int":
            values = [_clean_int(v, col.minimum) for v in cells]
        elif col.kind == "number":  # inline: no function call per cell
            match = NUMBER_PATTERN.match
            values = [None if v == "" else (x if match(v) and abs(x := float(v)) <= NUMBER_MAX else _DIRTY)
                      for v in cells]
        else:
            judged: dict[str, object] = {}
            allowed = None
            if col.kind == "vocab" and vocab is not None and col.vocab_key in vocab:
                allowed = frozenset(vocab[col.vocab_key])
            for v in set(cells):
                if col.kind == "direction":
                    ok = v == "" or v in _DIRECTIONS
                    judged[v] = _DIRECTIONS.get(v) if ok else _DIRTY
                    continue
                if col.kind == "vocab":
                    ok = allowed is None or v == "" or v in allowed or bool(PLACEHOLDER_PATTERN.match(v))
                elif col.kind == "url":
                    ok = v == "" or bool(URL_PATTERN.match(v))
                elif col.kind == "doi":
                    ok = v == "" or bool(DOI_PATTERN.match(v))
                else:
                    ok = True
                judged[v] = v if ok else _DIRTY
            values = [judged[v] for v in cells]
        if col.cell:
            values = [_DIRTY if v == "" else x for v, x in zip(cells, values)]
        columns.append(values)
    return list(zip(*columns))



def check_placeholders(table: Table, problems: list[Problem]) -> None:
    """A cell that is wholly ``[...]`` (e.g. ``[title not seen]``) stands in for an unknown value."""
    for row, c in table.rows:
        if "\x00[" not in "\x00" + "\x00".join(c.values()):
            continue  # no cell starts with "[" (NUL never occurs in a table: read_table refuses it)
        for col, v in c.items():
            if PLACEHOLDER_PATTERN.match(v):
                problems.append(Problem(
                    table.name, row, c.get("study_id") or None, col,
                    "looks like a placeholder; leave the cell empty when the value was not seen "
                    "(and say so in the notes)", v, "the value as printed, or an empty cell",
                    folder=table.folder))


#: a cell (after the NUL that :func:`check_formulas` joins the cells of a row with) starting like a formula
_FORMULA_CELL = re.compile("\x00[" + re.escape("".join(FORMULA_STARTS)) + "]")


def check_formulas(table: Table, problems: list[Problem], vocab: dict[str, tuple[str, ...]] | None = None,
                   specs: Iterable[Column] | None = None) -> None:
    """Warn about cells a spreadsheet would run as a formula (OWASP CSV injection).

    A cell of a text column (or an undocumented column) whose first character, before
    stripping, is one of :data:`FORMULA_STARTS`.  Number and vocabulary columns are exempt:
    their cells are a valid number (``-0.4``), a vocabulary value (``=``) or already an error.
    """
    specs = {c.name: c for c in (SCHEMA.get(table.name, ()) if specs is None else specs)}
    for (row, c), raw in zip(table.rows, table.raw):
        if not _FORMULA_CELL.search("\x00" + "\x00".join(raw.values())):
            continue  # no cell starts like a formula
        for col, v in raw.items():
            if not v or not v.startswith(FORMULA_STARTS):
                continue
            spec = specs.get(col)
            stripped = c[col]
            if spec is not None and spec.kind in ("int", "number", "direction", "vocab"):
                continue  # either a valid number / vocabulary value (-0.4, =) or already an error
            if table.name == VOCABULARY_FILE and col == "value" and stripped in P_OPERATORS:
                continue  # the p_operator values themselves
            problems.append(Problem(
                table.name, row, c.get("study_id") or None, col,
                f"starts with {v[0]!r}: a spreadsheet would run this cell as a formula; start the text "
                "differently (e.g. with a letter)", severity="warning", folder=table.folder))


# --------------------------------------------------------------------------- invisible characters, identifiers

#: characters a cell may hold although Unicode classes them as control characters
_ALLOWED_CONTROLS = frozenset("\t\n\r")


_INVISIBLE: dict[str, bool] = {}


def _invisible(ch: str) -> bool:
    """Whether :func:`invisible_characters` reports ``ch`` (remembered per character)."""
    bad = _INVISIBLE.get(ch)
    if bad is None:
        bad = _INVISIBLE[ch] = ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp")
    return bad


def invisible_characters(text: str) -> list[str]:
    """The invisible or direction-changing characters in ``text``, as ``U+XXXX NAME`` strings.

    Unicode categories Cf (format: bidi overrides and isolates such as U+202E, zero-width spaces
    and joiners, byte-order marks, soft hyphens), Cc (control characters other than tab, line feed
    and carriage return), Zl and Zp (line and paragraph separators). Such characters make two ids
    that look the same differ, or make a report display text in another order than it is stored
    (a right-to-left override turns "SMD 0.82 [0.17, 1.47]" around).
    """
    if not any(map(_invisible, set(text))):  # the usual case, judged once per distinct character
        return []
    found = []
    for ch in text:
        if ch in _ALLOWED_CONTROLS:
            continue
        if unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp"):
            name = unicodedata.name(ch, "control character")
            found.append(f"U+{ord(ch):04X} {name}")
    return list(dict.fromkeys(found))


def check_invisible(table: Table, problems: list[Problem]) -> None:
    """Refuse invisible and bidi control characters in every cell (see :func:`invisible_characters`)."""
    sid_col = "study_id" if "study_id" in table.header else None
    for (row, c), raw in zip(table.rows, table.raw):
        joined = "".join(raw.values())
        if joined.isascii() and joined.isprintable():
            continue  # every cell of the row is printable ASCII
        for col, v in raw.items():
            if not v or v.isascii() and v.isprintable():
                continue
            bad = invisible_characters(v)
            if bad:
                problems.append(Problem(
                    table.name, row, (c.get(sid_col) or None) if sid_col else None, col,
                    f"holds invisible or direction-changing characters ({', '.join(bad)}); delete them "
                    "(they make ids that look equal differ and can reorder text in the report)",
                    expected="visible text only", folder=table.folder))


def identifier_key(value: str) -> str:
    """The form two identifiers are compared in: Unicode NFKC, case-folded, whitespace and invisible
    characters (:func:`invisible_characters`) removed.

    Two ids with the same key but different spellings (``Souza2009`` / ``souza2009``, a zero-width
    space, a full-width letter) are one id typed two ways, never two cohorts.
    """
    if value.isascii() and value.isprintable():
        # NFKC leaves ASCII as it is, casefold is lower(), and the only whitespace or control
        # character a printable ASCII string can hold is the space
        return value.lower().replace(" ", "")
    folded = unicodedata.normalize("NFKC", value).casefold()
    return "".join(ch for ch in folded if not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc", "Zl", "Zp"))


def check_identifier_spellings(table: Table, columns: tuple[str, ...], problems: list[Problem]) -> None:
    """Error for each id cell (in any of ``columns``) spelled differently from an earlier id cell with
    the same :func:`identifier_key`: one id typed two ways would split one cohort in two."""
    first: dict[str, tuple[str, int, str]] = {}
    for row, c in table.rows:
        for column in columns:
            v = c.get(column, "")
            if not v:
                continue
            key = identifier_key(v)
            if key in first and first[key][0] != v:
                spelled, at, where = first[key]
                problems.append(Problem(
                    table.name, row, c.get("study_id") or None, column,
                    f"spells an id as {v!r} where row {at}, column {where} has {spelled!r}: ids that differ "
                    "only by case, spaces or Unicode form are one id; write it the same way in both",
                    expected=repr(spelled), folder=table.folder))
            else:
                first.setdefault(key, (v, row, column))
