"""Vectorised fixed- and random-effects estimators: ONE implementation shared
by ``meta.pool.pool`` (one row), ``leave_one_out``, ``cumulative``,
``subgroups`` and ``pool_many`` (many rows).

Every function works on 2-D arrays of shape ``(n, m)``: up to ``n`` studies
(axis 0) for each of ``m`` analyses (axis 1).  Studies run down the columns so
that per-analysis quantities (tau2, the estimate) broadcast along the long,
contiguous axis and column sums are sums of whole rows: this is what makes
``pool_many`` fast.  A missing study (padding) has ``y = 0`` and ``v = inf``,
so its weight ``1 / (v + tau2)`` is exactly 0 and it drops out of every
weighted sum; ``mask`` (True where a study exists) is only needed where an
unweighted sum is taken.

Formulas (intercept-only model of metafor 3.8 ``rma.uni``; Viechtbauer 2010,
J Stat Softw 36(3)):

* weights ``w_i = 1 / (v_i + tau2)``, estimate ``sum(w y) / sum(w)``,
  ``se = sqrt(1 / sum(w))`` (inverse-variance method, e.g. Borenstein et al.
  2009, ch. 11-12);
* Cochran's ``Q = sum(w0 (y - est0)^2)`` with ``w0 = 1 / v``;
* DerSimonian & Laird (1986):
  ``tau2 = max(0, (Q - (k-1)) / (sum(w0) - sum(w0^2)/sum(w0)))``;
* Hedges (1983) "HE", Hunter & Schmidt "HS", Sidik & Jonkman (2005) "SJ":
  closed forms as metafor 3.8 (see :func:`tau2_he`, :func:`tau2_hs`,
  :func:`tau2_sj`), truncated at 0;
* REML and ML (Viechtbauer 2005, eqs. 8-12): the global maximiser of the
  restricted (full) log-likelihood over ``tau2 >= 0``.  The score
  (REML ``y'PPy - tr(P)`` with ``y'PPy = sum(w^2 (y - est)^2)``,
  ``tr(P) = sum(w) - sum(w^2)/sum(w)``; ML ``y'PPy - sum(w)``) is scanned
  on a log grid up to a proven upper bound of every root; each sign change
  + to - (a local maximum) is solved by Newton steps with the observed
  information (Fisher's where that is not positive), bisection as
  safeguard (Press et al. 2007, ``rtsafe``), brentq as last resort; the
  highest of these and the boundary 0 wins (:func:`tau2_mle`).  metafor
  instead runs Fisher scoring from the HE estimate and can stop at 0 below
  a higher interior maximum;
* Paule & Mandel (1982) "PM" and empirical Bayes (Morris 1983) "EB": root
  of the generalised ``Q(tau2) = k - 1``, with ``Q(tau2) = sum(w (y -
  est)^2)`` strictly decreasing in tau2 (so the root is unique) and
  ``Q(var(y)) <= k - 1``, so the root is bracketed in ``[0, var(y)]``;
  Newton steps (``dQ/dtau2 = -sum(w^2 (y - est)^2)``, DerSimonian & Kacker
  2007) kept inside the bracket, brentq as fallback; 0 when
  ``Q(0) <= k - 1`` (metafor's rule);
* tests (metafor 3.8.1 ``rma.uni(test=)``; all fall back to z for k = 1, as
  metafor): ``"z"`` (Wald, normal); ``"hksj"`` = metafor ``"knha"`` (Knapp &
  Hartung 2003): ``se^2 = s2w / sum(w)``, ``s2w = sum(w (y - est)^2) / (k - 1)``
  not truncated, t with ``k - 1`` df; where the sum is below machine
  epsilon (effects identical up to rounding) metafor sets ``s2w = 0`` and
  reports ``se = 0, p = 0``: here se, the test, p and the intervals are NaN
  with a RuntimeWarning (:func:`warn_hksj_no_information`: no information); ``"adhoc"`` (metafor ``"adhoc"``; Knapp & Hartung 2003): the same with ``s2w`` replaced by ``max(1, s2w)``, so the CI is never
  narrower than the one from the unadjusted variance; ``"t"`` (metafor
  ``"t"``): the unadjusted se, t with ``k - 1`` df;
* ``I2``, ``H2`` as metafor: FE model from Q (``I2 = max(0, 100 (Q - (k-1)) / Q)``,
  ``H2 = Q / (k-1)``); random-effects models from tau2 and the typical
  within-study variance ``s2 = (k-1) sum(w0) / (sum(w0)^2 - sum(w0^2))``
  (Higgins & Thompson 2002): ``I2 = 100 tau2 / (s2 + tau2)``, ``H2 = tau2/s2 + 1``;
* prediction interval ``est +- crit sqrt(se^2 + tau2)``, named as metafor
  >= 4.0 ``predict.rma(pi.type=)`` names them (read from metafor's
  ``R/predict.rma.r``): ``pi="default"`` (alias ``"z"``): ``crit`` of the
  test (normal for ``"z"``, t with ``k-1`` df otherwise); ``"simple"``:
  normal, ``est +- z tau`` (no se term); ``"t"``: t with ``k-1`` df whatever
  the test; ``"riley"``: t with ``k - 1 - (number of variance parameters)``
  df (``k-2`` for random-effects models, ``k-1`` for FE); both with df
  raised to at least 1, as metafor.  ``"higgins"`` (our name): Higgins,
  Thompson & Spiegelhalter (2009), t with ``k-2`` df, NaN when ``k < 3``.
"""

from __future__ import annotations

import functools
import math
import statistics

import numpy as np
from meta import _formulas as _f
from meta import _lazy

METHODS = ("FE", "DL", "REML", "PM", "ML", "HE", "HS", "SJ", "EB")  # canonical names, metafor's spelling
METHOD_ALIASES = {"EE": "FE", "CE": "FE"}  # metafor 3.8: equal / common effects = FE
NEEDS_MASK = frozenset({"REML", "PM", "ML", "HE", "SJ", "EB"})  # fit_core needs ``mask`` for these
TESTS = ("z", "hksj", "adhoc", "t")
TEST_ALIASES = {"knha": "hksj"}  # metafor's name
ADJUSTED_TESTS = ("hksj", "adhoc")  # se multiplied by sqrt(s2w)
PIS = ("default", "simple", "t", "riley", "higgins")
PI_ALIASES = {"z": "default"}  # our name before metafor-4 names

MAXITER = 100  # Fisher-scoring / Newton steps before the brentq fallback
_RTOL = 1e-12  # convergence on tau2, relative to (tau2 + mean within-study variance)
_SQRT1_2 = math.sqrt(0.5)


# --------------------------------------------------------------------------- helpers


def _one_column(a) -> bool:
    """Whether ``a`` is one analysis as an ``(n, 1)`` array."""
    return a.ndim == 2 and a.shape[1] == 1


def _twice(a):
    """An ``(n, 1)`` array as ``(n, 2)``, the column twice.  numpy sums one
    column (a contiguous run) pairwise in 8 partial sums, but several
    columns of a C-ordered array study by study, in order; summed as two
    columns, a lone analysis gets the bits it gets among others (so an
    analysis's result does not depend on the analyses fitted with it:
    pool_many's blocks, Dask chunks, the iterations in which the other
    analyses of a block have converged)."""
    return np.concatenate((a, a), axis=1)


def _csum(a: np.ndarray) -> np.ndarray:
    """Sum over the studies (axis 0) of each analysis: a plain ufunc
    reduction.  Not ``ones @ a``: OpenBLAS runs that product on several
    threads above ~9,000 cells, and on a loaded 2-core machine the threads
    wait for each other (13 ms instead of 0.06 ms per call measured on a
    2,000 x 262 block, benchmarks/README.md).  One column: see :func:`_twice`."""
    if _one_column(a):
        return np.add.reduce(_twice(a), axis=0)[:1]
    return np.add.reduce(a, axis=0)


def _dot(a, b):
    """``sum(a * b)`` over the studies of each analysis, in one pass (no
    temporary: ~25 % faster than the product followed by :func:`_csum`).
    One column: see :func:`_twice`."""
    if _one_column(a) and _one_column(b):
        return np.einsum("ij,ij->j", _twice(a), _twice(b))[:1]
    return np.einsum("ij,ij->j", a, b)


def _dot3(a, b, c):
    """``sum(a * b * c)`` over the studies of each analysis, in one pass: the
    same products in the same order as ``_dot(a * b, c)`` (so the same bits),
    without writing ``a * b``.  One column: see :func:`_twice`."""
    if _one_column(a) and _one_column(b) and _one_column(c):
        return np.einsum("ij,ij,ij->j", _twice(a), _twice(b), _twice(c))[:1]
    return np.einsum("ij,ij,ij->j", a, b, c)


def _sums(y, v, tau2, w=None):
    """Weights, their sum and the weighted mean per analysis.  ``w`` is an
    optional array of the shape of ``y`` to write the weights into (saves an
    allocation)."""
    w = np.add(v, tau2, out=w)
    np.divide(1.0, w, out=w)  # same bits as np.reciprocal, ~2x faster here
    sw = _csum(w)
    est = _dot(w, y) / sw
    return w, sw, est


GROUP_MIN = 2048  # erfc_grouped groups arrays at least this long


def erfc_grouped(x, out=None):
    """:func:`scipy.special.erfc` of ``x`` (1-D), element for element the
    same values, with the arguments below 1 evaluated together and the rest
    together.  scipy's erfc (Cephes) takes one branch below 1 (``1 -
    erf``) and another from 1 up (rational function times ``exp(-x^2)``);
    on a random mix of both, as p-values of many analyses are, the CPU
    mispredicts the branch for about half of the values, which doubles the
    time (220 vs 108 us for 20,000 values measured on our 2-core VM; grouped
    145 us, gathers included).  ``out``: array for the result (may be
    ``x``)."""
    special = _lazy.special()
    if x.size < GROUP_MIN:
        return special.erfc(x, out=out)
    low = x < 1.0
    order = np.concatenate((np.flatnonzero(low), np.flatnonzero(~low)))
    grouped = np.take(x, order)
    special.erfc(grouped, out=grouped)
    if out is None:
        out = np.empty_like(x)
    out[order] = grouped
    return out


def norm_sf2(z):
    """Two-sided normal p-value ``2 (1 - Phi(|z|))`` (:func:`erfc_grouped` on 1-D arrays)."""
    x = _f.z_arg(z)
    return erfc_grouped(x, out=x) if np.ndim(x) == 1 else _lazy.special().erfc(x)


def _chi2_table(dmax):
    """Coefficients of the closed forms of :func:`chi2_sf` as polynomials in
    ``h = x/2``: row ``j`` holds the coefficient of ``h^j`` for each df
    ``0..dmax`` (column), ``1/j!`` for even df (``j < df/2``) and
    ``(2/sqrt(pi)) 2^j / (1 3 ... (2j+1))`` for odd df (``j < (df-1)/2``)."""
    jmax = max(1, dmax // 2)
    tab = np.zeros((jmax, dmax + 1))
    for d in range(1, dmax + 1):
        if d % 2 == 0:
            c = 1.0
            for j in range(d // 2):
                tab[j, d] = c
                c /= j + 1
        else:
            c = 2.0 / math.sqrt(math.pi)
            for j in range((d - 1) // 2):
                tab[j, d] = c
                c *= 2.0 / (2 * j + 3)
    return tab


CHI2_TABLE = _chi2_table(200)  # also read by meta._fast


CHI2_CELLS = 2**18  # coefficient cells (analyses x terms) chi2_sf gathers at once without a work space (2 MB)


def chi2_sf(x, df, *, out=None, work=None):
    """Upper tail of the chi-square distribution with integer ``df >= 1``.

    Closed forms (Abramowitz & Stegun 1964, 26.4.4-26.4.5), evaluated for all
    analyses at once and much faster than the incomplete gamma function:
    even ``df``: ``exp(-x/2) sum_{j < df/2} (x/2)^j / j!``; odd ``df``:
    ``2 (1 - Phi(sqrt x)) + sqrt(2x/pi) exp(-x/2) sum_{j=1}^{(df-1)/2} x^(j-1) / (1 3 ... (2j-1))``.
    Both sums are evaluated as polynomials in ``x/2`` by Horner's rule with
    per-df coefficients (all positive, so no cancellation; gathered for all
    analyses in one call), and the normal tail ``erfc(sqrt(x/2))`` only for
    the odd df.  ``df > 200`` (or an overflowing series) uses
    :func:`scipy.special.chdtrc`.

    ``out`` (1-D ``x``): array for the result; ``work``: a float array of
    shape ``(r, len(x))`` (or wider) whose rows serve as temporaries where
    there are enough of them (``pool_many`` keeps one between calls: fresh
    memory costs page faults).  Neither changes a bit of the result.
    """
    x = np.asarray(x, dtype=float)
    d = np.asarray(df, dtype=np.int64)
    if x.shape != d.shape:
        x, d = np.broadcast_arrays(x, d)
    shape = x.shape
    if x.ndim != 1:
        x, d = x.ravel(), d.ravel()  # flat: the odd-df cells are picked by position
        out = None
    m = x.size
    dmax = int(d.max(initial=1))
    big = d > 200 if dmax > 200 else None
    dd = np.where(big, 1, d) if big is not None else d
    jmax = max(1, (dmax if big is None else int(dd.max(initial=1))) // 2)  # terms of the longest sum
    if work is None and m > 1 and jmax * m > CHI2_CELLS:
        # the coefficients are a jmax x m array: in slices of analyses beyond CHI2_CELLS cells (at
        # df 200 and m = 10^5 it would be 80 MB); each value is computed alone, so the bits are the same
        step = max(1, CHI2_CELLS // jmax)
        res = np.empty(m) if out is None else out
        for a in range(0, m, step):
            chi2_sf(x[a : a + step], d[a : a + step], out=res[a : a + step])
        return res.reshape(shape) if shape else res[0]
    # work rows: x/2, the jmax coefficients, three for the odd df
    rows = iter(work[:, :m]) if work is not None and work.shape[0] >= jmax + 4 else None

    def buf(size):
        return np.empty(size) if rows is None else next(rows)[:size]

    h = np.multiply(x, 0.5, out=buf(m))
    with np.errstate(over="ignore", invalid="ignore"):
        # each analysis's coefficients (jmax x m), rows read by chi2_poly as
        # tab[j][:] (views: the rows are this call's to overwrite)
        coef = np.take(CHI2_TABLE[:jmax], dd, axis=1, mode="clip",
                       out=None if rows is None else work[1 : 1 + jmax, :m])
        if rows is not None:
            for _ in range(jmax):
                next(rows)
        acc = _f.chi2_poly(coef, h, slice(None), jmax)
        odd = np.flatnonzero(np.bitwise_and(dd, 1).astype(bool))  # nonzero on bools: ~4x faster than on ints
        if odd.size:
            # _f.chi2_sf_odd(acc[odd], ho, sh, erfc(sh)) on the odd df, in the buffers
            ho = np.take(h, odd, out=buf(odd.size), mode="clip")
            sh = np.sqrt(ho, out=buf(odd.size))
            podd = np.take(acc, odd, out=buf(odd.size), mode="clip")
            podd *= sh
            e = np.negative(ho, out=ho)
            podd *= np.exp(e, out=e)
            podd += erfc_grouped(sh, out=sh)
        # _f.chi2_sf_even(acc, h): acc exp(-h), in the buffers
        e = np.negative(h, out=h)
        res = np.multiply(acc, np.exp(e, out=e), out=out)
        if odd.size:
            res[odd] = podd
        if big is not None or not np.isfinite(np.add.reduce(res)):  # one pass when every value is finite
            redo = ~np.isfinite(res) if big is None else big | ~np.isfinite(res)
            res[redo] = _lazy.special().chdtrc(d[redo], x[redo])
    return res.reshape(shape) if shape else res[0]


def _fortran(a) -> bool:
    """Whether ``a`` is a Fortran-ordered block of several analyses (each
    analysis's studies contiguous: the copies on which :func:`tau2_mle`
    scans blocks with many studies per analysis, :func:`_scan_fortran`)."""
    return a.ndim == 2 and a.flags.f_contiguous and not a.flags.c_contiguous


def _columns(a, idx):
    """The columns ``idx`` (positions, or a bool mask) of ``a`` (1-D: its
    entries), C-ordered; ``a`` itself when a bool mask keeps every column.
    (``a[:, idx]`` is Fortran-ordered: every sum over the studies would then
    run down 8-byte-strided columns, measured ~4x slower.)  A Fortran-ordered
    ``a`` (:func:`_fortran`) gives Fortran-ordered columns: copies of whole
    contiguous columns."""
    if _fortran(a):
        if idx.dtype == bool:
            return a if idx.all() else np.compress(idx, a.T, axis=0).T
        return np.take(a.T, idx, axis=0).T
    if idx.dtype == bool:
        return np.ascontiguousarray(a) if idx.all() else np.compress(idx, a, axis=-1)
    return np.take(a, idx, axis=-1)


def _by_df(fun, df):
    """Evaluate ``fun(d)`` once per distinct df and spread it over the analyses."""
    u, inv = np.unique(df, return_inverse=True)
    return np.array([fun(d) for d in u], dtype=float)[inv]


# --------------------------------------------------------------------------- tau2


def tau2_dl(q, k, sw0, sw0sq):
    """DerSimonian & Laird (1986) moment estimator, truncated at 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = _f.tau2_dl(q, k - 1, sw0, sw0sq)
    return np.where(k > 1, t, 0.0)


def tau2_hs(q, k, sw0):
    """Hunter & Schmidt (2004) estimator as metafor 3.8 ``method="HS"``:
    ``max(0, (Q - k) / sum(1/v))`` (Viechtbauer et al. 2015, Res Synth
    Methods 6:306, eq. 7; note ``k``, not ``k - 1``)."""
    return np.where(k > 1, np.maximum((q - k) / sw0, 0.0), 0.0)


def _centred(y, mask, k):
    """``y - ybar`` (unweighted mean) at the studies, 0 at padding."""
    ybar = _csum(y) / k
    return np.where(mask, y - ybar, 0.0)


def tau2_he(y, v, mask, k):
    """Hedges (1983) estimator, truncated at 0 (metafor ``method="HE"``):
    ``(sum((y - ybar)^2) - (k-1)/k sum(v)) / (k - 1)`` (Viechtbauer 2005, eq. 6)."""
    d = _centred(y, mask, k)
    rss = _csum(d * d)
    sv = _csum(np.where(mask, v, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (rss - (k - 1) / k * sv) / (k - 1)
    return np.where(k > 1, np.maximum(t, 0.0), 0.0)


def tau2_sj(y, v, mask, k):
    """Sidik & Jonkman (2005, J Biopharm Stat 15:823) estimator with
    metafor's default start ``tau2_0 = sum((y - ybar)^2) / k``:
    ``tau2 = tau2_0 sum(w (y - est)^2) / (k - 1)``, ``w = 1 / (v + tau2_0)``."""
    d = _centred(y, mask, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        t0 = _csum(d * d) / k
        w, sw, est = _sums(y, v, t0)
        r = y - est
        t = t0 * _dot(w * r, r) / (k - 1)
    return np.where(k > 1, np.maximum(t, 0.0), 0.0)


def reml_loglik(y, v, mask, tau2, ml=False, work=None):
    """Restricted log-likelihood up to the constant ``-(k-1)/2 log(2 pi)``:
    ``-1/2 [sum log(v + tau2) + log sum(w) + sum(w (y - est)^2)]``
    (Viechtbauer 2005, eq. 10; metafor adds ``+ 1/2 log k``); with ``ml``
    the log-likelihood up to ``-k/2 log(2 pi)``, without the ``log sum(w)``
    term (Viechtbauer 2005, eq. 8; metafor's constant exactly).  ``work``:
    three arrays shaped like ``y`` for the temporaries; the same bits either way."""
    bw, br, bl = (None, None, None) if work is None else work
    w, sw, est = _sums(y, v, tau2, bw)
    r = np.subtract(y, est, out=br)
    logw = np.zeros_like(w) if bl is None else bl
    if bl is not None:
        logw.fill(0.0)
    np.log(w, out=logw, where=mask)
    slog = _csum(logw)
    wrr = np.multiply(w, r, out=logw)
    wrr *= r
    return -0.5 * (-slog + (0.0 if ml else np.log(sw)) + _csum(wrr))


def reml_score(y, v, tau2, info=False, ml=False, work=None):
    """REML score ``y'PPy - tr(P)`` (twice the derivative of the restricted
    log-likelihood) and, if ``info``, the information used for the step: the
    observed information ``2 y'PPPy - tr(PP)`` where it is positive (Newton),
    else the Fisher information
    ``tr(PP) = sum(w^2) - 2 sum(w^3)/sum(w) + (sum(w^2)/sum(w))^2``.
    With ``ml`` the ML score ``y'PPy - sum(w)`` and information
    ``2 y'PPPy - sum(w^2)`` (Newton) or ``sum(w^2)`` (Fisher; Viechtbauer
    2005, eq. 9).  ``work``: three arrays shaped like ``y`` for the
    temporaries (:func:`tau2_mle`'s grid scan reuses them: fresh memory
    costs page faults); the same bits either way."""
    bw, bwr, bw2 = (None, None, None) if work is None else work
    w, sw, est = _sums(y, v, tau2, bw)
    wr = np.subtract(y, est, out=bwr)
    wr *= w  # u = Py = w (y - est)
    w2 = np.multiply(w, w, out=bw2)
    sw2 = _csum(w2)
    score = _csum(np.square(wr, out=w2 if not info else None)) - (sw if ml else sw - sw2 / sw)
    if not info:
        return score
    if ml:
        fisher = sw2
    else:
        sw3 = _csum(np.multiply(w2, w, out=w2))
        fisher = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
    # observed information -d(score)/dtau2 = 2 y'PPPy - fisher, with
    # y'PPPy = u'Pu = sum(w u^2) - sum(w u)^2 / sum(w)
    wu = np.multiply(wr, w, out=w2)
    upu = _csum(wu * wr) - _csum(wu) ** 2 / sw
    obs = 2.0 * upu - fisher
    return score, np.where(obs > 0, obs, fisher)


def _scale(v, mask, k):
    """Mean within-study variance of each analysis, for relative tolerances
    (without padding, ``mask`` all True, the sum of ``v`` itself: the same bits)."""
    return _csum(v if mask.all() else np.where(mask, v, 0.0)) / np.maximum(k, 1)


def _bracketed_root(fun, y, v, lo, hi, scale, maxiter=MAXITER, aux=None):
    """Root of a function ``f`` with ``f(lo) > 0 >= f(hi)`` in each column.

    ``fun(y, v, t)`` (``fun(y, v, t, aux)`` if ``aux``, a per-column array,
    is given) returns ``f(t)`` and a positive slope estimate ``g``
    (``-df/dt`` or a bound on it); Newton steps ``t + f/g`` from the lower
    end, replaced by bisection where they leave the current bracket or do
    not halve the previous step (Press et al. 2007, ``rtsafe``).  Columns
    still open after ``maxiter`` steps are finished by
    :func:`scipy.optimize.brentq` on their bracket."""
    root = lo.copy()
    act = np.arange(lo.size)
    t, lo, hi = lo.copy(), lo.copy(), hi.copy()
    step_old = np.full(lo.size, np.inf)
    ya, va, sa, xa = y, v, scale, aux

    def call(yy, vv, t, xx):
        return fun(yy, vv, t) if xx is None else fun(yy, vv, t, xx)

    for _ in range(maxiter):
        if act.size == 0:
            break
        f, g = call(ya, va, t, xa)
        lo = np.where(f > 0, t, lo)
        hi = np.where(f < 0, t, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = t + f / g
        bis = ~np.isfinite(new) | (new <= lo) | (new >= hi) | (np.abs(new - t) > 0.5 * step_old)
        new = np.where(bis, 0.5 * (lo + hi), new)
        new = np.where(f == 0, t, new)
        step_old = np.abs(new - t)
        tol = _RTOL * (new + sa)
        done = (f == 0) | (step_old <= tol) | (hi - lo <= tol)
        root[act] = new
        if done.any():
            keep = ~done
            act, t, lo, hi, step_old = act[keep], new[keep], lo[keep], hi[keep], step_old[keep]
            ya, va, sa = _columns(ya, keep), _columns(va, keep), sa[keep]
            xa = None if xa is None else xa[keep]
        else:
            t = new
    for j, i in enumerate(act):  # rare: slow convergence
        yi, vi = ya[:, j : j + 1], va[:, j : j + 1]

        xi = None if xa is None else xa[j : j + 1]

        def f1(x, yi=yi, vi=vi, xi=xi):
            return float(call(yi, vi, np.array([x]), xi)[0][0])

        a, b = lo[j], hi[j]
        root[i] = b if f1(b) == 0 else _lazy.optimize().brentq(f1, a, b, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)
    return root


GRID_PER_OCTAVE = 2  # score scan for the global maximum (spacing factor sqrt(2); see tau2_mle)
GRID_MAX = 400


def _upper(y, v, mask, k):
    """A tau2 beyond which the REML and ML scores are negative: with
    ``R = max(y) - min(y)``, ``vmax = max(v)``, for ``t >= vmax``
    ``y'PPy <= k R^2 / t^2`` while ``tr(P) >= (k-1)/(2t)`` and
    ``sum(w) >= k/(2t)``, so ``t > max(vmax, 2 k R^2 / (k-1))`` suffices."""
    if mask.all():  # no padding (leave_one_out's blocks): no masked copies
        r = y.max(axis=0) - y.min(axis=0)
        vmax = v.max(axis=0)
    else:
        big = np.finfo(float).max
        r = np.where(mask, y, -big).max(axis=0) - np.where(mask, y, big).min(axis=0)
        vmax = np.where(mask, v, 0.0).max(axis=0)
    return 1.01 * np.maximum(vmax, 2.0 * k / np.maximum(k - 1, 1) * r * r)


def _work_like(a, work=None):
    """Three arrays shaped like ``a`` for :func:`reml_score`'s temporaries:
    views of the three contiguous arrays ``work`` (at least ``a.size``
    values each, e.g. :func:`fit_core`'s ``scratch``, which pool_many keeps
    between calls: fresh memory costs page faults) or new ones; in the
    order of ``a`` (C, or Fortran for a :func:`_fortran` block)."""
    if work is None or any(w.size < a.size or not (w.flags.c_contiguous or w.flags.f_contiguous) for w in work):
        return [np.empty_like(a) for _ in range(3)]
    order = "F" if _fortran(a) else "C"
    return [w.ravel(order="K")[: a.size].reshape(a.shape, order=order) for w in work]


def _grid_point(j, low, ratio, step, last):
    """Point ``j + 1`` of :func:`tau2_mle`'s grids, ``low * ratio ** frac``
    with ``frac = min(j step, 1)`` (1 exactly at ``j = last``, as
    ``np.linspace`` sets its last point): one row of ``(max g) x m``."""
    frac = np.multiply(j, step)
    np.minimum(frac, 1.0, out=frac)
    frac[last == j] = 1.0
    np.power(ratio, frac, out=frac)
    return np.multiply(low, frac, out=frac)


SCAN_FORTRAN_RATIO = 16  # studies per analysis (rows / columns) from which the scan runs Fortran-ordered
UNSURE_FACTOR = 4.0  # a Fortran-ordered score within this many rounding bounds of 0 is recomputed C-ordered


def _scan_fortran(y) -> bool:
    """Whether :func:`_score_scan` evaluates the scores on a Fortran-ordered
    copy of ``y``, ``v`` (each analysis's studies contiguous).  C order sums
    the studies row by row, vectorised across the analyses: fast for
    pool_many's blocks (~10 studies x 4096 analyses), but for the refits'
    blocks (k - 1 studies x ~2^19 / k refits) every row is a loop as short
    as the number of refits.  Measured per score (one grid point, 2^18
    cells; :func:`reml_score` C-ordered against :func:`_score_bound`):
    9,999 x 26 0.90 against 0.43 ms, 2,999 x 87 0.62 against 0.52 ms,
    2,048 x 128 0.56 against 0.53 ms, 1,024 x 256 0.52 against 0.53 ms;
    the two copies cost ~0.3-0.8 ms per block, so from 16 studies per
    analysis the ~35 grid points pay for them (tests/test_scan_fortran.py
    holds both orders to the same brackets)."""
    return y.ndim == 2 and y.shape[1] >= 2 and y.shape[0] >= SCAN_FORTRAN_RATIO * y.shape[1]


def _score_bound(y, v, tau2, ymax, ml, work):
    """:func:`reml_score` (no information) and a bound on the rounding error
    of any order of its sums: the same weights and residuals as there (the
    same operations), the sums in another order; with ``S
    = sum(w^2 (y - est)^2)``, ``M = max |y|``, ``n`` the studies (rows) and
    ``gamma = (n + 5) eps / (1 - (n + 5) eps)``: ``|d sum w| <= gamma sum w``,
    ``|d est| <= 2 gamma M``, so ``|d S| <= 4 gamma M sum(w^2 |y - est|) +
    gamma S`` with ``sum(w^2 |y - est|) <= sqrt(sum(w^2) S)`` (Cauchy-Schwarz),
    and ``tr(P)`` to ``gamma (sum w + 2 sum(w^2) / sum w)`` (Higham 2002,
    Accuracy and Stability of Numerical Algorithms, sec. 3.1 and 4.2: the
    bound ``gamma_{n-1} sum |x_i|`` holds for every order of summation).
    Two evaluations in different orders therefore differ by at most twice
    the bound.  ``y``, ``v``, ``work``: Fortran-ordered, computed as their
    transposes (analyses x studies, C-ordered: every sum a contiguous run;
    ``sum(w^2)`` and ``S`` as sums of products without the squares written,
    since here the order of the sums is free)."""
    yt, vt = y.T, v.T
    w, wr = work[0].T, work[1].T
    np.add(vt, tau2[:, None], out=w)
    np.divide(1.0, w, out=w)
    sw = np.add.reduce(w, axis=1)
    est = np.einsum("ij,ij->i", w, yt) / sw
    np.subtract(yt, est[:, None], out=wr)
    wr *= w
    sw2 = np.einsum("ij,ij->i", w, w)
    ss = np.einsum("ij,ij->i", wr, wr)
    score = ss - (sw if ml else sw - sw2 / sw)
    n = y.shape[0] + 5
    gamma = n * np.finfo(float).eps / (1.0 - n * np.finfo(float).eps)
    bound = gamma * (4.0 * ymax * np.sqrt(sw2 * ss) + ss + sw + 2.0 * sw2 / sw + np.abs(score))
    return score, bound


def _fortran_scores(ys, vs, t, ymax, ml, work, yc, vc, act):
    """Scores at ``t`` of the Fortran-ordered columns ``ys``, ``vs`` (the
    columns ``act`` of the C-ordered ``yc``, ``vc``) with the sign the
    C-ordered evaluation gives: where ``|score|`` does not exceed four times
    :func:`_score_bound` (so the two evaluations might differ in sign; rare:
    a root within rounding of a grid point, or an overflow), the score is
    that of :func:`reml_score` on the C-ordered columns.  So the scan's
    brackets are those of the C-ordered scan, bit for bit."""
    s, bound = _score_bound(ys, vs, t, ymax, ml, _work_like(ys, work))
    unsure = np.flatnonzero(~(np.abs(s) > UNSURE_FACTOR * bound))
    if unsure.size:
        cols = act[unsure]
        s[unsure] = reml_score(_columns(yc, cols), _columns(vc, cols), t[unsure], ml=ml)
    return s


def _score_scan(y, v, low, ratio, g, ml, work, fy=None, fv=None):
    """The score scan of :func:`tau2_mle`: the score at 0 and at the ``g``
    points of each analysis's grid, point by point (two rows of the grid and
    of the scores at a time, not the whole ``(max g + 1) x m`` arrays: fresh
    memory costs page faults).  An analysis's grid ends at its ``g``-th
    point (a longer grid would repeat it: no further sign change), so the
    analyses still scanned are moved together when a quarter of them is
    done.  ``work``: three arrays of at least ``y.size`` values for
    :func:`reml_score`.  Given ``fy``, ``fv`` (Fortran-ordered copies of
    ``y``, ``v``, for blocks with many studies per analysis:
    :func:`_scan_fortran`), the scores are evaluated on them, with the signs
    of the C-ordered scan (:func:`_fortran_scores`).  Returns the brackets
    ``t_j < t_{j+1}`` with a score > 0 at ``t_j`` and <= 0 at ``t_{j+1}``
    (each a local maximum), in the order of the grid points, then analyses:
    ``(analysis, t_j, t_{j+1})``, or None if there are none."""
    step, last = 1.0 / (g - 1), g - 1
    act = np.arange(low.size)
    t0 = np.zeros(low.size)
    found = []
    with np.errstate(over="ignore", invalid="ignore"):  # w^2 may overflow near 0 for v ~ 1e-160: no sign change there
        if fy is not None:
            ys, vs = fy, fv
            ymax = np.abs(ys).max(axis=0)
            work = _work_like(ys, work)

            def score(t):
                return _fortran_scores(ys, vs, t, ymax, ml, work, y, v, act)
        else:
            ys, vs, ymax = y, v, t0
            work = _work_like(ys, work)  # one set for the whole scan: fresh memory at every point costs page faults

            def score(t):
                return reml_score(ys, vs, t, ml=ml, work=_work_like(ys, work))

        s0 = score(t0)
        for j in range(int(g.max())):
            going = last >= j  # analyses with a point j + 1 of their own
            if going.sum() < 0.75 * act.size:
                act, low, ratio, step, last, t0, s0, ymax = (
                    a[going] for a in (act, low, ratio, step, last, t0, s0, ymax))
                ys, vs = _columns(ys, going), _columns(vs, going)
            t1 = _grid_point(j, low, ratio, step, last)
            s1 = score(t1)
            up = np.flatnonzero((s0 > 0) & (s1 <= 0))
            if up.size:
                found.append((act[up], t0[up], t1[up]))
            t0, s0 = t1, s1
    if not found:
        return None
    return tuple(np.concatenate(x) for x in zip(*found))


def tau2_mle(y, v, mask, k, *, ml=False, maxiter=MAXITER, work=None):
    """REML (or, with ``ml``, ML) estimate of tau2: the global maximiser of
    the restricted (or full) likelihood over ``tau2 >= 0``.

    Every root of the score lies in ``[0, upper]`` (:func:`_upper`).  The
    score is evaluated at ``0`` and at ``GRID_PER_OCTAVE`` log-spaced points
    per octave from ``min(v)/16`` to ``upper`` (at least 8, at most
    ``GRID_MAX`` points); each sign change + to - brackets a local maximum,
    solved by :func:`_bracketed_root` (Newton with the observed information,
    see :func:`reml_score`, bisection as safeguard), and the one with the
    highest likelihood is compared with the boundary ``tau2 = 0``; a tie
    keeps 0.  So neither an overshooting step nor a stationary point that is
    a minimum can end the search, and no start value matters.  The spacing
    (factor sqrt(2)) is empirical: a pair of roots closer than that would be
    missed; on 60,000 random sets each for REML and ML (the generator of
    tests/test_estimators.py) even a factor 4 found every maximum of a dense
    grid (1200 points, refined twice).

    Where metafor's Fisher scoring (start: HE) converges to the global
    maximum, ours is the same root.  But metafor stops at 0 whenever the
    score at its start is negative and the iteration slides to the boundary
    (a local maximum there), even when an interior maximum is higher -- e.g.
    HE = 0 with a negative score at 0, or ML on the first 6 trials of
    dat.bcg by year (tests/test_estimators.py); its ``ll0check`` likewise
    only ever moves a root to 0.  We return the global maximum."""
    tau2 = np.zeros(y.shape[1])
    many = k > 1
    cols = np.flatnonzero(many)
    if cols.size == 0:
        return tau2
    yc, vc, mc, kc = (_columns(a, many) for a in (y, v, mask, k))
    # the scan's Fortran-ordered copies (_scan_fortran) also serve max and min, exact in any order
    fy, fv, fm = (np.asfortranarray(a) for a in (yc, vc, mc)) if _scan_fortran(yc) else (None, None, mc)
    up = _upper(yc if fy is None else fy, vc if fv is None else fv, fm, kc)
    low = np.minimum((vc if fv is None else fv).min(axis=0) / 16.0, up / 16.0)
    # each analysis its own grid of g points (linspace(0, 1, g) as exponents), so that
    # its result does not depend on the other analyses fitted with it (pool_many's blocks,
    # Dask chunks); shorter grids repeat their last point, which adds no sign change
    g = np.clip(np.ceil(GRID_PER_OCTAVE * np.log2(up / low)).astype(np.int64) + 1, 8, GRID_MAX)
    brackets = _score_scan(yc, vc, low, up / low, g, ml, work, fy, fv)
    if brackets is None:
        return tau2
    cc, lo, hi = brackets
    ya, va = _columns(yc, cc), _columns(vc, cc)
    scale = _scale(va, _columns(mc, cc), kc[cc])
    root = _bracketed_root(
        lambda yy, vv, t: reml_score(yy, vv, t, info=True, ml=ml, work=_work_like(yy, work)), ya, va, lo, hi, scale, maxiter
    )
    ll = reml_loglik(ya, va, _columns(mc, cc), root, ml=ml, work=_work_like(ya, work))
    ll0 = reml_loglik(yc, vc, mc, np.zeros(cols.size), ml=ml, work=_work_like(yc, work))
    order = np.lexsort((ll, cc))  # by analysis, then likelihood: the last of each analysis is its best root
    last = np.r_[cc[order][1:] != cc[order][:-1], True]
    best = order[last]
    win = ll[best] > ll0[cc[best]]
    tau2[cols[cc[best][win]]] = root[best][win]
    return tau2


def tau2_reml(y, v, mask, k, *, maxiter=MAXITER, work=None):
    """REML estimate of tau2 (Viechtbauer 2005): see :func:`tau2_mle`."""
    return tau2_mle(y, v, mask, k, maxiter=maxiter, work=work)


def tau2_ml(y, v, mask, k, *, maxiter=MAXITER, work=None):
    """ML estimate of tau2 (Viechtbauer 2005): see :func:`tau2_mle`."""
    return tau2_mle(y, v, mask, k, ml=True, maxiter=maxiter, work=work)


def _pm_q(y, v, tau2, deriv=False, work=None):
    """Generalised Q(tau2) and, if ``deriv``, -dQ/dtau2 = sum(w^2 (y - est)^2).
    ``work``: three arrays shaped like ``y`` for the temporaries (as
    :func:`reml_score`'s); the same bits either way."""
    bw, bwr, br = (None, None, None) if work is None else work
    w, sw, est = _sums(y, v, tau2, bw)
    wr = np.subtract(y, est, out=bwr)
    wr *= w
    r = np.subtract(y, est, out=br)
    q = _csum(np.multiply(wr, r, out=r))
    return (q, _csum(np.square(wr, out=wr))) if deriv else q


def tau2_pm(y, v, mask, k, *, maxiter=MAXITER, work=None):
    """Paule & Mandel (1982) estimate of tau2: the root of the generalised
    ``Q(tau2) = k - 1``, unique because ``Q`` is strictly decreasing
    (``dQ/dtau2 = -sum(w^2 (y - est)^2) < 0`` unless every ``y`` is equal);
    bracketed in ``[0, var(y)]`` since ``Q(var(y)) <= k - 1``; 0 when
    ``Q(0) <= k - 1`` (metafor's rule).  Also metafor's empirical Bayes
    estimator (``method="EB"``, Morris 1983): its iteration
    ``tau2 + (k/(k-1) Q(tau2) - k) / sum(w)`` stops at the same root
    (Viechtbauer 2005, sec. 2.5).  ``work``: as :func:`tau2_mle`'s."""
    tau2 = np.zeros(y.shape[1])
    df = (k - 1).astype(float)
    many = k > 1
    cols = np.flatnonzero(many)
    ym = _columns(y, many)
    q0 = _pm_q(ym, _columns(v, many), np.zeros(cols.size), work=_work_like(ym, work))
    act = cols[q0 > df[cols]]
    if act.size == 0:
        return tau2
    ya, va, ma = (_columns(a, act) for a in (y, v, mask))
    d = _centred(ya, ma, k[act])
    hi = _csum(d * d) / df[act]

    def fun(yy, vv, t, dfa):
        q, g = _pm_q(yy, vv, t, deriv=True, work=_work_like(yy, work))
        return q - dfa, g

    tau2[act] = _bracketed_root(fun, ya, va, np.zeros(act.size), hi, _scale(va, ma, k[act]), maxiter, aux=df[act])
    return tau2


# --------------------------------------------------------------------------- fit


CORE_KEYS = ("k", "q", "sw0", "sw0sq", "tau2", "sw", "est", "rss")


def fit_core(y, v, mask, k=None, *, method="DL", rss=False, weights=False, scratch=None, tau2=None):
    """The part of the fit that needs the studies: per-analysis sums and tau2.

    ``y`` (0 at padding), ``v`` (inf at padding), ``mask`` (True where a
    study exists), all ``(n, m)``; ``k`` (studies per analysis; counted from
    ``mask`` if None).  Returns 1-D arrays ``k, q`` (Cochran's Q), ``sw0,
    sw0sq`` (sums of 1/v and 1/v^2), ``tau2``, ``sw`` (sum of weights),
    ``est``, ``rss`` (``sum(w (y - est)^2)``, for HKSJ; only if ``rss``) and,
    if ``weights``, ``weights`` (n x m, percent).  ``mask`` may be None for FE
    and DL (and HS) when ``k`` is given.  ``method``: a canonical name from
    :data:`METHODS`.  ``scratch``: optional sequence of three
    arrays shaped like ``y`` used as work space (``pool_many`` reuses them
    from block to block: fresh memory costs page faults).  ``tau2``: the
    estimates per analysis if already known (``pool_many`` takes REML/ML's
    from the compiled kernel of :mod:`meta._fast`); the estimator is then skipped.
    """
    if k is None:
        k = np.count_nonzero(mask, axis=0)
    k = np.asarray(k, dtype=np.int64)
    tmp, w0, w = scratch if scratch is not None else (np.empty_like(y), None, None)
    w0 = np.divide(1.0, v, out=w0)
    sw0 = _csum(w0)
    sw0sq = _dot(w0, w0)
    est0 = _dot(w0, y) / sw0
    r = np.subtract(y, est0, out=tmp)
    q = np.maximum(_dot3(r, r, w0), 0.0)
    q[k == 1] = 0.0
    if method == "FE":
        tau2 = np.zeros(y.shape[1])
        w, sw, est = w0, sw0, est0
    else:
        if tau2 is not None:
            tau2 = np.asarray(tau2, dtype=float)
        elif method == "DL":
            tau2 = tau2_dl(q, k, sw0, sw0sq)
        elif method == "HS":
            tau2 = tau2_hs(q, k, sw0)
        elif method == "HE":
            tau2 = tau2_he(y, v, mask, k)
        elif method == "SJ":
            tau2 = tau2_sj(y, v, mask, k)
        elif method == "REML":
            tau2 = tau2_reml(y, v, mask, k, work=scratch)
        elif method == "ML":
            tau2 = tau2_ml(y, v, mask, k, work=scratch)
        elif method in ("PM", "EB"):
            tau2 = tau2_pm(y, v, mask, k, work=scratch)
        else:  # pragma: no cover - checked by callers
            raise ValueError(method)
        w, sw, est = _sums(y, v, tau2, w)
    out = {"k": k, "q": q, "sw0": sw0, "sw0sq": sw0sq, "tau2": tau2, "sw": sw, "est": est, "rss": None}
    if rss:
        r = np.subtract(y, est, out=tmp)
        out["rss"] = _dot3(r, r, w)
    if weights:
        out["weights"] = 100.0 * w / sw
    return out


def fit_closed_into(y, v, k, out, *, method="DL", scratch, est0, rss=False, k1=True):
    """:func:`fit_core` for FE and DL written into ``out`` (``pool_many``'s
    blocks): the same operations in the same order (so the same bits), with
    every per-analysis sum reduced straight into its destination and no
    temporary.  ``y``, ``v``: ``(n, c)`` with ``y = 0``, ``v = inf`` at
    padding; ``k``: studies per analysis; ``out``: 1-D arrays of length
    ``c`` under the keys of :data:`CORE_KEYS` (``k`` already written;
    ``rss`` only if ``rss``); ``scratch``: three work arrays shaped like
    ``y``; ``est0``: a work array of length ``c`` (DL's fixed-effect
    estimate); ``k1``: whether some analysis may have ``k = 1`` (False skips
    the masks metafor's k = 1 rules need).  Divisions by zero and invalid
    operations are the caller's to silence (``np.errstate``): DerSimonian &
    Laird's denominator is 0 for ``k = 1``, whose tau2 is then set to 0."""
    tmp, w0, w = scratch
    np.divide(1.0, v, out=w0)
    sw0 = np.add.reduce(w0, axis=0, out=out["sw0"])
    sw0sq = np.einsum("ij,ij->j", w0, w0, out=out["sw0sq"])
    fe = method == "FE"
    e0 = out["est"] if fe else est0
    np.einsum("ij,ij->j", w0, y, out=e0)
    e0 /= sw0
    r = np.subtract(y, e0, out=tmp)
    q = np.einsum("ij,ij,ij->j", r, r, w0, out=out["q"])
    np.maximum(q, 0.0, out=q)
    one = k == 1 if k1 else None
    if k1:
        q[one] = 0.0
    tau2 = out["tau2"]
    if fe:
        tau2.fill(0.0)
        np.copyto(out["sw"], sw0)
        w, sw, est = w0, out["sw"], e0
    else:  # _f.tau2_dl(q, k - 1, sw0, sw0sq), then 0 where k = 1 (tau2_dl)
        den = np.divide(sw0sq, sw0, out=tau2)
        np.subtract(sw0, den, out=den)
        t = np.subtract(q, k - 1, out=out["sw"])
        np.divide(t, den, out=tau2)
        np.maximum(tau2, 0.0, out=tau2)
        if k1:
            tau2[one] = 0.0
        np.add(v, tau2, out=w)
        np.divide(1.0, w, out=w)
        sw = np.add.reduce(w, axis=0, out=out["sw"])
        est = np.einsum("ij,ij->j", w, y, out=out["est"])
        est /= sw
    if rss:
        r = np.subtract(y, est, out=tmp)
        np.einsum("ij,ij,ij->j", r, r, w, out=out["rss"])


@functools.lru_cache(maxsize=64)
def z_crit(q):
    """Quantile ``q`` of the standard normal distribution (Wichura 1988,
    algorithm AS 241, as :meth:`statistics.NormalDist.inv_cdf` and R's
    ``qnorm`` compute it: bit-identical to R for ``q = 0.975``, and within
    1e-15 relative of :func:`scipy.special.ndtri`), cached per ``q``; needs
    no scipy."""
    return statistics.NormalDist().inv_cdf(q)


def _tq(df, p):
    """Quantile ``p`` of t with ``df`` degrees of freedom, once per distinct df."""
    return _by_df(lambda d: _lazy.special().stdtrit(d, p), df)


def pi_crit(pi, k, crit, *, fe=False, level=0.95):
    """Critical value of the prediction interval per analysis (names and
    rules of metafor >= 4.0 ``predict.rma(pi.type=)``; see module
    docstring).  ``crit``: the test's critical value (scalar or per
    analysis, used by ``"default"``); ``fe``: FE model
    (one variance parameter fewer for ``"riley"``)."""
    q = 1.0 - (1.0 - level) / 2
    k = np.asarray(k)
    if pi == "default":
        return np.broadcast_to(crit, k.shape).astype(float)
    if pi == "simple":
        return np.full(k.shape, z_crit(q))
    if pi == "t":
        return _tq(np.maximum(k - 1, 1), q)
    if pi == "riley":
        return _tq(np.maximum(k - 1 - (0 if fe else 1), 1), q)
    if pi == "higgins":
        return np.where(k > 2, _tq(np.maximum(k - 2, 1), q), np.nan)
    raise ValueError(pi)  # pragma: no cover - checked by callers


def finish(core, *, method="DL", test="z", level=0.95, pi="default"):
    """Tests, intervals and heterogeneity statistics from :func:`fit_core`'s
    per-analysis sums (1-D arrays only).  ``test`` and ``pi`` take the
    canonical names of ``TESTS`` and ``PIS``.  Returns ``k, estimate, se,
    stat, p, ci_low, ci_high, tau2, tau, i2, h2, q, q_df, q_p, pi_low,
    pi_high, t_used`` (True where the requested t-based test was used: never
    for k = 1, which falls back to z as metafor does; ``hksj``: the same
    array, its former name)."""
    k, q, sw0, sw0sq, tau2, sw, est, rss = (core[c] for c in CORE_KEYS)
    one = k == 1
    df = k - 1
    se = np.sqrt(1.0 / sw)
    alpha = 1.0 - level
    t_used = (~one) if test != "z" else np.zeros(k.shape, bool)
    use_t = t_used.any()
    with np.errstate(invalid="ignore", divide="ignore"):
        tdf = np.maximum(df, 1)
        no_info = np.zeros(k.shape, bool)
        if use_t and test in ADJUSTED_TESTS:
            s2w = _f.hksj_factor(rss, tdf, test == "adhoc")  # adhoc, as metafor: s2w[s2w < 1] <- 1
            se = np.where(t_used, _f.adjusted_se(s2w, sw), se)
            if test == "hksj":
                no_info = t_used & (rss <= _f.EPS)
                if no_info.any():
                    se = np.where(no_info, np.nan, se)
                    warn_hksj_no_information(int(no_info.sum()))
        stat = est / se
        zcrit = z_crit(1.0 - alpha / 2)
        if use_t:
            tcrit = _tq(tdf, 1.0 - alpha / 2)
            crit = np.where(t_used, tcrit, zcrit)
            p = np.where(t_used, 2.0 * _lazy.special().stdtr(tdf, -np.abs(stat)), norm_sf2(stat))
        else:
            crit = zcrit
            p = norm_sf2(stat)
        ci_low, ci_high = _f.interval(est, crit, se)

        if method == "FE":
            i2 = _f.i2_from_q(q, df)  # Q = 0 (k > 1): max(0, -inf) = 0, as metafor
            h2 = _f.h2_from_q(q, df)
        else:
            vt = _f.typical_variance(df, sw0, sw0sq)
            i2 = _f.i2_from_tau2(tau2, vt)
            h2 = _f.h2_from_tau2(tau2, vt)
        q_p = chi2_sf(q, tdf)
        # k = 1: metafor reports Q = 0, p = 1, I2 = 0, H2 = 1
        if one.any():
            q_p[one], i2[one], h2[one] = 1.0, 0.0, 1.0

        if pi == "default" and method == "FE":
            pi_low, pi_high = ci_low, ci_high
        else:
            pcrit = pi_crit(pi, k, crit, fe=method == "FE", level=level)
            pi_low, pi_high = _f.pi_bounds(est, pcrit, se, tau2, pi == "simple")

    return {
        "k": k,
        "estimate": est,
        "se": se,
        "stat": stat,
        "p": p,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "tau2": tau2,
        "tau": np.sqrt(tau2),
        "i2": i2,
        "h2": h2,
        "q": q,
        "q_df": df,
        "q_p": q_p,
        "pi_low": pi_low,
        "pi_high": pi_high,
        "t_used": t_used,
        "hksj": t_used,
        "no_information": no_info,
    }


def warn_hksj_no_information(n: int) -> None:
    """The warning of :func:`finish` for ``n`` analyses whose Knapp-Hartung
    residual sum of squares is at most machine epsilon."""
    import warnings

    warnings.warn(
        f"test='hksj': in {n} analys{'is' if n == 1 else 'es'} the effects are identical up to rounding "
        "(Knapp-Hartung residual sum of squares <= machine epsilon), so the test's variance factor carries no "
        "information (metafor sets it to 0 and reports se = 0, p = 0); se, the test, p, the CI and the "
        "prediction interval are NaN. Use test='adhoc' (variance factor at least 1) or test='z'",
        RuntimeWarning,
        stacklevel=5,  # pool / leave_one_out / cumulative -> fit -> finish -> here
    )


def fit(y, v, mask, k=None, *, method="DL", test="z", level=0.95, pi="default", weights=False, scratch=None):
    """:func:`fit_core` then :func:`finish`: the whole fit of each analysis
    (column of the ``(n, m)`` arrays); ``weights`` (n x m, percent) added if
    asked for."""
    core = fit_core(y, v, mask, k, method=method, rss=test in ADJUSTED_TESTS, weights=weights, scratch=scratch)
    out = finish(core, method=method, test=test, level=level, pi=pi)
    if weights:
        out["weights"] = core["weights"]
    return out


# --------------------------------------------------------------------------- one analysis

SCALAR_METHODS = ("FE", "DL", "HS")  # closed forms whose tau2 fit_one computes itself
LIST_MAX = 64  # fit_one sums on Python floats up to this many studies, numpy reductions beyond


BLOCK = 16384  # studies per block of fit_one's sums for large k (128 kB buffers stay in cache)


class _Blocks:
    """Sums over the studies of one large analysis, block by block: each
    block's weights go into two buffers of :data:`BLOCK` floats allocated once
    and are summed while in cache.  No k-sized temporary (on a VM each fresh
    page costs ~4.6 us: ~9 ns per study and array at k = 1,000,000, more than
    the arithmetic) and plain ufunc reductions (no BLAS threads)."""

    def __init__(self, y, v):
        self.y, self.v = y, v
        n = min(y.size, BLOCK)
        self.w, self.t = np.empty(n), np.empty(n)
        self.blocks = [(a, min(a + BLOCK, y.size)) for a in range(0, y.size, BLOCK)]

    def _weights(self, a, b, tau2):
        w = np.add(self.v[a:b], tau2, out=self.w[: b - a])
        return np.divide(1.0, w, out=w)

    def sums(self, tau2, squares=False):
        """``sum(w)``, ``sum(w y)`` and (if ``squares``) ``sum(w^2)``, ``w = 1/(v + tau2)``."""
        sw = swy = sw2 = 0.0
        for a, b in self.blocks:
            w = self._weights(a, b, tau2)
            t = self.t[: b - a]
            sw += float(np.add.reduce(w))
            swy += float(np.add.reduce(np.multiply(w, self.y[a:b], out=t)))
            if squares:
                sw2 += float(np.add.reduce(np.multiply(w, w, out=t)))
        return sw, swy, sw2

    def first(self, source=None):
        """``sum(w0)``, ``sum(w0 y)``, ``sum(w0^2)`` and Cochran's
        ``Q = sum(w0 (y - est0)^2)``, ``w0 = 1/v``, ``est0 = sum(w0 y) / sum(w0)``,
        in one pass: each block's Q about its own weighted mean
        ``m_b = sum_b(w0 y) / sum_b(w0)``, merged exactly as Chan, Golub &
        LeVeque (1983) merge sums of squares, ``Q = sum_b [Q_b + sum_b(w0) (m_b - est0)^2]``
        (every term >= 0: nothing cancels).  One block: ``m_b = est0`` and
        ``Q`` is :meth:`rss` at ``est0``, the same bits; several: Q moves by a
        few ulp against the two-pass sum, and ``y``, ``v`` are read once instead of twice.

        ``source``: ``(y_from, v_from)`` (each an array or None) for
        :func:`meta.pool.pool`: each block is first copied from them into
        ``y`` / ``v`` and screened as pool's quick check of its input
        (finite ``sum(y)``, ``sum(v)``, ``min(v) > 0``) in the same pass;
        None where the screen fails (then the sums mean nothing)."""
        parts = []
        sy = sv = 0.0
        positive = True
        for a, b in self.blocks:
            if source is not None:
                yb, vb = self.y[a:b], self.v[a:b]
                if source[0] is not None:
                    np.copyto(yb, source[0][a:b])
                if source[1] is not None:
                    np.copyto(vb, source[1][a:b])
                sy += float(np.add.reduce(yb))
                sv += float(np.add.reduce(vb))
                positive = positive and bool(vb.min() > 0)  # NaN: False
            w = self._weights(a, b, 0.0)
            t = self.t[: b - a]
            sw = float(np.add.reduce(w))
            swy = float(np.add.reduce(np.multiply(w, self.y[a:b], out=t)))
            sw2 = float(np.add.reduce(np.multiply(w, w, out=t)))
            r = np.subtract(self.y[a:b], swy / sw, out=t)
            r *= r
            r *= w
            parts.append((sw, swy, sw2, float(np.add.reduce(r))))
        if source is not None and not (math.isfinite(sy) and math.isfinite(sv) and positive):
            return None
        sw0 = swy0 = sw0sq = 0.0
        for p in parts:  # block order, as sums()
            sw0 += p[0]
            swy0 += p[1]
            sw0sq += p[2]
        est0 = swy0 / sw0
        q = 0.0
        for p in parts:
            d = p[1] / p[0] - est0
            q += p[3] + p[0] * d * d
        return sw0, swy0, sw0sq, q

    def weights(self, tau2, sw, out=None):
        """``100 / (sw (v + tau2))``: each study's percent weight (metafor ``weights()``),
        written block by block into ``out`` (default a new array; each block divided while in cache)."""
        out = np.empty(self.v.size) if out is None else out
        c = 100.0 / sw
        for a, b in self.blocks:
            wa = np.add(self.v[a:b], tau2, out=out[a:b])
            np.divide(c, wa, out=wa)
        return out

    def rss(self, tau2, est):
        """``sum(w (y - est)^2)``."""
        out = 0.0
        for a, b in self.blocks:
            w = self._weights(a, b, tau2)
            r = np.subtract(self.y[a:b], est, out=self.t[: b - a])
            r *= r
            r *= w
            out += float(np.add.reduce(r))
        return out


@functools.lru_cache(maxsize=256)
def t_crit(df, q):
    """Quantile ``q`` of t with ``df`` degrees of freedom (scipy ``stdtrit``), cached."""
    return float(_lazy.special().stdtrit(df, q))


def _chi2_sf_one(x, df):
    """:func:`chi2_sf` for one value (Python floats; same formulas, :mod:`meta._formulas`)."""
    if df > 200:
        return float(_lazy.special().chdtrc(df, x))
    h = 0.5 * x
    acc = _f.chi2_poly(CHI2_TABLE, h, df, max(1, df // 2))
    if df % 2:
        sh = math.sqrt(h)
        out = _f.chi2_sf_odd(acc, h, sh, math.erfc(sh))
    else:
        out = _f.chi2_sf_even(acc, h)
    return float(out) if math.isfinite(out) else float(_lazy.special().chdtrc(df, x))


def fit_one(y, v, *, method="DL", test="z", level=0.95, pi="default", tau2=None, blocks=None, first=None,
            weights_out=None):
    """One analysis (1-D ``y``, ``v``, no padding): the fit of :func:`fit`
    (m = 1) without its 2-D machinery, for :func:`meta.pool.pool` (a call
    costs a few numpy operations instead of ~150).  FE, DL and HS compute
    their tau2 here; every other method needs it passed as ``tau2``
    (:func:`meta._one.tau2_one`, the same estimators for one analysis).  The
    same formulas (:mod:`meta._formulas` for the closed forms); up to
    :data:`LIST_MAX` studies the sums run in study order on Python floats,
    beyond that as plain ufunc reductions (pairwise; no BLAS threads, no
    per-study Python loop), so results agree with :func:`fit` to a few ulp
    (~1e-15 relative), not bit for bit.  Returns :func:`fit`'s dictionary
    with floats (``weights`` an array), or None where a sum is not finite or
    a division fails (the caller then runs :func:`fit`, which reports it).
    Beyond LIST_MAX studies the caller may hand over ``blocks`` (the
    :class:`_Blocks` of ``y``, ``v``) with ``first`` (its :meth:`_Blocks.first`
    sums, taken while checking the input) and ``weights_out`` (an array of k
    floats for the weights; default a new one)."""
    k = y.size
    df = k - 1
    big = k > LIST_MAX
    try:
        if big:
            if blocks is None:
                blocks = _Blocks(y, v)
            sw0, swy, sw0sq, q = blocks.first() if first is None else first  # Q at est0 in the same pass
            est0 = swy / sw0
            q = max(q, 0.0) if k > 1 else 0.0
            w0 = None
        else:
            yl, vl = y.tolist(), v.tolist()
            w0 = [1.0 / x for x in vl]
            sw0 = sw0sq = swy = 0.0
            for wi, yi in zip(w0, yl):
                sw0 += wi
                sw0sq += wi * wi
                swy += wi * yi
            est0 = swy / sw0
            q = 0.0
            if k > 1:
                for wi, yi in zip(w0, yl):
                    r = yi - est0
                    q += r * r * wi
                q = max(q, 0.0)
        if k == 1 or method == "FE":
            tau2 = 0.0
        elif method == "DL":
            tau2 = float(_f.tau2_dl(q, df, sw0, sw0sq))
        elif method == "HS":
            tau2 = max((q - k) / sw0, 0.0)
        elif tau2 is None:
            raise ValueError(f"fit_one: method {method!r} needs tau2")
        tau2 = float(tau2)
        if tau2 == 0.0:  # w = 1/(v + 0) = w0: the same sums
            w, sw, est = w0, sw0, est0
        elif big:
            w = None
            sw, swy, _ = blocks.sums(tau2)
            est = swy / sw
        else:
            w = [1.0 / (x + tau2) for x in vl]
            sw = swy = 0.0
            for wi, yi in zip(w, yl):
                sw += wi
                swy += wi * yi
            est = swy / sw
        se = math.sqrt(1.0 / sw)
        t_used = test != "z" and k > 1
        if t_used and test in ADJUSTED_TESTS:
            if big:
                rss = blocks.rss(tau2, est)
            else:
                rss = 0.0
                for wi, yi in zip(w, yl):
                    r = yi - est
                    rss += r * r * wi
            if test == "hksj" and rss <= _f.EPS:
                return None  # no information on the variance factor: fit() reports it
            se = float(_f.adjusted_se(_f.hksj_factor(rss, df, test == "adhoc"), sw))
        stat = est / se
        qq = 1.0 - (1.0 - level) / 2
        if t_used:
            crit = t_crit(df, qq)
            p = float(2.0 * _lazy.special().stdtr(df, -abs(stat)))
        else:
            crit = z_crit(qq)
            p = math.erfc(float(_f.z_arg(stat)))
        ci_low, ci_high = _f.interval(est, crit, se)
        if k == 1:  # metafor: Q = 0, p = 1, I2 = 0, H2 = 1
            q_p, i2, h2 = 1.0, 0.0, 1.0
        else:
            q_p = _chi2_sf_one(q, df)
            if method == "FE":
                i2 = float(_f.i2_from_q(q, df)) if q > 0 else 0.0  # Q = 0: max(0, -inf) = 0, as fit()
                h2 = _f.h2_from_q(q, df)
            else:
                vt = _f.typical_variance(df, sw0, sw0sq)
                i2 = _f.i2_from_tau2(tau2, vt)
                h2 = _f.h2_from_tau2(tau2, vt)
        if pi == "default" and method == "FE":
            pi_low, pi_high = ci_low, ci_high
        else:
            pcrit = crit if pi == "default" else float(pi_crit(pi, np.array([k]), crit, fe=method == "FE", level=level)[0])
            pi_low, pi_high = _f.pi_bounds(est, pcrit, se, tau2, pi == "simple")
    except (ArithmeticError, ValueError):  # x/0, sqrt of a negative: let fit() report it
        return None
    out = {
        "k": k, "estimate": est, "se": se, "stat": stat, "p": p, "ci_low": ci_low, "ci_high": ci_high,
        "tau2": tau2, "tau": math.sqrt(tau2), "i2": i2, "h2": h2, "q": q, "q_df": df, "q_p": q_p,
        "pi_low": pi_low, "pi_high": pi_high, "t_used": t_used, "no_information": False,
    }
    if not all(math.isfinite(out[c]) for c in ("estimate", "se", "ci_low", "ci_high", "tau2", "q")):
        return None
    if big:  # the one k-sized array of the fit: the weights (percent) it returns
        out["weights"] = blocks.weights(tau2, sw, weights_out)
    else:
        out["weights"] = 100.0 * np.asarray(w, dtype=float) / sw
    return out
