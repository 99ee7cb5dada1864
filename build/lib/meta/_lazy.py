"""Heavy modules imported on first use, in one place.

``import meta.pool`` should cost little more than ``import numpy, pandas``:
scipy's subpackages are expensive to import (``scipy.stats`` ~0.35 s,
``scipy.special`` ~0.16 s through scipy's array-API layer, ``scipy.optimize``
~0.07 s on our 2-core VM; measurements in ``benchmarks/README.md``), and most
calls never need them (the default ``pool()`` uses only closed forms with
:mod:`math`, see :mod:`meta._formulas`).  Library modules therefore call
``_lazy.special()``, ``_lazy.stats()`` or ``_lazy.optimize()`` where they need
the module; each returns the cached module (after the first call, a dictionary
look-up).  ``tests/test_imports.py`` checks that ``import meta.pool`` imports
none of them.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["special", "stats", "optimize"]


def _module(name: str):
    mod = sys.modules.get(name)
    return mod if mod is not None else importlib.import_module(name)


def special():
    """:mod:`scipy.special`, imported on first use."""
    return _module("scipy.special")


def stats():
    """:mod:`scipy.stats`, imported on first use."""
    return _module("scipy.stats")


def optimize():
    """:mod:`scipy.optimize`, imported on first use."""
    return _module("scipy.optimize")
