"""Confidence intervals for tau2, tau, I2 and H2 (metafor 3.8.1 ``confint()`` on an
``rma.uni`` fit): Q-profile (``type="QP"``, the default; Viechtbauer 2007, Stat Med 26:37-52) or
profile likelihood (``type="PL"``, ML/REML fits; Hardy & Thompson 1996). :func:`confint` takes a
:class:`meta.pool.PoolResult` or ``yi, vi``. The methods, the bounds' rules and the root finding
are documented in :mod:`meta._qprofile` and :mod:`meta._tau2_profile`, which compute them (below
:mod:`meta.pool`, so that ``PoolResult.confint()`` needs no import from above).
"""

from __future__ import annotations

import numpy as np

from meta._qprofile import ConfintResult, confint_of, q_profile
from meta._tau2_profile import profile_ci
from meta.pool import pool

__all__ = ["ConfintResult", "confint", "q_profile"]


def _data_of(res_or_yi, vi):
    """(yi, vi, fitted result or None) from confint's arguments."""
    yi = getattr(res_or_yi, "yi", None)
    if yi is not None and getattr(res_or_yi, "vi", None) is not None:
        return np.asarray(yi, dtype=float), np.asarray(res_or_yi.vi, dtype=float), res_or_yi
    if hasattr(res_or_yi, "tau2"):  # a fit that does not carry its data
        if vi is None:
            raise ValueError("confint: this result does not carry its yi and vi; call confint(yi, vi, method=...)")
        raise ValueError("confint: pass either a result that carries yi and vi, or yi and vi (not a result and vi)")
    if vi is None:
        raise ValueError("confint needs a pooled result (meta.pool.pool) or yi and vi: confint(yi, vi, method=...)")
    return res_or_yi, vi, None


_TYPES = ("QP", "PL")


def confint(res_or_yi, vi=None, *, level: float | None = None, method: str = "DL", type: str = "QP") -> ConfintResult:
    """Confidence intervals for tau2, tau, I2 and H2 of a random-effects fit
    (metafor 3.8.1 ``confint(rma(yi, vi, method=), type=)``; see the module
    docstring): ``type="QP"`` Q-profile (Viechtbauer 2007, any estimator),
    ``type="PL"`` profile likelihood (method ``"ML"`` or ``"REML"``).

    ``res_or_yi``: a :class:`meta.pool.PoolResult` that carries its ``yi``
    and ``vi`` (method, level and the tau2 estimate are read from it), or
    the effect sizes ``yi`` with ``vi`` (then fitted here with
    :func:`meta.pool.pool` and ``method``, default ``"DL"`` as ``pool``).
    ``level``: default the fit's level (0.95 for ``yi, vi``).

    Raises ``ValueError`` for an FE fit (no random-effects component), for
    k = 1 (as metafor), and for ``type="PL"`` with an estimator other than
    ML/REML.
    """
    kind = type.upper() if isinstance(type, str) else type
    if kind not in _TYPES:
        raise ValueError(f"type must be 'QP' (Q-profile) or 'PL' (profile likelihood); got {type!r}")
    yi, vi, res = _data_of(res_or_yi, vi)
    if res is None:
        res = pool(yi, vi, method=method, level=0.95 if level is None else level)
        yi, vi = res.yi, res.vi  # checked, and paired by label when pandas
    if kind == "PL":
        return profile_ci(res, yi, vi, level)
    return confint_of(res, yi, vi, level)
