"""Helpers shared by the notebook tests: a fingerprint of folders a notebook must not change, and
every float of a reference fixture (each must appear as a literal in the notebook's code)."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fingerprint(*folders: Path) -> dict[str, str]:
    return {
        str(f.relative_to(ROOT)): hashlib.sha256(f.read_bytes()).hexdigest()
        for folder in folders
        for f in sorted(folder.rglob("*"))
        if f.is_file() and ".ipynb_checkpoints" not in f.parts
    }


def numbers(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from numbers(v)
    elif isinstance(x, list):
        for v in x:
            yield from numbers(v)
    elif isinstance(x, float):
        yield x
