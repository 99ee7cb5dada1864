"""CSV files as lists of text rows, for tests that edit a copy of data/ cell by cell."""

from __future__ import annotations

import csv
from pathlib import Path


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def write_rows(path: Path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
