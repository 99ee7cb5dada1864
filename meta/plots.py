"""Forest and funnel plots fit for a journal page.

``forest()`` draws a RevMan-style forest plot (Deeks & Higgins 2010,
"Statistical algorithms in Review Manager 5"; Cochrane Handbook ch. 10): one
row per study with its numbers, a square whose *area* is proportional to the
study's weight, whiskers for its confidence interval (arrows where the axis
clips them), a diamond for each pooled estimate, a bar for the prediction
interval (Higgins, Thompson & Spiegelhalter 2009; Riley, Higgins & Deeks 2011),
and the heterogeneity / overall-effect / subgroup-difference lines in RevMan's
wording. ``funnel()`` draws a funnel plot (Sterne & Egger 2001) with optional
contour enhancement (Peters et al. 2008), Egger's regression line (Egger et al.
1997, as metafor ``regtest(model="lm")``) and trim-and-fill's filled studies
(Duval & Tweedie 2000) drawn hollow. ``save()`` writes PNG/SVG/PDF.

Nothing here pools: the plots take the results of :mod:`meta.pool` and
:mod:`meta.bias` as input. Everything is drawn on :class:`matplotlib.figure.Figure`
objects created without :mod:`matplotlib.pyplot`, so no global figure state is
touched (no figure is left open in pyplot's registry).

Why not the ``forestplot`` package: it draws estimate-and-CI rows well, but has
no pooled diamond, marker sizes that cannot vary by row (one ``markersize`` for
all), no prediction interval, and it draws through ``pyplot`` global state
(``plt.gcf()``, ``plt.plot``) and measures text with the current figure. Adding
diamonds, weights and arrows on top of its axes would mean fighting its layout,
so the forest plot is drawn directly with matplotlib.

References
----------
Deeks JJ, Higgins JPT (2010). Statistical algorithms in Review Manager 5.
Egger M, Davey Smith G, Schneider M, Minder C (1997). BMJ 315:629-634.
Higgins JPT, Thompson SG, Spiegelhalter DJ (2009). J R Stat Soc A 172:137-159.
Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L (2008). Contour-enhanced
meta-analysis funnel plots help distinguish publication bias from other causes
of asymmetry. J Clin Epidemiol 61:991-996.
Sterne JAC, Egger M (2001). Funnel plots for detecting bias in meta-analysis.
J Clin Epidemiol 54:1046-1055.
Duval S, Tweedie R (2000). Biometrics 56:455-463.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon, Rectangle
from matplotlib.transforms import offset_copy
from meta import _figure_cache, _lazy
from meta.plots_style import LAYOUT_TABLES, fixed_style, light_pdf_fonts  # drawn and saved under one style, not the user's matplotlibrc

__all__ = ["forest", "funnel", "save", "draw_and_save", "format_p", "heterogeneity_line", "overall_effect_line",
           "subgroup_differences_line"]

MINUS = "\u2212"  # typographic minus, as matplotlib's tick labels
CM = 1 / 2.54


# --------------------------------------------------------------------------
# RevMan wording (Deeks & Higgins 2010)
# --------------------------------------------------------------------------
from meta._format import revman_p as format_p  # noqa: E402 (RevMan 5 wording of p)


def heterogeneity_line(result: Any) -> str:
    """``Heterogeneity: Tau² = 0.12; Chi² = 8.40, df = 3 (P = 0.04); I² = 64%``.

    RevMan 5 wording (Deeks & Higgins 2010); Tau² is left out for a
    fixed-effect (``method="FE"``) result, and with one study the line reads
    ``Heterogeneity: Not applicable``. ``Chi²`` is Cochran's Q (``result.q``)
    on ``result.q_df`` degrees of freedom; ``I²`` is ``result.i2`` (percent).
    """
    if result.k < 2 or not np.isfinite(result.q):
        return "Heterogeneity: Not applicable"
    tau = "" if str(result.method).upper() == "FE" else f"Tau\u00b2 = {result.tau2:.2f}; "
    return (f"Heterogeneity: {tau}Chi\u00b2 = {result.q:.2f}, df = {int(result.q_df)} "
            f"({format_p(result.q_p)}); I\u00b2 = {result.i2:.0f}%")


def overall_effect_line(result: Any) -> str:
    """``Test for overall effect: Z = 2.10 (P = 0.04)`` (RevMan: |Z|), or with
    the Hartung-Knapp-Sidik-Jonkman test ``t = 2.10, df = 3 (P = 0.04)`` on
    ``k - 1`` degrees of freedom."""
    if str(result.test).lower() == "hksj":
        return (f"Test for overall effect: t = {abs(result.stat):.2f}, df = {int(result.k) - 1} "
                f"({format_p(result.p)})")
    return f"Test for overall effect: Z = {abs(result.stat):.2f} ({format_p(result.p)})"


def subgroup_differences_line(result: Any) -> str:
    """``Test for subgroup differences: Chi² = 2.73, df = 1 (P = 0.10), I² = 63.4%``.

    ``Chi²`` is ``result.q_between`` on ``result.q_between_df`` df. I² for
    subgroup differences is ``max(0, (Q - df) / Q)`` in percent, one decimal,
    as RevMan 5 prints it (Deeks & Higgins 2010; Richardson, Garner & Donegan 2019).
    """
    q, df = float(result.q_between), int(result.q_between_df)
    i2 = max(0.0, (q - df) / q) * 100 if q > 0 else 0.0
    return (f"Test for subgroup differences: Chi\u00b2 = {q:.2f}, df = {df} "
            f"({format_p(result.q_between_p)}), I\u00b2 = {i2:.1f}%")


def _num(x: float, digits: int) -> str:
    s = f"{x:.{digits}f}"
    if s.startswith("-"):
        s = MINUS + s[1:] if float(s) != 0 else s[1:]
    return s


def _ci_text(est: float, lo: float, hi: float, digits: int) -> str:
    return f"{_num(est, digits)} [{_num(lo, digits)}, {_num(hi, digits)}]"


def _method_text(result: Any, with_level: bool = True) -> str:
    method = str(result.method).upper()
    level = f"{100 * float(result.level):g}% CI"
    if method == "FE":
        kind = "IV, Fixed"
    else:
        extra = [] if method == "DL" else [method]
        if str(result.test).lower() == "hksj":
            extra.append("HKSJ")
        kind = "IV, Random" + (f" ({', '.join(extra)})" if extra else "")
    return f"{kind}, {level}" if with_level else kind


def _column_decimals(values: np.ndarray, max_decimals: int = 2) -> int:
    vals = values[np.isfinite(values)]
    for d in range(max_decimals + 1):
        if np.all(np.abs(np.round(vals, d) - vals) < 1e-9):
            return d
    return max_decimals


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


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.isclose(a, b, rtol=1e-9, atol=1e-12)


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
    for i in rows:
        hit = np.flatnonzero(free & _same(ryi, yi[i]) & _same(rvi, vi[i]))
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


def value_axis(ax, x0: float, x1: float, fontsize: float) -> None:
    """The effect-size axis of every plot of this package (forest, robustness, cumulative): limits
    ``x0..x1``, only the bottom spine (0.6 pt), no y ticks, x ticks at ``fontsize``."""
    ax.set_xlim(x0, x1)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_linewidth(0.6)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=fontsize, width=0.6, length=3.5, pad=3.5)


def _nice_limit(x: float) -> float:
    """Smallest of 1, 2, 3, 4, 6, 8, 10 (x 10^e) that is >= x."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    e = math.floor(math.log10(x))
    for m in (1, 2, 3, 4, 6, 8, 10):
        if m * 10 ** e >= x * (1 - 1e-9):
            return float(m * 10 ** e)
    return float(10 ** (e + 1))  # pragma: no cover


def _auto_xlim(points: list[float], ci_ends: list[float], null: float) -> tuple[float, float]:
    """Symmetric about the line of no effect (RevMan). Must show every point
    estimate and pooled interval; a study CI end may be clipped (and drawn as an
    arrow) when showing it would widen the scale by more than half."""
    pts = np.abs(np.asarray([p for p in points if np.isfinite(p)], dtype=float) - null)
    ends = np.abs(np.asarray([p for p in ci_ends if np.isfinite(p)], dtype=float) - null)
    base = float(pts.max()) if pts.size else 0.0
    full = max(base, float(ends.max()) if ends.size else 0.0)
    if base <= 0:
        base = full if full > 0 else 1.0
    lim = _nice_limit(min(full, 1.5 * base) * 1.02)
    return null - lim, null + lim


@functools.lru_cache(maxsize=1)
def _measuring_renderer():
    measure = Figure(dpi=600)  # text extents at print resolution (Agg hints to whole pixels)
    FigureCanvasAgg(measure)
    return measure.canvas.get_renderer(), measure.dpi


def _text_width(s: str, bold: bool, fontsize: float) -> float:
    """Width in inches of one line of ``s`` in the current default font."""
    rc = matplotlib.rcParams
    font = (tuple(rc["font.family"]), tuple(rc["font.sans-serif"]), tuple(rc["font.serif"]), rc["font.stretch"])
    return _text_width_cached(s, bold, fontsize, font)


@functools.lru_cache(maxsize=4096)
def _text_width_cached(s: str, bold: bool, fontsize: float, font: tuple) -> float:
    renderer, dpi = _measuring_renderer()
    prop = FontProperties(size=fontsize, weight="bold" if bold else "normal")
    w, _, _ = renderer.get_text_width_height_descent(s, prop, ismath=False)
    return w / dpi


def _wrap(text: str, width_in: float, bold: bool, fontsize: float) -> str:
    """Break ``text`` at spaces so that no line is wider than ``width_in`` inches."""
    out = []
    for para in str(text).split("\n"):
        n = len(para)
        lines = [para]
        while n > 4 and max(_text_width(x, bold, fontsize) for x in lines) > width_in:
            n -= 1
            lines = textwrap.wrap(para, n) or [""]
        out.extend(lines)
    return "\n".join(out)


def _table_layout(rows, footer, num_cols, group_labels, xlabel, method_text, fontsize):
    """Column widths and left edges (inches) of the forest table at ``fontsize``."""

    def tw(s: str, bold: bool = False) -> float:
        return max([_text_width(line, bold, fontsize) for line in str(s).split("\n") if line] + [0.0])

    margin, gap = 0.06, 0.9 * fontsize / 72
    headers2 = {"label": "Study or Subgroup", "weight": "Weight", "ci": method_text}
    for c, h in _GROUP_COLS + _GROUP2_COLS:
        headers2[c] = h
    cols = ["label"] + num_cols + ["weight", "ci"]
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


@fixed_style
def forest(
    result: Any,
    studies: pd.DataFrame | None = None,
    *,
    label: str = "label",
    subgroup: str | None = None,
    favours: Sequence[str] = ("Favours group 2", "Favours group 1"),
    xlabel: str = "SMD (95% CI)",
    title: str | None = None,
    group_labels: Sequence[str] = ("Group 1", "Group 2"),
    xlim: tuple[float, float] | None = None,
    show_pi: bool = True,
    digits: int = 2,
    fontsize: float = 8.0,
    width_cm: float = 17.0,
) -> Figure:
    """RevMan-style forest plot of a pooled result.

    Parameters
    ----------
    result : a :class:`meta.pool.PoolResult` (k = 1 included), a
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
    xlabel : header of the effect columns, e.g. "SMD (95% CI)".
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
            cells["ci"] = _ci_text(yi[i], lo[i], hi[i], digits)
            return _Row("study", cells, est=yi[i], lo=lo[i], hi=hi[i], weight=weights[i], filled=bool(is_filled[i]))
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
        cells["ci"] = _ci_text(res.estimate, res.ci_low, res.ci_high, digits)
        return _Row(kind, cells, bold=True, est=res.estimate, lo=res.ci_low, hi=res.ci_high, name=name)

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
    pi_ok = (show_pi and int(overall.k) >= 3 and np.isfinite(overall.pi_low) and np.isfinite(overall.pi_high))
    if pi_ok:
        rows.append(_Row("pi", {"label": "Prediction interval",
                                "ci": f"[{_num(overall.pi_low, digits)}, {_num(overall.pi_high, digits)}]"},
                         lo=overall.pi_low, hi=overall.pi_high))
    footer = [("heterogeneity", heterogeneity_line(overall)), ("overall-effect", overall_effect_line(overall))]
    if tf is not None:
        footer.append(("trimfill-note", f"Trim and fill ({tf.estimator}): {k0} "
                                        f"{'study' if k0 == 1 else 'studies'} filled in (hollow), {tf.side} side"))
    if is_sub:
        footer.append(("subgroup-differences", subgroup_differences_line(result)))

    # ---------------- measure text, fit the width (inches) ----------------
    method_text = _method_text(overall)
    method_kind = _method_text(overall, with_level=False)
    W = width_cm * CM
    margin, min_plot = 0.06, 1.5
    # shrink the font (not below 7 pt) before widening the figure
    candidates = [fontsize] + [f for f in (7.5, 7.0) if f < fontsize]
    for fontsize in candidates:
        lay = _table_layout(rows, footer, num_cols, group_labels, xlabel, method_kind, fontsize)
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
    null = 0.0
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
    ticks = np.linspace(x0, x1, 5) if (x1 + x0) == 2 * null else ax.get_xticks()
    ax.set_xticks([t for t in ticks if x0 - 1e-12 <= t <= x1 + 1e-12])

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
    return fig


# --------------------------------------------------------------------------
# funnel plot
# --------------------------------------------------------------------------
_CONTOUR_LEVELS = (0.10, 0.05, 0.01)
_CONTOUR_SHADES = ("white", "#e4e4e4", "#c4c4c4", "#a0a0a0")  # p > .10, .05-.10, .01-.05, < .01


@fixed_style
def funnel(
    yi: Any = None,
    vi: Any = None,
    *,
    result: Any = None,
    contours: bool = False,
    egger: Any = False,
    trimfill: Any = None,
    xlabel: str = "SMD",
    ylabel: str = "Standard error",
    title: str | None = None,
    level: float = 0.95,
    xlim: tuple[float, float] | None = None,
    legend: bool = True,
    fontsize: float = 8.0,
    width_cm: float = 8.5,
    height_cm: float = 10.0,
) -> Figure:
    """Funnel plot: effect sizes against their standard errors, 0 at the top.

    Called as ``funnel(res)`` with a :class:`meta.pool.PoolResult` (k = 1
    included): its studies, centred on its estimate; or ``funnel(tf)`` with a
    :class:`meta.bias.TrimFillResult`: observed studies filled black, the k0
    filled-in studies hollow, centred on the adjusted estimate
    ``tf.result.estimate`` (metafor ``funnel(trimfill(res))``). Nothing is
    refitted: the plot draws what the result holds.

    Parameters
    ----------
    yi, vi : a result (see above) and no ``vi``; or effect sizes and sampling
        variances (non-finite rows are dropped with a warning naming their
        positions), which must be the result's studies (in any order) when
        ``result`` or ``trimfill`` is given too.
    result : PoolResult whose ``estimate`` centres the pseudo confidence limits
        ``estimate -/+ z * se`` (Sterne & Egger 2001). With ``trimfill`` it
        must be ``trimfill.result`` (the default then). With arrays alone the
        centre is ``meta.pool.pool(yi, vi)`` (DL): the one case where funnel
        fits, because there is no result to draw.
    contours : shade the regions where a study would be significant at
        p < 0.10, 0.05, 0.01 (two-sided, around 0; Peters et al. 2008, metafor
        ``funnel(level=c(90, 95, 99), refline=0, shade=...)``).
    egger : ``True`` to run :func:`meta.bias.egger`, or an ``EggerResult``;
        draws its fitted line ``yi = intercept + slope * sei`` (metafor
        ``regtest(model="lm")`` coefficients).
    trimfill : a ``TrimFillResult``; its ``filled_yi``/``filled_vi`` are drawn
        as hollow circles.
    level : level of the pseudo confidence limits.

    Returns
    -------
    Figure (not registered with pyplot); gids: ``observed-studies``,
    ``filled-studies``, ``pseudo-ci``, ``centre-line``, ``egger-line``,
    ``contour-p>0.10``, ``contour-p0.10``, ``contour-p0.05``, ``contour-p0.01``.
    """
    if hasattr(yi, "filled_yi") and hasattr(yi, "result"):  # funnel(trimfill(res))
        if trimfill is not None and trimfill is not yi:
            raise ValueError("funnel: got a trim-and-fill result twice (as yi and trimfill=)")
        trimfill, yi = yi, None
    elif hasattr(yi, "estimate") and hasattr(yi, "vi"):  # funnel(res)
        if result is not None and result is not yi:
            raise ValueError("funnel: got a result twice (as yi and result=)")
        result, yi = yi, None
    if yi is None and vi is not None:
        raise ValueError("funnel: got vi without yi")
    if trimfill is not None:
        if result is not None and result is not trimfill.result and result != trimfill.result:
            raise ValueError(
                "funnel: a funnel that draws filled-in studies is centred on the adjusted estimate "
                "(trimfill.result, as metafor funnel(trimfill(res))); pass funnel(tf) without result=")
        result = trimfill.result
        ry, rv = np.asarray(trimfill.yi, dtype=float), np.asarray(trimfill.vi, dtype=float)
    elif result is not None:
        ry, rv = getattr(result, "yi", None), getattr(result, "vi", None)
        if ry is not None and rv is not None:
            ry, rv = np.asarray(ry, dtype=float), np.asarray(rv, dtype=float)
    else:
        ry = rv = None
    if yi is None:
        if ry is None or rv is None:
            raise ValueError("funnel: pass a result from meta.pool.pool() (or trimfill()), or yi and vi")
        y, v = ry, rv
    else:
        y = np.asarray(yi, dtype=float).ravel()
        v = np.asarray(vi, dtype=float).ravel()
        if y.size != v.size:
            raise ValueError(f"funnel: yi and vi must have the same length, got {y.size} and {v.size}")
        ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
        if not ok.all():
            warnings.warn(f"funnel: dropped rows with non-finite yi/vi or vi <= 0 at positions "
                          f"{np.flatnonzero(~ok).tolist()}", stacklevel=2)
            y, v = y[ok], v[ok]
        if ry is not None and rv is not None and not _same_studies(y, v, ry, rv):
            raise ValueError(
                f"funnel: yi, vi ({y.size} studies) are not the studies the result was fitted on "
                f"({ry.size}); pass the result alone (funnel(res)) to draw what it holds")
    if y.size == 0:
        raise ValueError("funnel: no study has finite yi and vi > 0")
    se = np.sqrt(v)
    fy = fse = np.array([])
    if trimfill is not None:
        fy = np.asarray(trimfill.filled_yi, dtype=float).ravel()
        fse = np.sqrt(np.asarray(trimfill.filled_vi, dtype=float).ravel())
    if result is None:
        from meta.pool import pool  # lazy: only funnel(yi, vi) without a result needs a fit

        result = pool(y, v)
    centre = float(result.estimate)
    eg = None
    if egger is True:
        from meta.bias import egger as _egger

        eg = _egger(y, v)
    elif egger not in (False, None):
        eg = egger
    z = float(_lazy.special().ndtri(0.5 + level / 2))  # = scipy.stats.norm.ppf

    se_all = np.concatenate([se, fse])
    se_lim = _nice_step_ceil(float(se_all.max()) * 1.05)
    if xlim is None:
        xs = [y.min(), y.max(), centre - z * se_lim, centre + z * se_lim]
        if fy.size:
            xs += [fy.min(), fy.max()]
        if contours:
            zc = float(_lazy.special().ndtri(1 - _CONTOUR_LEVELS[-1] / 2))
            xs += [-zc * se_lim, zc * se_lim]
        lo_, hi_ = min(xs), max(xs)
        pad = 0.04 * (hi_ - lo_)
        xlim = (lo_ - pad, hi_ + pad)

    W, H = width_cm * CM, height_cm * CM
    fig = Figure(figsize=(W, H), facecolor="white")
    FigureCanvasAgg(fig)
    rh = fontsize * 1.6 / 72
    handles: list[Any] = []
    n_legend = 2 + (fy.size > 0) + (eg is not None) + (4 if contours else 0)
    legend_rows = math.ceil(n_legend / 2) if legend else 0
    if title:
        title = _wrap(title, W - 0.2, True, fontsize + 1)
    top = 0.12 + ((0.3 + 1.2 * (title.count("\n") + 1)) * rh if title else 0)
    bottom = 0.5 + (legend_rows * rh + 0.12 if legend else 0)
    left, right = 0.55, 0.12
    ax = fig.add_axes((left / W, bottom / H, (W - left - right) / W, (H - top - bottom) / H))
    ax.set_label("funnel")
    ax.set_xlim(*xlim)
    ax.set_ylim(se_lim, 0)  # inverted: precise studies at the top
    ax.tick_params(labelsize=fontsize, width=0.6, length=3.5)
    for s in ax.spines.values():
        s.set_linewidth(0.6)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    if title:
        fig.text(0.1 / W, 1 - 0.1 / H, title, ha="left", va="top", fontsize=fontsize + 1,
                 fontweight="bold", parse_math=False, gid="title")

    if contours:
        big = 10 * max(abs(xlim[0]), abs(xlim[1])) + 10
        bg = Rectangle((-big, 0), 2 * big, se_lim, facecolor=_CONTOUR_SHADES[3], edgecolor="none", zorder=0)
        bg.set_gid("contour-p0.01")
        bg.set_label("p < 0.01")
        ax.add_patch(bg)
        labels = ("0.01 < p < 0.05", "0.05 < p < 0.10", "p > 0.10")
        gids = ("contour-p0.05", "contour-p0.10", "contour-p>0.10")
        for i, p in enumerate(reversed(_CONTOUR_LEVELS)):  # 0.01, 0.05, 0.10: widest first
            zc = float(_lazy.special().ndtri(1 - p / 2))
            tri = Polygon([(0, 0), (-zc * se_lim, se_lim), (zc * se_lim, se_lim)], closed=True,
                          facecolor=_CONTOUR_SHADES[2 - i], edgecolor="none", zorder=0.1 + i * 0.1)
            tri.set_gid(gids[i])
            tri.set_label(labels[i])
            ax.add_patch(tri)
        handles += [Patch(facecolor=_CONTOUR_SHADES[0], edgecolor="0.5", linewidth=0.5, label="p > 0.10"),
                    Patch(facecolor=_CONTOUR_SHADES[1], label="0.05 < p < 0.10"),
                    Patch(facecolor=_CONTOUR_SHADES[2], label="0.01 < p < 0.05"),
                    Patch(facecolor=_CONTOUR_SHADES[3], label="p < 0.01")]

    ci = Line2D([centre - z * se_lim, centre, centre + z * se_lim], [se_lim, 0, se_lim],
                color="black", linestyle=(0, (4, 2)), linewidth=0.8, zorder=2,
                label=f"Pseudo {100 * level:g}% limits")
    ci.set_gid("pseudo-ci")
    ax.add_line(ci)
    cl = Line2D([centre, centre], [0, se_lim], color="black", linewidth=0.8, zorder=2)
    cl.set_gid("centre-line")
    ax.add_line(cl)
    if eg is not None:
        ey = Line2D([eg.intercept, eg.intercept + eg.slope * se_lim], [0, se_lim], color="#b2182b",
                    linewidth=1.0, zorder=3, label="Egger regression")
        ey.set_gid("egger-line")
        ax.add_line(ey)
    obs = ax.scatter(y, se, s=18, marker="o", c="black", edgecolors="black", linewidths=0.6, zorder=4,
                     label="Studies")
    obs.set_gid("observed-studies")
    handles = [obs, ci] + handles
    if eg is not None:
        handles.insert(2, ey)
    if fy.size:
        fil = ax.scatter(fy, fse, s=18, marker="o", facecolors="white", edgecolors="black", linewidths=0.8,
                         zorder=4, label="Filled (trim and fill)")
        fil.set_gid("filled-studies")
        handles.insert(1, fil)
    if legend:
        leg = fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=fontsize, frameon=False,
                         bbox_to_anchor=(0.5, 0.02 / H * 0 + 0.01), handlelength=1.8, columnspacing=1.2)
        leg.set_gid("legend")
    return fig


def _same_studies(y: np.ndarray, v: np.ndarray, ry: np.ndarray, rv: np.ndarray) -> bool:
    """Whether the (yi, vi) pairs are the same studies in some order."""
    if y.size != ry.size:
        return False
    a, b = np.lexsort((v, y)), np.lexsort((rv, ry))
    return bool(np.all(_same(y[a], ry[b]) & _same(v[a], rv[b])))


def _nice_step_ceil(x: float) -> float:
    """Round ``x`` up to a multiple of a 1-2-5 step about a tenth of ``x``."""
    if x <= 0 or not np.isfinite(x):
        return 1.0
    e = math.floor(math.log10(x))
    for step in (0.1, 0.2, 0.25, 0.5, 1.0):
        s = step * 10 ** e
        if x / s <= 10:
            return math.ceil(x / s - 1e-9) * s
    return math.ceil(x / 10 ** (e + 1)) * 10 ** (e + 1)  # pragma: no cover


# --------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------
# PNG: zlib level 3 instead of Pillow's 6: on our 300-dpi forest plots ~12 % less time per file and
# no larger (213 vs 221 kB measured; benchmarks/README.md), the same pixels
_PIL_KWARGS = {"png": {"pil_kwargs": {"compress_level": 3}}}


@fixed_style
def save(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg", "pdf"), dpi: int = 300) -> list[Path]:
    """Write ``fig`` as ``<stem>.<format>`` for each format; return the paths.

    The figure is written at its own size (no ``bbox_inches="tight"``), so a
    forest plot made at ``width_cm=17`` prints at 17 cm. Dates are left out of
    the SVG/PDF metadata, so reruns give identical files; PDF fonts are
    embedded as TrueType (``pdf.fonttype=42``) so text stays editable, as
    subsets without OpenType layout tables, made once and cached
    (:func:`meta.plots_style.light_pdf_fonts`: the same glyphs, a third of
    the work); PNG is compressed at zlib level 3 (same pixels, no larger).
    The SVG is drawn first, and PNG and PDF files of a figure saved before
    (same SVG bytes, dpi and versions) are taken from a cache
    (:mod:`meta._figure_cache`; ``META_FIGURE_CACHE=0`` turns it off).
    """
    fmts, stem = _save_target(stem, formats, dpi, "save")
    # PNG and PDF of a figure drawn before come from the cache, keyed by its SVG (meta._figure_cache)
    cached = _figure_cache.enabled() and any(f in _figure_cache.FORMATS for f in fmts)
    svg = _render(fig, "svg", dpi, stem.name) if cached else None
    key = _figure_cache.key(fig, svg, dpi, (_PIL_KWARGS, LAYOUT_TABLES)) if cached else None
    out = []
    for fmt in fmts:
        path = stem.parent / f"{stem.name}.{fmt}"
        if fmt == "svg" and svg is not None:
            data = svg
        elif key is not None and fmt in _figure_cache.FORMATS:
            data = _figure_cache.get(key, fmt)
            if data is None:
                data = _render(fig, fmt, dpi, stem.name)
                _figure_cache.put(key, fmt, data)
        else:
            data = _render(fig, fmt, dpi, stem.name)
        path.write_bytes(data)
        out.append(path)
    return out


def _save_target(stem, formats, dpi, caller: str) -> tuple[list[str], Path]:
    """The checked formats (lower case) and stem of a save; the stem's folder is made."""
    if isinstance(formats, str):
        formats = (formats,)
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    bad = [f for f in formats if not isinstance(f, str) or f.lower() not in supported]
    if bad:
        raise ValueError(f"{caller}: unknown format(s) {bad}; choose from {sorted(supported)}")
    if dpi < 72:
        raise ValueError(f"{caller}: dpi must be >= 72 for print, got {dpi}")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    return [f.lower() for f in formats], stem


def draw_and_save(builder: Callable[..., Figure], stem: str | Path, *, args: Sequence = (),
                  kwargs: dict | None = None, formats: Sequence[str] = ("png", "svg", "pdf"),
                  dpi: int = 300) -> list[Path]:
    """``save(builder(*args, **kwargs), stem, formats, dpi)``, or the same files from the cache
    when the same call was saved before: same function, same argument values, same
    ``meta`` source, style, fonts and library versions (:func:`meta._figure_cache.drawing_key`).

    A warm rerun of a pipeline that draws what it drew last time then skips drawing
    altogether; any changed value draws afresh. A call whose arguments cannot be keyed
    by value, or that warns, is drawn every time; ``META_FIGURE_CACHE=0`` draws every time.
    """
    kwargs = dict(kwargs or {})
    fmts, stem = _save_target(stem, formats, dpi, "draw_and_save")
    key = (_figure_cache.drawing_key(builder, args, kwargs, stem.name, fmts, dpi)
           if _figure_cache.enabled() else None)
    if key is not None:
        files = [_figure_cache.get(key, fmt) for fmt in fmts]
        if all(f is not None for f in files):
            out = []
            for fmt, data in zip(fmts, files):
                path = stem.parent / f"{stem.name}.{fmt}"
                path.write_bytes(data)
                out.append(path)
            return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = save(builder(*args, **kwargs), stem, formats=fmts, dpi=dpi)
    for w in caught:  # warned again under the caller's filters; a call that warns is not cached
        warnings.warn(w.message, w.category, stacklevel=2)
    if key is not None and not caught:
        for fmt, path in zip(fmts, out):
            _figure_cache.put(key, fmt, path.read_bytes())
    return out


def _render(fig: Figure, fmt: str, dpi: int, salt: str) -> bytes:
    """``fig`` saved as ``fmt`` (bytes), with the settings :func:`save` documents."""
    meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt)
    # TrueType (Type 42) fonts in PDF/PS stay editable, as journals' artwork checks prefer;
    # a fixed SVG hash salt keeps element ids stable between runs
    # PDF/PS: font subsets without the OpenType layout tables no viewer reads (meta.plots_style.light_pdf_fonts)
    fonts = light_pdf_fonts() if fmt in ("pdf", "ps", "eps") else contextlib.nullcontext()
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "pdf.fonttype": 42, "ps.fonttype": 42}), fonts:
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta, facecolor="white", **_PIL_KWARGS.get(fmt, {}))
    return buf.getvalue()
