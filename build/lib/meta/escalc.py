"""Effect sizes and their sampling variances for the common measures: metafor 3.8.1
``escalc()`` with its argument names and defaults.

``escalc(measure, ...)`` returns a DataFrame with ``yi`` and ``vi`` (appended to
``data`` when given) whose ``attrs["measure"]`` names the measure, so that
``meta.pool.pool(es.yi, es.vi)`` knows what it pools (labels, back-transformation in
``summary()``, ``forest()``, ``funnel()``).

Measures (metafor's codes; formulas from metafor 3.8.1 ``R/escalc.r``):

* two groups, means: ``MD`` (raw mean difference), ``SMD`` (Hedges' g, computed by
  :func:`meta.effects.smd` for ``vtype="LS"``/``"UB"``), ``ROM`` (log ratio of means);
* 2x2 tables: ``OR`` (log odds ratio), ``RR`` (log risk ratio), ``RD`` (risk
  difference), ``PETO`` (Peto's log odds ratio);
* correlations: ``COR`` (raw r), ``ZCOR`` (Fisher's r-to-z);
* one group, two times: ``MC`` (raw mean change), ``SMCC`` (change-score
  standardisation), ``SMCR`` (raw-score standardisation).

Continuity correction for the 2x2 measures exactly as metafor: ``add`` (default 1/2)
is added to every cell of a table with a zero cell (``to="only0"``), of every table
(``"all"``), of every table when any table has a zero cell (``"if0all"``), or never
(``"none"``); ``drop00=True`` first sets tables with no events in both groups (or only
events in both) to missing.  ``PETO`` is computed from the corrected counts as metafor
does (its ``Vi`` is 0, so ``yi`` missing, for a table whose events or non-events are all
zero when nothing is added).

Where metafor returns ``NA`` (a missing table after ``drop00``, an infinite value, ZCOR
with ``ni <= 3``), ``yi``/``vi`` are NaN, with a ``UserWarning`` naming the positions
(metafor warns for the infinite ones).  Bad input (negative counts, events larger than
the group, NaN, booleans, a correlation outside [-1, 1], missing arguments) is a
``ValueError`` naming the argument and the 0-based positions.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from meta import effects as _eff
from meta._measures import MEASURES

__all__ = ["escalc", "ESCALC_MEASURES", "TO_OPTIONS"]

#: measures escalc computes, with the arguments each needs (``|``: one of)
ESCALC_MEASURES = {
    "MD": ("m1i", "m2i", "sd1i", "sd2i", "n1i", "n2i"),
    "SMD": ("m1i", "m2i", "sd1i", "sd2i", "n1i", "n2i"),
    "ROM": ("m1i", "m2i", "sd1i", "sd2i", "n1i", "n2i"),
    "OR": ("ai", "bi|n1i", "ci", "di|n2i"),
    "RR": ("ai", "bi|n1i", "ci", "di|n2i"),
    "RD": ("ai", "bi|n1i", "ci", "di|n2i"),
    "PETO": ("ai", "bi|n1i", "ci", "di|n2i"),
    "COR": ("ri", "ni"),
    "ZCOR": ("ri", "ni"),
    "MC": ("m1i", "m2i", "sd1i", "sd2i", "ri", "ni"),
    "SMCC": ("m1i", "m2i", "sd1i", "sd2i", "ri", "ni"),
    "SMCR": ("m1i", "m2i", "sd1i", "ri", "ni"),
}
TO_OPTIONS = ("only0", "all", "if0all", "none")
_TABLE = ("OR", "RR", "RD", "PETO")


def _warn_na(mask: np.ndarray, why: str) -> None:
    if mask.any():
        pos = np.flatnonzero(mask)
        warnings.warn(f"escalc: yi/vi set to NaN (metafor NA) at positions {pos[:10].tolist()}"
                      f"{' ...' if pos.size > 10 else ''}: {why}", UserWarning, stacklevel=3)


def _vtype(vtype: Any, measure: str, k: int) -> np.ndarray:
    """``vtype`` (a string or one per study) checked against the measure's options."""
    allowed = MEASURES[measure].vtypes
    v = np.asarray([vtype] * k if isinstance(vtype, str) else list(vtype), dtype=object)
    if v.shape != (k,):
        raise ValueError(f"vtype must be one string or one per study ({k}); got {len(v)}")
    bad = [x for x in v if not isinstance(x, str) or x.upper() not in allowed]
    if bad:
        raise ValueError(f"vtype for measure {measure!r} must be one of {', '.join(map(repr, allowed))} "
                         f"(metafor escalc); got {bad[0]!r}")
    return np.array([x.upper() for x in v], dtype=object)


def _resolve(data, args: dict) -> dict:
    """Column names of ``data`` (strings) to its columns; other values as given."""
    if data is None:
        return args
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    out = {}
    for name, value in args.items():
        if isinstance(value, str):
            if value not in data.columns:
                raise ValueError(f"{name}={value!r} is not a column of data; columns are {list(data.columns)}")
            value = data[value]
        out[name] = value
    return out


def escalc(
    measure: str,
    *,
    ai=None, bi=None, ci=None, di=None, n1i=None, n2i=None,
    m1i=None, m2i=None, sd1i=None, sd2i=None, ri=None, ni=None, ti=None,
    data: pd.DataFrame | None = None, slab=None,
    add: float = 0.5, to: str = "only0", drop00: bool = False, vtype="LS",
) -> pd.DataFrame:
    """Effect sizes ``yi`` and sampling variances ``vi`` (metafor 3.8.1 ``escalc``).

    Parameters (metafor's names): ``ai, bi, ci, di`` the 2x2 cells (group 1
    events / non-events, group 2 events / non-events; or ``ai, ci`` with
    ``n1i, n2i``); ``m1i, m2i, sd1i, sd2i, n1i, n2i`` means, SDs, sizes of two
    groups (``MD``, ``SMD``, ``ROM``; ``SMD`` also from ``di`` = Cohen's d or
    ``ti`` = t with ``n1i, n2i``, as metafor); ``ri, ni`` correlation and sample
    size (``COR``, ``ZCOR``); for the paired measures ``m1i, m2i, sd1i, sd2i``
    at the two time points (sign: time 1 minus time 2, as metafor), ``ri`` their
    correlation, ``ni`` the sample size.  Each is a scalar, a list/array, a
    pandas Series (paired by label) or, with ``data=``, a column name.

    ``data``: a DataFrame; the result is a copy of it with ``yi`` and ``vi``
    appended (replaced if present), as metafor's ``append=TRUE``.  ``slab``:
    study labels; they become the index of the result (so ``pool(es.yi,
    es.vi)`` takes them as its ``slab``); duplicates are refused.

    ``add``, ``to``, ``drop00``: the continuity correction of the 2x2 measures
    (see the module docstring; metafor's defaults ``1/2``, ``"only0"``,
    ``False``).  ``vtype``: metafor's variance options, default ``"LS"``:
    MD ``LS``/``UB`` (heteroscedastic ``sd1^2/n1 + sd2^2/n2``), ``HO``
    (pooled SD); SMD ``LS``, ``UB``, ``LS2``, ``AV``; ROM ``LS``, ``HO``,
    ``AV``, ``AVHO``; RD ``LS``, ``UB``, ``AV``; COR ``LS``, ``AV``; SMCC/SMCR
    ``LS``, ``LS2``; one string or one per study.

    Returns a DataFrame with ``yi``, ``vi`` and ``attrs["measure"]`` (pandas keeps
    ``attrs`` on the columns: ``es.yi.attrs["measure"]``).
    """
    if not isinstance(measure, str) or measure.upper() not in ESCALC_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(map(repr, ESCALC_MEASURES))} (metafor escalc); "
                         f"got {measure!r}. metafor's other measures (SMDH, PHI, IRR, PLO, ...) are not "
                         "implemented here: compute yi and vi yourself and pool them with "
                         "meta.pool.pool(yi, vi, measure='GEN')")
    measure = measure.upper()
    if to not in TO_OPTIONS:
        raise ValueError(f"to must be one of {', '.join(map(repr, TO_OPTIONS))} (metafor escalc); got {to!r}")
    if isinstance(add, bool) or not isinstance(add, (int, float, np.integer, np.floating)) or not np.isfinite(add) \
            or add < 0:
        raise ValueError(f"add must be a number >= 0 (metafor escalc add=1/2); got {add!r}")
    if not isinstance(drop00, (bool, np.bool_)):
        raise ValueError(f"drop00 must be True or False; got {drop00!r}")
    given = {n: v for n, v in dict(ai=ai, bi=bi, ci=ci, di=di, n1i=n1i, n2i=n2i, m1i=m1i, m2i=m2i, sd1i=sd1i,
                                   sd2i=sd2i, ri=ri, ni=ni, ti=ti).items() if v is not None}
    given = _resolve(data, given)
    if isinstance(slab, str) and data is not None:
        slab = _resolve(data, {"slab": slab})["slab"]
    if not given:
        raise ValueError(f"escalc: no data given for measure {measure!r}; it needs "
                         f"{', '.join(ESCALC_MEASURES[measure])}")
    x = _eff._Inputs(given)
    k = x.k
    _vtype(vtype, measure, k)  # every measure checks it (metafor ignores an unused one, e.g. vtype="UB" for OR)
    if measure in _TABLE:
        yi, vi = _table(measure, x, add, to, bool(drop00), vtype)
    elif measure in ("MD", "SMD", "ROM"):
        yi, vi = _two_groups(measure, x, given, vtype)
    elif measure in ("COR", "ZCOR"):
        yi, vi = _correlation(measure, x, vtype)
    else:
        yi, vi = _paired(measure, x, vtype)
    yi, vi = np.asarray(yi, float).copy(), np.asarray(vi, float).copy()
    inf = np.isinf(yi) | np.isinf(vi)
    _warn_na(inf, "infinite value (as metafor: 'Some yi and/or vi values equal to +-Inf. Recoded to NAs.')")
    # metafor recodes +-Inf and NaN in either to NA in both; its NA variance of a correlation with
    # ni <= 3 is not NaN there, so that yi stays
    both = inf | np.isnan(yi) | (np.isnan(vi) & (measure not in ("COR", "ZCOR")))
    yi[both] = np.nan
    vi[both] = np.nan
    index = x.index
    if data is not None:
        if len(data) != k:
            raise ValueError(f"data has {len(data)} rows but the effect-size arguments have {k}")
        out = data.copy()
        out["yi"], out["vi"] = yi, vi
    else:
        out = pd.DataFrame({"yi": yi, "vi": vi}, index=index)
    if slab is not None:
        lab = list(slab.to_numpy() if isinstance(slab, (pd.Series, pd.Index)) else slab)
        if len(lab) != k:
            raise ValueError(f"slab must have one label per study ({k}); got {len(lab)}")
        if pd.isna(pd.Series(lab, dtype=object)).any():
            raise ValueError(f"slab must not be missing; positions {np.flatnonzero(pd.isna(pd.Series(lab, dtype=object))).tolist()}")
        if len(set(lab)) != len(lab):
            dup = pd.Series(lab)[pd.Series(lab).duplicated()].unique().tolist()
            raise ValueError(f"slab must be unique (it becomes the index); duplicated: {dup[:10]}")
        out.index = pd.Index(lab, name="slab")
    out.attrs["measure"] = measure
    return out


# --------------------------------------------------------------------------- 2x2 tables


def _cells(measure: str, x) -> tuple[np.ndarray, ...]:
    """The checked cells ``ai, bi, ci, di`` (float copies) of 2x2 tables given as
    ``ai, bi, ci, di`` or ``ai, ci, n1i, n2i`` (also used by :mod:`meta.binary`)."""
    have = set(x.values)
    for cell, n in (("bi", "n1i"), ("di", "n2i")):
        if cell not in have and n not in have:
            raise ValueError(f"measure {measure!r} needs {cell} or {n} (with ai, ci); got neither")
    for name in ("ai", "ci"):
        if name not in have:
            raise ValueError(f"measure {measure!r} needs {name} (events in group {1 if name == 'ai' else 2})")
    names = [n for n in ("ai", "bi", "ci", "di", "n1i", "n2i") if n in have]
    x.finite(*names)
    for n in names:
        x.fail(n, "must be >= 0 (a count)", x[n] < 0)
    ai, ci = x["ai"], x["ci"]
    for cell, n, ev in (("bi", "n1i", "ai"), ("di", "n2i", "ci")):
        if cell in have and n in have:
            x.fail(n, f"must equal {ev} + {cell} (metafor: 'n{n[1]}i values are not equal to {ev} + {cell}')",
                   x[n] != x[ev] + x[cell])
        elif n in have:
            x.fail(ev, f"must be <= {n} (events cannot exceed the group size)", x[ev] > x[n])
    bi = x["bi"] if "bi" in have else x["n1i"] - ai
    di = x["di"] if "di" in have else x["n2i"] - ci
    return tuple(np.array(a, float) for a in (ai, bi, ci, di))


def _table(measure: str, x, add: float, to: str, drop00: bool, vtype) -> tuple[np.ndarray, np.ndarray]:
    """OR, RR, RD, PETO from the cells, with metafor's add/to/drop00 (``escalc.r``, 2x2 block)."""
    ai, bi, ci, di = _cells(measure, x)
    if drop00:
        id00 = ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))
        _warn_na(id00, "no events (or only events) in both groups, drop00=True")
        for a in (ai, bi, ci, di):
            a[id00] = np.nan
    if to == "all":
        ai, bi, ci, di = ai + add, bi + add, ci + add, di + add
    elif to in ("only0", "if0all"):
        id0 = (ai == 0) | (ci == 0) | (bi == 0) | (di == 0)
        if to == "if0all":
            id0 = np.full(id0.shape, bool(id0.any()))
        ai, bi, ci, di = (np.where(id0, a + add, a) for a in (ai, bi, ci, di))
    n1, n2 = ai + bi, ci + di
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = ai / n1, ci / n2
        if measure == "RR":
            return np.log(p1) - np.log(p2), 1 / ai - 1 / n1 + 1 / ci - 1 / n2
        if measure == "OR":
            return np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2)), 1 / ai + 1 / bi + 1 / ci + 1 / di
        if measure == "RD":
            vt = _vtype(vtype, "RD", x.k)
            ok1, ok2 = np.isfinite(p1) & np.isfinite(n1), np.isfinite(p2) & np.isfinite(n2)
            mp1 = np.sum((p1 * n1)[ok1]) / np.sum(n1[ok1])  # metafor .wmean(p1i, n1i, na.rm=TRUE)
            mp2 = np.sum((p2 * n2)[ok2]) / np.sum(n2[ok2])
            vi = np.select(
                [vt == "UB", vt == "LS"],
                [p1 * (1 - p1) / (n1 - 1) + p2 * (1 - p2) / (n2 - 1), p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2],
                mp1 * (1 - mp1) / n1 + mp2 * (1 - mp2) / n2,
            )
            return p1 - p2, vi
        # PETO (Yusuf et al. 1985): (O - E) / V, 1 / V
        n = n1 + n2
        xt, yt = ai + ci, bi + di
        e = xt * n1 / n
        v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
        _warn_na(np.isfinite(v) & (v == 0), "Peto's V is 0 (no events or only events in the table)")
        return (ai - e) / v, 1 / v


# --------------------------------------------------------------------------- two groups: means


def _two_groups(measure: str, x, given: dict, vtype) -> tuple[np.ndarray, np.ndarray]:
    have = set(x.values)
    if measure == "SMD" and ("di" in have or "ti" in have):
        need = ("n1i", "n2i")
        missing = [n for n in need if n not in have]
        if missing:
            raise ValueError(f"measure 'SMD' from {'di' if 'di' in have else 'ti'} needs n1i and n2i; missing {missing}")
        if "di" in have and "ti" in have:
            raise ValueError("measure 'SMD': give di (Cohen's d) or ti (t statistic), not both")
        vt = _vtype(vtype, "SMD", x.k)
        if "ti" in have:
            x.finite("ti")
            x.sample_size("n1i", "n2i")
            d = x["ti"] * np.sqrt(1 / x["n1i"] + 1 / x["n2i"])  # metafor: di <- ti * sqrt(1/n1i + 1/n2i)
        else:
            d = x["di"]
        return _smd_from_d(np.asarray(d, float), x, vt, "di" if "di" in have else "ti")
    missing = [n for n in ESCALC_MEASURES[measure] if n not in have]
    if missing:
        raise ValueError(f"measure {measure!r} needs {', '.join(ESCALC_MEASURES[measure])}; missing {missing}")
    vt = _vtype(vtype, measure, x.k)
    x.finite("m1i", "m2i", "sd1i", "sd2i", "n1i", "n2i")
    x.fail("sd1i", "must be >= 0 (a standard deviation)", x["sd1i"] < 0)
    x.fail("sd2i", "must be >= 0 (a standard deviation)", x["sd2i"] < 0)
    x.fail("n1i", "must be > 0 (a group size)", x["n1i"] <= 0)
    x.fail("n2i", "must be > 0 (a group size)", x["n2i"] <= 0)
    m1, m2, s1, s2, n1, n2 = (x[n] for n in ("m1i", "m2i", "sd1i", "sd2i", "n1i", "n2i"))
    sdp2 = ((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2)  # pooled variance (metafor sdpi^2)
    if measure == "MD":
        return m1 - m2, np.where(vt == "HO", sdp2 * (1 / n1 + 1 / n2), s1**2 / n1 + s2**2 / n2)
    if measure == "ROM":
        x.fail("m1i", "must be > 0 for ROM (log of the ratio of means)", m1 <= 0)
        x.fail("m2i", "must be > 0 for ROM (log of the ratio of means)", m2 <= 0)
        cv1, cv2 = s1 / m1, s2 / m2
        mn1 = np.sum(n1 * cv1) / np.sum(n1)  # metafor .wmean(sd1i/m1i, n1i)
        mn2 = np.sum(n2 * cv2) / np.sum(n2)
        mn = (np.sum(n1 * cv1) + np.sum(n2 * cv2)) / np.sum(n1 + n2)
        vi = np.select(
            [vt == "LS", vt == "HO", vt == "AV"],
            [s1**2 / (n1 * m1**2) + s2**2 / (n2 * m2**2), sdp2 / (n1 * m1**2) + sdp2 / (n2 * m2**2),
             mn1**2 / n1 + mn2**2 / n2],
            mn**2 * (1 / n1 + 1 / n2),
        )
        return np.log(m1 / m2), vi
    # SMD: meta.effects.smd for LS and UB (the same formulas, the house's checks)
    x.positive("sd1i", "sd2i")
    x.sample_size("n1i", "n2i")
    d = (m1 - m2) / np.sqrt(sdp2)
    if np.all(vt == vt[0]) and vt[0] in ("LS", "UB"):
        args = {k: given[k] for k in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")}
        f = _eff.smd(args["m1i"], args["sd1i"], args["n1i"], args["m2i"], args["sd2i"], args["n2i"],
                     variance=vt[0].lower())
        return f["yi"].to_numpy(), f["vi"].to_numpy()
    return _smd_from_d(d, x, vt, "m1i, m2i, sd1i, sd2i")


def _smd_from_d(d: np.ndarray, x, vt: np.ndarray, names: str) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g and metafor's SMD variances (``escalc.r``, SMD block) from Cohen's d."""
    x.sample_size("n1i", "n2i")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"{names} must be finite; bad at positions {np.flatnonzero(~np.isfinite(d))[:10].tolist()}")
    n1, n2 = x["n1i"], x["n2i"]
    m = n1 + n2 - 2
    j = _eff.hedges_j(m)
    g = j * d
    n = n1 + n2
    mnw = np.sum(g * n) / np.sum(n)  # metafor .wmean(yi, ni)
    vi = np.select(
        [vt == "UB", vt == "LS", vt == "AV"],
        [1 / n1 + 1 / n2 + (1 - (m - 2) / (m * j**2)) * g**2, 1 / n1 + 1 / n2 + g**2 / (2 * n),
         1 / n1 + 1 / n2 + mnw**2 / (2 * n)],
        j**2 * (1 / n1 + 1 / n2 + d**2 / (2 * n)),  # LS2 (Borenstein et al. 2009, eq. 4.24)
    )
    return g, vi


# --------------------------------------------------------------------------- correlations


def _correlation(measure: str, x, vtype) -> tuple[np.ndarray, np.ndarray]:
    missing = [n for n in ("ri", "ni") if n not in x.values]
    if missing:
        raise ValueError(f"measure {measure!r} needs ri and ni; missing {missing}")
    x.finite("ri", "ni")
    r, n = x["ri"], x["ni"]
    x.fail("ri", "must be a correlation in [-1, 1]", np.abs(r) > 1)
    x.fail("ni", "must be > 0 (a sample size)", n <= 0)
    if measure == "ZCOR":
        if not (isinstance(vtype, str) and vtype.upper() == "LS"):
            raise ValueError(f"vtype for measure 'ZCOR' must be 'LS' (metafor: vi = 1/(ni - 3)); got {vtype!r}")
        with np.errstate(divide="ignore"):
            yi = 0.5 * np.log((1 + r) / (1 - r))  # Fisher (1921)
        vi = np.where(n <= 3, np.nan, 1 / np.where(n <= 3, 1.0, n - 3))
        _warn_na(n <= 3, "ni <= 3 (metafor: 'Cannot estimate the sampling variance when ni <= 3')")
        return yi, vi
    vt = _vtype(vtype, "COR", x.k)
    mnw = np.sum(r * n) / np.sum(n)
    vi = np.where(vt == "AV", (1 - mnw**2) ** 2 / (n - 1), (1 - r**2) ** 2 / (n - 1))
    _warn_na(n <= 3, "ni <= 3 (metafor sets vi to NA)")
    return r.copy(), np.where(n <= 3, np.nan, vi)


# --------------------------------------------------------------------------- one group, two times


def _paired(measure: str, x, vtype) -> tuple[np.ndarray, np.ndarray]:
    need = ESCALC_MEASURES[measure]
    missing = [n for n in need if n not in x.values]
    if missing:
        raise ValueError(f"measure {measure!r} needs {', '.join(need)}; missing {missing}")
    x.finite(*need)
    sds = [s for s in ("sd1i", "sd2i") if s in need]
    for s in sds:
        x.fail(s, "must be >= 0 (a standard deviation)", x[s] < 0)
    x.fail("ri", "must be a correlation in [-1, 1]", np.abs(x["ri"]) > 1)
    x.fail("ni", "must be > 0 (a sample size)", x["ni"] <= 0)
    m1, m2, s1, r, n = x["m1i"], x["m2i"], x["sd1i"], x["ri"], x["ni"]
    if measure == "MC":
        s2 = x["sd2i"]
        return m1 - m2, (s1**2 + s2**2 - 2 * r * s1 * s2) / n
    vt = _vtype(vtype, measure, x.k)
    j = _eff.hedges_j(n - 1)
    if measure == "SMCC":
        s2 = x["sd2i"]
        sdd = np.sqrt(s1**2 + s2**2 - 2 * r * s1 * s2)
        d = (m1 - m2) / sdd
        g = j * d
        return g, np.where(vt == "LS2", j**2 * (1 / n + d**2 / (2 * n)), 1 / n + g**2 / (2 * n))
    d = (m1 - m2) / s1  # SMCR (Becker 1988)
    g = j * d
    return g, np.where(vt == "LS2", j**2 * (2 * (1 - r) / n + d**2 / (2 * n)), 2 * (1 - r) / n + g**2 / (2 * n))

