"""Running one declared analysis: select its rows, keep one per cohort, pool and test them.

:func:`effect_table` computes one SMD per outcome row (``meta.review.inputs.study_effects``, both
conventions side by side); :func:`run_analysis` applies one :class:`meta.review.inputs.analysis.Analysis`
to it and returns an :class:`AnalysisRun`. Rules (the report's methods section states them
from the constants used here):

* **Row selection** (:func:`select_rows`) -- an analysis takes the outcome rows whose
  ``outcome`` is one of the analysis' outcomes, whose ``comparison`` equals the analysis'
  comparison, and which pass every filter in the ``filters`` column. Filters read
  ``key=v1|v2;key2!=v3``; a key is a column of the effect-size table (``timepoint``,
  ``task``, ...) or of ``studies.csv`` (``design``, ``population_sex``, ``review_match``,
  ...). Unless the filter names ``review_match`` itself,
  ``review_match=``:data:`meta.review.inputs.analysis.DEFAULT_REVIEW_MATCH` is added.
* **Usable rows** (:func:`usable`) -- rows with a finite ``yi`` and ``vi > 0``; the others
  (``route == "none"``) are listed as gaps with the reason given by ``study_effects``.
* **Unit of analysis** (:func:`unit_of_analysis`) -- one analysis never pools two rows of
  the same ``cohort_id``. Within a cohort the kept row is the first after sorting by
  (1) task: ``running`` before any other single task before ``averaged_across_tasks``;
  (2) route: :data:`meta.review.inputs.study_effects.ROUTE_RANK`; (3) larger total n; (4) ``study_id``;
  (5) row order in ``outcomes.csv``. The others are set aside and reported with the reason.
* **Small k** -- k = 0: "no usable data"; k = 1: ``meta.pool.pool``'s k = 1 result, the
  study's own SMD with its Wald-type CI, never pooled with anything and never dropped;
  k >= 2: random-effects pool with the analysis' method (the primary analysis: DL + Wald z,
  as the review).
* **Robustness** -- every analysis with k >= 1 is also fitted under the methods of
  :data:`meta.robustness.DEFAULT_PANEL` (REML and Paule-Mandel with the HKSJ interval, the
  common-effect model, a Bayesian model with a half-normal(0.5) prior on tau) and each
  verdict is judged against the direction the analysis' first claim expects (or the primary
  estimate's sign): ``AnalysisRun.robustness``.
* **Small-study tests** -- Egger's regression test, trim-and-fill and the funnel plot only
  for k >= the analysis' ``bias_min_k``: :data:`meta.review.inputs.analysis.SMALL_STUDY_MIN_K` (10;
  Sterne et al. 2011, BMJ 343:d4002) unless ``analyses.csv`` lowers it explicitly
  (``small_study_min_k``), in which case the report repeats the warning.
* **Pre-post correlation** -- ``post_vs_pre`` rows that report the SD of their change, a
  paired t or an exact paired p derive their own r (``r_derived``); an analysis may state an
  assumed r (``prepost_r``, with its source) for the others (``r_assumed``):
  :func:`effect_table` with ``r=``.

References: Deeks JJ, Higgins JPT (2010) Statistical algorithms in Review Manager 5;
Higgins JPT et al. (eds) Cochrane Handbook, ch. 6 and 10; Viechtbauer W (2010) metafor,
J Stat Softw 36(3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from meta.review.inputs.analysis import SMALL_STUDY_MIN_K, Analysis, Filter
from meta.review.inputs.data import STUDY_ID_PATTERN
from meta.review.inputs.study_effects import ROUTE_RANK

__all__ = [
    "AnalysisRun",
    "annotate",
    "select_rows",
    "usable",
    "unit_of_analysis",
    "effect_table",
    "effect_columns",
    "run_analysis",
    "robustness_panel",
    "EFFECT_OPTIONS",
    "LEVEL",
    "BIAS_MIN_K",
]

#: options of meta.review.inputs.study_effects.study_effects used for every row (reported in the methods):
#: "p < x" used as the bound p = x (flagged); no pre-post correlation assumed for post_vs_pre rows
EFFECT_OPTIONS = {"inequality": "bound", "r": None}
#: confidence level of every interval of a run
LEVEL = 0.95
#: smallest k for Egger's test and trim-and-fill unless an analysis lowers it (Sterne et al. 2011)
BIAS_MIN_K = SMALL_STUDY_MIN_K
AVERAGED_TASK = "averaged_across_tasks"


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def effect_columns(convention: str) -> tuple[str, str]:
    """``(yi column, vi column)`` of the effect table for an SMD convention: ``yi``/``vi`` for
    ``revman``, ``yi_<convention>``/``vi_<convention>`` otherwise (see :func:`effect_table`)."""
    if convention == "revman":
        return "yi", "vi"
    return f"yi_{convention}", f"vi_{convention}"


# --------------------------------------------------------------------------- selection


def annotate(effects: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """Join study-level columns (design, population_sex, review_match, ...) onto the effects.

    Columns already in ``effects`` win.
    """
    eff = effects.copy()
    if "outcomes_row" not in eff:
        eff.insert(0, "outcomes_row", np.arange(len(eff)))
    extra = [c for c in studies.columns if c not in eff.columns or c == "study_id"]
    st = studies[extra].drop_duplicates("study_id")
    merged = eff.merge(st, on="study_id", how="left", validate="many_to_one")
    merged.index = eff.index
    return merged


def _matches(series: pd.Series, f: Filter) -> pd.Series:
    from meta.review.running.evidence import _isin

    hit = _isin(series, f.values)  # the cells as stripped text ("" for NA), judged once per distinct value
    return ~hit if f.negate else hit


def select_rows(table: pd.DataFrame, analysis: Analysis, *, tasks: bool = True) -> pd.DataFrame:
    """Rows of the annotated effect table that belong to ``analysis`` (usable or not): its
    outcome(s), comparison, filters and (``tasks=True``) declared tasks (``Analysis.tasks``);
    ``tasks=False`` keeps rows of every task."""
    from meta.review.running.evidence import task_mask

    keep = table["outcome"].isin(analysis.outcomes) & (table["comparison"] == analysis.comparison)
    if tasks:
        keep &= task_mask(table, analysis)
    for f in analysis.effective_filters:
        if f.key not in table.columns:
            raise KeyError(f"filter key {f.key!r} of analysis {analysis.analysis_id} is not a column")
        keep &= _matches(table[f.key], f)
    return table.loc[keep]


def usable(rows: pd.DataFrame, ycol: str = "yi", vcol: str = "vi") -> pd.Series:
    """True where the row has a finite SMD and a positive variance."""
    yi = pd.to_numeric(rows[ycol], errors="coerce")
    vi = pd.to_numeric(rows[vcol], errors="coerce")
    return np.isfinite(yi) & np.isfinite(vi) & (vi > 0)


def _task_rank(task) -> int:
    t = _cell(task).lower()
    if t == "running":
        return 0
    if t == AVERAGED_TASK:
        return 2
    return 1


def unit_of_analysis(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep one row per ``cohort_id`` (see the module docstring for the order).

    Returns ``(kept, set_aside)``; ``set_aside`` has a ``reason`` column naming
    the kept row of the same cohort and the criterion that decided.
    """
    if rows.empty:
        return rows, rows.assign(reason=pd.Series(dtype=str))
    r = rows.copy()
    cohort = r["cohort_id"].astype("string").fillna("").str.strip()
    r["_cohort"] = cohort.where(cohort != "", r["study_id"].astype(str))
    r["_task"] = [_task_rank(t) for t in r.get("task", pd.Series("", index=r.index))]
    r["_route"] = [ROUTE_RANK.get(_cell(x), 9) for x in r["route"]]
    n = pd.to_numeric(r.get("n1"), errors="coerce").fillna(0) + pd.to_numeric(r.get("n2"), errors="coerce").fillna(0)
    r["_n"] = -n
    r["_order"] = r["outcomes_row"] if "outcomes_row" in r else np.arange(len(r))
    keys = ["_task", "_route", "_n", "study_id", "_order"]
    r = r.sort_values(["_cohort"] + keys, kind="mergesort")
    first = ~r["_cohort"].duplicated()
    kept = r.loc[first]
    aside = r.loc[~first].copy()
    aside["reason"] = _set_aside_reasons(kept, aside, keys)
    drop = ["_cohort", "_task", "_route", "_n", "_order"]
    kept = kept.sort_values("_order", kind="mergesort").drop(columns=drop)
    return kept, aside.drop(columns=drop)


def _set_aside_reasons(kept: pd.DataFrame, aside: pd.DataFrame, keys: list[str]) -> list[str]:
    """Why each row of ``aside`` was set aside: the kept row of its cohort and the first sort key in
    which they differ (``kept`` holds one row per ``_cohort``). Column values as lists, the kept row
    found by its cohort in a dict: linear in the rows."""
    names = {"_task": "task", "_route": "route", "_n": "n", "study_id": "study_id", "_order": "row order"}
    cols = list(dict.fromkeys(["_cohort", "study_id", "_order", "route", "_n"] + keys))
    kv = {c: kept[c].tolist() for c in cols}
    av = {c: aside[c].tolist() for c in cols}
    k_task = kept["task"].tolist() if "task" in kept.columns else [None] * len(kept)
    first: dict = {}
    for i, cohort in enumerate(kv["_cohort"]):
        first.setdefault(cohort, i)
    reasons = []
    for j, cohort in enumerate(av["_cohort"]):
        i = first[cohort]
        crit = next((names[c] for c in keys if kv[c][i] != av[c][j]), "row order")
        reasons.append(
            f"same cohort {cohort} as {kv['study_id'][i]} (outcomes.csv row {kv['_order'][i]}; "
            f"{_cell(k_task[i])}, {kv['route'][i]}, n={-kv['_n'][i]:.0f}); decided by {crit}"
        )
    return reasons


# --------------------------------------------------------------------------- running


def participants(rows: pd.DataFrame, comparison: str) -> int:
    """People in the pooled rows: n1 + n2 for two groups; for ``post_vs_pre`` the same people are
    measured twice (n1 = n2, checked by meta.review.inputs.data), so each row counts n1 once."""
    n1 = pd.to_numeric(rows.get("n1"), errors="coerce").fillna(0)
    if comparison == "post_vs_pre":
        return int(n1.sum())
    return int(n1.sum() + pd.to_numeric(rows.get("n2"), errors="coerce").fillna(0).sum())


@dataclass(frozen=True)
class AnalysisRun:
    """Everything computed for one analysis."""

    analysis: Analysis
    matched: pd.DataFrame  # all rows matching outcome/comparison/filters
    rows: pd.DataFrame  # rows pooled (one per cohort, usable)
    set_aside: pd.DataFrame  # usable rows set aside by the unit-of-analysis rule (with `reason`)
    unusable: pd.DataFrame  # matched rows with no usable SMD
    result: object | None  # meta.pool.PoolResult (k >= 1; for k = 1 the study itself), None for k = 0
    egger: object | None = None
    trimfill: object | None = None
    leave_one_out: pd.DataFrame | None = None
    figures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    evidence: str = "original"  # evidence set (meta.review.running.evidence): "original" or "updated"
    other_scale: pd.DataFrame | None = None  # matching rows on another es_scale: never pooled here
    robustness: object | None = None  # meta.robustness.RobustnessResult (k >= 1)
    prepost_r: float | None = None  # the assumed pre-post r its effect table used (None: none assumed)
    all_rows: object | None = None  # meta.review.running.dependent.AllRows: every row of every cohort (k >= 1)
    other_task: pd.DataFrame | None = None  # matching rows of a task the analysis does not declare: listed, never pooled

    @property
    def k(self) -> int:
        return len(self.rows)

    @property
    def status(self) -> str:
        return "pooled" if self.k >= 2 else ("single_study" if self.k == 1 else "no_data")

    @property
    def yi(self) -> np.ndarray:
        return self.rows[effect_columns(self.analysis.smd_convention)[0]].to_numpy(float)

    @property
    def vi(self) -> np.ndarray:
        return self.rows[effect_columns(self.analysis.smd_convention)[1]].to_numpy(float)

    def progress_line(self) -> str:
        a = self.analysis
        if self.result is None:
            return f"{a.analysis_id}: k=0, no usable data ({len(self.unusable)} row(s) without a route)"
        r = self.result
        kind = "single study" if self.k == 1 else "SMD"
        return f"{a.analysis_id}: k={self.k}, {kind} {r.estimate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"

    def to_frame(self) -> pd.DataFrame:
        """One row of ``pooled.csv`` (k = 1: the study's estimate, se, CI and p; no heterogeneity)."""
        a = self.analysis
        n = participants(self.rows, a.comparison)
        rec: dict = {
            "set": self.evidence,
            "analysis_id": a.analysis_id,
            "title": a.title,
            "outcome": "|".join(a.outcomes),
            "comparison": a.comparison,
            "filters": ";".join(str(f) for f in a.effective_filters)
            + (" (review_match for original studies only)" if self.evidence == "updated" and a.effective_filters != a.filters else ""),
            "smd_convention": a.smd_convention,
            "method": a.method if self.k >= 2 else ("single study" if self.k == 1 else ""),
            "status": self.status,
            "k": self.k,
            "n_total": n if self.k else 0,
            "studies": ";".join(self.rows["study_id"].astype(str)) if self.k else "",
            "n_set_aside": len(self.set_aside),
            "n_unusable": len(self.unusable),
        }
        r = self.result
        single = ("estimate", "se", "ci_low", "ci_high", "p")  # a single study has no tau2, PI or Q
        for c in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "p", "tau2", "i2", "q", "q_df", "q_p"):
            has = r is not None and (self.k >= 2 or c in single) and getattr(r, c, None) is not None
            rec[c] = float(getattr(r, c)) if has else np.nan
        eg = self.egger
        rec["egger_t"] = float(eg.t) if eg is not None else np.nan
        rec["egger_p"] = float(eg.p) if eg is not None else np.nan
        tf = self.trimfill
        rec["trimfill_k0"] = int(tf.k0) if tf is not None else np.nan
        rec["trimfill_side"] = str(tf.side) if tf is not None else ""
        rec["trimfill_estimate"] = float(tf.result.estimate) if tf is not None else np.nan
        rec["trimfill_ci_low"] = float(tf.result.ci_low) if tf is not None else np.nan
        rec["trimfill_ci_high"] = float(tf.result.ci_high) if tf is not None else np.nan
        from meta.review.running.claims import SINGLE_STUDY, run_verdict
        from meta.review.running.levels import analysis_grade

        rob = self.robustness
        # a single study is not pooled: no method count, never "not fragile"
        rec["holds_under"] = rob.holds_under if rob is not None and self.k >= 2 else (SINGLE_STUDY if self.k == 1 else "")
        rec["fragile"] = bool(rob.fragile) if rob is not None and self.k >= 2 else ""
        rec["verdict"] = run_verdict(self)
        g = analysis_grade(self)
        rec["level"] = g.text
        rec["level_rule"] = g.rule
        rec["claim_ids"] = ";".join(a.claim_ids)
        # the all-rows sensitivity (meta.review.running.dependent) at its stated r
        ar = self.all_rows
        st = ar.stated if ar is not None else None
        rec["all_rows_k"] = ar.k_rows if ar is not None else 0
        rec["all_rows_cohorts"] = ar.k_cohorts if ar is not None else 0
        for c in ("r", "estimate", "ci_low", "ci_high", "df"):
            rec[f"all_rows_{c}"] = st[c] if st is not None else np.nan
        rec["all_rows_note"] = (st["note"] if st is not None else ar.note) if ar is not None else ""
        return pd.DataFrame([rec])


def effect_table(dataset, *, r: float | None = None) -> pd.DataFrame:
    """Study-level SMDs for every outcome row, both conventions side by side.

    ``yi``/``vi`` use the RevMan convention (Deeks & Higgins 2010) like the
    review; ``yi_ls``/``vi_ls`` metafor's ``escalc(measure="SMD")`` default.
    Study-level columns of ``studies.csv`` are joined on (see :func:`annotate`);
    ``outcomes_row`` is the row of ``outcomes.csv`` (as a spreadsheet shows it).
    ``r``: the pre-post correlation assumed for ``post_vs_pre`` rows that give none of their own
    (default :data:`EFFECT_OPTIONS`: none); rows that report an SD of change, a paired t or an
    exact paired p always derive theirs (flag ``r_derived``).
    """
    from meta.review.inputs.study_effects import study_effects

    opts = {**EFFECT_OPTIONS, **({} if r is None else {"r": r})}
    rev = study_effects(dataset.outcomes, dataset.studies, variance="revman", **opts)
    ls = study_effects(dataset.outcomes, dataset.studies, variance="ls", **opts)
    rev = rev.copy()
    # outcomes.csv spreadsheet row (header = 1), the index meta.review.inputs.data.load gives
    rev.insert(0, "outcomes_row", np.asarray(rev.index))
    # the direction the source states (+1/-1), kept for direction-only evidence in the claims section
    rev["direction"] = dataset.outcomes["direction"].reindex(rev.index).to_numpy()
    rev = rev.reset_index(drop=True)
    ls = ls.reset_index(drop=True)
    pos = list(rev.columns).index("vi") + 1
    rev.insert(pos, "yi_ls", ls["yi"].to_numpy())
    rev.insert(pos + 1, "vi_ls", ls["vi"].to_numpy())
    return annotate(rev, dataset.studies)


def _label(row) -> str:
    """Forest-plot label: first author's surname (``studies.csv`` ``authors``) + year and letter of
    ``study_id`` (``Souza 2009a``; :data:`meta.review.inputs.data.STUDY_ID_PATTERN`), plus the task when it is not
    plain running."""
    sid = _cell(row["study_id"])
    m = STUDY_ID_PATTERN.match(sid)
    surname = _cell(row.get("authors")).split(",")[0].split(" ")[0] if _cell(row.get("authors")) else ""
    if m:  # the pattern's group 1 is the year: the letters before it name the study, the rest is year + letter
        lab = f"{surname or sid[: m.start(1)].capitalize()} {sid[m.start(1):]}"
    else:
        lab = sid
    if _cell(row.get("task")) and _task_rank(row.get("task")) != 0:
        lab += f" ({_cell(row.get('task')).replace('_', ' ')})"
    return lab


def robustness_panel(analysis: Analysis) -> tuple:
    """The robustness panel of an analysis: :data:`meta.robustness.DEFAULT_PANEL`, whose primary
    method (DL + Wald z) is the analysis' own; an analysis that declares another estimator gets
    that estimator with a Wald z CI as its primary row (the rest of the panel unchanged, without
    a duplicate of it)."""
    from meta.robustness import DEFAULT_PANEL, PanelMethod

    m = analysis.method
    if m == DEFAULT_PANEL[0].method and DEFAULT_PANEL[0].test == "z":
        return DEFAULT_PANEL
    first = PanelMethod(f"{m.lower()}_z", f"{m}, Wald z CI (primary: the analysis' own method)", f"{m}, z (primary)",
                        method=m, test="z")
    rest = tuple(p for p in DEFAULT_PANEL[1:] if not (p.kind == "frequentist" and p.method == m and p.test == "z"))
    return (first,) + rest


def run_analysis(table: pd.DataFrame, analysis: Analysis, *, level: float = LEVEL, bias_min_k: int | None = None,
                 rows: pd.DataFrame | None = None, evidence: str = "original",
                 other_scale: pd.DataFrame | None = None, direction: int | None = None,
                 prepost_r: float | None = None, other_task: pd.DataFrame | None = None) -> AnalysisRun:
    """Select, reduce to one row per cohort, pool and test one analysis (no figures).

    ``rows``: the matching rows of one evidence set (:func:`meta.review.running.evidence.evidence_sets`, which
    ``evidence`` names; ``other_scale``: its rows on another es_scale, kept for the report);
    default :func:`select_rows`.

    k = 1: ``meta.pool.pool``'s k = 1 result (the study itself with its Wald-type CI and z p;
    ``method="FE"``: nothing is pooled); k >= 2: ``pool`` with the analysis' method and
    ``leave_one_out``; k >= ``bias_min_k`` (default the analysis' own, ``analysis.bias_min_k``:
    10 unless analyses.csv lowers it): Egger's test and trim-and-fill.  k >= 1: the robustness
    panel (:func:`meta.robustness.robustness`) judged against ``direction`` (+1/-1 the
    claim's expected sign; None: the primary estimate's).  ``prepost_r``: the assumed r the
    ``table`` was built with (recorded on the run, for the report).
    """
    from meta.pool import leave_one_out, pool
    from meta.robustness import robustness

    if bias_min_k is None:
        bias_min_k = analysis.bias_min_k

    if rows is None:
        matched = select_rows(table, analysis)
        if other_task is None:
            every = select_rows(table, analysis, tasks=False)
            other_task = every.loc[~every.index.isin(matched.index)]
    else:
        matched = rows
    ycol, vcol = effect_columns(analysis.smd_convention)
    ok = usable(matched, ycol, vcol)
    kept, aside = unit_of_analysis(matched.loc[ok])
    unusable = matched.loc[~ok]
    kept = kept.assign(label=[_label(r) for _, r in kept.iterrows()])
    k = len(kept)
    yi, vi = kept[ycol].to_numpy(float), kept[vcol].to_numpy(float)
    notes: list[str] = []
    known = set(table["outcome"].dropna().astype(str).unique())
    for o in analysis.outcomes:
        if o not in known:  # a typo in analyses.csv would otherwise look like missing data
            notes.append(f"no row of outcomes.csv has outcome {o!r}")
    if "timepoint" in kept and not any(f.key == "timepoint" for f in analysis.filters):
        tps = sorted(set(kept["timepoint"].astype("string").fillna("").str.strip()) - {""})
        if len(tps) > 1:  # rows of different timepoints pooled without a declaration
            notes.append(f"the pooled rows differ by timepoint ({', '.join(tps)}) and analyses.csv declares none "
                         "(filters timepoint=...)")
    result = egger_res = tf_res = loo = rob = None
    if k >= 1:
        rob = robustness(yi, vi, direction=direction, level=level, panel=robustness_panel(analysis))
    if k == 1:
        result = pool(yi, vi, method="FE", test="z", level=level, slab=list(kept["label"]), measure="SMD")
    elif k >= 2:
        result = pool(yi, vi, method=analysis.method, test="z", level=level, slab=list(kept["label"]), measure="SMD")
        loo = leave_one_out(result)  # its data, labels, method and level
        if k >= bias_min_k:
            egger_res, tf_res, extra = _bias(result)
            notes.extend(extra)
    every = None
    if k >= 1:
        from meta.review.running.dependent import all_rows

        every = all_rows(kept, aside, ycol, vcol, level=level)
    return AnalysisRun(analysis, matched, kept, aside, unusable, result, egger_res, tf_res, loo, (), tuple(notes),
                       evidence, other_scale, robustness=rob, prepost_r=prepost_r, other_task=other_task,
                       all_rows=every)


def _bias(result):
    """Egger's test and trim-and-fill of a pooled result; a failure is reported, not fatal."""
    notes = []
    eg = tf = None
    try:
        from meta.bias import egger

        eg = egger(result)
    except Exception as e:  # noqa: BLE001 - report and continue
        notes.append(f"Egger's test not available: {type(e).__name__}: {e}")
    try:
        from meta.bias import trimfill

        tf = trimfill(result)  # its method
    except Exception as e:  # noqa: BLE001
        notes.append(f"trim-and-fill not available: {type(e).__name__}: {e}")
    return eg, tf, notes
