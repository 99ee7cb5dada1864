"""Rendering of a run: ``report.md`` and a plain ``report.html`` for ``meta reproduce``.

The report is generated only from what the run used: the methods paragraph
from the settings and the constants that ran (routes of ``meta.review.inputs.study_effects``,
``meta.review.running.sensitivity.SENSITIVITY_VARIANTS``, the analyses), every number from the
result objects. Nothing here computes a statistic or a verdict: it formats those
of ``meta.pool``, ``meta.bias``, ``meta.review.running.claims`` and ``meta.review.outputs.coverage``.

Reports carry data, never code: every text that comes from a CSV cell (titles,
notes, favours labels, claim text, study labels from authors, cohorts, reasons)
enters the Markdown through :func:`md_text` or :func:`md_code`, and
:func:`markdown_to_html` renders with raw HTML off, keeps only http(s) or
relative links and images of the results folder, and sends a
Content-Security-Policy that forbids script and remote content.
"""

from __future__ import annotations

import math
import re
import urllib.parse

import numpy as np
import pandas as pd
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from meta._format import report_num as _f
from meta._format import report_p as _p
from meta._format import report_p_eq as _peq

__all__ = ["render", "markdown_to_html", "md_text", "md_code", "newer_studies_section", "analysis_update_md", "published_md",
           "TITLE", "SECTIONS", "slug", "summary_table", "allows_paragraph", "levels_section", "figures_md",
           "changed_md", "drawn_figures"]


def _ci(r) -> str:
    return f"{_f(r.estimate)} [{_f(r.ci_low)}, {_f(r.ci_high)}]"


def _coverage_md(cov: pd.DataFrame) -> str:
    from meta.review.outputs.coverage import to_markdown

    return to_markdown(cov, max_rows=REPORT_MAX_ROWS, more_in="`coverage.csv`") + "\n"


# --------------------------------------------------------------------------- markdown

_WS = re.compile(r"[\s\x00-\x1f\x7f\x85\u2028\u2029]+")
# inline punctuation that CommonMark would read: backslash, code, emphasis, link/image brackets, raw HTML and
# autolinks (<), table cells (|), strikethrough (~, GFM), entity references (&name; &#1;), and _ except
# inside a word (where it never makes emphasis, so identifiers like peak_hip_adduction stay readable)
_INLINE_ESC = re.compile(r"[\\`*\[\]<|~]|&(?=#?[0-9A-Za-z]+;)|_(?![^\W_])|(?<![^\W_])_")
_ORDERED = re.compile(r"^(\d{1,9})([.)])")


def _plain(s) -> str:
    if s is None or (isinstance(s, float) and not np.isfinite(s)) or s is pd.NA:
        return ""
    return _WS.sub(" ", str(s)).strip()


def md_text(s, *, cell: bool = False) -> str:
    """Text from a CSV cell as Markdown that shows exactly that text and nothing else.

    Newlines, CR, tabs and other control characters collapse to one space (no
    text can end our line and start a heading or table row of its own); the
    inline punctuation CommonMark acts on is backslash-escaped, so no text
    opens a link, image, code span, emphasis, autolink, HTML tag, entity or
    table cell; and a leading character that would start a block (``#``,
    ``>``, ``+``, ``-``, ``=``, ``1.``/``1)``) is escaped too. ``( ) { } . !``
    need no escape once ``[``, ``]`` and the line start are safe; leaving them
    keeps numbers and prose in report.md readable. ``cell=True`` (pipe-table
    cells, which never start a line) skips the block rule.
    """
    t = _INLINE_ESC.sub(lambda m: "\\" + m.group(0), _plain(s))
    if not cell:
        if t[:1] in ("#", ">", "+", "-", "="):
            t = "\\" + t
        else:
            t = _ORDERED.sub(r"\1\\\2", t)
    return t


def md_code(s) -> str:
    """Text from a CSV cell as a code span (shown verbatim; backticks in it cannot end the span)."""
    t = _plain(s)
    if not t:
        return ""
    fence = "`" * (max((len(r) for r in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t[0] == "`" or t[-1] == "`" else ""
    return f"{fence}{pad}{t}{pad}{fence}"


# a cell of numbers, signs, brackets and percent ("0.42 [-0.87, 1.71]", "20.81 (<0.001)") without "](" cannot be
# read as anything but text in a table cell: no link (needs "](", the report has no reference definitions), no
# autolink or tag ("<" before a digit), no emphasis or code; such cells skip the escapes so report.md stays readable
_NUMERIC_CELL = re.compile(r"^[0-9 .,+\-\u2212%<\[\]()]*$")


def _md_cell(v) -> str:
    t = _plain(v)
    return t if _NUMERIC_CELL.match(t) and "](" not in t else md_text(t, cell=True)


#: the most rows a per-study or per-row table or list of the report shows; longer ones show their first
#: REPORT_MAX_ROWS rows and a line "... N more rows in <file>.csv" (the CSVs of the results folder keep every row).
#: 150 keeps every table of the bundled data whole (the longest, the outcome rows without a route, has 103 rows)
#: and a report of 100,000 outcome rows readable and quick to render
REPORT_MAX_ROWS = 150
_MORE = re.compile(r"^\.\.\. \d+ more rows? in ", re.M)


def _more(n: int, where: str) -> str:
    """The line that ends a shortened table or list: how many rows are left out and which file holds them."""
    return f"... {n} more row{'s' if n != 1 else ''} in {where}"


def _md_table(df: pd.DataFrame, more_in: str | None = None, n_rows: int | None = None) -> str:
    """A pipe table; every header and cell passes through :func:`md_text` (numbers-only cells need no escapes).

    ``more_in`` (a file, as the line names it): a per-row table, shown to its first :data:`REPORT_MAX_ROWS`
    rows and then :func:`_more`; ``n_rows``: its full length where ``df`` holds only the first rows."""
    if df is None or len(df) == 0:
        return "_(none)_\n"
    total = len(df) if n_rows is None else n_rows
    if more_in is not None:
        df = df.iloc[:REPORT_MAX_ROWS]
    cols = [_md_cell(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, row in df.iterrows():  # as Series: a numbers-only row prints as pandas upcasts it
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if more_in is not None and total > len(df):
        lines += ["", _more(total - len(df), more_in)]
    return "\n".join(lines) + "\n"


def _md_list(items: list[str], total: int, more_in: str) -> list[str]:
    """Markdown list lines: ``items`` (the first :data:`REPORT_MAX_ROWS` of ``total``), then :func:`_more`."""
    out = items[:REPORT_MAX_ROWS]
    if total > len(out):
        out = out + ["", _more(total - len(out), more_in)]
    return out


def _used_in(run) -> str:
    """``effect_sizes.csv`` and the column that names the run's analysis (``used_in``, ``used_in_updated``)."""
    col = "used_in" if getattr(run, "evidence", "original") == "original" else f"used_in_{run.evidence}"
    return f"`effect_sizes.csv` (rows whose `{col}` names {md_code(run.analysis.analysis_id)})"


#: wording of each SMD convention of meta.review.inputs.analysis.CONVENTIONS
_CONVENTION_TEXT = {
    "revman": "the RevMan 5 convention (Hedges' g with J = 1 - 3/(4N - 9) and variance N/(n1 n2) + g^2/(2(N - 3.94)); Deeks & Higgins 2010)",
    "ls": "metafor's escalc(measure = \"SMD\") default (exact J, large-sample variance; Hedges 1981)",
}
#: wording of each estimator of meta._estimators.METHODS (citations as in meta._estimators)
_METHOD_TEXT = {
    "FE": "inverse-variance fixed-effect model",
    "DL": "DerSimonian-Laird random-effects model (DerSimonian & Laird 1986)",
    "REML": "restricted maximum likelihood random-effects model (Viechtbauer 2005)",
    "ML": "maximum likelihood random-effects model (Viechtbauer 2005)",
    "PM": "Paule-Mandel random-effects model (Paule & Mandel 1982)",
    "EB": "empirical Bayes random-effects model (Morris 1983)",
    "HE": "Hedges random-effects model (Hedges 1983)",
    "HS": "Hunter-Schmidt random-effects model (Hunter & Schmidt 2004)",
    "SJ": "Sidik-Jonkman random-effects model (Sidik & Jonkman 2005)",
}


def _route_order() -> str:
    """The route preference of the unit-of-analysis rule, ties joined by ``/``."""
    from meta.review.inputs.study_effects import ROUTE_RANK

    ranks = sorted(set(ROUTE_RANK.values()))
    return ", then ".join("/".join(r for r in ROUTE_RANK if ROUTE_RANK[r] == k) for k in ranks)


def _designs(runs) -> str:
    """What the pooled analyses combined, design-wise (from the rows pooled)."""
    pooled = [r for r in runs if r.k >= 2]
    if not pooled:
        return ""
    mixed = [(r.analysis.analysis_id, sorted(set(r.rows["design"].astype(str))))
             for r in pooled if "design" in r.rows and r.rows["design"].nunique() > 1]
    if not mixed:
        return " Each pooled analysis combined studies of a single design."
    return " " + "; ".join(f"{md_code(aid)} pooled the designs {', '.join(ds)}" for aid, ds in mixed) + "."


def _methods(res) -> str:
    from meta.review.running.sensitivity import SENSITIVITY_VARIANTS

    s = res.settings
    runs = res.runs
    convs = sorted({r.analysis.smd_convention for r in runs})
    methods = sorted({r.analysis.method for r in runs if r.k >= 2})
    level = int(round(100 * s["level"]))
    vs = ", ".join(v[0] for v in SENSITIVITY_VARIANTS[1:])
    review_match = s["default_review_match"]
    pooled_with = (
        "Analyses with k >= 2 were pooled with the " + "; ".join(_METHOD_TEXT.get(m, m) for m in methods) + ", with "
        if methods else "No analysis had k >= 2; pooled analyses would have "
    )
    return (
        f"Study-level standardised mean differences (group 1 minus group 2: PFP minus control, post minus pre, "
        f"intervention minus control) were computed for every outcome row by `meta.review.inputs.study_effects.study_effects` "
        f"from group means and SDs where reported and otherwise from mean differences with p, CI or SE, t statistics, "
        f"reported effect sizes or p-values alone (Cochrane Handbook ch. 6; Borenstein et al. 2009 ch. 7); p-values "
        f"reported as inequalities (p < x) were treated as p = x (`inequality=\"{s['inequality']}\"`), "
        f"which understates |SMD|, and such rows are flagged. {_prepost_methods(res)} "
        f"Analyses used "
        + "; ".join(_CONVENTION_TEXT[c] for c in convs)
        + ". Each of the "
        f"{len(runs)} analyses declared in `analyses.csv` takes the rows of its outcome(s) and comparison that pass its "
        f"filters; unless an analysis says otherwise only studies whose review match is "
        f"{' or '.join(review_match)} are used.{_designs(runs)} "
        f"One analysis never pools two rows of the same cohort: the kept row is the running task before other tasks before "
        f"values averaged across tasks, then by route ({_route_order()}), then the larger n, then study_id. "
        + pooled_with
        + f"Wald-type {level}% confidence intervals and {level}% prediction intervals; heterogeneity is given as "
        f"tau², I² and Cochran's Q. Analyses with k = 1 are reported as the single study's SMD with its {level}% CI and "
        f"are not pooled; analyses with k = 0 are listed as having no usable data. {_robustness_methods(res)} "
        f"{_small_study_methods(res)} Sensitivity analyses: leave-one-out, "
        f"and every pooled analysis re-run as {vs} (HKSJ: Hartung & Knapp 2001). {_figures_methods(res)}"
    )


def drawn_figures(res) -> pd.DataFrame:
    """Every figure file the run wrote (PNG), one row per analysis, evidence set and kind; a figure that
    serves both sets (the updated set adds nothing) is listed under both, with ``shared`` True."""
    recs = []
    for run in list(res.runs) + list(getattr(res, "updated", ())):
        for f in getattr(run, "figures", ()):
            if not f.endswith(".png"):
                continue
            kind = f.rsplit("_", 1)[-1][: -len(".png")]
            recs.append({"analysis_id": run.analysis.analysis_id, "set": run.evidence, "kind": kind, "file": f,
                         "k": run.k, "shared": f"_{run.evidence}_" not in f and kind != "cumulative"})
    return pd.DataFrame(recs, columns=["analysis_id", "set", "kind", "file", "k", "shared"])


def _figures_methods(res) -> str:
    """The figures sentence of the methods, counted from the files this run drew."""
    d = drawn_figures(res)
    s = res.settings
    if not len(d):
        return "No figures were drawn (no analysis had k >= 1)."

    def count(kind):
        x = d.loc[d["kind"] == kind]
        return len(x), len(set(x["file"]))

    parts = []
    for kind, what in (("forest", "forest plots"), ("robustness", "robustness plots"), ("funnel", "funnel plots"),
                       ("cumulative", "cumulative forest plots")):
        n, files = count(kind)
        if n:
            parts.append(f"{what} for {n} analysis x evidence-set pair{'s' if n != 1 else ''} ({files} "
                         f"file{'s' if files != 1 else ''})")
    k1 = sorted({(r.analysis.analysis_id, r.evidence) for r in list(res.runs) + list(getattr(res, "updated", ()))
                 if r.k >= 1})
    return ("Figures drawn by this run: " + "; ".join(parts) + ". A set that pools the same rows as the original set "
            f"shares its figures. Every analysis and evidence set with k >= 1 "
            f"({len(k1)}) has a forest plot; robustness plots exist for k >= 2, funnel plots where the small-study "
            f"tests ran.{_unlabelled_figures(d)} Saved as {', '.join(s['formats'])} ({s['dpi']} dpi for raster).")


def _unlabelled_figures(d: pd.DataFrame) -> str:
    """The sentence on forest-type figures above the row limit (none: ""), from the files this run drew."""
    from meta.review.outputs.figures import FOREST_MAX_ROWS

    big = d.loc[d["k"] > FOREST_MAX_ROWS]
    n_forest = len(set(big.loc[big["kind"] == "forest", "file"]))
    n_cum = len(set(big.loc[big["kind"] == "cumulative", "file"]))
    if not n_forest and not n_cum:
        return ""
    parts = []
    if n_forest:
        parts.append(f"a forest plot of more than {FOREST_MAX_ROWS} studies is drawn as a caterpillar plot (studies "
                     f"sorted by estimate, without labels or numbers, the pooled estimate as a line with its CI band; "
                     f"{n_forest} file{'s' if n_forest != 1 else ''}), every row's numbers in `effect_sizes.csv`")
    if n_cum:
        parts.append(f"a cumulative forest plot of more than {FOREST_MAX_ROWS} steps as the running estimate with its CI "
                     f"band against the number of studies added ({n_cum} file{'s' if n_cum != 1 else ''}), every step's "
                     "numbers in `cumulative.csv`")
    return " Above a page of rows " + "; ".join(parts) + "."


def _robustness_methods(res) -> str:
    """The primary analysis and the robustness panel, from the panels the runs used."""
    from meta.robustness import DEFAULT_PANEL

    level = int(round(100 * res.settings["level"]))
    others = "; ".join(md_text(p.label) for p in DEFAULT_PANEL[1:])
    kmax = max((r.k for r in res.runs), default=0)
    few = (f"With few studies (k <= {kmax} in every analysis here) that interval is too narrow" if kmax < 10
           else "With few studies that interval is too narrow")
    return (
        "The primary analysis is the review's own: DerSimonian-Laird with a Wald z interval (RevMan 5's random-effects "
        f"default), so that every number can be set beside the review's. {few} (IntHout et al. 2014) and current "
        "guidance differs (Cochrane Handbook v6.5 ch. 10: REML "
        "with the Hartung-Knapp-Sidik-Jonkman interval and a prediction interval; for two to four studies a Bayesian "
        "model with a weakly informative prior on tau, Friede et al. 2017, Röver et al. 2021), so every analysis with "
        f"k >= 1 was also fitted under a panel of methods (`meta.robustness.DEFAULT_PANEL`): {others}. The HKSJ "
        "intervals use t with k - 1 df and are never narrower than the z interval (metafor `test=\"adhoc\"`; Knapp & "
        f"Hartung 2003). Each method's {level}% interval (credible interval for the Bayesian model) is judged by the "
        "claims rule against the expected direction of the analysis' claim (or, with no claim, the sign of the primary "
        "estimate); a verdict *holds under n of m* methods when n methods give the primary analysis' verdict, and is "
        "*fragile* when the methods disagree."
    )


def _small_study_methods(res) -> str:
    """Where funnel plots, Egger's test and trim-and-fill ran (k >= 10 unless lowered explicitly)."""
    from meta.review.inputs.analysis import SMALL_STUDY_MIN_K

    lowered = [r.analysis for r in res.runs if r.analysis.small_study_min_k is not None
               and r.analysis.small_study_min_k < SMALL_STUDY_MIN_K]
    text = (
        f"Funnel plots, Egger's regression test (metafor `regtest(model=\"lm\")`) and trim-and-fill (Duval & Tweedie "
        f"2000, L0 estimator) were run only where k >= {SMALL_STUDY_MIN_K}: with fewer studies the tests have too little "
        f"power to tell chance from asymmetry (Sterne et al. 2011, BMJ 343:d4002; Cochrane Handbook 13.3.5.4)."
    )
    if lowered:
        which = ", ".join(f"{md_code(a.analysis_id)} (k >= {a.small_study_min_k})" for a in lowered)
        text += (
            f" `analyses.csv` lowers that threshold explicitly for {which}; for them Sterne et al. (2011)'s warning "
            "stands: with fewer than 10 studies these tests have very little power, a non-significant result is not "
            "evidence of absent small-study effects, and asymmetry may come from heterogeneity rather than bias."
        )
    return text


def _prepost_methods(res) -> str:
    """How within-group (post vs pre) SMDs got their pre-post correlation."""
    e = res.effects
    flags = e["flags"].fillna("").astype(str) if "flags" in e else pd.Series([], dtype=str)
    n_derived = int(flags.str.contains("r_derived").sum())
    declared = [r.analysis for r in res.runs if r.analysis.prepost_r is not None]
    sweep = ", ".join(f"{x:g}" for x in res.settings.get("prepost_r_sweep", ()))
    text = (
        "Within-group (post vs pre) SMDs are standardised by the pre-test SD (metafor `SMCR`) and need the pre-post "
        "correlation r. Rows that report the SD of the change, the SE or CI of the mean change, a paired t or an exact "
        "paired p give their own r, r = (SD_pre² + SD_post² - SD_change²) / (2 SD_pre SD_post) (Follmann et al. 1992; "
        f"Cochrane Handbook 6.5.2.8; flag `r_derived`: {n_derived} row{'s' if n_derived != 1 else ''})."
    )
    if declared:
        text += " An assumed r, with its source, is used for the other rows of " + "; ".join(
            f"{md_code(a.analysis_id)} (r = {a.prepost_r:g}: {md_text(a.prepost_r_source)})" for a in declared
        ) + " (flag `r_assumed`); other rows without r have no SMD."
    else:
        text += " No analysis states an assumed r, so rows that give none have no SMD."
    if sweep:
        text += f" A sweep over r = {sweep} (`prepost_r_sensitivity.csv`) shows where a verdict would depend on r."
    return text


def _study_table(run, max_rows: int | None = None) -> pd.DataFrame:
    """One row per pooled study (its first ``max_rows`` rows where given)."""
    from meta.review.running.run import effect_columns

    ycol, vcol = effect_columns(run.analysis.smd_convention)
    r = run.rows
    w = getattr(run.result, "weights", None) if run.k >= 2 else None  # a single study is not weighted
    if w is not None and len(w) != len(r):
        w = None
    if max_rows is not None:
        r = r.iloc[:max_rows]
        w = None if w is None else w[:max_rows]
    df = pd.DataFrame(
        {
            "study": r["label"].to_numpy(),
            "cohort": r["cohort_id"].astype(str).to_numpy(),
            "task": r["task"].astype(str).to_numpy() if "task" in r else "",
            "route": r["route"].astype(str).to_numpy(),
            "flags": r["flags"].fillna("").astype(str).to_numpy() if "flags" in r else "",
            "n1": pd.to_numeric(r["n1"], errors="coerce").map(lambda x: "" if pd.isna(x) else f"{x:.0f}").to_numpy(),
            "n2": pd.to_numeric(r["n2"], errors="coerce").map(lambda x: "" if pd.isna(x) else f"{x:.0f}").to_numpy(),
            "SMD": [_f(x) for x in r[ycol]],
            "95% CI": [f"[{_f(y - 1.959964 * math.sqrt(v))}, {_f(y + 1.959964 * math.sqrt(v))}]" for y, v in zip(r[ycol], r[vcol])],
            "weight %": [_f(x, 1) for x in w] if w is not None else [""] * len(r),
        }
    )
    return df


def _results_md(run) -> str:
    """One run's study table, estimate, robustness and small-study tests (no heading, no figures)."""
    a = run.analysis
    out = []
    if run.k == 0:
        out.append(f"**No usable data.** {len(run.matched)} matching row(s), none with a usable SMD.\n")
        return "\n".join(out) + "\n"
    out.append(_md_table(_study_table(run, REPORT_MAX_ROWS), more_in=_used_in(run), n_rows=len(run.rows)))
    r = run.result
    from meta.review.running.claims import run_verdict

    if run.k == 1:
        out.append(f"\n**Single study (not pooled):** SMD {_ci(r)}, {_peq(r.p)}. Verdict: {md_text(run_verdict(run))}.\n")
    else:
        out.append(
            f"\n**Pooled ({a.method}, k = {run.k}):** SMD {_ci(r)}, z = {_f(r.stat)}, {_peq(r.p)}; "
            f"95% PI [{_f(r.pi_low)}, {_f(r.pi_high)}]; tau² = {_f(r.tau2, 3)}, I² = {_f(r.i2, 1)}%, "
            f"Q({r.q_df:.0f}) = {_f(r.q)}, {_peq(r.q_p)}. Verdict: **{md_text(run_verdict(run))}**.\n"
        )
        if run.robustness is not None:
            out.append(_robustness_md(run))
        if run.egger is not None or run.trimfill is not None:
            parts = []
            if run.egger is not None:
                parts.append(f"Egger's test t({run.egger.df:.0f}) = {_f(run.egger.t)}, {_peq(run.egger.p)}")
            if run.trimfill is not None:
                tf = run.trimfill
                parts.append(f"trim-and-fill k0 = {tf.k0} ({tf.side} side), adjusted SMD {_ci(tf.result)}")
            low = (" (k < 10, threshold lowered in analyses.csv: very low power; a non-significant result is not "
                   "evidence of absent small-study effects, Sterne et al. 2011)." if run.k < 10 else ".")
            out.append("Small-study tests: " + "; ".join(parts) + low + "\n")
        elif run.k < a.bias_min_k:
            out.append(f"Small-study tests: not run (k = {run.k} < {a.bias_min_k}; Sterne et al. 2011).\n")
        else:  # k was enough, but both tests failed on these data: the notes below give the reasons
            out.append(f"Small-study tests: not available for these data (k = {run.k}; see the notes below).\n")
    out.append(_all_rows_md(run))
    from meta.review.running.levels import analysis_grade

    g = analysis_grade(run)
    out.append(f"Level of evidence by the rule ({md_code(g.rule)}, see Levels of evidence): **{md_text(g.text)}**.\n")
    return "\n".join(out) + "\n"


def _all_rows_md(run) -> str:
    """The all-rows sensitivity (every row of every cohort, CHE + CR2) beside the primary analysis."""
    ar = getattr(run, "all_rows", None)
    if ar is None:
        return ""
    if not ar.rows:
        return f"All rows of every cohort: {md_text(ar.note)}.\n"
    st = ar.stated
    sweep = "; ".join(f"r = {x['r']:g}: {_f(x['estimate'])} [{_f(x['ci_low'])}, {_f(x['ci_high'])}]"
                      for x in ar.rows if not x["stated"])
    warn = f" **Warning:** {md_text(st['note'])}." if st["df_below_4"] else ""
    return (f"All rows of every cohort ({ar.k_rows} rows from {ar.k_cohorts} cohorts; CHE working model with "
            f"r = {st['r']:g}, cluster-robust CR2 with Satterthwaite df = {_f(st['df'])}): SMD {_f(st['estimate'])} "
            f"[{_f(st['ci_low'])}, {_f(st['ci_high'])}], {_peq(st['p'])}; over r: {sweep}.{warn}\n")


def _records(df: pd.DataFrame, n: int | None = None) -> list[dict]:
    """The first ``n`` rows of ``df`` (all with None) as dicts, without a Series per row."""
    return (df if n is None else df.iloc[:n]).to_dict("records")


def _lists_md(run) -> str:
    """Rows set aside, rows without an SMD, rows of another task, notes: what did not enter, and why."""
    out = []
    aid = md_code(run.analysis.analysis_id)
    if len(run.set_aside):
        out.append("\nSet aside (one row per cohort):\n")
        out += _md_list([f"- {md_text(s['study_id'])} ({md_text(s.get('task', ''))}, {md_text(s['route'])}): "
                         f"{md_text(s['reason'])}" for s in _records(run.set_aside, REPORT_MAX_ROWS)], len(run.set_aside),
                        f"`set_aside.csv` (rows whose `analysis_id` is {aid}, `set` {run.evidence})")
        out.append("")
    if len(run.unusable):
        out.append("\nMatching rows without a usable SMD:\n")
        out += _md_list([f"- {md_text(s['study_id'])} {md_code(s['outcome'])}: {md_text(s.get('reason', '')) or 'no route'}"
                         for s in _records(run.unusable, REPORT_MAX_ROWS)], len(run.unusable),
                        "`effect_sizes.csv` (rows without `yi`)")
        out.append("")
    ot = getattr(run, "other_task", None)
    if ot is not None and len(ot):
        tasks = "|".join(run.analysis.tasks)
        out.append(f"\nLeft out: rows of another task than the analysis declares ({md_code(tasks)}; `analyses.csv` column "
                   "`task`):\n")
        out += _md_list([f"- {md_text(s['study_id'])} {md_code(s['outcome'])}: task {md_code(s.get('task', ''))}, "
                         f"timepoint {md_code(s.get('timepoint', ''))}" for s in _records(ot, REPORT_MAX_ROWS)], len(ot),
                        "`effect_sizes.csv` (column `task`)")
        out.append("")
    for n in run.notes:
        out.append(f"\nNote: {md_text(n)}\n")
    return "\n".join(out) + ("\n" if out else "")


def _png(run, kind: str) -> str | None:
    for f in getattr(run, "figures", ()) if run is not None else ():
        if f.endswith(f"_{kind}.png"):
            return f
    return None


def _img(alt: str, path: str) -> str:
    return f"![{md_text(alt)}]({urllib.parse.quote(path)})"


def figures_md(run, updated) -> str:
    """The forest, robustness and funnel plots of both sets: side by side where the sets differ, one
    figure (captioned as serving both) where the updated set adds nothing."""
    aid = run.analysis.analysis_id
    from meta.review.running.living import same_rows

    same = updated is None or same_rows(run, updated)
    out = []
    for kind in ("forest", "robustness", "funnel"):
        o, u = _png(run, kind), (_png(updated, kind) if updated is not None else None)
        name = kind.capitalize() + " plot"
        if same or u == o:
            if o:
                out.append(f"\n{_img(f'{name}, original and updated set (the same rows): {aid}', o)}\n")
        elif o and u:
            out.append(f"\n| {name}: original set | {name}: updated set |\n| --- | --- |\n"
                       f"| {_img(f'{name}, original set: {aid}', o)} | {_img(f'{name}, updated set: {aid}', u)} |\n")
        elif o:
            out.append(f"\n{_img(f'{name}, original set: {aid}', o)}\n")
        elif u:
            out.append(f"\n{_img(f'{name}, updated set: {aid}', u)}\n")
    return "\n".join(out)


def _run_section(run, updated=None) -> str:
    a = run.analysis
    out = [f"### {md_text(a.title)} ({md_code(a.analysis_id)})\n"]
    filt = "; ".join(str(f) for f in a.effective_filters)
    out.append(
        f"Outcome {md_code('|'.join(a.outcomes))}, comparison {md_code(a.comparison)}, task "
        f"{md_code('|'.join(a.tasks))}, filters {md_code(filt) or 'none'}, "
        f"SMD convention {md_code(a.smd_convention)}. {md_text(a.favours_left)} <- 0 -> {md_text(a.favours_right)}.\n"
    )
    if getattr(a, "es_scale", ""):
        out.append(f"Scale {md_code(a.es_scale)} (declared in `analyses.csv` column `es_scale`): only SMDs on this "
                   "scale are pooled; rows on another scale are listed apart.\n")
    if a.notes:
        out.append(f"Note: {md_text(a.notes)}\n")
    from meta.review.running.living import same_rows

    if updated is None or same_rows(run, updated):
        out.append("**Original and updated set** (no newer study changes the pooled rows):\n")
        if updated is not None:
            out.append(f"- Newer studies: {added_studies_text(updated)}.\n")
        out.append(_results_md(run))
    else:
        out.append("**Original set** (the review's studies, to April 2015):\n")
        out.append(_results_md(run))
        out.append("**Updated set** (original plus studies published since):\n")
        out.append(changed_md(run, updated))
        out.append(_results_md(updated))
    out.append(figures_md(run, updated))
    first = _lists_md(run)
    out.append(first)
    if updated is not None:
        extra = _lists_md(updated)
        if extra.strip() and extra != first:  # what the updated set leaves out, where it differs
            out.append("In the updated set:\n")
            out.append(extra)
    return "\n".join(out) + "\n"


def changed_md(run, updated) -> str:
    """What the updated set changes: the newer studies added, and the original rows the one-row-per-cohort
    rule sets aside in the updated set (with the rule's reason)."""
    before = set(run.rows["outcomes_row"]) if len(run.rows) else set()
    now = set(updated.rows["outcomes_row"]) if len(updated.rows) else set()
    lines = [f"- Newer studies: {added_studies_text(updated)}."]
    gone = updated.set_aside.loc[updated.set_aside["outcomes_row"].isin(before - now)] if len(updated.set_aside) else updated.set_aside
    aid = md_code(run.analysis.analysis_id)
    lines += _md_list([f"- Set aside in the updated set (one row per cohort): {md_text(s['study_id'])} "
                       f"({md_code(s['outcome'])}), pooled in the original set: {md_text(s['reason'])}."
                       for s in _records(gone, REPORT_MAX_ROWS)], len(gone),
                      f"`set_aside.csv` (rows whose `analysis_id` is {aid}, `set` updated)")
    other = before - now - set(gone["outcomes_row"]) if len(gone) else before - now
    first = run.rows.drop_duplicates("outcomes_row").set_index("outcomes_row")
    lines += _md_list([f"- No longer pooled: {md_text(first.at[rid, 'study_id'])} ({md_code(first.at[rid, 'outcome'])})."
                       for rid in sorted(other)[:REPORT_MAX_ROWS]], len(other),
                      f"`effect_sizes.csv` (rows whose `used_in` names {aid})")
    lines.append(f"- k: {run.k} -> {updated.k}.")
    return "\n".join(lines) + "\n\n"


def _robustness_md(run) -> str:
    """The analysis under every method of its robustness panel (a table and one line)."""
    rob = run.robustness
    level = int(round(100 * rob.level))
    t = pd.DataFrame(
        {
            "method": [pm.label for pm in rob.panel],
            f"estimate [{level}% CI / CrI]": [f"{_f(r['estimate'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]" for r in rob.rows],
            f"{level}% PI": [f"[{_f(r['pi_low'])}, {_f(r['pi_high'])}]" if (pm.kind == "bayes" or pm.method != "FE") else ""
                             for pm, r in zip(rob.panel, rob.rows)],
            "p": [_p(r["p"]) for r in rob.rows],
            "tau²": [_f(r["tau2"], 3) for r in rob.rows],
            "P(direction)": [_f(r["prob_direction"], 3) for r in rob.rows],
            "verdict": [r["verdict"] for r in rob.rows],
        }
    )
    d = {1: "positive", -1: "negative", 0: "no difference", None: "none"}[rob.direction]
    src = "the claim" if rob.direction_source == "claim" else "the primary estimate's sign"
    head = (f"\nRobustness (expected direction {d}, from {src}): the verdict holds under **{rob.holds_under}** methods"
            + (" -- **fragile**: the methods disagree." if rob.fragile else ".") + "\n\n")
    return head + _md_table(t) + ("\nBayesian row: posterior median, equal-tailed credible interval (CrI), posterior "
                                  "predictive interval, median tau²; P(direction) = posterior P(effect in the expected "
                                  "direction).\n")


def _prepost_md(res) -> str:
    """The pre-post r sweep: one row per post_vs_pre analysis, a column per r."""
    pp = getattr(res, "prepost_r", None)
    if pp is None or len(pp) == 0:
        return "_(no post vs pre analysis)_\n"
    rows = []
    for aid, g in pp.groupby("analysis_id", sort=False):
        rec = {"analysis": aid}
        for _, x in g.iterrows():
            cell = f"k = {x['k']:.0f}"
            if x["k"] >= 1:
                cell += f", {_f(x['estimate'])} [{_f(x['ci_low'])}, {_f(x['ci_high'])}], {x['verdict']}"
                cell += f" ({x['n_r_assumed']:.0f} assumed r)"
            rec[f"r = {x['r']:g}"] = cell
        rec["verdict depends on r"] = "yes" if bool(g["depends_on_r"].iloc[0]) else "no"
        rows.append(rec)
    text = ("Each post vs pre analysis re-run with the pre-post correlation assumed at each r for the rows that give none "
            "of their own (rows with a derived r keep it): k, SMD [95% CI] of the primary analysis and its verdict.\n")
    dep = [md_code(a) for a, g in pp.groupby("analysis_id", sort=False) if bool(g["depends_on_r"].iloc[0])]
    if dep:
        text += f"\nThe verdict depends on the assumed r for {', '.join(dep)}.\n"
    elif (pp["k"] == 0).all():
        text += ("\nAt every r no post vs pre analysis has a usable row (even with an assumed r a row needs its pre and post means and SDs), so no "
                 "verdict can depend on r.\n")
    else:
        text += "\nNo verdict depends on the assumed r.\n"
    return text + "\n" + _md_table(pd.DataFrame(rows))


def _pooled_overview(res) -> pd.DataFrame:
    from meta.review.running.claims import run_verdict
    from meta.review.running.levels import analysis_grade
    from meta.review.running.living import same_rows

    upd = {u.analysis.analysis_id: u for u in getattr(res, "updated", ())}
    rows = []
    for o in res.runs:
        u = upd.get(o.analysis.analysis_id)
        pair = [("original + updated" if u is None or same_rows(o, u) else "original", o)]
        if u is not None and not same_rows(o, u):
            pair.append(("updated", u))
        for set_name, r in pair:
            res_ = r.result
            rows.append(
                {
                    "analysis": r.analysis.analysis_id,
                    "set": set_name,
                    "k": r.k,
                    "n": r.to_frame()["n_total"].iloc[0],
                    "SMD [95% CI]": _ci(res_) if res_ is not None else "no usable data",
                    "p": _p(res_.p) if res_ is not None else "",
                    "95% PI": f"[{_f(res_.pi_low)}, {_f(res_.pi_high)}]" if r.k >= 2 else "",
                    "I² %": _f(res_.i2, 1) if r.k >= 2 else "",
                    "Q (p)": f"{_f(res_.q)} ({_p(res_.q_p)})" if r.k >= 2 else "",
                    "Egger p": _p(r.egger.p) if r.egger is not None else "",
                    "verdict (robustness)": run_verdict(r),
                    "level (rule)": analysis_grade(r).text,
                }
            )
    return pd.DataFrame(rows)


def _sensitivity_wide(res) -> pd.DataFrame:
    s = res.sensitivity
    if s is not None and "set" in s.columns:  # the original set here; both sets in sensitivity.csv
        s = s.loc[s["set"] == "original"]
    if s is None or len(s) == 0:
        return pd.DataFrame()
    s = s.assign(cell=[f"{_f(e)} [{_f(lo)}, {_f(hi)}]" for e, lo, hi in zip(s["estimate"], s["ci_low"], s["ci_high"])])
    order = list(dict.fromkeys(s["variant"]))
    aorder = list(dict.fromkeys(s["analysis_id"]))
    w = s.pivot(index="analysis_id", columns="variant", values="cell").reindex(index=aorder, columns=order)
    return w.reset_index().rename(columns={"analysis_id": "analysis"})


#: the report's title: what it is, said plainly (md heading and html <title>)
TITLE = "Neal et al. (2016): a reproduction and update from publicly accessible data"

#: the report's sections after the summary, in order (the table of contents is built from it)
SECTIONS = ("Claims of the review", "What newer studies say", "Pooled results", "Analyses", "Levels of evidence",
            "Sensitivity analyses", "Data coverage and gaps", "Methods")


def slug(text: str) -> str:
    """The id a heading gets in report.html (lower case, runs of other characters as ``-``)."""
    return re.sub(r"[^a-z0-9]+", "-", _plain(text).lower()).strip("-")


def allows_paragraph(res) -> str:
    """What the data allows, in one paragraph: counts from the runs, the claims and studies.csv."""
    c = res.claims
    orig = c.loc[c["set"] == "original"] if "set" in c.columns else c
    upd = c.loc[c["set"] == "updated"] if "set" in c.columns else c.iloc[0:0]

    def testable(frame):
        return int((~frame["verdict"].isin(["insufficient data"])).sum())

    def n(runs, status):
        return sum(r.status == status for r in runs)

    runs, updated = res.runs, getattr(res, "updated", ())
    studies = getattr(res, "studies", None)
    counts = ""
    if studies is not None:
        from meta.review.outputs.coverage import REVIEW_PUBLICATIONS, study_counts

        sc = study_counts(studies)
        counts = (f" The review included {REVIEW_PUBLICATIONS} publications; `studies.csv` holds {sc['candidates']} "
                  f"candidates for them and {sc['update']} newer studies (counts explained under "
                  "[Data coverage and gaps](#data-coverage-and-gaps)).")
    return (
        f"The review's full text, its Table 1 and its pooled results are not publicly accessible, so its data set was "
        f"rebuilt from accessible pages (mostly abstracts), every number with its source. Of the review's {len(orig)} "
        f"claims, {testable(orig)} can be tested on the original evidence set (k >= 2) and {testable(upd)} on the "
        f"updated set; the others have one study or none. Of {len(runs)} analyses, {n(runs, 'pooled')} pool in the "
        f"original set ({n(updated, 'pooled')} in the updated set), {n(runs, 'single_study')} have a single study "
        f"({n(updated, 'single_study')}) and {n(runs, 'no_data')} no usable data ({n(updated, 'no_data')}). Each verdict "
        f"carries the number of methods it holds under; each level of evidence is the range the rule allows while "
        f"study quality is unknown.{counts}"
    )


def _review_words(text) -> str:
    t = _plain(text)
    return t.split(" (", 1)[0] if " (" in t else t


def summary_table(res) -> pd.DataFrame:
    """The first screen: one row per review claim -- the review's words and level, then per evidence set
    k, SMD [95% CI], our verdict with its robustness, and the level the rule gives."""
    c = res.claims
    if c is None or len(c) == 0:
        return pd.DataFrame()
    if "set" not in c.columns:
        c = c.assign(set="original")
    recs = []

    def est(r):
        if int(r["k"]) == 0:
            return "k = 0"
        return f"k = {int(r['k'])}: {_f(r['estimate'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"

    for cid in dict.fromkeys(c["claim_id"].astype(str)):
        rows = c.loc[c["claim_id"].astype(str) == cid]
        o = rows.loc[rows["set"] == "original"].iloc[0]
        u = rows.loc[rows["set"] == "updated"].iloc[0] if (rows["set"] == "updated").any() else None
        same = u is not None and all(str(o[x]) == str(u[x]) for x in ("k", "estimate", "verdict_text", "level"))
        rec = {"claim": cid, "the review says": _review_words(o["claim"]), "review's level": o.get("review_level", ""),
               "original set: k, SMD [95% CI]": est(o), "original: verdict": o["verdict_text"],
               "original: level (rule)": o["level"]}
        if u is None:
            rec.update({"updated set: k, SMD [95% CI]": "", "updated: verdict": "", "updated: level (rule)": ""})
        elif same:
            rec.update({"updated set: k, SMD [95% CI]": "same as original", "updated: verdict": "",
                        "updated: level (rule)": ""})
        else:
            rec.update({"updated set: k, SMD [95% CI]": est(u), "updated: verdict": u["verdict_text"],
                        "updated: level (rule)": u["level"]})
        last = u if u is not None else o
        rec["review's level vs the rule"] = last.get("level_vs_review", "")
        recs.append(rec)
    return pd.DataFrame(recs)


def _toc() -> str:
    return "\n".join(f"- [{s}](#{slug(s)})" for s in SECTIONS) + "\n"


def levels_section(res) -> str:
    """The best-evidence-synthesis rule(s) used: criteria as data, source, the quality setting, and what
    is not accessible."""
    from meta.review.running.levels import rule_of

    rules = {}
    for r in res.runs:
        rule = rule_of(r.analysis)
        rules.setdefault(rule.name, (rule, []))[1].append(r.analysis.analysis_id)
    out = ["## Levels of evidence\n",
           "The review states each conclusion as a level of evidence (very limited / limited / moderate / strong) from "
           "the number of studies, their quality and their consistency. The review's own rule text is not accessible "
           "(only its abstract is), so each analysis is graded by a named, published best-evidence-synthesis rule "
           "(`analyses.csv` column `evidence_rule` may name another; `meta.evidence_synthesis.RULES`). Study quality "
           "is `studies.csv` `quality_score` / `quality_max`; no accessible page gives any study's score, so every "
           "quality is unknown and each level is the range the rule gives with every unknown study rated low and "
           "with every one rated high.\n"]
    for name, (rule, aids) in rules.items():
        out.append(f"### {md_text(rule.label)} ({md_code(name)})\n")
        out.append(f"Source: {rule.source}. {md_text(rule.text)}\n")
        out.append(f"Quality cut-offs, a setting: high >= {rule.quality_cutoffs['high']:g}, medium >= "
                   f"{rule.quality_cutoffs['medium']:g} of the scale maximum, else low. Where they come from: "
                   f"{md_text(rule.cutoff_source)} Significance and heterogeneity at alpha = {rule.alpha:g} (pooled "
                   "test of the primary analysis; Q test).\n")
        t = rule.to_frame().rename(columns={"min_high": "high-quality studies >=", "min_medium": "medium-or-better >="})
        t["consistent"] = t["consistent"].map({True: "yes (Q p >= alpha)", False: "no (Q p < alpha)", None: "-"})
        t["significant"] = t["significant"].map({True: "yes", False: "no"})
        out.append(_md_table(t))
        out.append(f"\nUsed by: {', '.join(md_code(a) for a in aids)}.\n")
    return "\n".join(out) + "\n"


def render(res) -> str:
    """The whole ``report.md`` for a :class:`meta.review.reproduce.ReproduceResult`: the first screen
    (title, what the data allows, the summary per claim), a table of contents, the results, and the
    methods last."""
    runs = res.runs
    out = [f"# {TITLE}\n"]
    out.append(
        "Of: Neal BS, Barton CJ, Gallie R, O'Halloran P, Morrissey D (2016). Runners with patellofemoral pain have "
        "altered biomechanics which targeted interventions can modify: a systematic review and meta-analysis. "
        "Gait & Posture 45:69-82. doi:10.1016/j.gaitpost.2015.11.018\n"
    )
    out.append(allows_paragraph(res) + "\n")
    out.append("## Summary: each claim of the review\n")
    out.append(_md_table(summary_table(res)))
    out.append("\nVerdict: *agrees* = the expected sign and a 95% CI excluding 0; *direction only* = the sign "
               "matches, the CI includes 0; *insufficient data* = k < 2. *Holds under n of m methods*: the robustness "
               "panel (see Methods); *fragile*: the methods disagree. Level: the best-evidence-synthesis rule of "
               "[Levels of evidence](#levels-of-evidence).\n")
    out.append("## Contents\n")
    out.append(_toc())
    out.append("## Claims of the review\n")
    out.append(
        "Rule: *insufficient data* when k < 2; *agrees* when the estimate has the expected sign and the 95% CI excludes 0; "
        "*direction only* when the sign matches but the CI includes 0; *disagrees* when the sign is opposite (for a claim of "
        "no difference: *agrees* when the CI includes 0). A claim spoken to by several analyses is *mixed* when their verdicts differ. "
        "*Direction votes* count one sign per cohort over every matching row, including rows that give only a direction in words "
        "and no usable SMD; they ignore precision and are shown beside the verdict, never used for it (Cochrane Handbook ch. 12). "
        "*Holds under n of m*: the number of methods of the robustness panel (see Methods) that give the verdict of the "
        "primary analysis (DL + Wald, as the review); *fragile*: the methods disagree, so the verdict depends on the method; "
        "a single study is not pooled and gets no method count.\n"
    )
    c = res.claims
    if "set" in c.columns:  # this table: the original set; both sets in "What newer studies say"
        c = c.loc[c["set"] == "original"]
    if len(c):
        ct = pd.DataFrame(
            {
                "claim": [f"{i}: {t}" for i, t in zip(c["claim_id"], c["claim"])],
                "expected": c["expected_direction"],
                "k": c["k"],
                "verdict (robustness)": c["verdict_text"],
                "level (rule) vs the review's": [f"{lv}; review's {rv or 'none'}: {cmp}" for lv, rv, cmp in
                                                 zip(c["level"], c["review_level"], c["level_vs_review"])],
                "our result": c["detail"],
                "direction votes (not a verdict)": c["direction_votes"],
            }
        )
        out.append(_md_table(ct))
    else:
        out.append("_(review_claims.csv has no rows)_\n")
    out.append("")
    out.append(newer_studies_section(res))
    out.append("## Pooled results\n")
    out.append(_md_table(_pooled_overview(res)))
    out.append("\nFull precision: `pooled.csv`; study-level SMDs: `effect_sizes.csv`.\n")
    out.append("\n## Analyses\n")
    upd = {u.analysis.analysis_id: u for u in getattr(res, "updated", ())}
    for r in runs:
        out.append(_run_section(r, upd.get(r.analysis.analysis_id)))
        out.append(analysis_update_md(res, r, upd.get(r.analysis.analysis_id)))
    out.append(levels_section(res))
    out.append("## Sensitivity analyses\n")
    out.append("### Estimator, SMD convention and CI method\n")
    out.append("SMD [95% CI] of each pooled analysis (k >= 2) under each setting; `primary` is the analysis' own setting.\n")
    out.append(_md_table(_sensitivity_wide(res)))
    out.append("\n### Pre-post correlation\n")
    out.append(_prepost_md(res))
    out.append("\n### Leave-one-out\n")
    any_loo = False
    for r in runs:
        if r.leave_one_out is None:
            continue
        any_loo = True
        lo = r.leave_one_out.iloc[:REPORT_MAX_ROWS]
        t = pd.DataFrame(
            {
                "omitted": lo["omitted"].astype(str),
                "SMD [95% CI]": [f"{_f(e)} [{_f(a)}, {_f(b)}]" for e, a, b in zip(lo["estimate"], lo["ci_low"], lo["ci_high"])],
                "p": [_p(p) for p in lo["p"]],
                "I² %": [_f(x, 1) for x in lo["i2"]],
            }
        )
        out.append(f"**{md_text(r.analysis.analysis_id)}** (all: {_ci(r.result)})\n")
        out.append(_md_table(t, more_in=f"`leave_one_out.csv` (rows whose `analysis_id` is {md_code(r.analysis.analysis_id)})",
                             n_rows=len(r.leave_one_out)))
        out.append("")
    if not any_loo:
        out.append("_(no analysis with k >= 2)_\n")
    out.append("## Data coverage and gaps\n")
    studies = getattr(res, "studies", None)
    if studies is not None:
        from meta.review.outputs.coverage import study_counts_text

        out.append(study_counts_text(studies) + "\n")
    out.append("The coverage table and the gap lists below are computed from the same effect table "
               "(`effect_sizes.csv`).\n")
    if res.coverage is None:
        out.append("_(no coverage table)_\n")
    else:
        out.append(_coverage_md(res.coverage))
    out.append("\n### Single-study analyses\n")
    single = [(r, s) for r0 in runs for s, r in (("original", r0), ("updated", upd.get(r0.analysis.analysis_id)))
              if r is not None and r.k == 1 and not (s == "updated" and _same(r0, r))]
    out.append("\n".join(f"- {md_code(r.analysis.analysis_id)} ({s} set): {md_text(r.rows['study_id'].iloc[0])}, "
                         f"SMD {_ci(r.result)}" for r, s in single) or "_(none)_")
    none = [r for r in runs if r.k == 0]
    out.append("\n### No usable data (original set)\n")
    out.append("\n".join(f"- {md_code(r.analysis.analysis_id)} ({md_text(r.analysis.title)}): {len(r.matched)} matching row(s)" for r in none) or "_(none)_")
    out.append("\n### Outcome rows with no usable route\n")
    e = res.effects
    bad = e.loc[~np.isfinite(pd.to_numeric(e["yi"], errors="coerce"))]
    if len(bad):
        cols = [x for x in ("outcomes_row", "study_id", "outcome", "comparison", "route", "reason") if x in bad.columns]
        out.append(_md_table(bad[cols], more_in="`effect_sizes.csv` (rows without `yi`)"))
    else:
        out.append("_(none)_\n")
    out.append("\n### Rows set aside by the unit-of-analysis rule\n")
    sets = [(r.analysis.analysis_id, st, r) for r0 in runs
            for st, r in (("original", r0), ("updated", upd.get(r0.analysis.analysis_id))) if r is not None
            and not (st == "updated" and _same(r0, r))]
    n_aside = sum(len(r.set_aside) for _, _, r in sets)
    aside = []
    for aid, st, r in sets:  # only the rows shown are turned into text
        aside += [(aid, s, st) for s in _records(r.set_aside, REPORT_MAX_ROWS + 1 - len(aside))]
        if len(aside) > REPORT_MAX_ROWS:
            break
    lines = [f"- {md_code(aid)} ({st} set): {md_text(s['study_id'])} ({md_text(s['route'])}): {md_text(s['reason'])}"
             for aid, s, st in aside[:REPORT_MAX_ROWS]]
    if n_aside > REPORT_MAX_ROWS:
        lines += ["", _more(n_aside - REPORT_MAX_ROWS, "`set_aside.csv`")]
    out.append("\n".join(lines) or "_(none)_")
    methods = _methods(res)
    if _MORE.search("\n".join(out)):  # said only where a table was shortened
        methods += (f" Tables and lists of the report with more than {REPORT_MAX_ROWS} rows show their first "
                    f"{REPORT_MAX_ROWS} rows and name the CSV file of this results folder that holds every row.")
    out.append("\n## Methods\n")
    out.append(methods + "\n")
    return "\n".join(out) + "\n"


def _same(a, b) -> bool:
    from meta.review.running.living import same_rows

    return same_rows(a, b)


# --------------------------------------------------------------------------- living update
# "What newer studies say" and the per-analysis update paragraph. Rendering only: the sets are
# chosen by meta.review.running.evidence, the numbers come from the runs, the published results from
# meta.review.inputs.published. Published SMDs are shown as printed; the source's sign_convention note is
# quoted verbatim beside every row, so a sign that differs from ours (group 1 minus group 2) is
# never silently flipped or silently compared.
SIGN_NOTE = ("Published SMDs are shown exactly as each source prints them; the *sign convention* column quotes "
             "the recorded note verbatim. Ours is group 1 minus group 2 (PFP minus control, post minus pre); "
             "where a source's sign means something else the note says so, and the number is not flipped.")


def _num_update(x, nd=2) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(x) else f"{x:.{nd}f}"


def _ci_of(est, lo, hi) -> str:
    e = _num_update(est)
    if not e:
        return ""
    if _num_update(lo) and _num_update(hi):
        return f"{e} [{_num_update(lo)}, {_num_update(hi)}]"
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
    from meta.review.running.evidence import UPDATE_REVIEW_SET

    def ids(df):
        if df is None or len(df) == 0 or "review_set" not in df:
            return []
        d = df.loc[df["review_set"].astype("string").fillna("") == UPDATE_REVIEW_SET]
        ys = d["year"] if "year" in d else pd.Series(None, index=d.index, dtype=object)
        out = dict(zip(d["study_id"].astype(str)[::-1], ys[::-1]))  # each study once, its first row's year
        order = dict.fromkeys(d["study_id"].astype(str))
        return [f"{md_text(s)} ({_year(out[s])})" for s in order]

    def join(xs):
        if len(xs) <= REPORT_MAX_ROWS:
            return ", ".join(xs)
        return ", ".join(xs[:REPORT_MAX_ROWS]) + f" and {len(xs) - REPORT_MAX_ROWS} more (`effect_sizes.csv`, `review_set` update)"

    pooled = ids(run.rows)
    seen = set(pooled)
    unusable = [s for s in ids(run.unusable) if s not in seen]
    other = [s for s in ids(getattr(run, "other_scale", None)) if s not in seen]
    parts = [("entered: " + join(pooled)) if pooled else "none entered the pooled estimate"]
    if unusable:
        parts.append("matched without a usable SMD: " + join(unusable))
    if other:
        parts.append("matched on another SMD scale, not pooled: " + join(other))
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
    from meta.review.inputs.published import published_for

    return published_for(getattr(res, "published", None), getattr(res, "vocabulary", None),
                         outcomes=outcomes, constructs=constructs, comparison=comparison)


def analysis_update_md(res, run, updated) -> str:
    """After an analysis' results: the updated set's cumulative forest plot and the published results on the
    same outcome (the updated set's own numbers and figures are in :func:`_run_section`)."""
    a = run.analysis
    out = []
    if updated is not None:
        fig = [f for f in getattr(updated, "figures", ()) if f.endswith("_cumulative.png")]
        if fig:
            out.append(f"\n{_img(f'Cumulative forest plot by publication year, updated set: {a.analysis_id}', fig[0])}\n")
    pub = _published(res, a.outcomes, a.comparison)
    if len(pub):
        out.append("\nPublished pooled results on the same outcome (successor reviews; not recomputed):\n")
        out.append(published_md(pub))
    return "\n".join(out) + ("\n" if out else "")


def overview(res) -> pd.DataFrame:
    """One row per analysis: k and SMD [95% CI] in the original and the updated set, the newer studies pooled."""
    from meta.review.running.evidence import analysis_scale

    upd = {r.analysis.analysis_id: r for r in getattr(res, "updated", ())}
    recs = []
    for r in res.runs:
        u = upd.get(r.analysis.analysis_id)
        # an analysis declaring another scale (analyses.csv es_scale) says so beside every number
        scale = "; d_z, SD of change" if analysis_scale(r.analysis) == "change_sd" else ""

        def smd(run):
            if run is None or run.k == 0:
                return "no usable data"
            single = "single study" if run.k == 1 else ""
            tag = f" ({single}{scale})" if single else (f" ({scale[2:]})" if scale else "")
            return _ci_of(run.result.estimate, run.result.ci_low, run.result.ci_high) + tag

        new = []
        if u is not None and "review_set" in u.rows:
            new = list(dict.fromkeys(u.rows.loc[u.rows["review_set"].astype("string").fillna("") == "update", "study_id"].astype(str)))
        recs.append({"analysis": r.analysis.analysis_id, "k original": r.k, "SMD [95% CI] original": smd(r),
                     "k updated": u.k if u is not None else "", "SMD [95% CI] updated": smd(u),
                     "newer studies pooled": ", ".join(new[:REPORT_MAX_ROWS]) + (
                         f" and {len(new) - REPORT_MAX_ROWS} more (`effect_sizes.csv`)" if len(new) > REPORT_MAX_ROWS else "")})
    return pd.DataFrame(recs)


def newer_studies_section(res) -> str:
    """``## What newer studies say``: per claim, the verdict on both sets, the update studies that
    entered, and the successors' published pooled results for the claim's construct."""
    from meta.review.running.evidence import set_label

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
                out.append(f"- {set_label(set_name)}: **{md_text(r.get('verdict_text', r['verdict']))}** "
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


# --------------------------------------------------------------------------- html

#: the page may load nothing but its own images and its inline stylesheet: no script, no remote content,
#: whatever the Markdown holds (a second line of defence behind md_text and the link rules below)
CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"

_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em;line-height:1.4}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;font-size:90%;vertical-align:top}"
    "th{background:#eee}img{max-width:100%}code{background:#f4f4f4;padding:0 2px}"
    "table:has(img){width:100%;table-layout:fixed}td img{width:100%}"
)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _link_ok(url: str) -> bool:
    """Links may go to http(s) addresses or relative paths; nothing else (javascript:, data:, file:, ...)."""
    u = url.strip()
    if _SCHEME.match(u):
        return u.lower().startswith(("http://", "https://"))
    return not u.startswith("//")  # protocol-relative = remote


def _image_ok(src: str) -> bool:
    """Images only from the results folder: a relative path that does not climb out of it."""
    u = src.strip()
    if not u or _SCHEME.match(u) or u.startswith(("/", "\\")):
        return False
    parts = urllib.parse.unquote(u).replace("\\", "/").split("/")
    return ".." not in parts


def _image_rule(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    alt = self.renderInlineAsText(tok.children or [], options, env)
    src = tok.attrGet("src") or ""
    if not _image_ok(str(src)):
        return escapeHtml(alt)  # a remote or scripted image shows as its alt text
    return f'<img alt="{escapeHtml(alt)}" src="{escapeHtml(str(src))}">'


def _heading_ids(state) -> None:
    """Give every heading an id (:func:`slug` of its text, made unique) so the contents can link to it."""
    seen: dict[str, int] = {}
    toks = state.tokens
    for i, tok in enumerate(toks):
        if tok.type == "heading_open" and i + 1 < len(toks):
            base = slug(toks[i + 1].content) or "section"
            n = seen.get(base, 0)
            seen[base] = n + 1
            tok.attrSet("id", base if n == 0 else f"{base}-{n}")


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.core.ruler.push("heading_ids", _heading_ids)
    md.validateLink = _link_ok  # an invalid link stays text; an invalid image gets src="" and is dropped below
    md.add_render_rule("image", _image_rule)
    return md


def markdown_to_html(md: str, title: str = "report") -> str:
    """``report.html``: the Markdown of :func:`render` as one self-contained page.

    CommonMark plus pipe tables (markdown-it-py) with raw HTML switched off,
    links only to http(s) or relative addresses, images only from the results
    folder, and a Content-Security-Policy (:data:`CSP`) that forbids script and
    remote content in the browser.
    """
    body = _markdown().render(md)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f"<title>{escapeHtml(title)}</title>\n"
        f"<style>{_STYLE}</style>\n"
        "</head><body>\n"
        f"{body}"
        "</body></html>\n"
    )
