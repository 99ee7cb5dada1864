"""Text and axes layout shared by the plots of :mod:`meta.plots`: RevMan's wording lines
(Deeks & Higgins 2010), number and CI texts, text measuring and wrapping at print size, the
value axis and its limits.
"""

from __future__ import annotations

import functools
import math
import textwrap
from typing import Any

import matplotlib
import numpy as np

from meta._format import revman_p as format_p  # RevMan 5 wording of p

__all__ = ["MINUS", "CM", "format_p", "heterogeneity_line", "overall_effect_line", "subgroup_differences_line", "value_axis"]


MINUS = "\u2212"  # typographic minus, as matplotlib's tick labels
CM = 1 / 2.54


# --------------------------------------------------------------------------
# RevMan wording (Deeks & Higgins 2010)
# --------------------------------------------------------------------------


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


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.isclose(a, b, rtol=1e-9, atol=1e-12)


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
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
    from matplotlib.font_manager import FontProperties
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
