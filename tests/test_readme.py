"""The README's pooled-results excerpt is what the pipeline computes on the bundled data.

A stale excerpt would tell a reader numbers the package no longer produces. After a data change,
``make docs`` (``python -m meta docs``) regenerates it and data/README.md's coverage table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meta.review import reproduce

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- pooled-excerpt:start -->", "<!-- pooled-excerpt:end -->"
STALE = "README.md's pooled excerpt is stale: run `make docs` (python -m meta docs) and commit README.md"


def _excerpt_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text[text.index(START) + len(START): text.index(END)]
    lines = [ln for ln in body.strip().splitlines() if ln.startswith("|")][2:]  # skip header + rule
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


@pytest.fixture(scope="module")
def pooled():
    res = reproduce.reproduce(ROOT / "data", out_dir=None, progress=None)
    p = res.to_frame()
    return {(r["set"], r["analysis_id"]): r for _, r in p.iterrows()}


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:.2f}, {hi:.2f}]"


def test_readme_excerpt_matches_a_fresh_run(pooled):
    rows = _excerpt_rows()
    assert len(rows) >= 4
    assert {s for s, *_ in rows} == {"original", "updated"}, STALE
    for set_, aid, k, smd, pi, i2, verdict in rows:
        r = pooled.get((set_, aid))
        assert r is not None, f"{aid} [{set_}] is not in pooled.csv; {STALE}"
        assert int(k) == r["k"], f"{aid} [{set_}]: {STALE}"
        # every verdict carries its robustness; a single study says so instead of a method count
        assert verdict == r["verdict"] and "(" in verdict, f"{aid} [{set_}]: {STALE}"
        assert ("single study" in verdict) == (r["k"] == 1) and ("of 5 methods" in verdict) == (r["k"] >= 2)
        if r["k"] == 0:
            assert smd == "no usable data", f"{aid} [{set_}]: {STALE}"
            continue
        assert smd == f"{r['estimate']:.2f} {_ci(r['ci_low'], r['ci_high'])}", f"{aid} [{set_}]: {STALE}"
        if r["k"] >= 2:
            assert pi == _ci(r["pi_low"], r["pi_high"]), f"{aid} [{set_}]: {STALE}"
            assert i2 == f"{r['i2']:.1f}", f"{aid} [{set_}]: {STALE}"
        else:
            assert pi == "" and i2 == "", f"{aid} [{set_}]: {STALE}"


def test_readme_names_make_docs_where_a_study_is_added():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Adding or correcting a study"):]
    section = section[: section.index("\n## ", 5)]
    assert "make docs" in section


def test_make_docs_target_runs_meta_docs():
    mk = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^docs:.*\n\t.*-m meta docs", mk, re.M)


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.strip()]
    assert commands == ["make reproduce", "make test"]
