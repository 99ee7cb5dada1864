"""Cluster-robust (sandwich) inference for meta-analytic models: clubSandwich's
``vcovCR`` / ``coef_test`` / ``conf_int`` / ``Wald_test`` and metafor's ``robust()``.

The core works on plain matrices of a weighted least-squares / GLS fit
``beta = (X'WX)^-1 X'W y``:

* ``X`` (k x p design), ``yi`` (k), ``W`` (k x k weights; for a model fitted
  with inverse-variance weights ``W = M^-1``, ``M`` the marginal covariance of
  ``yi``), ``beta`` (p) and a ``cluster`` label per row.

Every public function takes a *fit*, which is any of

1. a :class:`meta.pool.PoolResult` (metafor ``rma.uni`` without moderators):
   ``X`` = a column of ones, ``W = diag(1 / (vi + tau2))``, ``M = diag(vi + tau2)``,
   ``beta`` = the pooled estimate;
2. any object with the attributes ``X``, ``yi`` and ``W`` or ``M`` (optional:
   ``beta``, ``coef_names``, ``level``, ``cluster``, ``w_scale``), e.g. a multilevel
   ``rma_mv`` fit, or a :class:`WorkingModel` made from plain matrices;
3. a mapping with those keys.

Formulas and sources
--------------------
Bread ``B = (sum_j X_j' W_j X_j)^-1``; estimating matrices ``E_j = X_j' W_j A_j``;
``V^CR = B (sum_j E_j e_j e_j' E_j') B`` with ``e_j = y_j - X_j beta``
(Liang & Zeger 1986; clubSandwich 0.5.8 ``vcov_CR``).  Adjustments ``A_j``
(clubSandwich ``R/CR-adjustments.R``): CR0 ``I``; CR1 ``sqrt(J/(J-1))``;
CR1p ``sqrt(J/(J-p))``; CR1S ``sqrt(J(N-1)/((J-1)(N-p)))``; CR2 (Bell & McCaffrey
2002; Pustejovsky & Tipton 2018, eq. 9) ``A_j = R_j' G_j^{-1/2} R_j`` with
``R_j' R_j = Phi_j`` (Cholesky factor of the working model) and
``G_j = R_j (I - H_jj) Phi_j R_j'`` when ``Phi = W^-1`` (inverse-variance
weights), else ``G_j = R_j (Phi_j - H_jj Phi_j - Phi_j H_jj' + X_j B (sum X'W Phi W X) B X_j') R_j'``,
``H_jj = X_j B X_j' W_j``, and ``G^{-1/2}`` the symmetric inverse square root
over the eigenvalues > 1e-12 (the others set to 0, clubSandwich ``matrix_power``);
CR3 ``A_j = (I - H_jj)^-1`` (jackknife); CR4 (Pustejovsky & Tipton 2018, appendix)
``E_j = A_j X_j' W_j`` with ``A_j = F_j^{1/2}' G_j^{-1/2} F_j^{1/2}``, ``F_j = X_j' W_j Phi_j W_j X_j``.

Satterthwaite degrees of freedom for coefficient ``i`` (Bell & McCaffrey 2002;
Tipton 2015; Pustejovsky & Tipton 2018, eq. 11; clubSandwich
``get_GH``/``get_P_array``/``Satterthwaite``): ``df_i = (tr P_i)^2 / sum(P_i^2)``
with the J x J matrix ``P_i = diag_j(|g_ij|^2) - H_i' H_i`` of the working model.
The Wald test (``HTZ``: Pustejovsky & Tipton 2018, section 3.2; clubSandwich
``Wald_testing``) uses ``Q = (C beta)' (C V C')^-1 (C beta)``, ``nu = q(q+1) / sum(Var)``
and the Hotelling ``F = (nu - q + 1)/(nu q) Q`` on ``(q, nu - q + 1)`` df.

``robust()`` is metafor 3.8.1 ``robust.rma.uni``/``robust.rma.mv``: by default
``vb = (n/(n-p)) B X'W diag_j(e_j e_j') W X B`` (Hedges, Tipton & Johnson 2010's
small-sample factor, "CR1" in metafor) with t tests on ``n - p`` df, ``n`` the
number of clusters; with ``clubSandwich=True`` it is CR2 + Satterthwaite + HTZ.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from meta import _checks
from meta._checks import numbers, positions
from meta._format import metafor_num as _fmt
from meta._format import metafor_p as _fmt_p
from meta._zeroin import zeroin

__all__ = ["TYPES", "COEF_TESTS", "CONF_TESTS", "WALD_TESTS", "WorkingModel", "CRVcov", "CoefTestResult", "ConfIntResult",
           "WaldTestResult", "RobustResult", "vcov_cr", "coef_test", "conf_int", "wald_test", "robust",
           "constrain_zero", "SmallDfWarning"]

#: small-sample adjustments of vcov_cr (clubSandwich vcovCR's ``type``)
TYPES = ("CR0", "CR1", "CR1p", "CR1S", "CR2", "CR3", "CR4")
#: tests of coef_test / conf_int (clubSandwich's names; conf_int takes one)
COEF_TESTS = ("z", "naive-t", "naive-tp", "Satterthwaite", "saddlepoint")
#: tests conf_int can invert (the saddlepoint p-value has no closed-form interval)
CONF_TESTS = ("z", "naive-t", "naive-tp", "Satterthwaite")
#: tests of wald_test (clubSandwich's names)
WALD_TESTS = ("chi-sq", "Naive-F", "Naive-Fp", "HTA", "HTB", "HTZ", "EDF", "EDT")
#: Satterthwaite df below this make t tests unreliable (Tipton 2015; robumeta's note "df < 4")
SMALL_DF = 4.0
#: eigenvalues at or below this are dropped from G^{-1/2} and Omega^{-1/2} (clubSandwich matrix_power, tol = -12)
_EIG_TOL = 1e-12
#: CR3 refuses I - H_jj with a reciprocal condition number below this
_SINGULAR = 1e-12


def _freeze(obj) -> None:
    """Make a result's numpy arrays read-only copies (a frozen dataclass cannot stop ``res.se[0] = 1``)."""
    for name, value in vars(obj).items():
        if isinstance(value, np.ndarray):
            a = np.array(value, dtype=float)
            a.setflags(write=False)
            object.__setattr__(obj, name, a)


class SmallDfWarning(UserWarning):
    """Satterthwaite (or HTZ denominator) degrees of freedom below 4: the
    t / F reference distribution is unreliable (Tipton 2015; Tipton &
    Pustejovsky 2015), p-values and intervals may be far off."""


# --------------------------------------------------------------------------- the fit as matrices


@dataclass(frozen=True, eq=False)
class WorkingModel:
    """The matrices of a weighted least-squares / GLS meta-analytic fit.

    ``X`` (k x p), ``yi`` (k), ``W`` (k x k weights), ``M`` (k x k working
    covariance of ``yi``; ``None`` when unknown), ``beta`` (p; default
    ``(X'WX)^-1 X'W yi``), ``coef_names`` (p labels).  Give ``W`` or ``M`` (or
    both): ``W`` defaults to ``M^-1`` (inverse-variance weights, as metafor's
    ``rma.mv`` without ``W=``).  This object is itself a *fit* for every
    function of :mod:`meta.robust`.
    """

    X: np.ndarray = field(repr=False)
    yi: np.ndarray = field(repr=False)
    W: np.ndarray = field(repr=False)
    beta: np.ndarray
    coef_names: tuple
    M: np.ndarray | None = field(default=None, repr=False)
    level: float = 0.95
    cluster: Any = field(default=None, repr=False)
    w_scale: float = 1.0

    @classmethod
    def from_matrices(cls, X, yi, *, W=None, M=None, beta=None, coef_names=None, level=0.95, cluster=None,
                      w_scale=1.0):
        """Check and build: ``X`` 2-D (a vector is one column), ``W``/``M`` k x k
        or a length-k vector (diagonal).  ``w_scale``: the clubSandwich functions work with
        ``W / w_scale`` (clubSandwich divides ``rma.uni`` weights by their mean, ``rma.mv``
        weights by 1).  Results do not depend on it except through the absolute eigenvalue
        threshold (1e-12) of ``G^{-1/2}``, i.e. only for clusters whose ``G_j`` is singular up
        to rounding (CR4 with a covariate constant within clusters, p = J)."""
        names = None
        if isinstance(X, pd.DataFrame):
            names = tuple(str(c) for c in X.columns)
        Xa = numbers(X, "X")
        if Xa.ndim == 1:
            Xa = Xa[:, None]
        if Xa.ndim != 2 or Xa.shape[0] == 0 or Xa.shape[1] == 0:
            raise ValueError(f"X must be a k x p matrix with k, p >= 1; got shape {Xa.shape}")
        _finite(Xa, "X")
        k, p = Xa.shape
        y = numbers(yi, "yi").ravel()
        if y.shape[0] != k:
            raise ValueError(f"yi must have one value per row of X ({k}); got {y.shape[0]}")
        _finite(y, "yi")
        if W is None and M is None:
            raise ValueError("give the weights W or the marginal covariance M (k x k matrix, or a length-k vector for a diagonal)")
        Mm = None if M is None else _square(M, "M", k)
        if W is None:
            if _issparse(Mm):  # W = M^-1 of a general sparse M: dense, as before
                Mm = _square(Mm.toarray(), "M", k)
            Wm = _inverse(Mm, "M")
        else:
            Wm = _square(W, "W", k)
        if coef_names is None:
            coef_names = names or tuple("intrcpt" if np.all(Xa[:, j] == 1) else f"X{j + 1}" for j in range(p))
        coef_names = tuple(str(c) for c in coef_names)
        if len(coef_names) != p:
            raise ValueError(f"coef_names must name the {p} columns of X; got {len(coef_names)}")
        if beta is None:
            if _issparse(Wm):
                b = _inverse(np.asarray(Xa.T @ (Wm @ Xa)), "X'WX") @ np.asarray(Xa.T @ (Wm @ y)).ravel()
            else:
                b = _inverse(Xa.T @ Wm @ Xa, "X'WX") @ (Xa.T @ Wm @ y)
        else:
            b = numbers(beta, "beta").ravel()
            if b.shape[0] != p:
                raise ValueError(f"beta must have one value per column of X ({p}); got {b.shape[0]}")
            _finite(b, "beta")
        for name, a in (("X", Xa), ("yi", y), ("W", Wm), ("beta", b)) + ((("M", Mm),) if Mm is not None else ()):
            (a.data if _issparse(a) else a).setflags(write=False)
        if not (isinstance(w_scale, (int, float)) and not isinstance(w_scale, bool) and np.isfinite(w_scale) and w_scale > 0):
            raise ValueError(f"w_scale must be a positive number; got {w_scale!r}")
        return cls(X=Xa, yi=y, W=Wm, beta=b, coef_names=coef_names, M=Mm, level=float(level), cluster=cluster,
                   w_scale=float(w_scale))

    @property
    def k(self) -> int:
        return self.X.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def inverse_weights(self) -> bool:
        """Whether ``W = M^-1`` (or ``M`` is unknown): then the CR2 working model is ``W^-1``
        (clubSandwich's ``inverse_var = TRUE``); else it is ``M`` (user weights, metafor ``rma.mv(W=)``)."""
        if self.M is None:
            return True
        if _issparse(self.W) or _issparse(self.M):  # |W M - I| <= 1e-8 on the non-zeros of W M - I
            from scipy import sparse

            d = sparse.csr_matrix(self.W) @ sparse.csr_matrix(self.M) - sparse.identity(self.k, format="csr")
            return bool(d.nnz == 0 or np.all(np.abs(d.data) <= 1e-8))
        return bool(np.allclose(self.W @ self.M, np.eye(self.k), rtol=0, atol=1e-8))

    def default_target(self):
        """The working model clubSandwich takes for this fit: ``None`` (= ``W^-1``) or ``M``."""
        return None if self.inverse_weights else self.M

    @property
    def residuals(self) -> np.ndarray:
        """``yi - X beta`` (clubSandwich ``residuals_CS``; metafor ``robust()``'s ``ei``)."""
        return self.yi - self.X @ self.beta


def _finite(a: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} must be finite; not finite at positions (0-based): {positions(bad)}")


def _square(a, name: str, k: int) -> np.ndarray:
    if _issparse(a):  # scipy.sparse (metafor's rma.mv(sparse=TRUE) keeps M sparse too): kept sparse
        return _square_sparse(a, name, k)
    m = numbers(a, name)
    if m.ndim == 1:
        if m.shape[0] != k:
            raise ValueError(f"{name} as a vector must have length k = {k} (its diagonal); got {m.shape[0]}")
        m = np.diag(m)
    if m.shape != (k, k):
        raise ValueError(f"{name} must be a {k} x {k} matrix (k = rows of X); got shape {m.shape}")
    _finite(m, name)
    if not np.allclose(m, m.T, rtol=1e-10, atol=1e-14 * max(1.0, np.abs(m).max())):
        raise ValueError(f"{name} must be symmetric; {name}[i, j] != {name}[j, i] at {positions(~np.isclose(m, m.T))}")
    return m


def _issparse(a) -> bool:
    """Whether ``a`` is a scipy.sparse matrix (scipy.sparse is imported only when one is given)."""
    return hasattr(a, "tocsr") and hasattr(a, "nnz")


def _square_sparse(a, name: str, k: int):
    """The checks of :func:`_square` on a scipy.sparse matrix, in memory proportional to its
    non-zeros (a block-diagonal W or M of k rows is never made dense): CSR, float, k x k, finite,
    symmetric to the same tolerance as ``np.allclose(m, m.T, rtol=1e-10, atol=1e-14 max|m|)``."""
    m = a.tocsr().astype(float)
    if m.shape != (k, k):
        raise ValueError(f"{name} must be a {k} x {k} matrix (k = rows of X); got shape {m.shape}")
    if not np.all(np.isfinite(m.data)):
        r, c = m.nonzero()
        bad = ~np.isfinite(np.asarray(m[r, c]).ravel())
        raise ValueError(f"{name} must be finite; not finite at positions (0-based): "
                         + ", ".join(f"({i}, {j})" for i, j in zip(r[bad][:10], c[bad][:10])))
    mt = m.T.tocsr()
    d = (m - mt).tocoo()
    atol = 1e-14 * max(1.0, float(abs(m).max()) if m.nnz else 0.0)
    far = np.abs(d.data) > atol + 1e-10 * np.abs(np.asarray(mt[d.row, d.col]).ravel()) if d.nnz else np.zeros(0, bool)
    if far.any():
        shown = ", ".join(f"({i}, {j})" for i, j in zip(d.row[far][:10], d.col[far][:10]))
        raise ValueError(f"{name} must be symmetric; {name}[i, j] != {name}[j, i] at {shown}")
    return m


def _blocks(m, idx: tuple, codes: np.ndarray) -> tuple:
    """The dense diagonal blocks ``m[i, i]`` for the row sets ``idx`` (each ascending; row r in
    ``idx[codes[r]]``) of a dense or scipy.sparse matrix. Sparse: one pass over the non-zeros into
    one buffer that the blocks view (entries off the blocks are not read)."""
    if not _issparse(m):
        return tuple(m[np.ix_(i, i)] for i in idx)
    coo = m.tocoo()
    sizes = np.array([i.size for i in idx])
    off = np.concatenate([[0], np.cumsum(sizes.astype(np.int64) ** 2)])
    pos = np.empty(codes.size, np.int64)
    for i in idx:
        pos[i] = np.arange(i.size)
    inside = codes[coo.row] == codes[coo.col]
    r, c = coo.row[inside], coo.col[inside]
    j = codes[r]
    flat = np.zeros(off[-1])
    flat[off[j] + pos[r] * sizes[j] + pos[c]] = coo.data[inside]
    return tuple(flat[off[q]:off[q + 1]].reshape(n, n) for q, n in enumerate(sizes.tolist()))


def _inverse(m: np.ndarray, name: str) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix through its Cholesky factor (R ``chol2inv(chol())``)."""
    try:
        L = np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} is not positive definite (Cholesky factorisation failed): "
                         + ("the columns of X are collinear or a coefficient is not estimable" if name == "X'WX"
                            else "a covariance / weight matrix must be symmetric positive definite")) from None
    Li = np.linalg.inv(L)
    return Li.T @ Li


def _fit_model(fit) -> WorkingModel:
    """A fit (PoolResult, duck-typed object, mapping, WorkingModel) as a :class:`WorkingModel`."""
    if isinstance(fit, WorkingModel):
        return fit
    from meta.pool import PoolResult

    if isinstance(fit, PoolResult):
        if fit.yi is None or fit.vi is None:
            raise ValueError("fit: this PoolResult carries no yi/vi (built by hand); pool(yi, vi) keeps them")
        mv = np.asarray(fit.vi, float) + fit.tau2
        k = len(fit.yi)
        return WorkingModel.from_matrices(np.ones((k, 1)), fit.yi, W=np.diag(1.0 / mv), M=np.diag(mv),
                                          beta=[fit.estimate], coef_names=("intrcpt",), level=fit.level,
                                          w_scale=float(np.mean(1.0 / mv)))  # clubSandwich weightMatrix.rma.uni
    if isinstance(fit, Mapping):
        get = fit.get
    else:
        def get(name, default=None):
            return getattr(fit, name, default)
    X, yi = get("X"), get("yi")
    if X is None or yi is None:
        raise TypeError("fit must be a meta.pool.PoolResult, a WorkingModel, or an object/mapping with X (k x p "
                        f"design), yi and W or M (k x k); got {type(fit).__name__} without "
                        + " and ".join(n for n, v in (("X", X), ("yi", yi)) if v is None))
    # a block-diagonal fit (meta.multilevel's MultilevelResult) offers W and M as scipy.sparse
    # matrices: the same values as its dense W and M, in memory proportional to the blocks
    W, M = get("W_sparse"), get("M_sparse")
    if W is None or M is None:
        W, M = get("W"), get("M")
    names = get("coef_names")
    return WorkingModel.from_matrices(X, yi, W=W, M=M, beta=get("beta"), coef_names=names,
                                      level=get("level", 0.95) or 0.95, cluster=get("cluster"),
                                      w_scale=get("w_scale", 1.0) or 1.0)


def _clusters(cluster, model: WorkingModel, who: str):
    """Cluster codes 0..J-1 in order of first appearance, and the labels."""
    if cluster is None:
        cluster = model.cluster
    if cluster is None:
        raise ValueError(f"{who}: give cluster= (one label per row of the fit: study, lab, ...); the fit carries none")
    lab = pd.Series(np.asarray(cluster, dtype=object).ravel()) if not isinstance(cluster, pd.Series) else cluster.reset_index(drop=True)
    if len(lab) != model.k:
        raise ValueError(f"{who}: cluster must have one label per row of the fit (k = {model.k}); got {len(lab)}")
    bad = lab.isna().to_numpy()
    if bad.any():
        raise ValueError(f"{who}: cluster has missing labels at positions (0-based): {positions(bad)}")
    codes, labels = pd.factorize(lab, sort=False)
    if len(labels) < 2:
        raise ValueError(f"{who}: cluster-robust variance estimation needs at least 2 clusters; got {len(labels)}")
    return codes, tuple(labels.tolist())


# --------------------------------------------------------------------------- CR variance


def _mpow(x: np.ndarray, p: float) -> np.ndarray:
    """Symmetric matrix power over eigenvalues > 1e-12, the others 0 (clubSandwich ``matrix_power``)."""
    vals, vecs = np.linalg.eigh((x + x.T) / 2)
    keep = vals > _EIG_TOL
    vp = np.zeros_like(vals)
    vp[keep] = vals[keep] ** p
    return (vecs * vp) @ vecs.T


def _chol_upper(m: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.linalg.cholesky(m).T
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} is not positive definite (Cholesky factorisation failed)") from None


@dataclass(frozen=True, eq=False)
class CRVcov:
    """A cluster-robust variance-covariance matrix (clubSandwich ``vcovCR``).

    ``vcov`` (p x p), ``type`` (CR0 ... CR3), ``coef_names``, ``n_clusters``
    (J), ``clusters`` (labels in order of first appearance), ``inverse_var``
    (whether the working model is ``Phi = W^-1``).  The pieces the
    Satterthwaite and Wald computations need (bread, estimating matrices,
    working model blocks) are kept in private fields.
    """

    vcov: np.ndarray
    type: str
    coef_names: tuple
    n_clusters: int
    clusters: tuple = field(repr=False)
    inverse_var: bool = True
    _bread: np.ndarray = field(default=None, repr=False, compare=False)
    _E: tuple = field(default=(), repr=False, compare=False)
    _idx: tuple = field(default=(), repr=False, compare=False)
    _X: tuple = field(default=(), repr=False, compare=False)
    _W: tuple = field(default=(), repr=False, compare=False)
    _theta: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        _freeze(self)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    def to_frame(self) -> pd.DataFrame:
        """The p x p matrix, rows and columns named by the coefficients."""
        return pd.DataFrame(self.vcov, index=list(self.coef_names), columns=list(self.coef_names))

    def summary(self) -> str:
        head = (f"Cluster-robust variance-covariance matrix ({self.type}, {self.n_clusters} clusters; "
                f"working model {'W^-1' if self.inverse_var else 'target'})")
        return head + "\n" + self.to_frame().to_string(float_format=lambda v: f"{v:.6g}")


def vcov_cr(X, W, residuals, cluster, type: str = "CR2", target=None, inverse_var: bool | None = None,
            *, coef_names=None) -> CRVcov:
    """Cluster-robust variance of ``beta = (X'WX)^-1 X'W y`` (clubSandwich 0.5.8 ``vcovCR``).

    ``X`` (k x p), ``W`` (k x k, block-diagonal by ``cluster``; a length-k
    vector is a diagonal), ``residuals`` (k: ``y - X beta``), ``cluster`` (k
    labels), ``type`` one of :data:`TYPES`.  ``target``: the working covariance
    ``Phi`` of CR2 (k x k or a length-k vector); ``None`` with ``inverse_var``
    True / None means ``Phi = W^-1`` (inverse-variance weights: clubSandwich's
    default for ``rma.uni`` and ``rma.mv`` fits, where it is the model's
    marginal ``M``); ``None`` with ``inverse_var=False`` means ``Phi = I``
    (clubSandwich's default for unweighted models).  A given ``target`` makes
    ``inverse_var`` default to False, as in clubSandwich.

    Raises ``ValueError`` when ``W`` links rows of different clusters (the
    working model's random effects are not nested within ``cluster``), when
    there are fewer than 2 clusters, for CR1p/CR1S with J <= p, and for CR3
    when some ``I - H_jj`` is singular.  See the module docstring for the
    formulas.
    """
    e = numbers(residuals, "residuals").ravel()
    _finite(e, "residuals")
    p = np.shape(X)[1] if np.ndim(X) == 2 else 1
    # residuals stand in for yi with beta = 0: only X, W and the residuals enter the variance
    m = WorkingModel.from_matrices(X, e, W=W, beta=np.zeros(p), coef_names=coef_names)
    codes, labels = _clusters(cluster, m, "vcov_cr")
    return _vcov(m, e, codes, labels, type, target, inverse_var)


def _vcov(m: WorkingModel, e, codes, labels, type, target, inverse_var) -> CRVcov:
    if type not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)}; got {type!r}")
    X, W = m.X, m.W / m.w_scale
    k, p = X.shape
    J = len(labels)
    order = np.argsort(codes, kind="stable")
    idx = tuple(np.split(order, np.cumsum(np.bincount(codes, minlength=J))[:-1]))  # rows of each cluster, in order
    if _issparse(W):  # the non-zeros only: memory proportional to them, not k^2
        coo = W.tocoo()
        scale = np.abs(coo.data).max() if coo.nnz else 0.0
        link = (codes[coo.row] != codes[coo.col]) & (np.abs(coo.data) > 1e-10 * scale)
        first = np.lexsort((coo.col[link], coo.row[link]))[:1]
        bad = (coo.row[link][first], coo.col[link][first]) if link.any() else None
    else:
        off = np.ones((k, k), bool)
        for i in idx:
            off[np.ix_(i, i)] = False
        scale = np.abs(W).max()
        bad = tuple(np.argwhere(off & (np.abs(W) > 1e-10 * scale))[0]) if np.any(np.abs(W[off]) > 1e-10 * scale) else None
    if bad is not None:
        r, c = int(np.ravel(bad[0])[0]), int(np.ravel(bad[1])[0])
        raise ValueError(f"W links rows {r} and {c} of different clusters ({labels[codes[r]]!r}, {labels[codes[c]]!r}): "
                         "the working model's random effects must be nested within cluster (clubSandwich refuses "
                         "the same); cluster at the outermost level of the model")
    Xj = tuple(X[i] for i in idx)
    Wj = _blocks(W, idx, codes)
    XWj = tuple(x.T @ w for x, w in zip(Xj, Wj))
    B = _inverse(sum(xw @ x for xw, x in zip(XWj, Xj)), "X'WX")
    if target is not None:
        T = _square(target, "target", k)
        theta = _blocks(T, idx, codes)
        inv_var = bool(inverse_var) if inverse_var is not None else False
    elif inverse_var is None or inverse_var:
        theta = tuple(_inverse(w, f"W (block of cluster {labels[j]!r})") for j, w in enumerate(Wj))
        inv_var = True
    else:
        theta = tuple(np.eye(len(i)) for i in idx)
        inv_var = False

    if type == "CR0":
        E = XWj
    elif type in ("CR1", "CR1p", "CR1S"):
        if type == "CR1p" and J <= p:
            raise ValueError(f"type='CR1p' needs more clusters than coefficients (J = {J}, p = {p}): its factor is J / (J - p)")
        if type == "CR1S" and k <= p:
            raise ValueError(f"type='CR1S' needs more rows than coefficients (k = {k}, p = {p}): its factor has N - p")
        f = {"CR1": np.sqrt(J / (J - 1)), "CR1p": np.sqrt(J / max(J - p, 1)),
             "CR1S": np.sqrt(J * (k - 1) / ((J - 1) * max(k - p, 1)))}[type]
        E = tuple(xw * f for xw in XWj)
    elif type == "CR2":
        E = tuple(xw @ a for xw, a in zip(XWj, _cr2_adjustments(B, Xj, Wj, XWj, theta, inv_var, labels)))
    elif type == "CR4":
        E = tuple(a @ xw for xw, a in zip(XWj, _cr4_adjustments(B, Xj, XWj, theta, inv_var)))
    else:  # CR3
        A = []
        for j, (x, xw) in enumerate(zip(Xj, XWj)):
            ih = np.eye(x.shape[0]) - x @ B @ xw
            # singular in exact arithmetic when a coefficient rests on this cluster alone; R's solve() then
            # refuses or returns rounding noise depending on the last bits (rcond vs machine epsilon)
            if 1 / np.linalg.cond(ih, 1) < _SINGULAR:
                raise ValueError(f"type='CR3': I - H_jj is singular for cluster {labels[j]!r} (a coefficient is "
                                 "estimated from that cluster alone); use CR2")
            A.append(np.linalg.solve(ih, np.eye(x.shape[0])))
        E = tuple(xw @ a for xw, a in zip(XWj, A))
    comps = np.column_stack([ej @ e[i] for ej, i in zip(E, idx)])  # p x J
    V = B @ (comps @ comps.T) @ B
    V = (V + V.T) / 2
    return CRVcov(vcov=V, type=type, coef_names=m.coef_names, n_clusters=J, clusters=labels, inverse_var=inv_var,
                  _bread=B, _E=E, _idx=idx, _X=Xj, _W=Wj, _theta=theta)


def _cr2_adjustments(B, Xj, Wj, XWj, theta, inv_var, labels):
    """CR2 adjustment matrices (clubSandwich ``CR2``; Pustejovsky & Tipton 2018, eq. 9)."""
    R = tuple(_chol_upper(t, f"target (block of cluster {labels[j]!r})") for j, t in enumerate(theta))
    if inv_var:
        G = [r @ (np.eye(x.shape[0]) - x @ B @ xw) @ t @ r.T for r, x, xw, t in zip(R, Xj, XWj, theta)]
    else:
        mid = B @ sum(xw @ t @ xw.T for xw, t in zip(XWj, theta)) @ B
        G = []
        for r, x, xw, t in zip(R, Xj, XWj, theta):
            h = x @ B @ xw
            G.append(r @ (t - h @ t - t @ h.T + x @ mid @ x.T) @ r.T)
    return [r.T @ _mpow(g, -0.5) @ r for r, g in zip(R, G)]


def _chol_psd(x: np.ndarray) -> np.ndarray:
    """``F^{1/2}`` with ``F = F^{1/2}' F^{1/2}`` from the eigen-decomposition (clubSandwich ``chol_psd``)."""
    vals, vecs = np.linalg.eigh((x + x.T) / 2)
    return np.sqrt(np.maximum(vals, 0))[:, None] * vecs.T


def _cr4_adjustments(B, Xj, XWj, theta, inv_var):
    """CR4 adjustment matrices (p x p; clubSandwich ``CR4``)."""
    out = []
    if inv_var:
        for x, xw in zip(Xj, XWj):
            F = xw @ x
            Fc = _chol_psd(F)
            out.append(Fc.T @ _mpow(Fc @ (F - F.T @ B @ F) @ Fc.T, -0.5) @ Fc)
        return out
    Fs = [xw @ t @ xw.T for xw, t in zip(XWj, theta)]
    mid = B @ sum(Fs) @ B
    for x, xw, F in zip(Xj, XWj, Fs):
        Fc = _chol_psd(F)
        uwx = xw @ x
        G = Fc @ (F - uwx.T @ B @ F - F.T @ B @ uwx + uwx.T @ mid @ uwx) @ Fc.T
        out.append(Fc.T @ _mpow(G, -0.5) @ Fc)
    return out


# --------------------------------------------------------------------------- Satterthwaite and Wald pieces


def _gh(v: CRVcov):
    """clubSandwich ``get_GH``: G_j (p x n_j) and H (p x p x J, or 3 of them when Phi != W^-1)."""
    B = v._bread
    Lmu = np.linalg.cholesky(B)
    ME = [B @ e for e in v._E]
    G = [me @ np.linalg.cholesky(t) for me, t in zip(ME, v._theta)]
    if v.inverse_var:
        H = np.stack([me @ x @ Lmu for me, x in zip(ME, v._X)], axis=2)  # p x u x J
        return G, (H,)
    TWU = [t @ w @ x for t, w, x in zip(v._theta, v._W, v._X)]
    Om = B @ sum(x.T @ w @ twu for x, w, twu in zip(v._X, v._W, TWU)) @ B
    Oct = np.linalg.cholesky((Om + Om.T) / 2)
    H1 = np.stack([me @ x @ Lmu for me, x in zip(ME, v._X)], axis=2)
    H2 = np.stack([me @ twu @ Lmu for me, twu in zip(ME, TWU)], axis=2)
    H3 = np.stack([me @ x @ Oct for me, x in zip(ME, v._X)], axis=2)
    return G, (H1, H2, H3)


def _p_pair(G, H, s, t):
    """J x J matrix P_st of the working model (clubSandwich ``get_P_array``, one pair of rows s, t)."""
    gdiag = np.array([g[s] @ g[t] for g in G])
    if len(H) == 1:
        P = -H[0][s].T @ H[0][t]
    else:
        H1, H2, H3 = H
        P = H3[s].T @ H3[t] - H1[s].T @ H2[t] - H2[s].T @ H1[t]
    P[np.diag_indices_from(P)] += gdiag  # P + diag(gdiag) without a second J x J array (the same values)
    return P


def _p_arrays(v: CRVcov) -> list[np.ndarray]:
    G, H = _gh(v)
    return [_p_pair(G, H, i, i) for i in range(G[0].shape[0])]





def _saddlepoint_p(t: float, P: np.ndarray) -> float:
    """Saddlepoint approximation to P(T^2 > t^2) for T = z / sqrt(sum_j lambda_j chi2_1 / sum lambda)
    (McCaffrey & Bell 2006; clubSandwich ``saddlepoint_pval``, root by R's uniroot at tol eps^0.25)."""
    eig = np.maximum(0.0, np.linalg.eigvalsh((P + P.T) / 2)[::-1])
    g = np.concatenate([[1.0], -t ** 2 * eig / eig.sum()])

    def s_eq(s):
        with np.errstate(divide="ignore"):
            return float(np.sum(g / (1 - 2 * g * s)))

    lo, hi = (1 / (2 * g.min()), 0.0) if t ** 2 < 1 else (0.0, 1 / (2 * g.max()))
    flo, fhi = s_eq(lo), s_eq(hi)
    if np.isnan(flo) or np.isnan(fhi) or flo * fhi > 0:
        raise ValueError("saddlepoint: the saddlepoint equation has no sign change on its interval")
    s = zeroin(s_eq, lo, hi, flo, fhi, np.finfo(float).eps ** 0.25)
    if abs(s) > 0.01:
        r = np.sign(s) * np.sqrt(np.sum(np.log(1 - 2 * g * s)))
        q = s * np.sqrt(2 * np.sum(g ** 2 / (1 - 2 * g * s) ** 2))
        return float(1 - stats.norm.cdf(r) - stats.norm.pdf(r) * (1 / r - 1 / q))
    return float(0.5 - np.sum(g ** 3) / (3 * np.sqrt(np.pi) * np.sum(g ** 2) ** 1.5))


#: above this many clusters the Satterthwaite df of an inverse-variance working model is computed
#: without the J x J matrix P (see :func:`_satterthwaite_df`)
DENSE_P_MAX_CLUSTERS = 2000


def _satterthwaite_df(v: CRVcov, C: np.ndarray | None = None) -> np.ndarray:
    """Satterthwaite df of each coefficient (or row of C): (tr P)^2 / sum(P^2).

    With the working model W^-1 (one H) and more than :data:`DENSE_P_MAX_CLUSTERS` clusters, P =
    diag(g) - A'A (A = H[i], u x J) is not formed: tr P = sum(g) - sum(A^2) and sum(P^2) =
    sum((g - a)^2) + ||A A'||_F^2 - sum(a^2), a = diag(A'A) -- the same quantity in O(J) memory
    instead of J x J (8 GB at J = 30,000); its rounding differs from the J x J sum in the last
    digits (relative ~1e-14). Up to that many clusters P is formed as clubSandwich does."""
    G, H = _gh(v)
    if C is not None:
        G = [C @ g for g in G]
        H = tuple(np.einsum("qp,puj->quj", C, h) for h in H)
    out = []
    J = len(G)
    for i in range(G[0].shape[0]):
        if len(H) == 1 and J > DENSE_P_MAX_CLUSTERS:
            g = np.array([gj[i] @ gj[i] for gj in G])
            A = H[0][i]  # u x J
            a = np.einsum("uj,uj->j", A, A)
            AA = A @ A.T
            tr = g.sum() - a.sum()
            ss = np.sum((g - a) ** 2) + np.sum(AA ** 2) - np.sum(a ** 2)
            out.append(tr ** 2 / ss)
            continue
        P = _p_pair(G, H, i, i)
        out.append(np.trace(P) ** 2 / np.sum(P ** 2))
    return np.array(out)


# --------------------------------------------------------------------------- coef_test / conf_int


def _warn_small_df(df, names, who):
    df = np.atleast_1d(df)
    small = [f"{n} (df = {d:.2f})" for n, d in zip(names, df) if np.isfinite(d) and d < SMALL_DF]
    if small:
        warnings.warn(f"{who}: degrees of freedom < 4 for {', '.join(small)}: p-values and confidence intervals "
                      "may be unreliable (Tipton 2015; too few clusters, or a coefficient informed by few of them)",
                      SmallDfWarning, stacklevel=3)


def _prepare(fit, cluster, vcov, who):
    m = _fit_model(fit)
    codes, labels = _clusters(cluster, m, who)
    if isinstance(vcov, CRVcov):
        if vcov.vcov.shape != (m.p, m.p) or vcov.n_clusters != len(labels):
            raise ValueError(f"{who}: vcov was computed for another model or clustering "
                             f"(p = {vcov.vcov.shape[0]}, J = {vcov.n_clusters}; this fit: p = {m.p}, J = {len(labels)})")
        v = vcov
    elif isinstance(vcov, str):
        v = _vcov(m, m.residuals, codes, labels, vcov, m.default_target(), None)
    else:
        raise TypeError(f"{who}: vcov must be one of {', '.join(TYPES)} or a CRVcov from vcov_cr(); got {type(vcov).__name__}")
    return m, v


def _df_for(test, v: CRVcov, m: WorkingModel, C=None):
    J = v.n_clusters
    n = m.p if C is None else C.shape[0]
    if test == "z":
        return np.full(n, np.inf)
    if test == "naive-t":
        return np.full(n, float(J - 1))
    if test == "naive-tp":
        return np.full(n, float(J - m.p))
    if test == "Satterthwaite":
        return _satterthwaite_df(v, C)
    raise ValueError(f"test must be one of {', '.join(COEF_TESTS)}; got {test!r}")


def _t_p(t, df):
    df = np.asarray(df, float)
    with np.errstate(invalid="ignore"):
        p = np.where(np.isinf(df), 2 * stats.norm.sf(np.abs(t)), 2 * stats.t.sf(np.abs(t), np.where(df > 0, df, np.nan)))
    return p


def _t_crit(level, df):
    df = np.asarray(df, float)
    q = 1 - (1 - level) / 2
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(df), stats.norm.ppf(q), stats.t.ppf(q, np.where(df > 0, df, np.nan)))


def _table_summary(title, frame: pd.DataFrame, fmt: dict) -> str:
    rows = [[str(i)] + [fmt.get(c, _fmt)(frame.loc[i, c]) for c in frame.columns] for i in frame.index]
    head = [""] + list(frame.columns)
    width = [max(len(r[j]) for r in rows + [head]) + 2 for j in range(len(head))]
    lines = [title, "", "".join(h.rjust(w) for h, w in zip(head, width))]
    lines += ["".join(x.rjust(w) for x, w in zip(r, width)) for r in rows]
    return "\n".join(lines)


def _df_fmt(d):
    return "Inf" if np.isinf(d) else f"{d:.2f}"


@dataclass(frozen=True, eq=False)
class CoefTestResult:
    """Cluster-robust t tests of the coefficients (clubSandwich ``coef_test``).

    Arrays over the coefficients ``coef``: ``beta``, ``se``, ``tval``
    (clubSandwich ``tstat``), ``df`` (``df_Satt`` / ``J - 1`` / ``J - p`` /
    ``inf``), ``pval`` (two-sided).  ``test``, ``type`` (the CR adjustment),
    ``n_clusters``.
    """

    coef: tuple
    beta: np.ndarray
    se: np.ndarray
    tval: np.ndarray
    df: np.ndarray
    pval: np.ndarray
    test: str
    type: str
    n_clusters: int

    def __post_init__(self):
        _freeze(self)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"coef": list(self.coef), "beta": self.beta, "se": self.se, "tval": self.tval,
                             "df": self.df, "pval": self.pval})

    def summary(self) -> str:
        f = self.to_frame().set_index("coef")
        return _table_summary(f"Cluster-robust t tests ({self.type}, {self.n_clusters} clusters, df: {self.test})", f,
                              {"pval": _fmt_p, "df": _df_fmt})


def coef_test(fit, cluster=None, vcov="CR2", test: str = "Satterthwaite") -> CoefTestResult:
    """Cluster-robust t tests of every coefficient (clubSandwich 0.5.8 ``coef_test``).

    ``fit``: a PoolResult, a fit exposing ``X``, ``yi``, ``W``/``M`` (``beta``),
    or a :class:`WorkingModel`; ``cluster``: one label per row (default the
    fit's ``cluster``); ``vcov``: a type of :data:`TYPES` or a :class:`CRVcov`;
    ``test``: ``"Satterthwaite"`` (df of Bell & McCaffrey 2002 / Tipton 2015 /
    Pustejovsky & Tipton 2018, eq. 11), ``"z"``, ``"naive-t"`` (J - 1),
    ``"naive-tp"`` (J - p), ``"saddlepoint"`` (McCaffrey & Bell 2006; ``df``
    NaN, the saddlepoint itself in ``saddlepoint``).  Warns (:class:`SmallDfWarning`) when a
    Satterthwaite df is below 4.
    """
    if test not in COEF_TESTS:
        raise ValueError(f"test must be one of {', '.join(COEF_TESTS)}; got {test!r}")
    m, v = _prepare(fit, cluster, vcov, "coef_test")
    res = _coef_test(m, v, test)
    if test == "Satterthwaite":
        _warn_small_df(res.df, m.coef_names, "coef_test")
    return res


def _coef_test(m: WorkingModel, v: CRVcov, test: str) -> CoefTestResult:
    se = v.se
    t = m.beta / se
    if test == "saddlepoint":
        pv = np.array([_saddlepoint_p(ti, P) for ti, P in zip(t, _p_arrays(v))])
        return CoefTestResult(coef=m.coef_names, beta=np.array(m.beta), se=se, tval=t, df=np.full(m.p, np.nan),
                              pval=pv, test=test, type=v.type, n_clusters=v.n_clusters)
    df = _df_for(test, v, m)
    return CoefTestResult(coef=m.coef_names, beta=np.array(m.beta), se=se, tval=t, df=df, pval=_t_p(t, df),
                          test=test, type=v.type, n_clusters=v.n_clusters)


@dataclass(frozen=True, eq=False)
class ConfIntResult:
    """Cluster-robust confidence intervals (clubSandwich ``conf_int``): arrays
    ``beta, se, df, ci_lb, ci_ub, pval`` over ``coef``; ``level``, ``test``, ``type``."""

    coef: tuple
    beta: np.ndarray
    se: np.ndarray
    df: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    pval: np.ndarray
    level: float
    test: str
    type: str

    def __post_init__(self):
        _freeze(self)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"coef": list(self.coef), "beta": self.beta, "se": self.se, "df": self.df,
                             "ci_lb": self.ci_lb, "ci_ub": self.ci_ub, "pval": self.pval})

    def summary(self) -> str:
        f = self.to_frame().set_index("coef")
        return _table_summary(f"Cluster-robust {100 * self.level:g}% confidence intervals ({self.type}, df: {self.test})",
                              f, {"pval": _fmt_p, "df": _df_fmt})


def conf_int(fit, cluster=None, vcov="CR2", level: float | None = None, test: str = "Satterthwaite") -> ConfIntResult:
    """``beta -/+ t_{df, 1-(1-level)/2} * se`` with the df of :func:`coef_test`
    (clubSandwich 0.5.8 ``conf_int``; ``level`` default the fit's, else 0.95;
    ``test`` one of :data:`CONF_TESTS`)."""
    if test not in CONF_TESTS:
        raise ValueError(f"test must be one of {', '.join(CONF_TESTS)} (a saddlepoint interval has no closed form); got {test!r}")
    m, v = _prepare(fit, cluster, vcov, "conf_int")
    level = m.level if level is None else level
    res = _conf_int(m, v, level, test)
    if test == "Satterthwaite":
        _warn_small_df(res.df, m.coef_names, "conf_int")
    return res


def _conf_int(m: WorkingModel, v: CRVcov, level, test: str) -> ConfIntResult:
    level = _checks.level_fraction(level)
    if test not in CONF_TESTS:
        raise ValueError(f"test must be one of {', '.join(CONF_TESTS)}; got {test!r}")
    se = v.se
    df = _df_for(test, v, m)
    crit = _t_crit(level, df)
    b = np.array(m.beta)
    return ConfIntResult(coef=m.coef_names, beta=b, se=se, df=df, ci_lb=b - crit * se, ci_ub=b + crit * se,
                         pval=_t_p(b / se, df), level=float(level), test=test, type=v.type)


# --------------------------------------------------------------------------- Wald tests


def constrain_zero(which, p: int, coef_names=None) -> np.ndarray:
    """q x p matrix testing that the coefficients ``which`` (0-based positions,
    names, or a boolean mask) are all 0 (clubSandwich ``constrain_zero``)."""
    if isinstance(which, (str, int, np.integer)):
        which = [which]
    which = list(which)
    if which and all(isinstance(w, (bool, np.bool_)) for w in which):
        if len(which) != p:
            raise ValueError(f"constraints: a boolean mask must have length p = {p}; got {len(which)}")
        pos = [i for i, w in enumerate(which) if w]
    else:
        pos = []
        for w in which:
            if isinstance(w, str):
                if coef_names is None or w not in coef_names:
                    raise ValueError(f"constraints: {w!r} is not a coefficient; valid: {', '.join(coef_names or ())}")
                pos.append(list(coef_names).index(w))
            elif isinstance(w, (int, np.integer)) and 0 <= w < p:
                pos.append(int(w))
            else:
                raise ValueError(f"constraints: positions must be integers 0..{p - 1} or coefficient names; got {w!r}")
    if not pos:
        raise ValueError("constraints: give at least one coefficient to test")
    return np.eye(p)[sorted(set(pos))]


@dataclass(frozen=True, eq=False)
class WaldTestResult:
    """Cluster-robust Wald test of ``C beta = 0`` (clubSandwich ``Wald_test``).

    ``test``, ``fstat`` (``delta Q / q``), ``delta``, ``df_num`` (q),
    ``df_denom``, ``pval``, ``q_stat`` (the Wald statistic Q), ``constraints``
    (the q x p matrix C), ``type``.
    """

    test: str
    fstat: float
    delta: float
    df_num: int
    df_denom: float
    pval: float
    q_stat: float
    type: str
    constraints: np.ndarray = field(repr=False, compare=False)

    def __post_init__(self):
        _freeze(self)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"test": self.test, "fstat": self.fstat, "delta": self.delta, "df_num": self.df_num,
                              "df_denom": self.df_denom, "pval": self.pval}])

    def summary(self) -> str:
        return (f"Cluster-robust Wald test ({self.type}, {self.test}): F({self.df_num}, {_df_fmt(self.df_denom)}) = "
                f"{_fmt(self.fstat)}, p-val {'< .0001' if _fmt_p(self.pval) == '<.0001' else '= ' + _fmt_p(self.pval)}")


def wald_test(fit, constraints=None, cluster=None, vcov="CR2", test: str = "HTZ") -> WaldTestResult:
    """Cluster-robust Wald test of ``C beta = 0`` (clubSandwich 0.5.8 ``Wald_test``).

    ``constraints``: a q x p matrix C, or coefficients (positions / names /
    mask) for :func:`constrain_zero`; default every coefficient but an
    intercept (metafor's ``btt``).  ``test``: ``"HTZ"`` (Pustejovsky &
    Tipton 2018: Hotelling T^2 with nu = q(q+1) / sum Var, the default),
    ``"HTA"``, ``"HTB"`` (Tipton & Pustejovsky 2015), ``"chi-sq"``,
    ``"Naive-F"`` (J - 1 denominator df), ``"Naive-Fp"`` (J - p).  Warns
    (:class:`SmallDfWarning`) when an HT denominator df is below 4.
    """
    if test not in WALD_TESTS:
        raise ValueError(f"test must be one of {', '.join(WALD_TESTS)}; got {test!r}")
    m, v = _prepare(fit, cluster, vcov, "wald_test")
    C = _constraint_matrix(constraints, m)
    return _wald(m, v, C, test, "wald_test")


def _btt(m: WorkingModel) -> list[int]:
    """metafor's default ``btt``: every coefficient but an intercept (a column of ones)."""
    icpt = [j for j in range(m.p) if np.all(m.X[:, j] == 1)]
    if icpt and m.p > 1:
        return [j for j in range(m.p) if j != icpt[0]]
    return list(range(m.p))


def _constraint_matrix(constraints, m: WorkingModel) -> np.ndarray:
    if constraints is None:
        return np.eye(m.p)[_btt(m)]
    if isinstance(constraints, (np.ndarray, pd.DataFrame)) and np.ndim(constraints) == 2:
        C = numbers(constraints, "constraints")
        if C.shape[1] != m.p or C.shape[0] == 0:
            raise ValueError(f"constraints must be a q x {m.p} matrix (p = coefficients); got shape {C.shape}")
        _finite(C, "constraints")
        if np.linalg.matrix_rank(C) < C.shape[0]:
            raise ValueError("constraints: the rows of C must be linearly independent")
        return C
    return constrain_zero(constraints, m.p, m.coef_names)


def _wald(m: WorkingModel, v: CRVcov, C: np.ndarray, test: str, who: str) -> WaldTestResult:
    q = C.shape[0]
    J = v.n_clusters
    cb = C @ m.beta
    Q = float(cb @ _inverse(C @ v.vcov @ C.T, "C vcov C'") @ cb)
    if test in ("chi-sq", "Naive-F", "Naive-Fp"):
        df = {"chi-sq": np.inf, "Naive-F": float(J - 1), "Naive-Fp": float(J - m.p)}[test]
        F = Q / q
        with np.errstate(invalid="ignore"):
            pv = stats.chi2.sf(Q, q) if test == "chi-sq" else (stats.f.sf(F, q, df) if df > 0 else np.nan)
        return WaldTestResult(test=test, fstat=F, delta=1.0, df_num=q, df_denom=df, pval=float(pv), q_stat=Q,
                              type=v.type, constraints=C)
    G, H = _gh(v)
    G = [C @ g for g in G]
    H = tuple(np.einsum("qp,puj->quj", C, h) for h in H)
    P = np.empty((q, q, J, J))
    for s in range(q):
        for t in range(s, q):
            P[s, t] = _p_pair(G, H, s, t)
            if t > s:
                P[t, s] = P[s, t].T
    Omega = np.trace(P, axis1=2, axis2=3)
    On = _mpow(Omega, -0.5)
    if test in ("EDF", "EDT"):
        return _wald_eigen(m, v, C, test, Q, P, On)
    Bjk = np.einsum("ab,bcjk,cd->adjk", On, P, On)
    if test == "HTZ":
        var = np.einsum("stjk,tsjk->st", Bjk, Bjk) + np.einsum("ssjk,ttjk->st", Bjk, Bjk)
        nu = q * (q + 1) / var.sum()
    else:
        cov = np.einsum("svjk,tujk->stuv", Bjk, Bjk) + np.einsum("sujk,tvjk->stuv", Bjk, Bjk)
        var = np.einsum("stst->st", cov)
        if test == "HTA":
            nu = 2 * var.sum() / np.sum(cov ** 2)
        else:  # HTB: the distinct elements only (clubSandwich's loop over s >= t, u <= s, v <= (u == s ? t : u))
            lower = np.zeros((q,) * 4, bool)
            for s in range(q):
                for t in range(s + 1):
                    for u in range(s + 1):
                        for w in range((t if u == s else u) + 1):
                            lower[s, t, u, w] = True
            nu = 2 * var[np.tril_indices(q)].sum() / np.sum(cov[lower] ** 2)
    delta = max((nu - q + 1) / nu, 0.0)
    df = nu - q + 1
    F = delta * Q / q
    pv = float(stats.f.sf(F, q, df)) if df > 0 else np.nan
    if df < SMALL_DF:
        warnings.warn(f"{who}: denominator degrees of freedom < 4 ({test}: {df:.2f}): the p-value may be "
                      "unreliable (Tipton & Pustejovsky 2015)", SmallDfWarning, stacklevel=3)
    return WaldTestResult(test=test, fstat=float(F), delta=float(delta), df_num=q, df_denom=float(df), pval=pv,
                          q_stat=Q, type=v.type, constraints=C)


def _wald_eigen(m, v, C, test, Q, P, On) -> WaldTestResult:
    """EDF / EDT tests from the spectral decomposition of the standardised C V C' (Tipton &
    Pustejovsky 2015, section 3; clubSandwich ``Wald_testing``, "EDF"/"EDT")."""
    q = C.shape[0]
    S = On @ C @ v.vcov @ C.T @ On.T
    vals, vecs = np.linalg.eigh((S + S.T) / 2)
    xs = vecs.T @ On
    df_eig = 1 / np.einsum("ia,abjk,ib->ijk", xs, P, xs).__pow__(2).sum(axis=(1, 2))
    if test == "EDF":
        df4 = np.maximum(df_eig, 4.1)
        EQ = np.sum(df4 / (df4 - 2))
        VQ = 2 * np.sum(df4 ** 2 * (df4 - 1) / ((df4 - 2) ** 2 * (df4 - 4)))
        if q * VQ > 2 * EQ ** 2:
            delta = (EQ ** 2 * (q - 2) + 2 * q * VQ) / (EQ * (VQ + EQ ** 2))
            df = 4 + 2 * EQ ** 2 * (q + 2) / (q * VQ - 2 * EQ ** 2)
        else:
            delta, df = q / EQ, np.inf
        F = delta * Q / q
        pv = stats.chi2.sf(q * F, q) if np.isinf(df) else stats.f.sf(F, q, df)
        return WaldTestResult(test=test, fstat=float(F), delta=float(delta), df_num=q, df_denom=float(df),
                              pval=float(pv), q_stat=Q, type=v.type, constraints=C)
    t = xs @ C @ m.beta / np.sqrt(vals)
    a = df_eig - 0.5
    b = 48 * a ** 2
    c = np.sqrt(a * np.log1p(t ** 2 / df_eig))
    z = c + (c ** 3 + 3 * c) / b - (4 * c ** 7 + 33 * c ** 5 + 240 * c ** 3 + 855 * c) / (10 * b ** 2 + 8 * b * c ** 4 + 1000 * b)
    F = float(np.mean(z ** 2))
    return WaldTestResult(test=test, fstat=F, delta=1.0, df_num=q, df_denom=np.inf, pval=float(stats.chi2.sf(q * F, q)),
                          q_stat=Q, type=v.type, constraints=C)


# --------------------------------------------------------------------------- metafor robust()


@dataclass(frozen=True, eq=False)
class RobustResult:
    """metafor ``robust()`` of a fit: cluster-robust tests and intervals.

    Arrays over ``coef``: ``beta``, ``se``, ``tval`` (metafor ``zval``), ``df``
    (``n - p`` each, or Satterthwaite with clubSandwich), ``pval``, ``ci_lb``,
    ``ci_ub``; ``vb`` (p x p robust variance); ``qm, qm_df, qm_p``: the
    omnibus test of the non-intercept coefficients (metafor ``QM``/``QMdf``/
    ``QMp``: F with ``(m, n - p)`` df, or the HTZ test with clubSandwich, or
    ``t^2`` for an intercept-only model, ``int_only``); ``n`` clusters, ``k`` rows, ``p``
    coefficients, ``vbest`` ("CR1", "CR0", "CR1.S1", "CR1.S2", or the
    clubSandwich type), ``method`` ("default" / "clubSandwich"), ``level``,
    ``cluster_sizes`` (label -> number of rows).
    """

    coef: tuple
    beta: np.ndarray
    se: np.ndarray
    tval: np.ndarray
    df: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    vb: np.ndarray = field(repr=False)
    int_only: bool
    qm: float
    qm_df: tuple
    qm_p: float
    n: int
    k: int
    p: int
    vbest: str
    method: str
    level: float
    cluster_sizes: dict = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self):
        _freeze(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per coefficient: ``coef, beta, se, tval, df, pval, ci_lb, ci_ub``."""
        return pd.DataFrame({"coef": list(self.coef), "beta": self.beta, "se": self.se, "tval": self.tval,
                             "df": self.df, "pval": self.pval, "ci_lb": self.ci_lb, "ci_ub": self.ci_ub})

    def summary(self) -> str:
        """metafor's ``print.robust.rma`` order: sizes, omnibus test, coefficient table, footnote."""
        sizes = np.array(list(self.cluster_sizes.values()))
        lines = [f"Number of estimates:   {self.k}", f"Number of clusters:    {self.n}"]
        if sizes.size:
            lines.append(f"Estimates per cluster: {sizes.min()}-{sizes.max()} (mean: {sizes.mean():.2f}, "
                         f"median: {np.median(sizes):g})")
        lines.append("")
        if not self.int_only:
            qp = _fmt_p(self.qm_p)
            lines += [f"Test of Moderators:", f"F(df1 = {self.qm_df[0]:g}, df2 = {_df_fmt(self.qm_df[1])}) = "
                      f"{_fmt(self.qm)}, p-val {'< .0001' if qp == '<.0001' else '= ' + qp}", ""]
        f = self.to_frame().set_index("coef").rename(columns={"beta": "estimate", "ci_lb": "ci.lb", "ci_ub": "ci.ub"})
        lines.append(_table_summary("Model Results:", f, {"pval": _fmt_p, "df": _df_fmt}))
        if self.method == "clubSandwich":
            foot = (f"results based on cluster-robust inference (var-cov estimator: {self.vbest}, approx t-tests and "
                    f"confidence intervals, df: Satterthwaite approx)")
        else:
            foot = (f"results based on cluster-robust inference (var-cov estimator: {self.vbest}, approx t/F-tests "
                    f"and confidence intervals, df: residual method)")
        return "\n".join(lines + ["", foot])


def robust(fit, cluster=None, adjust=True, clubSandwich: bool = False, *, vcov: str = "CR2",
           coef_test: str = "Satterthwaite", conf_test: str | None = None, wald_test: str = "HTZ") -> RobustResult:
    """Cluster-robust tests and confidence intervals for a fitted model (metafor 3.8.1 ``robust``).

    ``adjust``: True (``vb * n / (n - p)``, "CR1": Hedges, Tipton & Johnson
    2010), False ("CR0"), ``"Stata"``/``"Stata1"`` (``n/(n-1) (k-1)/(k-p)``),
    ``"Stata2"`` (``n/(n-1)``); t tests and intervals on ``n - p`` df, F test of
    the non-intercept coefficients on ``(m, n - p)`` df.  The bread is
    ``(X'WX)^-1 X'W`` with the fit's full ``W`` (metafor ``robust.rma.mv``).

    ``clubSandwich=True``: ``vcov`` (default CR2) by :func:`vcov_cr`, t tests
    by :func:`coef_test` (``coef_test``, default Satterthwaite), intervals by
    :func:`conf_int` (``conf_test``, default = ``coef_test``; for ``"saddlepoint"``
    Satterthwaite with a warning, as metafor), the omnibus test
    by :func:`wald_test` (``wald_test``, default HTZ; for an intercept-only
    model ``t^2`` with ``(1, df)``), as metafor delegates to clubSandwich.

    ``ValueError`` when the number of clusters does not exceed the number of
    coefficients (metafor's check).  A PoolResult fitted with ``test="hksj"``
    is treated like its z fit: the bread is ``(X'WX)^-1``, without the
    Knapp-Hartung factor that metafor 3.8.1 carries into it through ``x$vb``.
    """
    m = _fit_model(fit)
    codes, labels = _clusters(cluster, m, "robust")
    n = len(labels)
    dfs = n - m.p
    if dfs <= 0:
        raise ValueError(f"robust: number of clusters ({n}) must be larger than the number of fixed effects ({m.p})")
    level = m.level
    btt = _btt(m)
    int_only = m.p == 1 and np.all(m.X[:, 0] == 1)
    sizes = {lab: int(np.sum(codes == j)) for j, lab in enumerate(labels)}
    b = np.array(m.beta)
    if clubSandwich:
        if vcov not in TYPES:
            raise ValueError(f"vcov must be one of {', '.join(TYPES)}; got {vcov!r}")
        if conf_test is None:
            conf_test = coef_test
            if conf_test == "saddlepoint":  # metafor: "Cannot use 'saddlepoint' for conf_test() - using 'Satterthwaite' instead."
                conf_test = "Satterthwaite"
                warnings.warn("robust: cannot use 'saddlepoint' for the confidence intervals; using 'Satterthwaite' "
                              "instead (as metafor)", UserWarning, stacklevel=2)
        v = _vcov(m, m.residuals, codes, labels, vcov, m.default_target(), None)
        if coef_test not in COEF_TESTS:
            raise ValueError(f"coef_test must be one of {', '.join(COEF_TESTS)}; got {coef_test!r}")
        if wald_test not in WALD_TESTS:
            raise ValueError(f"wald_test must be one of {', '.join(WALD_TESTS)}; got {wald_test!r}")
        ct = _coef_test(m, v, coef_test)
        if coef_test == "Satterthwaite":
            _warn_small_df(ct.df, m.coef_names, "robust")
        ci = _conf_int(m, v, level, conf_test)
        wt = None if int_only else _wald(m, v, np.eye(m.p)[btt], wald_test, "robust")
        if int_only:
            qm, qm_df, qm_p = max(0.0, float(ct.tval[0] ** 2)), (1, float(ct.df[0])), float(ct.pval[0])
        else:
            qm, qm_df, qm_p = max(0.0, wt.fstat), (wt.df_num, wt.df_denom), wt.pval
        return RobustResult(coef=m.coef_names, beta=b, se=ct.se, tval=ct.tval, df=ct.df, pval=ct.pval, ci_lb=ci.ci_lb,
                            ci_ub=ci.ci_ub, vb=v.vcov, int_only=bool(int_only), qm=qm, qm_df=qm_df, qm_p=qm_p, n=n, k=m.k, p=m.p, vbest=vcov,
                            method="clubSandwich", level=level, cluster_sizes=sizes)
    X, W = m.X, m.W
    bread = _inverse(X.T @ W @ X, "X'WX") @ X.T @ W  # p x k
    e = m.residuals
    vb = np.zeros((m.p, m.p))
    for j in range(n):
        c = bread[:, codes == j] @ e[codes == j]
        vb += np.outer(c, c)
    if adjust is True:
        vb, vbest = vb * n / dfs, "CR1"
    elif adjust is False:
        vbest = "CR0"
    elif adjust in ("Stata", "Stata1"):
        vb, vbest = vb * (n / (n - 1) * (m.k - 1) / (m.k - m.p)), "CR1.S1"
    elif adjust == "Stata2":
        vb, vbest = vb * (n / (n - 1)), "CR1.S2"
    else:
        raise ValueError(f"adjust must be True, False, 'Stata', 'Stata1' or 'Stata2'; got {adjust!r}")
    vb = (vb + vb.T) / 2
    se = np.sqrt(np.diag(vb))
    t = b / se
    df = np.full(m.p, float(dfs))
    crit = stats.t.isf((1 - level) / 2, dfs)
    mm = len(btt)
    bb = b[btt]
    try:
        qm = float(bb @ _inverse(vb[np.ix_(btt, btt)], "vb") @ bb) / mm
        qm_p = float(stats.f.sf(qm, mm, dfs))
    except ValueError:
        qm, qm_p = np.nan, np.nan
    return RobustResult(coef=m.coef_names, beta=b, se=se, tval=t, df=df, pval=2 * stats.t.sf(np.abs(t), dfs),
                        ci_lb=b - crit * se, ci_ub=b + crit * se, vb=vb, int_only=bool(int_only), qm=qm, qm_df=(mm, dfs), qm_p=qm_p, n=n, k=m.k,
                        p=m.p, vbest=vbest, method="default", level=level, cluster_sizes=sizes)
