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
* REML (Viechtbauer 2005, eqs. 10-12): root of the restricted score
  ``y'PPy - tr(P)`` with ``y'PPy = sum(w^2 (y - est)^2)``,
  ``tr(P) = sum(w) - sum(w^2)/sum(w)``, by Fisher scoring
  (step ``(y'PPy - tr P) / tr(PP)``) from the truncated Hedges (HE) estimate,
  as metafor, except that the observed information ``2 y'PPPy - tr(PP)``
  replaces ``tr(PP)`` where it is positive (a Newton step: Fisher scoring
  alone converges only linearly, slowly when tr(PP) overstates the
  curvature).  A step that leaves the current bracket ``[lo, hi]`` (last
  points with positive / negative score), or that is not at most half the
  previous step once the root is bracketed (Fisher scoring can oscillate
  around the root; Press et al. 2007, ``rtsafe``), is replaced by bisection
  (step-halving); a step below 0 when no point with a positive score is
  known (the score at 0 is <= 0) ends at the boundary ``tau2 = 0``.  Rows
  still moving after ``MAXITER`` steps are solved by
  :func:`scipy.optimize.brentq` on the score over ``[0, upper]``.  As
  metafor (``ll0check``), a root whose restricted log-likelihood is below
  that at ``tau2 = 0`` is replaced by 0;
* Paule & Mandel (1982): root of the generalised ``Q(tau2) = k - 1``, with
  ``Q(tau2) = sum(w (y - est)^2)`` decreasing in tau2 and
  ``Q(var(y)) <= k - 1``, so the root is bracketed in ``[0, var(y)]``;
  Newton steps (``dQ/dtau2 = -sum(w^2 (y - est)^2)``, DerSimonian & Kacker
  2007) kept inside the bracket, brentq as fallback; 0 when
  ``Q(0) < k - 1`` (metafor's rule);
* tests (metafor 3.8.1 ``rma.uni(test=)``; all fall back to z for k = 1, as
  metafor): ``"z"`` (Wald, normal); ``"hksj"`` = metafor ``"knha"`` (Knapp &
  Hartung 2003): ``se^2 = s2w / sum(w)``, ``s2w = sum(w (y - est)^2) / (k - 1)``
  (0 if the sum is below machine epsilon), not truncated, t with ``k - 1``
  df; ``"adhoc"`` (metafor ``"adhoc"``; Knapp & Hartung 2003): the same with ``s2w`` replaced by ``max(1, s2w)``, so the CI is never
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

import math

import numpy as np
from scipy import optimize, special

METHODS = ("FE", "DL", "REML", "PM")
TESTS = ("z", "hksj", "adhoc", "t")
TEST_ALIASES = {"knha": "hksj"}  # metafor's name
ADJUSTED_TESTS = ("hksj", "adhoc")  # se multiplied by sqrt(s2w)
PIS = ("default", "simple", "t", "riley", "higgins")
PI_ALIASES = {"z": "default"}  # our name before metafor-4 names

MAXITER = 100  # Fisher-scoring / Newton steps before the brentq fallback
_RTOL = 1e-12  # convergence on tau2, relative to (tau2 + mean within-study variance)
_SQRT1_2 = math.sqrt(0.5)


# --------------------------------------------------------------------------- helpers


def _csum(a: np.ndarray) -> np.ndarray:
    """Sum over the studies (axis 0) of each analysis (a vector-matrix
    product: faster than ``a.sum(axis=0)``)."""
    return np.ones(a.shape[0]) @ a


def _dot(a, b):
    """``sum(a * b)`` over the studies of each analysis, in one pass (no
    temporary: ~25 % faster than the product followed by :func:`_csum`)."""
    return np.einsum("ij,ij->j", a, b)


def _sums(y, v, tau2, w=None):
    """Weights, their sum and the weighted mean per analysis.  ``w`` is an
    optional array of the shape of ``y`` to write the weights into (saves an
    allocation)."""
    w = np.add(v, tau2, out=w)
    np.divide(1.0, w, out=w)  # same bits as np.reciprocal, ~2x faster here
    sw = _csum(w)
    est = _dot(w, y) / sw
    return w, sw, est


def norm_sf2(z):
    """Two-sided normal p-value ``2 (1 - Phi(|z|))``."""
    return special.erfc(np.abs(z) * _SQRT1_2)


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


def chi2_sf(x, df):
    """Upper tail of the chi-square distribution with integer ``df >= 1``.

    Closed forms (Abramowitz & Stegun 1964, 26.4.4-26.4.5), evaluated for all
    analyses at once and much faster than the incomplete gamma function:
    even ``df``: ``exp(-x/2) sum_{j < df/2} (x/2)^j / j!``; odd ``df``:
    ``2 (1 - Phi(sqrt x)) + sqrt(2x/pi) exp(-x/2) sum_{j=1}^{(df-1)/2} x^(j-1) / (1 3 ... (2j-1))``.
    Both sums are evaluated as polynomials in ``x/2`` by Horner's rule with
    per-df coefficients (all positive, so no cancellation), and the normal
    tail ``erfc(sqrt(x/2))`` only for the odd df.
    ``df > 200`` (or an overflowing series) uses :func:`scipy.special.chdtrc`.
    """
    x = np.asarray(x, dtype=float)
    d = np.asarray(df, dtype=np.int64)
    if x.shape != d.shape:
        x, d = np.broadcast_arrays(x, d)
    shape = x.shape
    if x.ndim != 1:
        x, d = x.ravel(), d.ravel()  # flat: the odd-df cells are picked by position
    big = d > 200
    anybig = bool(big.any())
    dd = np.where(big, 1, d) if anybig else d
    h = 0.5 * x
    jmax = int(dd.max(initial=1)) // 2  # terms of the longest sum
    with np.errstate(over="ignore", invalid="ignore"):
        if jmax >= 1:
            acc = CHI2_TABLE[jmax - 1].take(dd)
            for j in range(jmax - 2, -1, -1):
                acc *= h
                acc += CHI2_TABLE[j].take(dd)
        else:
            acc = np.zeros_like(h)
        odd = np.flatnonzero(np.bitwise_and(dd, 1).astype(bool))  # nonzero on bools: ~4x faster than on ints
        sh = np.sqrt(h[odd])
        acc[odd] *= sh  # odd df: the sum carries the factor sqrt(x/2)
        acc *= np.exp(-h)
        acc[odd] += special.erfc(sh)
        out = acc
    redo = big | ~np.isfinite(out)
    if redo.any():
        out[redo] = special.chdtrc(d[redo], x[redo])
    return out.reshape(shape) if shape else out[0]


def _by_df(fun, df):
    """Evaluate ``fun(d)`` once per distinct df and spread it over the analyses."""
    u, inv = np.unique(df, return_inverse=True)
    return np.array([fun(d) for d in u], dtype=float)[inv]


# --------------------------------------------------------------------------- tau2


def tau2_dl(q, k, sw0, sw0sq):
    """DerSimonian & Laird (1986) moment estimator, truncated at 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (q - (k - 1)) / (sw0 - sw0sq / sw0)
    return np.where(k > 1, np.maximum(t, 0.0), 0.0)


def tau2_he(y, v, mask, k):
    """Hedges (1983) estimator, truncated at 0 (metafor's REML start):
    ``(sum((y - ybar)^2) - (k-1)/k sum(v)) / (k - 1)``."""
    ybar = _csum(y) / k
    d = np.where(mask, y - ybar, 0.0)
    rss = _csum(d * d)
    sv = _csum(np.where(mask, v, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (rss - (k - 1) / k * sv) / (k - 1)
    return np.where(k > 1, np.maximum(t, 0.0), 0.0)


def reml_loglik(y, v, mask, tau2):
    """Restricted log-likelihood up to the constant ``-(k-1)/2 log(2 pi)``:
    ``-1/2 [sum log(v + tau2) + log sum(w) + sum(w (y - est)^2)]``
    (Viechtbauer 2005, eq. 10; metafor adds ``+ 1/2 log k``)."""
    w, sw, est = _sums(y, v, tau2)
    r = y - est
    logw = np.log(w, out=np.zeros_like(w), where=mask)
    return -0.5 * (-_csum(logw) + np.log(sw) + _csum(w * r * r))


def reml_score(y, v, tau2, info=False):
    """REML score ``y'PPy - tr(P)`` (twice the derivative of the restricted
    log-likelihood) and, if ``info``, the information used for the step: the
    observed information ``2 y'PPPy - tr(PP)`` where it is positive (Newton),
    else the Fisher information
    ``tr(PP) = sum(w^2) - 2 sum(w^3)/sum(w) + (sum(w^2)/sum(w))^2``."""
    w, sw, est = _sums(y, v, tau2)
    wr = y - est
    wr *= w  # u = Py = w (y - est)
    w2 = w * w
    sw2 = _csum(w2)
    score = _csum(np.square(wr, out=w2 if not info else None)) - (sw - sw2 / sw)
    if not info:
        return score
    sw3 = _csum(np.multiply(w2, w, out=w2))
    tr_pp = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
    # observed information -d(score)/dtau2 = 2 y'PPPy - tr(PP), with
    # y'PPPy = u'Pu = sum(w u^2) - sum(w u)^2 / sum(w)
    wu = np.multiply(wr, w, out=w2)
    upu = _csum(wu * wr) - _csum(wu) ** 2 / sw
    obs = 2.0 * upu - tr_pp
    return score, np.where(obs > 0, obs, tr_pp)


def _scale(v, mask, k):
    """Mean within-study variance of each analysis, for relative tolerances."""
    return _csum(np.where(mask, v, 0.0)) / np.maximum(k, 1)


def _upper_bracket(f, start):
    """Smallest ``start * 2**j`` (j >= 0) at which ``f`` is negative."""
    hi = start
    for _ in range(2100):
        if f(hi) < 0:
            return hi
        hi *= 2.0
    raise FloatingPointError("no upper bracket for tau2")  # pragma: no cover


def _brentq_cols(score, tau2, cols, y, v, scale):
    """Bracketing fallback for single analyses: brentq on ``score`` over
    ``[0, upper]``; 0 when the score at 0 is not positive."""
    for i in cols:
        yi, vi = y[:, i : i + 1], v[:, i : i + 1]

        def f(t, yi=yi, vi=vi):
            return float(score(yi, vi, np.array([t]))[0])

        if f(0.0) <= 0:
            tau2[i] = 0.0
            continue
        hi = _upper_bracket(f, max(tau2[i], scale[i], 1e-300) * 2.0)
        tau2[i] = optimize.brentq(f, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)


def tau2_reml(y, v, mask, k, *, maxiter=MAXITER):
    """REML estimate of tau2 per analysis (algorithm in the module docstring)."""
    tau2 = tau2_he(y, v, mask, k)
    scale = _scale(v, mask, k)
    cols = np.flatnonzero(k > 1)
    s0 = reml_score(y[:, cols], v[:, cols], np.zeros(cols.size))
    start = tau2[cols]
    go = (start > 0) | (s0 > 0)  # others: HE = 0 and score(0) <= 0 -> tau2 = 0
    act = cols[go]
    lo_ok = (s0 > 0)[go]
    t = tau2[act]
    lo = np.zeros(act.size)
    hi = np.full(act.size, np.inf)
    step_old = np.full(act.size, np.inf)
    ya, va = y[:, act], v[:, act]
    for _ in range(maxiter):
        if act.size == 0:
            break
        s, info = reml_score(ya, va, t, info=True)
        pos, neg = s > 0, s < 0
        lo = np.where(pos, t, lo)
        lo_ok |= pos
        hi = np.where(neg, t, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = t + s / info
        below = new <= lo
        to_zero = below & ~lo_ok
        bracketed = lo_ok & np.isfinite(hi)
        # bisect when the step leaves the bracket or fails to halve
        # (Fisher scoring can oscillate around the root: this is where
        # metafor's iterations run out; Press et al. 2007, rtsafe)
        slow = bracketed & (np.abs(new - t) > 0.5 * step_old)
        bis = (below & lo_ok) | (new >= hi) | ~np.isfinite(new) | slow
        new = np.where(bis, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * t + scale[act]), new)
        new = np.where(to_zero, 0.0, new)
        new = np.where(s == 0, t, new)
        step_old = np.abs(new - t)
        tol = _RTOL * (new + scale[act])
        done = to_zero | (step_old <= tol) | (bracketed & (hi - lo <= tol))
        tau2[act] = new
        if done.any():
            keep = ~done
            act, t, lo, hi, lo_ok, step_old = act[keep], new[keep], lo[keep], hi[keep], lo_ok[keep], step_old[keep]
            ya, va = ya[:, keep], va[:, keep]
        else:
            t = new
    if act.size:
        _brentq_cols(reml_score, tau2, act, y, v, scale)
    # metafor's ll0check: tau2 = 0 if it has the higher restricted likelihood
    pos = np.flatnonzero(tau2 > 0)
    if pos.size:
        yp, vp, mp = y[:, pos], v[:, pos], mask[:, pos]
        ll_t = reml_loglik(yp, vp, mp, tau2[pos])
        ll_0 = reml_loglik(yp, vp, mp, np.zeros(pos.size))
        tau2[pos[ll_0 > ll_t]] = 0.0
    return tau2


def _pm_q(y, v, tau2, deriv=False):
    """Generalised Q(tau2) and, if ``deriv``, dQ/dtau2 = -sum(w^2 (y - est)^2)."""
    w, sw, est = _sums(y, v, tau2)
    wr = y - est
    wr *= w
    r = y - est
    q = _csum(np.multiply(wr, r, out=r))
    return (q, -_csum(np.square(wr, out=wr))) if deriv else q


def tau2_pm(y, v, mask, k, *, maxiter=MAXITER):
    """Paule & Mandel (1982) estimate of tau2 per analysis (see module docstring)."""
    tau2 = np.zeros(y.shape[1])
    df = (k - 1).astype(float)
    scale = _scale(v, mask, k)
    cols = np.flatnonzero(k > 1)
    q0 = _pm_q(y[:, cols], v[:, cols], np.zeros(cols.size))
    act = cols[q0 > df[cols]]
    ya, va = y[:, act], v[:, act]
    ybar = _csum(ya) / k[act]
    d = np.where(mask[:, act], ya - ybar, 0.0)
    lo = np.zeros(act.size)
    hi = _csum(d * d) / df[act]
    t = lo.copy()
    for _ in range(maxiter):
        if act.size == 0:
            break
        f, fp = _pm_q(ya, va, t, deriv=True)
        f -= df[act]
        lo = np.where(f > 0, t, lo)
        hi = np.where(f < 0, t, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = t - f / fp
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        new = np.where(f == 0, t, new)
        tol = _RTOL * (new + scale[act])
        done = (np.abs(new - t) <= tol) | (hi - lo <= tol)
        tau2[act] = new
        if done.any():
            keep = ~done
            act, t, lo, hi = act[keep], new[keep], lo[keep], hi[keep]
            ya, va = ya[:, keep], va[:, keep]
        else:
            t = new
    if act.size:

        def score(yi, vi, tt):
            return _pm_q(yi, vi, tt) - (np.isfinite(vi).sum(axis=0) - 1)

        _brentq_cols(score, tau2, act, y, v, scale)
    return tau2


# --------------------------------------------------------------------------- fit


CORE_KEYS = ("k", "q", "sw0", "sw0sq", "tau2", "sw", "est", "rss")


def fit_core(y, v, mask, k=None, *, method="DL", rss=False, weights=False, scratch=None):
    """The part of the fit that needs the studies: per-analysis sums and tau2.

    ``y`` (0 at padding), ``v`` (inf at padding), ``mask`` (True where a
    study exists), all ``(n, m)``; ``k`` (studies per analysis; counted from
    ``mask`` if None).  Returns 1-D arrays ``k, q`` (Cochran's Q), ``sw0,
    sw0sq`` (sums of 1/v and 1/v^2), ``tau2``, ``sw`` (sum of weights),
    ``est``, ``rss`` (``sum(w (y - est)^2)``, for HKSJ; only if ``rss``) and,
    if ``weights``, ``weights`` (n x m, percent).  ``mask`` may be None for FE
    and DL when ``k`` is given.  ``scratch``: optional sequence of three
    arrays shaped like ``y`` used as work space (``pool_many`` reuses them
    from block to block: fresh memory costs page faults).
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
    r *= r
    q = np.maximum(_dot(r, w0), 0.0)
    q[k == 1] = 0.0
    if method == "FE":
        tau2 = np.zeros(y.shape[1])
        w, sw, est = w0, sw0, est0
    else:
        if method == "DL":
            tau2 = tau2_dl(q, k, sw0, sw0sq)
        elif method == "REML":
            tau2 = tau2_reml(y, v, mask, k)
        elif method == "PM":
            tau2 = tau2_pm(y, v, mask, k)
        else:  # pragma: no cover - checked by callers
            raise ValueError(method)
        w, sw, est = _sums(y, v, tau2, w)
    out = {"k": k, "q": q, "sw0": sw0, "sw0sq": sw0sq, "tau2": tau2, "sw": sw, "est": est, "rss": None}
    if rss:
        r = np.subtract(y, est, out=tmp)
        r *= r
        out["rss"] = _dot(r, w)
    if weights:
        out["weights"] = 100.0 * w / sw
    return out


def _tq(df, p):
    """Quantile ``p`` of t with ``df`` degrees of freedom, once per distinct df."""
    return _by_df(lambda d: special.stdtrit(d, p), df)


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
        return np.full(k.shape, special.ndtri(q))
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
        if use_t and test in ADJUSTED_TESTS:
            s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / tdf)
            if test == "adhoc":  # metafor: s2w[s2w < 1] <- 1
                s2w = np.maximum(s2w, 1.0)
            se = np.where(t_used, np.sqrt(s2w / sw), se)
        stat = est / se
        zcrit = special.ndtri(1.0 - alpha / 2)
        if use_t:
            tcrit = _tq(tdf, 1.0 - alpha / 2)
            crit = np.where(t_used, tcrit, zcrit)
            p = np.where(t_used, 2.0 * special.stdtr(tdf, -np.abs(stat)), norm_sf2(stat))
        else:
            crit = zcrit
            p = norm_sf2(stat)
        half = crit * se
        ci_low = est - half
        ci_high = est + half

        if method == "FE":
            i2 = np.maximum(100.0 * (q - df) / q, 0.0)
            i2[q == 0] = np.nan  # as R's max(0, NaN)
            h2 = q / df
        else:
            vt = df * sw0 / (sw0 * sw0 - sw0sq)
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
        q_p = chi2_sf(q, tdf)
        # k = 1: metafor reports Q = 0, p = 1, I2 = 0, H2 = 1
        if one.any():
            q_p[one], i2[one], h2[one] = 1.0, 0.0, 1.0

        if pi == "default" and method == "FE":
            pi_low, pi_high = ci_low, ci_high
        else:
            pcrit = pi_crit(pi, k, crit, fe=method == "FE", level=level)
            half = pcrit * np.sqrt(tau2 if pi == "simple" else se * se + tau2)
            pi_low = est - half
            pi_high = est + half

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
    }


def fit(y, v, mask, k=None, *, method="DL", test="z", level=0.95, pi="default", weights=False, scratch=None):
    """:func:`fit_core` then :func:`finish`: the whole fit of each analysis
    (column of the ``(n, m)`` arrays); ``weights`` (n x m, percent) added if
    asked for."""
    core = fit_core(y, v, mask, k, method=method, rss=test in ADJUSTED_TESTS, weights=weights, scratch=scratch)
    out = finish(core, method=method, test=test, level=level, pi=pi)
    if weights:
        out["weights"] = core["weights"]
    return out
