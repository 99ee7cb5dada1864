"""Sampling covariance matrix of dependent effect sizes from their variances and an assumed correlation.

:func:`vcalc` builds the k x k matrix V that :func:`meta.multilevel.rma_mv` takes
when effect sizes of the same cluster (study, sample) share participants but
their covariances are not reported: within a cluster,
``V[i, j] = rho * sqrt(vi[i] * vi[j])`` for two different observations and
``sqrt(vi[i] * vi[j])`` (correlation 1) for two rows that are the same
observation (``obs`` equal); between clusters 0.  This is metafor 3.8.1
``vcalc(vi, cluster, obs=, rho=)`` in its constant-correlation case, and
clubSandwich ``impute_covariance_matrix(vi, cluster, r)`` (Pustejovsky &
Tipton 2022, the CHE working model's V); ``tests/test_vcalc.py`` holds it to
both.

References
----------
Viechtbauer W (2022). metafor 3.8.1, ``vcalc()``.
Pustejovsky JE, Tipton E (2022). Meta-analysis with robust variance estimation:
expanding the range of working models. Prevention Science 23:425-438.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from meta import _checks

__all__ = ["vcalc", "vcalc_triplets"]


def _codes(x, name: str, k: int) -> np.ndarray:
    """Integer codes of the values of a grouping variable (any hashable values; NaN refused)."""
    if isinstance(x, (pd.Series, pd.Index)):
        vals = pd.Series(np.asarray(x, dtype=object))
    else:
        arr = np.asarray(x, dtype=object)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
        vals = pd.Series(arr)
    if vals.size != k:
        raise ValueError(f"{name} must have one value per effect size (length {k}); got length {vals.size}")
    bad = vals.isna().to_numpy()
    if bad.any():
        raise ValueError(f"{name} must not be missing; missing at positions (0-based): {_checks.positions(bad)}")
    return pd.factorize(vals, sort=False)[0]


def _pairs(cl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) pair of rows in the same cluster (i = j included), vectorised."""
    k = cl.size
    order = np.argsort(cl, kind="stable")
    sizes = np.bincount(cl)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    m = sizes[cl[order]]  # cluster size of each sorted row
    pos = np.repeat(np.arange(k), m)  # sorted position of the pair's first row
    within = np.arange(pos.size) - np.repeat(np.cumsum(m) - m, m)
    second = starts[cl[order]][pos] + within
    return order[pos], order[second]


def vcalc_triplets(vi, cluster, *, obs=None, rho: float, checkpd: bool = True):
    """:func:`vcalc` as the nonzero entries ``(rows, cols, values)`` of V (within-cluster pairs only), so that
    large k needs no dense k x k matrix; same checks and warnings."""
    v = _checks.numbers(vi, "vi")
    if v.ndim != 1:
        raise ValueError(f"vi must be one-dimensional; got shape {v.shape}")
    k = v.size
    if k == 0:
        raise ValueError("vi is empty: at least one effect size is needed")
    bad = ~np.isfinite(v) | (v <= 0)
    if bad.any():
        raise ValueError(f"vi must be finite and > 0; offending positions (0-based): {_checks.positions(bad)}")
    _checks.real(rho, "rho")
    if isinstance(rho, (str, bytes)):  # "0.5" would otherwise pass as a number
        raise ValueError(f"rho must be one number in [-1, 1], not text; got {rho!r}")
    try:
        r = np.asarray(rho, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"rho must be one number in [-1, 1]; got {rho!r}") from None
    if r.ndim != 0 or not np.isfinite(r) or not -1.0 <= float(r) <= 1.0:
        raise ValueError(f"rho must be one number in [-1, 1]; got {rho!r}")
    r = float(r)
    cl = _codes(cluster, "cluster", k)
    ob = np.arange(k) if obs is None else _codes(obs, "obs", k)
    i, j = _pairs(cl)
    sd = np.sqrt(v)
    vals = np.where(ob[i] == ob[j], 1.0, r) * sd[i] * sd[j]
    vals[i == j] = v[i[i == j]]
    if checkpd:
        sizes = np.bincount(cl)
        dense_blocks = {}
        for c in np.flatnonzero(sizes > 1):
            dense_blocks.setdefault(int(sizes[c]), []).append(c)
        not_pd = []
        for size, cids in dense_blocks.items():
            rows = [np.flatnonzero(cl == c) for c in cids]
            blocks = np.stack([_block(ri, v, ob, r) for ri in rows])
            lam = np.linalg.eigvalsh(blocks)[:, 0]
            eps = np.finfo(float).eps * np.array([v[ri].max() for ri in rows])
            not_pd += [c for c, ok in zip(cids, lam > eps) if not ok]
        if not_pd:
            labels = pd.unique(pd.Series(np.asarray(cluster, dtype=object)))[sorted(not_pd)]
            warnings.warn(f"vcalc: the covariance block is not positive definite (rho = {r}) in cluster(s) "
                          f"{_checks._shown(list(labels))}", UserWarning, stacklevel=3)
    return i, j, vals


def _block(rows: np.ndarray, v: np.ndarray, ob: np.ndarray, r: float) -> np.ndarray:
    sd = np.sqrt(v[rows])
    b = np.where(ob[rows][:, None] == ob[rows][None, :], 1.0, r) * np.outer(sd, sd)
    np.fill_diagonal(b, v[rows])
    return b


def vcalc(vi, cluster, *, obs=None, rho: float, checkpd: bool = True) -> np.ndarray:
    """The k x k sampling covariance matrix under a constant correlation ``rho`` within clusters.

    ``V[i, i] = vi[i]``; for ``i != j`` in the same ``cluster``:
    ``V[i, j] = rho * sqrt(vi[i] vi[j])`` when ``obs[i] != obs[j]`` and
    ``sqrt(vi[i] vi[j])`` when ``obs[i] == obs[j]`` (the same observation
    entered twice); 0 between clusters.  ``obs=None``: every row is its own
    observation.  Rows stay in input order (clusters need not be contiguous).

    = metafor 3.8.1 ``vcalc(vi, cluster, obs=obs, rho=rho)`` and clubSandwich
    ``impute_covariance_matrix(vi, cluster, r=rho, return_list=FALSE)``.

    ``rho`` is one number in [-1, 1].  ``checkpd=True`` warns (as metafor)
    when a cluster's block is not positive definite (e.g. ``rho = 1``, or
    ``rho < 0`` with large clusters).  Bad input -> ``ValueError`` naming
    the argument: ``vi`` not finite or <= 0, lengths that differ, missing
    cluster values, ``rho`` outside [-1, 1].
    """
    i, j, vals = vcalc_triplets(vi, cluster, obs=obs, rho=rho, checkpd=checkpd)
    k = int(np.size(_checks.numbers(vi, "vi")))
    V = np.zeros((k, k))
    V[i, j] = vals
    return V
