"""GOSH plot (Olkin, Dahabreh & Trikalinos 2012; metafor 3.8.1 ``plot(gosh(res))`` for an
intercept-only model): the pooled estimate of every subset (x) against its heterogeneity
(y; I2 by default, or Q, H2, tau2), points drawn translucent (alpha ``n^-0.2`` for n subsets,
as metafor), with histograms of both on the margins (``xhist``, ``yhist``).  With ``out``, the
subsets that hold that study are red and the others blue (metafor ``out=``).

Draws the :class:`meta.gosh.GoshResult` it is given; a ``Figure`` without pyplot, under
:func:`meta.plots.style.fixed_style`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from meta.plots.layout import titled_figure
from meta.plots.style import fixed_style

__all__ = ["gosh_plot", "HET"]

#: heterogeneity measures that can go on the y axis: name -> (GoshResult column, axis label)
HET = {"I2": ("i2", "I\u00b2 (%)"), "Q": ("q", "Q"), "H2": ("h2", "H\u00b2"), "tau2": ("tau2", "\u03c4\u00b2")}
_IN, _OUT = "#d7191c", "#2c7bb6"


def _sturges(x: np.ndarray) -> int:
    """Number of histogram classes by Sturges' rule (R ``hist``'s default)."""
    return max(1, math.ceil(math.log2(max(x.size, 1)) + 1))


@fixed_style
def gosh_plot(
    gosh: Any,
    *,
    het: str = "I2",
    out: Any = None,
    xhist: bool = True,
    yhist: bool = True,
    alpha: float | None = None,
    xlabel: str = "Estimate",
    title: str | None = None,
    fontsize: float = 8.0,
    width_cm: float = 12.0,
    height_cm: float = 12.0,
) -> Figure:
    """GOSH plot of a :class:`meta.gosh.GoshResult` (see the module docstring).

    ``het``: ``"I2"`` (default, metafor's), ``"Q"``, ``"H2"`` or ``"tau2"``
    (not for FE fits, as metafor).  ``out``: a study label (from the
    result's ``slab``) whose subsets are coloured apart.  ``alpha``: point
    opacity, default ``n^-0.2``.  Gids: ``gosh-points`` (or
    ``gosh-points-with`` / ``gosh-points-without`` with ``out``),
    ``gosh-xhist``, ``gosh-yhist``; axes labels ``gosh``, ``gosh-xhist``,
    ``gosh-yhist``.
    """
    if not hasattr(gosh, "incl") or not hasattr(gosh, "estimate"):
        raise TypeError(f"gosh_plot: pass the result of meta.gosh.gosh(res); got {type(gosh).__name__}")
    if het not in HET:
        raise ValueError(f"het must be one of {', '.join(map(repr, HET))}; got {het!r}")
    if het == "tau2" and gosh.method == "FE":
        raise ValueError("gosh_plot: cannot plot tau2 for a fixed-effect (FE) fit (metafor stops too)")
    col, ylabel = HET[het]
    x = np.asarray(gosh.estimate, dtype=float)
    y = np.asarray(getattr(gosh, col), dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    incl = np.asarray(gosh.incl)[ok]
    if alpha is None:
        alpha = max(x.size, 1) ** -0.2
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ValueError(f"alpha must be a number in (0, 1]; got {alpha!r}")
    sel = None
    if out is not None:
        slab = list(gosh.slab)
        if out not in slab:
            raise ValueError(f"out must be one of the study labels {slab[:10]}{' ...' if len(slab) > 10 else ''}; got {out!r}")
        sel = incl[:, slab.index(out)]
    fig, W, H, title, top = titled_figure(width_cm, height_cm, fontsize, title)
    left, bottom, right = 0.75, 0.55, 0.15
    gap = 0.06  # inches between the scatter and its margin histograms
    hh = 0.3  # share of the width / height given to the margin histograms (metafor hh = 0.3)
    pw, ph = W - left - right, H - top - bottom
    mw = pw * (1 - hh) if yhist else pw
    mh = ph * (1 - hh) if xhist else ph
    ax = fig.add_axes((left / W, bottom / H, mw / W, mh / H))
    ax.set_label("gosh")
    ax.tick_params(labelsize=fontsize, width=0.6, length=3.5)
    for s in ax.spines.values():
        s.set_linewidth(0.6)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    if sel is None:
        pts = ax.scatter(x, y, s=4, c="black", alpha=alpha, linewidths=0, rasterized=x.size > 5000)
        pts.set_gid("gosh-points")
    else:
        for mask, colour, gid in ((~sel, _OUT, "gosh-points-without"), (sel, _IN, "gosh-points-with")):
            pts = ax.scatter(x[mask], y[mask], s=4, c=colour, alpha=alpha, linewidths=0, rasterized=x.size > 5000)
            pts.set_gid(gid)
    if x.size:
        pad = lambda lo, hi: 0.04 * (hi - lo) if hi > lo else 0.5  # noqa: E731
        ax.set_xlim(x.min() - pad(x.min(), x.max()), x.max() + pad(x.min(), x.max()))
        ax.set_ylim(y.min() - pad(y.min(), y.max()), y.max() + pad(y.min(), y.max()))

    def hist(axh, values, orientation, gid):
        groups = [(values, "black")] if sel is None else [(values[~sel], _OUT), (values[sel], _IN)]
        bins = np.histogram_bin_edges(values, bins=_sturges(values)) if values.size else 10
        for vals, colour in groups:
            _, _, patches = axh.hist(vals, bins=bins, orientation=orientation, color=colour, alpha=0.5,
                                     edgecolor="white", linewidth=0.4)
            for p in patches:
                p.set_gid(gid)
        # counts carry no information beyond the bars' shape: no count axis, as metafor's margins
        for side, spine in axh.spines.items():
            spine.set_visible(side == ("bottom" if orientation == "vertical" else "left"))
            spine.set_linewidth(0.5)
        if orientation == "vertical":
            axh.set_yticks([])
        else:
            axh.set_xticks([])

    if xhist:
        axx = fig.add_axes((left / W, (bottom + mh + gap) / H, mw / W, (ph - mh - gap) / H), sharex=ax)
        axx.set_label("gosh-xhist")
        hist(axx, x, "vertical", "gosh-xhist")
        axx.tick_params(labelbottom=False)
    if yhist:
        axy = fig.add_axes(((left + mw + gap) / W, bottom / H, (pw - mw - gap) / W, mh / H), sharey=ax)
        axy.set_label("gosh-yhist")
        hist(axy, y, "horizontal", "gosh-yhist")
        axy.tick_params(labelleft=False)
    if title:
        fig.text(0.1 / W, 1 - 0.1 / H, title, ha="left", va="top", fontsize=fontsize + 1, fontweight="bold",
                 parse_math=False, gid="title")
    return fig
