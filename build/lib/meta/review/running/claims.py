"""Claims of the review against our results: the verdict rule and ``claims.csv``.

Rule (:func:`classify`), applied per analysis that names the claim in
``analyses.csv`` (column ``claim_ids``):

* ``insufficient data`` -- k < 2 (no usable rows, or a single study: its SMD
  is still shown);
* ``agrees`` -- the pooled estimate has the sign of ``expected_direction`` and
  the CI excludes 0;
* ``direction only`` -- the sign matches but the CI includes 0;
* ``disagrees`` -- the estimate has the opposite sign (whatever the CI);
* for an expected direction 0 (no difference; ``review_claims.csv`` itself only
  admits +1 or -1): ``agrees`` when the CI includes 0, ``disagrees`` otherwise.

A claim spoken to by several analyses gets the common verdict when all
analyses with k >= 2 share it, ``mixed`` otherwise; each analysis' verdict is
listed. :func:`direction_votes` counts cohorts by sign beside (never instead
of) the verdict (Cochrane Handbook, ch. 12.2).

The rule itself lives in :func:`meta.verdicts.verdict` (one place; the robustness panel
applies it to every method).  Beside each verdict ``claims.csv`` says under how many
methods of the robustness panel it holds (``holds_under``, "n of m": methods whose verdict
equals the primary analysis' verdict, judged against the claim's expected direction) and
flags a verdict the methods disagree on (``fragile``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from meta._format import report_num as _f
from meta.verdicts import VERDICTS
from meta.verdicts import verdict as _verdict

__all__ = ["VERDICTS", "parse_direction", "classify", "direction_votes", "claims_table", "analysis_direction",
           "robustness_text", "verdict_text", "run_verdict", "SINGLE_STUDY"]

#: what stands in for a method count when an analysis has one study: nothing was pooled, so
#: "holds under 5 of 5 methods" would read as robust evidence
SINGLE_STUDY = "single study"


def robustness_text(run) -> str:
    """``holds under 3 of 5 methods: fragile`` / ``holds under 5 of 5 methods`` (k >= 2), ``single
    study`` (k = 1), ``no usable data`` (k = 0). A single study is never called robust."""
    if run is None or run.k == 0:
        return "no usable data"
    if run.k == 1:
        return SINGLE_STUDY
    rob = getattr(run, "robustness", None)
    if rob is None:
        return ""
    return f"holds under {rob.holds_under} methods" + (": fragile" if rob.fragile else "")


def verdict_text(verdict: str, robustness: str) -> str:
    """A verdict with its robustness: ``agrees (holds under 3 of 5 methods: fragile)``."""
    return f"{verdict} ({robustness})" if robustness else str(verdict)


def run_verdict(run) -> str:
    """The verdict of one run against the direction its robustness panel was judged by (its first
    claim's, else the primary estimate's sign), with its robustness."""
    if run is None or run.k == 0 or run.result is None:
        return verdict_text("insufficient data", robustness_text(run))
    rob = getattr(run, "robustness", None)
    d = rob.direction if rob is not None else None
    r = run.result
    return verdict_text(classify(run.k, r.estimate, r.ci_low, r.ci_high, d), robustness_text(run))


def parse_direction(value) -> int | None:
    """Expected sign of the SMD: +1, -1, 0 or None when missing or unreadable.

    ``review_claims.csv`` and ``outcomes.csv`` hold ``+1`` or ``-1`` (``meta.review.inputs.data`` checks
    it and loads it as a number); a number gives its sign, text ``+1``/``1``/``-1``/``0``
    its value.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return int(np.sign(value))
    return {"+1": 1, "1": 1, "-1": -1, "0": 0}.get(str(value).strip())


def classify(k: int, estimate: float, ci_low: float, ci_high: float, expected: int | None) -> str:
    """Verdict of one analysis against one claim: :func:`meta.verdicts.verdict` (rule in the module docstring)."""
    return _verdict(k, estimate, ci_low, ci_high, expected)


def analysis_direction(analysis, claims: pd.DataFrame | None) -> int | None:
    """The expected direction of the first claim of ``analysis.claim_ids`` that states one
    (+1/-1/0), None when the analysis names no claim (its robustness is then judged against the
    primary estimate's sign)."""
    if claims is None or len(claims) == 0 or "claim_id" not in claims:
        return None
    by_id = {str(c["claim_id"]): c for _, c in claims.iterrows()}
    for cid in analysis.claim_ids:
        if cid in by_id:
            exp = _expected(by_id[cid])
            if exp is not None:
                return exp
    return None


_VERB = {
    "agrees": "agrees in direction and significance",
    "direction only": "agrees in direction only",
    "disagrees": "has the opposite sign",
}


def _ci(r) -> str:
    return f"{_f(r.estimate)} [{_f(r.ci_low)}, {_f(r.ci_high)}]"


def _claim_text(row: pd.Series) -> str:
    """The claim as stated (``claim_text``), or composed from evidence level, outcome, comparison and population."""
    t = row.get("claim_text")
    if isinstance(t, str) and t.strip():
        return t.strip()
    parts = [str(row[c]) for c in ("evidence_level", "outcome", "comparison", "population") if c in row and not pd.isna(row[c])]
    return ", ".join(parts) or str(row.get("claim_id", ""))


def _expected(row: pd.Series):
    return parse_direction(row.get("expected_direction"))  # a required column of review_claims.csv


def direction_votes(runs, expected: int | None) -> str:
    """Direction-only evidence for a claim: how many cohorts point which way.

    Counts one sign per cohort over every row matching the claim's analyses,
    usable or not: the sign of the pooled row's SMD, else of any row's SMD,
    else the ``direction`` the source states in words. A vote count ignores
    precision and sample size, so it is shown beside the verdict, never used
    for it (Cochrane Handbook, ch. 12.2: vote counting based on the direction
    of effect). Empty when no row states a direction or the claim has none.
    """
    if expected not in (1, -1):
        return ""
    best: dict[str, tuple[int, int, str]] = {}
    for r in runs:
        pooled_rows = set(r.rows["outcomes_row"]) if "outcomes_row" in r.rows else set()
        for _, row in r.matched.iterrows():
            cohort = row.get("cohort_id")
            cohort = str(cohort) if isinstance(cohort, str) and cohort else str(row["study_id"])
            yi = row.get("yi")
            if yi is not None and pd.notna(yi) and np.isfinite(yi) and yi != 0:
                rank, sign = (0 if row.get("outcomes_row") in pooled_rows else 1), int(np.sign(yi))
            elif "direction" in row and pd.notna(row["direction"]) and parse_direction(row["direction"]) in (1, -1):
                rank, sign = 2, parse_direction(row["direction"])
            else:
                continue
            if cohort not in best or rank < best[cohort][0]:
                best[cohort] = (rank, sign, str(row["study_id"]))
    if not best:
        return ""
    agree = sorted(sid for _, s, sid in best.values() if s == expected)
    oppose = sorted(sid for _, s, sid in best.values() if s != expected)
    text = f"{len(agree)} of {len(best)} cohorts in the expected direction"
    if agree:
        text += f" ({', '.join(agree)})"
    if oppose:
        text += f"; opposite: {', '.join(oppose)}"
    return text


def claims_table(claims: pd.DataFrame | None, runs) -> pd.DataFrame:
    """One row per row of ``review_claims.csv`` with our verdict.

    Columns: ``claim_id, claim, expected_direction, analyses, k, estimate,
    ci_low, ci_high, verdict, holds_under, fragile, detail, direction_votes`` (see
    :func:`direction_votes`); ``k``/estimate are those of the first
    analysis naming the claim.  ``holds_under``: for each pooled analysis (k >= 2) of the
    claim, under how many methods of its robustness panel the verdict holds ("n of m"; with
    several analyses ``id: n of m`` joined by ``; ``); ``fragile``: True when the methods of
    any of them disagree on the verdict.
    """
    from meta.review.running.levels import analysis_grade, compare_levels, level_name

    cols = ["claim_id", "claim", "expected_direction", "analyses", "k", "estimate", "ci_low", "ci_high", "verdict",
            "holds_under", "fragile", "verdict_text", "review_level", "level", "level_rule", "level_vs_review",
            "detail", "direction_votes"]
    if claims is None or len(claims) == 0:
        return pd.DataFrame(columns=cols)
    recs = []
    for _, c in claims.iterrows():
        cid = str(c.get("claim_id", ""))
        exp = _expected(c)
        rs = [r for r in runs if cid in r.analysis.claim_ids]
        verdicts, details, holds, fragile, texts = [], [], [], False, []
        for r in rs:
            rob = r.robustness.judge(exp) if getattr(r, "robustness", None) is not None and r.k >= 2 else None
            if rob is not None:
                holds.append((r.analysis.analysis_id, rob.holds_under))
                fragile = fragile or rob.fragile
                texts.append(f"holds under {rob.holds_under} methods" + (": fragile" if rob.fragile else ""))
            else:
                if r.k == 1:  # a single study: no method count (k = 0: nothing to judge, left empty)
                    holds.append((r.analysis.analysis_id, SINGLE_STUDY))
                texts.append(robustness_text(r))
            res = r.result
            v = classify(r.k, getattr(res, "estimate", np.nan), getattr(res, "ci_low", np.nan), getattr(res, "ci_high", np.nan), exp)
            if r.k == 0:
                details.append(f"{r.analysis.analysis_id}: no usable data")
            elif r.k == 1:
                alone = classify(2, res.estimate, res.ci_low, res.ci_high, exp)  # what the one study shows on its own
                details.append(
                    f"{r.analysis.analysis_id}: single study ({r.rows['study_id'].iloc[0]}) SMD {_ci(res)}"
                    f"{'; on its own it ' + _VERB[alone] if alone in _VERB else ''}"
                )
            else:
                details.append(f"{r.analysis.analysis_id}: {v}, k={r.k}, SMD {_ci(res)}")
                verdicts.append(v)
        if not rs:
            verdict = "insufficient data"
            details.append("no analysis in analyses.csv names this claim")
        elif not verdicts:
            verdict = "insufficient data"
        elif len(set(verdicts)) == 1:
            verdict = verdicts[0]
        else:
            verdict = "mixed"
        first = rs[0] if rs else None
        fr = first.result if first is not None else None
        rtext = (texts[0] if len(texts) == 1 else
                 "; ".join(f"{r.analysis.analysis_id}: {t}" for r, t in zip(rs, texts))) if rs else "no analysis"
        g = analysis_grade(first) if first is not None else None
        review_level = level_name(c.get("evidence_level"))
        recs.append(
            {
                "claim_id": cid,
                "claim": _claim_text(c),
                "expected_direction": {1: "+", -1: "-", 0: "0", None: "?"}[exp],
                "analyses": ";".join(r.analysis.analysis_id for r in rs),
                "k": first.k if first is not None else 0,
                "estimate": getattr(fr, "estimate", np.nan),
                "ci_low": getattr(fr, "ci_low", np.nan),
                "ci_high": getattr(fr, "ci_high", np.nan),
                "verdict": verdict,
                "holds_under": holds[0][1] if len(holds) == 1 else "; ".join(f"{a}: {h}" for a, h in holds),
                "fragile": fragile if any(r.k >= 2 for r in rs) else "",
                "verdict_text": verdict_text(verdict, rtext),
                "review_level": review_level,
                "level": g.text if g is not None else "",
                "level_rule": g.rule if g is not None else "",
                "level_vs_review": compare_levels(review_level, g) if g is not None else "",
                "detail": "; ".join(details),
                "direction_votes": direction_votes(rs, exp),
            }
        )
    return pd.DataFrame(recs, columns=cols)
