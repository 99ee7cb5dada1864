"""Multilevel and multivariate meta-analysis: nested random intercepts with a known sampling covariance V.

:func:`rma_mv` fits metafor 3.8.1 ``rma.mv(yi, V, random = ~ 1 | study/es_id,
mods=, method=, test=, dfs=)``: the linear mixed model

    y = X beta + sum_l Z_l u_l + e,   u_l ~ N(0, sigma2_l I),   e ~ N(0, V),

with one variance component ``sigma2_l`` per grouping level (random
intercepts; nested levels ``a/b/c`` are the factors ``a``, ``a:b``,
``a:b:c``).  The marginal covariance is ``M = V + sum_l sigma2_l Z_l Z_l'``.
One ``~ inner | outer`` term adds ``(Z_in G Z_in') * (Z_out Z_out')``
(elementwise product) with G of ``struct`` ``"UN"`` (a variance tau2 per
inner level, a correlation rho per pair), ``"CS"`` (one tau2, one rho) or
``"DIAG"``, metafor's multivariate model (e.g. ``dat.berkey1998``); M is
linear in the variances and covariances of G, and the optimiser works in
metafor's parameters (tau2 >= 0, rho in [-1, 1]) by the chain rule.
``sigma2`` maximises the restricted (REML) or full (ML) log likelihood over
``sigma2 >= 0`` (metafor's ``.ll.rma.mv`` objective, beta profiled out):

    ll_ML   = -k/2 log(2 pi) - 1/2 log|M| - 1/2 r'M^-1 r
    ll_REML = -(k-p)/2 log(2 pi) + 1/2 log|X'X| - 1/2 log|M| - 1/2 log|X'M^-1 X| - 1/2 r'M^-1 r

with ``r = y - X beta``, ``beta = (X'M^-1X)^-1 X'M^-1 y``, ``vb = (X'M^-1X)^-1``.
The maximum is searched by projected Fisher scoring on ``sigma2 >= 0``
(analytic gradient -1/2 tr(P A_l) + 1/2 y'P A_l P y and expected information
1/2 tr(P A_l P A_m), A_l = Z_l Z_l', P the REML projection) from several
starts, then finished by projected Newton steps; a component can be exactly 0.  metafor
optimises log(sigma2) with nlminb, which cannot reach 0 (it stops near
1e-10) and may stop early; the tests require our log likelihood to be at
least metafor's.

All matrix work is done per block of rows that M couples (the connected
components of V's pattern and the grouping factors: for nested random
effects, the outermost clusters), with blocks of equal size stacked and
handled by batched numpy linear algebra, so k in the thousands with small
clusters fits in well under a second; crossed factors give one dense block.

Outputs as metafor: ``beta, se, zval (tval), pval, ci_lb, ci_ub, vb,
sigma2, logLik, deviance, AIC, BIC, AICc, QE`` (Cochran's Q with V,
``y'P_V y``, P_V = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1), ``QM`` (Wald test of
the moderators; F with ``test="t"``), ``ddf`` (``dfs="residual"``: k - p;
``"contain"``: metafor's containment rule ``.ddf.calc``), I2 per level
(metafor FAQ "I^2 for multilevel and multivariate models"; Cheung 2014):
``I2_l = 100 sigma2_l / (sum sigma2 + (k-p)/tr(P_V))``, profile-likelihood
CIs of each ``sigma2_l`` (metafor ``confint.rma.mv``), ``fitted``,
``residuals``, ``weights`` (percent of diag(W), metafor ``weights.rma.mv``),
and ``M``, ``W = M^-1``, ``X``, ``yi``, ``cluster`` (the outermost
grouping) for cluster-robust inference.

:func:`che` is the correlated-and-hierarchical-effects working model of
Pustejovsky & Tipton (2022): ``V = vcalc(vi, study, obs=es_id, rho=r)``
and ``random = ~ 1 | study/es_id`` fitted by REML.

References
----------
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
  J Stat Softw 36(3). metafor 3.8.1: ``rma.mv``, ``.ll.rma.mv``, ``.ddf.calc``,
  ``confint.rma.mv``, ``weights.rma.mv``.
Konstantopoulos S (2011). Fixed effects and variance components estimation in
  three-level meta-analysis. Res Synth Methods 2:61-76.
Cheung MW-L (2014). Modeling dependent effect sizes with three-level
  meta-analyses: a structural equation modeling approach. Psychol Methods 19:211-229.
Pustejovsky JE, Tipton E (2022). Meta-analysis with robust variance estimation:
  expanding the range of working models. Prevention Science 23:425-438.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, sparse as _sparse, stats
from scipy.sparse.csgraph import connected_components

from meta import _checks
from meta._format import metafor_num as _fmt, metafor_p as _fmt_p
from meta.vcalc import vcalc_triplets

__all__ = ["rma_mv", "che", "MultilevelResult", "parse_random"]

_LOG2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- inputs


def _column(data, name: str, what: str):
    if data is None:
        raise ValueError(f"{what}: {name!r} names a column, but no data= was given")
    if name not in data.columns:
        raise ValueError(f"{what}: column {name!r} is not in data; columns: {list(data.columns)[:20]}")
    return data[name]


_TERM = re.compile(r"\s*~\s*(.+?)\s*\|\s*([^|]+?)\s*")


def _parse(random, data, k: int | None):
    """Intercept factors [(name, codes)], ``~ inner | outer`` terms [(inner name, values, outer name, values)],
    and the values of the first term's outermost grouping (the cluster)."""
    if isinstance(random, str):
        terms = [random]
    elif isinstance(random, dict):
        terms = [list(random.items())]
    elif isinstance(random, (list, tuple)) and random and all(isinstance(t, str) for t in random):
        terms = list(random)
    elif isinstance(random, (list, tuple)) and random:
        terms = [[(f"level{i + 1}", a) for i, a in enumerate(random)]]
    else:
        raise ValueError("random must be a formula string like '~ 1 | study/es_id', a list of such strings, "
                         f"a dict {{name: values}} or a list of arrays (nested, outermost first); got {random!r}")
    factors: list[tuple[str, np.ndarray]] = []
    gterms: list[tuple] = []
    first = None
    for term in terms:
        if isinstance(term, str):
            m = _TERM.fullmatch(term)
            if not m:
                raise ValueError(f"random: {term!r} is not of the form '~ 1 | a', '~ 1 | a/b/c' or "
                                 "'~ inner | outer'")
            lhs, rhs = m.group(1).strip(), m.group(2).strip()
            if lhs != "1":
                if not re.fullmatch(r"[\w.]+", lhs) or not re.fullmatch(r"[\w.]+", rhs):
                    raise ValueError(f"random: {term!r}: an '~ inner | outer' term takes one column name on each "
                                     "side (e.g. '~ outcome | study')")
                outer = _checked_groups(_column(data, rhs, "random"), rhs, k)
                gterms.append((lhs, _checked_groups(_column(data, lhs, "random"), lhs, k), rhs, outer))
                first = outer if first is None else first
                continue
            names = [n.strip() for n in rhs.split("/")]
            if any(not n for n in names):
                raise ValueError(f"random: empty factor name in {term!r}")
            levels = [(n, _column(data, n, "random")) for n in names]
        else:
            levels = term
        keys = None
        for j, (name, values) in enumerate(levels):
            arr = _checked_groups(values, name, k)
            if first is None:
                first = arr
            keys = arr.astype(str) if keys is None else keys + "\x1f" + arr.astype(str)
            label = "/".join(n for n, _ in levels[: j + 1])
            factors.append((label, pd.factorize(keys, sort=True)[0]))
    return factors, gterms, np.asarray(first, dtype=object)


def _checked_groups(values, name: str, k: int | None) -> pd.Series:
    arr = pd.Series(np.asarray(values, dtype=object))
    if k is not None and arr.size != k:
        raise ValueError(f"random: grouping {name!r} must have one value per effect size (length {k}); "
                         f"got length {arr.size}")
    bad = arr.isna().to_numpy()
    if bad.any():
        raise ValueError(f"random: grouping {name!r} has missing values at positions (0-based): "
                         f"{_checks.positions(bad)}")
    return arr


def parse_random(random, data=None, k: int | None = None) -> list[tuple[str, np.ndarray]]:
    """The random-intercept factors of ``random`` as (name, integer codes), outermost first.

    ``random``: ``"~ 1 | study/es_id"`` (nested: factors ``study`` and
    ``study/es_id``, metafor's names) or ``"~ 1 | study"`` over ``data``; a
    list of such strings (each term adds its factors; different terms are
    crossed, as metafor's ``list(~ 1 | a, ~ 1 | b)``); a dict
    ``{name: values}`` or a list of arrays, taken as nested levels outermost
    first (the second array's groups are formed within the first's).
    ``~ inner | outer`` terms (see :func:`rma_mv`'s ``struct``) are not
    listed here.
    """
    return _parse(random, data, k)[0]


#: ``struct=`` of an ``~ inner | outer`` term: G (q x q, q inner levels) as a linear combination of basis
#: matrices, so that M = V + sum_m theta_m (Z_inner B_m Z_inner') * (Z_outer Z_outer') is linear in theta
STRUCTS = {
    "UN": "unstructured: a variance per inner level (tau^2) and a covariance per pair (rho = cov / sqrt(tau^2 tau^2))",
    "CS": "compound symmetry: one variance tau^2, one correlation rho",
    "DIAG": "diagonal: a variance per inner level, no correlation",
}


class _GTerm:
    """An ``~ inner | outer`` random-effects term with covariance structure ``struct`` (metafor ``struct=``).

    The optimiser's parameters phi are metafor's: the variances tau2 (>= 0) and correlations rho (in
    [-1, 1]); M is linear in theta = (the variances, the covariances rho sqrt(tau2_a tau2_b)), the
    coefficients of the basis matrices B_m: G = sum_m theta_m B_m.
    """

    def __init__(self, inner_name: str, inner: pd.Series, outer_name: str, outer: pd.Series, struct: str):
        self.inner_name, self.outer_name, self.struct = inner_name, outer_name, struct
        try:
            self.inner, levels = pd.factorize(inner, sort=True)
        except TypeError:
            self.inner, levels = pd.factorize(inner.astype(str), sort=True)
        self.levels = [str(v) for v in levels]
        self.outer = pd.factorize(outer.astype(str), sort=True)[0]
        self.combo = pd.factorize(pd.Series(self.inner).astype(str) + "\x1f" + pd.Series(self.outer).astype(str))[0]
        q = self.q = len(self.levels)
        E = lambda a, b: np.eye(q)[:, [a]] @ np.eye(q)[[b], :]  # noqa: E731
        self.pairs = [(a, b) for a in range(q) for b in range(a + 1, q)]  # R's lower.tri order of (b, a)
        if struct == "CS":
            self.basis = [np.eye(q), np.ones((q, q)) - np.eye(q)]
            self.n_tau2, self.n_rho = 1, 1 if q > 1 else 0
            if q == 1:
                self.basis = self.basis[:1]
        else:
            self.basis = [E(a, a) for a in range(q)]
            self.n_tau2, self.n_rho = q, 0
            if struct == "UN":
                self.basis += [E(a, b) + E(b, a) for a, b in self.pairs]
                self.n_rho = len(self.pairs)
        self.lb = np.array([0.0] * self.n_tau2 + [-1.0] * self.n_rho)
        self.ub = np.array([np.inf] * self.n_tau2 + [1.0] * self.n_rho)

    def gen(self, m: int):
        B = self.basis[m]

        def A(idx: np.ndarray) -> np.ndarray:
            o, i = self.outer[idx], self.inner[idx]
            return (o[:, :, None] == o[:, None, :]) * B[i[:, :, None], i[:, None, :]]
        return A

    def theta(self, phi: np.ndarray) -> np.ndarray:
        tau2, rho = phi[: self.n_tau2], phi[self.n_tau2:]
        if self.struct == "CS":
            return np.concatenate([tau2, rho * tau2])
        if self.struct == "UN":
            sd = np.sqrt(np.maximum(tau2, 0.0))
            return np.concatenate([tau2, [r * sd[a] * sd[b] for r, (a, b) in zip(rho, self.pairs)]])
        return tau2.copy()

    def jac(self, phi: np.ndarray) -> np.ndarray:
        """d theta / d phi."""
        n = phi.size
        J = np.eye(n)
        tau2, rho = phi[: self.n_tau2], phi[self.n_tau2:]
        if self.struct == "CS" and self.n_rho:
            J[1, 0], J[1, 1] = rho[0], tau2[0]
        elif self.struct == "UN":
            sd = np.sqrt(np.maximum(tau2, 0.0))
            for m, (a, b) in enumerate(self.pairs):
                row = self.n_tau2 + m
                J[row, row] = sd[a] * sd[b]
                J[row, a] = rho[m] * sd[b] / (2 * sd[a]) if sd[a] > 0 else 0.0
                J[row, b] = rho[m] * sd[a] / (2 * sd[b]) if sd[b] > 0 else 0.0
        return J

    def G(self, phi: np.ndarray) -> np.ndarray:
        return np.tensordot(self.theta(phi), np.array(self.basis), axes=(0, 0))

    def feasible(self, phi: np.ndarray) -> bool:
        """G positive semi-definite (to rounding): with q >= 3 (UN) or CS, not every rho in [-1, 1] is."""
        if self.q <= 1 or self.struct == "DIAG" or (self.struct == "UN" and self.q == 2):
            return True
        G = self.G(phi)
        return bool(np.linalg.eigvalsh(G)[0] >= -1e-10 * max(float(np.max(np.diag(G))), 1e-300))

    def start(self, total: float, rho: float) -> np.ndarray:
        """metafor's start: each variance ``total``, correlations ``rho`` (metafor: 0.5)."""
        return np.array([total] * self.n_tau2 + [rho] * self.n_rho)


def _design(mods, data, k: int, intercept: bool) -> tuple[np.ndarray, list[str], bool]:
    """Design matrix X (k x p), its column names and whether it has an intercept.

    ``mods``: None; a formula string ``"~ x + factor(g)"`` over ``data``
    (terms are column names, ``factor(name)`` forces a categorical column,
    ``- 1`` or ``+ 0`` drops the intercept); a column name or list of column
    names; a 1-d or 2-d array; a Series; a DataFrame.  Non-numeric columns
    (and ``factor()``) become indicator columns of every level but the first
    (sorted, as R's factor) when an intercept is present, of every level
    otherwise (R's ``~ g - 1``).  Linearly dependent columns are dropped with
    a warning, as metafor ("Redundant predictors dropped from the model").
    """
    cols: list[tuple[str, Any, bool]] = []  # (name, values, categorical)
    if isinstance(mods, str) and mods.strip().startswith("~"):
        rhs = mods.strip()[1:]
        for tok in re.split(r"(?=[+-])", rhs.replace(" ", "")):
            if not tok:
                continue
            sign, term = (tok[0], tok[1:]) if tok[0] in "+-" else ("+", tok)
            if term in ("1", "0"):
                if (sign == "-" and term == "1") or (sign == "+" and term == "0"):
                    intercept = False
                continue
            if sign == "-":
                raise ValueError(f"mods: only '- 1' can be subtracted in a formula; got {mods!r}")
            fm = re.fullmatch(r"factor\((\w+)\)", term)
            name = fm.group(1) if fm else term
            cols.append((name, _column(data, name, "mods"), bool(fm)))
    elif isinstance(mods, str):
        cols.append((mods, _column(data, mods, "mods"), False))
    elif isinstance(mods, (list, tuple)) and mods and all(isinstance(m, str) for m in mods):
        cols += [(m, _column(data, m, "mods"), False) for m in mods]
    elif isinstance(mods, pd.DataFrame):
        cols += [(str(c), mods[c], False) for c in mods.columns]
    elif isinstance(mods, pd.Series):
        cols.append((str(mods.name) if mods.name is not None else "mods", mods, False))
    elif mods is not None:
        a = np.asarray(mods)
        if a.ndim == 1:
            cols.append(("mods", a, False))
        elif a.ndim == 2:
            cols += [(f"X{j + 1}", a[:, j], False) for j in range(a.shape[1])]
        else:
            raise ValueError(f"mods must be 1-d or 2-d; got shape {a.shape}")
    if not cols and not intercept:
        warnings.warn("mods: no intercept and no moderators; the intercept is put in the model (as metafor)",
                      UserWarning, stacklevel=3)
        intercept = True
    names = ["intrcpt"] if intercept else []
    blocks = [np.ones((k, 1))] if intercept else []
    has_dummies_full = False
    for name, values, categorical in cols:
        s = pd.Series(np.asarray(values, dtype=object)) if not isinstance(values, pd.Series) else values.reset_index(drop=True)
        if len(s) != k:
            raise ValueError(f"mods: column {name!r} must have one value per effect size (length {k}); got {len(s)}")
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if not numeric and not categorical:
            try:
                s = pd.to_numeric(s)
                numeric = True
            except (TypeError, ValueError):
                numeric = False
        if numeric and not categorical:
            x = s.to_numpy(dtype=float)
            bad = ~np.isfinite(x)
            if bad.any():
                raise ValueError(f"mods: column {name!r} must be finite; offending positions (0-based): {_checks.positions(bad)}")
            blocks.append(x[:, None])
            names.append(name)
        else:
            if s.isna().any():
                raise ValueError(f"mods: column {name!r} has missing values at positions (0-based): "
                                 f"{_checks.positions(s.isna().to_numpy())}")
            levels = sorted(pd.unique(s), key=lambda v: (str(type(v)), v))
            keep = levels if (not intercept and not has_dummies_full) else levels[1:]
            has_dummies_full = has_dummies_full or not intercept
            for lev in keep:
                blocks.append((s.to_numpy() == lev).astype(float)[:, None])
                names.append(f"{name}{lev}")
    X = np.hstack(blocks)
    # a column of ones among the moderators is the intercept (metafor moves it first and names it intrcpt)
    ones = [j for j in range(X.shape[1]) if np.all(X[:, j] == 1.0)]
    if ones and not intercept:
        j = ones[0]
        X = np.hstack([X[:, [j]], np.delete(X, j, axis=1)])
        names = ["intrcpt"] + [n for i, n in enumerate(names) if i != j]
        intercept = True
    # drop columns that add nothing to the rank (left to right), as lm() does for metafor
    kept: list[int] = []
    for j in range(X.shape[1]):
        if np.linalg.matrix_rank(X[:, kept + [j]]) == len(kept) + 1:
            kept.append(j)
    if len(kept) < X.shape[1]:
        dropped = [names[j] for j in range(X.shape[1]) if j not in kept]
        warnings.warn(f"mods: redundant predictors dropped from the model: {dropped}", UserWarning, stacklevel=3)
        X = X[:, kept]
        names = [names[j] for j in kept]
    return X, names, intercept


def _triplets(V, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(rows, cols, values, kind) of the nonzero entries of V: a vector (diagonal), a k x k matrix, or a list
    of square blocks (block-diagonal, in row order)."""
    if isinstance(V, (list, tuple)) and V and all(np.ndim(b) == 2 for b in V):
        rows, cols, vals, start = [], [], [], 0
        for i, b in enumerate(V):
            b = _checks.numbers(b, f"V[{i}]")
            if b.shape[0] != b.shape[1]:
                raise ValueError(f"V[{i}] must be a square block; got shape {b.shape}")
            r, c = np.nonzero(b != 0)
            rows.append(r + start)
            cols.append(c + start)
            vals.append(b[r, c])
            start += b.shape[0]
        if start != k:
            raise ValueError(f"V: the blocks cover {start} rows; yi has {k}")
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), "blocks"
    if _sparse.issparse(V):
        coo = _sparse.coo_matrix(V)
        if coo.shape != (k, k):
            raise ValueError(f"V must be {k} x {k}; got shape {coo.shape}")
        coo.sum_duplicates()
        asym = abs(coo - coo.T)
        if asym.nnz and asym.max() > 1e-10 * abs(coo).max():
            raise ValueError("V must be symmetric")
        keep = coo.data != 0
        return coo.row[keep].astype(int), coo.col[keep].astype(int), coo.data[keep].astype(float), "sparse"
    a = _checks.numbers(V, "V")
    if a.ndim == 1 or (a.ndim == 2 and 1 in a.shape and a.size == k and k > 1):
        a = a.ravel()
        if a.size != k:
            raise ValueError(f"V (sampling variances) must have length k = {k}; got {a.size}")
        return np.arange(k), np.arange(k), a, "diag"
    if a.ndim != 2 or a.shape != (k, k):
        raise ValueError(f"V must be a vector of k = {k} variances, a {k} x {k} matrix or a list of blocks; "
                         f"got shape {a.shape}")
    if np.abs(a - a.T).max() > 1e-10 * np.abs(a).max():
        raise ValueError("V must be symmetric")
    r, c = np.nonzero(a != 0)
    return r, c, a[r, c], "matrix"


# --------------------------------------------------------------------------- blocked linear algebra


class _Blocks:
    """Rows grouped into the independent blocks of M, blocks of equal size stacked (n_b, s, s)."""

    def __init__(self, k: int, vr, vc, vv, gens: list, connect: list[np.ndarray], X: np.ndarray, y: np.ndarray):
        """``gens``: one function per component, block row indices (n, s) -> its A blocks (n, s, s);
        ``connect``: grouping codes whose groups must lie within one block."""
        nodes = k + sum(int(f.max()) + 1 for f in connect)
        er, ec, off = [vr], [vc], k
        for f in connect:
            er.append(np.arange(k))
            ec.append(f + off)
            off += int(f.max()) + 1
        g = _sparse.coo_matrix((np.ones(sum(len(e) for e in er)), (np.concatenate(er), np.concatenate(ec))),
                              shape=(nodes, nodes))
        _, lab = connected_components(g, directed=False)
        comp = pd.factorize(lab[:k])[0]
        order = np.argsort(comp, kind="stable")
        sizes = np.bincount(comp)
        pos = np.empty(k, int)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        pos[order] = np.arange(k) - np.repeat(starts, sizes)
        self.k, self.groups = k, []
        for s in np.unique(sizes):
            cids = np.flatnonzero(sizes == s)
            slot = np.full(sizes.size, -1)
            slot[cids] = np.arange(cids.size)
            idx = np.empty((cids.size, s), int)
            rows = np.flatnonzero(slot[comp] >= 0)
            idx[slot[comp[rows]], pos[rows]] = rows
            Vb = np.zeros((cids.size, s, s))
            sel = slot[comp[vr]] >= 0
            Vb[slot[comp[vr[sel]]], pos[vr[sel]], pos[vc[sel]]] = vv[sel]
            A = [gen(idx) for gen in gens]
            self.groups.append(dict(idx=idx, V=Vb, A=A, X=X[idx], y=y[idx]))
        self.n_blocks = sizes.size

    def eval(self, theta: np.ndarray, *, base: str = "M", grad: bool = False) -> dict | None:
        """log|M|, X'WX, X'Wy, y'Wy, tr(W) and (grad) the per-component traces and quadratic pieces;
        None when M (or V with base="V") is not positive definite."""
        p = self.groups[0]["X"].shape[2]
        L = len(theta)
        out = dict(logdet=0.0, XWX=np.zeros((p, p)), XWy=np.zeros(p), yWy=0.0, trW=0.0, XWWX=np.zeros((p, p)))
        if grad:
            out.update(trWA=np.zeros(L), XWAWX=np.zeros((L, p, p)), XWAWy=np.zeros((L, p)), yWAWy=np.zeros(L),
                       trWAWA=np.zeros((L, L)), XWAWAWX=np.zeros((L, L, p, p)))
        for g in self.groups:
            M = g["V"].copy()
            if base == "M":
                for th, A in zip(theta, g["A"]):
                    if th != 0.0:
                        M += th * A
            try:
                C = np.linalg.cholesky(M)
            except np.linalg.LinAlgError:
                return None
            out["logdet"] += 2.0 * np.log(np.diagonal(C, axis1=1, axis2=2)).sum()
            W = np.linalg.inv(M)
            W = 0.5 * (W + np.transpose(W, (0, 2, 1)))
            WX = W @ g["X"]
            Wy = np.einsum("nij,nj->ni", W, g["y"])
            out["XWX"] += np.einsum("nip,niq->pq", g["X"], WX)
            out["XWy"] += np.einsum("nip,ni->p", g["X"], Wy)
            out["yWy"] += float(np.einsum("ni,ni->", g["y"], Wy))
            out["trW"] += float(np.einsum("nii->", W))
            out["XWWX"] += np.einsum("nip,niq->pq", WX, WX)
            if grad:
                AWXs, WAs = [], []
                for l, A in enumerate(g["A"]):
                    AWX = A @ WX
                    AWy = np.einsum("nij,nj->ni", A, Wy)
                    out["trWA"][l] += float(np.einsum("nij,nji->", W, A))
                    out["XWAWX"][l] += np.einsum("nip,niq->pq", WX, AWX)
                    out["XWAWy"][l] += np.einsum("nip,ni->p", WX, AWy)
                    out["yWAWy"][l] += float(np.einsum("ni,ni->", Wy, AWy))
                    AWXs.append(AWX)
                    WAs.append(W @ A)
                for l in range(L):
                    for m in range(l, L):
                        t = float(np.einsum("nij,nji->", WAs[l], WAs[m]))
                        q = np.einsum("nip,nij,njq->pq", AWXs[l], W, AWXs[m])
                        out["trWAWA"][l, m] += t
                        out["XWAWAWX"][l, m] += q
                        if m != l:
                            out["trWAWA"][m, l] += t
                            out["XWAWAWX"][m, l] += q.T
        return out

    @staticmethod
    def _block(g, theta, inverse: bool) -> np.ndarray:
        """One group's block ``V + sum theta_l A_l`` (or its inverse)."""
        M = g["V"].copy()
        if theta is not None:
            for th, A in zip(theta, g["A"]):
                M += th * A
        return np.linalg.inv(M) if inverse else M

    def sparse(self, theta: np.ndarray | None, *, inverse: bool = False):
        """The same matrix as :meth:`dense` (block for block the same values) as a scipy.sparse CSR
        matrix holding only the blocks: memory proportional to the sum of the squared block sizes."""
        rows, cols, vals = [], [], []
        for g in self.groups:
            M = self._block(g, theta, inverse)
            idx = g["idx"]
            s = idx.shape[1]
            rows.append(np.repeat(idx, s, axis=1).ravel())
            cols.append(np.tile(idx, (1, s)).ravel())
            vals.append(M.ravel())
        return _sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                  shape=(self.k, self.k))

    def dense(self, theta: np.ndarray | None, *, inverse: bool = False) -> np.ndarray:
        """M = V + sum theta_l A_l (or its inverse) as a dense k x k matrix."""
        out = np.zeros((self.k, self.k))
        for g in self.groups:
            M = self._block(g, theta, inverse)
            idx = g["idx"]
            out[idx[:, :, None], idx[:, None, :]] = M
        return out


class _Objective:
    """(Restricted) log likelihood of the variance components, metafor's ``.ll.rma.mv``."""

    def __init__(self, blocks: _Blocks, X: np.ndarray, reml: bool, free: np.ndarray, fixed: np.ndarray,
                 lb: np.ndarray, feasible=None, ub: np.ndarray | None = None, to_theta=None, jac=None):
        self.b, self.reml = blocks, reml
        self.k, self.p = X.shape
        self.logdetXX = float(np.linalg.slogdet(X.T @ X)[1])
        self.free, self.fixed = free, fixed  # which parameters are estimated; values of the others
        self.lb = lb  # lower bounds: 0 for variances, -inf for covariances
        self.ub = np.full(lb.size, np.inf) if ub is None else ub  # upper bounds: 1 for correlations
        self.feasible = feasible or (lambda phi: True)  # e.g. G positive semi-definite
        # the optimiser's parameters phi (variances, correlations) -> the linear coefficients theta of M
        self.to_theta = to_theta or (lambda phi: phi)
        self.jac = jac  # d theta / d phi (None: identity)

    @property
    def lbf(self) -> np.ndarray:
        return self.lb[self.free]

    @property
    def ubf(self) -> np.ndarray:
        return self.ub[self.free]

    def parts_phi(self, phi: np.ndarray, grad: bool = False):
        """:meth:`parts` at theta(phi), gradient and information transformed to phi (chain rule)."""
        if not self.feasible(phi):
            return None
        out = self.parts(self.to_theta(phi), grad=grad)
        if out is not None and grad and self.jac is not None:
            J = self.jac(phi)
            out["grad"] = J.T @ out["grad"]
            out["info"] = J.T @ out["info"] @ J
        return out

    def full(self, theta: np.ndarray) -> np.ndarray:
        s = self.fixed.copy()
        s[self.free] = theta
        return s

    def parts(self, sigma2: np.ndarray, grad: bool = False):
        e = self.b.eval(sigma2, grad=grad)
        if e is None:
            return None
        try:
            H = np.linalg.inv(e["XWX"])
        except np.linalg.LinAlgError:
            return None
        beta = H @ e["XWy"]
        rss = e["yWy"] - e["XWy"] @ beta
        ml = -0.5 * self.k * _LOG2PI - 0.5 * e["logdet"] - 0.5 * rss
        reml = (-0.5 * (self.k - self.p) * _LOG2PI + 0.5 * self.logdetXX - 0.5 * e["logdet"]
                - 0.5 * float(np.linalg.slogdet(e["XWX"])[1]) - 0.5 * rss)
        out = dict(e=e, H=H, beta=beta, rss=rss, ll_ml=ml, ll_reml=reml, ll=reml if self.reml else ml)
        if grad:
            # r'W A W r with r = y - X beta: y'WAWy - 2 beta'X'WAWy + beta'X'WAWX beta
            q = e["yWAWy"] - 2 * e["XWAWy"] @ beta + np.einsum("p,lpq,q->l", beta, e["XWAWX"], beta)
            tr = e["trWA"] - (np.einsum("pq,lqp->l", H, e["XWAWX"]) if self.reml else 0.0)
            out["grad"] = -0.5 * tr + 0.5 * q
            # expected information 1/2 tr(P A_l P A_m) (REML) or 1/2 tr(W A_l W A_m) (ML), with
            # P = W - W X H X' W: tr(PAPB) = tr(WAWB) - tr(H Q_AB) - tr(H Q_BA) + tr(H K_A H K_B)
            info = e["trWAWA"].copy()
            if self.reml:
                HQ = np.einsum("pq,lmqr->lmpr", H, e["XWAWAWX"])
                tHQ = np.einsum("lmpp->lm", HQ)
                HK = np.einsum("pq,lqr->lpr", H, e["XWAWX"])
                info = info - tHQ - tHQ.T + np.einsum("lpq,mqp->lm", HK, HK)
            out["info"] = 0.5 * info
        return out

    def ll(self, phi: np.ndarray) -> float:
        r = self.parts_phi(self.full(np.clip(phi, self.lbf, self.ubf)))
        return -np.inf if r is None else r["ll"]

    def negll_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        r = self.parts_phi(self.full(np.clip(phi, self.lbf, self.ubf)), grad=True)
        if r is None:
            return 1e300, np.zeros(theta.size)
        return -r["ll"], -r["grad"][self.free]


def _scoring(obj: "_Objective", t: np.ndarray, tol: float, maxit: int = 60) -> tuple[np.ndarray, float, bool]:
    """Projected Fisher scoring for theta >= lb (metafor's rma.uni algorithm, for several components):
    step I^-1 g on the parameters not held at their bound (at it with a gradient pointing outwards), halved
    until the likelihood does not decrease and the parameters are feasible, projected onto theta >= lb.
    Returns the parameters, the log likelihood and whether the steps converged (False: maxit reached)."""
    lbf, ubf = obj.lbf, obj.ubf
    r = obj.parts_phi(obj.full(t), grad=True)
    if r is None:
        return t, -np.inf, True
    ll, converged = r["ll"], False
    for _ in range(maxit):
        g = r["grad"][obj.free]
        info = r["info"][np.ix_(obj.free, obj.free)]
        dinfo = np.diag(info)
        # held: at a bound with the gradient pointing out, or without information (a correlation of a
        # variance at 0 does not enter the likelihood)
        free = ~(((t <= lbf) & (g <= 0)) | ((t >= ubf) & (g >= 0)) | (dinfo <= 1e-14 * max(float(dinfo.max()), 1e-300)))
        if not free.any():
            converged = True
            break
        d = np.zeros_like(t)
        d[free] = np.linalg.lstsq(info[np.ix_(free, free)], g[free], rcond=1e-12)[0]
        lam, new = 1.0, None
        while lam > 1e-10:
            tn = np.clip(t + lam * d, lbf, ubf)
            rn = obj.parts_phi(obj.full(tn), grad=True)
            if rn is not None and rn["ll"] >= ll - 1e-13 * max(1.0, abs(ll)):
                new = (tn, rn)
                break
            lam /= 2
        if new is None:
            break
        step = np.max(np.abs(new[0] - t))
        t, r = new
        improve, ll = r["ll"] - ll, r["ll"]
        if step <= tol * 1e-10 or (step <= tol * 1e-7 and improve <= 1e-14 * max(1.0, abs(ll))):
            converged = True
            break
    return t, ll, converged


def _maximise(obj: "_Objective", starts: list[np.ndarray], scale: float) -> tuple[np.ndarray, float]:
    """Global maximum over theta >= 0: projected Fisher scoring from every start, the best one polished by
    projected Newton steps (finite-difference Hessian of the analytic gradient)."""
    n = int(obj.free.sum())
    if n == 0:
        return np.zeros(0), obj.ll(np.zeros(0))
    best_t, best_ll = None, -np.inf
    for t0 in starts:
        t0 = np.clip(np.asarray(t0, float), obj.lbf, obj.ubf)
        t, ll, _ = _scoring(obj, t0, scale)
        if ll > best_ll:
            best_t, best_ll = t, ll
    return _newton(obj, best_t, best_ll, scale)


def _newton(obj: "_Objective", t: np.ndarray, ll: float, scale: float) -> tuple[np.ndarray, float]:
    """Finish a scoring run with projected Newton steps (quadratic convergence where scoring is slow)."""
    def f(u):
        val, g = obj.negll_grad(u * scale)
        return val, g * scale

    tn = _polish(f, t / scale, obj.lbf / scale, obj.ubf / scale, steps=25) * scale
    lln = obj.ll(tn)
    return (tn, lln) if lln >= ll else (t, ll)


def _polish(f, t: np.ndarray, lb: np.ndarray, ub: np.ndarray, steps: int = 4) -> np.ndarray:
    """Projected Newton on the free parameters (inside their bounds, or at a bound with the likelihood
    increasing inwards); ``f`` returns the negative log likelihood and its gradient."""
    for _ in range(steps):
        val, g = f(t)
        active = ((t <= lb) & (g >= 0)) | ((t >= ub) & (g <= 0))  # at a bound, the likelihood decreasing inwards
        free = ~active
        if not free.any():
            return t
        h = 1e-6 * np.maximum(np.abs(t), 1e-3)
        Hm = np.empty((t.size, t.size))
        for j in range(t.size):
            e = np.zeros(t.size)
            e[j] = h[j]
            fwd = min(h[j], ub[j] - t[j])
            back = min(h[j], t[j] - lb[j])
            if fwd + back <= 0:
                Hm[:, j] = 0.0
                continue
            Hm[:, j] = (f(t + fwd * (e > 0))[1] - f(t - back * (e > 0))[1]) / (fwd + back)
        Hm = 0.5 * (Hm + Hm.T)
        Hf = Hm[np.ix_(free, free)]
        try:
            if np.linalg.eigvalsh(Hf)[0] <= 0:
                return t
            step = np.linalg.solve(Hf, g[free])
        except np.linalg.LinAlgError:
            return t
        lam, improved = 1.0, False
        while lam > 1e-8:
            tn = t.copy()
            tn[free] = np.clip(t[free] - lam * step, lb[free], ub[free])
            vn = f(tn)[0]
            if vn <= val:
                improved = True
                break
            lam /= 2
        if not improved:
            return t
        if np.max(np.abs(tn - t)) <= 1e-12 * max(1.0, np.max(np.abs(t))):
            return tn
        t = tn
    return t


# --------------------------------------------------------------------------- result


_ARRAY_FIELDS = ("beta", "se", "stat", "pval", "ci_lb", "ci_ub", "vb", "sigma2", "ddf", "i2", "fitted", "residuals",
                 "weights", "yi", "X", "cluster", "s_nlevels", "sigma2_fixed", "tau2", "rho", "G", "i2_tau2",
                 "g_levels_k", "_gpar")


@dataclass(frozen=True, repr=False, eq=False)
class MultilevelResult:
    """A fitted multilevel / multivariate model (metafor ``rma.mv``), frozen.

    Coefficients (one entry per column of ``X``, names ``coef_names``):
    ``beta, se, stat`` (z or t), ``pval, ci_lb, ci_ub``, ``vb`` (p x p),
    ``ddf`` (t degrees of freedom, NaN under ``test="z"``).
    Variance components: ``sigma2`` (one per factor of ``random``, names
    ``s_names``, numbers of levels ``s_nlevels``, ``sigma2_fixed``),
    profile-likelihood CIs by :meth:`confint` (computed on demand, cached),
    ``i2`` (percent per level) and
    ``i2_total`` (metafor FAQ; Cheung 2014), ``typical_v``.
    An ``~ inner | outer`` term (``struct``): ``tau2`` (one per inner level;
    one for CS), ``rho`` (UN: per pair in R's ``lower.tri`` order; CS: one),
    ``G`` (q x q), ``g_names`` (inner, outer), ``g_levels`` (inner levels,
    sorted), ``g_levels_k`` (rows per inner level), ``g_nlevels`` (numbers of
    inner and outer levels), ``i2_tau2`` (metafor FAQ for multivariate models:
    ``100 tau2 / (tau2 + typical_v)``).
    Tests: ``QE, QE_df, QEp`` (Cochran's Q with V), ``QM, QM_df`` (df1, df2;
    df2 NaN for a chi-square test), ``QMp``, ``btt`` (the tested coefficients).
    Fit: ``logLik, deviance, AIC, BIC, AICc`` of ``method``.
    Data: ``yi``, ``X``, ``fitted`` (X beta), ``residuals`` (yi - X beta),
    ``weights`` (percent of diag(W)), ``cluster`` (values of the outermost
    grouping factor), ``slab``; properties ``M`` (V + Z G Z', k x k),
    ``W`` (M^-1), ``V``.
    """

    k: int
    p: int
    method: str
    test: str
    dfs: str
    level: float
    coef_names: tuple
    beta: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    vb: np.ndarray
    ddf: np.ndarray
    sigma2: np.ndarray
    s_names: tuple
    s_nlevels: np.ndarray
    sigma2_fixed: np.ndarray
    i2: np.ndarray
    i2_total: float
    typical_v: float
    QE: float
    QE_df: int
    QEp: float
    QM: float
    QM_df: tuple
    QMp: float
    btt: tuple
    logLik: float
    deviance: float
    AIC: float
    BIC: float
    AICc: float
    fitted: np.ndarray = field(repr=False)
    residuals: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    yi: np.ndarray = field(repr=False)
    X: np.ndarray = field(repr=False)
    cluster: np.ndarray = field(repr=False)
    slab: tuple = field(default=(), repr=False, compare=False)
    tau2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rho: np.ndarray = field(default_factory=lambda: np.zeros(0))
    G: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    i2_tau2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    struct: str = ""
    g_names: tuple = ()
    g_levels: tuple = ()
    g_levels_k: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    g_nlevels: tuple = ()
    _gpar: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    _blocks: Any = field(default=None, repr=False, compare=False)
    _profile: Any = field(default=None, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        for name in _ARRAY_FIELDS:
            a = np.array(getattr(self, name))
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        object.__setattr__(self, "slab", tuple(self.slab))

    # -- metafor names
    @property
    def zval(self) -> np.ndarray:
        """The test statistics (z, or t under ``test="t"``; metafor's ``zval``)."""
        return self.stat

    @property
    def tval(self) -> np.ndarray:
        return self.stat

    @property
    def M(self) -> np.ndarray:
        """Marginal covariance V + sum_l sigma2_l Z_l Z_l' (k x k, dense)."""
        return self._blocks.dense(np.concatenate([self.sigma2, self._gpar]))

    @property
    def W(self) -> np.ndarray:
        """Weight matrix W = M^-1 (k x k, dense; computed block by block)."""
        return self._blocks.dense(np.concatenate([self.sigma2, self._gpar]), inverse=True)

    @property
    def M_sparse(self):
        """:attr:`M` as a scipy.sparse CSR matrix of its blocks (no k x k array)."""
        return self._blocks.sparse(np.concatenate([self.sigma2, self._gpar]))

    @property
    def W_sparse(self):
        """:attr:`W` as a scipy.sparse CSR matrix of its blocks (no k x k array)."""
        return self._blocks.sparse(np.concatenate([self.sigma2, self._gpar]), inverse=True)

    @property
    def V(self) -> np.ndarray:
        """The sampling covariance matrix V (k x k, dense)."""
        return self._blocks.dense(None)

    @property
    def sigma(self) -> np.ndarray:
        return np.sqrt(self.sigma2)

    def to_frame(self) -> pd.DataFrame:
        """One row per coefficient: ``estimate, se, zval`` (or ``tval``), ``df, pval, ci_lb, ci_ub``."""
        stat = "tval" if self.test == "t" else "zval"
        return pd.DataFrame({"estimate": self.beta, "se": self.se, stat: self.stat, "df": self.ddf,
                             "pval": self.pval, "ci_lb": self.ci_lb, "ci_ub": self.ci_ub},
                            index=pd.Index(self.coef_names, name="coef"))

    def variance_components(self) -> pd.DataFrame:
        """One row per variance component: ``sigma2, sigma, nlvls, fixed, factor, i2`` (metafor's table)."""
        return pd.DataFrame({"sigma2": self.sigma2, "sigma": np.sqrt(self.sigma2), "nlvls": self.s_nlevels,
                             "fixed": self.sigma2_fixed, "factor": list(self.s_names), "i2": self.i2},
                            index=pd.Index([f"sigma^2.{j + 1}" for j in range(self.sigma2.size)]))

    def summary(self) -> str:
        """The fit in metafor's ``print.rma.mv`` layout."""
        lines = [f"Multivariate Meta-Analysis Model (k = {self.k}; method: {self.method})", "",
                 "Variance Components:", ""]
        rows = [[f"sigma^2.{j + 1}", _fmt(s), _fmt(math.sqrt(s)), str(int(n)), "yes" if fx else "no", name]
                for j, (s, n, fx, name) in enumerate(zip(self.sigma2, self.s_nlevels, self.sigma2_fixed, self.s_names))]
        head = ["", "estim", "sqrt", "nlvls", "fixed", "factor"]
        if rows:
            lines += _table(head, rows)
        if self.struct:
            inner, outer = self.g_names
            lines += ([""] if rows else []) + [f"outer factor: {outer}   (nlvls = {self.g_nlevels[1]})",
                                               f"inner factor: {inner} (nlvls = {self.g_nlevels[0]})", ""]
            levels = list(self.g_levels) if self.struct != "CS" else ["all"]
            counts = list(self.g_levels_k) if self.struct != "CS" else [int(np.sum(self.g_levels_k))]
            trows = [[f"tau^2.{j + 1}" if len(levels) > 1 else "tau^2", _fmt(t), _fmt(math.sqrt(t)), str(int(n)), "no",
                      lev] for j, (t, n, lev) in enumerate(zip(self.tau2, counts, levels))]
            lines += _table(["", "estim", "sqrt", "k.lvl", "fixed", "level"], trows)
            if self.struct == "CS" and self.rho.size:
                lines += ["", f"rho    {_fmt(self.rho[0])}"]
            elif self.struct == "UN":
                q = len(self.g_levels)
                R = np.eye(q)
                R[np.tril_indices(q, -1)[1], np.tril_indices(q, -1)[0]] = np.nan
                lower = [(b, a) for a in range(q) for b in range(a + 1, q)]
                for (b, a), r in zip(lower, self.rho):
                    R[b, a] = r
                rrows = [[lev] + [("1" if i == j else _fmt(R[i, j])) if j <= i else "" for j in range(q)]
                         for i, lev in enumerate(self.g_levels)]
                lines += [""] + _table([""] + [f"rho.{lev}" for lev in self.g_levels], rrows)
        lines += ["", "Test for Residual Heterogeneity:" if self.p > 1 else "Test for Heterogeneity:",
                  f"{'QE' if self.p > 1 else 'Q'}(df = {self.QE_df}) = {_fmt(self.QE)}, p-val {_pv(self.QEp)}", ""]
        if self.p > 1:
            b = self.btt
            which = f"{b[0] + 1}:{b[-1] + 1}" if len(b) > 1 and list(b) == list(range(b[0], b[-1] + 1)) else ",".join(str(i + 1) for i in b)
            df = f"df1 = {self.QM_df[0]}, df2 = {int(self.QM_df[1])}" if self.test == "t" else f"df = {self.QM_df[0]}"
            lines += [f"Test of Moderators (coefficient{'s' if len(b) > 1 else ''} {which}):",
                      f"{'F' if self.test == 't' else 'QM'}({df}) = {_fmt(self.QM)}, p-val {_pv(self.QMp)}", ""]
        lines += ["Model Results:", ""]
        stat = "tval" if self.test == "t" else "zval"
        head = ["", "estimate", "se", stat] + (["df"] if self.test == "t" else []) + ["pval", "ci.lb", "ci.ub", ""]
        rows = []
        for j in range(self.p):
            r = [self.coef_names[j] if self.p > 1 else "", _fmt(self.beta[j]), _fmt(self.se[j]), _fmt(self.stat[j])]
            if self.test == "t":
                r.append(str(int(self.ddf[j])))
            r += [_fmt_p(self.pval[j]), _fmt(self.ci_lb[j]), _fmt(self.ci_ub[j]), _stars(self.pval[j])]
            rows.append(r)
        w = [max(len(r[c]) for r in rows + [head]) for c in range(len(head))]
        lines.append("  ".join(head[c].ljust(w[c]) if c == 0 else head[c].rjust(w[c]) for c in range(len(head))).rstrip())
        lines += ["  ".join(r[c].ljust(w[c]) if c in (0, len(head) - 1) else r[c].rjust(w[c]) for c in range(len(head))).rstrip()
                  for r in rows]
        lines += ["", "---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        """metafor's printout (``print(res)``), as R shows a fit."""
        return self.summary()

    def confint(self, level: float | None = None) -> pd.DataFrame:
        """Profile-likelihood CIs of the variance components (metafor 3.8.1 ``confint.rma.mv``).

        For each estimated ``sigma2_j``: the values where
        ``-2 (ll(sigma2_j fixed, the other components re-maximised) - logLik)``
        equals ``qchisq(level, 1)``; the lower end is 0 when the profile at 0
        stays below that, the upper end is searched up to
        ``max(10, 100 sigma2_j)`` (10 when sigma2_j ~ 0) and returned there
        (``ub_limited`` True) when the profile stays below, as metafor.
        Fixed components and components that are not identifiable get NaN.
        The variances ``tau^2.j`` and correlations ``rho.j`` of an
        ``~ inner | outer`` term likewise (the other parameters re-maximised;
        rho searched in [-1, 1], its ends returned when the profile stays below).
        Rows ``sigma^2.j``, ``tau^2.j``, ``rho.j`` and the square roots
        ``sigma.j``, ``tau.j``: ``estimate, ci_lb, ci_ub, ub_limited``.  Computed once per
        level and cached.
        """
        lv = self.level if level is None else _level(level)
        if lv not in self._cache:
            self._cache[lv] = _profile_all(self._profile, lv)
        lb, ub, lim = self._cache[lv]
        L, nt = self.sigma2.size, self.tau2.size
        est = np.concatenate([self.sigma2, self.tau2, self.rho])
        names = ([f"sigma^2.{j + 1}" for j in range(L)] + [f"tau^2.{j + 1}" for j in range(nt)]
                 + [f"rho.{j + 1}" for j in range(self.rho.size)])
        rows = [(nm, est[j], lb[j], ub[j], lim[j]) for j, nm in enumerate(names)]
        root = lambda x: math.sqrt(x) if np.isfinite(x) else np.nan  # noqa: E731
        rows += [(nm.replace("^2", ""), root(est[j]), root(lb[j]), root(ub[j]), lim[j])
                 for j, nm in enumerate(names[: L + nt])]
        return pd.DataFrame(rows, columns=["parameter", "estimate", "ci_lb", "ci_ub", "ub_limited"]).set_index("parameter")


def _level(level) -> float:
    _checks.real(level, "level")
    try:
        lv = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"level must be a number in (0, 100) (e.g. 95) or (0, 1); got {level!r}") from None
    lv = lv / 100.0 if lv > 1 else lv
    if not 0 < lv < 1:
        raise ValueError(f"level must be in (0, 100) (e.g. 95) or (0, 1); got {level!r}")
    return lv


def _profile_all(prof: dict, level: float):
    """CIs of every estimated sigma2 (first L entries) and every tau2 of the ``~ inner | outer`` term."""
    L, todo = prof["L"], list(prof["est_idx"]) + list(prof["g_var_idx"])
    n = L + len(prof["g_var_idx"])
    lb, ub, lim = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool)
    for pos, j in enumerate(todo):
        if j < L and prof["tied"][j]:
            continue
        row = j if j < L else L + pos - len(prof["est_idx"])
        lb[row], ub[row], lim[row] = _profile_ci(prof["obj"], prof["s2"], prof["ll"], j, level, prof["scale"],
                                                 prof["others"])
    return lb, ub, lim


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    """Columns right-aligned (the first left-aligned), two spaces apart, as R prints a character matrix."""
    n = len(head)
    w = [max(len(r[c]) for r in rows + [head]) for c in range(n)]
    return ["  ".join(r[c].ljust(w[c]) if c == 0 else r[c].rjust(w[c]) for c in range(n)).rstrip()
            for r in [head] + rows]


def _pv(p: float) -> str:
    s = _fmt_p(p)
    return "< .0001" if s.startswith("<") else f"= {s}"


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


# --------------------------------------------------------------------------- fitting


def _contain_ddf(X: np.ndarray, factors: list[np.ndarray], k: int, p: int) -> np.ndarray:
    """metafor 3.8.1 ``.ddf.calc(dfs="contain")``: for each coefficient, the smallest number of levels of a
    random factor within whose every level the column of X is constant, minus p (k - p if none); at least 1."""
    ddf = np.full(p, float(k))
    for j in range(p):
        for f in factors:
            n = int(f.max()) + 1
            distinct = pd.DataFrame({"f": f, "x": X[:, j]}).groupby("f")["x"].nunique()
            if (distinct == 1).all():
                ddf[j] = min(ddf[j], n)
    ddf -= p
    return np.maximum(ddf, 1.0)


def _profile_ci(obj: _Objective, sigma2_hat: np.ndarray, ll_hat: float, j: int, level: float, scale: float,
                free_idx: np.ndarray) -> tuple[float, float, bool]:
    """metafor ``confint.rma.mv`` for sigma2_j: where -2 (ll(sigma2_j fixed, others re-maximised) - ll_hat)
    equals qchisq(level, 1); lower end 0 when the profile at 0 stays below; the upper end searched up to
    max(10, 100 sigma2_j) (10 when sigma2_j ~ 0), returned there when the profile stays below."""
    crit = float(stats.chi2.ppf(level, 1))
    est = float(sigma2_hat[j])
    others = free_idx[free_idx != j]

    warm = {"t": sigma2_hat[others].copy()}

    def objective(val: float) -> float:
        fixed = obj.fixed.copy()
        fixed[j] = val
        free = np.zeros_like(obj.free)
        free[others] = True
        sub = _Objective.__new__(_Objective)
        sub.__dict__.update(obj.__dict__, free=free, fixed=fixed)
        if others.size == 0:
            ll = sub.ll(np.zeros(0))
        else:
            # warm start from the previous profile point, and the fit's own values
            t1, ll, ok = _scoring(sub, warm["t"], scale, maxit=20)
            t2, ll2, ok2 = _scoring(sub, sigma2_hat[others], scale, maxit=20)
            if ll2 > ll:
                t1, ll, ok = t2, ll2, ok2
            if not np.isfinite(ll) and (obj.lb[others] == -1).any():  # correlations 0: a positive semi-definite G
                t3, ll3, ok3 = _scoring(sub, np.where(obj.lb[others] == -1, 0.0, sigma2_hat[others]), scale, maxit=20)
                if ll3 > ll:
                    t1, ll, ok = t3, ll3, ok3
            if not ok:  # scoring slow in a flat direction: Newton steps finish it
                t1, ll = _newton(sub, t1, ll, scale)
            warm["t"] = t1
        return -2.0 * (ll - ll_hat) - crit

    if obj.lb[j] == -1.0:  # a correlation: searched in [-1, 1], as metafor for struct="UN"/"CS"
        vmin, vmax = -1.0, 1.0
    else:
        vmin, vmax = 0.0, 10.0 if est <= np.sqrt(np.finfo(float).eps) else max(10.0, 100.0 * est)
    lo = (vmin if objective(vmin) < 0 else optimize.brentq(objective, vmin, est, xtol=1e-13, rtol=1e-12)
          if est > vmin else vmin)
    if objective(vmax) < 0:
        return lo, vmax, bool(obj.lb[j] != -1.0)  # rho = 1 is the parameter's own bound, not a search limit
    return lo, optimize.brentq(objective, est, vmax, xtol=1e-13, rtol=1e-12), False


def rma_mv(yi, V, *, random, data=None, mods=None, intercept: bool = True, method: str = "REML", test: str = "z",
           dfs: str = "residual", level: float = 95, slab=None, sparse: bool = False,
           sigma2=None, struct: str = "CS") -> MultilevelResult:
    """Multilevel / multivariate random-effects model, = metafor 3.8.1 ``rma.mv``.

    ``yi``: effect sizes (array, Series, or a column name of ``data``).
    ``V``: sampling variances (vector: V diagonal), a k x k covariance matrix,
    a list of square blocks (block-diagonal in row order), or a column name
    of ``data`` (variances); build a full V with :func:`meta.vcalc.vcalc`.
    ``random``: ``"~ 1 | study/es_id"`` (nested levels: one variance
    component per level, metafor's factors ``study`` and ``study/es_id``),
    ``"~ 1 | study"``, a list of formula strings (crossed terms), or a dict /
    list of grouping arrays taken as nested levels, outermost first
    (:func:`parse_random`); one term may be ``"~ inner | outer"`` (e.g.
    ``"~ outcome | trial"``) with covariance structure ``struct`` (``"CS"``,
    metafor's default; ``"UN"``; ``"DIAG"``: :data:`STRUCTS`).  ``mods``: moderators (see :func:`_design`:
    formula ``"~ x + factor(g)"``, column names, arrays, DataFrame);
    ``intercept``: as metafor.
    ``method``: ``"REML"`` or ``"ML"``; ``test``: ``"z"`` or ``"t"``;
    ``dfs``: ``"residual"`` (k - p) or ``"contain"`` (metafor's containment
    rule; forces ``test="t"`` as metafor); ``level``: 95 or 0.95.
    ``sigma2``: None, or one value per component, NaN = estimate, a number
    = fixed at it (metafor's ``sigma2=``).  ``sparse``: accepted for
    metafor's signature; the fit always works block by block where M is
    block-diagonal, so results do not depend on it.  Profile-likelihood CIs
    of the components: :meth:`MultilevelResult.confint`.

    As metafor: a grouping factor with one level has its component fixed at 0
    (UserWarning); factors that group the rows identically (e.g.
    ``study/es_id`` with one effect per study) are not separately
    identifiable: only their sum is estimated and it is split equally, which
    is where metafor's symmetric start leaves it (UserWarning; their CIs are
    NaN).  V not positive definite: UserWarning, QE and I2 NaN (as metafor),
    the fit proceeds when M is positive definite; otherwise ValueError.
    """
    method = _checks.option(method, "method", ("reml", "ml"), {}, "rma_mv method").upper()
    test = _checks.option(test, "test", ("z", "t"), {}, "rma_mv test")
    dfs = _checks.option(dfs, "dfs", ("residual", "contain"), {}, "rma_mv dfs")
    if dfs == "contain":
        test = "t"
    lv = _level(level)
    if isinstance(yi, str):
        yi = _column(data, yi, "yi")
    if isinstance(V, str):
        V = _column(data, V, "V")
    y = _checks.numbers(yi, "yi").ravel()
    k = y.size
    if k <= 1:
        raise ValueError(f"yi: at least 2 effect sizes are needed (metafor stops for k <= 1); got k = {k}")
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"yi must be finite; offending positions (0-based): {_checks.positions(bad)}")
    vr, vc, vv, _ = _triplets(V, k)
    if not np.all(np.isfinite(vv)):
        raise ValueError("V must be finite (no NaN or inf)")
    diag = np.zeros(k)
    np.add.at(diag, vr[vr == vc], vv[vr == vc])
    bad = diag <= 0
    if bad.any():
        raise ValueError(f"V: sampling variances must be > 0; offending positions (0-based): {_checks.positions(bad)}")
    factors, gterms, cluster = _parse(random, data, k)
    if len(gterms) > 1:
        raise ValueError("random: at most one '~ inner | outer' term is supported")
    if not factors and not gterms:
        raise ValueError("random: no random-effects term given")
    struct = _checks.option(struct, "struct", tuple(s_.lower() for s_ in STRUCTS), {}, "; ".join(STRUCTS)).upper()
    gt = _GTerm(*gterms[0], struct) if gterms else None
    X, coef_names, has_int = _design(mods, data, k, intercept)
    p = X.shape[1]
    if p >= k:
        raise ValueError(f"mods: the model has p = {p} coefficients for k = {k} effect sizes; needs p < k")
    L = len(factors)
    s_names = tuple(n for n, _ in factors)
    codes = [c for _, c in factors]
    nlev = np.array([int(c.max()) + 1 for c in codes])
    fixed_vals = np.full(L, np.nan) if sigma2 is None else np.asarray(sigma2, float).ravel()
    if fixed_vals.size != L:
        raise ValueError(f"sigma2 must have one value per variance component ({L}: {list(s_names)}); got {fixed_vals.size}")
    if np.any(fixed_vals[np.isfinite(fixed_vals)] < 0):
        raise ValueError("sigma2: fixed values must be >= 0")
    single = np.isnan(fixed_vals) & (nlev == 1)
    if single.any():
        warnings.warn(f"rma_mv: single-level factor(s) {[s_names[j] for j in np.flatnonzero(single)]} in random: "
                      "their sigma2 fixed at 0 (as metafor)", UserWarning, stacklevel=2)
        fixed_vals[single] = 0.0
    user_fixed = ~np.isnan(fixed_vals)
    # components with the same partition of the rows: only their sum is identified
    tied_to = np.arange(L)
    for j in range(L):
        for i in range(j):
            if not user_fixed[i] and not user_fixed[j] and tied_to[i] == i and np.array_equal(codes[i], codes[j]):
                tied_to[j] = i
                break
    tied = tied_to != np.arange(L)
    if tied.any():
        groups = {i: [s_names[m] for m in range(L) if tied_to[m] == i] for i in np.unique(tied_to[tied])}
        warnings.warn("rma_mv: the factors " + "; ".join(", ".join(g) for g in groups.values())
                      + " group the effect sizes identically, so their variance components are not separately "
                      "identifiable: their sum is estimated and split equally (where metafor's symmetric start "
                      "leaves it); their profile CIs are NaN", UserWarning, stacklevel=2)
    est_idx = np.flatnonzero(~user_fixed & ~tied)
    # parameters: sigma2 (L), then the G term's (nG)
    nG = 0 if gt is None else len(gt.basis)
    gens = [(lambda f: (lambda idx: (f[idx][:, :, None] == f[idx][:, None, :]).astype(float)))(c) for c in codes]
    connect = list(codes)
    if gt is not None:
        gens += [gt.gen(m) for m in range(nG)]
        connect.append(gt.outer)
    blocks = _Blocks(k, vr, vc, vv, gens, connect, X, y)
    # V alone: positive definite? (metafor warns, and QE / I2 need V^-1)
    Vparts = blocks.eval(np.zeros(L + nG), base="V")
    v_pd = Vparts is not None and _min_eig_ok(blocks)
    if not v_pd:
        warnings.warn("rma_mv: V appears to be not positive definite (as metafor warns); QE and I2 are NaN",
                      UserWarning, stacklevel=2)
    # the objective works on the estimated components; a tied group enters through its first factor
    # with the others at 0 (same A matrices), and is split at the end
    free = np.zeros(L + nG, bool)
    free[est_idx] = True
    free[L:] = True
    fixed0 = np.concatenate([np.where(user_fixed, fixed_vals, 0.0), np.zeros(nG)])
    lb = np.concatenate([np.zeros(L), np.zeros(0) if gt is None else gt.lb])
    ub = np.concatenate([np.full(L, np.inf), np.zeros(0) if gt is None else gt.ub])
    if gt is None:
        obj = _Objective(blocks, X, method == "REML", free, fixed0, lb)
    else:
        def jac(phi):
            J = np.eye(phi.size)
            J[L:, L:] = gt.jac(phi[L:])
            return J
        obj = _Objective(blocks, X, method == "REML", free, fixed0, lb, lambda phi: gt.feasible(phi[L:]), ub,
                         lambda phi: np.concatenate([phi[:L], gt.theta(phi[L:])]), jac)
    # starting values: metafor's total heterogeneity guess, split equally; and one component at a time
    if v_pd:
        Hv = np.linalg.inv(Vparts["XWX"])
        bfe = Hv @ Vparts["XWy"]
        res_fe = y - X @ bfe
        total = max(0.001 * max(est_idx.size, 1), float(np.var(res_fe, ddof=1) - 1.0 / np.mean(1.0 / diag)))
    else:
        beta_ols = np.linalg.lstsq(X, y, rcond=None)[0]
        total = float(np.sum((y - X @ beta_ols) ** 2) / max(k - p, 1))
    n_est = est_idx.size
    n_vc = n_est + (0 if gt is None else (1 if struct == "CS" else gt.q))
    each = total / max(n_vc, 1)
    scale = max(total, 1e-8 * float(np.mean(diag)))

    def start(sig: np.ndarray, g_total: float, rho: float) -> np.ndarray:
        return np.concatenate([sig, np.zeros(0) if gt is None else gt.start(g_total, rho)])

    # metafor's start (the total split equally, rho 0.5), each sigma2 alone, 10x, ~0, and rho 0
    starts = [start(np.full(n_est, each), each, 0.5)]
    for j in range(n_est):
        sig = np.full(n_est, 0.01 * each)
        sig[j] = total
        starts.append(start(sig, 0.01 * each, 0.5))
    starts += [start(np.full(n_est, 10.0 * each), 10.0 * each, 0.5), start(np.full(n_est, 1e-4 * scale), 1e-4 * scale, 0.0)]
    if gt is not None:
        starts.append(start(np.full(n_est, each), each, 0.0))
    theta, ll = _maximise(obj, starts, scale)
    s2 = obj.full(theta)
    if not np.isfinite(ll):
        raise ValueError("rma_mv: the marginal covariance M = V + Z G Z' is not positive definite at any "
                         "variance components tried (V is singular and the random effects do not cover its "
                         "null space); check V")
    parts = obj.parts(obj.to_theta(s2))
    gphi = s2[L:]
    gpar = np.zeros(0) if gt is None else gt.theta(gphi)
    s2_all, s2 = s2, s2[:L]
    sigma2_out = s2.copy()
    for i in np.unique(tied_to[tied]):
        members = np.flatnonzero(tied_to == i)
        sigma2_out[members] = s2[i] / members.size
    H = parts["H"]
    beta = parts["beta"]
    vb = 0.5 * (H + H.T)
    se = np.sqrt(np.diag(vb))
    stat = beta / se
    if test == "t":
        ddf = (np.full(p, float(max(k - p, 1))) if dfs == "residual"
               else _contain_ddf(X, codes + ([] if gt is None else [gt.combo, gt.outer]), k, p))
        pval = 2 * stats.t.sf(np.abs(stat), ddf)
        crit = stats.t.ppf(1 - (1 - lv) / 2, ddf)
    else:
        ddf = np.full(p, np.nan)
        pval = 2 * stats.norm.sf(np.abs(stat))
        crit = np.full(p, stats.norm.ppf(1 - (1 - lv) / 2))
    btt = tuple(range(1, p)) if (p > 1 and has_int) else tuple(range(p))
    bi = np.array(btt)
    QM = float(beta[bi] @ np.linalg.solve(vb[np.ix_(bi, bi)], beta[bi]))
    if test == "t":
        QM /= bi.size
        QM_df = (int(bi.size), float(np.min(ddf[bi])))
        QMp = float(stats.f.sf(QM, QM_df[0], QM_df[1]))
    else:
        QM_df = (int(bi.size), np.nan)
        QMp = float(stats.chi2.sf(QM, bi.size))
    # QE and I2 with V alone
    if v_pd:
        Hv = np.linalg.inv(Vparts["XWX"])
        QE = float(Vparts["yWy"] - Vparts["XWy"] @ Hv @ Vparts["XWy"])
        trP = Vparts["trW"] - float(np.trace(Hv @ Vparts["XWWX"]))
        typical_v = (k - p) / trP
        i2 = 100.0 * sigma2_out / (sigma2_out.sum() + typical_v)
        i2_total = 100.0 * sigma2_out.sum() / (sigma2_out.sum() + typical_v)
        ll_qe = -0.5 * k * _LOG2PI - 0.5 * Vparts["logdet"]
    else:
        QE = typical_v = i2_total = np.nan
        i2 = np.full(L, np.nan)
        ll_qe = np.nan
    QE_df = k - p
    QEp = float(stats.chi2.sf(QE, QE_df)) if QE_df > 0 else 1.0
    if QE_df <= 0:
        QE = 0.0
    n_par = p + int((~user_fixed).sum()) + nG
    if gt is not None:
        tau2, rho = gphi[: gt.n_tau2].copy(), gphi[gt.n_tau2:].copy()
        G = gt.G(gphi)
        i2_tau2 = 100.0 * tau2 / (tau2 + typical_v) if v_pd else np.full(tau2.size, np.nan)
    else:
        tau2, rho, G, i2_tau2 = np.zeros(0), np.zeros(0), np.zeros((0, 0)), np.zeros(0)
    if method == "ML":
        llv = parts["ll_ml"]
        dev = -2.0 * (llv - ll_qe)
        n_eff = k
    else:
        llv = parts["ll_reml"]
        dev = -2.0 * llv
        n_eff = k - p
    AIC = -2 * llv + 2 * n_par
    BIC = -2 * llv + n_par * math.log(n_eff)
    AICc = -2 * llv + 2 * n_par * max(n_eff, n_par + 2) / (max(n_eff, n_par + 2) - n_par - 1)
    fitted = X @ beta
    W_diag = np.zeros(k)
    for g in blocks.groups:
        Mb = g["V"] + np.tensordot(np.concatenate([sigma2_out, gpar]), np.array(g["A"]), axes=(0, 0))
        W_diag[g["idx"]] = np.diagonal(np.linalg.inv(Mb), axis1=1, axis2=2)
    tied_any = np.array([tied_to[j] != j or (tied_to == j).sum() > 1 for j in range(L)])
    others = np.concatenate([est_idx, np.arange(L, L + nG)]).astype(int)
    g_var_idx = [] if gt is None else [L + m for m in range(gt.n_tau2 + gt.n_rho)]
    profile = dict(obj=obj, s2=s2_all, ll=parts["ll"], scale=scale, est_idx=est_idx, others=others, tied=tied_any,
                   L=L, g_var_idx=g_var_idx)
    lab = tuple(range(1, k + 1)) if slab is None else tuple(np.asarray(slab, dtype=object).tolist())
    if len(lab) != k:
        raise ValueError(f"slab must have one label per effect size (length {k}); got {len(lab)}")
    return MultilevelResult(
        k=k, p=p, method=method, test=test, dfs=dfs, level=lv, coef_names=tuple(coef_names), beta=beta, se=se,
        stat=stat, pval=pval, ci_lb=beta - crit * se, ci_ub=beta + crit * se, vb=vb, ddf=ddf, sigma2=sigma2_out,
        s_names=s_names, s_nlevels=nlev, sigma2_fixed=user_fixed, i2=i2,
        i2_total=float(i2_total), typical_v=float(typical_v), QE=QE, QE_df=QE_df, QEp=QEp, QM=QM, QM_df=QM_df,
        QMp=QMp, btt=btt, logLik=float(llv), deviance=float(dev), AIC=float(AIC), BIC=float(BIC), AICc=float(AICc),
        fitted=fitted, residuals=y - fitted, weights=100.0 * W_diag / W_diag.sum(), yi=y, X=X,
        cluster=cluster, slab=lab, tau2=tau2, rho=rho, G=G, i2_tau2=i2_tau2, struct=struct if gt else "",
        g_names=(gt.inner_name, gt.outer_name) if gt else (), g_levels=tuple(gt.levels) if gt else (),
        g_levels_k=np.bincount(gt.inner, minlength=gt.q) if gt else np.zeros(0, int),
        g_nlevels=(gt.q, int(gt.outer.max()) + 1) if gt else (), _gpar=gpar,
        _blocks=blocks, _profile=profile)


def _min_eig_ok(blocks: _Blocks) -> bool:
    """V positive definite beyond rounding (metafor: every eigenvalue > machine eps)."""
    eps = np.finfo(float).eps
    return all(np.linalg.eigvalsh(g["V"])[:, 0].min() > eps for g in blocks.groups)


# --------------------------------------------------------------------------- CHE preset


#: the CHE working model (Pustejovsky & Tipton 2022, "correlated and hierarchical effects"): the settings
#: as data; ``r`` is their illustrative default correlation within study
CHE = {"r": 0.6, "random": "study/es_id", "method": "REML", "source": "Pustejovsky & Tipton (2022), Prev Sci 23:425-438"}


def che(yi, vi, *, study, es_id=None, r: float = CHE["r"], data=None, mods=None, method: str = CHE["method"],
        test: str = "z", dfs: str = "residual", level: float = 95, slab=None, **kw) -> MultilevelResult:
    """The correlated-and-hierarchical-effects (CHE) working model (Pustejovsky & Tipton 2022).

    ``V = vcalc(vi, cluster=study, obs=es_id, rho=r)`` (constant sampling
    correlation ``r`` within study; clubSandwich ``impute_covariance_matrix``)
    and ``rma_mv(yi, V, random=~ 1 | study/es_id, method="REML")``.
    ``study``, ``es_id`` (default: one id per row), ``yi``, ``vi`` may be
    column names of ``data``.  Returns the :class:`MultilevelResult`, whose
    ``X``, ``yi``, ``W``, ``cluster`` (= study) serve cluster-robust (CR2)
    tests, as the paper recommends for this working model.
    """
    def col(x, name):
        return _column(data, x, name) if isinstance(x, str) else x

    yv, vv, st = col(yi, "yi"), col(vi, "vi"), col(study, "study")
    y = _checks.numbers(yv, "yi").ravel()
    es = np.arange(y.size) if es_id is None else np.asarray(col(es_id, "es_id"), dtype=object)
    i, j, vals = vcalc_triplets(vv, st, obs=es, rho=r)
    V = _sparse.coo_matrix((vals, (i, j)), shape=(y.size, y.size))
    return rma_mv(y, V, random={"study": np.asarray(st, dtype=object), "es_id": es}, data=data, mods=mods,
                  method=method, test=test, dfs=dfs, level=level, slab=slab, **kw)
