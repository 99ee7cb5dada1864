"""Text and axes layout shared by the plots of :mod:`meta.plots`: RevMan's wording lines
(Deeks & Higgins 2010), number and CI texts, text measuring and wrapping at print size, the
value axis and its limits, and the plain-text rule of every figure (:func:`plain`,
:func:`plain_figure`).

Text in a figure is plain text: never mathtext or TeX (a label ``"$$"`` or
``"$\\undefined$"`` is drawn as typed, not parsed, so it cannot fail at save), and
without invisible format or control characters (bidi overrides such as U+202E,
zero-width characters, soft hyphens): they are stripped, so what the reader sees is
the visible characters in their logical order.  Wrapping is greedy on measured widths,
linear in the length of the text.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from typing import Any

import matplotlib
import numpy as np

from meta._format import revman_p as format_p  # RevMan 5 wording of p
from meta._measures import measure_of

__all__ = ["MINUS", "CM", "plain", "plain_figure", "format_p", "heterogeneity_line", "overall_effect_line", "subgroup_differences_line", "value_axis"]


MINUS = "\u2212"  # typographic minus, as matplotlib's tick labels
CM = 1 / 2.54


# --------------------------------------------------------------------------
# plain text
# --------------------------------------------------------------------------

_KEEP = {"\n"}
_AS_SPACE = {"\t", "\u2028", "\u2029"}  # tab, line and paragraph separators: a space


def plain(text: Any) -> str:
    """``str(text)`` as drawn in a figure: characters of Unicode category Cf
    (format: the bidi embeddings, overrides and isolates U+202A-U+202E and
    U+2066-U+2069, the marks U+200E/U+200F/U+061C, zero-width space, joiners,
    word joiner, soft hyphen, U+FEFF, tag characters) and Cc (control
    characters other than the newline) are removed; tab and the Unicode
    line/paragraph separators become a space.  matplotlib implements no
    bidirectional algorithm, so such characters would show as boxes or, in a
    viewer of the SVG/PDF text, reorder what the reader sees."""
    s = str(text)
    if s.isascii() and s.isprintable():
        return s
    out = []
    for ch in s:
        if ch in _KEEP:
            out.append(ch)
        elif ch in _AS_SPACE:
            out.append(" ")
        elif unicodedata.category(ch) not in ("Cf", "Cc"):
            out.append(ch)
    return "".join(out)


def plain_figure(fig: "Figure") -> "Figure":
    """Make every text artist of ``fig`` plain text: mathtext parsing and TeX
    off (``parse_math=False``, ``usetex=False``) and its string passed
    through :func:`plain`.  Every plot of :mod:`meta.plots` returns its
    figure through this, whatever drew the text (``ax.text``, axis labels,
    legend entries, tick labels)."""
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        t.set_usetex(False)
        t.set_parse_math(False)
        s = t.get_text()
        c = plain(s)
        if c != s:
            t.set_text(c)
    return fig


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
    tau = "" if str(result.method).upper() in _EQUAL_EFFECTS else f"Tau\u00b2 = {result.tau2:.2f}; "
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


_EQUAL_EFFECTS = ("FE", "MH", "PETO")  # equal-effects fits: inverse variance, Mantel-Haenszel, Peto


def _method_text(result: Any, with_level: bool = True) -> str:
    method = str(result.method).upper()
    level = f"{100 * float(result.level):g}% CI"
    if method in _EQUAL_EFFECTS:
        kind = {"FE": "IV", "MH": "M-H", "PETO": "Peto"}[method] + ", Fixed"  # RevMan 5 wording
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
    """Width in inches of one line of ``s`` (as :func:`plain` draws it) in the current default font."""
    rc = matplotlib.rcParams
    font = (tuple(rc["font.family"]), tuple(rc["font.sans-serif"]), tuple(rc["font.serif"]), rc["font.stretch"],
            rc["text.hinting"])
    return _text_width_cached(plain(s), bold, fontsize, font)


@functools.lru_cache(maxsize=4096)
def _text_width_cached(s: str, bold: bool, fontsize: float, font: tuple) -> float:
    from matplotlib.font_manager import FontProperties
    renderer, dpi = _measuring_renderer()
    prop = FontProperties(size=fontsize, weight="bold" if bold else "normal")
    w, _, _ = renderer.get_text_width_height_descent(s, prop, ismath=False)
    return w / dpi


_NARROW = ".'il|!"  # the narrowest glyphs of a text face: no line holds more than width / their width


def _cut(word: str, width_in: float, fits, measure) -> list[str]:
    """``word`` (wider than a line) cut into the longest pieces that ``fits``,
    at least one character each: per piece a binary search over its length,
    bounded by four times the length the word's mean character width
    (``measure`` of its first 256 characters) allows, so the work is linear
    in the word's length."""
    pieces = []
    i, n = 0, len(word)
    sample = word[: min(n, 256)]
    per_char = max(measure(sample), 1e-9) / len(sample)
    cap0 = 4 * max(1, int(width_in / per_char)) + 8
    while i < n:
        lo, hi = 1, min(n - i, cap0)  # the longest fitting length lies in [1, hi] (1 even if nothing fits)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(word[i : i + mid]):
                lo = mid
            else:
                hi = mid - 1
        pieces.append(word[i : i + lo])
        i += lo
    return pieces


def _wrap(text: str, width_in: float, bold: bool, fontsize: float) -> str:
    """Break :func:`plain` ``text`` at spaces so that no line is wider than
    ``width_in`` inches (greedy: each line takes as many words as fit; a word
    wider than a line is cut where it must be, :func:`_cut`).  Each paragraph
    (``\\n``) is wrapped on its own.  A string longer than four times the
    number of the narrowest glyphs (:data:`_NARROW`) that fit a line is not
    measured at all (it cannot fit), so every measured string is short and the
    work is linear in the length of the text."""

    def measure(s: str) -> float:
        return _text_width(s, bold, fontsize)

    limit = 4 * int(width_in / max(min(measure(c) for c in _NARROW), 1e-9)) + 8

    def fits(s: str) -> bool:
        return len(s) <= limit and measure(s) <= width_in

    out = []
    for para in plain(text).split("\n"):
        if fits(para):
            out.append(para)
            continue
        line = ""
        for word in para.split():
            cand = f"{line} {word}" if line else word
            if fits(cand):
                line = cand
                continue
            if line:
                out.append(line)
                line = ""
            if fits(word):
                line = word
                continue
            *full, line = _cut(word, width_in, fits, measure)
            out.extend(full)
        out.append(line)
    return "\n".join(out)


# --------------------------------------------------------------------------
# the measure: labels and back-transformation (metafor forest/funnel transf=, atransf=)
# --------------------------------------------------------------------------


def _identity(x):
    return x


def measure_display(result: Any, transf: Any = None, atransf: Any = None) -> dict:
    """How a plot shows ``result``'s measure (:data:`meta._measures.MEASURES`).

    ``transf``: a function applied to every value before drawing (metafor
    ``transf=``; the axis is then on the transformed scale); ``atransf``: a function
    applied only to the axis tick labels and the text columns (metafor
    ``atransf=``; positions stay on the analysis scale).  ``None`` (default): the
    measure's own display -- OR, RR, PETO, ROM with ``atransf=exp`` (a log axis
    labelled in ratios, as RevMan), ZCOR with ``transf=tanh`` (correlations),
    others untransformed; ``False``: no transformation.  Returns ``measure``,
    ``tv`` (values), ``av`` (labels), ``header`` (table column name) and
    ``label`` (axis label, metafor ``.setlab`` wording).
    """
    m = measure_of(getattr(result, "measure", None))
    for name, f in (("transf", transf), ("atransf", atransf)):
        if f is not None and f is not False and not callable(f):
            raise TypeError(f"{name} must be a function (e.g. numpy.exp), False or None; got {type(f).__name__}")
    if transf is None and atransf is None:
        transf = m.func if m.display == "transf" else False
        atransf = m.func if m.display == "atransf" else False
    tv = transf if callable(transf) else _identity
    av = atransf if callable(atransf) else _identity
    if callable(transf) or callable(atransf):
        mine = transf is m.func or atransf is m.func
        back = m.back if (mine and m.back) else f"Transformed {m.label}"
        header = back
        label = back + (" (log scale)" if callable(atransf) and atransf is np.exp and mine else "")
    else:
        header = "Estimate" if m.name == "GEN" else m.short
        label = m.label
    return {"measure": m, "tv": tv, "av": av, "header": header, "label": label,
            "log_axis": callable(atransf) and atransf is np.exp, "atransf": callable(atransf)}


_RATIO_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def ratio_ticks(x0: float, x1: float) -> list:
    """Tick positions (log scale) at 1-2-5 ratios inside ``x0..x1``, at most seven
    (every other 1-2-5 step, or only powers of ten, when more would fit)."""
    cand = [math.log(r) for r in _RATIO_TICKS if x0 - 1e-12 <= math.log(r) <= x1 + 1e-12]
    if len(cand) > 7:
        tens = [math.log(r) for r in _RATIO_TICKS if x0 - 1e-12 <= math.log(r) <= x1 + 1e-12
                and abs(math.log10(r) - round(math.log10(r))) < 1e-12]
        cand = tens if len(tens) >= 3 else cand[::2]
    return cand


def ratio_label(v: float) -> str:
    """A ratio tick label: ``0.5``, ``1``, ``2``, ``0.01`` (no trailing zeros)."""
    s = f"{v:.3g}"
    return s


_INVERSE = {np.exp: np.log, np.tanh: np.arctanh}


def label_ticks(av, x0: float, x1: float) -> tuple[list, list] | None:
    """Ticks at round values of ``av`` (``numpy.exp``, ``numpy.tanh``) inside ``x0..x1``:
    (positions on the analysis scale, labels); None for another function."""
    inv = _INVERSE.get(av)
    if inv is None:
        return None
    from matplotlib.ticker import MaxNLocator

    with np.errstate(all="ignore"):
        lo, hi = float(av(x0)), float(av(x1))
        vals = [v for v in MaxNLocator(6).tick_values(lo, hi) if lo - 1e-12 <= v <= hi + 1e-12]
        pos = [float(inv(v)) for v in vals]
    ok = [(p, v) for p, v in zip(pos, vals) if np.isfinite(p)]
    return [p for p, _ in ok], [_num(v, 2) for _, v in ok]


def titled_figure(width_cm: float, height_cm: float, fontsize: float, title: str | None):
    """A white ``Figure`` of ``width_cm`` x ``height_cm`` with its Agg canvas, ``title`` wrapped to the
    figure's width, and ``top``: the inches the title takes above the axes.  Returns
    ``(fig, W, H, title, top)`` with ``W``, ``H`` in inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    W, H = width_cm * CM, height_cm * CM
    fig = Figure(figsize=(W, H), facecolor="white")
    FigureCanvasAgg(fig)
    rh = fontsize * 1.6 / 72
    if title:
        title = _wrap(title, W - 0.2, True, fontsize + 1)
    top = 0.15 + ((0.3 + 1.2 * (title.count("\n") + 1)) * rh if title else 0)
    return fig, W, H, title, top


def refuse_regression(result, who: str) -> None:
    """A meta-regression fit (:class:`meta.regression.RegressionResult`) has no single pooled
    estimate: say what draws it instead of failing on a missing attribute (a multilevel fit, which has
    ``sigma2``, is drawn by :func:`meta.plots.forest_mv`)."""
    if hasattr(result, "QM") and hasattr(result, "beta") and not hasattr(result, "estimate") and not hasattr(result, "sigma2"):
        raise TypeError(
            f"{who}: a meta-regression has no single pooled estimate to draw; use meta.plots.regplot(res) "
            f"(the bubble plot), or {who}(pool(res.yi, res.vi, slab=res.slab)) for the studies without moderators"
        )


def row_writer(fig, ax, fontsize: float):
    """``put(x_in, y, s, *, ha="left", bold=False, gid=None)``: plain text in a table row of ``fig``,
    ``x_in`` in inches from the figure's left edge and ``y`` in the data units of ``ax`` (the row
    positions), as the forest-type plots lay out their columns. Returns the ``Text``."""
    from matplotlib.transforms import blended_transform_factory

    rows_tr = blended_transform_factory(fig.dpi_scale_trans, ax.transData)

    def put(x_in, y, s, *, ha="left", bold=False, gid=None):
        t = fig.text(x_in, y, s, transform=rows_tr, ha=ha, va="center", fontsize=fontsize,
                     fontweight="bold" if bold else "normal", parse_math=False)
        if gid:
            t.set_gid(gid)
        return t

    return put
