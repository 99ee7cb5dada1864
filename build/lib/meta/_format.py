"""Number and p-value formatting in one place, one function per house style.

* metafor style (:func:`metafor_num`, :func:`metafor_p`): ``print.rma`` -- four
  decimals, ``p < .0001`` printed as ``<.0001``, ``NA`` for a missing value
  (Viechtbauer 2010, metafor's ``formatC`` settings); used by ``meta.pool`` and
  ``meta.bias`` in their printed summaries.
* RevMan style (:func:`revman_p`): ``P < 0.00001``; two decimals from 0.01 up;
  below 0.01 one significant digit (Deeks & Higgins 2010, Statistical
  algorithms in Review Manager 5); used on the forest plots (``meta.plots``).
* report style (:func:`report_num`, :func:`report_p`, :func:`report_p_eq`): two
  decimals, ``p`` with three decimals or ``<0.001``, empty for a missing value;
  used in the review's ``report.md``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["metafor_num", "metafor_p", "revman_p", "report_num", "report_p", "report_p_eq"]


# --------------------------------------------------------------------------- metafor (print.rma)


def metafor_num(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals, ``NA`` when not finite (metafor's printout)."""
    return "NA" if not np.isfinite(x) else f"{x:.{digits}f}"


def metafor_p(p: float) -> str:
    """p as metafor prints it: ``<.0001`` below 1e-4, else four decimals; ``NA`` when not finite."""
    if not np.isfinite(p):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


# --------------------------------------------------------------------------- RevMan 5


def revman_p(p: float) -> str:
    """P value as RevMan 5 prints it: ``P < 0.00001``; two decimals from 0.01
    up (``P = 0.04``); below 0.01 one significant digit (``P = 0.004``)."""
    if p is None or not np.isfinite(p):
        return "P not estimable"
    if p < 0.00001:
        return "P < 0.00001"
    if p >= 0.01:
        return f"P = {p:.2f}"
    return f"P = {float(f'{p:.1g}'):.{_decimals_1sig(p)}f}"


def _decimals_1sig(p: float) -> int:
    rounded = float(f"{p:.1g}")
    return max(0, -int(math.floor(math.log10(rounded))))


# --------------------------------------------------------------------------- report.md


def report_num(x, nd: int = 2) -> str:
    """``x`` with ``nd`` decimals; empty for None, NaN or infinity; non-numbers as text."""
    if x is None:
        return ""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(x):
        return ""
    return f"{x:.{nd}f}"


def report_p(p) -> str:
    """``0.012`` or ``<0.001`` (table cells); empty when missing."""
    if p is None or not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def report_p_eq(p) -> str:
    """``p = 0.012`` or ``p < 0.001`` for running text."""
    t = report_p(p)
    return "p " + (t.replace("<", "< ") if t.startswith("<") else f"= {t}")
