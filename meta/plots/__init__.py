"""Forest, funnel, robustness and cumulative plots fit for a journal page, and their files.

``forest()`` draws a RevMan-style forest plot (Deeks & Higgins 2010,
"Statistical algorithms in Review Manager 5"; Cochrane Handbook ch. 10): one
row per study with its numbers, a square whose *area* is proportional to the
study's weight, whiskers for its confidence interval (arrows where the axis
clips them), a diamond for each pooled estimate, a bar for the prediction
interval (Higgins, Thompson & Spiegelhalter 2009; Riley, Higgins & Deeks 2011),
and the heterogeneity / overall-effect / subgroup-difference lines in RevMan's
wording. ``funnel()`` draws a funnel plot (Sterne & Egger 2001) with optional
contour enhancement (Peters et al. 2008), Egger's regression line (Egger et al.
1997, as metafor ``regtest(model="lm")``) and trim-and-fill's filled studies
(Duval & Tweedie 2000) drawn hollow. ``save()`` writes PNG/SVG/PDF.

One module per job, none named like a public function (a submodule imported under the
function's name would shadow it); everything public is importable from ``meta.plots``:

* :mod:`meta.plots.forest_plot` - :func:`forest`;
* :mod:`meta.plots.forest_multilevel` - :func:`forest_mv` (a multilevel model: effect sizes grouped by study;
  ``forest(res)`` of a :class:`meta.multilevel.MultilevelResult` calls it);
* :mod:`meta.plots.funnel_plot` - :func:`funnel`;
* :mod:`meta.plots.robustness` - :func:`robustness_plot` (one row per method of a
  :class:`meta.robustness.RobustnessResult`);
* :mod:`meta.plots.cumulative` - :func:`cumulative_forest` (metafor ``forest(cumul(res))``);
* :mod:`meta.plots.caterpillar` - above ``MAX_ROWS`` (60) rows, the forest-type plots' figure: a
  caterpillar plot, or for a cumulative meta-analysis the running estimate (their ``max_rows=``);
* :mod:`meta.plots.bubble_plot` - :func:`regplot` (metafor ``regplot``, a meta-regression);
* :mod:`meta.plots.baujat` - :func:`baujat_plot`; :mod:`meta.plots.influence_panel` -
  :func:`influence_plot`; :mod:`meta.plots.gosh_scatter` - :func:`gosh_plot`;
* :mod:`meta.plots.layout` - the text and axes layout they share (RevMan's wording lines,
  number texts, text measuring and wrapping, the value axis);
* :mod:`meta.plots.style` - the fixed matplotlib style every figure is drawn and saved under;
* :mod:`meta.plots.files` - :func:`save` and :func:`draw_and_save` (byte-reproducible files,
  the figure cache of :mod:`meta._figure_cache`).

Nothing here pools: the plots take the results of :mod:`meta.pool` and
:mod:`meta.bias` as input. Everything is drawn on :class:`matplotlib.figure.Figure`
objects created without :mod:`matplotlib.pyplot`, so no global figure state is
touched (no figure is left open in pyplot's registry).

Why not the ``forestplot`` package: it draws estimate-and-CI rows well, but has
no pooled diamond, marker sizes that cannot vary by row (one ``markersize`` for
all), no prediction interval, and it draws through ``pyplot`` global state
(``plt.gcf()``, ``plt.plot``) and measures text with the current figure. Adding
diamonds, weights and arrows on top of its axes would mean fighting its layout,
so the forest plot is drawn directly with matplotlib.

References
----------
Deeks JJ, Higgins JPT (2010). Statistical algorithms in Review Manager 5.
Egger M, Davey Smith G, Schneider M, Minder C (1997). BMJ 315:629-634.
Higgins JPT, Thompson SG, Spiegelhalter DJ (2009). J R Stat Soc A 172:137-159.
Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L (2008). Contour-enhanced
meta-analysis funnel plots help distinguish publication bias from other causes
of asymmetry. J Clin Epidemiol 61:991-996.
Sterne JAC, Egger M (2001). Funnel plots for detecting bias in meta-analysis.
J Clin Epidemiol 54:1046-1055.
Duval S, Tweedie R (2000). Biometrics 56:455-463.
"""


import importlib

#: public name -> the module of meta.plots that defines it; imported on first use, so that a
#: caller that only needs draw_and_save's cache (or one plot) does not import every plot module
#: and matplotlib's drawing machinery with it
_WHERE = {
    "baujat_plot": "baujat", "cumulative_forest": "cumulative", "draw_and_save": "files", "save": "files",
    "forest": "forest_plot", "funnel": "funnel_plot", "gosh_plot": "gosh_scatter", "influence_plot": "influence_panel",
    "CM": "layout", "MINUS": "layout", "format_p": "layout", "heterogeneity_line": "layout",
    "overall_effect_line": "layout", "subgroup_differences_line": "layout", "value_axis": "layout",
    "robustness_plot": "robustness", "forest_mv": "forest_multilevel", "regplot": "bubble_plot",
}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"meta.plots.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'meta.plots' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = ["forest", "forest_mv", "funnel", "regplot", "robustness_plot", "cumulative_forest", "baujat_plot", "influence_plot", "gosh_plot", "save", "draw_and_save", "format_p",
           "heterogeneity_line", "overall_effect_line", "subgroup_differences_line", "value_axis", "CM", "MINUS"]
