"""GOSH: the meta-analysis refitted to subsets of the studies (Olkin, Dahabreh &
Trikalinos 2012, Res Synth Methods 3:214-223, "GOSH - a graphical display of
study heterogeneity"), as metafor 3.8.1 ``gosh.rma``.

:func:`gosh` fits every non-empty subset of the k studies when there are at
most ``subsets`` of them (``2^k - 1``; metafor's default bound 10^6), else
``subsets`` random subsets drawn as metafor draws them: a size ``j`` from
Binomial(k, 1/2) restricted to ``j >= 1``, then ``j`` distinct studies
uniformly (reproducible with ``seed``; numpy's generator, so not R's
numbers).  The fits run through :func:`meta.many.pool_many` (the vectorised
engine of :func:`meta.pool.pool`) in blocks of subsets, with the result's
``method``.  Rows are ordered by subset size, as metafor; within a size, all
subsets come in the order of R's ``expand.grid`` (study 1 varying fastest).

Heterogeneity per subset as metafor reports it: ``q`` (Cochran's Q), ``tau2``,
and for ``method="FE"`` or ``"DL"`` (metafor's fast path)
``i2 = max(0, 100 (Q - (k-1)) / Q)``, ``h2 = Q / (k-1)``; for the other
estimators ``i2 = 100 tau2 / (vt + tau2)``, ``h2 = tau2 / vt + 1`` with the
typical within-study variance ``vt``; a one-study subset has ``q = 0``,
``i2 = 0``, ``h2 = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from meta._format import metafor_num as _fmt
from meta.many import pool_many

__all__ = ["GoshResult", "gosh", "SUBSETS"]

SUBSETS = 1_000_000  # metafor's default bound on the number of subsets
_BLOCK_ROWS = 1 << 16  # subsets fitted per pool_many call (bounds memory)
_COLUMNS = ("k", "q", "i2", "h2", "tau2", "estimate")


@dataclass(frozen=True)
class GoshResult:
    """Fits to subsets of the studies (metafor ``gosh(res)``).  ``incl``:
    read-only boolean array (subsets x k), True where a study is in the
    subset (columns in the order of ``slab``); ``k_subset, q, i2, h2, tau2,
    estimate``: one value per subset (rows of ``incl``); ``exact``: all
    subsets (True) or random ones; ``k``, ``method``, ``slab``: of the full
    fit; ``seed``: the seed of the random subsets (None: all subsets, or
    unseeded)."""

    incl: np.ndarray = field(repr=False, compare=False)
    k_subset: np.ndarray = field(repr=False, compare=False)
    q: np.ndarray = field(repr=False, compare=False)
    i2: np.ndarray = field(repr=False, compare=False)
    h2: np.ndarray = field(repr=False, compare=False)
    tau2: np.ndarray = field(repr=False, compare=False)
    estimate: np.ndarray = field(repr=False, compare=False)
    k: int = 0
    method: str = "DL"
    exact: bool = True
    seed: int | None = None
    slab: tuple = field(default=(), repr=False)

    def __post_init__(self):
        for name in ("incl", "k_subset", "q", "i2", "h2", "tau2", "estimate"):
            a = np.array(getattr(self, name))
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        object.__setattr__(self, "slab", tuple(self.slab))

    @property
    def n_subsets(self) -> int:
        return int(self.incl.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per subset (index 1..n as metafor): ``k`` (studies in the
        subset), ``q``, ``i2``, ``h2``, ``tau2``, ``estimate``."""
        df = pd.DataFrame({"k": self.k_subset, "q": self.q, "i2": self.i2, "h2": self.h2, "tau2": self.tau2,
                           "estimate": self.estimate})
        df.index = pd.RangeIndex(1, len(df) + 1, name="subset")
        return df

    def incl_frame(self) -> pd.DataFrame:
        """``incl`` as a DataFrame: one row per subset, one boolean column per study (named by ``slab``)."""
        cols = pd.Index(list(self.slab), tupleize_cols=False) if len(self.slab) == self.k else None
        return pd.DataFrame(self.incl, columns=cols, index=pd.RangeIndex(1, self.n_subsets + 1, name="subset"))

    def summary(self) -> str:
        """metafor's print of ``gosh(res)``: fits attempted and succeeded, then
        mean, min, quartiles and max of each column (no tau2 row for FE)."""
        df = self.to_frame()
        fit = np.isfinite(df.to_numpy()).all(axis=1)
        rows = [("k", "k"), ("Q", "q"), ("I2", "i2"), ("H2", "h2"), ("tau2", "tau2"), ("estimate", "estimate")]
        if self.method == "FE":
            rows = [r for r in rows if r[1] != "tau2"]
        head = ["", "mean", "min", "q1", "median", "q3", "max"]
        cells = []
        for label, col in rows:
            x = df[col].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])  # R quantile(type = 7)
            cells.append([label] + [_fmt(float(s)) for s in (x.mean(), x.min(), q1, med, q3, x.max())])
        width = [max(len(r[j]) for r in [head, *cells]) for j in range(len(head))]
        lines = [f"Model fits attempted: {len(df)}", f"Model fits succeeded: {int(fit.sum())}",
                 f"({'all' if self.exact else 'random'} subsets of k = {self.k} studies; tau^2 estimator: {self.method})", ""]
        for r in [head, *cells]:
            lines.append(r[0].ljust(width[0]) + "".join(" " + c.rjust(w) for c, w in zip(r[1:], width[1:])))
        return "\n".join(lines)


def _all_subsets(k: int) -> np.ndarray:
    """Every non-empty subset (rows, boolean), by size and, within a size, in
    R's ``expand.grid`` order (row code = sum of 2^(j-1) over included study j)."""
    codes = np.arange(1, 2**k, dtype=np.int64)
    incl = ((codes[:, None] >> np.arange(k)) & 1).astype(bool)
    order = np.argsort(incl.sum(axis=1), kind="stable")
    return incl[order]


def _random_subsets(k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random subsets: size ``j`` with probability ``dbinom(j, k, 1/2)``
    for ``j = 1..k`` (renormalised), then ``j`` distinct studies, uniformly;
    ordered by size (stable), as metafor orders its table."""
    j = np.arange(1, k + 1)
    logp = np.array([math.lgamma(k + 1) - math.lgamma(x + 1) - math.lgamma(k - x + 1) for x in j]) - k * math.log(2)
    p = np.exp(logp)
    size = rng.choice(j, size=n, p=p / p.sum())
    incl = np.empty((n, k), dtype=bool)
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(n, start + _BLOCK_ROWS)
        ranks = np.argsort(rng.random((stop - start, k)), axis=1).argsort(axis=1)
        incl[start:stop] = ranks < size[start:stop, None]
    return incl[np.argsort(size, kind="stable")]


def gosh(res, subsets: int | None = None, seed: int | None = None) -> GoshResult:
    """Refit ``res`` (a :class:`meta.pool.PoolResult`) to subsets of its
    studies (metafor 3.8.1 ``gosh(res, subsets=)``; see the module docstring).

    ``subsets``: bound on the number of fits (default 10^6, as metafor): all
    ``2^k - 1`` subsets when there are at most that many, else ``subsets``
    random ones (a whole number >= 2).  ``seed``: integer seed of the random
    subsets (numpy ``default_rng``); the same seed gives the same subsets.
    Returns a :class:`GoshResult` (``to_frame()``: ``k, q, i2, h2, tau2,
    estimate`` per subset; ``incl``: which studies each subset holds).
    Needs k >= 2 (metafor stops at k = 1).
    """
    if not (hasattr(res, "estimate") and hasattr(res, "method")):
        raise TypeError(f"gosh: res must be a fitted result from meta.pool.pool(); got {type(res).__name__}")
    if getattr(res, "yi", None) is None or getattr(res, "vi", None) is None:
        raise ValueError("gosh: this result carries no yi/vi (built by hand); fit it with meta.pool.pool(yi, vi)")
    y = np.asarray(res.yi, dtype=float)
    v = np.asarray(res.vi, dtype=float)
    k = y.size
    if k < 2:
        raise ValueError(f"gosh needs at least 2 studies (k >= 2); got k = {k} (metafor stops too)")
    if subsets is None:
        bound = SUBSETS
    else:
        if isinstance(subsets, bool) or not isinstance(subsets, (int, float, np.integer, np.floating)) or not math.isfinite(subsets):
            raise ValueError(f"subsets must be a whole number >= 2; got {subsets!r}")
        bound = int(np.round(subsets))
        if bound <= 1:
            raise ValueError(f"subsets must be >= 2 (metafor); got {subsets!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"seed must be an integer or None; got {seed!r}")
    total = 2.0**k - 1
    exact = total <= bound
    if exact:
        incl = _all_subsets(k)
    else:
        incl = _random_subsets(k, bound, np.random.default_rng(seed))
    n = incl.shape[0]
    cols = {c: np.empty(n) for c in _COLUMNS}
    w0, w0sq = 1.0 / v, 1.0 / (v * v)
    for start in range(0, n, _BLOCK_ROWS):
        part = incl[start:start + _BLOCK_ROWS]
        yy = np.where(part, y[None, :], np.nan)
        vv = np.where(part, v[None, :], np.nan)
        out = pool_many(yy, vv, method=res.method)
        kk = out["k"].to_numpy()
        q = out["q"].to_numpy()
        tau2 = out["tau2"].to_numpy()
        df = kk - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            if res.method in ("FE", "DL"):  # metafor's fast path for gosh: I2 and H2 from Q
                i2 = np.maximum(0.0, 100.0 * (q - df) / q)
                i2 = np.where(np.isnan(i2), 0.0, i2)  # Q = 0: max(0, -Inf) = 0 in R
                h2 = q / df
            else:
                sw0, sw0sq = part @ w0, part @ w0sq
                vt = df * sw0 / (sw0 * sw0 - sw0sq)
                i2 = 100.0 * tau2 / (vt + tau2)
                h2 = tau2 / vt + 1.0
        one = kk == 1
        i2[one], h2[one] = 0.0, 1.0
        sl = slice(start, start + part.shape[0])
        cols["k"][sl], cols["q"][sl], cols["i2"][sl], cols["h2"][sl] = kk, q, i2, h2
        cols["tau2"][sl], cols["estimate"][sl] = tau2, out["estimate"].to_numpy()
    slab = tuple(res.slab) if len(res.slab) == k else tuple(range(1, k + 1))
    return GoshResult(
        incl=incl, k_subset=cols["k"].astype(np.int64), q=cols["q"], i2=cols["i2"], h2=cols["h2"], tau2=cols["tau2"],
        estimate=cols["estimate"], k=k, method=res.method, exact=bool(exact), seed=None if exact else seed, slab=slab,
    )
