"""One fixed matplotlib style for :mod:`meta.plots`, whatever the user's matplotlibrc says.

matplotlib reads ``matplotlibrc`` from the working folder, ``$MATPLOTLIBRC`` or
the user's config folder, and a user's ``savefig.bbox: tight``, serif font,
``lines.linewidth`` or ``axes.formatter.use_locale`` would otherwise change our
forest and funnel plots (their size, fonts and numbers). :func:`fixed_style`
draws and saves under :func:`style`: matplotlib's own defaults
(``matplotlib.rcParamsDefault``, the shipped matplotlibrc) plus the few settings
below, inside :func:`matplotlib.rc_context`, so the user's rcParams are back
in force when our function returns.

Settings that are not about how a figure looks (backend, interactive mode,
toolbar, web agg, ``savefig.directory``, ...) are left as the user has them.
"""

from __future__ import annotations

import functools
import warnings

import matplotlib

__all__ = ["OUR_RC", "style", "fixed_style"]

#: our settings on top of matplotlib's defaults (most restate a default, so that nobody's rc file can change them)
OUR_RC = {
    "font.family": ["sans-serif"],
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: the same font on every machine
    "axes.formatter.use_locale": False,  # tick labels 0.5, never 0,5, whatever the locale
    "axes.unicode_minus": True,
    "savefig.bbox": None,  # figures keep their own size (a 17 cm forest plot prints at 17 cm)
    "savefig.pad_inches": 0.1,
    "savefig.transparent": False,
    "text.usetex": False,
    "pdf.fonttype": 42,  # TrueType in PDF/PS: text stays editable
    "ps.fonttype": 42,
    "svg.fonttype": "path",
}

# rcParams that say how matplotlib runs, not how a figure looks: never touched
_NOT_STYLE = {"backend", "backend_fallback", "interactive", "toolbar", "timezone", "figure.max_open_warning",
              "figure.raise_window", "figure.hooks", "savefig.directory", "tk.window_focus", "docstring.hardcopy",
              "date.epoch"}


@functools.lru_cache(maxsize=1)
def _style_items() -> tuple:
    rc = {k: v for k, v in matplotlib.rcParamsDefault.items() if k not in _NOT_STYLE and not k.startswith("webagg.")}
    rc.update(OUR_RC)
    return tuple(rc.items())


def style() -> dict:
    """The rcParams our figures are drawn and saved with (a fresh dict)."""
    return dict(_style_items())


def fixed_style(fn):
    """Decorator: run ``fn`` under :func:`style` (``matplotlib.rc_context``); the caller's rcParams are restored after."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # fn's warnings (stacklevel=2 there) would name this wrapper as their place: they are recorded and
        # warned again from here once the caller's warning filters are back, so they name the caller's line
        caught: list = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with matplotlib.rc_context(rc=style()):
                    return fn(*args, **kwargs)
        finally:
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=2)

    return wrapper
