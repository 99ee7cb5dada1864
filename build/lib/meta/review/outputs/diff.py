"""What changed between two runs of ``meta reproduce`` (the living-review workflow).

``meta diff OLD_RESULTS NEW_RESULTS`` compares two results folders and lists, in
this order:

1. the **input rows** added, removed or changed (from the ``inputs/`` snapshot of
   ``data/`` that every run writes: studies, outcomes, analyses, claims,
   published pooled results);
2. the **study-level SMDs** that moved (``effect_sizes.csv``: ``yi`` or ``vi``
   beyond the tolerance, or a row whose route changed);
3. the **pooled estimates** that moved (``pooled.csv``: k, estimate, CI, tau²
   beyond the tolerance, per analysis and evidence set);
4. the **claim verdicts** that changed (``claims.csv``, per claim and evidence set).

Each line names the study, analysis or claim id. Numbers are compared with an
absolute tolerance (default 1e-9: a rerun on the same data gives bit-identical
files, so anything larger is a real change, not noise). The module computes and
returns; printing and exit codes live in :mod:`meta.cli`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["Change", "DiffResult", "DiffError", "diff_results", "INPUTS_DIR", "EXACT_DIR", "EXACT_SUFFIX", "INPUT_KEYS"]

#: folder inside a results folder that holds the data/ CSVs the run read, spreadsheet-safe
INPUTS_DIR = "inputs"
#: the byte copies of the same files, compared by ``meta diff`` (``<name>.csv`` + :data:`EXACT_SUFFIX`)
EXACT_DIR = "inputs/exact"
EXACT_SUFFIX = ".bytes"

#: input file -> columns that identify a row (a repeated key is told apart by its order of appearance)
INPUT_KEYS = {
    "studies.csv": ("study_id",),
    "outcomes.csv": ("study_id", "outcome", "comparison", "timepoint", "task"),
    "analyses.csv": ("analysis_id",),
    "review_claims.csv": ("claim_id",),
    "published_pooled.csv": ("source_id", "outcome", "population", "task", "design"),
    "vocabulary.csv": ("column", "value"),
}
_EFFECT_KEY = ("study_id", "outcome", "comparison", "timepoint", "task")
_EFFECT_NUMBERS = ("yi", "vi")
_EFFECT_TEXT = ("route",)
_POOLED_NUMBERS = ("k", "estimate", "ci_low", "ci_high", "tau2")
_SECTIONS = ("input", "effect", "pooled", "verdict")


class DiffError(ValueError):
    """A results folder cannot be compared (missing, or not written by ``meta reproduce``)."""


@dataclass(frozen=True)
class Change:
    """One difference between two runs."""

    section: str  #: "input", "effect", "pooled" or "verdict"
    kind: str  #: "added", "removed" or "changed"
    where: str  #: file or table the row belongs to
    key: str  #: the ids that name the row (study, analysis, claim)
    detail: str  #: what changed, old -> new

    def line(self) -> str:
        return f"{self.kind:<8} {self.where}: {self.key}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class DiffResult:
    """All differences, in the order input rows, study SMDs, pooled estimates, verdicts."""

    old: str
    new: str
    changes: tuple[Change, ...]
    notes: tuple[str, ...]  #: what could not be compared, and why
    tolerance: float

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_frame(self) -> pd.DataFrame:
        cols = ["section", "kind", "where", "key", "detail"]
        return pd.DataFrame([[getattr(c, f) for f in cols] for c in self.changes], columns=cols)

    def summary(self) -> str:
        titles = {
            "input": "Input rows added, removed or changed",
            "effect": "Study-level SMDs that moved",
            "pooled": f"Pooled estimates that moved (tolerance {self.tolerance:g})",
            "verdict": "Claim verdicts that changed",
        }
        out = [f"meta diff {self.old} -> {self.new}"]
        for sec in _SECTIONS:
            rows = [c for c in self.changes if c.section == sec]
            out.append("")
            out.append(f"{titles[sec]}: {len(rows) if rows else 'none'}")
            out.extend("  " + c.line() for c in rows)
        for note in self.notes:
            out.append(f"note: {note}")
        out.append("")
        out.append("changed" if self.changed else "no changes")
        return "\n".join(out)


# --------------------------------------------------------------------------- reading


def _read(path: Path) -> list[dict[str, str]] | None:
    """Rows of a CSV as text (nothing parsed, so the comparison sees exactly what was written)."""
    if not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DiffError(f"{path}: cannot be read ({exc})") from exc


def _keyed(rows: list[dict[str, str]], key: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Rows by their key text; the n-th repeat of a key gets ' #n'."""
    out: dict[str, dict[str, str]] = {}
    seen: dict[str, int] = {}
    for r in rows:
        k = " / ".join(f"{c}={r.get(c, '')}" for c in key if r.get(c, "") != "") or "(no key)"
        seen[k] = seen.get(k, 0) + 1
        out[k if seen[k] == 1 else f"{k} #{seen[k]}"] = r
    return out


def _num(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _moved(a: str | None, b: str | None, tol: float) -> bool:
    x, y = _num(a), _num(b)
    if math.isnan(x) and math.isnan(y):
        return (a or "") != (b or "") and not (_is_num_or_empty(a) and _is_num_or_empty(b))
    if math.isnan(x) or math.isnan(y):
        return True
    return abs(x - y) > tol


def _is_num_or_empty(text: str | None) -> bool:
    return text in (None, "") or not math.isnan(_num(text))


def _short(text: str | None) -> str:
    t = (text or "").replace("\n", " ")
    return repr(t if len(t) <= 60 else t[:57] + "...")


def _fmt(text: str | None) -> str:
    x = _num(text)
    return "NA" if math.isnan(x) else f"{x:.4g}"


# --------------------------------------------------------------------------- comparing


def _compare_inputs(old: Path, new: Path, changes: list[Change], notes: list[str]) -> None:
    oi, ni = old / INPUTS_DIR, new / INPUTS_DIR
    missing = [str(p) for p in (oi, ni) if not p.is_dir()]
    if missing:
        notes.append(f"input rows not compared: no {INPUTS_DIR}/ snapshot in {', '.join(missing)} "
                     "(written by a run of an older version)")
        return
    def snapshot(results: Path, name: str) -> Path:
        exact = results / EXACT_DIR / (name + EXACT_SUFFIX)
        return exact if exact.is_file() or (results / EXACT_DIR).is_dir() else results / INPUTS_DIR / name

    for name, key in INPUT_KEYS.items():
        a, b = _read(snapshot(old, name)), _read(snapshot(new, name))
        if a is None and b is None:
            continue
        if a is None or b is None:
            changes.append(Change("input", "added" if a is None else "removed", name, "(whole file)", ""))
            continue
        ka, kb = _keyed(a, key), _keyed(b, key)
        for k in kb.keys() - ka.keys():
            changes.append(Change("input", "added", name, k, ""))
        for k in ka.keys() - kb.keys():
            changes.append(Change("input", "removed", name, k, ""))
        for k in ka.keys() & kb.keys():
            ra, rb = ka[k], kb[k]
            cols = [c for c in dict.fromkeys([*ra, *rb]) if ra.get(c, "") != rb.get(c, "")]
            if cols:
                detail = "; ".join(f"{c} {_short(ra.get(c))} -> {_short(rb.get(c))}" for c in cols)
                changes.append(Change("input", "changed", name, k, detail))
    changes.sort(key=lambda c: (c.section, list(INPUT_KEYS).index(c.where) if c.where in INPUT_KEYS else 99,
                                ("added", "removed", "changed").index(c.kind), c.key))


def _compare_effects(old: Path, new: Path, tol: float, changes: list[Change], notes: list[str]) -> None:
    a, b = _read(old / "effect_sizes.csv"), _read(new / "effect_sizes.csv")
    if a is None or b is None:
        notes.append("study-level SMDs not compared: effect_sizes.csv missing")
        return
    ka, kb = _keyed(a, _EFFECT_KEY), _keyed(b, _EFFECT_KEY)
    found = []
    for k in sorted(kb.keys() - ka.keys()):
        found.append(Change("effect", "added", "effect_sizes.csv", k, f"yi {_fmt(kb[k].get('yi'))}"))
    for k in sorted(ka.keys() - kb.keys()):
        found.append(Change("effect", "removed", "effect_sizes.csv", k, f"yi {_fmt(ka[k].get('yi'))}"))
    for k in sorted(ka.keys() & kb.keys()):
        ra, rb = ka[k], kb[k]
        parts = [f"{c} {_fmt(ra.get(c))} -> {_fmt(rb.get(c))}" for c in _EFFECT_NUMBERS if _moved(ra.get(c), rb.get(c), tol)]
        parts += [f"{c} {ra.get(c) or 'none'} -> {rb.get(c) or 'none'}" for c in _EFFECT_TEXT if ra.get(c, "") != rb.get(c, "")]
        if parts:
            found.append(Change("effect", "changed", "effect_sizes.csv", k, "; ".join(parts)))
    changes.extend(found)


def _set_key(r: dict[str, str], ids: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(r.get(c, "") for c in ids) + ((r.get("set", "") or "original",) if "set" in r else ("original",))


def _label(key: tuple[str, ...]) -> str:
    *ids, set_ = key
    return " / ".join(ids) + ("" if set_ == "original" else f" [{set_}]")


def _compare_table(old: Path, new: Path, name: str, ids: tuple[str, ...], section: str, tol: float,
                   changes: list[Change], notes: list[str], numbers=(), texts=()) -> None:
    a, b = _read(old / name), _read(new / name)
    if a is None or b is None:
        notes.append(f"{name} not compared: missing in {old if a is None else new}")
        return
    ka = {_set_key(r, ids): r for r in a}
    kb = {_set_key(r, ids): r for r in b}
    for k in sorted(kb.keys() - ka.keys()):
        changes.append(Change(section, "added", name, _label(k), ""))
    for k in sorted(ka.keys() - kb.keys()):
        changes.append(Change(section, "removed", name, _label(k), ""))
    for k in sorted(ka.keys() & kb.keys()):
        ra, rb = ka[k], kb[k]
        parts = [f"{c} {_fmt(ra.get(c))} -> {_fmt(rb.get(c))}" for c in numbers if _moved(ra.get(c), rb.get(c), tol)]
        parts += [f"{c} {ra.get(c) or 'none'!r} -> {rb.get(c) or 'none'!r}" for c in texts if ra.get(c, "") != rb.get(c, "")]
        if parts:
            changes.append(Change(section, "changed", name, _label(k), "; ".join(parts)))


def diff_results(old: str | Path, new: str | Path, *, tolerance: float = 1e-9) -> DiffResult:
    """Compare two results folders written by ``meta reproduce``.

    Raises :class:`DiffError` when a folder is missing or holds no ``pooled.csv``
    (so it was not written by ``meta reproduce``).
    """
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0 and math.isfinite(tolerance)):
        raise DiffError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    old_p, new_p = Path(old), Path(new)
    for p in (old_p, new_p):
        if not p.is_dir():
            raise DiffError(f"{p}: not a folder (give two results folders written by meta reproduce)")
        if not (p / "pooled.csv").is_file():
            raise DiffError(f"{p}: has no pooled.csv, so it is not a results folder written by meta reproduce")
    changes: list[Change] = []
    notes: list[str] = []
    _compare_inputs(old_p, new_p, changes, notes)
    _compare_effects(old_p, new_p, tolerance, changes, notes)
    _compare_table(old_p, new_p, "pooled.csv", ("analysis_id",), "pooled", tolerance, changes, notes,
                   numbers=_POOLED_NUMBERS, texts=("status",))
    _compare_table(old_p, new_p, "claims.csv", ("claim_id",), "verdict", tolerance, changes, notes,
                   texts=("verdict",))
    order = {s: i for i, s in enumerate(_SECTIONS)}
    changes = sorted(changes, key=lambda c: order[c.section])  # stable: keeps the order within a section
    return DiffResult(str(old), str(new), tuple(changes), tuple(notes), float(tolerance))
