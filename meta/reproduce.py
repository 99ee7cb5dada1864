"""Rerun every analysis of Neal et al. (2016) in one command.

``meta reproduce --data data --out results`` reads the validated data
(``meta.data.load``), computes one SMD per outcome row
(``meta.study_effects.study_effects``), selects the rows of each analysis
declared in ``data/analyses.csv``, keeps one row per cohort (unit of analysis),
pools them (``meta.pool.pool``), runs the small-study tests (``meta.bias``),
draws forest and funnel plots (``meta.plots``) and writes ``effect_sizes.csv``,
``pooled.csv``, ``sensitivity.csv``, ``leave_one_out.csv``, ``claims.csv``,
``coverage.csv``, ``figures/`` and ``report.md`` / ``report.html``.

Rules (also printed in the report's methods section):

* **Row selection** -- an analysis takes the outcome rows whose ``outcome`` is one
  of the analysis' outcomes, whose ``comparison`` equals the analysis'
  comparison, and which pass every filter in the ``filters`` column.
  Filters read ``key=v1|v2;key2!=v3``; a key is a column of the effect-size
  table (``timepoint``, ``task``, ...) or of ``studies.csv`` (``design``,
  ``population_sex``, ``review_match``, ...). Unless the filter names
  ``review_match`` itself, ``review_match=likely|possible`` is added.
* **Usable rows** -- rows with a finite ``yi`` and ``vi > 0``; the others
  (``route == "none"``) are listed as gaps with the reason given by
  ``study_effects``.
* **Unit of analysis** -- one analysis never pools two rows of the same
  ``cohort_id``. Within a cohort the kept row is the first after sorting by
  (1) task: ``running`` before any other single task before
  ``averaged_across_tasks``; (2) route: ``means_sd``/``paired`` before
  ``md_ci``/``md_se``/``md_p``/``t`` before ``reported_es`` before ``p_only``;
  (3) larger total n; (4) ``study_id``; (5) row order in ``outcomes.csv``.
  The others are set aside and reported with the reason.
* **Small k** -- k = 0: "no usable data"; k = 1: reported as a single-study
  effect (yi with its normal-theory 95% CI), never pooled and never dropped;
  k >= 2: random-effects pool with the analysis' method. Egger's regression
  test and trim-and-fill are run only for k >= 3, and the report says that
  with k < 10 they have very little power (Sterne et al. 2011, BMJ 343:d4002).

References: Deeks JJ, Higgins JPT (2010) Statistical algorithms in Review
Manager 5; Higgins JPT et al. (eds) Cochrane Handbook, ch. 6 and 10;
Viechtbauer W (2010) metafor, J Stat Softw 36(3).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from meta.outputs import ResultsFolder, prepare

__all__ = [
    "Analysis",
    "AnalysisRun",
    "ReproduceResult",
    "AnalysesError",
    "load_analyses",
    "select_rows",
    "unit_of_analysis",
    "run_analysis",
    "sensitivity",
    "reproduce",
    "reproduce_cli",
    "DEFAULT_REVIEW_MATCH",
    "SENSITIVITY_VARIANTS",
]

# the declarations (analyses.csv) are read and checked by meta.analysis; re-exported here
from meta.analysis import (  # noqa: E402,F401
    ANALYSES_COLUMNS,
    ANALYSES_FILE,
    CONVENTIONS,
    DEFAULT_REVIEW_MATCH,
    METHODS,
    AnalysesError,
    Analysis,
    Filter,
    check_analyses,
    load_analyses,
    parse_filters,
)
from meta.data import COMPARISONS  # noqa: E402,F401

#: options of meta.study_effects.study_effects used for every row (reported in the methods):
#: "p < x" used as the bound p = x (flagged); no pre-post correlation assumed for post_vs_pre rows
EFFECT_OPTIONS = {"inequality": "bound", "r": None}

#: sort rank of the route an SMD was obtained by (lower is preferred)
ROUTE_RANK = {
    "means_sd": 0,
    "paired": 0,
    "md_ci": 1,
    "md_se": 1,
    "md_p": 1,
    "t": 1,
    "change_ci": 1,
    "change_se": 1,
    "reported_es_ci": 2,
    "reported_es": 2,
    "reported_es_within": 2,
    "p_only": 3,
}
AVERAGED_TASK = "averaged_across_tasks"
#: studies.csv columns left out of effect_sizes.csv (bibliography and free text; see studies.csv)
STUDY_TEXT_COLUMNS = ("authors", "year", "title", "journal", "citation", "doi", "pmid", "n_pfp", "n_control", "review_match_reason", "notes")
#: column headers of the forest plot's group-1 / group-2 columns, per comparison
GROUP_LABELS = {
    "pfp_vs_control": ("PFP", "Control"),
    "post_vs_pre": ("Post", "Pre"),
    "intervention_vs_control": ("Intervention", "Control"),
}

#: (label, smd_convention or None for the analysis' own, method, test)
SENSITIVITY_VARIANTS = (
    ("primary", None, None, "z"),
    ("revman DL", "revman", "DL", "z"),
    ("ls DL", "ls", "DL", "z"),
    ("revman REML", "revman", "REML", "z"),
    ("revman PM", "revman", "PM", "z"),
    ("revman DL HKSJ", "revman", "DL", "hksj"),
    ("revman REML HKSJ", "revman", "REML", "hksj"),
)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


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
    s = series.astype("string").fillna("").str.strip()
    hit = s.isin(f.values)
    return ~hit if f.negate else hit


def select_rows(table: pd.DataFrame, analysis: Analysis) -> pd.DataFrame:
    """Rows of the annotated effect table that belong to ``analysis`` (usable or not)."""
    keep = table["outcome"].isin(analysis.outcomes) & (table["comparison"] == analysis.comparison)
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
    reasons = []
    names = {"_task": "task", "_route": "route", "_n": "n", "study_id": "study_id", "_order": "row order"}
    for _, row in aside.iterrows():
        k = kept.loc[kept["_cohort"] == row["_cohort"]].iloc[0]
        crit = next((names[c] for c in keys if k[c] != row[c]), "row order")
        reasons.append(
            f"same cohort {row['_cohort']} as {k['study_id']} (outcomes.csv row {k['_order']}; "
            f"{_cell(k.get('task'))}, {k['route']}, n={-k['_n']:.0f}); decided by {crit}"
        )
    aside["reason"] = reasons
    drop = ["_cohort", "_task", "_route", "_n", "_order"]
    kept = kept.sort_values("_order", kind="mergesort").drop(columns=drop)
    return kept, aside.drop(columns=drop)


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class SingleStudy:
    """A k = 1 'analysis': the study's own SMD with a normal-theory CI."""

    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p: float
    level: float = 0.95

    @classmethod
    def from_row(cls, yi: float, vi: float, level: float = 0.95) -> "SingleStudy":
        from meta.pool import pool

        r = pool([yi], [vi], method="FE", level=level)  # k = 1: the study itself, Wald z CI and p
        return cls(1, r.estimate, r.se, r.ci_low, r.ci_high, r.p, level)


@dataclass(frozen=True)
class AnalysisRun:
    """Everything computed for one analysis."""

    analysis: Analysis
    matched: pd.DataFrame  # all rows matching outcome/comparison/filters
    rows: pd.DataFrame  # rows pooled (one per cohort, usable)
    set_aside: pd.DataFrame  # usable rows set aside by the unit-of-analysis rule (with `reason`)
    unusable: pd.DataFrame  # matched rows with no usable SMD
    result: object | None  # PoolResult (k >= 2) or SingleStudy (k == 1)
    egger: object | None = None
    trimfill: object | None = None
    leave_one_out: pd.DataFrame | None = None
    figures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    evidence: str = "original"  # evidence set (meta.evidence): "original" or "updated"
    other_scale: pd.DataFrame | None = None  # matching rows on another es_scale: never pooled here

    @property
    def k(self) -> int:
        return len(self.rows)

    @property
    def status(self) -> str:
        return "pooled" if self.k >= 2 else ("single_study" if self.k == 1 else "no_data")

    @property
    def yi(self) -> np.ndarray:
        return self.rows[_ycol(self.analysis.smd_convention)].to_numpy(float)

    @property
    def vi(self) -> np.ndarray:
        return self.rows[_vcol(self.analysis.smd_convention)].to_numpy(float)

    def progress_line(self) -> str:
        a = self.analysis
        if self.result is None:
            return f"{a.analysis_id}: k=0, no usable data ({len(self.unusable)} row(s) without a route)"
        r = self.result
        kind = "single study" if self.k == 1 else "SMD"
        return f"{a.analysis_id}: k={self.k}, {kind} {r.estimate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"

    def to_frame(self) -> pd.DataFrame:
        """One row of ``pooled.csv``."""
        a = self.analysis
        n = pd.to_numeric(self.rows.get("n1"), errors="coerce").sum() + pd.to_numeric(self.rows.get("n2"), errors="coerce").sum()
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
            "n_total": int(n) if self.k else 0,
            "studies": ";".join(self.rows["study_id"].astype(str)) if self.k else "",
            "n_set_aside": len(self.set_aside),
            "n_unusable": len(self.unusable),
        }
        r = self.result
        for c in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "p", "tau2", "i2", "q", "q_df", "q_p"):
            rec[c] = float(getattr(r, c)) if r is not None and hasattr(r, c) and getattr(r, c) is not None else np.nan
        eg = self.egger
        rec["egger_t"] = float(eg.t) if eg is not None else np.nan
        rec["egger_p"] = float(eg.p) if eg is not None else np.nan
        tf = self.trimfill
        rec["trimfill_k0"] = int(tf.k0) if tf is not None else np.nan
        rec["trimfill_side"] = str(tf.side) if tf is not None else ""
        rec["trimfill_estimate"] = float(tf.result.estimate) if tf is not None else np.nan
        rec["trimfill_ci_low"] = float(tf.result.ci_low) if tf is not None else np.nan
        rec["trimfill_ci_high"] = float(tf.result.ci_high) if tf is not None else np.nan
        rec["claim_ids"] = ";".join(a.claim_ids)
        return pd.DataFrame([rec])


def _ycol(convention: str) -> str:
    return "yi" if convention == "revman" else f"yi_{convention}"


def _vcol(convention: str) -> str:
    return "vi" if convention == "revman" else f"vi_{convention}"


def effect_table(dataset) -> pd.DataFrame:
    """Study-level SMDs for every outcome row, both conventions side by side.

    ``yi``/``vi`` use the RevMan convention (Deeks & Higgins 2010) like the
    review; ``yi_ls``/``vi_ls`` metafor's ``escalc(measure="SMD")`` default.
    Study-level columns of ``studies.csv`` are joined on (see :func:`annotate`);
    ``outcomes_row`` is the row of ``outcomes.csv`` (as a spreadsheet shows it).
    """
    from meta.study_effects import study_effects

    rev = study_effects(dataset.outcomes, dataset.studies, variance="revman", **EFFECT_OPTIONS)
    ls = study_effects(dataset.outcomes, dataset.studies, variance="ls", **EFFECT_OPTIONS)
    rev = rev.copy()
    # outcomes.csv spreadsheet row (header = 1), the index meta.data.load gives
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
    ``study_id`` (``Souza 2009a``), plus the task when it is not plain running."""
    sid = _cell(row["study_id"])
    m = re.match(r"^([a-z]+)(\d{4}[a-z]?)$", sid)
    surname = _cell(row.get("authors")).split(",")[0].split(" ")[0] if _cell(row.get("authors")) else ""
    if m:
        lab = f"{surname or m.group(1).capitalize()} {m.group(2)}"
    else:
        lab = sid
    if _cell(row.get("task")) and _task_rank(row.get("task")) != 0:
        lab += f" ({_cell(row.get('task')).replace('_', ' ')})"
    return lab


def run_analysis(table: pd.DataFrame, analysis: Analysis, *, level: float = 0.95, rows: pd.DataFrame | None = None,
                 evidence: str = "original", other_scale: pd.DataFrame | None = None) -> AnalysisRun:
    """Select, reduce to one row per cohort, pool and test one analysis (no figures).

    ``rows``: the matching rows of one evidence set (:func:`meta.evidence.evidence_sets`, named by
    ``evidence``); default :func:`select_rows`.
    """
    from meta.pool import leave_one_out, pool

    matched = select_rows(table, analysis) if rows is None else rows
    ycol, vcol = _ycol(analysis.smd_convention), _vcol(analysis.smd_convention)
    ok = usable(matched, ycol, vcol)
    kept, aside = unit_of_analysis(matched.loc[ok])
    unusable = matched.loc[~ok]
    kept = kept.assign(label=[_label(r) for _, r in kept.iterrows()])
    k = len(kept)
    yi, vi = kept[ycol].to_numpy(float), kept[vcol].to_numpy(float)
    notes: list[str] = []
    known = set(table["outcome"].dropna().astype(str))
    for o in analysis.outcomes:
        if o not in known:  # a typo in analyses.csv would otherwise look like missing data
            notes.append(f"no row of outcomes.csv has outcome {o!r}")
    result = egger_res = tf_res = loo = None
    if k == 1:
        result = SingleStudy.from_row(yi[0], vi[0], level)
    elif k >= 2:
        result = pool(yi, vi, method=analysis.method, test="z", level=level, slab=list(kept["label"]))
        loo = leave_one_out(result)  # its data, labels, method and level
        if k >= 3:
            egger_res, tf_res, extra = _bias(result)
            notes.extend(extra)
    return AnalysisRun(analysis, matched, kept, aside, unusable, result, egger_res, tf_res, loo, (), tuple(notes),
                       evidence, other_scale)


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


def sensitivity(runs: list[AnalysisRun], *, level: float = 0.95) -> pd.DataFrame:
    """Every pooled analysis (k >= 2) under each of :data:`SENSITIVITY_VARIANTS`.

    Long format: ``analysis_id, variant, smd_convention, method, test, k, estimate,
    ci_low, ci_high, p, tau2, i2``. HKSJ: Knapp & Hartung 2003 / Hartung &
    Knapp 2001; REML: Viechtbauer 2005; PM: Paule & Mandel 1982.
    """
    pooled = [r for r in runs if r.k >= 2]
    if not pooled:
        return pd.DataFrame(columns=["analysis_id", "variant", "smd_convention", "method", "test", "k", "estimate", "ci_low", "ci_high", "p", "tau2", "i2"])
    frames = []
    for label, conv, method, test in SENSITIVITY_VARIANTS:
        groups: dict[tuple[str, str], list[AnalysisRun]] = {}
        for r in pooled:
            c = conv or r.analysis.smd_convention
            m = method or r.analysis.method
            groups.setdefault((c, m), []).append(r)
        for (c, m), rs in groups.items():
            yis = [r.rows[_ycol(c)].to_numpy(float) for r in rs]
            vis = [r.rows[_vcol(c)].to_numpy(float) for r in rs]
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


# --------------------------------------------------------------------------- figures


def draw_figures(run: AnalysisRun, fig_dir: Path, *, formats=("png", "svg", "pdf"), dpi: int = 300, funnel_min_k: int = 3) -> tuple[str, ...]:
    """Forest plot for every analysis with k >= 1; funnel plot where k >= ``funnel_min_k``.

    Returns the written paths relative to the results folder.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo") and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from meta.plots import forest, funnel, save

    written: list[Path] = []
    if run.k == 0:
        return ()
    a = run.analysis
    studies = run.rows.copy()
    ycol, vcol = _ycol(a.smd_convention), _vcol(a.smd_convention)
    studies["yi"], studies["vi"] = studies[ycol], studies[vcol]
    for c in ("mean1", "sd1", "mean2", "sd2"):
        if c in studies and pd.to_numeric(studies[c], errors="coerce").isna().any():
            studies = studies.drop(columns=c)
    result = run.result
    if run.k == 1:
        from meta.pool import pool

        # a one-study forest plot: the pooled diamond equals the study itself
        result = pool(studies["yi"].to_numpy(float), studies["vi"].to_numpy(float), method="FE", slab=list(studies["label"]))
    title = a.title if run.k >= 2 else f"{a.title} (single study, not pooled)"
    groups = GROUP_LABELS.get(a.comparison, ("Group 1", "Group 2"))
    fig = forest(result, studies, label="label", favours=(a.favours_left, a.favours_right), title=title, group_labels=groups)
    written += save(fig, fig_dir / f"{a.analysis_id}_forest", formats=formats, dpi=dpi)
    plt.close(fig)
    if run.k >= funnel_min_k:
        # the fit draws itself (metafor funnel(res) / funnel(trimfill(res))): filled studies
        # hollow, centred on the adjusted estimate where trim and fill ran
        fig = funnel(
            run.trimfill if run.trimfill is not None else run.result,
            egger=run.egger if run.egger is not None else False,
            title=a.title,
        )
        written += save(fig, fig_dir / f"{a.analysis_id}_funnel", formats=formats, dpi=dpi)
        plt.close(fig)
    return tuple(str(Path(p).relative_to(fig_dir.parent)) for p in written)


# --------------------------------------------------------------------------- whole pipeline


@dataclass(frozen=True)
class ReproduceResult:
    """Everything ``reproduce`` wrote, in memory."""

    runs: tuple[AnalysisRun, ...]
    effects: pd.DataFrame
    sensitivity: pd.DataFrame
    claims: pd.DataFrame
    coverage: pd.DataFrame | None
    settings: dict = field(default_factory=dict)
    elapsed: float = 0.0
    updated: tuple[AnalysisRun, ...] = ()  # the same analyses on the updated evidence set (meta.evidence)
    cumulative: pd.DataFrame | None = None  # cumulative.csv (meta.living.cumulative_table)
    published: pd.DataFrame | None = None  # published_pooled.csv as loaded
    vocabulary: pd.DataFrame | None = None  # vocabulary.csv as loaded (outcome constructs)
    claims_source: pd.DataFrame | None = None  # review_claims.csv as loaded

    def to_frame(self) -> pd.DataFrame:
        """The pooled table (``pooled.csv``): one row per analysis and evidence set."""
        upd = {r.analysis.analysis_id: r for r in self.updated}
        runs = [x for r in self.runs for x in (r, upd.get(r.analysis.analysis_id)) if x is not None]
        return pd.concat([r.to_frame() for r in runs], ignore_index=True)

    def summary(self) -> str:
        n = {s: sum(r.status == s for r in self.runs) for s in ("pooled", "single_study", "no_data")}
        return (
            f"{len(self.runs)} analyses: {n['pooled']} pooled, {n['single_study']} single-study, "
            f"{n['no_data']} with no usable data; {len(self.effects)} outcome rows; {self.elapsed:.1f} s"
        )


def _progress(msg: str, stream) -> None:
    if stream is True:
        stream = sys.stderr  # looked up at call time (pytest's capsys, redirections)
    if stream:
        print(msg, file=stream, flush=True)


def _effects_out(table: pd.DataFrame, runs: list[AnalysisRun], updated=()) -> pd.DataFrame:
    used: dict[int, list[str]] = {}
    aside: dict[int, list[str]] = {}
    for r in runs:
        for rid in r.rows["outcomes_row"]:
            used.setdefault(int(rid), []).append(r.analysis.analysis_id)
        for rid in r.set_aside["outcomes_row"]:
            aside.setdefault(int(rid), []).append(r.analysis.analysis_id)
    keep = [c for c in table.columns if c not in STUDY_TEXT_COLUMNS]
    out = table[keep].copy()
    out["used_in"] = [";".join(used.get(int(i), [])) for i in out["outcomes_row"]]
    out["set_aside_in"] = [";".join(aside.get(int(i), [])) for i in out["outcomes_row"]]
    from meta.living import used_in_columns

    return used_in_columns(out, updated, "_updated")


def reproduce(
    data_dir: str | os.PathLike = "data",
    out_dir: str | os.PathLike | None = "results",
    *,
    formats: tuple[str, ...] = ("png", "svg", "pdf"),
    dpi: int = 300,
    html: bool = True,
    progress=True,
) -> ReproduceResult:
    """Run every analysis of ``data_dir/analyses.csv`` and write ``out_dir``.

    ``out_dir`` is checked first (``meta.outputs.prepare``: never the data
    folder, the working directory, home, a root, a file or a folder meta did not
    write; raises ``meta.outputs.OutputRefused``; a killed run's leftovers are
    repaired). The run writes into a temporary folder beside it, marked as ours,
    and swaps it into place only when everything succeeded
    (``meta.outputs.ResultsFolder``), so an interrupted run never leaves a
    half-written results folder and an existing one is replaced only at the very
    end. ``out_dir=None`` computes without writing (no figures).
    ``progress``: True (default) writes one line per analysis to ``sys.stderr``,
    a file object writes there, None/False is silent.

    Raises ``meta.data.DataError`` or :class:`AnalysesError` on invalid input,
    before anything is written; ``OSError`` if writing fails (the old results stay).
    """
    from meta.analysis import analysis_problems
    from meta.data import DataError, errors, load

    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    if out_dir is not None:  # refuse, or repair what a killed run left, before the long part
        prepare(out_dir, data_dir, log=lambda msg: _progress(msg, progress))
    try:
        dataset = load(data_dir)
    except DataError as e:  # report analyses.csv's problems too, as meta validate does
        more = errors(analysis_problems(data_dir)[0]) if (data_dir / ANALYSES_FILE).exists() else []
        raise DataError(e.problems + more) from None
    analyses = load_analyses(data_dir)
    table = effect_table(dataset)
    claims = getattr(dataset, "claims", None)
    problems = check_analyses(analyses, table, dataset.studies, claims)
    if problems:
        raise AnalysesError(problems)

    from meta.living import cumulative_table, run_sets, with_set
    from meta.outputs import read_inputs

    inputs = read_inputs(data_dir) if out_dir is not None else {}
    runs, updated = [], []
    for i, a in enumerate(analyses, 1):
        both = run_sets(table, a, run_analysis)
        runs.append(both["original"])
        updated.append(both["updated"])
        o, u = both["original"], both["updated"]
        line = o.progress_line()
        if list(u.rows["outcomes_row"]) != list(o.rows["outcomes_row"]):  # newer studies changed this analysis
            line += f"; updated set: {u.progress_line().split(': ', 1)[1]}"
        _progress(f"[{i}/{len(analyses)}] {line}", progress)
    sens = pd.concat([with_set(sensitivity(runs), "original"), with_set(sensitivity(updated), "updated")], ignore_index=True)
    cum = cumulative_table(updated)

    from meta import report
    from meta.coverage import coverage_table

    claims_frame = pd.concat([with_set(report.claims_table(claims, runs), "original"),
                              with_set(report.claims_table(claims, updated), "updated")], ignore_index=True)
    claims_frame = claims_frame.sort_values("claim_id", kind="mergesort", key=lambda c: c.map(
        {cid: i for i, cid in enumerate(dict.fromkeys(claims_frame["claim_id"]))})).reset_index(drop=True)
    coverage = coverage_table(dataset)
    living = {"updated": tuple(updated), "cumulative": cum, "published": getattr(dataset, "published_pooled", None),
              "vocabulary": getattr(dataset, "vocabulary", None), "claims_source": claims}
    settings = {
        "data_dir": str(data_dir),
        "formats": tuple(formats),
        "dpi": dpi,
        "level": 0.95,
        **EFFECT_OPTIONS,
        "default_review_match": DEFAULT_REVIEW_MATCH,
        "funnel_min_k": 3,
        "bias_min_k": 3,
    }

    if out_dir is None:
        return ReproduceResult(tuple(runs), _effects_out(table, runs, updated), sens, claims_frame, coverage, settings,
                               time.perf_counter() - t0, **living)

    with ResultsFolder(out_dir, data_dir=data_dir, log=lambda msg: _progress(msg, progress)) as folder:
        tmp = folder.tmp
        fig_dir = tmp / "figures"
        fig_dir.mkdir()
        final_runs = []
        for run in runs:
            figs = draw_figures(run, fig_dir, formats=formats, dpi=dpi, funnel_min_k=settings["funnel_min_k"])
            final_runs.append(_replace(run, figures=figs))
        from meta.living import draw_cumulative

        final_updated = []
        for run in updated:
            c = cum.loc[cum["analysis_id"] == run.analysis.analysis_id]
            final_updated.append(_replace(run, figures=draw_cumulative(run, c, fig_dir, formats=formats, dpi=dpi)))
        living["updated"] = tuple(final_updated)
        res = ReproduceResult(tuple(final_runs), _effects_out(table, final_runs, final_updated), sens, claims_frame,
                              coverage, settings, 0.0, **living)
        write_tables(res, tmp)
        from meta.outputs import write_inputs

        write_inputs(inputs, tmp)
        md = report.render(res)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        if html:
            (tmp / "report.html").write_text(report.markdown_to_html(md, title="Neal et al. (2016) reproduced"), encoding="utf-8")
        folder.commit()
    elapsed = time.perf_counter() - t0
    return _replace_result(res, elapsed)


def _replace(run: AnalysisRun, **kw) -> AnalysisRun:
    from dataclasses import replace

    return replace(run, **kw)


def _replace_result(res: ReproduceResult, elapsed: float) -> ReproduceResult:
    from dataclasses import replace

    return replace(res, elapsed=elapsed)


def write_tables(res: ReproduceResult, folder: Path) -> None:
    """The CSV outputs: effect_sizes, pooled, sensitivity, leave_one_out, set_aside, gaps, claims, coverage."""
    from meta._csvsafe import write_csv  # a text cell a spreadsheet would run as a formula gets a leading '

    write_csv(res.effects, folder / "effect_sizes.csv")
    write_csv(res.to_frame(), folder / "pooled.csv")
    write_csv(res.sensitivity, folder / "sensitivity.csv")
    both = [*res.runs, *res.updated]
    loo = [r.leave_one_out.assign(analysis_id=r.analysis.analysis_id, set=r.evidence) for r in both if r.leave_one_out is not None]
    if loo:
        df = pd.concat(loo, ignore_index=True)
        df = df[["set", "analysis_id"] + [c for c in df.columns if c not in ("set", "analysis_id")]]
        write_csv(df, folder / "leave_one_out.csv")
    aside = [
        r.set_aside.assign(analysis_id=r.analysis.analysis_id, set=r.evidence)[
            ["set", "analysis_id", "outcomes_row", "study_id", "cohort_id", "outcome", "route", "reason"]]
        for r in both
        if len(r.set_aside)
    ]
    if res.cumulative is not None:
        write_csv(res.cumulative, folder / "cumulative.csv")
    if aside:
        write_csv(pd.concat(aside, ignore_index=True), folder / "set_aside.csv")
    write_csv(res.claims, folder / "claims.csv")
    if res.coverage is not None:
        write_csv(res.coverage, folder / "coverage.csv", index=True)


def reproduce_cli(data_dir, out_dir) -> int:
    """Kept for callers of earlier versions: runs ``meta reproduce`` (``meta.cli``) and returns its exit code."""
    from meta.cli import main

    return main(["reproduce", "--data", os.fspath(data_dir), "--out", os.fspath(out_dir)])
