"""Robustness plot: one analysis, one row per method of the panel.

:func:`robustness_plot` draws a :class:`meta.robustness.RobustnessResult`
without refitting anything: for each method its estimate with the 95%
confidence interval (thick line; the equal-tailed credible interval for the
Bayesian model, drawn with a diamond marker), its prediction interval (thin
grey line; the posterior predictive interval for the Bayesian model; none for
the common-effect model, whose PI would equal its CI), the numbers, the
posterior probability of the expected direction (Bayesian rows) and the
verdict.  The primary method's row is shaded; verdicts that differ from the
primary's are bold.  A footer says under how many methods the verdict holds
and whether it is fragile.

Drawn on a :class:`matplotlib.figure.Figure` (no pyplot), under
:func:`meta.plots.style.fixed_style`; write it with :func:`meta.plots.save`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from meta.plots.layout import CM, MINUS, _nice_limit, _text_width, _wrap, plain_figure, value_axis
from meta.plots.style import fixed_style

__all__ = ["robustness_plot"]

_FREQ_COLOUR = "#2b5c8a"  # as the forest plot's study squares
_BAYES_COLOUR = "#9a3d00"
_PI_COLOUR = "#8c8c8c"
_DIRECTION = {1: "positive", -1: "negative", 0: "no difference"}


def _num(x: float, nd: int = 2) -> str:
    if x is None or not np.isfinite(x):
        return ""
    s = f"{x:.{nd}f}"
    if s.startswith("-") and float(s) == 0:
        s = s[1:]  # no "-0.00"
    return s.replace("-", MINUS)


def _prob(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "\u2013"
    if p > 0.999:
        return ">0.999"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def _xlim(rows) -> tuple[float, float]:
    """Symmetric about 0; shows every estimate and every interval but one much
    wider than the rest (an HKSJ interval on t with 1 df), which is clipped
    with an arrow, as are prediction intervals beyond the limits."""
    est = np.array([abs(r["estimate"]) for r in rows if np.isfinite(r["estimate"])])
    ends = [(abs(r["ci_low"]), abs(r["ci_high"]), r["ci_high"] - r["ci_low"]) for r in rows
            if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"])]
    if not ends:
        lim = float(est.max()) if est.size else 1.0
        return -_nice_limit(lim * 1.05), _nice_limit(lim * 1.05)
    widths = np.array([w for _, _, w in ends])
    typical = float(np.median(widths))
    keep = [max(a, b) for a, b, w in ends if w <= 2.5 * typical] or [max(a, b) for a, b, _ in ends]
    full = max(max(a, b) for a, b, _ in ends)
    base = max(keep + ([float(est.max())] if est.size else []))
    lim = _nice_limit(min(full, 1.5 * base) * 1.02)
    return -lim, lim


def _ticks(lim: float) -> np.ndarray:
    """Ticks at multiples of the largest step of 1, 2 or 5 x 10^e that gives at least two ticks
    either side of 0 (5 to 11 ticks in all)."""
    e = math.floor(math.log10(lim))
    steps = sorted((m * 10.0 ** k for k in (e - 1, e) for m in (1, 2, 5)), reverse=True)
    step = next(st for st in steps if lim / st >= 2 - 1e-9)
    n = int(math.floor(lim / step + 1e-9))
    return np.arange(-n, n + 1) * step


@fixed_style
def robustness_plot(
    rob,
    *,
    title: str | None = None,
    favours: Sequence[str] = ("Favours group 2", "Favours group 1"),
    xlabel: str = "SMD (Hedges' g)",
    xlim: tuple[float, float] | None = None,
    width_cm: float = 17.0,
    fontsize: float = 8.0,
) -> Figure:
    """Figure with one row per method of ``rob`` (a
    :class:`meta.robustness.RobustnessResult`).

    ``favours``: (left, right) labels under the axis; ``xlabel``: the effect
    measure; ``xlim``: axis limits (default symmetric about 0, see
    :func:`_xlim`); ``width_cm``: figure width (17 cm = a journal page).
    Artists carry gids for tests: ``ci`` / ``credible-interval``,
    ``prediction-interval``, ``estimate-frequentist``, ``estimate-bayes``,
    ``primary-band``, ``null-line``, ``verdict-<method_id>``,
    ``holds-line``, ``favours-left``/``favours-right``, ``ci-arrow``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import offset_copy
    rows = list(rob.rows)
    panel = list(rob.panel)
    if len(favours) != 2:
        raise ValueError("robustness_plot: favours must be a pair (left, right)")
    pct = f"{100 * rob.level:g}%"
    fs = fontsize
    W = width_cm * CM
    margin, gap = 0.08, 0.14
    rh = fs * 1.9 / 72  # row height (inches)

    labels = [pm.short for pm in panel]
    est_txt = [f"{_num(r['estimate'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]" for r in rows]
    prob_txt = [_prob(r["prob_direction"]) for r in rows]
    verdict_txt = [r["verdict"] for r in rows]
    # two-line headers keep the text columns narrow and the plot wide
    head = (("", "Method"), ("Estimate", f"[{pct} CI or CrI]"), ("", "P(dir.)"), ("", "Verdict"))
    w_label = max(_text_width(s, True, fs) for s in labels + list(head[0]))
    w_est = max([_text_width(s, False, fs) for s in est_txt] + [_text_width(s, True, fs) for s in head[1]])
    w_prob = max([_text_width(s, False, fs) for s in prob_txt] + [_text_width(s, True, fs) for s in head[2]])
    w_verd = max(_text_width(s, True, fs) for s in verdict_txt + list(head[3]))
    half_tick = _text_width(MINUS + "0.0", False, fs) / 2
    x_label = margin
    plot_x0 = x_label + w_label + gap + half_tick
    x_verd = W - margin - w_verd
    x_prob_r = x_verd - gap
    x_est_r = x_prob_r - w_prob - gap
    plot_x1 = x_est_r - w_est - gap - half_tick
    if plot_x1 - plot_x0 < 1.2:
        raise ValueError(f"robustness_plot: width_cm={width_cm:g} leaves no room for the plot; use at least 15 cm")

    # ---------------- vertical layout (inches from the top) ----------------
    y = margin
    title_y = None
    if title:
        title = _wrap(title, W - 2 * margin, True, fs + 1)
        n_title = title.count("\n") + 1
        title_y = y + 0.55 * rh * n_title
        y += (0.2 + 1.0 * n_title) * rh
    head_y = (y + 0.45 * rh, y + 1.25 * rh)
    y += 1.7 * rh
    rule_y = y + 0.1 * rh
    table_top = y + 0.2 * rh
    row_y = [table_top + (i + 0.5) * rh for i in range(len(rows))]
    table_bottom = table_top + len(rows) * rh
    axis_y = table_bottom + 0.1 * rh
    tick_h = (3.5 + 3.5 + fs * 1.2) / 72
    plot_w = plot_x1 - plot_x0
    fav_text = [_wrap(t, plot_w / 2 * 0.96, False, fs) for t in favours]
    fav_lines = max(t.count("\n") + 1 for t in fav_text)
    fav_y = axis_y + tick_h + 0.1 * rh
    xlab_y = fav_y + fav_lines * fs * 1.2 / 72 + 0.35 * rh
    d = _DIRECTION.get(rob.direction, "none")
    src = "the claim" if rob.direction_source == "claim" else "the primary estimate"
    if rob.k < 2:
        holds = f"k = {rob.k}: nothing is pooled, so no method gives a verdict (insufficient data)."
    else:
        holds = f"Verdict holds under {rob.holds_under} methods" + (
            " \u2014 fragile: the methods disagree." if rob.fragile else " \u2014 not fragile.")
    foot = [
        ("holds-line", holds, True),
        ("direction-line", f"k = {rob.k}; verdicts judged against the expected direction: {d} (from {src}).", False),
        ("key-line", f"Shaded: primary analysis. \u25a0 estimate and {pct} confidence interval (CI); \u25c6 posterior median "
                     f"and {pct} equal-tailed credible interval (CrI); thin grey line: {pct} prediction interval "
                     "(Bayesian: posterior predictive). P(dir.): posterior probability that the effect lies in the "
                     "expected direction.", False),
    ]
    foot += [(f"bayes-line-{pm.method_id}", f"{pm.label}.", False) for pm in panel if pm.kind == "bayes"]
    foot = [(g, _wrap(s, W - 2 * margin, b, fs * 0.92), b) for g, s, b in foot]
    foot_y = []
    yy = xlab_y + 0.45 * rh
    for _, s, _ in foot:
        n = s.count("\n") + 1
        foot_y.append(yy + 0.5 * n * fs * 1.25 / 72)
        yy += n * fs * 1.25 / 72 + 0.08 * rh
    H = yy + margin

    fig = Figure(figsize=(W, H), facecolor="white")
    FigureCanvasAgg(fig)
    tab = fig.add_axes((0, 0, 1, 1))
    tab.set_xlim(0, W)
    tab.set_ylim(H, 0)
    tab.set_axis_off()
    tab.set_label("robustness-table")

    def put(xx, yy, s, *, ha="left", bold=False, gid=None, size=None, colour="black", style="normal"):
        t = tab.text(xx, yy, s, ha=ha, va="center", fontsize=size or fs, fontweight="bold" if bold else "normal",
                     color=colour, fontstyle=style, parse_math=False, clip_on=False)
        if gid:
            t.set_gid(gid)
        return t

    if title_y is not None:
        put(margin, title_y, title, bold=True, size=fs + 1, gid="title")
    for line, hy in enumerate(head_y):
        put(x_label, hy, head[0][line], bold=True)
        put(x_est_r, hy, head[1][line], ha="right", bold=True)
        put(x_prob_r, hy, head[2][line], ha="right", bold=True)
        put(x_verd, hy, head[3][line], bold=True)
    tab.add_line(Line2D([margin, W - margin], [rule_y, rule_y], color="black", linewidth=0.6))
    # the primary row: a light band across the table
    band = Rectangle((margin, row_y[0] - rh / 2), W - 2 * margin, rh, facecolor="#ececec", edgecolor="none", zorder=0)
    band.set_gid("primary-band")
    tab.add_patch(band)
    primary = rows[0]["verdict"]
    for i, (pm, r, yy) in enumerate(zip(panel, rows, row_y)):
        put(x_label, yy, pm.short, bold=i == 0)
        put(x_est_r, yy, est_txt[i], ha="right")
        put(x_prob_r, yy, prob_txt[i], ha="right")
        put(x_verd, yy, verdict_txt[i], bold=r["verdict"] != primary, gid=f"verdict-{pm.method_id}")
    tab.add_line(Line2D([margin, W - margin], [table_bottom + 0.05 * rh] * 2, color="black", linewidth=0.4))
    for (gid, s, b), yy in zip(foot, foot_y):
        put(margin, yy, s, bold=b, gid=gid, size=fs * 0.92)

    # ---------------- the plot ----------------
    ax = fig.add_axes((plot_x0 / W, (H - axis_y) / H, plot_w / W, (axis_y - table_top) / H))
    ax.set_label("robustness")
    ax.set_ylim(axis_y, table_top)
    x0, x1 = (float(xlim[0]), float(xlim[1])) if xlim is not None else _xlim(rows)
    if not x0 < x1:
        raise ValueError(f"robustness_plot: xlim must be (low, high) with low < high, got {xlim}")
    value_axis(ax, x0, x1, fs)
    ax.patch.set_alpha(0)
    if x0 < 0 < x1:
        ax.axvline(0.0, color="black", linewidth=0.6, zorder=1).set_gid("null-line")
    if -x0 == x1:
        ax.set_xticks(_ticks(x1))

    arrows = []

    def clipped(lo, hi, yy):
        a, b = max(lo, x0), min(hi, x1)
        if lo < x0:
            arrows.append((x0, yy, "<", "black"))
        if hi > x1:
            arrows.append((x1, yy, ">", "black"))
        return (a, b) if a < b else None

    pi_segs, ci_f, ci_b = [], [], []
    for pm, r, yy in zip(panel, rows, row_y):
        show_pi = pm.kind == "bayes" or pm.method.upper() not in ("FE", "EE", "CE")
        if show_pi and np.isfinite(r["pi_low"]) and np.isfinite(r["pi_high"]) and rob.k >= 2:
            a, b = max(r["pi_low"], x0), min(r["pi_high"], x1)
            if a < b:
                pi_segs.append([(a, yy), (b, yy)])
            if r["pi_low"] < x0:
                arrows.append((x0, yy, "<", _PI_COLOUR))
            if r["pi_high"] > x1:
                arrows.append((x1, yy, ">", _PI_COLOUR))
        if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
            seg = clipped(r["ci_low"], r["ci_high"], yy)
            if seg:
                (ci_b if pm.kind == "bayes" else ci_f).append([(seg[0], yy), (seg[1], yy)])
    lc = LineCollection(pi_segs, colors=_PI_COLOUR, linewidths=0.8, zorder=2)
    lc.set_gid("prediction-interval")
    ax.add_collection(lc)
    for segs, colour, gid in ((ci_f, _FREQ_COLOUR, "ci"), (ci_b, _BAYES_COLOUR, "credible-interval")):
        lc = LineCollection(segs, colors=colour, linewidths=1.8, zorder=3, capstyle="butt")
        lc.set_gid(gid)
        ax.add_collection(lc)
    msize = fs * 0.9
    for kind, marker, colour, gid, size in (("frequentist", "s", _FREQ_COLOUR, "estimate-frequentist", msize),
                                            ("bayes", "D", _BAYES_COLOUR, "estimate-bayes", msize * 0.95)):
        pts = [(r["estimate"], yy) for pm, r, yy in zip(panel, rows, row_y) if pm.kind == kind and np.isfinite(r["estimate"])]
        if pts:
            ln = Line2D([p[0] for p in pts], [p[1] for p in pts], linestyle="none", marker=marker, markersize=size,
                        markerfacecolor=colour, markeredgecolor="white", markeredgewidth=0.4, zorder=4, clip_on=True)
            ln.set_gid(gid)
            ax.add_line(ln)
    arrow_size = fs * 0.6
    seen = set()
    for xa, yy, m, colour in sorted(arrows, key=lambda a: a[3] != "black"):  # a CI arrow hides a PI arrow
        if (xa, yy) in seen:
            continue
        seen.add((xa, yy))
        shift = (-1 if m == "<" else 1) * arrow_size / 2
        tr = offset_copy(ax.transData, fig=fig, x=shift, y=0, units="points")
        ln = Line2D([xa], [yy], marker=m, markersize=arrow_size, color=colour, linestyle="none", clip_on=False,
                    zorder=6, transform=tr)
        ln.set_gid("ci-arrow" if colour == "black" else "pi-arrow")
        ax.add_line(ln)
    for s, ha, gid in ((fav_text[0], "right", "favours-left"), (fav_text[1], "left", "favours-right")):
        off = (-1 if ha == "right" else 1) * 0.02 * (x1 - x0)
        null = 0.0 if x0 < 0 < x1 else (x0 + x1) / 2
        t = ax.text(null + off, fav_y, s, ha=ha, va="top", multialignment=ha, fontsize=fs, parse_math=False,
                    clip_on=False, linespacing=1.15)
        t.set_gid(gid)
    put((plot_x0 + plot_x1) / 2, xlab_y, xlabel, ha="center", gid="xlabel")
    return plain_figure(fig)  # all text plain: no mathtext/TeX, no invisible controls
