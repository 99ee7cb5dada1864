"""Sensitivity sweep: every pooled analysis re-run under each estimator, SMD convention and CI method.

:data:`SENSITIVITY_VARIANTS` is the one list of settings (the report's methods text and
its sensitivity table read it); :func:`sensitivity` pools all analyses of one setting in
one call of :func:`meta.pool.pool_many`. HKSJ: Knapp & Hartung 2003 / Hartung & Knapp
2001; REML: Viechtbauer 2005; PM: Paule & Mandel 1982; DL: DerSimonian & Laird 1986.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from meta.run import LEVEL, AnalysisRun, effect_columns

__all__ = ["SENSITIVITY_VARIANTS", "sensitivity"]

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
