"""Influence diagnostics of a fitted meta-analysis: metafor 3.8.1
``influence.rma.uni`` (with ``rstudent``, ``rstandard`` and the coordinates of
``baujat``) for an intercept-only model (:class:`meta.pool.PoolResult`).

Every diagnostic compares the full fit with the fit that leaves study ``i``
out (Viechtbauer & Cheung 2010, Res Synth Methods 1:112-125, "Outlier and
influence diagnostics for meta-analysis"; formulas as metafor 3.8.1
``R/influence.rma.uni.r``).  With ``w_j = 1/(v_j + tau2)``, ``S = sum(w)``,
the full estimate ``b`` with variance ``vb`` (``s2w / S``; ``s2w`` the
Knapp-Hartung factor of ``test="hksj"``/``"adhoc"``, else 1) and, for the fit
without study ``i``, ``tau2_(i)``, ``b_(i)``, ``S_(i)``, ``s2w_(i)``,
``vb_(i) = s2w_(i) / S_(i)``:

* ``hat_i = w_i / S`` (metafor ``hatvalues``; set to 1 above ``1 - 10 eps``)
  and ``weight_i = 100 w_i / S`` (``weights``);
* ``rstudent_i = (y_i - b_(i)) / sqrt(s2w_(i) (v_i + tau2_(i)) + vb_(i))``
  (externally studentised residual; the deleted residual is set to 0 below
  ``100 eps``, as metafor);
* ``dffits_i = (b - b_(i)) / sqrt(s2w_(i) hat_i (tau2_(i) + v_i))``;
* ``dfbetas_i = (b - b_(i)) / sqrt(s2w_(i) / sum_j 1/(v_j + tau2_(i)))``
  (the full data's variance of the estimate with ``tau2_(i)`` plugged in);
* ``cook_d_i = (b - b_(i))^2 / vb``; ``cov_r_i = vb_(i) / vb``;
* ``tau2_del_i = tau2_(i)``, ``qe_del_i`` = Cochran's Q without study ``i``;
* ``is_infl`` (metafor's "*" column): ``|dffits| > 3 sqrt(p / (k - p))`` or
  ``pchisq(cook_d, df = p) > 0.5`` or ``hat > 3 p / k`` or ``|dfbetas| > 1``
  (``p = 1``; a missing value counts as not influential, as metafor prints it).

``rstandard(res)``: marginal standardised residuals, ``e_i = y_i - b``,
``se_i = sqrt(v_i + tau2 - 1/S)`` (the diagonal of ``(I - H) M (I - H)'``,
metafor ``rstandard.rma.uni(type="marginal")``; no Knapp-Hartung factor).
``baujat`` coordinates (metafor ``baujat.rma``): ``x_i = e_i^2 / (v_i + tau2)``
(contribution to Q; squared Pearson residual in a random-effects model),
``y_i = (b_(i) - b)^2 / vb_(i)`` (influence on the pooled result).

The k leave-one-out fits run through the estimator core of
:func:`meta.pool.pool` (:func:`meta._estimators.fit_core`), vectorised over
blocks of omitted studies so that memory stays ``O(k x block)`` (never
``k x k``).  ML and REML use the global maximum of the likelihood (see
:mod:`meta._estimators`); metafor's Fisher scoring can stop elsewhere in rare
data, and there the deleted fits differ by design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from meta import _estimators as _est
from meta import _formulas as _f
from meta import _lazy
from meta._format import metafor_num as _fmt

__all__ = ["InfluenceResult", "influence", "rstudent", "rstandard", "baujat", "DIAGNOSTICS"]

#: the eight diagnostics of metafor's ``influence()`` in its print / plot order
DIAGNOSTICS = ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del", "hat", "weight")
_EPS = np.finfo(float).eps
_BLOCK_CELLS = 1 << 18  # leave-one-out fits run in blocks of about this many (study x fit) cells


def _ro(a) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class InfluenceResult:
    """Case diagnostics of a fit (metafor ``influence(res)``); one value per
    study in the order of ``slab`` (see :mod:`meta.influence` for every
    formula).  Arrays are read-only.  ``resid``, ``resid_se``: the deleted
    residual ``y_i - b_(i)`` and its standard error (metafor
    ``rstudent(res)$resid``, ``$se``); ``estimate_del``, ``vb_del``: the
    estimate without study ``i`` and its variance (what ``baujat`` draws).
    ``k, tau2, qe, estimate, method, test``: of the full fit."""

    slab: tuple
    rstudent: np.ndarray = field(repr=False, compare=False)
    dffits: np.ndarray = field(repr=False, compare=False)
    cook_d: np.ndarray = field(repr=False, compare=False)
    cov_r: np.ndarray = field(repr=False, compare=False)
    tau2_del: np.ndarray = field(repr=False, compare=False)
    qe_del: np.ndarray = field(repr=False, compare=False)
    hat: np.ndarray = field(repr=False, compare=False)
    weight: np.ndarray = field(repr=False, compare=False)
    dfbetas: np.ndarray = field(repr=False, compare=False)
    is_infl: np.ndarray = field(repr=False, compare=False)
    resid: np.ndarray = field(repr=False, compare=False)
    resid_se: np.ndarray = field(repr=False, compare=False)
    estimate_del: np.ndarray = field(repr=False, compare=False)
    vb_del: np.ndarray = field(repr=False, compare=False)
    baujat_x: np.ndarray = field(repr=False, compare=False)
    k: int = 0
    tau2: float = math.nan
    qe: float = math.nan
    estimate: float = math.nan
    method: str = "DL"
    test: str = "z"

    def __post_init__(self):
        for name in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del", "hat", "weight", "dfbetas",
                     "resid", "resid_se", "estimate_del", "vb_del", "baujat_x"):
            object.__setattr__(self, name, _ro(getattr(self, name)))
        flag = np.array(self.is_infl, dtype=bool)
        flag.setflags(write=False)
        object.__setattr__(self, "is_infl", flag)
        object.__setattr__(self, "slab", tuple(self.slab))

    @property
    def p(self) -> int:
        """Number of model coefficients (1: intercept-only)."""
        return 1

    @property
    def baujat_y(self) -> np.ndarray:
        """Influence on the pooled result, ``(b_(i) - b)^2 / vb_(i)`` (metafor ``baujat``'s y)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.estimate_del - self.estimate) ** 2 / self.vb_del

    def _index(self) -> pd.Index:
        return pd.Index(list(self.slab), name="slab", tupleize_cols=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per study (index ``slab``): the eight diagnostics,
        ``dfbetas``, ``inf`` (``"*"`` where influential, as metafor prints)
        and ``is_infl``."""
        cols = {name: getattr(self, name) for name in DIAGNOSTICS}
        cols["dfbetas"] = self.dfbetas
        cols["inf"] = np.where(self.is_infl, "*", "")
        cols["is_infl"] = self.is_infl
        return pd.DataFrame(cols, index=self._index())

    def baujat(self) -> pd.DataFrame:
        """metafor ``baujat(res)``'s coordinates: ``x`` (contribution to Q),
        ``y`` (influence on the pooled result), index ``slab``."""
        return pd.DataFrame({"x": self.baujat_x, "y": self.baujat_y}, index=self._index())

    def summary(self) -> str:
        """metafor's print of ``influence(res)`` (p = 1: the diagnostics and
        ``dfbs`` in one table, ``*`` marking influential studies), then the
        rule that flags them."""
        names = ("rstudent", "dffits", "cook.d", "cov.r", "tau2.del", "QE.del", "hat", "weight", "dfbs", "inf")
        vals = [getattr(self, n) for n in DIAGNOSTICS] + [self.dfbetas]
        rows = [[str(s)] + [_fmt(float(x[i])) for x in vals] + [("*" if self.is_infl[i] else "")]
                for i, s in enumerate(self.slab)]
        head = [""] + list(names)
        width = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
        lines = [
            f"Influence diagnostics (k = {self.k}; tau^2 estimator: {self.method}; test = {self.test})",
            "",
            " ".join(h.rjust(w) if j else h.ljust(w) for j, (h, w) in enumerate(zip(head, width))).rstrip(),
        ]
        for r in rows:
            lines.append(" ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, width))).rstrip())
        lines += [
            "",
            f"* influential (metafor 3.8.1): |dffits| > {_fmt(3 * math.sqrt(1 / (self.k - 1)))}, "
            f"pchisq(cook.d, 1) > 0.5, hat > {_fmt(3 / self.k)} or |dfbs| > 1; "
            f"{int(self.is_infl.sum())} of {self.k} flagged",
        ]
        return "\n".join(lines)


def _check_result(res, who: str):
    """The yi, vi, labels and options of a fitted PoolResult (ValueError/TypeError otherwise)."""
    if not (hasattr(res, "estimate") and hasattr(res, "tau2") and hasattr(res, "method")):
        raise TypeError(f"{who}: res must be a fitted result from meta.pool.pool(); got {type(res).__name__}")
    if getattr(res, "yi", None) is None or getattr(res, "vi", None) is None:
        raise ValueError(f"{who}: this result carries no yi/vi (built by hand); fit it with meta.pool.pool(yi, vi)")
    y = np.asarray(res.yi, dtype=float)
    v = np.asarray(res.vi, dtype=float)
    if y.size < 2:
        raise ValueError(f"{who} needs at least 2 studies (k >= 2); got k = {y.size} (metafor stops too)")
    slab = tuple(res.slab) if len(res.slab) == y.size else tuple(range(1, y.size + 1))
    return y, v, slab


def _s2w(rss, k, test: str) -> np.ndarray:
    """metafor's ``s2w`` of fits with ``k`` studies: the Knapp-Hartung factor
    ``rss / (k - 1)`` for ``"hksj"`` (0 when ``rss <= eps``) and ``"adhoc"``
    (at least 1); 1 for ``"z"``, ``"t"`` and for k = 1 (test falls back to z)."""
    k = np.asarray(k)
    if test not in _est.ADJUSTED_TESTS:
        return np.ones(k.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2w = _f.hksj_factor(rss, np.maximum(k - 1, 1), test == "adhoc")
    return np.where(k > 1, s2w, 1.0)


def _leave_one_out_core(y: np.ndarray, v: np.ndarray, method: str, test: str) -> dict:
    """``tau2, est, sw, q, s2w`` of the k fits that each leave one study out,
    computed in blocks of omitted studies by :func:`meta._estimators.fit_core`."""
    k = y.size
    out = {c: np.empty(k) for c in ("tau2", "est", "sw", "q", "s2w")}
    block = max(1, _BLOCK_CELLS // max(k - 1, 1))
    r = np.arange(k - 1)[:, None]
    for start in range(0, k, block):
        omit = np.arange(start, min(k, start + block))[None, :]
        idx = r + (r >= omit)  # (k-1) x B: the studies kept when `omit` is left out
        y2, v2 = y[idx], v[idx]
        mask = np.ones(idx.shape, dtype=bool)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            core = _est.fit_core(y2, v2, mask, method=method, rss=test in _est.ADJUSTED_TESTS)
        sl = slice(start, start + omit.size)
        out["tau2"][sl], out["est"][sl], out["sw"][sl], out["q"][sl] = core["tau2"], core["est"], core["sw"], core["q"]
        out["s2w"][sl] = _s2w(core["rss"], core["k"], test) if core["rss"] is not None else 1.0
    return out


def _r_or(*conds):
    """R's ``|`` over (value, is-NA) conditions: True if any is True, else
    NA if any is NA, else False; returns the boolean ``== TRUE``."""
    any_true = np.zeros(conds[0][0].shape, dtype=bool)
    for value, missing in conds:
        any_true |= value & ~missing
    return any_true


def influence(res) -> InfluenceResult:
    """Case diagnostics of a fitted result ``res`` (metafor 3.8.1
    ``influence(res)``; formulas in :mod:`meta.influence`): the k fits
    without one study each, with ``res``'s method and test.

    Returns an :class:`InfluenceResult` (``to_frame()``: one row per study,
    index ``slab``; ``summary()``: metafor's print; ``is_infl``: metafor's
    rule).  Needs k >= 2 (metafor stops at k = 1).  With k = 2 each fit
    without a study has k = 1 (its test falls back to z, as metafor).
    """
    y, v, slab = _check_result(res, "influence")
    k = y.size
    method, test = res.method, res.test
    tau2 = float(res.tau2)
    b = float(res.estimate)
    vb = float(res.se) ** 2
    if not vb > 0:
        raise ValueError(
            f"influence: the variance of the estimate is {vb!r}, not positive (test={test!r} with every yi equal gives the "
            "Knapp-Hartung factor s2w = 0), so Cook's distances and covariance ratios are undefined; metafor "
            "stops too. Use test='z'"
        )
    w = 1.0 / (v + tau2)
    sw = w.sum()
    hat = w / sw
    hat = np.where(hat > 1 - 10 * _EPS, 1.0, hat)
    weight = 100.0 * w / sw
    d = _leave_one_out_core(y, v, method, test)
    t2d, bd, swd, s2wd = d["tau2"], d["est"], d["sw"], d["s2w"]
    with np.errstate(divide="ignore", invalid="ignore"):
        vbd = s2wd / swd  # variance of the estimate without study i
        diff = b - bd
        dffits = diff / np.sqrt(s2wd * hat * (t2d + v))
        vb_plug = 1.0 / (swd + 1.0 / (v + t2d))  # sum over all k studies of 1/(v_j + tau2_(i))
        dfbetas = diff / np.sqrt(s2wd * vb_plug)
        cook = diff * diff / vb
        cov_r = vbd / vb
        resid = y - bd
        resid = np.where(np.abs(resid) < 100 * _EPS, 0.0, resid)
        resid_se = np.sqrt(v * s2wd + vbd + t2d * s2wd)
        rstud = resid / resid_se
        e = y - b
        e = np.where(np.abs(e) < 100 * _EPS, 0.0, e)
        bx = e * e / (tau2 + v)
    cook_p = _lazy.special().chdtr(1, cook)
    infl = _r_or(
        (np.abs(dffits) > 3 * math.sqrt(1 / (k - 1)), np.isnan(dffits)),
        (cook_p > 0.5, np.isnan(cook)),
        (hat > 3 / k, np.isnan(hat)),
        (np.abs(dfbetas) > 1, np.isnan(dfbetas)),
    )
    return InfluenceResult(
        slab=slab, rstudent=rstud, dffits=dffits, cook_d=cook, cov_r=cov_r, tau2_del=t2d, qe_del=d["q"], hat=hat,
        weight=weight, dfbetas=dfbetas, is_infl=infl, resid=resid, resid_se=resid_se, estimate_del=bd, vb_del=vbd,
        baujat_x=bx, k=k, tau2=tau2, qe=float(res.q), estimate=b, method=method, test=test,
    )


def rstudent(res) -> pd.DataFrame:
    """Externally studentised residuals (metafor ``rstudent(res)``): ``resid``
    (``y_i - b_(i)``), ``se`` and ``z``, one row per study (index ``slab``)."""
    inf = influence(res)
    return pd.DataFrame({"resid": inf.resid, "se": inf.resid_se, "z": inf.rstudent}, index=inf._index())


def rstandard(res) -> pd.DataFrame:
    """Internally standardised (marginal) residuals (metafor
    ``rstandard(res)``): ``resid = y_i - b``, ``se = sqrt(v_i + tau2 - 1/S)``,
    ``z = resid / se``, one row per study (index ``slab``).  Needs only the
    fit (no refits)."""
    y, v, slab = _check_result(res, "rstandard")
    w = 1.0 / (v + res.tau2)
    e = y - res.estimate
    e = np.where(np.abs(e) < 100 * _EPS, 0.0, e)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(1.0 / w - 1.0 / w.sum())
        z = e / se
    return pd.DataFrame({"resid": e, "se": se, "z": z}, index=pd.Index(list(slab), name="slab", tupleize_cols=False))


def baujat(res) -> pd.DataFrame:
    """Coordinates of the Baujat plot (Baujat et al. 2002, Stat Med
    21:2641-2652; metafor ``baujat(res)``): ``x`` = contribution of each
    study to Q (squared Pearson residual ``(y_i - b)^2 / (v_i + tau2)``),
    ``y`` = influence on the pooled result ``(b_(i) - b)^2 / vb_(i)``; index
    ``slab``.  Takes a PoolResult (fits the k leave-one-out models) or an
    :class:`InfluenceResult`."""
    inf = res if isinstance(res, InfluenceResult) else influence(res)
    return inf.baujat()
