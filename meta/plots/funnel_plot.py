"""The funnel plot (Sterne & Egger 2001): optional contour enhancement (Peters et al. 2008),
Egger's regression line (Egger et al. 1997, as metafor ``regtest(model="lm")``) and
trim-and-fill's filled studies (Duval & Tweedie 2000) drawn hollow.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from meta import _checks, _lazy
from meta.plots.layout import (CM, _num, _same, _wrap, label_ticks, measure_display, plain_figure, ratio_label, ratio_ticks,
                               refuse_regression)
from meta.plots.style import fixed_style

__all__ = ["funnel"]


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
    xlabel: str | None = None,
    ylabel: str = "Standard error",
    title: str | None = None,
    level: float = 0.95,
    xlim: tuple[float, float] | None = None,
    legend: bool = True,
    fontsize: float = 8.0,
    width_cm: float = 8.5,
    height_cm: float = 10.0,
    atransf: Any = None,
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
    xlabel : default from the result's ``measure`` (metafor's wording: "Log Odds
        Ratio", "Standardized Mean Difference", "Observed Outcome" when unknown;
        "Odds Ratio (log scale)" with ratio labels).
    atransf : metafor ``funnel(atransf=)``: a function for the tick labels only
        (the funnel stays on the analysis scale, where its limits are straight
        lines).  Default (None): ``numpy.exp`` for OR, RR, PETO, ROM (ticks at 1-2-5
        ratios) and ``numpy.tanh`` for ZCOR (labels in r); ``False``: none.

    Returns
    -------
    Figure (not registered with pyplot); gids: ``observed-studies``,
    ``filled-studies``, ``pseudo-ci``, ``centre-line``, ``egger-line``,
    ``contour-p>0.10``, ``contour-p0.10``, ``contour-p0.05``, ``contour-p0.01``.
    """
    refuse_regression(yi, "funnel")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Polygon, Rectangle
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
        _checks.not_masked(yi, "yi")
        _checks.not_masked(vi, "vi")
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

        result = pool(y, v, measure=getattr(yi, "attrs", {}).get("measure"))  # an escalc column names its measure
    centre = float(result.estimate)
    shown = result
    if trimfill is not None and getattr(result, "measure", "GEN") == "GEN":
        shown = getattr(trimfill, "original", result)
    if atransf is None:  # a funnel is drawn on the analysis scale: the measure's transformation labels the axis
        m = measure_display(shown)["measure"]
        atransf = m.func if m.func is not None else False
    disp = measure_display(shown, False, atransf)
    if xlabel is None:
        xlabel = disp["label"]
    eg = None
    if egger is True:
        from meta.bias import egger as _egger

        eg = _egger(y, v)
    elif egger not in (False, None):
        eg = egger
    level = _checks.level_fraction(level)  # the library's one reading: 95 = 0.95
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
    if H - top - bottom < 1.0:
        raise ValueError(
            f"funnel: the title ({title.count(chr(10)) + 1} lines at this width) and legend leave "
            f"{max(H - top - bottom, 0) / CM:.1f} cm of the {height_cm:g} cm figure for the plot; "
            "shorten the title or raise height_cm"
        )
    ax = fig.add_axes((left / W, bottom / H, (W - left - right) / W, (H - top - bottom) / H))
    ax.set_label("funnel")
    ax.set_xlim(*xlim)
    ax.set_ylim(se_lim, 0)  # inverted: precise studies at the top
    ax.tick_params(labelsize=fontsize, width=0.6, length=3.5)
    for s in ax.spines.values():
        s.set_linewidth(0.6)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    if disp["log_axis"]:
        ticks = ratio_ticks(*xlim)
        if len(ticks) >= 2:
            ax.set_xticks(ticks)
            ax.set_xticklabels([ratio_label(float(np.exp(t))) for t in ticks])
    elif disp["atransf"]:
        nice = label_ticks(disp["av"], *xlim)
        if nice is not None:
            ax.set_xticks(nice[0])
            ax.set_xticklabels(nice[1])
        else:
            ticks = [t for t in ax.get_xticks() if xlim[0] - 1e-12 <= t <= xlim[1] + 1e-12]
            ax.set_xticks(ticks)
            with np.errstate(all="ignore"):
                ax.set_xticklabels([_num(float(disp["av"](t)), 2) for t in ticks])
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
    return plain_figure(fig)  # all text plain: no mathtext/TeX, no invisible controls


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
