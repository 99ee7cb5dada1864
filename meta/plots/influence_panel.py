"""Plot of the influence diagnostics (metafor 3.8.1 ``plot(influence(res))``,
``plot.infl.rma.uni``): one panel per diagnostic -- rstudent, dffits, cook.d, cov.r,
tau2.del, QE.del, hat, weight (4 x 2, as metafor), optionally dfbetas -- each a line
through the studies in order with a point per study, the studies metafor flags as
influential (:attr:`meta.influence.InfluenceResult.is_infl`) filled red, and metafor's
reference lines:

* rstudent: 0 (dashed), ``qnorm(0.025)``, ``qnorm(0.975)`` (dotted); y range at least [-2, 2];
* dffits: 0 (dashed), ``+-3 sqrt(p / (k - p))`` (dotted);
* cook.d: ``qchisq(0.5, p)`` (dotted);
* cov.r: 1 (dashed), logarithmic y axis;
* tau2.del: the fit's tau2 (dashed); QE.del: the fit's Q (dashed);
* hat: ``p / k`` (dashed), ``3 p / k`` (dotted), y from 0; weight: ``100 / k`` (dashed), y from 0;
* dfbetas: 0 (dashed), +-1 (dotted).

A ``Figure`` without pyplot, drawn under :func:`meta.plots.style.fixed_style`; it draws the
InfluenceResult it is given (a PoolResult is first passed to :func:`meta.influence.influence`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from meta import _estimators, _lazy
from meta.plots.baujat import _influence_of
from meta.plots.layout import CM, _text_width, _wrap
from meta.plots.style import fixed_style

__all__ = ["influence_plot", "PANELS"]

#: panel titles as metafor prints them, and the InfluenceResult attribute each one draws
PANELS = (("rstudent", "rstudent"), ("dffits", "dffits"), ("cook.d", "cook_d"), ("cov.r", "cov_r"),
          ("tau2.del", "tau2_del"), ("QE.del", "qe_del"), ("hat", "hat"), ("weight", "weight"))
_FLAG = "#d7191c"


def _reference_lines(name: str, inf) -> list[tuple[float, str]]:
    """metafor's horizontal lines of panel ``name``: (height, "dashed"/"dotted")."""
    k, p = inf.k, inf.p
    z = _estimators.z_crit(0.975)
    if name == "rstudent":
        return [(0.0, "dashed"), (-z, "dotted"), (z, "dotted")]
    if name == "dffits":
        c = 3 * math.sqrt(p / (k - p))
        return [(0.0, "dashed"), (c, "dotted"), (-c, "dotted")]
    if name == "cook.d":
        return [(float(_lazy.special().chdtri(p, 0.5)), "dotted")]
    if name == "cov.r":
        return [(1.0, "dashed")]
    if name == "tau2.del":
        return [(inf.tau2, "dashed")]
    if name == "QE.del":
        return [(inf.qe, "dashed")]
    if name == "hat":
        return [(p / k, "dashed"), (3 * p / k, "dotted")]
    if name == "weight":
        return [(100.0 / k, "dashed")]
    return [(0.0, "dashed"), (1.0, "dotted"), (-1.0, "dotted")]  # dfbetas


@fixed_style
def influence_plot(
    res: Any,
    *,
    dfbetas: bool = False,
    labels: str = "ids",
    logcov: bool = True,
    title: str | None = None,
    fontsize: float = 7.0,
    width_cm: float = 17.0,
    panel_height_cm: float = 4.2,
) -> Figure:
    """Panels of the eight influence diagnostics (metafor ``plot(influence(res))``;
    see the module docstring).

    ``res``: an :class:`meta.influence.InfluenceResult` (drawn as it is) or
    a :class:`meta.pool.PoolResult` (passed to :func:`meta.influence.influence`).
    ``dfbetas=True`` adds a ninth panel for dfbetas (metafor
    ``plotdfbs=TRUE``).  ``labels``: x-axis labels ``"ids"`` (study numbers
    1..k, metafor's ``slab.style=1``) or ``"slab"`` (the study labels,
    ``slab.style=2``).  ``logcov``: logarithmic y axis for cov.r (metafor
    default).  Gids: ``panel-<name>`` on each axes' label (``rstudent``,
    ``dffits``, ``cook.d``, ``cov.r``, ``tau2.del``, ``QE.del``, ``hat``,
    ``weight``, ``dfbetas``), ``<name>-points``, ``<name>-flagged`` (the
    influential studies, red), ``<name>-line``, ``<name>-ref-<j>``.
    """
    if labels not in ("ids", "slab"):
        raise ValueError(f"labels must be 'ids' (1..k) or 'slab' (the study labels); got {labels!r}")
    inf = _influence_of(res)
    panels = list(PANELS) + ([("dfbetas", "dfbetas")] if dfbetas else [])
    ncol = 2
    nrow = math.ceil(len(panels) / ncol)
    W = width_cm * CM
    rh = fontsize * 1.6 / 72
    if title:
        title = _wrap(title, W - 0.2, True, fontsize + 1)
    top_extra = (0.3 + 1.2 * (title.count("\n") + 1)) * rh if title else 0.0
    H = nrow * panel_height_cm * CM + top_extra
    fig = Figure(figsize=(W, H), facecolor="white")
    FigureCanvasAgg(fig)
    x = np.arange(1, inf.k + 1)
    ticklabels = [str(i) for i in x] if labels == "ids" else [str(s) for s in inf.slab]
    flagged = np.asarray(inf.is_infl, dtype=bool)
    cell_w, cell_h = W / ncol, (H - top_extra) / nrow
    tick_room = max(_text_width(t, False, fontsize - 1) for t in ticklabels) if labels == "slab" else fontsize / 72
    left, right, bottom, top = 0.45, 0.15, 0.12 + tick_room, 0.25
    for n, (name, attr) in enumerate(panels):
        r, c = divmod(n, ncol)
        x0 = c * cell_w + left
        y0 = H - top_extra - (r + 1) * cell_h + bottom
        ax = fig.add_axes((x0 / W, y0 / H, (cell_w - left - right) / W, (cell_h - bottom - top) / H))
        ax.set_label(f"panel-{name}")
        z = np.asarray(getattr(inf, attr), dtype=float)
        ok = np.isfinite(z)
        ax.set_title(name, fontsize=fontsize + 1, pad=3)
        ax.set_xlim(0.5, inf.k + 0.5)
        ax.set_xticks(x)
        ax.set_xticklabels(ticklabels, fontsize=fontsize - 1, rotation=0 if labels == "ids" else 90)
        ax.tick_params(axis="y", labelsize=fontsize - 1, width=0.5, length=2.5)
        ax.tick_params(axis="x", width=0.5, length=2.5)
        for s in ax.spines.values():
            s.set_linewidth(0.5)
        refs = _reference_lines(name, inf)
        if ok.any():
            lo, hi = float(z[ok].min()), float(z[ok].max())
            if name == "rstudent":
                lo, hi = min(lo, -2.0), max(hi, 2.0)
            if name in ("hat", "weight"):
                lo = 0.0
            if name == "cov.r" and logcov and lo > 0:
                ax.set_yscale("log")
                span = (hi / lo) ** 0.05 if hi > lo else 1.1
                ax.set_ylim(lo / span, hi * span)
                ticks = [t for t in MaxNLocator(4).tick_values(lo, hi) if lo / span <= t <= hi * span and t > 0]
                ax.yaxis.set_minor_locator(NullLocator())
                ax.set_yticks(ticks)
                ax.set_yticklabels([f"{t:g}" for t in ticks], fontsize=fontsize - 1)
            else:
                pad = 0.05 * (hi - lo) if hi > lo else (0.1 * abs(hi) if hi else 0.5)
                ax.set_ylim(lo - pad, hi + pad)
        for j, (h, style) in enumerate(refs):
            ln = ax.axhline(h, color="black", linewidth=0.6, linestyle=(0, (4, 2)) if style == "dashed" else (0, (1, 2)),
                            zorder=1)
            ln.set_gid(f"{name}-ref-{j}")
        (line,) = ax.plot(x[ok], z[ok], color="black", linewidth=0.7, zorder=2)
        line.set_gid(f"{name}-line")
        pts = ax.scatter(x[ok], z[ok], s=14, c="black", edgecolors="black", linewidths=0.5, zorder=3)
        pts.set_gid(f"{name}-points")
        sel = ok & flagged
        red = ax.scatter(x[sel], z[sel], s=14, c=_FLAG, edgecolors="black", linewidths=0.5, zorder=4)
        red.set_gid(f"{name}-flagged")
    if title:
        fig.text(0.1 / W, 1 - 0.1 / H, title, ha="left", va="top", fontsize=fontsize + 1, fontweight="bold",
                 parse_math=False, gid="title")
    return fig
