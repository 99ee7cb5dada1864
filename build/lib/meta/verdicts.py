"""The claim verdict rule: one place for it (library layer, no review knowledge).

:func:`verdict` compares one interval estimate with the direction a claim
expects (``expected``: +1, -1, 0 for "no difference", ``None`` unreadable):

* ``insufficient data`` -- k < 2 (nothing pooled: a single study or none), a
  missing/non-finite estimate, or no readable expected direction;
* ``agrees`` -- the estimate has the expected sign and the interval excludes 0;
* ``direction only`` -- the sign matches but the interval includes 0;
* ``disagrees`` -- the estimate has the opposite sign (whatever the interval);
* for a claim of no difference (``expected == 0``): ``agrees`` when the
  interval includes 0, ``disagrees`` otherwise.

The interval is whatever the analysis reports: a confidence interval for the
frequentist methods, the equal-tailed credible interval for a Bayesian model
(:mod:`meta.robustness` applies the same rule to both).  An interval that
touches 0 (an end exactly 0) includes it.
"""

from __future__ import annotations

import math

__all__ = ["verdict", "VERDICTS", "AGREES", "DIRECTION_ONLY", "DISAGREES", "INSUFFICIENT", "MIXED"]

AGREES = "agrees"
DIRECTION_ONLY = "direction only"
DISAGREES = "disagrees"
INSUFFICIENT = "insufficient data"
MIXED = "mixed"  # several analyses of one claim that do not share a verdict (review layer)

#: every verdict a claim can get, in the report's order
VERDICTS = (AGREES, DIRECTION_ONLY, DISAGREES, INSUFFICIENT, MIXED)


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def verdict(k: int, estimate: float, ci_low: float, ci_high: float, expected: int | None) -> str:
    """Verdict of one estimate with interval ``[ci_low, ci_high]`` against a
    claim's ``expected`` sign (rule in the module docstring).

    ``expected`` must be +1, -1, 0 or ``None``; anything else is a ValueError.
    """
    if expected is not None and expected not in (-1, 0, 1):
        raise ValueError(f"expected must be +1, -1, 0 (no difference) or None; got {expected!r}")
    if k is None or k < 2 or not _finite(estimate) or expected is None:
        return INSUFFICIENT
    excludes0 = (_finite(ci_low) and ci_low > 0) or (_finite(ci_high) and ci_high < 0)
    if expected == 0:
        return DISAGREES if excludes0 else AGREES
    sign = (estimate > 0) - (estimate < 0)
    if sign != expected:
        return DISAGREES
    return AGREES if excludes0 else DIRECTION_ONLY
