"""The report's living-update parts: "What newer studies say" and the per-analysis update paragraph.

Rendering only (the sets are chosen by :mod:`meta.evidence`, the numbers come from the runs, the
published results from :mod:`meta.published`). Every text from a CSV cell goes through
:func:`meta.report.md_text` / :func:`meta.report.md_code` or a pipe table of
:func:`meta.report._md_table` (which escapes every cell). Published SMDs are shown as printed;
the source's ``sign_convention`` note is quoted verbatim beside every row, so a sign that differs
from ours (group 1 minus group 2) is never silently flipped or silently compared.
"""

from __future__ import annotations

import math

import pandas as pd

from meta.report import _md_table, md_code, md_text

__all__ = ["newer_studies_section", "analysis_update_md", "published_md", "added_studies_text"]

SIGN_NOTE = ("Published SMDs are shown exactly as each source prints them; the *sign convention* column quotes "
             "the recorded note verbatim. Ours is group 1 minus group 2 (PFP minus control, post minus pre); "
             "where a source's sign means something else the note says so, and the number is not flipped.")


def _num(x, nd=2) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(x) else f"{x:.{nd}f}"


def _ci_of(est, lo, hi) -> str:
    e = _num(est)
    if not e:
        return ""
    if _num(lo) and _num(hi):
        return f"{e} [{_num(lo)}, {_num(hi)}]"
    return f"{e} (no CI printed)"


def _result_text(run) -> str:
    if run is None:
        return "not run"
    if run.k == 0:
        return "k = 0, no usable data"
    r = run.result
    kind = "single study" if run.k == 1 else "SMD"
    return f"k = {run.k}, {kind} {_ci_of(r.estimate, r.ci_low, r.ci_high)}"


def _year(v) -> str:
    try:
        return str(int(float(v)))
    except (TypeError, ValueError):
        return "year not stated"


def added_studies_text(run) -> str:
    """The update studies of an updated-set run: those pooled (``id (year)``), and those that matched
    without a usable SMD or on another scale. Escaped for Markdown."""
    if run is None:
        return ""
    from meta.evidence import UPDATE_REVIEW_SET

    def ids(df):
        if df is None or len(df) == 0 or "review_set" not in df:
            return []
        d = df.loc[df["review_set"].astype("string").fillna("") == UPDATE_REVIEW_SET]
        out = {}
        for _, r in d.iterrows():
            out.setdefault(str(r["study_id"]), _year(r.get("year")))
        return [f"{md_text(s)} ({y})" for s, y in out.items()]

    pooled = ids(run.rows)
    unusable = [s for s in ids(run.unusable) if s not in pooled]
    other = [s for s in ids(getattr(run, "other_scale", None)) if s not in pooled]
    parts = [("entered: " + ", ".join(pooled)) if pooled else "none entered the pooled estimate"]
    if unusable:
        parts.append("matched without a usable SMD: " + ", ".join(unusable))
    if other:
        parts.append("matched on another SMD scale, not pooled: " + ", ".join(other))
    return "; ".join(parts)


def published_md(rows: pd.DataFrame) -> str:
    """A pipe table of published pooled results (every cell escaped); '' when there are none."""
    if rows is None or len(rows) == 0:
        return ""

    def k_text(v):
        try:
            return str(int(float(v)))
        except (TypeError, ValueError):
            return "not stated"

    t = pd.DataFrame(
        {
            "source": rows["source_id"].astype("string").fillna(""),
            "outcome": rows["outcome"].astype("string").fillna(""),
            "population; task; design": [
                "; ".join(str(x) for x in (p, t, d) if isinstance(x, str) and x)
                for p, t, d in zip(rows["population"], rows["task"], rows["design"])
            ],
            "k": [k_text(v) for v in rows["k"]],
            "SMD [CI] as printed": [_ci_of(e, lo, hi) or "no SMD printed" for e, lo, hi in
                                    zip(rows["smd"], rows["ci_low"], rows["ci_high"])],
            "evidence": rows["evidence_level"].astype("string").fillna(""),
            "sign convention (verbatim)": rows["sign_convention"].astype("string").fillna(""),
        }
    )
    return _md_table(t)


def _published(res, outcomes, comparison=None, constructs=()) -> pd.DataFrame:
    from meta.published import published_for

    return published_for(getattr(res, "published", None), getattr(res, "vocabulary", None),
                         outcomes=outcomes, constructs=constructs, comparison=comparison)


def analysis_update_md(res, run, updated) -> str:
    """The per-analysis paragraph: the updated set's result and the published results on the same outcome."""
    a = run.analysis
    out = []
    if updated is not None:
        same = updated.k == run.k and list(updated.rows["outcomes_row"]) == list(run.rows["outcomes_row"])
        line = f"**Updated set** (original plus studies published since April 2015): {_result_text(updated)}"
        line += " -- same as the original set" if same else ""
        out.append(line + f"; newer studies {added_studies_text(updated)}.\n")
        fig = [f for f in getattr(updated, "figures", ()) if f.endswith("_cumulative.png")]
        if fig:
            import urllib.parse

            out.append(f"\n![Cumulative forest plot by publication year: {md_text(a.analysis_id)}]"
                       f"({urllib.parse.quote(fig[0])})\n")
    pub = _published(res, a.outcomes, a.comparison)
    if len(pub):
        out.append("\nPublished pooled results on the same outcome (successor reviews; not recomputed):\n")
        out.append(published_md(pub))
    return "\n".join(out) + ("\n" if out else "")


def overview(res) -> pd.DataFrame:
    """One row per analysis: k and SMD [95% CI] in the original and the updated set, the newer studies pooled."""
    upd = {r.analysis.analysis_id: r for r in getattr(res, "updated", ())}
    recs = []
    for r in res.runs:
        u = upd.get(r.analysis.analysis_id)

        def smd(run):
            if run is None or run.k == 0:
                return "no usable data"
            return _ci_of(run.result.estimate, run.result.ci_low, run.result.ci_high) + (" (single study)" if run.k == 1 else "")

        new = []
        if u is not None and "review_set" in u.rows:
            new = list(dict.fromkeys(u.rows.loc[u.rows["review_set"].astype("string").fillna("") == "update", "study_id"].astype(str)))
        recs.append({"analysis": r.analysis.analysis_id, "k original": r.k, "SMD [95% CI] original": smd(r),
                     "k updated": u.k if u is not None else "", "SMD [95% CI] updated": smd(u),
                     "newer studies pooled": ", ".join(new)})
    return pd.DataFrame(recs)


def newer_studies_section(res) -> str:
    """``## What newer studies say``: per claim, the verdict on both sets, the update studies that
    entered, and the successors' published pooled results for the claim's construct."""
    from meta.evidence import set_label

    out = ["## What newer studies say\n"]
    out.append(
        "Every analysis is run twice: on the **original set** (the reconstruction of the review's studies, to its "
        "April 2015 search) and on the **updated set** (the original set plus studies published since that pass the "
        "analysis' own filters; `studies.csv` column `review_set`). Both get the verdict rule of the claims table. "
        "SMDs on different scales are never pooled together (`es_scale`: raw-score SD vs SD of change). "
        + SIGN_NOTE + "\n"
    )
    out.append("### Each analysis on both sets\n")
    out.append(_md_table(overview(res)))
    out.append("")
    claims = res.claims
    if claims is None or len(claims) == 0:
        out.append("_(review_claims.csv has no rows)_\n")
        return "\n".join(out) + "\n"
    if "set" not in claims.columns:
        claims = claims.assign(set="original")
    upd_by_id = {r.analysis.analysis_id: r for r in getattr(res, "updated", ())}
    raw = getattr(res, "claims_source", None)
    for cid in dict.fromkeys(claims["claim_id"].astype(str)):
        c = claims.loc[claims["claim_id"].astype(str) == cid]
        first = c.iloc[0]
        out.append(f"### {md_text(cid)}: {md_text(first['claim'])}\n")
        for set_name in ("original", "updated"):
            row = c.loc[c["set"] == set_name]
            if len(row):
                r = row.iloc[0]
                out.append(f"- {set_label(set_name)}: **{md_text(r['verdict'])}** "
                           f"({md_text(r['detail']) or 'no analysis'})")
        aids = [x for x in str(first.get("analyses", "") or "").split(";") if x]
        added = [f"{md_code(aid)}: {added_studies_text(upd_by_id.get(aid))}" for aid in aids if aid in upd_by_id]
        out.append("- Newer studies: " + ("; ".join(added) if added else "no analysis names this claim"))
        construct = None
        if raw is not None and "construct" in raw.columns:
            m = raw.loc[raw["claim_id"].astype(str) == cid]
            if len(m) and isinstance(m["construct"].iloc[0], str):
                construct = m["construct"].iloc[0]
        comparison = None
        outcome = None
        if raw is not None:
            m = raw.loc[raw["claim_id"].astype(str) == cid]
            if len(m):
                comparison = m["comparison"].iloc[0] if "comparison" in m else None
                outcome = m["outcome"].iloc[0] if "outcome" in m else None
        pub = _published(res, [outcome] if isinstance(outcome, str) else [],
                         comparison if isinstance(comparison, str) else None,
                         [construct] if construct else [])
        if len(pub):
            out.append("- Successors' published pooled results on this construct:\n")
            out.append(published_md(pub))
        else:
            out.append("- Successors' published pooled results on this construct: none recorded in "
                       "`published_pooled.csv`.\n")
        out.append("")
    return "\n".join(out) + "\n"
