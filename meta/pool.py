"""Pool study effects: fixed-effect and random-effects models that agree with
R's metafor 3.8 ``rma()``.

Public functions:

* :func:`pool` - one meta-analysis (metafor ``rma(yi, vi, method=, test=)``
  plus ``predict()`` and ``weights()``);
* :func:`leave_one_out` - metafor ``leave1out()``;
* :func:`cumulative` - metafor ``cumul()``;
* :func:`subgroups` - one model per subgroup plus the test for subgroup
  differences (RevMan / R meta, separate tau2 per subgroup; or one common
  tau2 and metafor's QM test, ``tau2="common"``);
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

Inputs and results (as metafor's ``rma`` object): pandas inputs are paired
by index label (:func:`meta._checks.align`; different labels are a
``ValueError``, a Series beside a plain array is taken by position), and a
:class:`PoolResult` keeps the ``yi``, ``vi`` and study labels ``slab`` it was
fitted on, so ``leave_one_out(res)``, ``cumulative(res, order=)`` and the
verbs of :mod:`meta.bias` and :mod:`meta.plots` take the result alone.

``test="hksj"`` is metafor's ``test="knha"`` (Hartung & Knapp 2001; Sidik &
Jonkman 2002): the variance of the estimate multiplied by
Tests (``test=``, case-insensitive, metafor 3.8.1 ``rma(test=)``): ``"z"``;
``"hksj"`` = metafor's ``"knha"`` (Hartung & Knapp 2001; Sidik & Jonkman
2002): the variance of the estimate multiplied by
``sum(w (y - est)^2) / (k - 1)`` (not truncated at 1, as metafor 3.8) and t
with k - 1 df; ``"adhoc"``: the factor truncated at 1 (Knapp & Hartung 2003);
``"t"``: t with k - 1 df, no factor.  With k = 1 they fall back to ``"z"``
with a warning, as metafor.  Prediction intervals (``pi=``) are named as
metafor >= 4.0 ``predict(pi.type=)``: ``"default"`` (alias ``"z"``),
``"simple"``, ``"t"``, ``"riley"``; ``"higgins"`` is Higgins, Thompson &
Spiegelhalter (2009) (``pi="t"`` before metafor's names were adopted).
Q-profile CIs for tau2 and I2: :mod:`meta.confint` / :meth:`PoolResult.confint`.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta import _estimators as _est
from meta import _fast
from meta import _subgroup_tau2 as _sub

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
    return _checks.positions(bad, limit)


def _as_1d(x, name: str) -> np.ndarray:
    a = _checks.numbers(x, name)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {a.shape}")
    return a


def _option(value, name: str, allowed, aliases, what: str) -> str:
    """Canonical (lower-case) name of option ``name`` or a ValueError listing
    what would be valid."""
    key = value.lower() if isinstance(value, str) else value
    key = aliases.get(key, key)
    if key not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))} ({what}); got {value!r}")
    return key


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


def _check_options(method, test, level, pi):
    """Check the options shared by every pooling function; returns
    ``(method, test, level, pi)`` in canonical form: methods as
    :func:`_method_level`, ``test`` and ``pi`` case-insensitive
    (``test="knha"`` -> ``"hksj"``, ``pi="z"`` -> ``"default"``), ``level``
    a fraction."""
    method, level = _method_level(method, level)
    test = _option(test, "test", _est.TESTS, _est.TEST_ALIASES, "metafor's test=; 'knha' = 'hksj'")
    pi = _option(pi, "pi", _est.PIS, _est.PI_ALIASES, "metafor predict(pi.type=); 'z' = 'default'")
    return method, test, level, pi


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
    if test != "z" and k1:
        warnings.warn(
            f"test={test!r} needs k >= 2; used test='z' for {k1} analys{'is' if k1 == 1 else 'es'} with k = 1 (as metafor)",
            stacklevel=3,
        )


# --------------------------------------------------------------------------- results


from meta._format import metafor_num as _fmt, metafor_p as _fmt_p  # noqa: E402 (metafor's printout; meta.bias uses them)


_DATA_FIELDS = ("weights", "yi", "vi", "slab")


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

    The data it was fitted on, as metafor's ``rma`` object keeps them, so that
    every later verb takes the result alone (``egger(res)``,
    ``trimfill(res)``, ``leave_one_out(res)``, ``cumulative(res, order=)``,
    ``forest(res)``, ``funnel(res)``): ``yi``, ``vi`` (read-only float
    arrays, in the order of ``weights``) and ``slab`` (study labels, a tuple:
    metafor's name; default the pandas index of the input, else 1..k).  They
    are left out of ``to_frame()``, ``repr`` and ``==``.  ``None`` / ``()``
    for a result built by hand without data.
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
    pi: str = "default"
    yi: np.ndarray | None = field(default=None, repr=False, compare=False)
    vi: np.ndarray | None = field(default=None, repr=False, compare=False)
    slab: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        for name in ("yi", "vi"):
            a = getattr(self, name)
            if a is not None:
                a = np.array(a, dtype=float)  # a copy: the caller's array stays theirs
                a.setflags(write=False)
                object.__setattr__(self, name, a)
        object.__setattr__(self, "slab", tuple(self.slab))

    def to_frame(self) -> pd.DataFrame:
        """One row, one column per scalar field (``weights``, ``yi``, ``vi``, ``slab`` left out)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _DATA_FIELDS}
        return pd.DataFrame([row])

    def confint(self, level: float | None = None):
        """Q-profile confidence intervals for tau2, tau, I2 and H2 (metafor
        ``confint()``; Viechtbauer 2007): :func:`meta.confint.confint` on
        this fit, which must carry its ``yi`` and ``vi``."""
        from meta._qprofile import confint_of  # lazy: scipy's root finder only when asked

        if self.yi is None or self.vi is None:
            raise ValueError("confint: this result does not carry its yi and vi; call confint(yi, vi, method=...)")
        return confint_of(self, self.yi, self.vi, level)

    def summary(self) -> str:
        """Text in metafor's print order: model, k, tau2, tau, I2, H2 (and,
        for random-effects fits that carry yi and vi, the Q-profile CI of
        tau2 and I2), Q test,
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
        if self.method != "FE" and self.k >= 2 and getattr(self, "yi", None) is not None and getattr(self, "vi", None) is not None:
            lines.append(self.confint().line())  # Q-profile CI (Viechtbauer 2007), metafor confint()
        lines += ["", "Test for Heterogeneity:"]
        qp = _fmt_p(self.q_p)
        lines.append(f"Q(df = {self.q_df}) = {_fmt(self.q)}, p-val {'< .0001' if qp == '<.0001' else '= ' + qp}")
        lines += ["", "Model Results:", ""]
        t_test = self.test != "z"
        stat_name = "tval" if t_test else "zval"
        cols = ["estimate", "se", stat_name] + (["df"] if t_test else []) + ["pval", "ci.lb", "ci.ub"]
        vals = [_fmt(self.estimate), _fmt(self.se), _fmt(self.stat)]
        vals += [str(self.q_df)] if t_test else []
        vals += [_fmt_p(self.p), _fmt(self.ci_low), _fmt(self.ci_high)]
        width = [max(len(c), len(x)) + 2 for c, x in zip(cols, vals)]
        lines.append("".join(c.rjust(wd) for c, wd in zip(cols, width)))
        lines.append("".join(x.rjust(wd) for x, wd in zip(vals, width)))
        lines.append("")
        how = _pi_how(self.pi, self.test, self.method)
        lines.append(f"{pct} prediction interval [{how}]: {_fmt(self.pi_low)} to {_fmt(self.pi_high)}")
        lines.append(f"{pct} CI level; test = {self.test}")
        return "\n".join(lines)


def _pi_how(pi: str, test: str, method: str) -> str:
    """How the prediction interval was computed, for summary()."""
    if pi in ("default", "z"):
        return "t, k-1 df (metafor predict)" if test != "z" else "z (metafor predict)"
    return {
        "simple": "z, est +- z tau (metafor pi.type='simple')",
        "t": "t, k-1 df (metafor pi.type='t')",
        "riley": f"t, k-{1 if method == 'FE' else 2} df (metafor pi.type='riley')",
        "higgins": "t, k-2 df (Higgins et al. 2009)",
    }[pi]


def _result(out: dict, i, method, test, level, pi, weights: np.ndarray, yi=None, vi=None, slab=()) -> PoolResult:
    """PoolResult of analysis ``i`` of ``out`` (arrays per analysis; ``i=None``: ``out`` holds scalars)."""
    o = out if i is None else {c: out[c][i] for c in _RESULT_KEYS}
    return PoolResult(
        k=int(o["k"]),
        estimate=float(o["estimate"]),
        se=float(o["se"]),
        stat=float(o["stat"]),
        p=float(o["p"]),
        ci_low=float(o["ci_low"]),
        ci_high=float(o["ci_high"]),
        tau2=float(o["tau2"]),
        tau=float(o["tau"]),
        i2=float(o["i2"]),
        h2=float(o["h2"]),
        q=float(o["q"]),
        q_df=int(o["q_df"]),
        q_p=float(o["q_p"]),
        pi_low=float(o["pi_low"]),
        pi_high=float(o["pi_high"]),
        weights=weights,
        method=method,
        test=test if o["t_used"] else "z",
        level=float(level),
        pi=pi,
        yi=yi,
        vi=vi,
        slab=slab,
    )


_RESULT_KEYS = (
    "k", "estimate", "se", "stat", "p", "ci_low", "ci_high", "tau2", "tau", "i2", "h2", "q", "q_df", "q_p", "pi_low",
    "pi_high", "t_used",
)


# --------------------------------------------------------------------------- pool

_DEFAULTS = {"method": "DL", "test": "z", "level": 0.95, "pi": "default"}
_FINITE = ("estimate", "se", "ci_low", "ci_high", "tau2", "q")  # finite for every valid input


def _quiet():
    """Overflowing sums are reported by _checks.finite_results (a ValueError), not as numpy RuntimeWarnings."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _labels(labels, index, k: int, name: str = "labels") -> tuple:
    """Study labels: ``labels`` if given, else the pandas index of the input, else 1..k (metafor)."""
    if labels is None:
        if index is not None:
            return tuple(index)
        return tuple(range(1, k + 1))  # metafor's default study labels 1..k
    lab = list(labels.to_numpy() if isinstance(labels, (pd.Series, pd.Index)) else labels)
    if len(lab) != k:
        raise ValueError(f"{name} must have one entry per study ({k}); got {len(lab)}")
    return tuple(lab)


def _study_data(yi, vi, labels, extra: dict, who: str, label_name: str = "labels"):
    """Checked ``(y, v, labels, extra)``, pandas inputs paired by label (see
    :func:`meta._checks.align`): ``yi``, ``vi``, ``labels`` and the per-study
    ``extra`` arguments (``order``, ``groups``) reordered to the first pandas
    argument's order."""
    args, index = _checks.align({"yi": yi, "vi": vi, label_name: labels, **extra})
    y, v = _check_pair(args["yi"], args["vi"])
    lab = _labels(args[label_name], index, y.size, label_name)
    return y, v, lab, {k: args[k] for k in extra}


def _from_result(res: "PoolResult", vi, labels, extra: dict, options: dict, who: str):
    """``(y, v, labels, extra, options)`` of a fitted result: its data, its
    method/test/level/pi (a different one passed as well is refused) and
    ``extra`` Series aligned to its study labels ``res.slab``."""
    if vi is not None:
        raise ValueError(f"{who}: got a PoolResult and vi; pass either the result alone ({who}(res)) or yi and vi")
    if res.yi is None or res.vi is None:
        raise ValueError(f"{who}: this PoolResult carries no yi/vi (built by hand); pass yi and vi")
    opts = {}
    keys = ("method", "test", "level", "pi")
    given = {k: x for k, x in options.items() if x is not None}
    canon = dict(zip(keys, _check_options(**{**{k: getattr(res, k) for k in keys}, **given})))
    for key, value in options.items():
        have = getattr(res, key)
        if value is not None and canon[key] != have and not (key == "test" and canon[key] != "z" and res.k == 1):
            raise ValueError(
                f"{who}: {key}={value!r} differs from the result's {key}={have!r}; with a result the "
                f"options come from it (refit with pool(..., {key}={value!r}) to change them)"
            )
        opts[key] = have
    slab = res.slab if len(res.slab) == res.k else tuple(range(1, res.k + 1))
    ref = pd.Series(np.zeros(res.k), index=pd.Index(slab, tupleize_cols=False))
    args, _ = _checks.align({"result.slab": ref, **extra}) if any(isinstance(x, (pd.Series, pd.DataFrame)) for x in extra.values()) else (extra, None)
    lab = _labels(labels, None, res.k) if labels is not None else slab
    return np.asarray(res.yi), np.asarray(res.vi), lab, {k: args[k] for k in extra}, opts


def _inputs(who: str, yi, vi, labels, extra: dict, options: dict, label_name: str = "labels"):
    """Data and options of a verb called either as ``verb(yi, vi, ...)`` or ``verb(res, ...)``."""
    if isinstance(yi, PoolResult):
        y, v, lab, ext, opts = _from_result(yi, vi, labels, extra, options, who)
    else:
        if vi is None:
            raise ValueError(f"{who}: vi is missing; pass yi and vi, or a PoolResult from pool()")
        opts = {k: (_DEFAULTS[k] if x is None else x) for k, x in options.items()}
        opts = dict(zip(("method", "test", "level", "pi"), _check_options(**{**_DEFAULTS, **opts})))
        y, v, lab, ext = _study_data(yi, vi, labels, extra, who, label_name)
    return y, v, lab, ext, opts


def pool(
    yi, vi, *, method: str = "DL", test: str = "z", level: float = 0.95, pi: str = "default", slab=None
) -> PoolResult:
    """Pool effect sizes ``yi`` with sampling variances ``vi``.

    Equivalent to metafor 3.8 ``rma(yi, vi, method=method, test=test)``
    (``test`` ``"z"``, ``"hksj"`` = ``"knha"``, ``"adhoc"``, ``"t"``;
    case-insensitive), with ``predict(pi.type=pi)`` for the prediction
    interval (metafor >= 4.0 names: ``"default"``, alias ``"z"``;
    ``"simple"``; ``"t"``: t with k-1 df; ``"riley"``: t with k-2 df;
    and ``"higgins"``: t with k-2 df, NaN for k < 3, Higgins, Thompson &
    Spiegelhalter 2009, which was ``pi="t"`` before) and ``weights()``
    (percent) for ``weights``.  Q-profile CIs for tau2, I2:
    :meth:`PoolResult.confint`.

    ``slab``: study labels (metafor's name), kept in the result; default the
    pandas index of ``yi`` (or ``vi``), else 1..k.  The result keeps ``yi``,
    ``vi`` and ``slab``, so that ``egger(res)``, ``trimfill(res)``,
    ``leave_one_out(res)``, ``forest(res)``, ``funnel(res)`` need nothing else.

    pandas inputs are paired by index label: Series holding the same labels
    in another order are reordered to the first one's order; different
    labels raise ``ValueError``.  A Series beside a plain list/array is taken
    by position, as pandas does (:func:`meta._checks.align`).

    k = 1 returns that study: tau2 = 0, Q = 0 (df 0, p = 1), I2 = 0, H2 = 1,
    as metafor does.  Raises ``ValueError`` naming the argument and the
    positions for mismatched lengths or labels, empty input, NaN/inf,
    booleans, complex numbers, ``vi <= 0``, or input so large that the sums
    overflow.
    """
    method, test, level, pi = _check_options(method, test, level, pi)
    y, v, lab, _ = _study_data(yi, vi, slab, {}, "pool", "slab")
    with _quiet():
        # FE and DL: the closed forms on one analysis (no 2-D machinery); None where
        # a sum overflows, and the 2-D fit below then reports it
        one = _est.fit_one(y, v, method=method, test=test, level=level, pi=pi) if method in _est.SCALAR_METHODS else None
        if one is None:
            out = _est.fit(y[:, None], v[:, None], np.ones((y.size, 1), bool), method=method, test=test, level=level, pi=pi, weights=True)
    if one is not None:
        _warn_k1(test, int(y.size == 1))
        return _result(one, None, method, test, level, pi, one["weights"], y, v, lab)
    _checks.finite_results({c: out[c] for c in _FINITE}, "yi, vi", "pool")
    _warn_k1(test, int(y.size == 1))
    return _result(out, 0, method, test, level, pi, out["weights"][:, 0], y, v, lab)


# --------------------------------------------------------------------------- sensitivity


_STEP_COLUMNS = ["k", "estimate", "se", "stat", "p", "ci_low", "ci_high", "q", "q_p", "tau2", "i2", "h2"]


def _fit_matrix(y2, v2, mask, method, test, level, pi, who: str = "") -> pd.DataFrame:
    """Fit each row of (analyses x studies) arrays (the estimators take studies x analyses)."""
    t = np.ascontiguousarray
    with _quiet():
        out = _est.fit(t(y2.T), t(v2.T), t(mask.T), method=method, test=test, level=level, pi=pi)
    _checks.finite_results({c: out[c] for c in _FINITE}, "yi, vi", who)
    _warn_k1(test, int((out["k"] == 1).sum()))
    return pd.DataFrame({c: out[c] for c in _STEP_COLUMNS})


def leave_one_out(
    yi, vi=None, *, method: str | None = None, labels=None, test: str | None = None, level: float | None = None,
    pi: str | None = None,
) -> pd.DataFrame:
    """Refit leaving out each study in turn (metafor ``leave1out()``).

    Called as ``leave_one_out(res)`` with a :class:`PoolResult` (its data,
    labels ``res.slab`` and method/test/level/pi, as metafor
    ``leave1out(res)``), or as ``leave_one_out(yi, vi, method=...)`` (defaults
    ``method="DL", test="z", level=0.95, pi="z"``; pandas inputs paired by
    label as in :func:`pool`).

    One row per omitted study: ``omitted`` (its label; default the Series
    index or 1..k), then ``k, estimate, se, stat, p, ci_low, ci_high, q, q_p,
    tau2, i2, h2`` of the model without it.  Needs k >= 2 (metafor stops at
    k = 1).
    """
    opts = {"method": method, "test": test, "level": level, "pi": pi}
    y, v, lab, _, opts = _inputs("leave_one_out", yi, vi, labels, {}, opts)
    method, test, level, pi = opts["method"], opts["test"], opts["level"], opts["pi"]
    k = y.size
    if k < 2:
        raise ValueError("leave_one_out needs at least 2 studies (k >= 2); got k = 1")
    keep = ~np.eye(k, dtype=bool)
    y2 = y[None, :].repeat(k, 0)[keep].reshape(k, k - 1)
    v2 = v[None, :].repeat(k, 0)[keep].reshape(k, k - 1)
    df = _fit_matrix(y2, v2, np.ones((k, k - 1), bool), method, test, level, pi, "leave_one_out")
    df.insert(0, "omitted", list(lab))
    return df


def cumulative(
    yi, vi=None, order=None, *, method: str | None = None, labels=None, test: str | None = None,
    level: float | None = None, pi: str | None = None,
) -> pd.DataFrame:
    """Cumulative meta-analysis (metafor 3.8 ``cumul(res, order=order)``).

    Called as ``cumulative(res, order=years)`` with a :class:`PoolResult`
    (its data, labels and options; ``cumulative(res, years)`` also works), or
    as ``cumulative(yi, vi, order, method=...)`` (defaults as
    :func:`leave_one_out`).  A pandas ``order`` is paired with the studies by
    label (the result's ``slab``, or the index of ``yi``).

    ``order`` holds sort keys (e.g. publication year), one per study; studies
    are added in ascending order of the keys, ties kept in input order (R's
    ``order()`` is stable too).  ``order=None`` adds them in input order.  One
    row per step: ``added`` (label of the study added), then ``k, estimate,
    se, stat, p, ci_low, ci_high, q, q_p, tau2, i2, h2`` of the model fitted to
    the studies added so far.
    """
    if isinstance(yi, PoolResult) and vi is not None and order is None:
        vi, order = None, vi  # cumulative(res, years)
    opts = {"method": method, "test": test, "level": level, "pi": pi}
    y, v, lab, ext, opts = _inputs("cumulative", yi, vi, labels, {"order": order}, opts)
    method, test, level, pi = opts["method"], opts["test"], opts["level"], opts["pi"]
    order = ext["order"]
    k = y.size
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
    df = _fit_matrix(y2, v2, mask, method, test, level, pi, "cumulative")
    df.insert(0, "added", [lab[i] for i in idx])
    return df


# --------------------------------------------------------------------------- subgroups


@dataclass(frozen=True)
class SubgroupResult:
    """Subgroup analysis and the test for subgroup differences.

    ``tau2_mode="separate"`` (default): one model per subgroup, each with its
    own tau2, and the test as RevMan 5 (Deeks & Higgins 2010) and R meta
    report it: ``Q_between = sum(w_g (est_g - est_w)^2)``, ``w_g = 1/se_g^2``,
    ``est_w = sum(w_g est_g)/sum(w_g)``, chi-square with G - 1 df.

    ``tau2_mode="common"``: one tau2 shared by the subgroups, the
    mixed-effects model of metafor ``rma(yi, vi, mods = ~ factor(group),
    method=)`` (:mod:`meta._subgroup_tau2`): ``groups`` hold the subgroup
    estimates of that model (metafor ``~ 0 + factor(group)``),
    ``q_between`` is metafor's omnibus test of the moderators ``QM`` (the same
    formula with ``w_g`` from the common tau2), and ``tau2_common``, ``qe``,
    ``qe_df``, ``qe_p``, ``residual_i2``, ``residual_h2`` describe the
    residual heterogeneity (metafor ``tau2``, ``QE``, ``QEp``, ``I2``, ``H2``).
    """

    groups: dict
    overall: PoolResult
    q_between: float
    q_between_df: int
    q_between_p: float
    method: str = "DL"
    tau2_mode: str = "separate"
    tau2_common: float = math.nan
    qe: float = math.nan
    qe_df: int = 0
    qe_p: float = math.nan
    residual_i2: float = math.nan
    residual_h2: float = math.nan

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
        if self.tau2_mode == "common":
            qp = _fmt_p(self.qe_p)
            parts.append(f"Residual heterogeneity (tau^2 common to the subgroups, estimator: {self.method}):")
            parts.append(
                f"tau^2 = {_fmt(self.tau2_common)}, I^2 = {_fmt(self.residual_i2, 2)}%, H^2 = {_fmt(self.residual_h2, 2)}; "
                f"QE(df = {self.qe_df}) = {_fmt(self.qe)}, p-val " + ("< .0001" if qp == "<.0001" else "= " + qp)
            )
            parts += ["", "Test for subgroup differences (common tau^2; metafor QM of rma(mods = ~ factor(group))):"]
            name = "QM"
        else:
            parts.append("Test for subgroup differences (separate tau^2 per subgroup):")
            name = "Q_between"
        parts.append(
            f"{name}(df = {self.q_between_df}) = {_fmt(self.q_between)}, p-val "
            + ("< .0001" if _fmt_p(self.q_between_p) == "<.0001" else "= " + _fmt_p(self.q_between_p))
        )
        return "\n".join(parts)


_TAU2_MODES = ("separate", "common")


def subgroups(
    yi, vi, groups, *, method: str = "DL", test: str = "z", level: float = 0.95, pi: str = "default", tau2: str = "separate",
    slab=None,
) -> SubgroupResult:
    """Fit the subgroups and the overall model, and test for subgroup
    differences (see :class:`SubgroupResult`).  Subgroups keep their order
    of first appearance in ``groups``; keys are ``str(label)``.

    ``tau2="separate"`` (default; RevMan 5, R meta): a tau2 per subgroup.
    ``tau2="common"``: one tau2 across subgroups, metafor 3.8.1
    ``rma(yi, vi, mods = ~ factor(group), method=)`` (QM test with G - 1
    df); needs ``test="z"`` (metafor's Knapp-Hartung F test of the
    moderators is not implemented here).

    pandas ``yi``, ``vi``, ``groups`` are paired by index label as in
    :func:`pool` (same labels in another order: reordered to the first one's
    order; different labels: ``ValueError``).  Each subgroup's result keeps
    its own ``yi``, ``vi`` and ``slab`` (``slab=`` or the index, else 1..k
    numbered over all studies).
    """
    method, test, level, pi = _check_options(method, test, level, pi)
    mode = tau2.lower() if isinstance(tau2, str) else tau2
    if mode not in _TAU2_MODES:
        raise ValueError(f"tau2 must be one of {', '.join(map(repr, _TAU2_MODES))}; got {tau2!r}")
    if mode == "common" and test != "z":
        raise ValueError(f'tau2="common" supports test="z" only (metafor rma(mods = ~ factor(group))); got test={test!r}')
    y, v, lab, ext = _study_data(yi, vi, slab, {"groups": groups}, "subgroups", "slab")
    groups = ext["groups"]
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
    extra = {}
    if mode == "common":
        if len(labels) >= y.size:
            raise ValueError(f'tau2="common" needs more studies ({y.size}) than subgroups ({len(labels)})')
        t2 = _sub.tau2_common(y2, v2, y.size, method)
        core = _est.fit_core(y2, v2, mask, method="FE", weights=False)
        w, sw, est = _est._sums(y2, v2, np.full(len(labels), t2))
        core.update(tau2=np.full(len(labels), t2), sw=sw, est=est)
        out = _est.finish(core, method=method, test=test, level=level, pi=pi)
        out["weights"] = 100.0 * w / sw
        rsd = _sub.residual(y2, v2, y.size, t2)
        if method == "FE":
            qe, dfe = rsd["qe"], rsd["qe_df"]
            rsd["i2"] = max(0.0, 100.0 * (qe - dfe) / qe) if qe > 0 else math.nan
            rsd["h2"] = qe / dfe
        extra = dict(
            tau2_common=float(t2), qe=float(rsd["qe"]), qe_df=int(rsd["qe_df"]),
            qe_p=float(_lazy.special().chdtrc(rsd["qe_df"], rsd["qe"])),
            residual_i2=float(rsd["i2"]), residual_h2=float(rsd["h2"]),
        )
    else:
        with _quiet():
            out = _est.fit(y2, v2, mask, method=method, test=test, level=level, pi=pi, weights=True)
        _checks.finite_results({c: out[c] for c in _FINITE}, "yi, vi", "subgroups")
    _warn_k1(test, int((out["k"] == 1).sum()))
    res = {}
    for j, name in enumerate(labels):
        pos = np.flatnonzero(codes == j)
        res[str(name)] = _result(out, j, method, test, level, pi, out["weights"][mask[:, j], j], y[pos], v[pos], [lab[i] for i in pos])
    overall = pool(y, v, method=method, test=test, level=level, pi=pi, slab=list(lab))
    est = np.array([r.estimate for r in res.values()])
    wg = 1.0 / np.array([r.se for r in res.values()]) ** 2
    est_w = np.sum(wg * est) / np.sum(wg)
    qb = float(np.sum(wg * (est - est_w) ** 2))
    dfb = len(labels) - 1
    qbp = float(_lazy.special().chdtrc(dfb, qb)) if dfb > 0 else math.nan
    return SubgroupResult(
        groups=res, overall=overall, q_between=qb, q_between_df=dfb, q_between_p=qbp, method=method, tau2_mode=mode, **extra
    )


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


def _use_fast(engine: str, method: str, test: str, pi: str = "default") -> bool:
    """Whether pool_many runs the compiled kernel (see its ``engine``)."""
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, _ENGINES))}; got {engine!r}")
    applies = method in ("FE", "DL") and test == "z" and pi != "simple"
    if engine == "numba":
        if not applies:
            raise ValueError(
                f'engine="numba" covers method "FE" and "DL" with test="z" and pi other than "simple"; '
                f"got method={method!r}, test={test!r}, pi={pi!r}"
            )
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
    zcrit = _est.z_crit(1.0 - alpha / 2)
    kk = np.arange(n + 1)
    pcrit = _est.pi_crit(pi, kk, zcrit, fe=method == "FE", level=level)  # per k, as meta._estimators.finish (z test)
    out = np.empty((len(_MANY_COLUMNS), m))
    bad = _fast.kernel()(y, v, method == "FE", zcrit, pcrit, pi == "default" and method == "FE", _est.CHI2_TABLE, out)
    if bad >= 0:
        _many_input_error(y, v)
    q_p = out[_MANY_COLUMNS.index("q_p")]
    redo = ~np.isfinite(q_p)  # df > 200 (or an overflowing series): scipy, as chi2_sf does
    if redo.any():
        q_p[redo] = _lazy.special().chdtrc(out[0, redo] - 1, out[_MANY_COLUMNS.index("q"), redo])
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

    DataFrames ``yi`` and ``vi`` are paired by label (rows by index,
    columns by name; see :func:`meta._checks.align`); a DataFrame beside a
    plain array is taken by position.

    Raises ``ValueError`` if the shapes or labels differ, a row has no finite
    ``yi``, ``yi`` is infinite, ``vi`` is not finite and > 0 where ``yi`` is
    finite, the input is boolean or complex, or a row's sums overflow.
    """
    method, test, level, pi = _check_options(method, test, level, pi)
    fast = _use_fast(engine, method, test, pi)
    (args, index) = _checks.align({"yi": yi, "vi": vi})
    if not isinstance(args["yi"], pd.DataFrame):
        index = None
    y = _checks.numbers(args["yi"], "yi")
    v = _checks.numbers(args["vi"], "vi")
    if y.ndim != 2 or v.ndim != 2:
        raise ValueError(f"yi and vi must be 2-D (analyses x studies); got shapes {y.shape} and {v.shape}")
    if y.shape != v.shape:
        raise ValueError(f"yi and vi must have the same shape; got {y.shape} and {v.shape}")
    if y.shape[1] == 0:
        raise ValueError("yi has no columns: at least one study per analysis is needed")
    if fast:
        df = _pool_many_fast(y, v, index, method, level, pi)
    else:
        df = _pool_many_numpy(y, v, index, method, test, level, pi)
    bad = ~np.isfinite(df[["estimate", "se", "tau2", "q"]].to_numpy()).all(axis=1)
    if bad.any():
        raise ValueError(
            f"pool_many: yi, vi give non-finite results (sums overflow) in rows (0-based) {_positions(bad)}: "
            "the values are too large or too small to compute with in double precision; rescale them"
        )
    return df


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
    rss = test in _est.ADJUSTED_TESTS
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
