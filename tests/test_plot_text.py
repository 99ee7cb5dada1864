"""Text in every meta plot is plain text (docs/input-rules.md): no mathtext or TeX
(funnel() parsed its axis labels as mathtext and crashed on save for "$$" or
"$\\undefined$" while forest() drew the same text as typed), no bidi or invisible
control characters (U+202E would reorder what the reader sees), and titles are
wrapped in time linear in their length (a 1000-character title without spaces
took forest() 19.5 s)."""

from __future__ import annotations

import io
import time
import unicodedata

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from meta.bias import trimfill
from meta.plots import cumulative_forest, forest, funnel, robustness_plot
from meta.plots.layout import _text_width, _wrap, plain, plain_figure
from meta.pool import cumulative, pool
from meta.robustness import robustness

Y = [0.1, 0.3, 0.5, 0.2, 0.4, -0.1]
V = [0.04, 0.05, 0.06, 0.03, 0.08, 0.05]
MATH = ["$$", "$\\undefined$", "cost $5 and $6", "\\frac{1}{2} $x^2$", "a_b^c $"]
HIDDEN = ["\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c", "\u200b",
          "\u200d", "\u2060", "\ufeff", "\u00ad", "\x07", "\x1b", "\U000e0041"]


PLOTS = ["forest", "forest-trimfill", "funnel", "robustness", "cumulative"]


def _figure(name: str, texts: list[str]):
    """Plot ``name`` with the ``texts`` (cycled) in each of its text arguments and study labels."""
    a, b, c, d, e, f = [texts[i % len(texts)] for i in range(6)]
    res = pool(Y, V, slab=[f"{texts[i % len(texts)]} {i}" for i in range(len(Y))])
    if name == "forest":
        return forest(res, title=a, xlabel=b, favours=(c, d), group_labels=(e, f))
    if name == "forest-trimfill":
        return forest(trimfill(res, side="left"), title=a, xlabel=b, favours=(c, d))
    if name == "funnel":
        return funnel(res, title=a, xlabel=b, ylabel=c, egger=True)
    if name == "robustness":
        return robustness_plot(robustness(Y, V), title=a, xlabel=b, favours=(c, d))
    return cumulative_forest(cumulative(res), title=a, xlabel=b, favours=(c, d))


def _texts(fig):
    fig.canvas.draw()  # tick labels exist only after a draw
    return [t for t in fig.findobj(Text) if t.get_text()]


@pytest.mark.parametrize("name", PLOTS)
def test_every_text_is_plain_and_saves_in_every_format(name):
    fig = _figure(name, MATH)
    for fmt in ("png", "svg", "pdf"):
        fig.savefig(io.BytesIO(), format=fmt)  # "$$" and "$\undefined$" raised in funnel()
    texts = _texts(fig)
    for m in MATH[:2]:  # the title and the axis label, drawn as typed, not parsed
        assert any(m in t.get_text() for t in texts), (name, m)
    for t in texts:
        if "$" in t.get_text() or "\\" in t.get_text():
            assert not t.get_parse_math() and not t.get_usetex(), (name, t.get_text())


@pytest.mark.parametrize("name", PLOTS)
def test_bidi_and_invisible_controls_never_reach_a_figure(name):
    """Stripped in the plot text layer: what remains is the visible characters in logical order."""
    texts = [f"Smith{ch} 2001{ch}b" for ch in HIDDEN]
    drawn = [t.get_text() for t in _texts(_figure(name, texts))]
    assert any("Smith 2001b" in s for s in drawn), name
    bad = [s for s in drawn if any(unicodedata.category(c) in ("Cf", "Cc") and c != "\n" for c in s)]
    assert bad == [], name


def test_plain_keeps_visible_text_and_newlines():
    assert plain("a\u202eb\u200bc") == "abc"
    assert plain("line 1\nline\t2\u2028x") == "line 1\nline 2 x"
    assert plain("Müller ß 中文 \u05e9\u05dc\u05d5\u05dd $x$") == "Müller ß 中文 \u05e9\u05dc\u05d5\u05dd $x$"
    assert plain(3.5) == "3.5"


def test_plain_figure_covers_text_drawn_by_any_means():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.set_xlabel("$\\undefined$")
    ax.set_title("a\u202eb")
    ax.plot([0, 1], label="$$")
    ax.legend()
    plain_figure(fig)
    fig.savefig(io.BytesIO(), format="png")
    texts = {t.get_text(): t for t in fig.findobj(Text) if t.get_text()}
    assert "ab" in texts and "$$" in texts and "$\\undefined$" in texts
    assert not any(t.get_parse_math() for t in texts.values() if "$" in t.get_text())


@pytest.mark.parametrize("plot", ["forest", "funnel", "robustness"])
def test_a_20000_character_title_without_spaces_is_wrapped_quickly(plot):
    """Wrapping is greedy on measured widths and never measures a string longer than a line
    could hold: linear in the length (the old character-count search was quadratic: 19.5 s
    for 1000 characters in forest())."""
    title = "x" * 19_990 + "yyyyy zzzzz"
    res = pool(Y, V)
    t0 = time.perf_counter()
    if plot == "forest":
        fig = forest(res, title=title)
    elif plot == "funnel":  # a fixed height: a title that leaves no room for the plot is refused
        with pytest.raises(ValueError, match="funnel: the title .* shorten the title or raise height_cm"):
            funnel(res, title=title)
        fig = funnel(res, title=title, height_cm=400)
    else:
        fig = robustness_plot(robustness(Y, V), title=title)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, elapsed
    drawn = max((t.get_text() for t in fig.findobj(Text)), key=len)
    assert drawn.replace("\n", "").replace(" ", "") == title.replace(" ", "") and drawn.count("\n") > 50


def test_wrap_fits_every_line_and_loses_no_word():
    text = ("Effect of hip and knee exercise programmes on pain in patellofemoral pain syndrome: " * 8
            + "a" * 500 + " end")
    width = 3.0
    out = _wrap(text, width, True, 9.0)
    lines = out.split("\n")
    assert all(_text_width(s, True, 9.0) <= width for s in lines)
    assert out.replace("\n", " ").split() != [] and "".join(out.split()) == "".join(text.split())
    # greedy: no line could have taken the next line's first word
    for a, b in zip(lines, lines[1:]):
        if " " in b or len(b) < 400:
            assert _text_width(f"{a} {b.split(' ')[0]}", True, 9.0) > width
    assert _wrap("short title", width, True, 9.0) == "short title"
    assert _wrap("para one\npara two", width, False, 9.0) == "para one\npara two"


def test_wrap_time_grows_linearly():
    """Doubling the length of a spaceless title at most ~doubles the time (generous factor 4)."""
    def cost(n):
        t0 = time.perf_counter()
        _wrap("q" * n + "w", 2.5, False, 8.0 + n * 1e-9)  # a new font size: no cached widths
        return time.perf_counter() - t0

    cost(1000)
    small, large = min(cost(4000) for _ in range(2)), min(cost(16000) for _ in range(2))
    assert large < 4 * 4 * small + 0.05, (small, large)


@pytest.mark.parametrize("name", PLOTS)
def test_every_text_stays_inside_the_figure_at_every_resolution(name):
    """Lines are wrapped and columns placed from text widths measured at 600 dpi; the figure is saved at
    300 dpi and shown at 72-100. Every text must lie inside the figure at each of them (with hinted glyph
    advances the robustness plot's key line ran 2 % past the right edge at 300 dpi)."""
    from meta.plots.style import style
    import matplotlib

    long = ("Shaded: primary analysis with a long caption that has to be wrapped; interval (CrI); thin grey "
            "line: prediction interval. P(dir.): posterior probability that the effect lies in the expected way")
    with matplotlib.rc_context(rc=style()):  # as the plots are drawn and saved (meta.plots.style.fixed_style)
        fig = _figure(name, [long, "Effect (SMD)", "Favours control", "Favours treatment"])
        if not hasattr(fig.canvas, "get_renderer"):
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            FigureCanvasAgg(fig)
        for dpi in (72, 100, 300, 600):
            fig.set_dpi(dpi)
            fig.canvas.draw()
            box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches: everything drawn, tick labels in view only
            tol = 1.0 / dpi  # one pixel
            assert box.x0 >= -tol and box.x1 <= fig.get_figwidth() + tol, (name, dpi, box.x0, box.x1, fig.get_figwidth())
            assert box.y0 >= -tol and box.y1 <= fig.get_figheight() + tol, (name, dpi, box.y0, box.y1, fig.get_figheight())
