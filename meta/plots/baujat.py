"""Baujat plot (Baujat et al. 2002, Stat Med 21:2641-2652; metafor 3.8.1 ``baujat(res)``):
each study's contribution to the heterogeneity statistic Q (x) against its influence on
the pooled result (y), the studies labelled by ``slab``.

The coordinates are those of :meth:`meta.influence.InfluenceResult.baujat`:
``x = (y_i - b)^2 / (v_i + tau2)`` (squared Pearson residual; for a fixed-effect model the
study's term of Q), ``y = (b_(i) - b)^2 / vb_(i)`` (squared change of the estimate when study
i is left out, over the variance of the estimate without it).  A ``Figure`` without pyplot,
drawn under :func:`meta.plots.style.fixed_style`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meta.plots.layout import titled_figure
from meta.plots.style import fixed_style

__all__ = ["baujat_plot"]


def _influence_of(x: Any):
    """The :class:`meta.influence.InfluenceResult` to draw: ``x`` itself, or
    ``influence(x)`` for a PoolResult (the k leave-one-out fits are the
    diagnostic, as metafor's ``baujat(res)`` computes them)."""
    from meta.influence import InfluenceResult, influence  # lazy: plots import no fitting code at import time

    if isinstance(x, InfluenceResult):
        return x
    if hasattr(x, "estimate") and hasattr(x, "tau2"):
        return influence(x)
    raise TypeError(f"baujat_plot: pass a PoolResult or an InfluenceResult; got {type(x).__name__}")


@fixed_style
def baujat_plot(
    res: Any,
    *,
    xlabel: str | None = None,
    ylabel: str = "Influence on Overall Result",
    title: str | None = None,
    grid: bool = True,
    fontsize: float = 8.0,
    width_cm: float = 12.0,
    height_cm: float = 10.0,
) -> Figure:
    """Baujat plot of a fit (metafor ``baujat(res)``; see the module docstring).

    ``res``: a :class:`meta.pool.PoolResult` (its leave-one-out fits are run
    by :func:`meta.influence.influence`) or an
    :class:`meta.influence.InfluenceResult` (drawn as it is).  ``xlabel``:
    default metafor's ``"Contribution to Overall Heterogeneity"`` for an FE
    fit, ``"Squared Pearson Residual"`` otherwise.  Studies are drawn as
    their labels (metafor ``symbol="slab"``) with a small dot at the exact
    point.  Gids: ``baujat-points``, ``baujat-label-<i>`` (0-based study
    position), ``title``; axes label ``baujat``.
    """
    inf = _influence_of(res)
    bj = inf.baujat()
    x, y = bj["x"].to_numpy(dtype=float), bj["y"].to_numpy(dtype=float)
    if xlabel is None:
        xlabel = "Contribution to Overall Heterogeneity" if inf.method == "FE" else "Squared Pearson Residual"
    fig, W, H, title, top = titled_figure(width_cm, height_cm, fontsize, title)
    left, right, bottom = 0.7, 0.2, 0.55
    ax = fig.add_axes((left / W, bottom / H, (W - left - right) / W, (H - top - bottom) / H))
    ax.set_label("baujat")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        pad = lambda lo, hi: 0.06 * (hi - lo) if hi > lo else (0.5 if hi == 0 else 0.06 * abs(hi))  # noqa: E731
        x0, x1 = float(x[ok].min()), float(x[ok].max())
        y0, y1 = float(y[ok].min()), float(y[ok].max())
        ax.set_xlim(x0 - pad(x0, x1), x1 + pad(x0, x1))
        ax.set_ylim(y0 - pad(y0, y1), y1 + pad(y0, y1))
    if grid:
        ax.grid(True, color="lightgray", linewidth=0.5, zorder=0)
    ax.tick_params(labelsize=fontsize, width=0.6, length=3.5)
    for s in ax.spines.values():
        s.set_linewidth(0.6)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    pts = ax.scatter(x[ok], y[ok], s=4, c="black", zorder=3)
    pts.set_gid("baujat-points")
    for i in np.flatnonzero(ok):
        t = ax.annotate(str(inf.slab[i]), (x[i], y[i]), xytext=(0, 3), textcoords="offset points", ha="center",
                        va="bottom", fontsize=fontsize, parse_math=False, zorder=4)
        t.set_gid(f"baujat-label-{i}")
    if title:
        fig.text(0.1 / W, 1 - 0.1 / H, title, ha="left", va="top", fontsize=fontsize + 1, fontweight="bold",
                 parse_math=False, gid="title")
    return fig
