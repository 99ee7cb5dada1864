"""Every row of every cohort: the all-rows sensitivity analysis beside each one-row-per-cohort analysis.

The primary analysis keeps one row per cohort (:func:`meta.review.running.run.unit_of_analysis`),
as the review did. Where a cohort contributes several usable rows to one analysis (several
tasks, summaries or timepoints that the declaration admits, or two publications of one
cohort), this sensitivity analysis uses them all, with their dependence modelled rather than
ignored: the correlated-and-hierarchical-effects (CHE) working model of Pustejovsky & Tipton
(2022; :func:`meta.multilevel.che`: sampling errors within a cohort correlated with a stated
``r``, random effects for cohorts and for rows within cohorts, REML), and inference that stays
valid when that working model is wrong: cluster-robust CR2 standard errors with Satterthwaite
degrees of freedom (Tipton 2015; Pustejovsky & Tipton 2018; :func:`meta.robust.coef_test`).
With fewer than about 4 degrees of freedom that inference is unreliable (Tipton 2015); such
results carry a warning flag.

The stated r is :data:`ALL_ROWS_R` (0.6, the value Pustejovsky & Tipton use for this working
model when the correlation is not reported); the sweep :data:`R_SWEEP` (0.2, 0.5, 0.8) shows
whether the estimate depends on it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ALL_ROWS_R", "R_SWEEP", "COLUMNS", "AllRows", "all_rows"]

#: the stated within-cohort sampling correlation of the CHE working model
ALL_ROWS_R = 0.6
#: the sweep over that correlation
R_SWEEP = (0.2, 0.5, 0.8)
#: Satterthwaite df below this make the cluster-robust test unreliable (Tipton 2015)
SMALL_DF = 4.0
#: columns of ``dependent.csv`` (one row per evidence set x analysis x r)
COLUMNS = ("set", "analysis_id", "r", "stated", "k_rows", "k_cohorts", "estimate", "se", "df", "ci_low", "ci_high",
           "p", "sigma2_cohort", "sigma2_within", "df_below_4", "note")


@dataclass(frozen=True)
class AllRows:
    """The all-rows sensitivity of one analysis run: ``rows`` (one dict per r, :data:`COLUMNS`
    without set/analysis_id), ``k_rows`` usable rows from ``k_cohorts`` cohorts, and ``note``
    (why no model was fitted, or empty)."""

    k_rows: int
    k_cohorts: int
    rows: tuple[dict, ...]
    note: str = ""

    @property
    def stated(self) -> dict | None:
        return next((r for r in self.rows if r["stated"]), None)

    @property
    def fitted(self) -> bool:
        return bool(self.rows) and not self.note


def _cohorts(rows: pd.DataFrame) -> pd.Series:
    cohort = rows["cohort_id"].astype("string").fillna("").str.strip() if "cohort_id" in rows else pd.Series("", index=rows.index)
    return cohort.where(cohort != "", rows["study_id"].astype(str)).astype(str)


def all_rows(kept: pd.DataFrame, set_aside: pd.DataFrame, ycol: str, vcol: str, *, level: float = 0.95) -> AllRows:
    """The CHE + CR2 fit of every usable row of an analysis (its pooled rows and the rows the
    one-row-per-cohort rule set aside), at :data:`ALL_ROWS_R` and over :data:`R_SWEEP`."""
    from meta.multilevel import che
    from meta.robust import conf_int

    parts = [f for f in (kept, set_aside) if len(f)]
    rows = pd.concat(parts, ignore_index=True) if parts else kept.iloc[0:0]
    k_rows = len(rows)
    cohorts = _cohorts(rows) if k_rows else pd.Series([], dtype=str)
    k_cohorts = int(cohorts.nunique())
    if k_rows == 0:
        return AllRows(0, 0, (), "no usable rows")
    if k_rows == k_cohorts:
        return AllRows(k_rows, k_cohorts, (), "every cohort contributes one row: the primary analysis already uses every row")
    if k_cohorts < 2:
        return AllRows(k_rows, k_cohorts, (), f"{k_rows} rows from a single cohort: cluster-robust inference needs at least 2 cohorts")
    yi, vi = rows[ycol].to_numpy(float), rows[vcol].to_numpy(float)
    out = []
    for r in sorted({ALL_ROWS_R, *R_SWEEP}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-identifiable components and small df are reported as columns
            fit = che(yi, vi, study=cohorts.to_numpy(), r=r, level=level)
            ci = conf_int(fit, cohorts.to_numpy(), vcov="CR2", level=level)
        df = float(ci.df[0])
        sig = np.asarray(fit.sigma2, float)
        out.append({
            "r": r, "stated": r == ALL_ROWS_R, "k_rows": k_rows, "k_cohorts": k_cohorts,
            "estimate": float(ci.beta[0]), "se": float(ci.se[0]), "df": df,
            "ci_low": float(ci.ci_lb[0]), "ci_high": float(ci.ci_ub[0]), "p": float(ci.pval[0]),
            "sigma2_cohort": float(sig[0]) if sig.size else math.nan,
            "sigma2_within": float(sig[1]) if sig.size > 1 else math.nan,
            "df_below_4": bool(df < SMALL_DF),
            "note": (f"Satterthwaite df = {df:.2f} < 4: the cluster-robust test is unreliable (Tipton 2015)"
                     if df < SMALL_DF else ""),
        })
    return AllRows(k_rows, k_cohorts, tuple(out))


def frame(runs) -> pd.DataFrame:
    """``dependent.csv``: every run with an all-rows fit, one row per r (the stated r first)."""
    recs = []
    for run in runs:
        ar = getattr(run, "all_rows", None)
        if ar is None:
            continue
        if not ar.rows:
            recs.append({"set": run.evidence, "analysis_id": run.analysis.analysis_id, "r": math.nan, "stated": False,
                         "k_rows": ar.k_rows, "k_cohorts": ar.k_cohorts, "note": ar.note})
            continue
        for row in sorted(ar.rows, key=lambda x: (not x["stated"], x["r"])):
            recs.append({"set": run.evidence, "analysis_id": run.analysis.analysis_id, **row})
    return pd.DataFrame(recs, columns=list(COLUMNS))
