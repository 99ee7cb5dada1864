"""Old name of :mod:`meta.plots.style` (the fixed matplotlib style of meta.plots), kept for one release: import from ``meta.plots.style``."""

from meta.plots.style import OUR_RC, style, fixed_style, light_pdf_fonts  # noqa: F401

__all__ = ['OUR_RC', 'style', 'fixed_style', 'light_pdf_fonts']
