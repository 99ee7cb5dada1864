"""CSV files that a spreadsheet opens as data, never as formulas.

Excel, LibreOffice Calc and Google Sheets evaluate a cell whose text starts
with ``=``, ``+``, ``-`` or ``@`` (and, after import, one starting with a tab
or carriage return) as a formula, so a study author ``=HYPERLINK(...)`` copied
from ``data/`` into ``results/*.csv`` would run when the file is opened
("CSV injection", OWASP). The usual defence, used here, is to prefix such a
cell with an apostrophe, which every spreadsheet shows as text.

The rule (:func:`spreadsheet_safe`):

* only text cells change (Python ``str`` values); numbers in numeric columns
  (``-0.42`` as a float) are written as numbers, untouched;
* a text cell that is a plain decimal number (``"-0.42"``, ``"+1"``,
  ``"-1.5e-3"``) is left alone: a spreadsheet reads it as that number, which
  is what it is;
* a text cell that is a lone sign (``"+"``, ``"-"``, the review's expected
  direction) is left alone: there is nothing to evaluate;
* every other text cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR
  gets a leading ``'``. Column names and index labels follow the same rule.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd

__all__ = ["safe_cell", "safe_row", "spreadsheet_safe", "write_csv", "FORMULA_START"]

#: first characters that make a spreadsheet treat a cell as a formula (OWASP, "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

#: :data:`FORMULA_START` as a set, for the one-character test ``v[:1] in _STARTS`` that clears most cells
_STARTS = frozenset(FORMULA_START)


def safe_cell(v):
    """``v`` with a leading ``'`` when it is text a spreadsheet would run as a formula (rule above)."""
    if isinstance(v, str) and v[:1] in _STARTS and v not in ("+", "-") and not _NUMBER.match(v):
        return "'" + v
    return v


def safe_row(cells: list[str]) -> list[str]:
    """:func:`safe_cell` of each text cell of a CSV row; the first-character test runs inline, so only
    cells that start like a formula cost a call."""
    starts = _STARTS
    return [safe_cell(c) if c[:1] in starts else c for c in cells]


_TEXT_DTYPE = "str" if pd.get_option("future.infer_string") else object


def _safe_text(values: np.ndarray) -> np.ndarray | None:
    """:func:`safe_cell` of each cell of an object array whose cells are text or missing; ``None`` when no
    cell changes. Each distinct value is judged once (``pd.unique``), and only those starting with a
    character of :data:`FORMULA_START` go through the whole rule."""
    starts = _STARTS
    changed = {}
    for v in pd.unique(values).tolist():
        if isinstance(v, str) and v[:1] in starts:
            s = safe_cell(v)
            if s is not v:
                changed[v] = s
    if not changed:
        return None
    out = values.copy()
    hit = np.flatnonzero(pd.Series(values, copy=False).isin(list(changed)).to_numpy())
    out[hit] = [changed[v] for v in values[hit].tolist()]
    return out


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells, column names and index labels cannot run as formulas (rule in the module docstring)."""
    out = df.copy()
    for i in range(out.shape[1]):  # by position: column names need not be unique
        col = out.iloc[:, i]
        if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) == "string":
            values = col.to_numpy(dtype=object)
            safe = _safe_text(values)
            # the column type Series.map gives text (pandas' str dtype where it infers one)
            out.isetitem(i, pd.array(values if safe is None else safe, dtype=_TEXT_DTYPE))
        elif col.dtype == object or isinstance(col.dtype, pd.StringDtype):
            out.isetitem(i, col.map(safe_cell))  # non-text values (None, NaN, numbers) pass unchanged
    out.columns = _safe_labels(out.columns)
    out.index = _safe_labels(out.index)
    return out


def _safe_labels(labels: pd.Index) -> pd.Index:
    """:func:`safe_cell` of each label; an index of numbers (a row number index) has no text and is kept."""
    return labels if labels.dtype.kind in "iufcb" else labels.map(safe_cell)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, *, index: bool = False) -> None:
    """``spreadsheet_safe(df).to_csv(path, index=index)``."""
    spreadsheet_safe(df).to_csv(path, index=index)
