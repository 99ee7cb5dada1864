"""Sensitivity sweep: every pooled analysis re-run under each estimator, SMD convention and CI method.

:data:`SENSITIVITY_VARIANTS` is the one list of settings (the report's methods text and
its sensitivity table read it); :func:`sensitivity` pools all analyses of one setting in
one call of :func:`meta.pool.pool_many`. HKSJ: Knapp & Hartung 2003 / Hartung & Knapp
2001; REML: Viechtbauer 2005; PM: Paule & Mandel 1982; DL: DerSimonian & Laird 1986.

:func:`prepost_r_sensitivity` re-runs every ``post_vs_pre`` analysis with the pre-post
correlation assumed at each value of :data:`PREPOST_R_SWEEP` (0.2, 0.5, 0.8) for the rows that
do not give their own (rows that report an SD of change, a paired t or an exact paired p keep
their derived r), so the report can show where a verdict depends on r (Cochrane Handbook
6.5.2.8: an imputed correlation calls for a sensitivity analysis).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from meta.review.running.run import LEVEL, AnalysisRun, effect_columns

__all__ = ["SENSITIVITY_VARIANTS", "sensitivity", "PREPOST_R_SWEEP", "PREPOST_COLUMNS", "prepost_r_sensitivity"]

#: assumed pre-post correlations of the r sweep (low, moderate, high)
PREPOST_R_SWEEP = (0.2, 0.5, 0.8)
#: columns of prepost_r_sensitivity.csv
PREPOST_COLUMNS = ["analysis_id", "r", "declared_r", "k", "n_r_assumed", "n_r_derived", "estimate", "ci_low", "ci_high",
                   "p", "expected_direction", "verdict", "holds_under", "depends_on_r"]

#: (label, smd_convention or None for the analysis' own, method or None for the analysis' own, test)
SENSITIVITY_VARIANTS = (
    ("primary", None, None, "z"),
    ("revman DL", "revman", "DL", "z"),
    ("ls DL", "ls", "DL", "z"),
    ("revman REML", "revman", "REML", "z"),
    ("revman PM", "revman", "PM", "z"),
    ("revman DL HKSJ", "revman", "DL", "hksj"),
    ("revman REML HKSJ", "revman", "REML", "hksj"),
)

_COLUMNS = ["analysis_id", "variant", "smd_convention", "method", "test", "k", "estimate", "ci_low", "ci_high", "p", "tau2", "i2"]


def _sweep(yis: list[np.ndarray], vis: list[np.ndarray], *, method: str, test: str, level: float) -> pd.DataFrame:
    """Pool many analyses in one call of :func:`meta.pool.pool_many` (ragged rows padded with NaN).
    Its numpy engine: a handful of analyses do not repay compiling the numba kernel (~2 s)."""
    from meta.pool import pool_many

    kmax = max(len(y) for y in yis)
    Y = np.full((len(yis), kmax), np.nan)
    V = np.full((len(yis), kmax), np.nan)
    for i, (y, v) in enumerate(zip(yis, vis)):
        Y[i, : len(y)] = y
        V[i, : len(v)] = v
    return pool_many(Y, V, method=method, test=test, level=level, engine="numpy").reset_index(drop=True)


def sensitivity(runs: list[AnalysisRun], *, level: float = LEVEL) -> pd.DataFrame:
    """Every pooled analysis (k >= 2) under each of :data:`SENSITIVITY_VARIANTS`.

    Long format: ``analysis_id, variant, smd_convention, method, test, k, estimate,
    ci_low, ci_high, p, tau2, i2``.
    """
    pooled = [r for r in runs if r.k >= 2]
    if not pooled:
        return pd.DataFrame(columns=_COLUMNS)
    frames = []
    for label, conv, method, test in SENSITIVITY_VARIANTS:
        groups: dict[tuple[str, str], list[AnalysisRun]] = {}
        for r in pooled:
            c = conv or r.analysis.smd_convention
            m = method or r.analysis.method
            groups.setdefault((c, m), []).append(r)
        for (c, m), rs in groups.items():
            ycol, vcol = effect_columns(c)
            yis = [r.rows[ycol].to_numpy(float) for r in rs]
            vis = [r.rows[vcol].to_numpy(float) for r in rs]
            res = _sweep(yis, vis, method=m, test=test, level=level)
            cols = [x for x in ("k", "estimate", "ci_low", "ci_high", "p", "tau2", "i2") if x in res.columns]
            f = res[cols].copy()
            f.insert(0, "test", test)
            f.insert(0, "method", m)
            f.insert(0, "smd_convention", c)
            f.insert(0, "variant", label)
            f.insert(0, "analysis_id", [r.analysis.analysis_id for r in rs])
            frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    order = {r.analysis.analysis_id: i for i, r in enumerate(pooled)}
    vorder = {v[0]: i for i, v in enumerate(SENSITIVITY_VARIANTS)}
    out = out.sort_values(["analysis_id", "variant"], key=lambda s: s.map(order) if s.name == "analysis_id" else s.map(vorder), kind="mergesort")
    return out.reset_index(drop=True)


def _with_r(table: pd.DataFrame, pre_post, r: float, pos: np.ndarray) -> pd.DataFrame:
    """``effect_table(pre_post, r=r)`` from ``table`` (``effect_table(pre_post, r=<another r>)``): the rows
    of :func:`meta.review.inputs.study_effects.assumed_r_rows` rebuilt with ``r``, in their places, in
    the columns that depend on r (:data:`~meta.review.inputs.study_effects.R_DEPENDENT_COLUMNS` of both
    variance conventions); every other row and column as ``table`` has it. ``pos``: the positions of
    those rows (``np.flatnonzero(assumed_r_rows(pre_post.outcomes))``)."""
    from meta.review.inputs.study_effects import R_DEPENDENT_COLUMNS
    from meta.review.running.run import effect_table

    if not pos.size:
        return table
    sub = effect_table(dataclasses.replace(pre_post, outcomes=pre_post.outcomes.iloc[pos]), r=r)
    out = table.copy()
    for col in (*R_DEPENDENT_COLUMNS, "yi_ls", "vi_ls"):
        s = out[col].copy()
        s.iloc[pos] = sub[col].to_numpy()
        out[col] = s
    return out


def prepost_r_sensitivity(dataset, analyses, directions: dict | None = None, *, rs=PREPOST_R_SWEEP,
                          level: float = LEVEL) -> pd.DataFrame:
    """Every ``post_vs_pre`` analysis re-run (:func:`meta.review.running.run.run_analysis`, its original evidence
    set) on the effect table built with each assumed r of ``rs`` (:func:`meta.review.running.run.effect_table`
    with ``r=``).

    One row per analysis x r: ``analysis_id, r, declared_r`` (the analysis' own ``prepost_r``,
    NaN if none), ``k, n_r_assumed, n_r_derived`` (rows pooled with the assumed / their own
    r), the primary fit's ``estimate, ci_low, ci_high, p``, ``expected_direction`` (from
    ``directions``: analysis_id -> +1/-1/0/None, the claim's; None: the primary estimate's
    sign), the primary ``verdict`` and ``holds_under`` of its robustness panel, and
    ``depends_on_r`` (True when the verdict differs between the values of r).
    """
    from meta.review.inputs.study_effects import assumed_r_rows
    from meta.review.running.evidence import ORIGINAL, evidence_sets
    from meta.review.running.run import effect_table, run_analysis

    directions = directions or {}
    pp = [a for a in analyses if a.comparison == "post_vs_pre"]
    if not pp:
        return pd.DataFrame(columns=PREPOST_COLUMNS)
    recs = []
    # only the post_vs_pre rows of these analyses' outcomes can enter them: the sweep rebuilds their
    # effect sizes alone (the same rows get the same numbers as in the full table)
    comparison = dataset.outcomes["comparison"].astype("string").fillna("")
    outcome = dataset.outcomes["outcome"].astype("string").fillna("")
    wanted = {o for a in pp for o in a.outcomes}
    rows = (comparison == "post_vs_pre") & outcome.isin(wanted)
    pre_post = dataclasses.replace(dataset, outcomes=dataset.outcomes.loc[rows])
    # a row's effect size depends on r only where it takes the assumed r (assumed_r_rows): the table
    # is built once, and for each further r only those rows are rebuilt and put in their places
    first = pos = None
    for r in rs:
        if first is None:
            table = first = effect_table(pre_post, r=r)
            pos = np.flatnonzero(assumed_r_rows(pre_post.outcomes))
        else:
            table = _with_r(first, pre_post, r, pos)
        texts: dict = {}  # the table's filter columns' text, worked out once for all analyses
        for a in pp:
            sets = evidence_sets(table, a, texts=texts)  # the original evidence set, as the runs of meta.review.reproduce
            run = run_analysis(table, a, level=level, rows=sets[ORIGINAL].matched, evidence=ORIGINAL,
                               other_scale=sets[ORIGINAL].other_scale, direction=directions.get(a.analysis_id), prepost_r=r)
            flags = run.rows["flags"].fillna("").astype(str) if run.k else pd.Series([], dtype=str)
            res, rob = run.result, run.robustness
            recs.append({
                "analysis_id": a.analysis_id,
                "r": r,
                "declared_r": a.prepost_r if a.prepost_r is not None else np.nan,
                "k": run.k,
                "n_r_assumed": int(flags.str.contains("r_assumed").sum()),
                "n_r_derived": int(flags.str.contains("r_derived").sum()),
                "estimate": res.estimate if res is not None else np.nan,
                "ci_low": res.ci_low if res is not None else np.nan,
                "ci_high": res.ci_high if res is not None else np.nan,
                "p": res.p if res is not None else np.nan,
                "expected_direction": {1: "+", -1: "-", 0: "0", None: ""}[rob.direction if rob is not None else directions.get(a.analysis_id)],
                "verdict": rob.primary_verdict if rob is not None else "insufficient data",
                "holds_under": rob.holds_under if rob is not None else "",
            })
    out = pd.DataFrame(recs)
    out["depends_on_r"] = out.groupby("analysis_id")["verdict"].transform(lambda v: v.nunique() > 1)
    order = {a.analysis_id: i for i, a in enumerate(pp)}
    out = out.sort_values(["analysis_id", "r"], key=lambda c: c.map(order) if c.name == "analysis_id" else c, kind="mergesort")
    return out.reset_index(drop=True)[PREPOST_COLUMNS]
