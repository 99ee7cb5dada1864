"""The bubble plot of a meta-regression (metafor 3.8.1 ``regplot``): studies sized by weight, the fitted line, its CI and PI bands.

Drawn from what :class:`meta.regression.RegressionResult` holds (no refit):
the observed outcomes ``yi`` against one moderator, the predicted average
outcome ``x'beta`` over the moderator's range (other moderators held at their
means, as metafor), the confidence band and, with ``pi=True``, the
prediction band of :func:`meta.regression.predict`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from meta.plots.layout import CM, _wrap
from meta.plots.style import fixed_style

__all__ = ["regplot"]

_BASE_PT = 5.0  # marker diameter (points) at metafor's cex = 1
_PLIM = (0.5, 3.0)  # metafor's plim: smallest and largest cex


def _mod_position(res: Any, mod) -> int:
    """Column of ``res.X`` drawn on the x-axis: a coefficient name, or its 1-based position (metafor ``mod=``)."""
    names = list(res.names)
    mods = [j for j, n in enumerate(names) if not (res.int_incl and j == 0)]
    if mod is None:
        if len(mods) != 1:
            raise ValueError(f"regplot: the model has {len(mods)} moderator coefficients {[names[j] for j in mods]}; "
                             "choose one with mod= (a name or its 1-based position, as metafor)")
        return mods[0]
    if isinstance(mod, str):
        if mod not in names:
            raise ValueError(f"regplot: mod={mod!r} is not a coefficient of the model; coefficients: {names}")
        j = names.index(mod)
    elif isinstance(mod, (int, np.integer)) and not isinstance(mod, bool) and 1 <= mod <= len(names):
        j = int(mod) - 1
    else:
        raise ValueError(f"regplot: mod must be a coefficient name or a position 1..{len(names)}; got {mod!r}")
    if j not in mods:
        raise ValueError(f"regplot: mod={mod!r} is the intercept; choose a moderator")
    return j


def point_sizes(weights: np.ndarray) -> np.ndarray:
    """metafor ``regplot``'s default point sizes (cex, i.e. diameter): ``sqrt(weights)`` rescaled
    linearly to ``[0.5, 3]`` (all 1 when the weights are equal)."""
    wi = np.sqrt(np.asarray(weights, dtype=float))
    rng = wi.max() - wi.min()
    if rng <= np.sqrt(np.finfo(float).eps):
        return np.ones_like(wi)
    return (wi - wi.min()) / rng * (_PLIM[1] - _PLIM[0]) + _PLIM[0]


@fixed_style
def regplot(
    res: Any,
    mod=None,
    *,
    ci: bool = True,
    pi: bool = False,
    shade: bool = True,
    refline: float | None = None,
    transf: Callable | None = None,
    xlabel: str | None = None,
    ylabel: str = "Observed outcome",
    title: str | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    level: float | None = None,
    fontsize: float = 8.0,
    width_cm: float = 12.0,
    height_cm: float = 9.0,
) -> Figure:
    """Bubble plot of a meta-regression (metafor 3.8.1 ``regplot(res, mod=)``).

    ``res``: a :class:`meta.regression.RegressionResult`.  ``mod``: the
    moderator on the x-axis (coefficient name or 1-based position, as
    metafor; needed when the model has several).  Points: the studies'
    ``yi``, diameter from ``sqrt(weight)`` rescaled to 0.5-3 times the base
    size (metafor's default ``psize``), the largest drawn first.  Line: the
    predicted average outcome over the moderator's range extended by 4% on
    each side, other columns of ``X`` at their means (metafor); ``ci`` /
    ``pi``: the confidence / prediction band (dashed / dotted lines; shaded
    grey 85% / 95% with ``shade``).  ``transf``: a function applied to the
    outcomes and bands (e.g. ``numpy.exp`` for log risk ratios).
    ``refline``: a horizontal reference line.  ``level``: of the bands
    (default the fit's).

    Artist gids: ``studies``, ``regression-line``, ``ci-band``, ``ci-lines``,
    ``pi-band``, ``pi-lines``, ``refline``.
    """
    from meta.regression import RegressionResult, predict

    if not isinstance(res, RegressionResult):
        raise TypeError(f"regplot needs a RegressionResult from meta_regression(); got {type(res).__name__}")
    j = _mod_position(res, mod)
    X = np.asarray(res.X)
    xi = X[:, j]
    lo, hi = float(xi.min()), float(xi.max())
    pad = 0.04 * (hi - lo)
    xs = np.linspace(lo - pad, hi + pad, 200)
    xnew = np.tile(X.mean(axis=0), (xs.size, 1))
    xnew[:, j] = xs
    if res.int_incl:
        xnew = xnew[:, 1:]
    band = predict(res, xnew, level=level)
    f = transf if transf is not None else (lambda a: a)
    yi = f(np.asarray(res.yi))
    pred, cil, ciu = f(band["pred"].to_numpy()), f(band["ci_lb"].to_numpy()), f(band["ci_ub"].to_numpy())
    pil, piu = f(band["pi_lb"].to_numpy()), f(band["pi_ub"].to_numpy())
    cil, ciu = np.minimum(cil, ciu), np.maximum(cil, ciu)
    pil, piu = np.minimum(pil, piu), np.maximum(pil, piu)

    W, H = width_cm * CM, height_cm * CM
    fig = Figure(figsize=(W, H), facecolor="white")
    FigureCanvasAgg(fig)
    top = (0.45 if title else 0.15)
    left, right, bottom = 0.75, 0.2, 0.55
    ax = fig.add_axes((left / W, bottom / H, (W - left - right) / W, (H - top - bottom) / H))
    ax.tick_params(labelsize=fontsize, width=0.6, length=3.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if pi:
        if shade:
            ax.fill_between(xs, pil, piu, color="0.95", linewidth=0, zorder=1).set_gid("pi-band")
        lines = ax.plot(xs, pil, xs, piu, color="black", linestyle=":", linewidth=0.8, zorder=2)
        for ln in lines:
            ln.set_gid("pi-lines")
    if ci:
        if shade:
            ax.fill_between(xs, cil, ciu, color="0.85", linewidth=0, zorder=1.5).set_gid("ci-band")
        lines = ax.plot(xs, cil, xs, ciu, color="black", linestyle="--", linewidth=0.8, zorder=2)
        for ln in lines:
            ln.set_gid("ci-lines")
    if refline is not None:
        ax.axhline(refline, color="0.4", linestyle=":", linewidth=0.8, zorder=1.8).set_gid("refline")
    (line,) = ax.plot(xs, pred, color="black", linewidth=1.2, zorder=3)
    line.set_gid("regression-line")
    size = point_sizes(res.weights) * _BASE_PT
    order = np.argsort(-size, kind="stable")
    pts = ax.scatter(xi[order], yi[order], s=size[order] ** 2, facecolor="darkgray", edgecolor="black", linewidth=0.6,
                     zorder=4)
    pts.set_gid("studies")
    ax.set_xlim(xlim if xlim is not None else (xs[0], xs[-1]))
    if ylim is not None:
        ax.set_ylim(ylim)
    ax.set_xlabel(xlabel if xlabel is not None else str(res.names[j]), fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    if title:
        fig.text(0.1 / W, 1 - 0.1 / H, _wrap(title, W - 0.2, True, fontsize + 1), ha="left", va="top",
                 fontsize=fontsize + 1, fontweight="bold")
    return fig
