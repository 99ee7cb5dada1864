"""Cumulative forest plot: one row per step of a cumulative meta-analysis (metafor ``forest(cumul(res))``).

The plot draws a table of :func:`meta.pool.cumulative` (``added, k, estimate, ci_low, ci_high``)
and never refits: row i shows the model fitted to the first i studies added, labelled
``+ <study>`` (the study added at that step; with ``years`` given and the year not already in the
label, ``+ <study> <year>``), its k and its estimate with CI. Studies are added in the order of
the table (publication year for ``meta reproduce``; ties in input order as metafor ``cumul()``).
A figure object (``matplotlib.figure.Figure``, no pyplot state), drawn under
:func:`meta.plots.style.fixed_style`; :func:`meta.plots.save` writes it byte-reproducibly.

Lau J et al. (1992) Cumulative meta-analysis of therapeutic trials for myocardial infarction.
N Engl J Med 327:248-254; Viechtbauer W (2010) metafor, J Stat Softw 36(3) (``cumul()``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from meta.plots.layout import CM, MINUS, _auto_xlim, _ci_text, _text_width, plain_figure, row_writer, value_axis
from meta.plots.caterpillar import MAX_ROWS, check_max_rows, running_figure
from meta.plots.style import fixed_style

__all__ = ["cumulative_forest", "step_labels"]

_NEEDED = ("added", "k", "estimate", "ci_low", "ci_high")


def step_labels(added: Sequence, years: Sequence | None = None) -> list[str]:
    """``+ <study>`` per step; with ``years``, ``+ <study> <year>`` unless the label already shows the year."""
    out = []
    for i, a in enumerate(added):
        lab = str(a)
        if years is not None:
            y = years[i]
            ytxt = "" if y is None or (isinstance(y, float) and not np.isfinite(y)) else str(int(y)) if _whole(y) else str(y)
            if ytxt and ytxt not in lab:
                lab = f"{lab} {ytxt}"
        out.append(f"+ {lab}")
    return out


def _whole(y) -> bool:
    try:
        return float(y) == int(float(y))
    except (TypeError, ValueError):
        return False


@fixed_style
def cumulative_forest(
    cum: pd.DataFrame,
    *,
    years: Sequence | None = None,
    title: str | None = None,
    favours: tuple[str, str] = ("Favours group 2", "Favours group 1"),
    xlabel: str = "Std. mean difference (95% CI)",
    null: float = 0.0,
    fontsize: float = 8.0,
    width_cm: float = 17.0,
    digits: int = 2,
    max_rows: int | None = MAX_ROWS,
    rows_note: str | None = None,
) -> Figure:
    """Cumulative forest plot of ``cum`` (the table of :func:`meta.pool.cumulative`).

    ``years``: one per row of ``cum`` (in its order), added to the labels (:func:`step_labels`).
    Returns a :class:`matplotlib.figure.Figure`; rows top to bottom in the order studies were added.

    ``max_rows``: the most steps drawn as labelled rows (default :data:`meta.plots.caterpillar.MAX_ROWS`
    = 60, a page at 8 pt); with more steps the figure is the running estimate, a line with its CI band
    against the number of studies added (:func:`meta.plots.caterpillar.running_figure`), with a caption
    saying that the steps are drawn without labels and where their numbers are (``rows_note``, e.g.
    ``"every step's numbers are in cumulative.csv"``). ``None``: always the rows.
    """
    from matplotlib.figure import Figure
    if not isinstance(cum, pd.DataFrame):
        raise TypeError(f"cumulative_forest: cum must be the DataFrame of meta.pool.cumulative, got {type(cum).__name__}")
    missing = [c for c in _NEEDED if c not in cum.columns]
    if missing:
        raise ValueError(f"cumulative_forest: cum lacks column(s) {missing}; pass meta.pool.cumulative(...)")
    n = len(cum)
    if n == 0:
        raise ValueError("cumulative_forest: cum has no rows")
    if years is not None and len(years) != n:
        raise ValueError(f"cumulative_forest: years has {len(years)} values for {n} steps")
    max_rows = check_max_rows(max_rows, "cumulative_forest")
    if max_rows is not None and n > max_rows:
        return running_figure(cum["k"].to_numpy(float), cum["estimate"].to_numpy(float), cum["ci_low"].to_numpy(float),
                              cum["ci_high"].to_numpy(float), null=null, ylabel=xlabel, title=title, favours=favours,
                              max_rows=max_rows, fontsize=fontsize, width_cm=width_cm,
                              rows_note=rows_note if rows_note is not None else "each step's numbers are in the table cum")
    est = cum["estimate"].to_numpy(float)
    lo = cum["ci_low"].to_numpy(float)
    hi = cum["ci_high"].to_numpy(float)
    ks = cum["k"].to_numpy()
    labels = step_labels(list(cum["added"]), None if years is None else list(years))
    ci_txt = [_ci_text(e, a, b, digits) for e, a, b in zip(est, lo, hi)]

    W = width_cm * CM
    margin = 0.06
    gap = 0.9 * fontsize / 72
    lab_w = max([_text_width(s, False, fontsize) for s in labels] + [_text_width("Study added", True, fontsize)])
    k_w = max([_text_width(str(k), False, fontsize) for k in ks] + [_text_width("k", True, fontsize)])
    ci_w = max([_text_width(s, False, fontsize) for s in ci_txt] + [_text_width("SMD [95% CI]", True, fontsize)])
    plot_x0 = margin + lab_w + gap + k_w + 2 * gap
    plot_x1 = W - margin - ci_w - 2 * gap
    if plot_x1 - plot_x0 < 1.5:  # keep the plot at least 1.5 in wide; widen the figure instead
        W += 1.5 - (plot_x1 - plot_x0)
        plot_x1 = W - margin - ci_w - 2 * gap
    rh = fontsize * 1.7 / 72
    title_h = (fontsize + 1) * 2.0 / 72 if title else 0.0
    head_h = rh * 1.3
    foot_h = (3.5 + 3.5 + fontsize * 1.2) / 72 + fontsize * 2.6 / 72 + rh
    H = margin + title_h + head_h + n * rh + foot_h + margin
    fig = Figure(figsize=(W, H), facecolor="white")
    ax_bottom = margin + foot_h
    ax = fig.add_axes((plot_x0 / W, ax_bottom / H, (plot_x1 - plot_x0) / W, n * rh / H))
    ax.set_ylim(n + 0.5, 0.5)
    x0, x1 = _auto_xlim(list(est), list(lo) + list(hi), null)
    x0, x1 = min(x0, float(np.nanmin(lo))), max(x1, float(np.nanmax(hi)))
    value_axis(ax, x0, x1, fontsize)
    ax.axvline(null, color="black", linewidth=0.6, zorder=1)
    ax.set_xlabel("")

    put = row_writer(fig, ax, fontsize)

    head_y = 0.5 - 0.65  # just above the first row, in data units
    put(margin, head_y, "Study added", bold=True, gid="head-study")
    put(margin + lab_w + gap + k_w, head_y, "k", ha="right", bold=True, gid="head-k")
    put(W - margin, head_y, "SMD [95% CI]", ha="right", bold=True, gid="head-ci")
    for i in range(n):
        y = i + 1
        put(margin, y, labels[i], gid=f"label-{i}")
        put(margin + lab_w + gap + k_w, y, str(int(ks[i])), ha="right", gid=f"k-{i}")
        put(W - margin, y, ci_txt[i].replace("-", MINUS), ha="right", gid=f"ci-{i}")
        if np.isfinite(lo[i]) and np.isfinite(hi[i]):
            ln, = ax.plot([lo[i], hi[i]], [y, y], color="black", linewidth=1.0, solid_capstyle="butt", zorder=3)
            ln.set_gid(f"step-ci-{i}")
        pt, = ax.plot([est[i]], [y], marker="D" if i == n - 1 else "s", color="black", markersize=fontsize * 0.7,
                      linestyle="none", zorder=4)
        pt.set_gid(f"step-{i}")
    if title:
        t = fig.text(margin / W, 1 - (margin + (fontsize + 1) / 72) / H, title, ha="left", va="center",
                     fontsize=fontsize + 1, fontweight="bold", parse_math=False)
        t.set_gid("title")
    tick_h = (3.5 + 3.5 + fontsize * 1.2) / 72
    xl = fig.text((plot_x0 + plot_x1) / 2 / W, (ax_bottom - tick_h - fontsize * 0.9 / 72) / H, xlabel,
                  ha="center", va="center", fontsize=fontsize, parse_math=False)
    xl.set_gid("xlabel")
    fav_y = (ax_bottom - tick_h - fontsize * 2.3 / 72) / H
    fx = lambda x: (plot_x0 + (x - x0) / (x1 - x0) * (plot_x1 - plot_x0)) / W  # noqa: E731
    span = 0.02 * (x1 - x0)
    for s, ha, xx, gid in ((favours[0], "right", null - span, "favours-left"), (favours[1], "left", null + span, "favours-right")):
        t = fig.text(fx(xx), fav_y, str(s), ha=ha, va="top", fontsize=fontsize, parse_math=False)
        t.set_gid(gid)
    return plain_figure(fig)  # all text plain: no mathtext/TeX, no invisible controls
