"""The two generated parts of the documentation, regenerated together by ``make docs``
(``python -m meta docs``):

* the README's pooled-results excerpt, between ``<!-- pooled-excerpt:start -->`` and
  ``<!-- pooled-excerpt:end -->`` (:func:`pooled_excerpt`: the analyses of
  :data:`EXCERPT_ANALYSES`, both evidence sets, from a run on the bundled data without writing);
* ``data/README.md``'s coverage table (:func:`meta.review.outputs.coverage.write_coverage`).

Tests compare both with the bundled data (``tests/test_readme.py``, ``tests/test_coverage.py``),
so adding or correcting a study is: edit data/, ``make docs``, ``make test``. Only the text
between the markers changes. The module computes and writes; printing lives in :mod:`meta.cli`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

__all__ = ["EXCERPT_ANALYSES", "START", "END", "pooled_excerpt", "replace_between", "regenerate", "DOCS_COMMAND"]

START = "<!-- pooled-excerpt:start -->"
END = "<!-- pooled-excerpt:end -->"
#: the command that regenerates everything this module writes (named in failure messages)
DOCS_COMMAND = "make docs"
#: analyses shown in the README excerpt (in this order; each with its original and updated row)
EXCERPT_ANALYSES = ("pro_hip_adduction", "cc_hip_adduction", "cc_hip_internal_rotation",
                    "cc_hip_internal_rotation_any", "cc_pelvic_drop", "gr_pain")
EXCERPT_HEADER = ("set", "analysis", "k", "SMD [95% CI]", "95% PI", "I² %", "verdict (robustness)")


def _f(x, nd=2) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(x) else f"{x:.{nd}f}"


def excerpt_rows(pooled: pd.DataFrame, analyses=EXCERPT_ANALYSES) -> list[list[str]]:
    """The excerpt's cells from a pooled table (``pooled.csv`` / ``ReproduceResult.to_frame()``).

    One row per analysis and evidence set (a table without a ``set`` column is the original set).
    """
    p = pooled if "set" in pooled.columns else pooled.assign(set="original")
    rows = []
    for aid in analyses:
        for _, r in p.loc[p["analysis_id"] == aid].iterrows():
            k = int(r["k"])
            if k == 0:
                smd, pi, i2 = "no usable data", "", ""
            else:
                smd = f"{_f(r['estimate'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"
                pi = f"[{_f(r['pi_low'])}, {_f(r['pi_high'])}]" if k >= 2 else ""
                i2 = _f(r["i2"], 1) if k >= 2 else ""
            rows.append([str(r["set"]), aid, str(k), smd, pi, i2, str(r.get("verdict", ""))])
    return rows


def pooled_excerpt(pooled: pd.DataFrame, analyses=EXCERPT_ANALYSES) -> str:
    """The Markdown table of :func:`excerpt_rows` (header, rule, rows)."""
    lines = ["| " + " | ".join(EXCERPT_HEADER) + " |", "| " + " | ".join("---" for _ in EXCERPT_HEADER) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in excerpt_rows(pooled, analyses)]
    return "\n".join(lines)


def replace_between(path: str | os.PathLike, start: str, end: str, body: str) -> bool:
    """Replace the text between the ``start`` and ``end`` marker lines of ``path`` with ``body``.

    Nothing outside the markers changes (line endings kept). Returns True if the file was
    rewritten. ``ValueError`` naming the file and markers unless there is exactly one of each.
    """
    path = Path(path)
    text = path.read_bytes().decode("utf-8")
    n_start, n_end = text.count(start), text.count(end)
    if n_start != 1 or n_end != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{path}: needs exactly one {start} line followed by one {end} line "
                         f"(found {n_start} start and {n_end} end markers)")
    nl = "\r\n" if "\r\n" in text else "\n"
    i, j = text.index(start) + len(start), text.index(end)
    new = text[:i] + nl + body.replace("\n", nl) + nl + text[j:]
    if new == text:
        return False
    path.write_bytes(new.encode("utf-8"))
    return True


def regenerate(data_dir: str | os.PathLike = "data", readme: str | os.PathLike = "README.md") -> list[tuple[Path, bool]]:
    """Rewrite the README excerpt and ``<data_dir>/README.md``'s coverage table from ``data_dir``.

    Returns ``[(path, rewritten), ...]``. Raises ``meta.review.inputs.data.DataError`` /
    ``meta.review.inputs.analysis.AnalysesError`` on invalid data (nothing written), ``ValueError`` for a
    missing marker, ``OSError`` when a file cannot be written.
    """
    from meta.review.outputs.coverage import coverage_table, write_coverage
    from meta.review.inputs.data import load
    from meta.review.reproduce import reproduce

    data_dir = Path(data_dir)
    res = reproduce(data_dir, out_dir=None, progress=None)
    ds = load(data_dir)
    # check both markers before writing either file
    for path, (s, e) in ((Path(readme), (START, END)), (data_dir / "README.md", ("<!-- coverage:start -->", "<!-- coverage:end -->"))):
        text = path.read_text(encoding="utf-8")
        if text.count(s) != 1 or text.count(e) != 1:
            raise ValueError(f"{path}: needs exactly one {s} line followed by one {e} line")
    out = [(Path(readme), replace_between(readme, START, END, pooled_excerpt(res.to_frame())))]
    out.append((data_dir / "README.md", write_coverage(data_dir / "README.md", coverage_table(ds))))
    return out
