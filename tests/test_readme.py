"""The README's pooled-results excerpt is what the pipeline computes on the bundled data.

A stale excerpt would tell a reader numbers the package no longer produces.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meta import reproduce

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- pooled-excerpt:start -->", "<!-- pooled-excerpt:end -->"


def _excerpt_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text[text.index(START) + len(START): text.index(END)]
    lines = [ln for ln in body.strip().splitlines() if ln.startswith("|")][2:]  # skip header + rule
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


@pytest.fixture(scope="module")
def runs():
    res = reproduce.reproduce(ROOT / "data", out_dir=None, progress=None)
    return {r.analysis.analysis_id: r for r in res.runs}


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:.2f}, {hi:.2f}]"


def test_readme_excerpt_matches_a_fresh_run(runs):
    rows = _excerpt_rows()
    assert len(rows) >= 4
    for aid, k, smd, pi, i2 in rows:
        run = runs[aid]
        assert int(k) == run.k, aid
        if run.k == 0:
            assert smd == "no usable data", aid
            continue
        r = run.result
        assert smd == f"{r.estimate:.2f} {_ci(r.ci_low, r.ci_high)}", aid
        if run.k >= 2:
            assert pi == _ci(r.pi_low, r.pi_high), aid
            assert i2 == f"{r.i2:.1f}", aid
        else:
            assert pi == "" and i2 == "", aid


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.strip()]
    assert commands == ["make reproduce", "make test"]
