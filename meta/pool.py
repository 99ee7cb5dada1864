"""Pool study effects: fixed-effect and random-effects models that agree with
R's metafor 3.8 ``rma()``.

Public functions:

* :func:`pool` - one meta-analysis (metafor ``rma(yi, vi, method=, test=)``
  plus ``predict()`` and ``weights()``);
* :func:`leave_one_out` - metafor ``leave1out()``;
* :func:`cumulative` - metafor ``cumul()``;
* :func:`subgroups` - one model per subgroup plus the test for subgroup
  differences (RevMan / R meta, separate tau2 per subgroup);
* :func:`pool_many` - thousands of meta-analyses at once (rows of a 2-D array,
  NaN padding for ragged rows), same estimators as :func:`pool`.

Estimators (``method``, metafor's names, any case): ``"FE"`` (inverse
variance, fixed/common effect; also ``"EE"``, ``"CE"``), ``"DL"``
(DerSimonian & Laird 1986), ``"HE"`` (Hedges 1983), ``"HS"`` (Hunter &
Schmidt), ``"SJ"`` (Sidik & Jonkman 2005), ``"ML"`` and ``"REML"``
(Viechtbauer 2005), ``"PM"`` (Paule & Mandel 1982) and ``"EB"`` (empirical
Bayes, Morris 1983; the same root as PM).  tau2 is never negative: unlike
statsmodels 0.15 ``combine_effects(method_re="chi2")``, which returns
negative tau2 when Q < k - 1, every estimator here is truncated at 0 as in
metafor.  ML and REML return the global maximum of the (restricted)
likelihood over tau2 >= 0, also where metafor's Fisher scoring stops at 0
(see :mod:`meta._estimators` for every formula and its source).  ``level``
may be given as a percentage (``95``), as in metafor.

``test="hksj"`` is metafor's ``test="knha"`` (Hartung & Knapp 2001; Sidik &
Jonkman 2002): the variance of the estimate multiplied by
``sum(w (y - est)^2) / (k - 1)`` (not truncated at 1, as metafor 3.8) and t
with k - 1 df.  With k = 1 it falls back to ``"z"`` with a warning, as metafor.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
from scipy import special, stats

from meta import _estimators as _est
from meta import _fast

__all__ = [
    "PoolResult",
    "SubgroupResult",
    "pool",
    "pool_many",
    "leave_one_out",
    "cumulative",
    "subgroups",
]

_MODEL_NAMES = {m: "Fixed-Effects Model" if m == "FE" else "Random-Effects Model" for m in _est.METHODS}

_INF_BITS = np.array(np.inf).view(np.int64)
_CHUNK = 8192  # at most this many rows per block in pool_many (bounds memory) ...
_BLOCK_CELLS = 40960  # ... and about this many cells (rows x columns): 320 kB per work array stays in cache
_FINISH_ROWS = 65536  # pool_many runs the per-analysis tests and intervals on up to this many rows at once


# --------------------------------------------------------------------------- input checks


def _positions(bad: np.ndarray, limit: int = 10) -> str:
    idx = np.flatnonzero(bad) if bad.ndim == 1 else np.argwhere(bad)
    shown = [str(tuple(int(j) for j in i)) if np.ndim(i) else str(int(i)) for i in idx[:limit]]
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(shown) + more


def _as_1d(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers (list, array or Series); got {type(x).__name__}: {exc}") from None
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {a.shape}")
    return a


def _method_level(method, level) -> tuple[str, float]:
    """Canonical ``method`` and ``level`` in metafor's conventions: methods
    case-insensitive, ``"EE"`` and ``"CE"`` for ``"FE"``
    (:data:`meta._estimators.METHOD_ALIASES`); a ``level`` strictly between
    1 and 100 is a percentage (``95`` = 0.95), as metafor's ``level=95``
    (1 itself is refused as ambiguous; metafor's reading of levels below 0.5
    as alpha is not copied)."""
    m = method.upper() if isinstance(method, str) else method
    m = _est.METHOD_ALIASES.get(m, m)
    if m not in _est.METHODS:
        names = ", ".join(map(repr, _est.METHODS + tuple(_est.METHOD_ALIASES)))
        raise ValueError(f"method must be one of {names} (any case); got {method!r}")
    ok = isinstance(level, (int, float, np.integer, np.floating)) and not isinstance(level, bool)
    if ok and 1 < level < 100:
        level = level / 100.0
    if not (ok and 0 < level < 1):
        raise ValueError(f"level must be a fraction in (0, 1) such as 0.95, or a percentage in (1, 100) such as 95; got {level!r}")
    return m, float(level)


def _check_options(method, test, level, pi) -> None:
    if method not in _est.METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _est.METHODS))}; got {method!r}")
    if test not in _est.TESTS:
        raise ValueError(f"test must be 'z' or 'hksj' (metafor's 'knha'); got {test!r}")
    if pi not in _est.PIS:
        raise ValueError(f"pi must be 'z' (metafor predict()) or 't' (t with k-2 df); got {pi!r}")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be a number between 0 and 1 (e.g. 0.95); got {level!r}")


def _check_pair(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    y = _as_1d(yi, "yi")
    v = _as_1d(vi, "vi")
    if y.size != v.size:
        raise ValueError(f"yi and vi must have the same length; got {y.size} and {v.size}")
    if y.size == 0:
        raise ValueError("yi is empty: at least one study (k >= 1) is needed to pool")
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"yi must be finite (no NaN or inf); offending positions (0-based): {_positions(bad)}")
    bad = ~np.isfinite(v)
    if bad.any():
        raise ValueError(f"vi must be finite (no NaN or inf); offending positions (0-based): {_positions(bad)}")
    bad = v <= 0
    if bad.any():
        raise ValueError(f"vi must be > 0; offending positions (0-based): {_positions(bad)}, values {v[bad][:10].tolist()}")
    return y, v


def _warn_k1(test: str, k1: int) -> None:
    if test == "hksj" and k1:
        warnings.warn(
            f"test='hksj' needs k >= 2; used test='z' for {k1} analys{'is' if k1 == 1 else 'es'} with k = 1 (as metafor)",
            stacklevel=3,
        )


# --------------------------------------------------------------------------- results


def _fmt(x: float, digits: int = 4) -> str:
    return "NA" if not np.isfinite(x) else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


@dataclass(frozen=True)
class PoolResult:
    """One fitted meta-analysis (metafor ``rma()`` + ``predict()`` + ``weights()``).

    ``estimate, se, stat, p, ci_low, ci_high``: the pooled effect with its
    z (or HKSJ t) test and confidence interval; ``tau2, tau``: between-study
    variance and SD (0 for ``method="FE"``); ``i2`` (percent) and ``h2`` as
    metafor computes them; ``q, q_df, q_p``: Cochran's Q test (FE weights);
    ``pi_low, pi_high``: prediction interval; ``weights``: percent weight of
    each study, in input order (metafor ``weights()``).  ``test`` is the test
    actually used (``"z"`` when ``"hksj"`` was requested with k = 1).
    """

    k: int
    estimate: float
    se: float
    stat: float
    p: float
    ci_low: float
    ci_high: float
    tau2: float
    tau: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_p: float
    pi_low: float
    pi_high: float
    weights: np.ndarray = field(repr=False, compare=False)
    method: str = "DL"
    test: str = "z"
    level: float = 0.95
    pi: str = "z"

    def to_frame(self) -> pd.DataFrame:
        """One row, one column per scalar field (``weights`` left out)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "weights"}
        return pd.DataFrame([row])

    def summary(self) -> str:
        """Text in metafor's print order: model, k, tau2, tau, I2, H2, Q test,
        then estimate, se, z (or t), p, CI; then the prediction interval."""
        pct = f"{100 * self.level:g}%"
        lines = []
        head = f"{_MODEL_NAMES[self.method]} (k = {self.k}"
        head += ")" if self.method == "FE" else f"; tau^2 estimator: {self.method})"
        lines += [head, ""]
        if self.method != "FE":
            lines.append(f"tau^2 (estimated amount of total heterogeneity): {_fmt(self.tau2)}")
            lines.append(f"tau (square root of estimated tau^2 value):      {_fmt(self.tau)}")
        lines.append(f"I^2 (total heterogeneity / total variability):   {_fmt(self.i2, 2)}%")
        lines.append(f"H^2 (total variability / sampling variability):  {_fmt(self.h2, 2)}")
        lines += ["", "Test for Heterogeneity:"]
        qp = _fmt_p(self.q_p)
        lines.append(f"Q(df = {self.q_df}) = {_fmt(self.q)}, p-val {'< .0001' if qp == '<.0001' else '= ' + qp}")
        lines += ["", "Model Results:", ""]
        stat_name = "tval" if self.test == "hksj" else "zval"
        cols = ["estimate", "se", stat_name] + (["df"] if self.test == "hksj" else []) + ["pval", "ci.lb", "ci.ub"]
        vals = [_fmt(self.estimate), _fmt(self.se), _fmt(self.stat)]
        vals += [str(self.q_df)] if self.test == "hksj" else []
        vals += [_fmt_p(self.p), _fmt(self.ci_low), _fmt(self.ci_high)]
        width = [max(len(c), len(x)) + 2 for c, x in zip(cols, vals)]
        lines.append("".join(c.rjust(wd) for c, wd in zip(cols, width)))
        lines.append("".join(x.rjust(wd) for x, wd in zip(vals, width)))
        lines.append("")
        how = (
            "t, k-2 df (Higgins et al. 2009)"
            if self.pi == "t"
            else ("t, k-1 df (metafor predict)" if self.test == "hksj" else "z (metafor predict)")
        )
        lines.append(f"{pct} prediction interval [{how}]: {_fmt(self.pi_low)} to {_fmt(self.pi_high)}")
        lines.append(f"{pct} CI level; test = {self.test}")
        return "\n".join(lines)


def _result(out: dict, i: int, method, test, level, pi, weights: np.ndarray) -> PoolResult:
    return PoolResult(
        k=int(out["k"][i]),
        estimate=float(out["estimate"][i]),
        se=float(out["se"][i]),
        stat=float(out["stat"][i]),
        p=float(out["p"][i]),
        ci_low=float(out["ci_low"][i]),
        ci_high=float(out["ci_high"][i]),
        tau2=float(out["tau2"][i]),
        tau=float(out["tau"][i]),
        i2=float(out["i2"][i]),
        h2=float(out["h2"][i]),
        q=float(out["q"][i]),
        q_df=int(out["q_df"][i]),
        q_p=float(out["q_p"][i]),
        pi_low=float(out["pi_low"][i]),
        pi_high=float(out["pi_high"][i]),
        weights=weights,
        method=method,
        test="hksj" if out["hksj"][i] else "z",
        level=float(level),
        pi=pi,
    )


# --------------------------------------------------------------------------- pool


def pool(yi, vi, *, method: str = "DL", test: str = "z", level: float = 0.95, pi: str = "z") -> PoolResult:
    """Pool effect sizes ``yi`` with sampling variances ``vi``.

    Equivalent to metafor 3.8 ``rma(yi, vi, method=method, test=test)``
    (``test="hksj"`` = ``"knha"``), with ``predict()`` for the prediction
    interval (``pi="z"``; ``pi="t"`` uses t with k-2 df, Higgins, Thompson &
    Spiegelhalter 2009) and ``weights()`` (percent) for ``weights``.

    k = 1 returns that study: tau2 = 0, Q = 0 (df 0, p = 1), I2 = 0, H2 = 1,
    as metafor does.  Raises ``ValueError`` naming the argument and the
    positions for mismatched lengths, empty input, NaN/inf, or ``vi <= 0``.
    """
    method, level = _method_level(method, level)
    _check_options(method, test, level, pi)
    y, v = _check_pair(yi, vi)
    out = _est.fit(y[:, None], v[:, None], np.ones((y.size, 1), bool), method=method, test=test, level=level, pi=pi, weights=True)
    _warn_k1(test, int(y.size == 1))
    return _result(out, 0, method, test, level, pi, out["weights"][:, 0])


# --------------------------------------------------------------------------- sensitivity


_STEP_COLUMNS = ["k", "estimate", "se", "stat", "p", "ci_low", "ci_high", "q", "q_p", "tau2", "i2", "h2"]


def _labels(labels, yi, k: int) -> list:
    if labels is None:
        if isinstance(yi, pd.Series):
            return list(yi.index)
        return list(range(1, k + 1))  # metafor's default study labels 1..k
    lab = list(labels)
    if len(lab) != k:
        raise ValueError(f"labels must have one entry per study ({k}); got {len(lab)}")
    return lab


def _fit_matrix(y2, v2, mask, method, test, level, pi) -> pd.DataFrame:
    """Fit each row of (analyses x studies) arrays (the estimators take studies x analyses)."""
    t = np.ascontiguousarray
    out = _est.fit(t(y2.T), t(v2.T), t(mask.T), method=method, test=test, level=level, pi=pi)
    _warn_k1(test, int((out["k"] == 1).sum()))
    return pd.DataFrame({c: out[c] for c in _STEP_COLUMNS})


def leave_one_out(yi, vi, *, method: str = "DL", labels=None, test: str = "z", level: float = 0.95, pi: str = "z") -> pd.DataFrame:
    """Refit leaving out each study in turn (metafor ``leave1out()``).

    One row per omitted study: ``omitted`` (its label; default the Series
    index or 1..k), then ``k, estimate, se, stat, p, ci_low, ci_high, q, q_p,
    tau2, i2, h2`` of the model without it.  Needs k >= 2 (metafor stops at
    k = 1).
    """
    method, level = _method_level(method, level)
    _check_options(method, test, level, pi)
    y, v = _check_pair(yi, vi)
    k = y.size
    if k < 2:
        raise ValueError("leave_one_out needs at least 2 studies (k >= 2); got k = 1")
    lab = _labels(labels, yi, k)
    keep = ~np.eye(k, dtype=bool)
    y2 = y[None, :].repeat(k, 0)[keep].reshape(k, k - 1)
    v2 = v[None, :].repeat(k, 0)[keep].reshape(k, k - 1)
    df = _fit_matrix(y2, v2, np.ones((k, k - 1), bool), method, test, level, pi)
    df.insert(0, "omitted", lab)
    return df


def cumulative(yi, vi, order=None, *, method: str = "DL", labels=None, test: str = "z", level: float = 0.95, pi: str = "z") -> pd.DataFrame:
    """Cumulative meta-analysis (metafor 3.8 ``cumul(res, order=order)``).

    ``order`` holds sort keys (e.g. publication year), one per study; studies
    are added in ascending order of the keys, ties kept in input order (R's
    ``order()`` is stable too).  ``order=None`` adds them in input order.  One
    row per step: ``added`` (label of the study added), then ``k, estimate,
    se, stat, p, ci_low, ci_high, q, q_p, tau2, i2, h2`` of the model fitted to
    the studies added so far.
    """
    method, level = _method_level(method, level)
    _check_options(method, test, level, pi)
    y, v = _check_pair(yi, vi)
    k = y.size
    lab = _labels(labels, yi, k)
    if order is None:
        idx = np.arange(k)
    else:
        keys = np.asarray(order)
        if keys.ndim != 1 or keys.size != k:
            raise ValueError(f"order must hold one sort key per study ({k}); got shape {keys.shape}")
        if keys.dtype.kind == "f" and np.isnan(keys).any():
            raise ValueError(f"order must not contain NaN; offending positions (0-based): {_positions(np.isnan(keys))}")
        idx = np.argsort(keys, kind="stable")
    ys, vs = y[idx], v[idx]
    mask = np.tri(k, k, dtype=bool)
    y2 = np.where(mask, ys[None, :], 0.0)
    v2 = np.where(mask, vs[None, :], np.inf)
    df = _fit_matrix(y2, v2, mask, method, test, level, pi)
    df.insert(0, "added", [lab[i] for i in idx])
    return df


# --------------------------------------------------------------------------- subgroups


@dataclass(frozen=True)
class SubgroupResult:
    """Separate models per subgroup (each with its own tau2) and the test for
    subgroup differences, as RevMan 5 (Deeks & Higgins 2010) and R meta
    report it: ``Q_between = sum(w_g (est_g - est_w)^2)``, ``w_g = 1/se_g^2``,
    ``est_w = sum(w_g est_g)/sum(w_g)``, chi-square with G - 1 df."""

    groups: dict
    overall: PoolResult
    q_between: float
    q_between_df: int
    q_between_p: float
    method: str = "DL"

    def to_frame(self) -> pd.DataFrame:
        """One row per subgroup, then one row ``group="Overall"``."""
        rows = [r.to_frame().assign(group=g) for g, r in self.groups.items()]
        rows.append(self.overall.to_frame().assign(group="Overall"))
        df = pd.concat(rows, ignore_index=True)
        return df[["group"] + [c for c in df.columns if c != "group"]]

    def summary(self) -> str:
        parts = []
        for g, r in self.groups.items():
            parts += [f"=== Subgroup: {g} ===", r.summary(), ""]
        parts += ["=== Overall ===", self.overall.summary(), ""]
        parts.append("Test for subgroup differences (separate tau^2 per subgroup):")
        parts.append(
            f"Q_between(df = {self.q_between_df}) = {_fmt(self.q_between)}, p-val "
            + ("< .0001" if _fmt_p(self.q_between_p) == "<.0001" else "= " + _fmt_p(self.q_between_p))
        )
        return "\n".join(parts)


def subgroups(yi, vi, groups, *, method: str = "DL", test: str = "z", level: float = 0.95, pi: str = "z") -> SubgroupResult:
    """Fit one model per subgroup and the overall model, and test for
    subgroup differences (see :class:`SubgroupResult`).  Subgroups keep their
    order of first appearance in ``groups``; keys are ``str(label)``."""
    method, level = _method_level(method, level)
    _check_options(method, test, level, pi)
    y, v = _check_pair(yi, vi)
    g = pd.Series(np.asarray(groups, dtype=object)) if not isinstance(groups, pd.Series) else groups.reset_index(drop=True)
    if len(g) != y.size:
        raise ValueError(f"groups must have one label per study ({y.size}); got {len(g)}")
    if g.isna().any():
        raise ValueError(f"groups must not be missing; offending positions (0-based): {_positions(g.isna().to_numpy())}")
    labels = list(pd.unique(g))
    codes = pd.Categorical(g, categories=labels).codes
    n_g = np.bincount(codes, minlength=len(labels))
    n = int(n_g.max())
    y2 = np.zeros((n, len(labels)))  # studies x subgroups
    v2 = np.full((n, len(labels)), np.inf)
    mask = np.zeros((n, len(labels)), bool)
    slot = np.zeros(y.size, int)
    for j in range(len(labels)):
        pos = np.flatnonzero(codes == j)
        slot[pos] = np.arange(pos.size)
    y2[slot, codes], v2[slot, codes], mask[slot, codes] = y, v, True
    out = _est.fit(y2, v2, mask, method=method, test=test, level=level, pi=pi, weights=True)
    _warn_k1(test, int((out["k"] == 1).sum()))
    res = {}
    for j, lab in enumerate(labels):
        res[str(lab)] = _result(out, j, method, test, level, pi, out["weights"][mask[:, j], j])
    overall = pool(y, v, method=method, test=test, level=level, pi=pi)
    est = np.array([r.estimate for r in res.values()])
    wg = 1.0 / np.array([r.se for r in res.values()]) ** 2
    est_w = np.sum(wg * est) / np.sum(wg)
    qb = float(np.sum(wg * (est - est_w) ** 2))
    dfb = len(labels) - 1
    qbp = float(stats.chi2.sf(qb, dfb)) if dfb > 0 else math.nan
    return SubgroupResult(groups=res, overall=overall, q_between=qb, q_between_df=dfb, q_between_p=qbp, method=method)


# --------------------------------------------------------------------------- many


def _many_input_error(y: np.ndarray, v: np.ndarray) -> None:
    """Raise the ValueError describing what is wrong with pool_many's input."""
    if np.isinf(y).any():
        raise ValueError(f"yi must not be infinite; offending (row, column), 0-based: {_positions(np.isinf(y))}")
    mask = ~np.isnan(y)
    empty = ~mask.any(axis=1)
    if empty.any():
        raise ValueError(f"yi has rows with no finite study; offending rows (0-based): {_positions(empty)}")
    with np.errstate(invalid="ignore"):
        badv = mask & ~(np.isfinite(v) & (v > 0))
    raise ValueError(
        f"vi must be finite and > 0 where yi is finite; offending (row, column), 0-based: {_positions(badv)}"
    )


_ENGINES = ("auto", "numpy", "numba")


def _use_fast(engine: str, method: str, test: str) -> bool:
    """Whether pool_many runs the compiled kernel (see its ``engine``)."""
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, _ENGINES))}; got {engine!r}")
    applies = method in ("FE", "DL") and test == "z"
    if engine == "numba":
        if not applies:
            raise ValueError(f'engine="numba" covers method "FE" and "DL" with test="z"; got method={method!r}, test={test!r}')
        try:
            _fast.kernel()
        except ImportError as exc:
            raise ValueError(f'engine="numba" needs numba: pip install "meta[fast]" (or use engine="numpy"); {exc}') from None
        return True
    if engine == "numpy" or not applies or not _fast.AVAILABLE:
        return False
    try:
        _fast.kernel()
    except ImportError as exc:  # installed but broken (e.g. built for another numpy): say so, once per process
        _fast.AVAILABLE = False
        warnings.warn(f"numba is installed but cannot be imported ({exc}); pool_many uses its numpy engine", RuntimeWarning, stacklevel=3)
        return False
    return True


def _pool_many_fast(y, v, index, method: str, level: float, pi: str) -> pd.DataFrame:
    """pool_many through the compiled kernel of :mod:`meta._fast`."""
    m, n = y.shape
    y = np.ascontiguousarray(y)
    v = np.ascontiguousarray(v)
    alpha = 1.0 - level
    zcrit = float(special.ndtri(1.0 - alpha / 2))
    kk = np.arange(n + 1)
    if pi == "z":
        pcrit = np.full(n + 1, zcrit)
    else:  # t with k - 2 df (NaN for k < 3), as meta._estimators.finish
        pcrit = np.where(kk > 2, special.stdtrit(np.maximum(kk - 2, 1), 1.0 - alpha / 2), np.nan)
    out = np.empty((len(_MANY_COLUMNS), m))
    bad = _fast.kernel()(y, v, method == "FE", zcrit, pcrit, pi == "z" and method == "FE", _est.CHI2_TABLE, out)
    if bad >= 0:
        _many_input_error(y, v)
    q_p = out[_MANY_COLUMNS.index("q_p")]
    redo = ~np.isfinite(q_p)  # df > 200 (or an overflowing series): scipy, as chi2_sf does
    if redo.any():
        q_p[redo] = special.chdtrc(out[0, redo] - 1, out[_MANY_COLUMNS.index("q"), redo])
    return _many_frame(out, index)


def _many_frame(out: np.ndarray, index) -> pd.DataFrame:
    """pool_many's DataFrame from ``out`` (12 x m, rows in the order of
    _MANY_COLUMNS, k as float): one float block (a view of ``out``) plus k as
    int64, ~2x faster than a dict of 12 arrays."""
    df = pd.DataFrame(out[1:].T, columns=_MANY_FLOAT_INDEX, index=index, copy=False)
    df.insert(0, "k", out[0].astype(np.int64))
    return df


_WORKSPACE = threading.local()
_WORKSPACE_KEEP = 4 * _BLOCK_CELLS  # work space up to this many cells is kept between calls


def _workspace(cells: int, rows: int):
    """Work arrays for :func:`pool_many`: five float and two int64 arrays of
    ``cells`` values, a bool one, and per-analysis sums for ``rows``
    analyses.  Kept per thread between calls when small (about 3 MB): fresh
    memory is paid for in page faults, which on a virtual machine cost
    microseconds per 4 kB page (4.6 us measured on our 2-core VM), more than
    the arithmetic done on it."""
    ws = getattr(_WORKSPACE, "arrays", None)
    if ws is not None and ws[0].shape[1] >= cells and ws[3]["k"].size >= rows:
        return ws
    ws = (
        np.empty((5, cells)),
        np.empty(cells, dtype=bool),
        np.empty((2, cells), dtype=np.int64),
        {c: np.empty(rows, dtype=np.int64 if c == "k" else float) for c in _est.CORE_KEYS},
    )
    if cells <= _WORKSPACE_KEEP and rows <= _FINISH_ROWS:
        _WORKSPACE.arrays = ws
    return ws


_MANY_COLUMNS = ["k", "estimate", "se", "ci_low", "ci_high", "p", "tau2", "i2", "q", "q_p", "pi_low", "pi_high"]
_MANY_FLOAT_INDEX = pd.Index(_MANY_COLUMNS[1:])  # built once: ~100 us per call otherwise


def pool_many(
    yi, vi, *, method: str = "DL", test: str = "z", level: float = 0.95, pi: str = "z", engine: str = "auto"
) -> pd.DataFrame:
    """Pool each row of the 2-D arrays ``yi`` and ``vi`` (m analyses x up
    to n studies; NaN in ``yi`` marks a missing study, so ragged rows are
    padded with NaN; ``vi`` is ignored there).  Same estimators as
    :func:`pool`, and each row agrees with it to 1e-10.

    ``engine``:

    * ``"numpy"``: the code of :func:`pool` (which runs it with m = 1),
      vectorised over rows, REML and PM included (all rows iterate together;
      each stops when it has converged).  Rows are processed in blocks of
      about 40,960 cells (4096 rows of 10 studies), which bounds memory to
      the input plus a few MB plus the output.
    * ``"numba"``: a compiled kernel (:mod:`meta._fast`; needs the optional
      numba, ``pip install "meta[fast]"``), one pass per analysis, about 2x
      faster; only for ``method="FE"`` or ``"DL"`` with ``test="z"``.  The
      first call in a process compiles it (about 2 s, cached on disk after).
    * ``"auto"`` (default): ``"numba"`` where it is installed and applies,
      else ``"numpy"``.

    Returns a DataFrame with one row per analysis (index kept if ``yi`` is a
    DataFrame) and columns ``k, estimate, se, ci_low, ci_high, p, tau2, i2, q,
    q_p, pi_low, pi_high``.

    Raises ``ValueError`` if the shapes differ, a row has no finite ``yi``,
    ``yi`` is infinite, or ``vi`` is not finite and > 0 where ``yi`` is
    finite.
    """
    method, level = _method_level(method, level)
    _check_options(method, test, level, pi)
    fast = _use_fast(engine, method, test)
    index = yi.index if isinstance(yi, pd.DataFrame) else None
    try:
        y = np.asarray(yi, dtype=float)
        v = np.asarray(vi, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"yi and vi must be 2-D numeric arrays (analyses x studies): {exc}") from None
    if y.ndim != 2 or v.ndim != 2:
        raise ValueError(f"yi and vi must be 2-D (analyses x studies); got shapes {y.shape} and {v.shape}")
    if y.shape != v.shape:
        raise ValueError(f"yi and vi must have the same shape; got {y.shape} and {v.shape}")
    if y.shape[1] == 0:
        raise ValueError("yi has no columns: at least one study per analysis is needed")
    if fast:
        return _pool_many_fast(y, v, index, method, level, pi)
    return _pool_many_numpy(y, v, index, method, test, level, pi)


def _pool_many_numpy(y, v, index, method: str, test: str, level: float, pi: str) -> pd.DataFrame:
    """pool_many through the vectorised estimator code of :mod:`meta._estimators`."""
    m, n = y.shape
    res = np.empty((len(_MANY_COLUMNS), m))
    # Blocks of `rows` analyses are transposed into a reused work space
    # (fresh memory costs page faults) and fitted by fit_core; the per-analysis
    # sums of up to _FINISH_ROWS analyses are then turned into tests and
    # intervals by one call of finish (fewer, longer numpy calls).
    rows = min(max(1, min(_CHUNK, max(256, _BLOCK_CELLS // n))), m)
    span = max(rows, _FINISH_ROWS // rows * rows)
    work, flags, bits, sums = _workspace(rows * n, min(span, m))
    count_type = np.uint8 if n < 256 else np.int64
    rss = test == "hksj"
    bad = False
    k1 = 0
    for s0 in range(0, m, span):
        c0 = min(span, m - s0)
        for s in range(s0, s0 + c0, rows):
            c = min(rows, s0 + c0 - s)
            yc, vc, *scratch = (x.reshape(n, c) for x in work[:, : c * n])  # studies x analyses
            np.copyto(yc, y[s : s + c].T)
            np.copyto(vc, v[s : s + c].T)
            pad = np.isnan(yc, out=flags[: c * n].reshape(n, c))
            pad8 = pad.view(np.uint8)
            kc = n - np.add.reduce(pad8, axis=0, dtype=count_type).astype(np.int64)
            # padding y = 0, v = inf, set branch-free on the bit patterns (a
            # masked copy is several times slower on an irregular NaN pattern)
            keep, inf_pad = (b[: c * n].reshape(n, c) for b in bits)
            np.subtract(pad8, np.uint8(1), out=keep, dtype=np.int64, casting="unsafe")  # all bits set where a study is
            np.multiply(pad8, _INF_BITS, out=inf_pad, dtype=np.int64, casting="unsafe")  # inf where padding
            mk = ~pad if method in _est.NEEDS_MASK else None
            yb, vb = yc.view(np.int64), vc.view(np.int64)
            yb &= keep
            vb &= keep
            vb |= inf_pad
            # valid input: k >= 1, yi finite, 0 < vi < inf for each study
            # (vi = inf at padding only: counted against k)
            finite_v = np.less(vc, np.inf, out=pad)
            with np.errstate(invalid="ignore"):
                ok = (
                    kc.min() > 0
                    and -np.inf < yc.min()
                    and yc.max() < np.inf
                    and vc.min() > 0
                    and (np.add.reduce(finite_v.view(np.uint8), axis=0, dtype=count_type) == kc).all()
                )
            if not ok:
                bad = True
                break
            core = _est.fit_core(yc, vc, mk, kc, method=method, rss=rss, scratch=scratch)
            for key in _est.CORE_KEYS:
                if core[key] is not None:
                    sums[key][s - s0 : s - s0 + c] = core[key]
        if bad:
            break
        part = {key: (a[:c0] if rss or key != "rss" else None) for key, a in sums.items()}
        out = _est.finish(part, method=method, test=test, level=level, pi=pi)
        for j, col in enumerate(_MANY_COLUMNS):
            res[j, s0 : s0 + c0] = out[col]
        k1 += int((part["k"] == 1).sum())
    if bad:
        _many_input_error(y, v)
    _warn_k1(test, k1)
    return _many_frame(res, index)
