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
  NaN padding for ragged rows), same estimators as :func:`pool`; it lives in
  :mod:`meta.many` and is imported here.

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
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from meta import _checks, _lazy, _one, _refits
from meta import _estimators as _est
from meta._formulas import hksj_factor as _f_hksj
from meta import _subgroup_tau2 as _sub
from meta._measures import measure_of as _measure_of
from meta._slab import SHARED as _SHARED_LABELS, StudyNumbers
from meta.many import pool_many  # noqa: F401  (public name of meta.pool; the engines live in meta.many)

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

# --------------------------------------------------------------------------- input checks


def _as_1d(x, name: str) -> tuple[np.ndarray, bool]:
    """``x`` as a 1-D float array and whether it is ours (:func:`meta._checks.owned_numbers`)."""
    a, owned = _checks.owned_numbers(x, name)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {a.shape}")
    return a, owned


def _check_pair(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    """``yi``, ``vi`` checked (see :func:`_checked_pair`) as 1-D float arrays."""
    return _checked_pair(yi, vi)[:2]


def _as_pair(yi, vi):
    """``(y, v, owned)``: ``yi``, ``vi`` as 1-D float arrays of one length k >= 1
    and for each whether it is ours (:func:`_as_1d`); values not checked yet."""
    y, own_y = _as_1d(yi, "yi")
    v, own_v = _as_1d(vi, "vi")
    if y.size != v.size:
        raise ValueError(f"yi and vi must have the same length; got {y.size} and {v.size}")
    if y.size == 0:
        raise ValueError("yi is empty: at least one study (k >= 1) is needed to pool")
    return y, v, (own_y, own_v)


def _checked_pair(yi, vi):
    """``(y, v, owned)``: ``yi``, ``vi`` as 1-D float arrays of one length
    k >= 1, finite, ``vi > 0`` (``ValueError`` naming the argument and
    positions otherwise), and for each whether the array is ours to keep
    (made here from a list or by a cast) or may be the caller's (then a
    result keeps a copy)."""
    y, v, owned = _as_pair(yi, vi)
    if not _quick_ok(y, v):
        _exact_checks(y, v)
    return y, v, owned


def _quick_ok(y, v) -> bool:
    """Finite ``sum(y)``, ``sum(v)`` and ``min(v) > 0``: true for all valid input (NaN and inf
    propagate; an overflowing sum of finite values only sends the input to :func:`_exact_checks`)."""
    return math.isfinite(float(np.add.reduce(y))) and math.isfinite(float(np.add.reduce(v))) and bool(v.min() > 0)


def _exact_checks(y, v) -> None:
    """``ValueError`` naming the argument and the positions of values that are not finite, or ``vi <= 0``."""
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"yi must be finite (no NaN or inf); offending positions (0-based): {_checks.positions(bad)}")
    bad = ~np.isfinite(v)
    if bad.any():
        raise ValueError(f"vi must be finite (no NaN or inf); offending positions (0-based): {_checks.positions(bad)}")
    bad = v <= 0
    if bad.any():
        raise ValueError(f"vi must be > 0; offending positions (0-based): {_checks.positions(bad)}, values {v[bad][:10].tolist()}")


def _pool_pair(yi, vi):
    """``(y, v, owned, prepared)``: :func:`_checked_pair` for :func:`pool`, which
    keeps the data.  Beyond one block (:data:`meta._estimators.BLOCK`
    studies) one pass in blocks copies the caller's arrays, checks them (the
    fast path of :func:`_checked_pair`) and takes the fit's first sums
    (:meth:`meta._estimators._Blocks.first`), so ``y`` and ``v`` are read once
    for all three; ``prepared``: the keyword arguments that hand those sums
    and a spare array of k floats for the weights to
    :func:`meta._estimators.fit_one` (else ``{}``).

    The copies and the spare are the rows of one (n x k) allocation, freed as
    one block with the result.  glibc's malloc returns a freed block at the
    top of the heap to the system when it exceeds twice the largest block it
    has mapped and unmapped, so three 8 MB arrays (k = 10^6) freed one by one
    could go back to the system after every fit, and the next fit paid ~1,200
    page faults (a third of a DL fit's time); one block of 24 MB raises that
    bound for itself and its pages are reused.  (A result whose ``weights``
    alone are kept alive keeps the block.)"""
    y, v, (own_y, own_v) = _as_pair(yi, vi)
    k = y.size
    if k > _est.BLOCK:
        rows = iter(np.empty((3 - own_y - own_v, k)))
        ys = y if own_y else next(rows)
        vs = v if own_v else next(rows)
        spare = next(rows)
        blocks = _est._Blocks(ys, vs)
        with _quiet():  # invalid input (vi <= 0, NaN) is reported below, not as numpy warnings
            first = blocks.first(source=(None if own_y else y, None if own_v else v))
        if first is not None:
            return ys, vs, (True, True), {"blocks": blocks, "first": first, "weights_out": spare}
        _exact_checks(y, v)  # raises, unless finite values only overflowed a sum (the fit reports that)
        return y, v, (own_y, own_v), _NOTHING_PREPARED
    # _quick_ok inline: a Python call is ~2% of a fit of five studies
    if not (math.isfinite(float(np.add.reduce(y))) and math.isfinite(float(np.add.reduce(v))) and v.min() > 0):
        _exact_checks(y, v)
    return y, v, (own_y, own_v), _NOTHING_PREPARED


_NOTHING_PREPARED: dict = {}  # fit_one's keyword arguments when nothing was prepared (never mutated)


# --------------------------------------------------------------------------- results


from meta._format import metafor_num as _fmt, metafor_p as _fmt_p  # noqa: E402 (metafor's printout; meta.bias uses them)


_DATA_FIELDS = ("weights", "yi", "vi", "slab", "data_index")


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
    arrays, in the order of ``weights``) and ``slab`` (study labels,
    metafor's name: a tuple of the labels given or of the pandas index of the
    input; without either, metafor's 1..k as a
    :class:`meta._slab.StudyNumbers`, an immutable sequence that stores only k
    and behaves as the tuple ``(1, ..., k)``: equal to it (both ways), the same
    hash, indexing and slicing (a slice is a tuple), iteration, ``in``,
    ``repr``, pickling, ``np.asarray``; ``tuple(res.slab)`` gives the tuple).
    They are left out of ``to_frame()``, ``repr`` and ``==``.  ``None`` /
    ``()`` for a result built by hand without data.

    ``measure``: what ``yi`` measure (metafor's codes, :data:`meta._measures.MEASURES`:
    ``"SMD"``, ``"OR"``, ``"ZCOR"``, ...; ``"GEN"`` when unknown, as metafor's
    generic outcome), taken from an :func:`meta.escalc.escalc` frame or
    ``pool(..., measure=)``.  ``summary()`` adds the back-transformed estimate for
    OR, RR, PETO, ROM (exp) and ZCOR (tanh) and the plots label their axes by it.
    ``data_index``: the pandas index of the input (None for arrays), so that a
    Series from the same table pairs with the studies by label in every verb
    (``cumulative(res, order=df.year)``), also when ``slab`` holds other labels.
    ``repr(res)`` and ``print(res)`` give ``summary()``, as metafor's ``print``.
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
    slab: tuple | StudyNumbers = field(default=(), repr=False, compare=False)
    measure: str = "GEN"
    data_index: pd.Index | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        for name in ("yi", "vi"):
            a = getattr(self, name)
            if a is not None:
                a = np.array(a, dtype=float)  # a copy: the caller's array stays theirs
                a.setflags(write=False)
                object.__setattr__(self, name, a)
        if type(self.slab) is not StudyNumbers:  # (type(): an ABC's isinstance costs ~0.3 us)
            object.__setattr__(self, "slab", tuple(self.slab))
        object.__setattr__(self, "measure", _measure_name(self.measure))

    def __repr__(self) -> str:
        try:
            return self.summary()
        except Exception:  # a hand-built result summary() cannot print: the fields, as a dataclass shows them
            shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
            return f"PoolResult({shown})"

    def __str__(self) -> str:
        return self.__repr__()

    def to_frame(self) -> pd.DataFrame:
        """One row, one column per scalar field (``weights``, ``yi``, ``vi``, ``slab``, ``data_index`` left out)."""
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
        m = _measure_of(self.measure)
        if m.func is not None:  # metafor predict(res, transf=exp) / transf.ztor
            back = [float(m.func(x)) for x in (self.estimate, self.ci_low, self.ci_high, self.pi_low, self.pi_high)]
            fname = "exp" if m.func is np.exp else "tanh"
            lines += ["", f"Back-transformed ({fname}, {m.back}): estimate {_fmt(back[0])}, {pct} CI {_fmt(back[1])} to "
                          f"{_fmt(back[2])}, prediction interval {_fmt(back[3])} to {_fmt(back[4])}"]
        lines.append(f"{pct} CI level; test = {self.test}; measure = {self.measure} ({m.label})")
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


def _measure_name(measure) -> str:
    return _measure_of(measure).name


def _measure_from(measure, *args) -> str:
    """``measure`` if given, else the ``attrs["measure"]`` an escalc frame's columns carry, else ``"GEN"``."""
    if measure is not None:
        return _measure_name(measure)
    for a in args:
        m = getattr(a, "attrs", {}).get("measure") if isinstance(a, (pd.Series, pd.DataFrame)) else None
        if m is not None:
            return _measure_name(m)
    return "GEN"


def _result(out: dict, i, method, test, level, pi, weights: np.ndarray, yi=None, vi=None, slab=(), measure="GEN",
            data_index=None, owned=(False, False)) -> PoolResult:
    """PoolResult of analysis ``i`` of ``out`` (arrays per analysis; ``i=None``: ``out`` holds scalars).
    ``owned``: whether ``yi``, ``vi`` are arrays made by the caller that nothing else refers to
    (kept as they are, made read-only); the others are copied by the result."""
    o = out if i is None else {c: out[c][i] for c in _RESULT_KEYS}
    res = PoolResult(
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
        yi=None if owned[0] else yi,
        vi=None if owned[1] else vi,
        slab=slab,
        measure=measure,
        data_index=data_index,
    )
    if owned[0] or owned[1]:
        for name, a, own in (("yi", yi, owned[0]), ("vi", vi, owned[1])):
            if own and a is not None:  # ours alone: no second copy
                a = np.asarray(a, dtype=float)
                a.setflags(write=False)
                object.__setattr__(res, name, a)
    return res


_RESULT_KEYS = (
    "k", "estimate", "se", "stat", "p", "ci_low", "ci_high", "tau2", "tau", "i2", "h2", "q", "q_df", "q_p", "pi_low",
    "pi_high", "t_used",
)


# --------------------------------------------------------------------------- pool

_DEFAULTS = {"method": "DL", "test": "z", "level": 0.95, "pi": "default"}
_FINITE = ("estimate", "se", "ci_low", "ci_high", "tau2", "q")  # finite for every valid input


def _finite(out: dict) -> dict:
    """The :data:`_FINITE` fields of a fit to check for overflow; se and the CI
    are left out where test='hksj' had no information (NaN on purpose,
    :func:`meta._estimators.warn_hksj_no_information`)."""
    skip = np.asarray(out.get("no_information", False), bool)
    return {c: (np.asarray(out[c])[~skip] if c in ("se", "ci_low", "ci_high") and skip.any() else out[c]) for c in _FINITE}


def _quiet():
    """Overflowing sums are reported by _checks.finite_results (a ValueError), not as numpy RuntimeWarnings."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _labels(labels, index, k: int, name: str = "labels") -> tuple | StudyNumbers:
    """Study labels: ``labels`` if given, else the pandas index of the input, else 1..k (metafor;
    a :class:`meta._slab.StudyNumbers`, which stands for the tuple without k Python ints)."""
    if labels is None:
        if index is not None:
            _checks.one_kind(index, f"the index of the input (the study labels, {name})")
            return tuple(index)
        lab = _SHARED_LABELS.get(k)  # metafor's default study labels 1..k
        return lab if lab is not None else StudyNumbers.of(k)
    if type(labels) is StudyNumbers and len(labels) == k:  # a result's default labels passed on
        return labels
    lab = list(labels.to_numpy() if isinstance(labels, (pd.Series, pd.Index)) else labels)
    if len(lab) != k:
        raise ValueError(f"{name} must have one entry per study ({k}); got {len(lab)}")
    _checks.one_kind(lab, name)
    return tuple(lab)


def _take(labels, pos) -> list:
    """The labels at positions ``pos`` (0-based integers), as a list."""
    if type(labels) is StudyNumbers:
        return (np.asarray(pos, dtype=np.int64) + 1).tolist()  # label i + 1 at position i, as Python ints
    return [labels[i] for i in pos]


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
    canon = dict(zip(keys, _checks.estimator_options(**{**{k: getattr(res, k) for k in keys}, **given})))
    for key, value in options.items():
        have = getattr(res, key)
        if value is not None and canon[key] != have and not (key == "test" and canon[key] != "z" and res.k == 1):
            raise ValueError(
                f"{who}: {key}={value!r} differs from the result's {key}={have!r}; with a result the "
                f"options come from it (refit with pool(..., {key}={value!r}) to change them)"
            )
        opts[key] = have
    slab = res.slab if len(res.slab) == res.k else StudyNumbers.of(res.k)
    args = extra
    if any(isinstance(x, (pd.Series, pd.DataFrame)) for x in extra.values()):
        # a Series pairs with the studies by the input's index (a column of the same table) or by slab
        refs = [("result.slab", pd.Index(slab, tupleize_cols=False))]
        di = getattr(res, "data_index", None)
        if di is not None and len(di) == res.k:
            refs.insert(0, ("the result's data index", di))
        errors = []
        for name, idx in refs:
            try:
                args, _ = _checks.align({name: pd.Series(np.zeros(res.k), index=idx), **extra})
                break
            except ValueError as exc:
                errors.append(str(exc))
        else:
            if len(errors) == 1:
                raise ValueError(f"{who}: {errors[0]}")
            given = ", ".join(n for n, x in extra.items() if isinstance(x, (pd.Series, pd.DataFrame)))
            raise ValueError(
                f"{who}: {given} is a pandas object whose labels match neither the index of the data the result "
                f"was fitted on ({list(di)[:5]}{' ...' if len(di) > 5 else ''}) nor its slab ({list(slab)[:5]}"
                f"{' ...' if len(slab) > 5 else ''}); rows are paired by label, never by position: pass a Series "
                "with one of those labels (e.g. a column of the same table) or a plain array in study order"
            )
    lab = _labels(labels, None, res.k) if labels is not None else slab
    return np.asarray(res.yi), np.asarray(res.vi), lab, {k: args[k] for k in extra}, opts


def _inputs(who: str, yi, vi, labels, extra: dict, options: dict, label_name: str = "labels"):
    """Data and options of a verb called either as ``verb(yi, vi, ...)`` or ``verb(res, ...)``."""
    if isinstance(yi, PoolResult):
        y, v, lab, ext, opts = _from_result(yi, vi, labels, extra, options, who)
    else:
        if vi is None and getattr(yi, "method", None) in ("MH", "Peto"):  # meta.binary.BinaryResult
            raise ValueError(
                f"{who}: takes a PoolResult; a {'Mantel-Haenszel' if yi.method == 'MH' else 'Peto'} fit is not "
                f"refitted here. Use {who}(pool(res.yi, res.vi, method='FE', slab=res.slab, measure=res.measure)) "
                "for the inverse-variance analogue, or call meta.binary on the subsets of tables you need")
        if vi is None:
            raise ValueError(f"{who}: vi is missing; pass yi and vi, or a PoolResult from pool()")
        opts = {k: (_DEFAULTS[k] if x is None else x) for k, x in options.items()}
        opts = dict(zip(("method", "test", "level", "pi"), _checks.estimator_options(**{**_DEFAULTS, **opts})))
        y, v, lab, ext = _study_data(yi, vi, labels, extra, who, label_name)
    return y, v, lab, ext, opts


def _frame_columns(yi, vi, who: str):
    """``verb(es)`` with a DataFrame holding ``yi`` and ``vi`` columns (an escalc frame):
    its two columns; ``vi`` missing otherwise: a ValueError saying what to pass."""
    if vi is None and isinstance(yi, pd.DataFrame):
        if {"yi", "vi"} <= set(yi.columns):
            return yi["yi"], yi["vi"]
        raise ValueError(f"{who}: a DataFrame was passed as yi without yi and vi columns (it has {list(yi.columns)[:10]}); "
                         f"pass {who}(df.yi, df.vi) or a frame from meta.escalc.escalc()")
    if vi is None:
        raise ValueError(f"{who}: vi is missing; pass {who}(yi, vi), {who}(escalc_frame) or, for the verbs, a PoolResult")
    return yi, vi


def _tau2_one(y, v, method):
    """tau2 of one analysis for the methods that ``fit_one`` does not compute itself (NaN where it fails)."""
    if method in _est.SCALAR_METHODS or method == "FE":
        return None
    try:
        return _one.tau2_one(y, v, method)
    except (ArithmeticError, ValueError):  # overflowing sums: the 2-D fit reports them
        return math.nan


def pool(
    yi, vi=None, *, method: str = "DL", test: str = "z", level: float = 0.95, pi: str = "default", slab=None,
    measure: str | None = None, mods=None, data=None,
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

    ``measure``: the effect measure of ``yi`` (metafor's codes, e.g. ``"SMD"``,
    ``"OR"``); default: ``attrs["measure"]`` of an :func:`meta.escalc.escalc`
    frame's columns, else ``"GEN"`` (generic).  ``pool(es)`` with an escalc
    frame (or any DataFrame with ``yi`` and ``vi`` columns) is ``pool(es.yi,
    es.vi)``, as metafor's ``rma(yi, vi, data=es)``.

    k = 1 returns that study: tau2 = 0, Q = 0 (df 0, p = 1), I2 = 0, H2 = 1,
    as metafor does.  Raises ``ValueError`` naming the argument and the
    positions for mismatched lengths or labels, empty input, NaN/inf,
    booleans, complex numbers, ``vi <= 0``, or input so large that the sums
    overflow.

    ``mods`` (with optional ``data``, which ``yi``, ``vi``, ``mods`` and
    ``slab`` may name columns of): moderators; the call is then
    :func:`meta.regression.meta_regression` (metafor ``rma(yi, vi, mods=)``)
    with these options and returns its ``RegressionResult``.
    """
    if data is not None and mods is None:
        raise ValueError("pool: data= goes with mods= (a meta-regression); without moderators pass yi and vi themselves")
    if mods is not None:  # meta-regression: metafor rma(yi, vi, mods=)
        from meta.regression import meta_regression

        if vi is None and isinstance(yi, pd.DataFrame):  # pool(escalc_frame, mods=...)
            yi, vi = _frame_columns(yi, vi, "pool")
        return meta_regression(yi, vi, mods, data=data, method=method, test=test, level=level, pi=pi, slab=slab)
    method, test, level, pi = _checks.estimator_options(method, test, level, pi)
    yi, vi = _frame_columns(yi, vi, "pool")
    measure = _measure_from(measure, yi, vi)
    args, index = _checks.align({"yi": yi, "vi": vi, "slab": slab})  # as _study_data, keeping the index
    y, v, owned, prepared = _pool_pair(args["yi"], args["vi"])
    lab = _labels(args["slab"], index, y.size, "slab")
    if type(lab) is not StudyNumbers:  # metafor's default labels 1..k are distinct
        _checks.warn_shared_labels(lab, "pool")
    with _quiet():
        # every method on one analysis without the 2-D machinery (meta._one: the same
        # estimators); None where a sum overflows, and the 2-D fit below then reports it
        one = _est.fit_one(y, v, method=method, test=test, level=level, pi=pi, tau2=_tau2_one(y, v, method),
                           **prepared)
        if one is None:
            out = _est.fit(y[:, None], v[:, None], np.ones((y.size, 1), bool), method=method, test=test, level=level, pi=pi, weights=True)
    if one is not None:
        _checks.warn_k1(test, int(y.size == 1))
        return _result(one, None, method, test, level, pi, one["weights"], y, v, lab, measure, index, owned)
    _checks.finite_results(_finite(out), "yi, vi", "pool")
    _checks.warn_k1(test, int(y.size == 1))
    return _result(out, 0, method, test, level, pi, out["weights"][:, 0], y, v, lab, measure, index, owned)


# --------------------------------------------------------------------------- sensitivity


_STEP_COLUMNS = ["k", "estimate", "se", "stat", "p", "ci_low", "ci_high", "q", "q_p", "tau2", "i2", "h2"]


def _fit_refits(core: dict, method, test, level, pi, who: str) -> pd.DataFrame:
    """Tests, intervals and the step table from the per-refit sums of :mod:`meta._refits`."""
    with _quiet():
        out = _est.finish(core, method=method, test=test, level=level, pi=pi)
    _checks.finite_results(_finite(out), "yi, vi", who)
    _checks.warn_k1(test, int((out["k"] == 1).sum()))
    return pd.DataFrame({c: out[c] for c in _STEP_COLUMNS})


def _slab_or_labels(slab, labels, who: str):
    """``slab=`` (metafor's name) or ``labels=`` (the same, kept as an alias); not both."""
    if slab is not None and labels is not None:
        raise ValueError(f"{who}: pass the study labels once, as slab= (metafor's name); labels= is an alias of it")
    return slab if slab is not None else labels


def leave_one_out(
    yi, vi=None, *, method: str | None = None, labels=None, test: str | None = None, level: float | None = None,
    pi: str | None = None, slab=None,
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
    k = 1).  Study labels: ``slab=`` (metafor's name; ``labels=`` is an alias).
    """
    opts = {"method": method, "test": test, "level": level, "pi": pi}
    labels = _slab_or_labels(slab, labels, "leave_one_out")
    y, v, lab, _, opts = _inputs("leave_one_out", yi, vi, labels, {}, opts)
    method, test, level, pi = opts["method"], opts["test"], opts["level"], opts["pi"]
    k = y.size
    if k < 2:
        raise ValueError("leave_one_out needs at least 2 studies (k >= 2); got k = 1")
    # the k refits in bounded memory (meta._refits: O(k) sums where the estimator allows)
    with _quiet():
        core = _refits.leave_one_out_core(y, v, method, test)
    df = _fit_refits(core, method, test, level, pi, "leave_one_out")
    df.insert(0, "omitted", list(lab))
    return df


def cumulative(
    yi, vi=None, order=None, *, method: str | None = None, labels=None, test: str | None = None,
    level: float | None = None, pi: str | None = None, slab=None,
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
    the studies added so far.  Study labels: ``slab=`` (``labels=`` is an alias).
    A pandas ``order`` from the table the result was fitted on pairs with the
    studies by that table's index (``cumulative(res, order=df.year)`` after
    ``pool(df.yi, df.vi, slab=df.study)``), or by the result's ``slab``.
    """
    labels = _slab_or_labels(slab, labels, "cumulative")
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
        _checks.one_kind(order, "order")
        keys = np.asarray(order)
        if keys.ndim != 1 or keys.size != k:
            raise ValueError(f"order must hold one sort key per study ({k}); got shape {keys.shape}")
        if keys.dtype.kind == "f" and np.isnan(keys).any():
            raise ValueError(f"order must not contain NaN; offending positions (0-based): {_checks.positions(np.isnan(keys))}")
        idx = np.argsort(keys, kind="stable")
    with _quiet():
        core = _refits.cumulative_core(y[idx], v[idx], method, test)
    df = _fit_refits(core, method, test, level, pi, "cumulative")
    df.insert(0, "added", _take(lab, idx))
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
    With ``test="hksj"`` (metafor ``"knha"``), ``"adhoc"`` or ``"t"`` in the
    common mode, ``f_between`` is metafor's F test of the moderators (``QM``
    of ``rma(..., test="knha")``) on ``f_between_df1 = G - 1`` and
    ``f_between_df2 = k - G`` df with p ``f_between_p`` (see
    :func:`_common_t_test`); ``q_between`` stays the chi-square Wald QM of
    the z test.  NaN / 0 otherwise.
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
    f_between: float = math.nan
    f_between_df1: int = 0
    f_between_df2: int = 0
    f_between_p: float = math.nan

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
        if self.tau2_mode == "common" and self.f_between_df2 > 0:
            fp = _fmt_p(self.f_between_p)
            parts.append(
                f"F(df1 = {self.f_between_df1}, df2 = {self.f_between_df2}) = {_fmt(self.f_between)}, p-val "
                + ("< .0001" if fp == "<.0001" else "= " + fp)
                + f" (metafor QM with test={self.overall.test!r})"
            )
        return "\n".join(parts)


_TAU2_MODES = ("separate", "common")


def _wald_between(out) -> float:
    """``sum(w_g (est_g - est_w)^2)``, ``w_g = 1/se_g^2``: the test for
    subgroup differences (separate tau2), and metafor's QM of
    ``rma(mods = ~ factor(group))`` when the se come from the common tau2."""
    est = np.asarray(out["estimate"], dtype=float)
    wg = 1.0 / np.asarray(out["se"], dtype=float) ** 2
    est_w = np.sum(wg * est) / np.sum(wg)
    return float(np.sum(wg * (est - est_w) ** 2))


def _common_t_test(out, y2, v2, w, k: int, *, tau2: float, test: str, level: float, qm: float, fe: bool) -> dict:
    """Knapp-Hartung-type inference of the common-tau2 subgroup model, as
    metafor 3.8.1 ``rma(yi, vi, mods = ~ factor(group), test=)`` with
    ``test="knha"`` (our ``"hksj"``), ``"adhoc"`` or ``"t"``.

    ``s2w = sum_g sum(w (y - est_g)^2) / (k - G)`` at the common tau2
    (Knapp & Hartung 2003; 0 when the sum is below machine epsilon;
    ``"adhoc"``: at least 1; ``"t"``: 1).  The subgroup estimates (metafor
    ``~ 0 + factor(group)``) get ``se_g = sqrt(s2w / sum_g(w))``, t tests and
    CIs with ``k - G`` df, and prediction intervals
    ``est_g +- t_{k-G} sqrt(se_g^2 + tau2)`` (metafor ``predict()``; ``fe``:
    the CI, as :func:`pool` gives FE fits), written into ``out``.  The test of subgroup differences is metafor's F test of
    the moderators: ``F = QM / ((G - 1) s2w)`` with ``QM`` the Wald
    statistic of the unscaled model, on ``G - 1`` and ``k - G`` df.
    Returns the ``f_between*`` fields of :class:`SubgroupResult`."""
    g = y2.shape[1]
    df2 = k - g
    est = np.asarray(out["estimate"], dtype=float)
    if test == "t":
        s2w = 1.0
    else:
        rss = float(np.sum(w * (y2 - est) ** 2))
        s2w = float(_f_hksj(rss, df2, test == "adhoc"))
    sp = _lazy.special()
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(s2w * np.asarray(out["se"], dtype=float) ** 2)
        stat = est / se
        crit = float(sp.stdtrit(df2, 1.0 - (1.0 - level) / 2))
        p = 2.0 * sp.stdtr(df2, -np.abs(stat))
        f = qm / (g - 1) / s2w if g > 1 else math.nan
    ones = np.ones(g, dtype=bool)
    pi_half = crit * (se if fe else np.sqrt(se * se + tau2))  # FE: PI = CI, as pool()
    out.update(se=se, stat=stat, p=p, ci_low=est - crit * se, ci_high=est + crit * se,
               pi_low=est - pi_half, pi_high=est + pi_half, t_used=ones, hksj=ones)
    f_p = float(sp.fdtrc(g - 1, df2, f)) if g > 1 and math.isfinite(f) else math.nan
    return dict(f_between=float(f), f_between_df1=g - 1, f_between_df2=int(df2), f_between_p=f_p)


def subgroups(
    yi, vi, groups, *, method: str = "DL", test: str = "z", level: float = 0.95, pi: str = "default", tau2: str = "separate",
    slab=None, measure: str | None = None,
) -> SubgroupResult:
    """Fit the subgroups and the overall model, and test for subgroup
    differences (see :class:`SubgroupResult`).  Subgroups keep their order
    of first appearance in ``groups``; keys are ``str(label)``.

    ``tau2="separate"`` (default; RevMan 5, R meta): a tau2 per subgroup.
    ``tau2="common"``: one tau2 across subgroups, metafor 3.8.1
    ``rma(yi, vi, mods = ~ factor(group), method=)`` (QM test with G - 1
    df); with ``test="hksj"`` (metafor ``"knha"``), ``"adhoc"`` or ``"t"``
    also metafor's F test of the moderators (``f_between``, df ``G - 1`` and
    ``k - G``) and subgroup estimates with t tests on ``k - G`` df (one
    Knapp-Hartung factor for the whole model; ``pi="default"`` only).

    pandas ``yi``, ``vi``, ``groups`` are paired by index label as in
    :func:`pool` (same labels in another order: reordered to the first one's
    order; different labels: ``ValueError``).  Each subgroup's result keeps
    its own ``yi``, ``vi`` and ``slab`` (``slab=`` or the index, else 1..k
    numbered over all studies).
    """
    method, test, level, pi = _checks.estimator_options(method, test, level, pi)
    mode = tau2.lower() if isinstance(tau2, str) else tau2
    if mode not in _TAU2_MODES:
        raise ValueError(f"tau2 must be one of {', '.join(map(repr, _TAU2_MODES))}; got {tau2!r}")
    if mode == "common" and test != "z" and pi != "default":
        raise ValueError(
            f'tau2="common" with test={test!r} gives the prediction interval of metafor predict() (t with k - G df): '
            f'use pi="default"; got pi={pi!r}'
        )
    measure = _measure_from(measure, yi, vi)  # as pool(): measure=, else an escalc column's, else "GEN"
    y, v, lab, ext = _study_data(yi, vi, slab, {"groups": groups}, "subgroups", "slab")
    groups = ext["groups"]
    g = pd.Series(np.asarray(groups, dtype=object)) if not isinstance(groups, pd.Series) else groups.reset_index(drop=True)
    if len(g) != y.size:
        raise ValueError(f"groups must have one label per study ({y.size}); got {len(g)}")
    if g.isna().any():
        raise ValueError(f"groups must not be missing; offending positions (0-based): {_checks.positions(g.isna().to_numpy())}")
    _checks.one_kind(g, "groups")
    labels = list(pd.unique(g))
    keys = [str(x) for x in labels]
    if len(set(keys)) != len(keys):  # the result's keys are str(label): never let two groups share one
        same = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"groups holds different labels that print the same ({same}); give groups distinct text")
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
        out = _est.finish(core, method=method, test="z" if test != "z" else test, level=level, pi=pi)
        out["weights"] = 100.0 * w / sw
        qm = _wald_between(out)  # metafor's QM (z): computed before a t-based test rescales the se
        if test != "z":
            extra.update(_common_t_test(out, y2, v2, w, y.size, tau2=t2, test=test, level=level, qm=qm,
                                        fe=method == "FE"))
        rsd = _sub.residual(y2, v2, y.size, t2)
        if method == "FE":
            qe, dfe = rsd["qe"], rsd["qe_df"]
            rsd["i2"] = max(0.0, 100.0 * (qe - dfe) / qe) if qe > 0 else math.nan
            rsd["h2"] = qe / dfe
        extra.update(
            tau2_common=float(t2), qe=float(rsd["qe"]), qe_df=int(rsd["qe_df"]),
            qe_p=float(_lazy.special().chdtrc(rsd["qe_df"], rsd["qe"])),
            residual_i2=float(rsd["i2"]), residual_h2=float(rsd["h2"]),
        )
    else:
        with _quiet():
            out = _est.fit(y2, v2, mask, method=method, test=test, level=level, pi=pi, weights=True)
        _checks.finite_results(_finite(out), "yi, vi", "subgroups")
    _checks.warn_k1(test, 0 if mode == "common" else int((out["k"] == 1).sum()))  # common: t with k - G df for every group
    res = {}
    for j, name in enumerate(labels):
        pos = np.flatnonzero(codes == j)
        res[str(name)] = _result(out, j, method, test, level, pi, out["weights"][mask[:, j], j], y[pos], v[pos],
                                 _take(lab, pos), measure, owned=(True, True))  # y[pos]: new arrays
    overall = pool(y, v, method=method, test=test, level=level, pi=pi, slab=lab, measure=measure)
    qb = float(qm) if mode == "common" else _wald_between({"estimate": [r.estimate for r in res.values()],
                                                           "se": [r.se for r in res.values()]})
    dfb = len(labels) - 1
    qbp = float(_lazy.special().chdtrc(dfb, qb)) if dfb > 0 else math.nan
    return SubgroupResult(
        groups=res, overall=overall, q_between=qb, q_between_df=dfb, q_between_p=qbp, method=method, tau2_mode=mode, **extra
    )
