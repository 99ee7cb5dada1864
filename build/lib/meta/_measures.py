"""The effect measures as data: name, the scale the numbers are analysed on, its
axis label and the transformation that shows it on the reported scale.

One table (:data:`MEASURES`) read by :mod:`meta.escalc` (which measures exist, their
``vtype`` options), :class:`meta.pool.PoolResult` and :mod:`meta.binary` (the label and
back-transformation in ``summary()``), the plots (:mod:`meta.plots.forest_plot`,
:mod:`meta.plots.funnel_plot`: axis label, automatic back-transformation) and
``docs/effect-measures.md``.  Labels are metafor 3.8.1's ``.setlab()`` wording (``misc.func.hidden.r``):
``"Log Odds Ratio"`` on the analysis scale, ``"Odds Ratio (log scale)"`` when the
axis is labelled with ``exp`` (metafor ``atransf=exp``), ``"Odds Ratio"`` when the
values themselves are transformed (``transf=exp``).

``display``: how a plot shows the measure unless told otherwise (our choice; metafor
draws every measure untransformed unless ``transf=``/``atransf=`` are passed):
``"atransf"`` -- ratio measures (OR, RR, PETO, ROM) on a log axis labelled in
ratios, as RevMan and ``forest(res, atransf=exp)``; ``"transf"`` -- ZCOR shown as
correlations, ``forest(res, transf=tanh)`` (metafor ``transf.ztor``); ``None`` -- as
analysed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Measure", "MEASURES", "measure_of", "GENERIC"]


@dataclass(frozen=True)
class Measure:
    """One effect measure: ``name`` (metafor's code), ``label`` (analysis scale),
    ``short`` (table header), ``back`` (label on the back-transformed scale),
    ``func`` (analysis scale -> reported scale) and ``display`` (see module)."""

    name: str
    label: str
    short: str
    back: str = ""
    func: Callable[[np.ndarray], np.ndarray] | None = None
    display: str | None = None
    vtypes: tuple = ("LS",)


GENERIC = "GEN"

MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("GEN", "Observed Outcome", "Estimate"),
        Measure("MD", "Mean Difference", "MD", vtypes=("LS", "UB", "HO")),
        Measure("SMD", "Standardized Mean Difference", "SMD", vtypes=("LS", "UB", "LS2", "AV")),
        Measure("ROM", "Log Ratio of Means", "Log[RoM]", "Ratio of Means", np.exp, "atransf",
                vtypes=("LS", "HO", "AV", "AVHO")),
        Measure("OR", "Log Odds Ratio", "Log[OR]", "Odds Ratio", np.exp, "atransf"),
        Measure("RR", "Log Risk Ratio", "Log[RR]", "Risk Ratio", np.exp, "atransf"),
        Measure("RD", "Risk Difference", "RD", vtypes=("LS", "UB", "AV")),
        Measure("PETO", "Log Odds Ratio", "Log[OR]", "Odds Ratio", np.exp, "atransf"),
        Measure("COR", "Correlation Coefficient", "COR", vtypes=("LS", "AV")),
        Measure("ZCOR", "Fisher's z Transformed Correlation Coefficient", "ZCOR", "Correlation Coefficient",
                np.tanh, "transf"),
        Measure("MC", "Mean Change", "MC"),
        Measure("SMCC", "Standardized Mean Change", "SMCC", vtypes=("LS", "LS2")),
        Measure("SMCR", "Standardized Mean Change", "SMCR", vtypes=("LS", "LS2")),
    )
}


def measure_of(name) -> Measure:
    """The :class:`Measure` called ``name`` (any case; ``None`` -> generic)."""
    if name is None:
        return MEASURES[GENERIC]
    key = str(name).upper()
    if key not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(map(repr, MEASURES))}; got {name!r}")
    return MEASURES[key]
