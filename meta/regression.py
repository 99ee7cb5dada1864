"""Meta-regression: mixed-effects models with moderators that agree with R's metafor 3.8.1 ``rma(yi, vi, mods=)``.

Public names:

* :func:`meta_regression` - metafor ``rma.uni(yi, vi, mods=, method=, test=)``;
  returns a :class:`RegressionResult` (coefficients, QM test of the
  moderators, QE test of residual heterogeneity, tau2 and its SE, I2, H2,
  pseudo-R2);
* :func:`predict` / :meth:`RegressionResult.predict` - metafor
  ``predict.rma(newmods=)``: fitted values with confidence and prediction
  intervals;
* :func:`permutest` - metafor ``permutest.rma.uni``: permutation p-values
  (exact where metafor's rule says so, else seeded random permutations).

Model (Viechtbauer 2010, J Stat Softw 36(3); Raudenbush 2009, in Cooper et
al., The Handbook of Research Synthesis and Meta-Analysis, ch. 16):
``y = X beta + u + e``, ``u ~ N(0, tau2)``, ``e ~ N(0, v)``.  With
``W = diag(1 / (v + tau2))`` and ``P = W - W X (X'WX)^-1 X'W``:

* ``beta = (X'WX)^-1 X'W y``, ``vb = (X'WX)^-1`` (computed, as metafor's
  ``.invcalc``, from the QR decomposition of ``W^1/2 X``);
* tau2 (metafor 3.8.1 ``rma.uni``; all computed from the centred outcomes
  ``y - mean(y)``, as metafor, which matters only for models without an
  intercept), truncated at 0:

  - ``"DL"`` (DerSimonian & Laird 1986; Raudenbush 2009):
    ``(y'P0y - (k - p)) / tr(P0)``, ``P0`` = ``P`` at ``tau2 = 0``;
  - ``"HE"`` (Hedges 1983): ``(y'Ly - tr(LV)) / (k - p)`` with the OLS
    residual maker ``L = I - X (X'X)^-1 X'``;
  - ``"HS"`` (Hunter & Schmidt, metafor's form): ``(y'P0y - k) / sum(1/v)``;
  - ``"SJ"`` (Sidik & Jonkman 2005): ``t0 y'P_t0 y / (k - p)`` with
    ``t0 = mean((y - mean(y))^2)``;
  - ``"ML"``, ``"REML"`` (Viechtbauer 2005): the global maximiser over
    ``tau2 >= 0`` of the (restricted) likelihood; scores ``y'PPy - sum(w)``
    and ``y'PPy - tr(P)``.  As :func:`meta._estimators.tau2_mle` for
    ``pool()``: the score is scanned on a log grid up to a proven bound of
    every root (``t > max(max(v), 2 S / (k - p))``, ``S = sum((y -
    mean(y))^2)``: there ``y'PPy <= S / t^2`` while ``tr(P) >= (k -
    p) / (2t)``; ML: ``sum(w) >= k / (2t)``), every local maximum is solved
    by :func:`meta._estimators._bracketed_root` (Newton with the observed
    information, bisection as safeguard) and the highest is compared with the
    boundary 0.  metafor runs Fisher scoring from the HE value and can stop
    at a lower maximum; where it finds the global one, the values agree;
  - ``"PM"`` (Paule & Mandel 1982) and ``"EB"`` (Morris 1983): the root of
    ``y'Py = k - p`` (strictly decreasing in tau2), bracketed in
    ``[0, S / (k - p)]``; 0 when ``y'P0y < k - p``;
  - ``"FE"``: 0.

* tests of the coefficients (metafor ``test=``): ``"z"``; ``"hksj"`` (=
  ``"knha"``, Knapp & Hartung 2003): ``vb`` times
  ``s2w = sum(w (y - X beta)^2) / (k - p)``, t with ``k - p`` df;
  ``"adhoc"``: ``s2w`` truncated below at 1; ``"t"``: t with ``k - p`` df;
* omnibus test of moderators ``QM = b' vb^-1 b`` over the coefficients
  ``btt`` (all but the intercept), chi-square with ``m`` df, or ``QM / m``
  against F(m, k - p) for the t-based tests;
* residual heterogeneity ``QE = y'P0y``, chi-square with ``k - p`` df;
  ``vt = (k - p) / tr(P0)``, ``I2 = 100 tau2 / (vt + tau2)``,
  ``H2 = tau2 / vt + 1`` (FE: ``I2 = 100 (QE - (k-p)) / QE``,
  ``H2 = QE / (k - p)``);
* pseudo-R2 (Raudenbush 2009, metafor ``r2def="1"``):
  ``max(0, 100 (tau2_0 - tau2) / tau2_0)``, ``tau2_0`` from the model
  without moderators fitted with the same method (0 when ``tau2_0 = 0``);
  FE: the adjusted R2 of the weighted least-squares fit;
* SE of tau2 as metafor prints it (per method; see :func:`_se_tau2`).

Choices where metafor offers several (documented in docs/regression.md):
redundant (collinear) moderators are dropped with a warning, as metafor;
``pi="higgins"`` is refused (``"riley"`` is its generalisation).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from meta import _checks, _lazy
from meta import _estimators as _est
from meta._format import metafor_num as _fmt, metafor_p as _fmt_p

__all__ = ["RegressionResult", "PermutestResult", "meta_regression", "predict", "permutest"]

_EVTOL = 1e-7  # metafor's con$evtol: X'X with an eigenvalue below this is "not of full rank"
_LM_TOL = 1e-7  # R lm()'s QR tolerance: a column this close to the span of the earlier ones is redundant
_COMPTOL = math.sqrt(np.finfo(float).eps)  # permutest's con$comptol
_MODEL_NAMES = {"FE": "Fixed-Effects with Moderators Model", "RE": "Mixed-Effects Model"}


# --------------------------------------------------------------------------- linear algebra


def _inv_xwx(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(X'WX)^-1`` from the QR decomposition of ``W^1/2 X`` (metafor ``.invcalc``)."""
    r = np.linalg.qr(np.sqrt(w)[:, None] * X, mode="r")
    rinv = np.linalg.inv(r)
    return rinv @ rinv.T


def _pmat(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``P = W - W X (X'WX)^-1 X'W`` (k x k)."""
    wx = w[:, None] * X
    return np.diag(w) - wx @ _inv_xwx(X, w) @ wx.T


def _parts(y, v, X, t):
    """Score, information and likelihood pieces at each ``tau2`` in ``t`` (1-D),
    without forming the k x k matrix ``P``: ``sw = sum(w)``, ``ypy = y'Py``
    (weighted residual sum of squares), ``yppy = y'PPy``, ``trp = tr(P) =
    sum(w) - tr(A^-1 X'W^2X)``, ``trpp = tr(PP) = sum(w^2) - 2 tr(A^-1
    X'W^3X) + tr((A^-1 X'W^2X)^2)``, ``ypppy = u'Pu`` with ``u = Py``, and
    ``logdet = log det(A)``, ``A = X'WX``."""
    W = 1.0 / (v[None, :] + t[:, None])  # g x k
    A = np.einsum("gk,ki,kj->gij", W, X, X)
    Ainv = np.linalg.inv(A)
    b = np.einsum("gij,gj->gi", Ainv, (W * y) @ X)
    r = y[None, :] - b @ X.T
    u = W * r
    out = {"sw": W.sum(1), "ypy": (u * r).sum(1), "yppy": (u * u).sum(1)}
    W2 = W * W
    B = np.einsum("gk,ki,kj->gij", W2, X, X)
    AB = Ainv @ B
    out["trp"] = out["sw"] - np.trace(AB, axis1=1, axis2=2)
    out["sw2"] = W2.sum(1)
    C = np.einsum("gk,ki,kj->gij", W2 * W, X, X)
    out["trpp"] = out["sw2"] - 2.0 * np.trace(Ainv @ C, axis1=1, axis2=2) + np.einsum("gij,gji->g", AB, AB)
    xwu = (W * u) @ X
    out["ypppy"] = (W * u * u).sum(1) - np.einsum("gi,gij,gj->g", xwu, Ainv, xwu)
    out["logdet"] = np.linalg.slogdet(A)[1]
    out["logv"] = np.log(v[None, :] + t[:, None]).sum(1)
    return out


def _score(y, v, X, t, ml=False, info=False):
    """ML score ``y'PPy - sum(w)`` or REML score ``y'PPy - tr(P)`` at each
    ``t``; with ``info`` also the information for a Newton step (observed
    ``2 y'PPPy - F`` where positive, else Fisher's ``F``: ``sum(w^2)`` for ML,
    ``tr(PP)`` for REML; Viechtbauer 2005)."""
    d = _parts(y, v, X, t)
    s = d["yppy"] - (d["sw"] if ml else d["trp"])
    if not info:
        return s
    fisher = d["sw2"] if ml else d["trpp"]
    obs = 2.0 * d["ypppy"] - fisher
    return s, np.where(obs > 0, obs, fisher)


def _loglik(y, v, X, t, ml=False):
    """Log-likelihood (``ml``) or restricted log-likelihood up to a constant."""
    d = _parts(y, v, X, t)
    return -0.5 * (d["logv"] + (0.0 if ml else d["logdet"]) + d["ypy"])


def _roots(fun, lo, hi, scale):
    """Roots of ``fun(t) -> (f, slope)`` in each bracket ``[lo, hi]`` (``f(lo) > 0 >= f(hi)``),
    by :func:`meta._estimators._bracketed_root` (the solver of ``pool()``)."""
    m = lo.size
    dummy = np.zeros((1, m))
    return _est._bracketed_root(lambda yy, vv, t, aux: fun(t), dummy, dummy, lo, hi, np.full(m, scale), aux=np.zeros(m))


def _tau2_mle(yc, v, X, ml):
    """Global maximiser of the (restricted) likelihood over tau2 >= 0 (module docstring)."""
    k, p = X.shape
    S = float(yc @ yc)
    up = 1.01 * max(float(v.max()), 2.0 * S / (k if ml else k - p))
    low = min(float(v.min()) / 16.0, up / 16.0)
    g = int(min(_est.GRID_MAX, max(8, math.ceil(_est.GRID_PER_OCTAVE * math.log2(up / low)) + 1)))
    grid = np.r_[0.0, low * (up / low) ** np.linspace(0.0, 1.0, g)]
    with np.errstate(over="ignore", invalid="ignore"):
        s = _score(yc, v, X, grid, ml)
    jj = np.flatnonzero((s[:-1] > 0) & (s[1:] <= 0))
    if jj.size == 0:
        return 0.0
    root = _roots(lambda t: _score(yc, v, X, t, ml, info=True), grid[jj], grid[jj + 1], float(v.mean()))
    ll = _loglik(yc, v, X, root, ml)
    best = int(np.argmax(ll))
    return float(root[best]) if ll[best] > _loglik(yc, v, X, np.zeros(1), ml)[0] else 0.0


def _tau2_pm(yc, v, X):
    """Root of the generalised ``Q(tau2) = y'Py = k - p`` (Paule & Mandel 1982; metafor PM, EB)."""
    k, p = X.shape
    df = k - p
    q0 = float(_parts(yc, v, X, np.zeros(1))["ypy"][0])
    if q0 <= df:
        return 0.0
    hi = float(yc @ yc) / df  # Q(hi) <= S / hi = k - p

    def fun(t):
        d = _parts(yc, v, X, t)
        return d["ypy"] - df, d["yppy"]

    return float(_roots(fun, np.zeros(1), np.array([hi]), float(v.mean()))[0])


def _tau2(yc, v, X, method):
    """tau2 of ``method`` (module docstring) and what its SE needs."""
    k, p = X.shape
    aux = {}
    if method == "FE":
        return 0.0, aux
    if method in ("DL", "HS"):
        w0 = 1.0 / v
        P = _pmat(X, w0)
        rss = float(yc @ P @ yc)
        aux.update(P=P, w=w0)
        t = (rss - (k - p)) / np.trace(P) if method == "DL" else (rss - k) / w0.sum()
    elif method == "HE" or method in ("ML", "REML", "EB"):
        L = np.eye(k) - X @ np.linalg.inv(X.T @ X) @ X.T
        rss = float(yc @ L @ yc)
        PV = L * v[None, :]
        t = (rss - np.trace(PV)) / (k - p)
        aux.update(PV=PV)
        if method == "ML" or method == "REML":
            t = _tau2_mle(yc, v, X, method == "ML")
        elif method == "EB":
            t = _tau2_pm(yc, v, X)
    elif method == "SJ":
        t0 = float(yc @ yc) / k
        P = _pmat(X, 1.0 / (v + t0))
        rss = float(yc @ P @ yc)
        t = t0 * rss / (k - p)
        aux.update(P=P, PV=P * v[None, :], t0=t0)
    elif method == "PM":
        t = _tau2_pm(yc, v, X)
    else:  # pragma: no cover - checked by the caller
        raise ValueError(method)
    return max(0.0, float(t)), aux


def _se_tau2(method, tau2, v, X, aux):
    """Standard error of tau2 as metafor 3.8.1 ``rma.uni`` computes it (``se.tau2``)."""
    k, p = X.shape
    t = max(tau2, 0.0)
    if method == "FE":
        return math.nan
    if method in ("DL", "HS"):
        P, w = aux["P"], aux["w"]
        trp, spp = np.trace(P), float((P * P).sum())
        inner = 2 * (k - p) + 4 * t * trp + 2 * t * t * spp
        return math.sqrt(inner / trp**2) if method == "DL" else math.sqrt(inner / w.sum() ** 2)
    if method == "HE":
        PV = aux["PV"]
        return math.sqrt((2 * float((PV * PV.T).sum()) + 4 * t * np.trace(PV) + 2 * t * t * (k - p)) / (k - p) ** 2)
    if method == "SJ":
        P, PV, t0 = aux["P"], aux["PV"], aux["t0"]
        inner = 2 * float((PV * PV.T).sum()) + 4 * t * float((PV * P).sum()) + 2 * t * t * float((P * P).sum())
        return math.sqrt(t0**2 / (k - p) ** 2 * inner)
    w = 1.0 / (v + tau2)
    if method == "ML":
        return math.sqrt(2.0 / float((w * w).sum()))
    if method == "REML":
        P = _pmat(X, w)
        return math.sqrt(2.0 / float((P * P).sum()))
    return math.sqrt(2.0 * k * k / (k - p) / w.sum() ** 2)  # PM, EB


def _crit(test, df, level):
    q = 1.0 - (1.0 - level) / 2.0
    return _est.z_crit(q) if test == "z" else _est.t_crit(int(df), q)


def _fit(y, v, X, method, test, level, btt, *, r2=False, se_tau2=True):
    """The whole model on a checked design ``X`` (module docstring); a dict of results."""
    k, p = X.shape
    yc = y - y.mean()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        tau2, aux = _tau2(yc, v, X, method)
        w = 1.0 / (v + tau2)
        vb = _inv_xwx(X, w)
        beta = vb @ (X.T @ (w * y))
        res = y - X @ beta
        s2w = 1.0
        if test in ("hksj", "adhoc"):
            rss = float((w * res * res).sum())
            s2w = 0.0 if rss <= np.finfo(float).eps else rss / (k - p)
            if test == "adhoc":
                s2w = max(1.0, s2w)
            vb = s2w * vb
        se = np.sqrt(np.diag(vb))
        stat = beta / se
        ddf = None if test == "z" else k - p
        sp = _lazy.special()
        bsel = beta[list(btt)]
        try:
            c = np.linalg.cholesky(vb[np.ix_(btt, btt)])
            z = np.linalg.solve(c, bsel)
            qm = float(z @ z)
        except np.linalg.LinAlgError:
            qm = math.nan
        m = len(btt)
        if ddf is None:
            pval = sp.erfc(np.abs(stat) / math.sqrt(2.0))
            qmp = float(sp.chdtrc(m, qm))
            qmdf = (m, None)
        else:
            qm = qm / m
            pval = 2.0 * sp.stdtr(ddf, -np.abs(stat))
            qmp = float(sp.fdtrc(m, ddf, qm))
            qmdf = (m, ddf)
        crit = _crit(test, ddf, level)
        out = {"tau2": tau2, "beta": beta, "vb": vb, "se": se, "stat": stat, "pval": pval, "ci_lb": beta - crit * se,
               "ci_ub": beta + crit * se, "QM": qm, "QMdf": qmdf, "QMp": qmp, "ddf": ddf, "s2w": s2w, "crit": crit,
               "weights": 100.0 * w / w.sum()}
        if k > p:
            P0 = _pmat(X, 1.0 / v)
            qe = max(0.0, float(yc @ P0 @ yc))
            vt = (k - p) / np.trace(P0)
            if method == "FE":
                i2 = max(0.0, 100.0 * (qe - (k - p)) / qe) if qe > 0 else 0.0
                h2 = qe / (k - p)
            else:
                i2 = 100.0 * tau2 / (vt + tau2)
                h2 = tau2 / vt + 1.0
            out.update(QE=qe, QEp=float(sp.chdtrc(k - p, qe)), I2=i2, H2=h2, vt=vt)
        else:
            out.update(QE=0.0, QEp=1.0, I2=0.0, H2=1.0, vt=0.0)
        out["se_tau2"] = _se_tau2(method, tau2, v, X, aux) if se_tau2 else math.nan
        out["R2"] = _r2(y, yc, v, X, method, tau2, beta, w) if r2 else math.nan
    return out


def _r2(y, yc, v, X, method, tau2, beta, w):
    """Pseudo-R2 (metafor ``r2def="1"``; FE: adjusted R2 of the weighted fit)."""
    k, p = X.shape
    if method == "FE":
        if np.var(y) == 0:
            return 0.0
        if k == p:  # no residual df: R's adjusted R2 is NaN
            return math.nan
        w0 = 1.0 / v
        fitted = X @ beta
        mw = (w0 * fitted).sum() / w0.sum()
        mss = float((w0 * (fitted - mw) ** 2).sum())
        rss = float((w0 * (y - fitted) ** 2).sum())
        r2 = mss / (mss + rss)
        adj = 1.0 - (1.0 - r2) * (k - 1) / (k - p)
        return max(0.0, 100.0 * adj)
    ones = np.ones((k, 1))
    if k < 2:
        return math.nan
    tau2_0, _ = _tau2(yc, v, ones, method)
    if tau2_0 == 0:
        return 0.0
    return max(0.0, 100.0 * (tau2_0 - tau2) / tau2_0)


# --------------------------------------------------------------------------- design matrix


@dataclass(frozen=True)
class _Coding:
    """How the moderators became columns of ``X`` (for :func:`predict` with a DataFrame)."""

    kind: str  # "none", "array", "frame", "formula"
    columns: tuple = ()  # frame: (column, levels or None) in order
    spec: Any = None  # formula: formulaic's ModelSpec
    full_first: bool = False  # frame without intercept: the first factor coded with every level


def _r_name(name: str) -> str:
    """formulaic's ``g[T.b]`` / ``g[b]`` -> R's ``gb``; ``Intercept`` -> ``intrcpt``."""
    if name == "Intercept":
        return "intrcpt"
    return ":".join(re.sub(r"\[(?:T\.)?(.*)\]$", r"\1", part) for part in name.split(":"))


def _levels(s: pd.Series) -> list:
    """Factor levels as R's ``factor()``: a pandas Categorical's categories, else the sorted distinct values."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return list(s.cat.categories)
    if pd.api.types.is_bool_dtype(s):
        return [False, True]
    return sorted(pd.unique(s.dropna()), key=lambda x: (str(type(x)), x))


def _is_factor(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype)


def _missing(s: pd.Series, name: str, what: str = "mods") -> None:
    bad = s.isna().to_numpy()
    if not _is_factor(s):
        vals = _checks.numbers(s, f"{what} column {name!r}")
        bad = bad | ~np.isfinite(vals)
    if bad.any():
        raise ValueError(
            f"{what}: column {name!r} has missing or non-finite values at positions (0-based) {_checks.positions(bad)}; "
            "metafor drops such studies, here they must be removed (or imputed) before fitting"
        )


def _frame_columns(df: pd.DataFrame, coding: tuple | None = None, full_first: bool = False) -> tuple[np.ndarray, list, tuple]:
    """Columns of a DataFrame of moderators: numbers as they are, factors (text,
    categorical, boolean) as treatment contrasts (R ``contr.treatment``: one
    indicator per level but the first, named column + level).  ``full_first``
    (a model without intercept): the first factor gets an indicator for every
    level, as R's ``model.matrix(~ 0 + f + ...)``."""
    cols, names, spec = [], [], []
    given = dict(coding) if coding is not None else None
    for name in df.columns:
        s = df[name]
        _missing(s, str(name), "mods" if given is None else "newmods")
        levels = given[name] if given is not None else (_levels(s) if _is_factor(s) else None)
        if levels is None:
            cols.append(_checks.numbers(s, f"mods column {name!r}"))
            names.append(str(name))
        else:
            unknown = sorted(set(map(str, pd.unique(s))) - set(map(str, levels)))
            if unknown:
                raise ValueError(f"newmods: column {name!r} has levels {unknown} not seen when fitting; known: {list(levels)}")
            sv = s.astype(object).map(str).to_numpy()
            first = 0 if full_first else 1
            full_first = False
            for lev in levels[first:]:
                cols.append((sv == str(lev)).astype(float))
                names.append(f"{name}{'TRUE' if lev is True else lev}")
        spec.append((name, levels))
    X = np.column_stack(cols) if cols else np.empty((len(df), 0))
    return X, names, tuple(spec)


def _formulaic():
    try:
        import formulaic
    except ImportError:
        raise ImportError(
            "mods given as a formula need the optional package formulaic: pip install formulaic "
            "(or pip install 'meta-pfp-review[formula]'); or pass mods as a DataFrame or array"
        ) from None
    return formulaic


def _formula_matrix(formula: str, data: pd.DataFrame):
    """Model matrix of a one-sided formula over ``data`` (formulaic; R's coding and names)."""
    if data is None:
        raise ValueError(f"mods={formula!r} is a formula; pass data= (a DataFrame with its variables)")
    fl = _formulaic()
    try:
        needed = {str(x) for x in fl.Formula(formula).required_variables}
    except Exception as exc:
        raise ValueError(f"mods: cannot parse formula {formula!r}: {exc}") from None
    for name in sorted(needed & set(map(str, data.columns))):
        _missing(data[name], name)
    try:
        mm = fl.model_matrix(formula, data, na_action="raise")
    except Exception as exc:
        raise ValueError(f"mods: cannot evaluate formula {formula!r} over data: {exc}") from None
    names = [_r_name(str(c)) for c in mm.columns]
    return np.asarray(mm, dtype=float), names, mm.model_spec


def _design(mods, data, intercept: bool, k: int):
    """``(X, names, coding)`` before the redundancy check; the intercept first."""
    if isinstance(mods, str) and "~" in mods:
        X, names, spec = _formula_matrix(mods, data)
        coding = _Coding("formula", spec=spec)
        if len(X) != k:
            raise ValueError(f"mods formula gives {len(X)} rows; yi has {k}")
        return X, names, coding
    if isinstance(mods, (list, tuple)) and mods and all(isinstance(m, str) for m in mods) or isinstance(mods, str):
        if data is None:
            raise ValueError(f"mods={mods!r} names columns; pass data= (a DataFrame holding them)")
        names_ = [mods] if isinstance(mods, str) else list(mods)
        missing = [n for n in names_ if n not in data.columns]
        if missing:
            raise ValueError(f"mods: columns {missing} are not in data; data has {list(data.columns)}")
        mods = data[names_]
    if mods is None:
        X, names, coding = np.empty((k, 0)), [], _Coding("none")
    elif isinstance(mods, pd.DataFrame):
        X, names, spec = _frame_columns(mods, full_first=not intercept)
        coding = _Coding("frame", columns=spec, full_first=not intercept)
    elif isinstance(mods, pd.Series) and _is_factor(mods):
        name = str(mods.name) if mods.name is not None else "mods"
        X, names, spec = _frame_columns(mods.to_frame(name), full_first=not intercept)
        coding = _Coding("frame", columns=spec, full_first=not intercept)
    else:
        name = str(mods.name) if isinstance(mods, pd.Series) and mods.name is not None else "mods"
        a = _checks.numbers(mods, "mods")
        if a.ndim == 0 or a.ndim > 2:
            raise ValueError(f"mods must be a 1-D or 2-D array (one column per moderator); got shape {a.shape}")
        if a.ndim == 1:
            a = a[:, None]
            names = [name]
        else:
            names = [f"{name}{j + 1}" for j in range(a.shape[1])]
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"mods must be finite (no NaN or inf); offending (row, column) positions (0-based): "
                             f"{_checks.positions(bad)}")
        X, coding = a, _Coding("array")
    if X.shape[0] != k:
        raise ValueError(f"mods must have one row per study ({k}); got {X.shape[0]}")
    if intercept:
        X = np.column_stack([np.ones(k), X])
        names = ["intrcpt"] + names
    return X, names, coding


def _redundant(X: np.ndarray) -> np.ndarray:
    """Columns that R's ``lm(y ~ X - 1)`` would alias (NA coefficient): a column
    whose part orthogonal to the earlier kept columns has norm below
    ``1e-7`` times its own (LINPACK ``dqrdc2``'s rule, as R applies it)."""
    keep, drop = [], np.zeros(X.shape[1], bool)
    for j in range(X.shape[1]):
        col = X[:, j]
        nrm = np.linalg.norm(col)
        if keep:
            q, _ = np.linalg.qr(X[:, keep])
            col = col - q @ (q.T @ col)
        if nrm == 0 or np.linalg.norm(col) < _LM_TOL * nrm:
            drop[j] = True
        else:
            keep.append(j)
    return drop


def _prepare_x(X, names, k, method):
    """metafor's checks on ``X``: redundant columns dropped (warning), an
    all-ones column taken as the intercept and moved first, full rank, and
    enough studies (k >= p + 1; FE: k >= p)."""
    drop = _redundant(X)
    dropped = tuple(n for n, d in zip(names, drop) if d)
    if drop.any():
        warnings.warn(f"Redundant predictors dropped from the model (as metafor): {list(dropped)}", UserWarning, stacklevel=4)
        X, names = X[:, ~drop], [n for n, d in zip(names, drop) if not d]
    is_int = np.all(np.abs(X - 1.0) < 1e-8, axis=0)
    int_incl = bool(is_int.any())
    if int_incl:
        X = np.column_stack([np.ones(k), X[:, ~is_int]])
        names = ["intrcpt"] + [n for n, i in zip(names, is_int) if not i]
    p = X.shape[1]
    if p == 0:
        raise ValueError("the model has no coefficients: give mods or keep intercept=True")
    if np.linalg.eigvalsh(X.T @ X).min() <= _EVTOL:
        raise ValueError("the model matrix is not of full rank (metafor: 'Model matrix not of full rank'); "
                         "rescale or remove nearly collinear moderators")
    need = p if method == "FE" else p + 1
    if k < need:
        raise ValueError(f"too few studies: k = {k} with p = {p} coefficients; method={method!r} needs k >= {need} "
                         "(metafor: 'Number of parameters to be estimated is larger than the number of observations')")
    return X, names, int_incl, dropped


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False, repr=False)
class RegressionResult:
    """A fitted meta-regression (metafor ``rma.uni`` object with ``mods``).

    Coefficients (arrays in the order of ``names``; metafor's names):
    ``beta, se, zval`` (t statistics under a t-based test), ``pval, ci_lb,
    ci_ub``; ``vb`` their covariance matrix.  Heterogeneity: ``tau2``,
    ``se_tau2``, ``I2`` (percent), ``H2``, ``R2`` (percent, NaN without an
    intercept or moderators), ``vt`` (typical within-study variance).
    Tests: ``QE, QEdf, QEp`` (residual heterogeneity), ``QM, QMdf, QMp``
    (moderators ``btt``, 0-based positions; ``QMdf = (m, None)`` for the
    chi-square test, ``(m, k - p)`` for F), ``ddf`` (df of t tests, None for z),
    ``s2w`` (Knapp-Hartung factor, 1 otherwise).  Data: ``yi, vi, X``
    (read-only arrays), ``slab`` (study labels), ``weights`` (percent).
    ``dropped``: names of redundant moderators removed before fitting.
    """

    beta: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    vb: np.ndarray
    names: tuple
    k: int
    p: int
    tau2: float
    se_tau2: float
    I2: float
    H2: float
    R2: float
    vt: float
    QE: float
    QEdf: int
    QEp: float
    QM: float
    QMdf: tuple
    QMp: float
    ddf: int | None
    s2w: float
    method: str
    test: str
    level: float
    pi: str
    int_incl: bool
    btt: tuple
    yi: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    slab: tuple
    weights: np.ndarray
    dropped: tuple = ()
    coding: Any = field(default=None)

    def __post_init__(self):
        for name in ("beta", "se", "zval", "pval", "ci_lb", "ci_ub", "vb", "yi", "vi", "X", "weights"):
            a = np.array(getattr(self, name), dtype=float)
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    # metafor-style aliases and pool()-style lower-case names
    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2)

    @property
    def i2(self) -> float:
        return self.I2

    @property
    def h2(self) -> float:
        return self.H2

    @property
    def int_only(self) -> bool:
        return self.p == 1 and self.int_incl

    def to_frame(self) -> pd.DataFrame:
        """The coefficient table, one row per coefficient (index: ``names``):
        ``estimate, se, zval`` (``tval`` under a t-based test), ``pval, ci_lb, ci_ub``."""
        stat = "zval" if self.test == "z" else "tval"
        return pd.DataFrame(
            {"estimate": self.beta, "se": self.se, stat: self.zval, "pval": self.pval, "ci_lb": self.ci_lb,
             "ci_ub": self.ci_ub},
            index=pd.Index(self.names, name="coefficient"),
        )

    def predict(self, newmods=None, *, intercept: bool = True, level=None) -> pd.DataFrame:
        """:func:`predict` on this fit."""
        return predict(self, newmods, intercept=intercept, level=level)

    def summary(self) -> str:
        """Text in metafor's ``print.rma.uni`` order and wording."""
        fe = self.method == "FE"
        lines = []
        if self.int_only:
            head = "Fixed-Effects Model" if fe else "Random-Effects Model"
        else:
            head = _MODEL_NAMES["FE" if fe else "RE"]
        lines.append(f"{head} (k = {self.k}" + (")" if fe else f"; tau^2 estimator: {self.method})"))
        lines.append("")
        what = "total" if self.int_only else "residual"
        if not fe:
            se = f" (SE = {_fmt(self.se_tau2)})" if np.isfinite(self.se_tau2) else ""
            lines.append(f"tau^2 (estimated amount of {what} heterogeneity):     {_fmt(self.tau2)}{se}")
            lines.append(f"tau (square root of estimated tau^2 value):             {_fmt(self.tau)}")
        if self.int_only:
            lines.append(f"I^2 (total heterogeneity / total variability):          {_fmt(self.I2, 2)}%")
            lines.append(f"H^2 (total variability / sampling variability):         {_fmt(self.H2, 2)}")
        else:
            lines.append(f"I^2 (residual heterogeneity / unaccounted variability): {_fmt(self.I2, 2)}%")
            lines.append(f"H^2 (unaccounted variability / sampling variability):   {_fmt(self.H2, 2)}")
            if np.isfinite(self.R2):
                lines.append(f"R^2 (amount of heterogeneity accounted for):            {_fmt(self.R2, 2)}%")
        lines += ["", "Test for Heterogeneity:" if self.int_only else "Test for Residual Heterogeneity:"]
        lines.append(f"{'Q' if self.int_only else 'QE'}(df = {self.QEdf}) = {_fmt(self.QE)}, p-val {_pv(self.QEp)}")
        if not self.int_only:
            lines += ["", f"Test of Moderators (coefficient{'s' if len(self.btt) > 1 else ''} {_btt_text(self.btt)}):"]
            if self.QMdf[1] is None:
                lines.append(f"QM(df = {self.QMdf[0]}) = {_fmt(self.QM)}, p-val {_pv(self.QMp)}")
            else:
                lines.append(f"F(df1 = {self.QMdf[0]}, df2 = {self.QMdf[1]}) = {_fmt(self.QM)}, p-val {_pv(self.QMp)}")
        lines += ["", "Model Results:", ""]
        stat = "zval" if self.test == "z" else "tval"
        heads = ["estimate", "se", stat] + ([] if self.ddf is None else ["df"]) + ["pval", "ci.lb", "ci.ub", ""]
        rows = []
        for j, name in enumerate(self.names):
            row = [_fmt(self.beta[j]), _fmt(self.se[j]), _fmt(self.zval[j])]
            row += [] if self.ddf is None else [str(self.ddf)]
            row += [_fmt_p(self.pval[j]), _fmt(self.ci_lb[j]), _fmt(self.ci_ub[j]), _stars(self.pval[j])]
            rows.append(row)
        lab_w = max(len(str(n)) for n in self.names)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
        lines.append(" " * lab_w + "".join("  " + h.rjust(w) for h, w in zip(heads, widths)).rstrip())
        for name, row in zip(self.names, rows):
            lines.append(str(name).ljust(lab_w) + "".join("  " + c.rjust(w) for c, w in zip(row, widths)).rstrip())
        lines += ["", "---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1", ""]
        lines.append(f"{100 * self.level:g}% CI level; test = {self.test}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def _pv(p: float) -> str:
    s = _fmt_p(p)
    return "< .0001" if s == "<.0001" else f"= {s}"


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


def _btt_text(btt: tuple) -> str:
    """1-based coefficient numbers as metafor prints them (``2``, ``2:3``, ``2,4``)."""
    one = [b + 1 for b in btt]
    if len(one) > 1 and one == list(range(one[0], one[-1] + 1)):
        return f"{one[0]}:{one[-1]}"
    return ",".join(map(str, one))


# --------------------------------------------------------------------------- fitting


def _column(x, data, name):
    """A column of ``data`` named by ``x`` (a string), else ``x`` itself."""
    if isinstance(x, str):
        if data is None:
            raise ValueError(f"{name}={x!r} names a column; pass data= (a DataFrame holding it)")
        if x not in data.columns:
            raise ValueError(f"{name}: column {x!r} is not in data; data has {list(data.columns)}")
        return data[x]
    return x


def _study_arrays(yi, vi):
    y = _checks.numbers(yi, "yi")
    v = _checks.numbers(vi, "vi")
    for a, n in ((y, "yi"), (v, "vi")):
        if a.ndim != 1:
            raise ValueError(f"{n} must be one-dimensional; got shape {a.shape}")
    if y.size != v.size:
        raise ValueError(f"yi and vi must have the same length; got {y.size} and {v.size}")
    if y.size == 0:
        raise ValueError("yi is empty: a meta-regression needs studies")
    for a, n in ((y, "yi"), (v, "vi")):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{n} must be finite (no NaN or inf); offending positions (0-based): {_checks.positions(bad)}")
    bad = v <= 0
    if bad.any():
        raise ValueError(f"vi must be > 0; offending positions (0-based): {_checks.positions(bad)}, values {v[bad][:10].tolist()}")
    return y, v


def _btt(btt, p, int_incl, names):
    """Coefficients of the QM test, 0-based (metafor ``.set.btt``; ``btt`` given 1-based as metafor, or names)."""
    if btt is None:
        return tuple(range(1, p)) if (p > 1 and int_incl) else tuple(range(p))
    items = [btt] if isinstance(btt, (int, np.integer, str)) else list(btt)
    out = []
    for b in items:
        if isinstance(b, str):
            if b not in names:
                raise ValueError(f"btt: no coefficient named {b!r}; coefficients: {list(names)}")
            out.append(names.index(b))
        elif isinstance(b, (int, np.integer)) and 1 <= b <= p:
            out.append(int(b) - 1)
        else:
            raise ValueError(f"btt must hold coefficient numbers 1..{p} (1-based, as metafor) or names; got {b!r}")
    return tuple(sorted(set(out)))


def meta_regression(
    yi,
    vi,
    mods=None,
    *,
    data: pd.DataFrame | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    pi: str = "default",
    slab=None,
    intercept: bool = True,
    btt=None,
) -> RegressionResult:
    """Meta-regression of ``yi`` (sampling variances ``vi``) on moderators ``mods``.

    Equivalent to metafor 3.8.1 ``rma(yi, vi, mods=mods, method=method,
    test=test, level=level, btt=btt)`` (formulas: module docstring).

    ``mods``: None (intercept only), a 1-D array/Series (one moderator), a
    2-D array (one column per moderator), a DataFrame (numeric columns as
    they are; text, categorical and boolean columns coded as treatment
    contrasts like R's factors: one indicator per level but the first, levels
    sorted, or a Categorical's own order), a list of column names of
    ``data``, or a one-sided formula string over ``data`` such as
    ``"~ ablat + alloc"`` (needs the optional package formulaic; the formula
    decides the intercept, ``~ 0 + x`` drops it).  ``yi``, ``vi`` and
    ``slab`` may also name columns of ``data``.  ``intercept``: add the
    intercept (metafor ``intercept=``; ignored for formulas).

    ``method`` (metafor's names, any case): ``"REML"`` (default, as
    metafor), ``"ML"``, ``"DL"``, ``"HE"``, ``"HS"``, ``"SJ"``, ``"PM"``,
    ``"EB"``, ``"FE"`` (= ``"EE"``, ``"CE"``).  ``test``: ``"z"``,
    ``"hksj"`` (= ``"knha"``), ``"adhoc"``, ``"t"``.  ``level``: 0.95 or 95.
    ``pi``: prediction intervals of :func:`predict` (``"default"``,
    ``"simple"``, ``"t"``, ``"riley"``; metafor ``predict(pi.type=)``).
    ``btt``: coefficients of the QM test (1-based numbers as metafor, or
    names); default all but the intercept.

    Redundant moderators (collinear with earlier columns, including a
    constant moderator beside the intercept) are dropped with a
    ``UserWarning``, as metafor does; ``RegressionResult.dropped`` names them.
    Raises ``ValueError`` for NaN/inf in ``yi``, ``vi`` or ``mods`` (naming
    the positions), ``vi <= 0``, too few studies (k < p + 1; FE: k < p), or a
    model matrix that is not of full rank after dropping.
    """
    method, test, level, pi = _checks.estimator_options(method, test, level, pi)
    if pi == "higgins":
        raise ValueError("pi='higgins' (t with k-2 df) is defined for the model without moderators; "
                         "use pi='riley' (t with k-p-1 df, metafor predict(pi.type='riley'))")
    if data is not None and not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    yi, vi, slab = _column(yi, data, "yi"), _column(vi, data, "vi"), _column(slab, data, "slab")
    is_formula = isinstance(mods, str) and "~" in mods
    frame_mods = mods if isinstance(mods, (pd.Series, pd.DataFrame)) else None
    args, index = _checks.align({"yi": yi, "vi": vi, "mods": frame_mods, "slab": slab if isinstance(slab, pd.Series) else None})
    yi, vi = args["yi"], args["vi"]
    if frame_mods is not None:
        mods = args["mods"]
    if isinstance(slab, pd.Series):
        slab = args["slab"]
    y, v = _study_arrays(yi, vi)
    k = y.size
    if isinstance(mods, (pd.Series, pd.DataFrame)):
        mods = mods.reset_index(drop=True)
    if is_formula and data is not None and len(data) != k:
        raise ValueError(f"data has {len(data)} rows; yi has {k}")
    if isinstance(mods, (list, tuple)) and mods and all(isinstance(m, str) for m in mods) and data is not None and len(data) != k:
        raise ValueError(f"data has {len(data)} rows; yi has {k}")
    X, names, coding = _design(mods, data, intercept, k)
    X, names, int_incl, dropped = _prepare_x(X, names, k, method)
    if test != "z" and k <= X.shape[1]:
        raise ValueError(f"test={test!r} needs k > p (k = {k}, p = {X.shape[1]}): no residual df")
    if slab is None:
        lab = tuple(index) if index is not None else tuple(range(1, k + 1))
    else:
        lab = tuple(slab.to_numpy() if isinstance(slab, (pd.Series, pd.Index)) else slab)
        if len(lab) != k:
            raise ValueError(f"slab must have one entry per study ({k}); got {len(lab)}")
    btt_ = _btt(btt, X.shape[1], int_incl, names)
    out = _fit(y, v, X, method, test, level, btt_, r2=int_incl and X.shape[1] > 1)
    _checks.finite_results({"beta": out["beta"], "se": out["se"], "tau2": out["tau2"]}, "yi, vi, mods", "meta_regression")
    return _result(out, y, v, X, names, method, test, level, pi, int_incl, btt_, lab, dropped, coding)


def _result(out, y, v, X, names, method, test, level, pi, int_incl, btt, slab, dropped=(), coding=None):
    k, p = X.shape
    return RegressionResult(
        beta=out["beta"], se=out["se"], zval=out["stat"], pval=out["pval"], ci_lb=out["ci_lb"], ci_ub=out["ci_ub"],
        vb=out["vb"], names=tuple(names), k=k, p=p, tau2=float(out["tau2"]), se_tau2=float(out["se_tau2"]),
        I2=float(out["I2"]), H2=float(out["H2"]), R2=float(out["R2"]), vt=float(out["vt"]), QE=float(out["QE"]),
        QEdf=k - p, QEp=float(out["QEp"]), QM=float(out["QM"]), QMdf=out["QMdf"], QMp=float(out["QMp"]),
        ddf=out["ddf"], s2w=float(out["s2w"]), method=method, test=test, level=float(level), pi=pi,
        int_incl=int_incl, btt=tuple(btt), yi=y, vi=v, X=X, slab=tuple(slab), weights=out["weights"],
        dropped=tuple(dropped), coding=coding,
    )


# --------------------------------------------------------------------------- predict


def _new_x(res: RegressionResult, newmods, intercept: bool) -> tuple[np.ndarray, Any]:
    """Rows of the model matrix for ``newmods`` (metafor ``predict.rma``'s rules)."""
    cols = [n for n in res.names if not (res.int_incl and n == "intrcpt")]
    pm = len(cols)
    index = None
    coding = res.coding
    if isinstance(newmods, pd.DataFrame) and coding is not None and coding.kind in ("frame", "formula") and not set(newmods.columns) >= set(cols):
        index = newmods.index
        if coding.kind == "formula":
            for name in newmods.columns:
                _missing(newmods[name], str(name), "newmods")
            mm = coding.spec.get_model_matrix(newmods, na_action="raise")
            full = dict(zip([_r_name(str(c)) for c in mm.columns], np.asarray(mm, dtype=float).T))
        else:
            need = [c for c, _ in coding.columns]
            missing = [c for c in need if c not in newmods.columns]
            if missing:
                raise ValueError(f"newmods: columns {missing} are missing; the model was fitted on {need}")
            Xf, fnames, _ = _frame_columns(newmods[need].reset_index(drop=True), coding.columns, coding.full_first)
            full = dict(zip(fnames, Xf.T))
        try:
            Xn = np.column_stack([full[c] for c in cols]) if cols else np.empty((len(newmods), 0))
        except KeyError as exc:
            raise ValueError(f"newmods do not give coefficient {exc.args[0]!r} of the model {list(res.names)}") from None
    elif isinstance(newmods, pd.DataFrame):
        index = newmods.index
        missing = [c for c in cols if c not in newmods.columns]
        if missing:
            raise ValueError(f"newmods: columns {missing} are missing; give one column per coefficient {cols}")
        Xn = _checks.numbers(newmods[cols], "newmods")
    else:
        if isinstance(newmods, pd.Series):
            index = newmods.index if pm == 1 else None
        a = _checks.numbers(newmods, "newmods")
        if pm == 1:
            Xn = a.reshape(-1, 1)
        elif a.ndim == 1:
            Xn = a.reshape(1, -1)
        elif a.ndim == 2:
            Xn = a
        else:
            raise ValueError(f"newmods must be 1-D or 2-D; got shape {a.shape}")
    if Xn.shape[1] != pm:
        raise ValueError(f"newmods has {Xn.shape[1]} columns; the model has {pm} moderator coefficients {cols}")
    bad = ~np.isfinite(Xn)
    if bad.any():
        raise ValueError(f"newmods must be finite; offending (row, column) positions (0-based): {_checks.positions(bad)}")
    if res.int_incl:
        Xn = np.column_stack([np.full(len(Xn), 1.0 if intercept else 0.0), Xn])
    return Xn, index


def predict(res: RegressionResult, newmods=None, *, intercept: bool = True, level=None) -> pd.DataFrame:
    """Predicted (average) outcomes at moderator values ``newmods`` with
    confidence and prediction intervals (metafor 3.8.1 ``predict.rma``).

    ``newmods``: None (the fitted values of the studies, index ``slab``);
    values of the moderator columns without the intercept (a scalar or 1-D
    array for a model with one moderator; a 1-D array of one row or a 2-D
    array otherwise; a DataFrame with one column per coefficient name); or,
    for a model fitted with a DataFrame or formula, a DataFrame of the
    original moderator variables (factors coded as when fitting).
    ``intercept=False`` sets the intercept's column to 0 (metafor).

    ``pred = x'beta``, ``se = sqrt(x' vb x)``, CI ``pred +- crit se``, PI
    ``pred +- crit sqrt(se^2 + tau2)``; ``crit`` from the model's test
    (normal, or t with k - p df), and for the PI from ``res.pi``
    (metafor ``pi.type``): ``"simple"`` normal without ``se^2``, ``"t"`` t
    with k - p df, ``"riley"`` t with k - p - 1 df (k - p for FE), df >= 1.
    Returns a DataFrame with ``pred, se, ci_lb, ci_ub, pi_lb, pi_ub``.
    """
    if not isinstance(res, RegressionResult):
        raise TypeError(f"predict needs a RegressionResult from meta_regression(); got {type(res).__name__}")
    lev = res.level if level is None else _checks.method_level("FE", level)[1]
    if newmods is None:
        Xn, index = np.asarray(res.X), pd.Index(res.slab, name="slab", tupleize_cols=False)
        if not intercept and res.int_incl:
            Xn = Xn.copy()
            Xn[:, 0] = 0.0
    else:
        if res.int_only:
            raise ValueError("newmods given, but the model has no moderators (metafor: 'Cannot specify new moderator values')")
        Xn, index = _new_x(res, newmods, intercept)
    pred = Xn @ res.beta
    vpred = np.einsum("ij,jk,ik->i", Xn, res.vb, Xn)
    se = np.sqrt(np.where(vpred < 0, np.nan, vpred))
    q = 1.0 - (1.0 - lev) / 2.0
    crit = _est.z_crit(q) if res.ddf is None else _est.t_crit(res.ddf, q)
    pcrit, pv = crit, vpred
    if res.pi == "simple":
        pcrit, pv = _est.z_crit(q), 0.0
    elif res.pi in ("t", "riley"):
        df = res.k - res.p - (1 if res.pi == "riley" and res.method != "FE" else 0)
        pcrit = _est.t_crit(max(df, 1), q)
    s = np.sqrt(pv + res.tau2)
    return pd.DataFrame({"pred": pred, "se": se, "ci_lb": pred - crit * se, "ci_ub": pred + crit * se,
                         "pi_lb": pred - pcrit * s, "pi_ub": pred + pcrit * s}, index=index)


# --------------------------------------------------------------------------- permutest


@dataclass(frozen=True, eq=False, repr=False)
class PermutestResult:
    """Permutation tests of a meta-regression (metafor ``permutest.rma.uni``):
    ``pval`` per coefficient (two-sided, ``|z|`` of the permuted fits at
    least the observed one), ``QMp`` (QM of the permuted fits at least the
    observed), next to the model's ``beta, se, zval, QM``; ``exact``: every
    distinct permutation was used (``iter`` of them), else ``iter`` random
    ones (the first is the observed data, as metafor); ``exact_iter``: the
    number of distinct permutations; ``zval_perm`` (iter x p), ``QM_perm``;
    ``ci_lb, ci_ub`` the model's (Wald) CIs, as metafor prints without ``permci``."""

    pval: np.ndarray
    QMp: float
    QM: float
    beta: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    names: tuple
    exact: bool
    iter: int
    exact_iter: float
    test: str
    QMdf: tuple
    zval_perm: np.ndarray
    QM_perm: np.ndarray
    ci_lb: np.ndarray = None
    ci_ub: np.ndarray = None
    btt: tuple = ()
    seed: Any = None

    def to_frame(self) -> pd.DataFrame:
        """One row per coefficient: ``estimate, se, zval`` (or ``tval``), permutation ``pval``."""
        stat = "zval" if self.test == "z" else "tval"
        return pd.DataFrame({"estimate": self.beta, "se": self.se, stat: self.zval, "pval": self.pval},
                            index=pd.Index(self.names, name="coefficient"))

    def summary(self) -> str:
        """metafor's ``print.permutest.rma.uni`` layout (p-values marked 1) = permutation-based)."""
        kind = "exact" if self.exact else "approximate"
        btt = _btt_text(self.btt)
        lines = [f"Test of Moderators (coefficient{'s' if len(self.btt) > 1 else ''} {btt}):1)"]
        if self.QMdf[1] is None:
            lines.append(f"QM(df = {self.QMdf[0]}) = {_fmt(self.QM)}, p-val {_pv(self.QMp)}")
        else:
            lines.append(f"F(df1 = {self.QMdf[0]}, df2 = {self.QMdf[1]}) = {_fmt(self.QM)}, p-val {_pv(self.QMp)}")
        stat = "zval" if self.test == "z" else "tval"
        heads = ["estimate", "se", stat, "pval1)", "ci.lb", "ci.ub", ""]
        rows = [[_fmt(self.beta[j]), _fmt(self.se[j]), _fmt(self.zval[j]), _fmt_p(self.pval[j]), _fmt(self.ci_lb[j]),
                 _fmt(self.ci_ub[j]), _stars(self.pval[j])] for j in range(len(self.names))]
        lab_w = max(len(str(n)) for n in self.names)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
        lines += ["", "Model Results:", ""]
        lines.append(" " * lab_w + "".join("  " + h.rjust(w) for h, w in zip(heads, widths)).rstrip())
        for name, row in zip(self.names, rows):
            lines.append(str(name).ljust(lab_w) + "".join("  " + c.rjust(w) for c, w in zip(row, widths)).rstrip())
        lines += ["", "---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1", "",
                  f"1) p-values based on permutation testing ({kind}, {self.iter} permutations)"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def _multiset_permutations(labels: np.ndarray):
    """Every distinct ordering of ``labels`` (lexicographic next-permutation on the sorted multiset)."""
    a = sorted(labels.tolist())
    n = len(a)
    while True:
        yield list(a)
        i = n - 2
        while i >= 0 and a[i] >= a[i + 1]:
            i -= 1
        if i < 0:
            return
        j = n - 1
        while a[j] <= a[i]:
            j -= 1
        a[i], a[j] = a[j], a[i]
        a[i + 1:] = reversed(a[i + 1:])


def permutest(res: RegressionResult, iter: int = 1000, *, seed=None, exact: bool = False, max_exact: int = 10**6) -> PermutestResult:
    """Permutation test of a meta-regression (metafor 3.8.1 ``permutest.rma.uni``;
    Higgins & Thompson 2004; Viechtbauer et al. 2015, Res Synth Methods 6:306).

    Models with moderators: the rows of the model matrix are permuted against
    ``(yi, vi)`` and the model refitted; the number of distinct permutations
    is ``k! / prod(n_j!)`` (``n_j``: studies sharing one row of ``X``).
    Intercept-only models: the signs of ``yi`` are flipped (``2^k``).  The
    test is exact (every distinct permutation, once) when ``exact=True`` or
    when that number is at most ``iter`` (metafor's rule); otherwise ``iter``
    random permutations drawn with ``numpy.random.default_rng(seed)``, the
    first replaced by the observed data (so results are reproducible for a
    seed, but not equal to R's, whose generator differs).  p-values count
    ``|z_perm| >= |z_obs| - sqrt(eps)`` and ``QM_perm >= QM_obs - sqrt(eps)``
    (metafor's ``comptol``).  Fits that fail count as missing (as metafor).
    ``max_exact``: refuse an exact test needing more permutations.
    """
    if not isinstance(res, RegressionResult):
        raise TypeError(f"permutest needs a RegressionResult from meta_regression(); got {type(res).__name__}")
    if isinstance(iter, bool) or not isinstance(iter, (int, np.integer)) or iter < 2:
        raise ValueError(f"iter must be an integer >= 2; got {iter!r}")
    k, p = res.k, res.p
    X, y, v = np.asarray(res.X), np.asarray(res.yi), np.asarray(res.vi)
    if res.int_only:
        n_exact = 2.0**k
    else:
        _, labels, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
        labels = labels.ravel()
        n_exact = float(math.factorial(k))
        for c in counts:
            n_exact /= math.factorial(int(c))
        n_exact = float(round(n_exact))
    use_exact = bool(exact) or n_exact <= iter
    if use_exact and n_exact > max_exact:
        raise ValueError(f"an exact permutation test needs {n_exact:.0f} fits (more than max_exact={max_exact}); "
                         "use exact=False with iter= random permutations")
    n = int(n_exact) if use_exact else int(iter)
    zp = np.full((n, p), np.nan)
    qp = np.full(n, np.nan)

    def refit(yy, XX):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = _fit(yy, v, XX, res.method, res.test, res.level, res.btt, se_tau2=False)
        return out["stat"], out["QM"]

    rng = np.random.default_rng(seed)
    if res.int_only:
        if use_exact:
            # all sign vectors, in the order of R's expand.grid(replicate(k, c(1, -1)))
            grid = 1 - 2 * ((np.arange(n)[:, None] >> np.arange(k)[None, :]) & 1)
            draws = (y * grid[i] for i in range(n))
        else:
            draws = (y if i == 0 else y * rng.choice(np.array([-1.0, 1.0]), k) for i in range(n))
        for i, yy in enumerate(draws):
            try:
                zp[i], qp[i] = refit(yy, X)
            except (np.linalg.LinAlgError, ValueError, ArithmeticError):
                pass
    else:
        if use_exact:
            firsts = np.array([np.flatnonzero(labels == g)[0] for g in range(labels.max() + 1)])
            rows = (firsts[np.array(perm)] for perm in _multiset_permutations(labels))
        else:
            rows = (np.arange(k) if i == 0 else rng.permutation(k) for i in range(n))
        for i, r in enumerate(rows):
            try:
                zp[i], qp[i] = refit(y, X[r])
            except (np.linalg.LinAlgError, ValueError, ArithmeticError):
                pass
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(zp)
        pval = np.array([np.mean(np.abs(zp[ok[:, j], j]) >= abs(res.zval[j]) - _COMPTOL) for j in range(p)])
        qok = ~np.isnan(qp)
        qmp = float(np.mean(qp[qok] >= res.QM - _COMPTOL)) if np.isfinite(res.QM) else math.nan
    pval = np.minimum(pval, 1.0)
    zp.setflags(write=False)
    qp.setflags(write=False)
    return PermutestResult(pval=pval, QMp=qmp, QM=res.QM, beta=np.array(res.beta), se=np.array(res.se),
                           zval=np.array(res.zval), names=res.names, exact=use_exact, iter=n, exact_iter=n_exact,
                           test=res.test, QMdf=res.QMdf, zval_perm=zp, QM_perm=qp, ci_lb=np.array(res.ci_lb),
                           ci_ub=np.array(res.ci_ub), btt=res.btt, seed=seed)
