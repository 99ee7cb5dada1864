"""Forest plot of a multilevel model (:class:`meta.multilevel.MultilevelResult`): effect sizes grouped by study.

One header row per study (the outermost grouping factor, ``res.cluster``, in order of first
appearance), under it one row per effect size of that study (its label ``res.slab``, weight and
``yi [CI]``, a square whose area is proportional to its weight, metafor ``weights.rma.mv``: percent
of diag(W)), and the pooled estimate as a diamond with the model's CI. The footer gives the variance
components, Cochran's Q and I² per level, and the test of the pooled estimate. Effect-size CIs are
``yi -/+ z sqrt(V[i, i])`` with z from ``res.level``, as metafor ``forest.rma``. Nothing is refitted.
Drawn on a bare :class:`matplotlib.figure.Figure` under :func:`meta.plots.style.fixed_style`, with
the text layout of :mod:`meta.plots.layout` (the same look as :func:`meta.plots.forest`).

Viechtbauer W (2010) metafor, J Stat Softw 36(3) (``forest.rma``, ``weights.rma.mv``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from scipy import stats

from meta.plots.layout import CM, MINUS, _auto_xlim, _ci_text, _text_width, format_p, row_writer, value_axis
from meta.plots.caterpillar import MAX_ROWS, caterpillar_figure, check_max_rows
from meta.plots.style import fixed_style

__all__ = ["forest_mv"]


def _rows(res: Any) -> list[dict]:
    """Study header rows and effect-size rows, studies in order of first appearance."""
    cl = pd.Series(np.asarray(res.cluster, dtype=object))
    z = float(stats.norm.ppf(1 - (1 - float(res.level)) / 2))
    V = res.V
    vi = np.diag(V)
    rows = []
    codes, studies = pd.factorize(cl, use_na_sentinel=False)  # studies in order of first appearance; one pass, linear in k
    order = np.argsort(codes, kind="stable")  # each study's effect sizes in their input order
    starts = np.searchsorted(codes[order], np.arange(len(studies) + 1))
    for j, study in enumerate(studies):
        rows.append(dict(kind="study", label=str(study)))
        for i in order[starts[j]:starts[j + 1]]:
            rows.append(dict(kind="es", label=str(res.slab[i]) if len(res.slab) == res.k else str(i + 1),
                             est=float(res.yi[i]), lo=float(res.yi[i] - z * np.sqrt(vi[i])),
                             hi=float(res.yi[i] + z * np.sqrt(vi[i])), weight=float(res.weights[i])))
    return rows


def _footer(res: Any) -> tuple[str, str]:
    """The heterogeneity line (variance components, Q, I² per level) and the test of the pooled estimate."""
    comps = "; ".join(f"\u03c3\u00b2({name}) = {_fmt2(s)}" for name, s in zip(res.s_names, res.sigma2))
    i2 = " / ".join(f"{v:.0f}%" for v in res.i2) if np.all(np.isfinite(res.i2)) else "NA"
    het = (f"Heterogeneity: {comps}; Q = {res.QE:.2f}, df = {res.QE_df} ({format_p(res.QEp)}); "
           f"I\u00b2 = {i2}" if np.isfinite(res.QE) else f"Heterogeneity: {comps}; Q not available (V singular)")
    stat = "t" if res.test == "t" else "Z"
    df = f", df = {int(res.ddf[0])}" if res.test == "t" else ""
    eff = f"Test for overall effect: {stat} = {abs(float(res.stat[0])):.2f}{df} ({format_p(float(res.pval[0]))})"
    return het, eff


def _fmt2(x: float) -> str:
    return f"{x:.3f}".replace("-", MINUS)


@fixed_style
def forest_mv(
    res: Any,
    *,
    favours: Sequence[str] = ("Favours group 2", "Favours group 1"),
    xlabel: str | None = None,
    title: str | None = None,
    xlim: tuple[float, float] | None = None,
    null: float = 0.0,
    digits: int = 2,
    fontsize: float = 8.0,
    width_cm: float = 17.0,
    max_rows: int | None = MAX_ROWS,
    rows_note: str | None = None,
) -> Figure:
    """Forest plot of a :class:`meta.multilevel.MultilevelResult` (intercept-only model).

    Rows: each study (``res.cluster``) as a bold header, its effect sizes under it
    (``res.slab`` labels, weight %, ``yi [CI]``), then the pooled estimate (diamond,
    ``beta[0]`` with ``ci_lb, ci_ub``). Footer: variance components, Q test and I² per
    level, the test of the pooled estimate. A model with moderators has no single pooled
    estimate: ``ValueError``. Gids: ``study-header-<j>``, ``study-markers``, ``study-ci``,
    ``pooled-diamond``, ``null-line``, ``heterogeneity``, ``overall-effect``,
    ``favours-left``/``favours-right``; the plot axes has label ``forest``.

    ``max_rows``: the most effect-size rows drawn as the labelled table (study headers aside; default
    :data:`meta.plots.caterpillar.MAX_ROWS` = 60, a page at 8 pt); with more, the effect sizes are drawn
    as a caterpillar plot (:func:`meta.plots.caterpillar.caterpillar_figure`: sorted by estimate, no
    labels, the pooled estimate as a line with its CI band), with a caption saying so and where the
    numbers are (``rows_note``). ``None``: always the table.
    """
    if not (hasattr(res, "sigma2") and hasattr(res, "cluster") and hasattr(res, "beta")):
        raise TypeError(f"forest_mv: res must be a meta.multilevel.MultilevelResult, got {type(res).__name__}")
    if res.p != 1:
        raise ValueError(f"forest_mv: the model has {res.p} coefficients ({', '.join(res.coef_names)}); a forest plot "
                         "shows one pooled estimate: fit the model without moderators")
    max_rows = check_max_rows(max_rows, "forest_mv")
    rows = _rows(res)
    est, lo, hi = float(res.beta[0]), float(res.ci_lb[0]), float(res.ci_ub[0])
    es = [r for r in rows if r["kind"] == "es"]
    if max_rows is not None and len(es) > max_rows:  # counted as forest() counts studies: headers aside
        n_studies = len(rows) - len(es)
        return caterpillar_figure(
            np.array([r["est"] for r in es]), np.array([r["lo"] for r in es]), np.array([r["hi"] for r in es]),
            pooled=(est, lo, hi), null=null, xlim=xlim, xlabel=xlabel or "Estimate (95% CI)",
            pooled_text=f"pooled estimate ({res.method}, {' / '.join(res.s_names)})",
            level_text=f"{100 * float(res.level):g}%", unit=f"effect sizes of {n_studies} studies", title=title,
            favours=favours, notes=list(zip(("heterogeneity", "overall-effect"), _footer(res))), max_rows=max_rows,
            rows_note=rows_note if rows_note is not None else "each effect size's numbers are in the model's data",
            fontsize=fontsize, width_cm=width_cm)
    n = len(rows) + 2  # a blank row and the pooled row
    es_rows = [r for r in rows if r["kind"] == "es"]
    ci_txt = [_ci_text(r["est"], r["lo"], r["hi"], digits) for r in es_rows]
    pooled_txt = _ci_text(est, lo, hi, digits)
    w_txt = [f"{r['weight']:.1f}%" for r in es_rows]
    pooled_label = f"Pooled estimate ({res.method}, {' / '.join(res.s_names)})"
    labels = [("    " + r["label"]) if r["kind"] == "es" else r["label"] for r in rows]

    W = width_cm * CM
    margin = 0.06
    gap = 0.9 * fontsize / 72
    lab_w = max([_text_width(s, False, fontsize) for s in labels] + [_text_width(pooled_label, True, fontsize),
                                                                    _text_width("Study / effect size", True, fontsize)])
    wt_w = max([_text_width(s, False, fontsize) for s in w_txt] + [_text_width("Weight", True, fontsize)])
    if xlabel is None:  # a multilevel fit carries no effect measure: a generic label, as forest() for measure "GEN"
        xlabel = "Estimate (95% CI)"
    ci_head = f"{xlabel.split(' (')[0]} [{100 * float(res.level):g}% CI]"
    ci_w = max([_text_width(s, False, fontsize) for s in ci_txt + [pooled_txt]] + [_text_width(ci_head, True, fontsize)])
    plot_x0 = margin + lab_w + gap + wt_w + 2 * gap
    plot_x1 = W - margin - ci_w - 2 * gap
    if plot_x1 - plot_x0 < 1.5:
        W += 1.5 - (plot_x1 - plot_x0)
        plot_x1 = W - margin - ci_w - 2 * gap
    rh = fontsize * 1.6 / 72
    title_h = (fontsize + 1) * 2.0 / 72 if title else 0.0
    head_h = rh * 1.3
    tick_h = (3.5 + 3.5 + fontsize * 1.2) / 72
    foot_h = tick_h + fontsize * 2.6 / 72 + 3 * rh
    H = margin + title_h + head_h + n * rh + foot_h + margin
    fig = Figure(figsize=(W, H), facecolor="white")
    ax_bottom = margin + foot_h
    ax = fig.add_axes((plot_x0 / W, ax_bottom / H, (plot_x1 - plot_x0) / W, n * rh / H), label="forest")
    ax.set_ylim(n + 0.5, 0.5)
    if xlim is None:
        x0, x1 = _auto_xlim([r["est"] for r in es_rows] + [est], [r["lo"] for r in es_rows] + [r["hi"] for r in es_rows]
                            + [lo, hi], null)
    else:
        x0, x1 = map(float, xlim)
    value_axis(ax, x0, x1, fontsize)
    ln = ax.axvline(null, color="black", linewidth=0.6, zorder=1)
    ln.set_gid("null-line")
    put = row_writer(fig, ax, fontsize)

    head_y = 0.5 - 0.65
    put(margin, head_y, "Study / effect size", bold=True, gid="head-study")
    put(margin + lab_w + gap + wt_w, head_y, "Weight", ha="right", bold=True, gid="head-weight")
    put(W - margin, head_y, ci_head, ha="right", bold=True, gid="head-ci")
    wmax = max(r["weight"] for r in es_rows)
    xs, ys, sizes, segs = [], [], [], []
    j_study, i_es = 0, 0
    for y, (r, lab) in enumerate(zip(rows, labels), start=1):
        if r["kind"] == "study":
            put(margin, y, lab, bold=True, gid=f"study-header-{j_study}")
            j_study += 1
            continue
        put(margin, y, lab, gid=f"label-{i_es}")
        put(margin + lab_w + gap + wt_w, y, w_txt[i_es], ha="right", gid=f"weight-{i_es}")
        put(W - margin, y, ci_txt[i_es].replace("-", MINUS), ha="right", gid=f"ci-{i_es}")
        xs.append(r["est"])
        ys.append(y)
        sizes.append((fontsize * 1.1) ** 2 * r["weight"] / wmax)  # marker area proportional to the weight
        segs.append((max(r["lo"], x0), min(r["hi"], x1), y))
        i_es += 1
    for a, b, y in segs:
        ci, = ax.plot([a, b], [y, y], color="black", linewidth=0.8, solid_capstyle="butt", zorder=3)
        ci.set_gid("study-ci")
    sc = ax.scatter(xs, ys, s=sizes, marker="s", color="#1f4e79", zorder=4, linewidths=0)
    sc.set_gid("study-markers")
    yp = n
    put(margin, yp, pooled_label, bold=True, gid="pooled-label")
    put(W - margin, yp, pooled_txt.replace("-", MINUS), ha="right", bold=True, gid="pooled-ci")
    dia = Polygon([(lo, yp), (est, yp - 0.4), (hi, yp), (est, yp + 0.4)], closed=True, facecolor="black",
                  edgecolor="black", zorder=5)
    dia.set_gid("pooled-diamond")
    ax.add_patch(dia)
    het, eff = _footer(res)
    fav_y = (ax_bottom - tick_h - fontsize * 1.2 / 72) / H
    fx = lambda x: (plot_x0 + (x - x0) / (x1 - x0) * (plot_x1 - plot_x0)) / W  # noqa: E731
    span = 0.02 * (x1 - x0)
    for s, ha, xx, gid in ((favours[0], "right", null - span, "favours-left"),
                           (favours[1], "left", null + span, "favours-right")):
        t = fig.text(fx(xx), fav_y, str(s), ha=ha, va="top", fontsize=fontsize, parse_math=False)
        t.set_gid(gid)
    for m, (s, gid) in enumerate(((het, "heterogeneity"), (eff, "overall-effect"))):
        t = fig.text(margin / W, (ax_bottom - tick_h - fontsize * 2.6 / 72 - (m + 0.5) * rh) / H, s, ha="left",
                     va="center", fontsize=fontsize, parse_math=False)
        t.set_gid(gid)
    if title:
        t = fig.text(margin / W, 1 - (margin + (fontsize + 1) / 72) / H, title, ha="left", va="center",
                     fontsize=fontsize + 1, fontweight="bold", parse_math=False)
        t.set_gid("title")
    return fig
