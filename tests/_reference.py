"""Reading the metafor reference fixtures (tests/fixtures/*.json) the same way in every test file."""

from __future__ import annotations

import numpy as np

#: PoolResult fields compared with metafor rma() (and predict() for the PI)
FIELDS = ["k", "estimate", "se", "stat", "p", "ci_low", "ci_high", "tau2", "tau", "i2", "h2",
          "q", "q_df", "q_p", "pi_low", "pi_high"]
#: columns of a leave1out() / cumul() step compared with metafor
STEP_FIELDS = ["estimate", "se", "stat", "p", "ci_low", "ci_high", "q", "q_p", "tau2", "i2", "h2"]


def arr(x):
    """JSON value -> float array (null -> NaN, scalar -> length 1)."""
    return np.atleast_1d(np.array([np.nan if e is None else e for e in np.atleast_1d(x).tolist()], dtype=float))
