"""Forest-type plots for more rows than a page can label: the caterpillar plot and the running estimate.

A RevMan-style forest plot gives every study a labelled row with its numbers. Above
:data:`MAX_ROWS` rows a page can no longer hold them legibly (at 8 pt a row is 0.18 in, so 60 rows
fill an A4 page), and the forest-type plots of :mod:`meta.plots` switch, at their ``max_rows=``
argument, to the figures here:

* :func:`caterpillar_figure` -- the caterpillar plot (e.g. Higgins JPT et al. 2009, J R Stat Soc A
  172:137-159, figure 1): studies sorted by estimate, each CI one segment of a single
  ``LineCollection``, the estimates one scatter, no per-row labels or numbers; the pooled estimate
  as a vertical line with its CI as a band and the prediction interval as dashed lines;
* :func:`running_figure` -- a cumulative meta-analysis as the running estimate, a line with its CI
  band, against the number of studies added (Lau J et al. 1992, N Engl J Med 327:248-254, draw the
  same steps as rows).

This module imports matplotlib (and :mod:`meta.plots.layout`) only when it draws, so reading
:data:`MAX_ROWS` costs nothing. Both figures say, under the plot, that the rows are drawn without labels and where every
row's numbers are. Nothing is refitted: they draw the numbers they are given. Drawn on a bare
:class:`matplotlib.figure.Figure` (no pyplot), with the text sizes and axis style of the other plots.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


__all__ = ["MAX_ROWS", "check_max_rows", "caterpillar_figure", "running_figure"]

#: the most rows a forest-type plot (:func:`meta.plots.forest`, :func:`meta.plots.cumulative_forest`,
#: :func:`meta.plots.forest_mv`) draws as a labelled table; above it they draw the figures of this
#: module. 60 rows at the default 8 pt (0.18 in a row) with the header and footer fill one A4 page.
MAX_ROWS = 60

_POINT = "#2b5c8a"  # the forest plot's study squares
_SEGMENT = "#7f7f7f"
_BAND = "#d9d9d9"
_POOLED_BAND = "#e08a3c"  # the pooled CI, drawn translucent over the study segments


def check_max_rows(max_rows: Any, who: str) -> int | None:
    """``max_rows`` as an int >= 1, or None (never switch); else ``ValueError`` naming ``who``."""
    if max_rows is None:
        return None
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise ValueError(f"{who}: max_rows must be a whole number >= 1 or None (always a labelled table), "
                         f"got {max_rows!r}")
    return int(max_rows)


def _text_block(fig, W: float, H: float, x: float, y: float, text: str, fontsize: float, *, bold: bool = False,
                gid: str | None = None, ha: str = "left") -> None:
    """``text`` with its top at ``y`` inches from the top of the figure, ``x`` inches from its left edge."""
    t = fig.text(x / W, 1 - y / H, text, ha=ha, va="top", fontsize=fontsize, fontweight="bold" if bold else "normal",
                 parse_math=False, linespacing=1.3)
    if gid:
        t.set_gid(gid)


def _lines(text: str) -> int:
    return text.count("\n") + 1 if text else 0


def _layout(W: float, fontsize: float, title: str | None, below: Sequence[tuple[str, str]], plot_h: float):
    """Wrapped title and text lines under the plot, and the figure height (inches)."""
    from meta.plots.layout import _wrap

    margin = 0.08
    lh = fontsize * 1.3 / 72  # one line of text
    room = W - 2 * margin - 0.25  # a little short of the edge: glyphs hinted at a low dpi run wider
    title_w = _wrap(title, room, True, fontsize + 1) if title else ""
    wrapped = [(gid, _wrap(s, room, False, fontsize)) for gid, s in below if s]
    top = margin + (_lines(title_w) * (fontsize + 1) * 1.3 / 72 + 0.5 * lh if title_w else 0.0)
    tick_h = (3.5 + 3.5 + fontsize * 1.2) / 72
    axis_text = tick_h + 2.4 * lh  # tick labels, the axis label, the favours labels
    below_h = sum(_lines(s) * lh + 0.35 * lh for _, s in wrapped)
    H = top + plot_h + axis_text + 0.4 * lh + below_h + margin
    return margin, lh, title_w, wrapped, top, tick_h, H


def caterpillar_figure(
    est: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    pooled: tuple[float, float, float] | None = None,
    pi: tuple[float, float] | None = None,
    null: float = 0.0,
    xlim: tuple[float, float] | None = None,
    xlabel: str = "Estimate",
    pooled_text: str = "pooled estimate",
    level_text: str = "95%",
    unit: str = "studies",
    title: str | None = None,
    favours: Sequence[str] = ("Favours group 2", "Favours group 1"),
    notes: Sequence[tuple[str, str]] = (),
    rows_note: str = "",
    max_rows: int | None = None,
    ticks: Callable | None = None,
    fontsize: float = 8.0,
    width_cm: float = 17.0,
):
    """The caterpillar plot of ``est`` with intervals ``[lo, hi]`` (drawn scale; one value per row).

    Rows with a non-finite estimate are left out (the note under the plot counts them). ``pooled``:
    ``(estimate, ci_low, ci_high)`` drawn as a vertical line and a band; ``pi``: the prediction
    interval as two dashed lines; ``null``: the line of no effect; ``ticks(ax, x0, x1)`` labels the
    axis (default: matplotlib's ticks). ``notes``: ``(gid, text)`` lines under the plot (e.g. the
    heterogeneity line); ``rows_note``: where every row's numbers are, said in the caption.
    Gids: ``study-ci`` (one LineCollection), ``study-markers`` (one scatter), ``pooled-line``,
    ``pooled-ci-band``, ``prediction-interval``, ``null-line``, ``title``, ``caterpillar-note``,
    ``favours-left``/``favours-right``; the plot axes has label ``caterpillar``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from meta.plots.layout import CM, _auto_xlim, plain_figure, value_axis

    est, lo, hi = (np.asarray(a, dtype=float) for a in (est, lo, hi))
    ok = np.isfinite(est)
    n_all, order = est.size, np.flatnonzero(ok)
    order = order[np.argsort(est[order], kind="stable")]  # ties keep the input order
    e, a, b = est[order], lo[order], hi[order]
    k = e.size
    y = np.arange(1, k + 1, dtype=float)
    if xlim is None:
        pts = list(e[[0, -1]]) if k else []
        if pooled is not None:
            pts += [pooled[1], pooled[2]]
        if pi is not None:
            pts += list(pi)
        fin = np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)]])
        ends = [float(fin.min()), float(fin.max())] if fin.size else []
        xlim = _auto_xlim(pts, ends, null)
    x0, x1 = float(xlim[0]), float(xlim[1])

    caption = [f"Caterpillar plot: {k} {unit} sorted by estimate, each a point with its {level_text} CI"]
    if n_all > k:
        caption.append(f" ({n_all - k} not estimable, not drawn)")
    caption.append(f". With more than {max_rows} rows (max_rows) the rows are drawn without labels or numbers" if max_rows
                   else ". The rows are drawn without labels or numbers")
    caption.append(f"; {rows_note}." if rows_note else ".")
    if pooled is not None:
        caption.append(f" Vertical line: {pooled_text}; orange band: its {level_text} CI")
        caption.append("; dashed lines: the prediction interval." if pi is not None else ".")
    if np.any(a[np.isfinite(a)] < x0) or np.any(b[np.isfinite(b)] > x1):
        caption.append(" Intervals beyond the axis are cut at its edge.")
    below = [*notes, ("caterpillar-note", "".join(caption))]

    W = width_cm * CM
    plot_h = 10 * CM
    margin, lh, title_w, wrapped, top, tick_h, H = _layout(W, fontsize, title, below, plot_h)
    ylab_w = 2.2 * fontsize / 72
    fig = Figure(figsize=(W, H), facecolor="white")
    FigureCanvasAgg(fig)
    px0, px1 = margin + ylab_w + 0.05, W - margin - 0.1
    ax = fig.add_axes((px0 / W, 1 - (top + plot_h) / H, (px1 - px0) / W, plot_h / H))
    ax.set_label("caterpillar")
    value_axis(ax, x0, x1, fontsize)
    ax.patch.set_alpha(0)
    ax.set_ylim(0.5 - 0.01 * k, k + 0.5 + 0.01 * k)
    ax.set_ylabel(f"{unit} sorted by estimate (k = {k})", fontsize=fontsize)
    if ticks is not None:
        ticks(ax, x0, x1)
    # a row's share of the plot height, in points: segments and points shrink with it, within readable bounds
    row_pt = plot_h * 72 / max(k, 1)
    lw = float(np.clip(0.6 * row_pt, 0.15, 0.8))
    if pooled is not None:
        band = ax.axvspan(pooled[1], pooled[2], color=_POOLED_BAND, alpha=0.45, linewidth=0, zorder=2.5)
        band.set_gid("pooled-ci-band")
    if x0 < null < x1:
        nl = ax.axvline(null, color="black", linewidth=0.6, zorder=1)
        nl.set_gid("null-line")
    segs = np.stack([np.column_stack([a, y]), np.column_stack([b, y])], axis=1)
    lc = LineCollection(segs, colors=_SEGMENT, linewidths=lw, zorder=2)
    lc.set_gid("study-ci")
    ax.add_collection(lc)
    size = float(np.clip(1.2 * row_pt, 1.0, 4.0)) ** 2  # marker diameter in points, squared
    sc = ax.scatter(e, y, s=size, marker="o", c=_POINT, edgecolors="none", zorder=3)
    sc.set_gid("study-markers")
    if pooled is not None:
        pl = ax.axvline(pooled[0], color="black", linewidth=1.2, zorder=4)
        pl.set_gid("pooled-line")
    if pi is not None:
        for v in pi:
            if np.isfinite(v) and x0 <= v <= x1:
                ln = ax.axvline(v, color="black", linewidth=0.9, linestyle=(0, (4, 2.5)), zorder=4)
                ln.set_gid("prediction-interval")

    if title_w:
        _text_block(fig, W, H, margin, margin, title_w, fontsize + 1, bold=True, gid="title")
    y_axis = top + plot_h + tick_h
    _text_block(fig, W, H, (px0 + px1) / 2, y_axis, xlabel, fontsize, ha="center", gid="xlabel")
    fx = lambda x: px0 + (x - x0) / (x1 - x0) * (px1 - px0)  # noqa: E731
    span = 0.02 * (x1 - x0)
    ref = null if x0 < null < x1 else (x0 + x1) / 2
    for s, ha, xx, gid in ((favours[0], "right", ref - span, "favours-left"), (favours[1], "left", ref + span, "favours-right")):
        _text_block(fig, W, H, fx(xx), y_axis + 1.2 * lh, str(s), fontsize, ha=ha, gid=gid)
    yy = y_axis + 2.4 * lh + 0.4 * lh
    for gid, s in wrapped:
        _text_block(fig, W, H, margin, yy, s, fontsize, gid=gid)
        yy += _lines(s) * lh + 0.35 * lh
    return plain_figure(fig)


def running_figure(
    k: np.ndarray,
    est: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    null: float = 0.0,
    ylabel: str = "Estimate (95% CI)",
    title: str | None = None,
    favours: Sequence[str] = ("Favours group 2", "Favours group 1"),
    rows_note: str = "",
    max_rows: int | None = None,
    fontsize: float = 8.0,
    width_cm: float = 17.0,
):
    """A cumulative meta-analysis as the running estimate: ``est`` (line) with its CI ``[lo, hi]`` (band)
    against ``k``, the number of studies in the model at each step, in the order they were added.

    The final step is marked with a diamond. Favours labels go above and below the line of no effect.
    Gids: ``running-estimate``, ``running-ci-band``, ``final-estimate``, ``null-line``, ``title``,
    ``caterpillar-note``, ``favours-left``/``favours-right``; the plot axes has label ``running``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from meta.plots.layout import CM, _text_width, _wrap, plain_figure

    k, est, lo, hi = (np.asarray(v, dtype=float) for v in (k, est, lo, hi))
    n = est.size
    caption = (f"Running estimate of a cumulative meta-analysis: {n} steps, one study added at each, in the order "
               f"added; line: the estimate after each step, shaded band: its CI, diamond: the final estimate. ")
    caption += (f"With more than {max_rows} steps (max_rows) the steps are drawn without labels or numbers" if max_rows
                else "The steps are drawn without labels or numbers")
    caption += f"; {rows_note}." if rows_note else "."
    W = width_cm * CM
    plot_h = 9 * CM
    margin, lh, title_w, wrapped, top, tick_h, H = _layout(W, fontsize, title, [("caterpillar-note", caption)], plot_h)
    H -= 1.2 * lh  # no favours line under the axis: they stand beside the plot
    ylab_w = 5.2 * fontsize / 72
    fav_w = max(_text_width(str(s), False, fontsize) for s in favours)
    fav_w = min(fav_w, 0.3 * W)
    fav_text = [_wrap(str(s), fav_w, False, fontsize) for s in favours]
    fig = Figure(figsize=(W, H), facecolor="white")
    FigureCanvasAgg(fig)
    px0, px1 = margin + ylab_w, W - margin - fav_w - 0.15
    ax = fig.add_axes((px0 / W, 1 - (top + plot_h) / H, (px1 - px0) / W, plot_h / H))
    ax.set_label("running")
    fin = np.isfinite(lo) & np.isfinite(hi)
    vals = np.concatenate([est[np.isfinite(est)], lo[fin], hi[fin], [null]])
    y0, y1 = float(vals.min()), float(vals.max())
    pad = 0.05 * (y1 - y0) if y1 > y0 else 0.5
    ax.set_ylim(y0 - pad, y1 + pad)
    ax.set_xlim(float(np.nanmin(k)) - 0.5, float(np.nanmax(k)) + 0.5)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_linewidth(0.6)
    ax.tick_params(labelsize=fontsize, width=0.6, length=3.5, pad=3.5)
    ax.set_xlabel("number of studies added (k)", fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    band = ax.fill_between(k, lo, hi, where=fin, color=_BAND, linewidth=0, zorder=1)
    band.set_gid("running-ci-band")
    nl = ax.axhline(null, color="black", linewidth=0.6, zorder=2)
    nl.set_gid("null-line")
    ln, = ax.plot(k, est, color=_POINT, linewidth=1.0, zorder=3)
    ln.set_gid("running-estimate")
    fd, = ax.plot(k[-1:], est[-1:], marker="D", color="black", markersize=fontsize * 0.7, linestyle="none", zorder=4,
                  clip_on=False)
    fd.set_gid("final-estimate")
    # favours labels beside the plot: group 1 (right label) above the null line, group 2 below
    ytr = lambda v: top + plot_h * (1 - (v - (y0 - pad)) / ((y1 + pad) - (y0 - pad)))  # noqa: E731
    _text_block(fig, W, H, px1 + 0.1, ytr(null) - 0.15 - _lines(fav_text[1]) * lh, fav_text[1], fontsize,
                gid="favours-right")
    _text_block(fig, W, H, px1 + 0.1, ytr(null) + 0.15, fav_text[0], fontsize, gid="favours-left")
    if title_w:
        _text_block(fig, W, H, margin, margin, title_w, fontsize + 1, bold=True, gid="title")
    yy = top + plot_h + tick_h + 1.6 * lh
    for gid, s in wrapped:
        _text_block(fig, W, H, margin, yy, s, fontsize, gid=gid)
        yy += _lines(s) * lh + 0.35 * lh
    return plain_figure(fig)
