"""Old name of :mod:`meta.plots.robustness` (the robustness plot), kept for one release: import from ``meta.plots.robustness``."""

from meta.plots.robustness import robustness_plot  # noqa: F401

__all__ = ['robustness_plot']
