"""The forest plot: RevMan's layout (Deeks & Higgins 2010, "Statistical algorithms in Review
Manager 5"; Cochrane Handbook ch. 10), one row per study with its numbers, squares whose area is
proportional to the weight, pooled diamonds, the prediction interval (Higgins, Thompson &
Spiegelhalter 2009; Riley, Higgins & Deeks 2011) and the heterogeneity lines.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta.plots.layout import (CM, MINUS, _auto_xlim, _ci_text, _column_decimals, _method_text, _num, _same, _text_width,
                               _wrap, heterogeneity_line, label_ticks, measure_display, overall_effect_line, plain_figure,
                               ratio_label, ratio_ticks, refuse_regression, subgroup_differences_line, value_axis)
from meta.plots.caterpillar import MAX_ROWS, caterpillar_figure, check_max_rows
from meta.plots.style import fixed_style

__all__ = ["forest"]


# --------------------------------------------------------------------------
# forest plot
# --------------------------------------------------------------------------
_GROUP_COLS = (("mean1", "Mean"), ("sd1", "SD"), ("n1", "Total"))
_GROUP2_COLS = (("mean2", "Mean"), ("sd2", "SD"), ("n2", "Total"))


@dataclass
class _Row:
    kind: str  # study | group | subtotal | total | pi | text | blank
    cells: dict = field(default_factory=dict)
    bold: bool = False
    est: float = np.nan
    lo: float = np.nan
    hi: float = np.nan
    weight: float = np.nan
    name: str = ""
    filled: bool = False  # a study filled in by trim and fill


def _check_studies(studies: Any, label: str, subgroup: str | None) -> pd.DataFrame:
    if not isinstance(studies, pd.DataFrame):
        raise TypeError(f"forest: studies must be a pandas DataFrame, got {type(studies).__name__}")
    need = ["yi", "vi", label] + ([subgroup] if subgroup is not None else [])
    missing = [c for c in need if c not in studies.columns]
    if missing:
        raise ValueError(f"forest: studies has no column(s) {missing}; columns are {list(studies.columns)}"
                         + (" (use label= to name the study-label column)" if label in missing else ""))
    if len(studies) == 0:
        raise ValueError("forest: studies has no rows")
    for col in [label] + ([subgroup] if subgroup is not None else []):
        try:  # rows are paired with the result's studies and subgroups by their text: 1 and "1" would be one
            _checks.one_kind(studies[col], f"studies[{col!r}]")
        except ValueError as exc:
            raise ValueError(f"forest: {exc}") from None
    return studies


def _numeric(studies: pd.DataFrame, col: str) -> np.ndarray:
    """Column ``col`` as floats (missing -> NaN); non-numbers are refused by row."""
    raw = studies[col]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna()
    if bad.any():
        rows = [str(i) for i in studies.index[bad][:5]]
        raise ValueError(f"forest: studies[{col!r}] must be numeric; rows {', '.join(rows)} hold "
                         f"{raw[bad].head(5).tolist()}")
    return num.to_numpy(dtype=float, na_value=np.nan)


def _data_of(result: Any, who: str) -> tuple[np.ndarray, np.ndarray, list]:
    """``yi``, ``vi`` and labels a fitted result carries (``meta.pool.PoolResult``)."""
    yi, vi = getattr(result, "yi", None), getattr(result, "vi", None)
    if yi is None or vi is None:
        raise ValueError(f"{who}: the result carries no yi/vi (built by hand?); fit it with meta.pool.pool()")
    yi, vi = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    slab = list(getattr(result, "slab", ()) or ())
    if len(slab) != yi.size:
        slab = list(range(1, yi.size + 1))
    return yi, vi, slab


def _table_of(result: Any, label: str, subgroup: str | None) -> pd.DataFrame:
    """The study table of ``forest(result)`` without ``studies``: one row per
    study the result was fitted on (per subgroup, in its order, for a
    SubgroupResult)."""
    if subgroup is None:
        yi, vi, slab = _data_of(result, "forest")
        return pd.DataFrame({label: [str(x) for x in slab], "yi": yi, "vi": vi})
    parts = []
    for g, gres in result.groups.items():
        yi, vi, slab = _data_of(gres, "forest")
        parts.append(pd.DataFrame({label: [str(x) for x in slab], "yi": yi, "vi": vi, subgroup: g}))
    return pd.concat(parts, ignore_index=True)


def _match_rows(studies: pd.DataFrame, label: str, yi: np.ndarray, vi: np.ndarray, finite: np.ndarray,
                ryi: np.ndarray, rvi: np.ndarray, rlab: list) -> np.ndarray:
    """For each row of ``studies``, the position of its study in the result
    (-1 for rows without finite yi/vi): matched by label (``studies[label]``
    against the result's ``slab``), else by the (yi, vi) pair -- never by
    position.  The rows' yi/vi must equal the result's; else ``ValueError``."""
    rows = np.flatnonzero(finite)
    pos = np.full(len(studies), -1)
    lab = studies[label].astype(str).to_numpy()[rows]
    rlab = [str(x) for x in rlab]
    if rows.size != ryi.size:
        raise ValueError(
            f"forest: result was fitted on {ryi.size} studies but studies has {rows.size} rows with finite yi "
            f"and vi ({len(studies)} rows in all); pass the studies that were pooled (in any order)")
    if len(set(rlab)) == len(rlab) and len(set(lab)) == lab.size and set(lab) == set(rlab):
        where = {x: i for i, x in enumerate(rlab)}
        pos[rows] = [where[x] for x in lab]
        off = ~(_same(yi[rows], ryi[pos[rows]]) & _same(vi[rows], rvi[pos[rows]]))
        if off.any():
            bad = [str(x) for x in lab[off][:5]]
            raise ValueError(
                f"forest: studies[{label!r}] rows {bad} have yi/vi different from the result's studies of the "
                "same label; pass the studies that were pooled, or refit the result")
        return pos
    # labels do not identify the studies (e.g. the result's default labels 1..k): match the (yi, vi)
    # pairs; studies with equal yi and vi are interchangeable (same weight, same interval)
    free = np.ones(ryi.size, dtype=bool)
    unmatched = []
    by_yi = np.argsort(ryi, kind="stable")  # candidates by yi from a sorted window: linear in k, not k x k
    sorted_yi = ryi[by_yi]
    for i in rows:
        t = 2 * (1e-12 + 1e-9 * abs(yi[i]))  # twice _same's tolerance; _same then decides
        first, last = np.searchsorted(sorted_yi, yi[i] - t, "left"), np.searchsorted(sorted_yi, yi[i] + t, "right")
        cand = np.sort(by_yi[first:last])
        hit = cand[free[cand] & _same(ryi[cand], yi[i]) & _same(rvi[cand], vi[i])]
        if hit.size == 0:
            unmatched.append(str(studies[label].iloc[i]))
            continue
        pos[i] = hit[0]
        free[hit[0]] = False
    if unmatched:
        raise ValueError(
            f"forest: the rows of studies do not hold the result's studies: studies[{label!r}] "
            f"{unmatched[:5]} have yi/vi the result was not fitted on, and the labels do not match the "
            f"result's slab {rlab[:5]}{' ...' if len(rlab) > 5 else ''}; pass the studies that were pooled "
            "(in any order), e.g. with pool(..., slab=studies[label])")
    return pos


def _table_layout(rows, footer, num_cols, group_labels, xlabel, method_text, fontsize, weight=True):
    """Column widths and left edges (inches) of the forest table at ``fontsize``."""

    def tw(s: str, bold: bool = False) -> float:
        return max([_text_width(line, bold, fontsize) for line in str(s).split("\n") if line] + [0.0])

    margin, gap = 0.06, 0.85 * fontsize / 72  # between columns: 0.85 em (the widths are unhinted, as printed: meta.plots.style)
    headers2 = {"label": "Study or Subgroup", "weight": "Weight", "ci": method_text}
    for c, h in _GROUP_COLS + _GROUP2_COLS:
        headers2[c] = h
    cols = ["label"] + num_cols + (["weight"] if weight else []) + ["ci"]  # one study weighs nothing against others
    widths = {}
    for c in cols:
        cell_w = [tw(r.cells.get(c, ""), r.bold) for r in rows if r.kind != "text"]
        widths[c] = max([tw(headers2[c], True)] + cell_w)
    for glabel, members in ((group_labels[0], [c for c, _ in _GROUP_COLS if c in num_cols]),
                            (group_labels[1], [c for c, _ in _GROUP2_COLS if c in num_cols])):
        if members:  # group headers must fit over their columns
            span = sum(widths[c] for c in members) + gap * (len(members) - 1)
            need = tw(glabel, True)
            if need > span:
                widths[members[0]] += need - span
    widths["ci"] = max(widths["ci"], tw(xlabel, True))
    x = margin
    col_left = {}
    for c in cols:
        col_left[c] = x
        x += widths[c] + gap
    table_w = x - gap - margin
    # subgroup statistics rows and footer lines must fit left of the plot
    text_w = max([tw(r.cells["label"]) for r in rows if r.kind == "text"] + [tw(s) for _, s in footer])
    if text_w > table_w:
        extra = text_w - table_w
        widths["label"] += extra
        for c in cols[1:]:
            col_left[c] += extra
        table_w = text_w
    return {"tw": tw, "widths": widths, "col_left": col_left, "cols": cols, "headers2": headers2,
            "table_w": table_w, "gap": gap}


def _value_ticks(ax, x0: float, x1: float, null: float, disp: dict) -> None:
    """Ticks of the effect axis: ratio measures on log positions labelled in ratios (metafor
    ``atransf=exp``), five ticks when the axis is symmetric about the null line, labels through
    ``atransf`` where one is set (:func:`meta.plots.layout.measure_display`)."""
    av = disp["av"]
    if disp["log_axis"]:  # ratio measures: log positions labelled in ratios (metafor atransf=exp)
        ticks = ratio_ticks(x0, x1)
        ax.set_xticks(ticks)
        ax.set_xticklabels([ratio_label(float(np.exp(t))) for t in ticks])
    else:
        ticks = np.linspace(x0, x1, 5) if (x1 + x0) == 2 * null else ax.get_xticks()
        ax.set_xticks([t for t in ticks if x0 - 1e-12 <= t <= x1 + 1e-12])
        if disp["atransf"]:
            nice = label_ticks(av, x0, x1)
            if nice is not None:
                ax.set_xticks(nice[0])
                ax.set_xticklabels(nice[1])
            else:
                with np.errstate(all="ignore"):
                    ax.set_xticklabels([_num(float(av(t)), 2) for t in ax.get_xticks()])


def _caterpillar(overall, sub, tf, yi, lo, hi, tvf, disp, *, level, show_pi, xlabel, title, favours, xlim, fontsize,
                 width_cm, max_rows, rows_note, digits):
    """``forest``'s figure above ``max_rows`` rows: the caterpillar plot of the same studies, intervals and
    pooled result (:func:`meta.plots.caterpillar.caterpillar_figure`)."""
    tv = disp["tv"]
    with np.errstate(all="ignore"):
        e, a, b = (np.asarray(tv(np.asarray(x, dtype=float)), dtype=float) for x in (yi, lo, hi))
    pooled = pi = None
    if int(overall.k) >= 2:
        pooled = (tvf(overall.estimate), tvf(overall.ci_low), tvf(overall.ci_high))
        if (show_pi and int(overall.k) >= 3 and str(overall.method).upper() not in ("MH", "PETO")
                and np.isfinite(overall.pi_low) and np.isfinite(overall.pi_high)):
            pi = (tvf(overall.pi_low), tvf(overall.pi_high))
    notes = [("heterogeneity", heterogeneity_line(overall)), ("overall-effect", overall_effect_line(overall))]
    if pooled is not None:  # the numbers of the table's Total and prediction-interval rows
        av = disp["av"]
        with np.errstate(all="ignore"):
            total = f"Total ({100 * level:g}% CI): " + _ci_text(*(float(av(v)) for v in pooled), digits)
            if pi is not None:
                total += f"; prediction interval [{_num(float(av(pi[0])), digits)}, {_num(float(av(pi[1])), digits)}]"
        notes.insert(0, ("total", total))
    if tf is not None:
        k0 = int(tf.k0)
        notes.append(("trimfill-note", f"Trim and fill ({tf.estimator}): {k0} {'study' if k0 == 1 else 'studies'} "
                                       f"filled in, {tf.side} side; drawn among the others, the line is the adjusted estimate"))
    if sub is not None:
        notes.append(("subgroup-differences", subgroup_differences_line(sub) + "; the subgroups' own pooled "
                      "estimates are not drawn"))
    null = tvf(0.0)
    return caterpillar_figure(
        e, a, b, pooled=pooled, pi=pi, null=null, xlim=xlim, xlabel=xlabel,
        pooled_text=f"pooled estimate ({_method_text(overall, with_level=False)})", level_text=f"{100 * level:g}%",
        title=title, favours=favours, notes=notes, max_rows=max_rows,
        rows_note=rows_note if rows_note is not None else "each study's numbers are in the studies table",
        ticks=lambda ax, x0, x1: _value_ticks(ax, x0, x1, null, disp), fontsize=fontsize, width_cm=width_cm)


@fixed_style
def forest(
    result: Any,
    studies: pd.DataFrame | None = None,
    *,
    label: str = "label",
    subgroup: str | None = None,
    favours: Sequence[str] = ("Favours group 2", "Favours group 1"),
    xlabel: str | None = None,
    title: str | None = None,
    group_labels: Sequence[str] = ("Group 1", "Group 2"),
    xlim: tuple[float, float] | None = None,
    show_pi: bool = True,
    digits: int = 2,
    fontsize: float = 8.0,
    width_cm: float = 17.0,
    transf: Any = None,
    atransf: Any = None,
    max_rows: int | None = MAX_ROWS,
    rows_note: str | None = None,
) -> Figure:
    """RevMan-style forest plot of a pooled result.

    Parameters
    ----------
    result : a :class:`meta.multilevel.MultilevelResult` (drawn by
        :func:`meta.plots.forest_multilevel.forest_mv`: effect sizes grouped under their
        study, the pooled diamond), a :class:`meta.pool.PoolResult` (k = 1 included), a
        :class:`meta.pool.SubgroupResult` (its ``groups`` keyed by the values of
        ``studies[subgroup]``; the total row uses ``result.overall``), or a
        :class:`meta.bias.TrimFillResult`: its observed and filled studies, the
        filled ones last with hollow squares (gid ``filled-markers``), and the
        adjusted pooled estimate (metafor ``forest(trimfill(res))``).
    studies : optional DataFrame, one row per study, in the order to draw:
        ``yi``, ``vi``, the label column (``label=``, e.g. "Author Year"),
        optionally ``n1, mean1, sd1, n2, mean2, sd2`` (shown as columns, like
        RevMan, when present) and ``weight`` (percent; otherwise the result's
        weights). Default: the studies the result carries (``slab``, ``yi``,
        ``vi``; for a SubgroupResult the column ``subgroup="subgroup"``).
        The rows are matched to the result's studies by label
        (``studies[label]`` against ``result.slab``), or where the labels do
        not identify them by their (yi, vi) pair -- never by position -- and
        their yi/vi must equal the result's (else ``ValueError``). Rows with
        NaN ``yi``/``vi`` are listed as "Not estimable".
    favours : (left, right) labels under the axis; the caller chooses the wording.
    xlabel : header of the effect columns; default from the result's ``measure``
        ("SMD (95% CI)", "Odds Ratio (95% CI)", "Estimate (95% CI)" for an unknown one).
    transf, atransf : metafor's ``forest`` arguments: ``transf`` transforms every
        value before drawing, ``atransf`` only the axis labels and the text column.
        Default (None): by the result's measure, OR/RR/PETO/ROM on a log axis
        labelled in ratios (``atransf=numpy.exp``; ticks at 1-2-5 ratios), ZCOR as
        correlations (``transf=numpy.tanh``), the others as analysed; ``False``
        turns it off (:func:`meta.plots.layout.measure_display`).
    max_rows : the most study rows drawn as the labelled table (default
        :data:`meta.plots.caterpillar.MAX_ROWS` = 60, a page at 8 pt). With more rows
        (filled studies included) the figure is a caterpillar plot
        (:func:`meta.plots.caterpillar.caterpillar_figure`): studies sorted by
        estimate, each CI one segment, no labels or number columns, the pooled
        estimate as a vertical line with its CI band and the prediction interval
        (where the table would draw one) as dashed lines, the heterogeneity and
        overall-effect lines under it, and a caption saying that the rows are drawn
        without labels and where their numbers are. ``None``: always the table.
    rows_note : where every row's numbers are, said in that caption (e.g.
        ``"every row's numbers are in effect_sizes.csv"``); default: the studies table.
    group_labels : headers over the group-1 and group-2 columns.
    xlim : x-axis limits; default symmetric about 0 and wide enough for every
        point estimate, pooled interval and prediction interval; a study
        interval is clipped (with an arrow) only where showing it would widen
        the scale by more than half.
    show_pi : draw the prediction interval row when ``k >= 3`` and it is finite.
    fontsize : points; the default 8 pt at ``width_cm=17`` (two-column width)
        keeps every text >= 7 pt when printed at that width.

    Returns
    -------
    matplotlib.figure.Figure, not registered with pyplot. Its artists carry
    gids for inspection: ``study-markers`` (squares, area proportional to
    weight), ``study-ci``, ``ci-arrow``, ``pooled-diamond``, ``subgroup-diamond``,
    ``prediction-interval``, ``null-line``, ``favours-left``/``favours-right``,
    ``heterogeneity``, ``overall-effect``, ``subgroup-differences``; the plot
    axes has label ``forest``.

    Notes
    -----
    Study intervals are ``yi -/+ z * sqrt(vi)`` with ``z`` the normal quantile
    for ``result.level`` (as RevMan and metafor ``forest``). Weights, pooled
    intervals and heterogeneity statistics are read from ``result``; nothing is
    re-estimated here.
    """
    refuse_regression(result, "forest")
    max_rows = check_max_rows(max_rows, "forest")
    if hasattr(result, "sigma2") and hasattr(result, "cluster"):  # meta.multilevel.MultilevelResult
        from meta.plots.forest_multilevel import forest_mv

        if studies is not None or subgroup is not None:
            raise ValueError("forest: a multilevel result carries its effect sizes and studies; pass no studies/subgroup")
        return forest_mv(result, favours=favours, xlabel=xlabel, title=title, xlim=xlim, digits=digits,
                         fontsize=fontsize, width_cm=width_cm, max_rows=max_rows, rows_note=rows_note)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon
    from matplotlib.transforms import offset_copy
    tf = None
    if hasattr(result, "filled_yi") and hasattr(result, "result"):  # meta.bias.TrimFillResult
        if subgroup is not None:
            raise ValueError("forest: a trim-and-fill result has no subgroups; pass subgroup=None")
        tf, result = result, result.result
    if studies is None and subgroup is None and hasattr(result, "groups"):
        subgroup = "subgroup"
    is_sub = subgroup is not None
    if is_sub:
        if not hasattr(result, "groups") or not hasattr(result, "overall"):
            raise TypeError("forest: subgroup= was given, so result must be a SubgroupResult "
                            f"(with .groups and .overall), got {type(result).__name__}")
        overall = result.overall
    else:
        if hasattr(result, "groups"):
            raise TypeError("forest: result is a SubgroupResult; pass subgroup= naming the "
                            "studies column that holds the groups")
        overall = result
    if len(favours) != 2 or len(group_labels) != 2:
        raise ValueError("forest: favours and group_labels must each be a pair (left/group 1, right/group 2)")

    k0 = int(tf.k0) if tf is not None else 0
    if studies is None:
        studies = _table_of(tf.original if tf is not None else result, label, subgroup)
    studies = _check_studies(studies, label, subgroup)
    yi, vi = _numeric(studies, "yi"), _numeric(studies, "vi")
    finite = np.isfinite(yi) & np.isfinite(vi) & (vi >= 0)
    ryi, rvi, rlab = _data_of(overall, "forest")
    n_obs = ryi.size - k0
    pos = _match_rows(studies, label, yi, vi, finite, ryi[:n_obs], rvi[:n_obs], rlab[:n_obs])
    if k0:  # the filled studies, last (metafor's order)
        fill = pd.DataFrame({label: [str(x) for x in rlab[n_obs:]], "yi": ryi[n_obs:], "vi": rvi[n_obs:]})
        studies = pd.concat([studies.reset_index(drop=True), fill], ignore_index=True)
        pos = np.r_[pos, np.arange(n_obs, ryi.size)]
        yi, vi = _numeric(studies, "yi"), _numeric(studies, "vi")
        finite = np.isfinite(yi) & np.isfinite(vi) & (vi >= 0)
    is_filled = np.arange(len(studies)) >= len(studies) - k0
    if "weight" in studies.columns:
        weights = _numeric(studies, "weight")
    else:
        weights = np.full(len(studies), np.nan)
        weights[pos >= 0] = np.asarray(overall.weights, dtype=float)[pos[pos >= 0]]
    level = float(overall.level)
    z = float(_lazy.special().ndtri(0.5 + level / 2))  # = scipy.stats.norm.ppf
    se = np.sqrt(np.where(finite, vi, np.nan))
    lo, hi = yi - z * se, yi + z * se
    disp = measure_display(overall, transf, atransf)
    tv, av = disp["tv"], disp["av"]

    def tvf(x):
        with np.errstate(all="ignore"):
            return float(tv(x))

    def ci_text(e, a, b):
        with np.errstate(all="ignore"):
            return _ci_text(float(av(e)), float(av(a)), float(av(b)), digits)

    if xlabel is None:
        xlabel = f"{disp['header']} ({100 * level:g}% CI)"
    if max_rows is not None and len(studies) > max_rows:
        return _caterpillar(overall, result if is_sub else None, tf, yi, lo, hi, tvf, disp, level=level, show_pi=show_pi,
                            xlabel=xlabel, title=title, favours=favours, xlim=xlim, fontsize=fontsize,
                            width_cm=width_cm, max_rows=max_rows, rows_note=rows_note, digits=digits)

    num_cols = [c for c, _ in _GROUP_COLS + _GROUP2_COLS if c in studies.columns]
    decimals = {c: _column_decimals(_numeric(studies, c)) for c in num_cols}

    def fmt_cell(col: str, value: Any) -> str:
        try:
            v = float(value)
        except (TypeError, ValueError):
            return str(value)
        if not np.isfinite(v):
            return ""
        return _num(v, decimals[col])

    def study_row(i: int) -> _Row:
        cells = {"label": str(studies[label].iloc[i])}
        for c in num_cols:
            cells[c] = fmt_cell(c, studies[c].iloc[i])
        if finite[i]:
            cells["weight"] = f"{weights[i]:.1f}%" if np.isfinite(weights[i]) else ""
            e, a, b = tvf(yi[i]), tvf(lo[i]), tvf(hi[i])
            cells["ci"] = ci_text(e, a, b)
            return _Row("study", cells, est=e, lo=a, hi=b, weight=weights[i], filled=bool(is_filled[i]))
        cells["weight"] = ""
        cells["ci"] = "Not estimable"
        return _Row("study", cells)

    def pooled_row(kind: str, name: str, res: Any, idx: np.ndarray) -> _Row:
        cells = {"label": name}
        for c in ("n1", "n2"):
            if c in num_cols:
                cells[c] = _num(float(np.nansum(_numeric(studies, c)[idx & finite])), 0)
        w = 100.0 if kind == "total" else float(np.nansum(weights[idx & finite]))
        cells["weight"] = f"{w:.1f}%"
        e, a, b = tvf(res.estimate), tvf(res.ci_low), tvf(res.ci_high)
        cells["ci"] = ci_text(e, a, b)
        return _Row(kind, cells, bold=True, est=e, lo=a, hi=b, name=name)

    rows: list[_Row] = []
    all_idx = np.ones(len(studies), dtype=bool)
    if is_sub:
        gcol = studies[subgroup]
        order = list(dict.fromkeys(gcol.tolist()))
        for g in order:
            if g in result.groups:
                gres = result.groups[g]
            elif str(g) in result.groups:
                gres = result.groups[str(g)]
            else:
                raise ValueError(f"forest: group {g!r} of studies[{subgroup!r}] is not in result.groups "
                                 f"(keys {list(result.groups)})")
            idx = np.asarray(gcol == g)
            rows.append(_Row("group", {"label": str(g)}, bold=True))
            rows.extend(study_row(i) for i in np.flatnonzero(idx))
            rows.append(pooled_row("subtotal", "Subtotal (95% CI)".replace("95%", f"{100 * level:g}%"), gres, idx))
            rows[-1].name = str(g)
            rows.append(_Row("text", {"label": heterogeneity_line(gres)}, name="heterogeneity"))
            rows.append(_Row("text", {"label": overall_effect_line(gres)}, name="overall-effect"))
            rows.append(_Row("blank"))
    else:
        rows.extend(study_row(i) for i in range(len(studies)))
        rows.append(_Row("blank"))
    rows.append(pooled_row("total", f"Total ({100 * level:g}% CI)", overall, all_idx))
    pi_ok = (show_pi and int(overall.k) >= 3 and str(overall.method).upper() not in ("MH", "PETO") and np.isfinite(overall.pi_low) and np.isfinite(overall.pi_high))
    if pi_ok:
        pl, ph = tvf(overall.pi_low), tvf(overall.pi_high)
        rows.append(_Row("pi", {"label": "Prediction interval",
                                "ci": f"[{_num(float(av(pl)), digits)}, {_num(float(av(ph)), digits)}]"},
                         lo=pl, hi=ph))
    footer = [("heterogeneity", heterogeneity_line(overall)), ("overall-effect", overall_effect_line(overall))]
    if tf is not None:
        footer.append(("trimfill-note", f"Trim and fill ({tf.estimator}): {k0} "
                                        f"{'study' if k0 == 1 else 'studies'} filled in (hollow), {tf.side} side"))
    if is_sub:
        footer.append(("subgroup-differences", subgroup_differences_line(result)))
    # one study (metafor's k = 1 fit is the study itself): nothing was pooled, so no Total row, no
    # diamond, no pooled-method header and no heterogeneity line; the study's own CI and z test stay
    single = not is_sub and int(overall.k) == 1
    if single:
        rows = [r for r in rows if r.kind not in ("total", "pi", "blank")]
        footer = [("overall-effect", overall_effect_line(overall).replace("Test for overall effect",
                                                                           "Single study, not pooled"))]

    # ---------------- measure text, fit the width (inches) ----------------
    method_text = _method_text(overall) if not single else ""
    method_kind = _method_text(overall, with_level=False) if not single else f"{100 * level:g}% CI"
    W = width_cm * CM
    # one study: the plot is at least wide enough for each favours label on one line in its half (a
    # label is a phrase: "Greater in future PFP" split after "in" reads as two labels); the table font
    # shrinks, or the figure widens, before a label wraps
    fav_need = 2 * max(_text_width(str(t), False, fontsize) for t in favours) / 0.96 + 0.1 if single else 0.0
    margin, min_plot = 0.06, max(1.5, fav_need)
    # shrink the font (not below 7 pt) before widening the figure
    candidates = [fontsize] + [f for f in (7.5, 7.0) if f < fontsize]
    for fontsize in candidates:
        lay = _table_layout(rows, footer, num_cols, group_labels, xlabel, method_kind, fontsize, weight=not single)
        # room for half of the leftmost tick label between the table and the axis
        plot_x0 = margin + lay["table_w"] + 2 * lay["gap"] + _text_width(MINUS + "0.0", False, fontsize) / 2
        plot_w = W - plot_x0 - margin - 0.06
        if plot_w >= min_plot:
            break
    widths, col_left, cols, headers2 = lay["widths"], lay["col_left"], lay["cols"], lay["headers2"]
    if plot_w < min_plot:
        plot_w = min_plot
        new_w = plot_x0 + plot_w + margin + 0.06
        warnings.warn(f"forest: the table needs {new_w / CM:.1f} cm at {fontsize:g} pt, wider than "
                      f"width_cm={width_cm:g}; the figure was widened (fonts will print smaller than "
                      f"{fontsize:g} pt if it is scaled to {width_cm:g} cm)", stacklevel=2)
        W = new_w
    rh = fontsize * 1.6 / 72  # row height

    # ---------------- vertical layout (inches from the top) ----------------
    y = margin
    title_y = None
    if title:
        title = _wrap(title, W - 2 * margin, True, fontsize + 1)
        n_title = title.count("\n") + 1
        title_y = y + 0.6 * rh * n_title
        y += (0.3 + 1.2 * n_title) * rh
    head1_y, head2_y = y + 0.5 * rh, y + 1.5 * rh
    y += 2 * rh
    rule_y = y + 0.15 * rh
    y += 0.3 * rh
    table_top = y
    row_y = [table_top + (i + 0.5) * rh for i in range(len(rows))]
    table_bottom = table_top + len(rows) * rh
    axis_y = table_bottom + 0.2 * rh
    tick_h = (3.5 + 3.5 + fontsize * 1.2) / 72  # tick + pad + label
    # favours labels: each within half the plot width, wrapped if need be
    plot_w_half = plot_w / 2 * 0.96
    fav_text = [_wrap(t, plot_w_half, False, fontsize) for t in favours]
    fav_lines = max(t.count("\n") + 1 for t in fav_text)
    fav_y = axis_y + tick_h + 0.15 * rh  # top of the favours labels
    footer_y = [axis_y + (j + 0.5) * rh for j in range(len(footer))]
    H = max(fav_y + fav_lines * rh * 0.75 + 0.3 * rh, footer_y[-1] + 0.6 * rh) + margin

    fig = Figure(figsize=(W, H), facecolor="white")
    FigureCanvasAgg(fig)
    tab = fig.add_axes((0, 0, 1, 1))
    tab.set_xlim(0, W)
    tab.set_ylim(H, 0)
    tab.set_axis_off()
    tab.set_label("forest-table")

    def put(xx: float, yy: float, s: str, *, ha: str = "left", bold: bool = False, gid: str | None = None,
            size: float | None = None) -> None:
        t = tab.text(xx, yy, s, ha=ha, va="center", fontsize=size or fontsize,
                     fontweight="bold" if bold else "normal", parse_math=False, clip_on=False)
        if gid:
            t.set_gid(gid)

    plot_x1 = plot_x0 + plot_w
    if title_y is not None:
        put(margin, title_y, title, bold=True, size=fontsize + 1, gid="title")
    # headers
    for glabel, members in ((group_labels[0], [c for c, _ in _GROUP_COLS if c in num_cols]),
                            (group_labels[1], [c for c, _ in _GROUP2_COLS if c in num_cols])):
        if members:
            left = col_left[members[0]]
            right = col_left[members[-1]] + widths[members[-1]]
            put((left + right) / 2, head1_y, glabel, ha="center", bold=True)
    put(col_left["ci"] + widths["ci"], head1_y, xlabel, ha="right", bold=True)
    put((plot_x0 + plot_x1) / 2, head1_y, xlabel, ha="center", bold=True)
    for c in cols:
        if c == "label":
            put(col_left[c], head2_y, headers2[c], bold=True)
        else:
            put(col_left[c] + widths[c], head2_y, headers2[c], ha="right", bold=True)
    put((plot_x0 + plot_x1) / 2, head2_y, method_text, ha="center", bold=True)
    tab.add_line(Line2D([margin, W - margin], [rule_y, rule_y], color="black", linewidth=0.6))

    # table cells
    for r, yy in zip(rows, row_y):
        if r.kind == "blank":
            continue
        if r.kind == "text":
            put(col_left["label"], yy, r.cells["label"], gid=r.name)
            continue
        for c in cols:
            s = r.cells.get(c, "")
            if not s:
                continue
            if c == "label":
                put(col_left[c], yy, s, bold=r.bold, gid="group-label" if r.kind == "group" else None)
            else:
                put(col_left[c] + widths[c], yy, s, ha="right", bold=r.bold)
    for (gid, s), yy in zip(footer, footer_y):
        put(col_left["label"], yy, s, gid=gid)

    # ---------------- the plot ----------------
    ax = fig.add_axes((plot_x0 / W, (H - axis_y) / H, plot_w / W, (axis_y - table_top) / H))
    ax.set_label("forest")
    ax.set_ylim(axis_y, table_top)
    null = tvf(0.0)  # the line of no effect on the drawn scale (0; 1 under transf=exp)
    if xlim is None:
        pts = [r.est for r in rows if r.kind == "study"]
        pts += [v for r in rows if r.kind in ("subtotal", "total", "pi") for v in (r.lo, r.hi)]
        ends = [v for r in rows if r.kind == "study" for v in (r.lo, r.hi)]
        xlim = _auto_xlim(pts, ends, null)
    x0, x1 = float(xlim[0]), float(xlim[1])
    if not x0 < x1:
        raise ValueError(f"forest: xlim must be (low, high) with low < high, got {xlim}")
    value_axis(ax, x0, x1, fontsize)
    ax.patch.set_alpha(0)
    if x0 < null < x1:
        nl = ax.axvline(null, color="black", linewidth=0.6, zorder=1)
        nl.set_gid("null-line")
    _value_ticks(ax, x0, x1, null, disp)

    study = [(r, yy) for r, yy in zip(rows, row_y) if r.kind == "study" and np.isfinite(r.est)]
    segs, arrows = [], []
    for r, yy in study:
        a, b = max(r.lo, x0), min(r.hi, x1)
        if a < b:
            segs.append([(a, yy), (b, yy)])
        if r.lo < x0:
            arrows.append((x0, yy, "<"))
        if r.hi > x1:
            arrows.append((x1, yy, ">"))
    lc = LineCollection(segs, colors="black", linewidths=0.8, zorder=2)
    lc.set_gid("study-ci")
    ax.add_collection(lc)
    # squares: area proportional to weight; the heaviest is 0.75 row high
    w = np.array([r.weight if np.isfinite(r.weight) else 0.0 for r, _ in study])
    side_max = 0.75 * rh * 72
    sizes = side_max ** 2 * w / w.max() if w.size and w.max() > 0 else np.full(w.size, side_max ** 2 / 4)
    filled = np.array([r.filled for r, _ in study], dtype=bool)
    obs = ~filled
    sc = ax.scatter([r.est for r, _ in study if not r.filled], [yy for r, yy in study if not r.filled],
                    s=sizes[obs], marker="s", c="#2b5c8a", edgecolors="none", zorder=4, clip_on=True)
    sc.set_gid("study-markers")
    if filled.any():  # trim-and-fill studies: hollow squares, as metafor draws them hollow
        fc = ax.scatter([r.est for r, _ in study if r.filled], [yy for r, yy in study if r.filled],
                        s=sizes[filled], marker="s", facecolors="white", edgecolors="#2b5c8a",
                        linewidths=0.8, zorder=4, clip_on=True)
        fc.set_gid("filled-markers")

    half = 0.36 * rh
    for r, yy in zip(rows, row_y):
        if r.kind in ("subtotal", "total"):
            vx = [r.lo, r.est, r.hi, r.est]
            poly = Polygon(np.column_stack([vx, [yy, yy - half, yy, yy + half]]), closed=True,
                           facecolor="black", edgecolor="black", linewidth=0.5, zorder=5)
            poly.set_gid("pooled-diamond" if r.kind == "total" else "subgroup-diamond")
            poly.set_label("pooled-diamond" if r.kind == "total" else r.name)
            ax.add_patch(poly)
            if r.lo < x0:
                arrows.append((x0, yy, "<"))
            if r.hi > x1:
                arrows.append((x1, yy, ">"))
        elif r.kind == "pi":
            ln = Line2D([r.lo, r.hi], [yy, yy], color="black", linewidth=1.2, zorder=5)
            ln.set_gid("prediction-interval")
            ax.add_line(ln)
            caps = [v for v in (r.lo, r.hi) if x0 <= v <= x1]
            if caps:
                ax.add_line(Line2D(caps, [yy] * len(caps), linestyle="none", marker="|", color="black",
                                   markersize=fontsize * 0.8, markeredgewidth=1.2, zorder=5,
                                   gid="prediction-interval-caps"))
            if r.lo < x0:
                arrows.append((x0, yy, "<"))
            if r.hi > x1:
                arrows.append((x1, yy, ">"))

    # arrows for every clipped interval: the triangle's base on the axis limit, its tip outside
    arrow_size = fontsize * 0.6
    for xa, yy, m in arrows:
        shift = (-1 if m == "<" else 1) * arrow_size / 2
        tr = offset_copy(ax.transData, fig=fig, x=shift, y=0, units="points")
        ln = Line2D([xa], [yy], marker=m, markersize=arrow_size, color="black", linestyle="none",
                    clip_on=False, zorder=6, transform=tr)
        ln.set_gid("ci-arrow")
        ax.add_line(ln)

    # favours labels, either side of the line of no effect, below the tick labels
    for s, ha, gid in ((fav_text[0], "right", "favours-left"), (fav_text[1], "left", "favours-right")):
        off = (-1 if ha == "right" else 1) * 0.02 * (x1 - x0)
        t = ax.text(null + off, fav_y, s, ha=ha, va="top", multialignment=ha, fontsize=fontsize,
                    parse_math=False, clip_on=False, linespacing=1.15)
        t.set_gid(gid)
    return plain_figure(fig)  # all text plain: no mathtext/TeX, no invisible controls
