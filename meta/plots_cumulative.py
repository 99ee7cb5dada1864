"""Old name of :mod:`meta.plots.cumulative` (the cumulative forest plot), kept for one release: import from ``meta.plots.cumulative``."""

from meta.plots.cumulative import cumulative_forest, step_labels  # noqa: F401

__all__ = ['cumulative_forest', 'step_labels']
