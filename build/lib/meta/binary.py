"""Pooling 2x2 tables without the normal approximation of each study: the
Mantel-Haenszel method (metafor 3.8.1 ``rma.mh``) and Peto's method (``rma.peto``).

* :func:`rma_mh` -- ``measure="OR"``: the Mantel-Haenszel odds ratio
  ``sum(a d / N) / sum(b c / N)`` (Mantel & Haenszel 1959) with the
  Robins-Breslow-Greenland variance of its log (Robins, Breslow & Greenland 1986),
  the Cochran and Cochran-Mantel-Haenszel tests (with ``correct=True``: continuity
  corrected), the Breslow-Day test and Tarone's correction of it (Breslow & Day 1980;
  Tarone 1985).  ``"RR"``: ``sum(a n2 / N) / sum(c n1 / N)`` with the Greenland-Robins
  (1985) variance; ``"RD"``: ``sum(a n2/N - c n1/N) / sum(n1 n2 / N)`` with the
  variance of Sato, Greenland & Robins (1989), as metafor 3.8.1.
* :func:`rma_peto` -- Peto's one-step log odds ratio ``sum(O - E) / sum(V)``, variance
  ``1 / sum(V)`` (Yusuf et al. 1985), heterogeneity ``sum((O - E)^2 / V) - sum(O - E)^2 /
  sum(V)``.

Both take the 2x2 cells as :func:`meta.escalc.escalc` does (``ai, bi, ci, di`` or
``ai, ci, n1i, n2i``; arrays, Series paired by label, or column names of ``data=``).
The continuity-correction arguments come in pairs, as metafor's: the first element
is for the study log odds ratios (``escalc``; they give Cochran's Q, I^2, H^2 and what
``forest``/``funnel`` draw), the second for the tables the pooled estimate is computed
from.  Defaults as metafor: ``add=(1/2, 0)``, ``to=("only0", "none")``,
``drop00=(True, False)``; a single value sets the first element and keeps the second's
default.  Tables whose study estimate is missing (no events in both groups, dropped by
``drop00``) give no Q contribution but still enter the Mantel-Haenszel sums (for RD they
add to its denominator), as in metafor; a ``UserWarning`` says so.  A table without
participants (all four cells 0) left in the pooling stage is a ``ValueError`` (metafor
returns NaN from ``rma.mh`` and stops with an R error in ``rma.peto``).

Results are frozen :class:`BinaryResult` objects named like :class:`meta.pool.PoolResult`
(``estimate``, ``se``, ``stat``, ``p``, ``ci_low``, ``ci_high`` on the log scale for OR,
RR and Peto; ``q``, ``q_df``, ``q_p``, ``i2``, ``h2``; ``yi``, ``vi``, ``slab``,
``weights``), so :func:`meta.plots.forest` and :func:`meta.plots.funnel` draw them and
back-transform by ``measure``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta import effects as _eff
from meta import escalc as _esc
from meta._format import metafor_num as _fmt, metafor_p as _fmt_p
from meta._measures import measure_of

__all__ = ["BinaryResult", "rma_mh", "rma_peto", "MH_MEASURES"]

MH_MEASURES = ("OR", "RR", "RD")
_DATA_FIELDS = ("weights", "yi", "vi", "slab")


@dataclass(frozen=True)
class BinaryResult:
    """A Mantel-Haenszel (``method="MH"``) or Peto (``method="Peto"``) fit.

    ``estimate, se, stat, p, ci_low, ci_high``: the pooled effect (log odds or log
    risk ratio for OR/RR/PETO, risk difference for RD), z test and CI (metafor
    ``beta, se, zval, pval, ci.lb, ci.ub``); ``q, q_df, q_p, i2, h2``: Cochran's Q
    of the study estimates around it (Peto: Peto's Q), on ``k_yi - 1`` df; ``k``
    tables, ``k_yi`` of them with a study estimate, ``k_pos`` tables that count for
    the Breslow-Day test (MH OR) or have V > 0 (Peto).  MH OR only (else NaN):
    ``co, co_p`` (Cochran), ``cmh, cmh_p`` (Cochran-Mantel-Haenszel), ``bd, bd_p``
    (Breslow-Day), ``tarone, tarone_p`` (Tarone's test for heterogeneity, df
    ``k_pos - 1``).  ``tau2 = tau = 0`` and the "prediction interval" equals the CI
    (an equal-effects model), so plotting code written for :class:`PoolResult`
    works.  ``yi, vi, slab, weights``: the study estimates with their labels and
    the method's percent weights (metafor ``weights()``), left out of
    ``to_frame()``, ``repr`` and ``==``.
    """

    measure: str
    method: str
    k: int
    k_yi: int
    k_pos: int
    estimate: float
    se: float
    stat: float
    p: float
    ci_low: float
    ci_high: float
    q: float
    q_df: int
    q_p: float
    i2: float
    h2: float
    co: float = math.nan
    co_p: float = math.nan
    cmh: float = math.nan
    cmh_p: float = math.nan
    bd: float = math.nan
    bd_p: float = math.nan
    tarone: float = math.nan
    tarone_p: float = math.nan
    level: float = 0.95
    correct: bool = True
    tau2: float = 0.0
    tau: float = 0.0
    test: str = "z"
    pi: str = "default"
    weights: np.ndarray | None = field(default=None, repr=False, compare=False)
    yi: np.ndarray | None = field(default=None, repr=False, compare=False)
    vi: np.ndarray | None = field(default=None, repr=False, compare=False)
    slab: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        for name in ("yi", "vi", "weights"):
            a = getattr(self, name)
            if a is not None:
                a = np.array(a, dtype=float)
                a.setflags(write=False)
                object.__setattr__(self, name, a)
        object.__setattr__(self, "slab", tuple(self.slab))

    @property
    def pi_low(self) -> float:
        return self.ci_low

    @property
    def pi_high(self) -> float:
        return self.ci_high

    def to_frame(self) -> pd.DataFrame:
        """One row, one column per scalar field (plus ``exp_estimate``, ``exp_ci_low``,
        ``exp_ci_high`` for OR, RR, PETO)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _DATA_FIELDS}
        m = measure_of(self.measure)
        if m.func is not None:
            for c in ("estimate", "ci_low", "ci_high"):
                row[f"exp_{c}"] = float(m.func(row[c]))
        return pd.DataFrame([row])

    def summary(self) -> str:
        """metafor's ``print.rma.mh`` / ``print.rma.peto`` text."""
        lines = [f"Equal-Effects Model (k = {self.k}; {'Mantel-Haenszel' if self.method == 'MH' else 'Peto'} method)", ""]
        lines.append(f"I^2 (total heterogeneity / total variability):  {_fmt(self.i2, 2)}%")
        lines.append(f"H^2 (total variability / sampling variability): {_fmt(self.h2, 2)}")
        lines += ["", "Test for Heterogeneity:", f"Q(df = {self.q_df}) = {_fmt(self.q)}, p-val {_pval(self.q_p)}", ""]
        cols = ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub"]
        vals = [_fmt(self.estimate), _fmt(self.se), _fmt(self.stat), _fmt_p(self.p), _fmt(self.ci_low), _fmt(self.ci_high)]
        m = measure_of(self.measure)
        if m.func is not None:
            lines += ["Model Results (log scale):", ""] + _columns(cols, vals) + [""]
            back = [float(m.func(v)) for v in (self.estimate, self.ci_low, self.ci_high)]
            name = "OR" if self.measure == "PETO" else self.measure
            lines += [f"Model Results ({name} scale):", ""] + _columns(["estimate", "ci.lb", "ci.ub"], [_fmt(v) for v in back])
        else:
            lines += ["Model Results:", ""] + _columns(cols, vals)
        if self.method == "MH" and self.measure == "OR":
            lines.append("")
            lines.append("Cochran-Mantel-Haenszel Test:    " + (
                "test value not computable for these data" if not np.isfinite(self.cmh)
                else f"CMH = {_fmt(self.cmh)}, df = 1, p-val {_pval(self.cmh_p)}"))
            lines.append("Tarone's Test for Heterogeneity: " + (
                "test value not computable for these data" if not np.isfinite(self.tarone)
                else f"X^2 = {_fmt(self.tarone)}, df = {self.k_pos - 1}, p-val {_pval(self.tarone_p)}"))
        lines += ["", f"{100 * self.level:g}% CI level; measure = {self.measure}"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    __str__ = __repr__


def _pval(p: float) -> str:
    s = _fmt_p(p)
    return "< .0001" if s == "<.0001" else "= " + s


def _columns(cols: list, vals: list) -> list:
    width = [max(len(c), len(x)) + 2 for c, x in zip(cols, vals)]
    return ["".join(c.rjust(w) for c, w in zip(cols, width)), "".join(x.rjust(w) for x, w in zip(vals, width))]


# --------------------------------------------------------------------------- inputs


def _pair(value, name: str, default, check) -> tuple:
    """metafor's two-element add/to/drop00: one value sets the first element."""
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one value or a pair (escalc stage, pooling stage); got {value!r}")
        pair = tuple(value)
    else:
        pair = (value, default)
    for v in pair:
        check(v)
    return pair


def _check_add(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v < 0:
        raise ValueError(f"add must be numbers >= 0 (metafor add=c(1/2, 0)); got {v!r}")


def _check_to(v):
    if v not in _esc.TO_OPTIONS:
        raise ValueError(f"to must be one of {', '.join(map(repr, _esc.TO_OPTIONS))} (or a pair of them); got {v!r}")


def _check_drop(v):
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"drop00 must be True/False (or a pair of them); got {v!r}")


def _tables(who, measure, ai, bi, ci, di, n1i, n2i, data, slab, add, to, drop00, level):
    """Checked cells, study estimates (escalc stage) and the tables the pooled
    estimate uses (pooling stage), metafor ``rma.mh`` / ``rma.peto`` order."""
    add = _pair(add, "add", 0.0, _check_add)
    to = _pair(to, "to", "none", _check_to)
    drop00 = _pair(drop00, "drop00", False, _check_drop)
    level = _checks.level_fraction(level)
    given = {n: v for n, v in dict(ai=ai, bi=bi, ci=ci, di=di, n1i=n1i, n2i=n2i).items() if v is not None}
    given = _esc._resolve(data, given)
    if isinstance(slab, str) and data is not None:
        slab = _esc._resolve(data, {"slab": slab})["slab"]
    x = _eff._Inputs({**given, **({"slab": slab} if isinstance(slab, pd.Series) else {})}, strings=("slab",))
    a, b, c, d = _esc._cells(measure, x)
    k = a.size
    if slab is None:
        lab = list(x.index) if x.index is not None else list(range(1, k + 1))
    else:
        lab = list(x["slab"]) if isinstance(slab, pd.Series) else list(slab)
        if len(lab) != k:
            raise ValueError(f"{who}: slab must have one label per table ({k}); got {len(lab)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = _esc.escalc(measure, ai=a, bi=b, ci=c, di=d, add=add[0], to=to[0], drop00=drop00[0])
    yi, vi = es["yi"].to_numpy(), es["vi"].to_numpy()
    if drop00[1]:
        id00 = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
        keep = ~id00
        if id00.any():
            warnings.warn(f"{who}: tables with no events (or only events) in both groups left out of the pooled "
                          f"estimate (drop00[1]=True): positions {np.flatnonzero(id00).tolist()}", UserWarning, stacklevel=3)
    else:
        keep = np.ones(k, bool)
    if not keep.any():
        raise ValueError(f"{who}: no table left to pool (k = 0)")
    has = np.isfinite(yi) & np.isfinite(vi)
    if not has.all():
        warnings.warn(f"{who}: no study estimate (yi/vi NA in metafor) for tables at positions "
                      f"{np.flatnonzero(~has).tolist()}; they are left out of Q, I^2 and H^2", UserWarning, stacklevel=3)
    a, b, c, d = (v[keep] for v in (a, b, c, d))
    if to[1] == "all":
        a, b, c, d = a + add[1], b + add[1], c + add[1], d + add[1]
    elif to[1] in ("only0", "if0all"):
        id0 = (a == 0) | (b == 0) | (c == 0) | (d == 0)
        if to[1] == "if0all":
            id0 = np.full(id0.shape, bool(id0.any()))
        a, b, c, d = (np.where(id0, v + add[1], v) for v in (a, b, c, d))
    empty = (a + b + c + d) == 0
    if empty.any():  # metafor returns NaN (rma.mh) or stops with an R error (rma.peto) here
        pos = np.flatnonzero(keep)[empty]
        raise ValueError(
            f"{who}: tables at positions {pos[:10].tolist()} have no participants (ai + bi + ci + di = 0), so the "
            "pooled estimate is undefined; leave them out, or pass drop00=(True, True) to drop tables without "
            "events in both groups from the pooling stage too")
    lab_keep = [lab[i] for i in np.flatnonzero(keep)]
    study = {"yi": yi[has], "vi": vi[has], "slab": [lab[i] for i in np.flatnonzero(has)],
             "has": has, "keep": keep}
    return (a, b, c, d), study, float(level), lab_keep


def _study_weights(weights: np.ndarray, study: dict) -> np.ndarray:
    """Percent weights of the pooled tables, for the studies that carry a yi (NaN for a
    study whose table was left out of the pooling stage)."""
    full = np.full(study["keep"].size, np.nan)
    full[study["keep"]] = weights
    return full[study["has"]]


def _heterogeneity(yi, vi, beta):
    """Cochran's Q of the study estimates around ``beta`` (metafor rma.mh)."""
    k = yi.size
    if k <= 1:
        return 0.0, 0, 1.0, 0.0, 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        q = max(0.0, float(np.sum((yi - beta) ** 2 / vi))) if np.isfinite(beta) else math.nan
        qp = float(_lazy.special().chdtrc(k - 1, q))
        i2 = max(0.0, 100 * (q - (k - 1)) / q) if q > 0 else (0.0 if q == 0 else math.nan)
    return q, k - 1, qp, i2, q / (k - 1)


def _z(beta, se, level):
    z = float(_lazy.special().ndtri(0.5 + level / 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = beta / se
    p = float(2 * _lazy.special().ndtr(-abs(stat))) if np.isfinite(stat) else math.nan
    return stat, p, beta - z * se, beta + z * se


# --------------------------------------------------------------------------- Mantel-Haenszel


def rma_mh(
    ai=None, bi=None, ci=None, di=None, n1i=None, n2i=None, *, measure: str = "OR", data=None, slab=None,
    add=(0.5, 0.0), to=("only0", "none"), drop00=(True, False), correct: bool = True, level: float = 0.95,
) -> BinaryResult:
    """Mantel-Haenszel equal-effects meta-analysis of 2x2 tables (metafor 3.8.1
    ``rma.mh``); formulas and the ``add``/``to``/``drop00`` pairs in the module
    docstring.  ``measure``: ``"OR"``, ``"RR"`` or ``"RD"``; ``correct``: continuity
    correction of the Cochran and CMH tests (metafor default True); ``level``
    0.95 or 95.  An estimate that does not exist (no events in one arm of every
    table for OR/RR) is NaN, as metafor's NA.
    """
    m = str(measure).upper() if isinstance(measure, str) else measure
    if m not in MH_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(map(repr, MH_MEASURES))} for the Mantel-Haenszel method "
                         f"(metafor rma.mh); got {measure!r}. Peto's odds ratio: meta.binary.rma_peto; other measures: "
                         "meta.escalc.escalc then meta.pool.pool")
    if not isinstance(correct, (bool, np.bool_)):
        raise ValueError(f"correct must be True or False; got {correct!r}")
    (a, b, c, d), study, level, _ = _tables("rma_mh", m, ai, bi, ci, di, n1i, n2i, data, slab, add, to, drop00, level)
    n1, n2 = a + b, c + d
    n = n1 + n2
    nan = math.nan
    extra = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if m == "OR":
            P, Q = a / n + d / n, b / n + c / n
            R_i, S_i = (a / n) * d, (b / n) * c
            R, S = R_i.sum(), S_i.sum()
            if R == 0 or S == 0:
                psi = beta = se = nan
            else:
                psi = R / S
                beta = math.log(psi)
                # Robins, Breslow & Greenland (1986)
                se = math.sqrt(0.5 * (np.sum(P * R_i) / R**2 + np.sum(P * S_i + Q * R_i) / (R * S) + np.sum(Q * S_i) / S**2))
            xt, yt = a + c, b + d
            if xt.sum() == 0 or yt.sum() == 0:
                co = co_p = cmh = cmh_p = nan
            else:
                cc = 0.5 if correct else 0.0
                num = (abs(np.sum(a - (n1 / n) * xt)) - cc) ** 2
                co = num / np.sum((n1 / n) * (n2 / n) * (xt * (yt / n)))
                cmh = num / np.sum((n1 / n) * (n2 / n) * (xt * (yt / (n - 1))))
                co_p, cmh_p = (float(_lazy.special().chdtrc(1, s)) for s in (co, cmh))
            bd = bd_p = ta = ta_p = nan
            k_pos = 0
            if np.isfinite(beta):
                if psi == 1:
                    n11 = (n1 / n) * xt
                else:  # expected a under the common odds ratio (Breslow & Day 1980)
                    A = psi * (n1 + xt) + (n2 - xt)
                    B = np.sqrt(A**2 - 4 * n1 * xt * psi * (psi - 1))
                    n11 = (A - B) / (2 * (psi - 1))
                pos = (n11 > 0) & (xt > 0) & (yt > 0)
                k_pos = int(pos.sum())
                n11 = n11[pos]
                n12, n21 = n1[pos] - n11, xt[pos] - n11
                n22 = n11 - n1[pos] - xt[pos] + n[pos]
                vinv = 1 / n11 + 1 / n12 + 1 / n21 + 1 / n22
                dev = a[pos] - n11
                bd = max(0.0, float(np.sum(dev**2 * vinv)))
                ta = max(0.0, bd - float(np.sum(dev) ** 2 / np.sum(1 / vinv)))  # Tarone (1985)
                if k_pos > 1:
                    bd_p, ta_p = (float(_lazy.special().chdtrc(k_pos - 1, s)) for s in (bd, ta))
            extra = dict(co=float(co), co_p=float(co_p), cmh=float(cmh), cmh_p=float(cmh_p), bd=float(bd),
                         bd_p=float(bd_p), tarone=float(ta), tarone_p=float(ta_p))
            w = (b / n) * c
        elif m == "RR":
            R, S = np.sum(a * (n2 / n)), np.sum(c * (n1 / n))
            k_pos = 0
            if a.sum() == 0 or c.sum() == 0:
                beta = se = nan
            else:
                beta = math.log(R / S)
                # Greenland & Robins (1985)
                se = math.sqrt(np.sum((n1 / n) * (n2 / n) * (a + c) - (a / n) * c) / (R * S))
            w = (c / n) * n1
        else:  # RD, Sato, Greenland & Robins (1989)
            k_pos = 0
            den = np.sum(n1 * (n2 / n))
            beta = float(np.sum(a * (n2 / n) - c * (n1 / n)) / den)
            se = math.sqrt((beta * np.sum(c * (n1 / n) ** 2 - a * (n2 / n) ** 2 + (n1 / n) * (n2 / n) * (n2 - n1) / 2)
                            + np.sum(a * (n2 - c) / n + c * (n1 - a) / n) / 2) / den**2)
            w = (n1 / n) * n2
    stat, p, lo, hi = _z(beta, se, level)
    q, qdf, qp, i2, h2 = _heterogeneity(study["yi"], study["vi"], beta)
    weights = 100 * w / w.sum()
    return BinaryResult(
        measure=m, method="MH", k=int(a.size), k_yi=int(study["yi"].size), k_pos=k_pos, estimate=float(beta),
        se=float(se), stat=float(stat), p=p, ci_low=float(lo), ci_high=float(hi), q=q, q_df=qdf, q_p=qp, i2=i2, h2=h2,
        level=level, correct=bool(correct), weights=_study_weights(weights, study), yi=study["yi"], vi=study["vi"], slab=study["slab"], **extra,
    )


# --------------------------------------------------------------------------- Peto


def rma_peto(
    ai=None, bi=None, ci=None, di=None, n1i=None, n2i=None, *, data=None, slab=None,
    add=(0.5, 0.0), to=("only0", "none"), drop00=(True, False), level: float = 0.95,
) -> BinaryResult:
    """Peto's one-step odds ratio (metafor 3.8.1 ``rma.peto``; Yusuf et al. 1985):
    ``beta = sum(O - E) / sum(V)``, ``se = 1 / sqrt(sum(V))`` with
    ``O = a``, ``E = (a + c) n1 / N``, ``V = (a + c)(b + d) n1 n2 / (N^2 (N - 1))``;
    heterogeneity ``Q = sum((O - E)^2 / V) - sum(O - E)^2 / sum(V)`` over tables with
    V > 0, on ``k_yi - 1`` df.  ``ValueError`` when V is 0 in every table (one outcome
    never occurs; metafor stops there too).  ``add``/``to``/``drop00`` pairs as
    :func:`rma_mh`.
    """
    (a, b, c, d), study, level, _ = _tables("rma_peto", "PETO", ai, bi, ci, di, n1i, n2i, data, slab, add, to, drop00,
                                            level)
    n1, n2 = a + b, c + d
    n = n1 + n2
    xt, yt = a + c, b + d
    with np.errstate(invalid="ignore", divide="ignore"):
        e = xt * n1 / n
        v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
    v = np.where(np.isfinite(v), v, 0.0)
    if v.sum() == 0:
        raise ValueError("rma_peto: one of the two outcomes never occurred in any of the tables (V = 0 in every "
                         "table); Peto's method cannot be used (as metafor)")
    beta = float(np.sum(a - e) / v.sum())
    se = math.sqrt(1 / v.sum())
    stat, p, lo, hi = _z(beta, se, level)
    pos = v > 0
    q = max(0.0, float(np.sum((a - e)[pos] ** 2 / v[pos]) - np.sum(a - e) ** 2 / v[pos].sum()))
    kyi = study["yi"].size
    if pos.sum() > 1:
        qp = float(_lazy.special().chdtrc(kyi - 1, q))
        with np.errstate(invalid="ignore", divide="ignore"):
            i2 = max(0.0, 100 * (q - (kyi - 1)) / q) if q > 0 else 0.0
        h2 = q / (kyi - 1)
    else:
        qp, i2, h2 = 1.0, 0.0, 1.0
    weights = 100 * v / v.sum()
    return BinaryResult(
        measure="PETO", method="Peto", k=int(a.size), k_yi=int(kyi), k_pos=int(pos.sum()), estimate=beta, se=se,
        stat=float(stat), p=p, ci_low=float(lo), ci_high=float(hi), q=q, q_df=max(kyi - 1, 0), q_p=qp, i2=float(i2),
        h2=float(h2), level=level, weights=_study_weights(weights, study), yi=study["yi"], vi=study["vi"],
        slab=study["slab"],
    )
