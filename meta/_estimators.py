"""Vectorised fixed- and random-effects estimators: ONE implementation shared
by ``meta.pool.pool`` (one row), ``leave_one_out``, ``cumulative``,
``subgroups`` and ``pool_many`` (many rows).

Every function works on 2-D arrays of shape ``(m, n)``: ``m`` analyses, each
with up to ``n`` studies.  A missing study (padding) has ``y = 0`` and
``v = inf``, so its weight ``1 / (v + tau2)`` is exactly 0 and it drops out
of every weighted sum; ``mask`` (True where a study exists) is only needed
where an unweighted sum is taken.

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
* Knapp & Hartung (2003) ("HKSJ", metafor ``test="knha"``):
  ``se^2 = s2w / sum(w)``, ``s2w = sum(w (y - est)^2) / (k - 1)`` (0 if the
  sum is below machine epsilon), not truncated at 1 (as metafor 3.8), t with
  ``k - 1`` df;
* ``I2``, ``H2`` as metafor: FE model from Q (``I2 = max(0, 100 (Q - (k-1)) / Q)``,
  ``H2 = Q / (k-1)``); random-effects models from tau2 and the typical
  within-study variance ``s2 = (k-1) sum(w0) / (sum(w0)^2 - sum(w0^2))``
  (Higgins & Thompson 2002): ``I2 = 100 tau2 / (s2 + tau2)``, ``H2 = tau2/s2 + 1``;
* prediction interval ``pi="z"``: metafor ``predict()``,
  ``est +- crit sqrt(se^2 + tau2)`` with the test's critical value (normal,
  or t with ``k-1`` df for HKSJ); ``pi="t"``: Higgins, Thompson &
  Spiegelhalter (2009), t with ``k-2`` df (NaN when ``k < 3``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

METHODS = ("FE", "DL", "REML", "PM")
TESTS = ("z", "hksj")
PIS = ("z", "t")

MAXITER = 100  # Fisher-scoring / Newton steps before the brentq fallback
_RTOL = 1e-12  # convergence on tau2, relative to (tau2 + mean within-study variance)
_SQRT1_2 = math.sqrt(0.5)


# --------------------------------------------------------------------------- helpers


def _rsum(a: np.ndarray) -> np.ndarray:
    """Row sums (a matrix-vector product: much faster than ``a.sum(axis=1)``
    on short rows)."""
    return a @ np.ones(a.shape[1])


def _sums(y, v, tau2):
    """Weights, their sum, the weighted mean and the residuals, per row."""
    w = v + tau2[:, None]
    np.reciprocal(w, out=w)
    sw = _rsum(w)
    est = _rsum(w * y) / sw
    r = y - est[:, None]
    return w, sw, est, r


def norm_sf2(z):
    """Two-sided normal p-value ``2 (1 - Phi(|z|))``."""
    return special.erfc(np.abs(z) * _SQRT1_2)


def chi2_sf(x, df):
    """Upper tail of the chi-square distribution with integer ``df >= 1``.

    Closed forms (Abramowitz & Stegun 1964, 26.4.4-26.4.5), much faster than
    the incomplete gamma function on many rows: even ``df``:
    ``exp(-x/2) sum_{j < df/2} (x/2)^j / j!``; odd ``df``:
    ``2 (1 - Phi(sqrt x)) + sqrt(2x/pi) exp(-x/2) sum_{j=1}^{(df-1)/2} x^(j-1) / (1 3 ... (2j-1))``.
    Falls back to :func:`scipy.special.chdtrc` for ``df > 200``.
    """
    x = np.asarray(x, dtype=float)
    df = np.asarray(df)
    out = np.empty(x.shape)
    for d in np.unique(df):
        sel = df == d
        xs = x[sel]
        if d > 200 or d < 1:
            out[sel] = special.chdtrc(d, xs)
            continue
        h = 0.5 * xs
        e = np.exp(-h)
        if d % 2 == 0:
            term = np.ones_like(xs)
            acc = term.copy()
            for j in range(1, d // 2):
                term = term * h / j
                acc += term
            out[sel] = e * acc
        else:
            sx = np.sqrt(xs)
            res = special.erfc(sx * _SQRT1_2)
            if d > 1:
                term = np.ones_like(xs)
                acc = term.copy()
                for j in range(2, (d - 1) // 2 + 1):
                    term = term * xs / (2 * j - 1)
                    acc += term
                res = res + math.sqrt(2 / math.pi) * sx * e * acc
            out[sel] = res
    return out


def _by_df(fun, df):
    """Evaluate ``fun(d)`` once per distinct df and spread it over the rows."""
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
    ybar = _rsum(y) / k
    d = np.where(mask, y - ybar[:, None], 0.0)
    rss = _rsum(d * d)
    sv = _rsum(np.where(mask, v, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (rss - (k - 1) / k * sv) / (k - 1)
    return np.where(k > 1, np.maximum(t, 0.0), 0.0)


def reml_loglik(y, v, mask, tau2):
    """Restricted log-likelihood up to the constant ``-(k-1)/2 log(2 pi)``:
    ``-1/2 [sum log(v + tau2) + log sum(w) + sum(w (y - est)^2)]``
    (Viechtbauer 2005, eq. 10; metafor adds ``+ 1/2 log k``)."""
    w, sw, est, r = _sums(y, v, tau2)
    logw = np.log(w, out=np.zeros_like(w), where=mask)
    return -0.5 * (-_rsum(logw) + np.log(sw) + _rsum(w * r * r))


def reml_score(y, v, tau2, info=False):
    """REML score ``y'PPy - tr(P)`` (twice the derivative of the restricted
    log-likelihood) and, if ``info``, the information used for the step: the
    observed information ``2 y'PPPy - tr(PP)`` where it is positive (Newton),
    else the Fisher information
    ``tr(PP) = sum(w^2) - 2 sum(w^3)/sum(w) + (sum(w^2)/sum(w))^2``."""
    w, sw, est, r = _sums(y, v, tau2)
    wr = w * r
    w2 = w * w
    sw2 = _rsum(w2)
    score = _rsum(wr * wr) - (sw - sw2 / sw)
    if not info:
        return score
    sw3 = _rsum(w2 * w)
    tr_pp = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
    # observed information -d(score)/dtau2 = 2 y'PPPy - tr(PP), with
    # y'PPPy = u'Pu, u = Py = w r: sum(w u^2) - sum(w u)^2 / sum(w)
    upu = _rsum(wr * wr * w) - _rsum(wr * w) ** 2 / sw
    obs = 2.0 * upu - tr_pp
    return score, np.where(obs > 0, obs, tr_pp)


def _scale(v, mask, k):
    """Mean within-study variance of each row, for relative tolerances."""
    return _rsum(np.where(mask, v, 0.0)) / np.maximum(k, 1)


def _upper_bracket(f, start):
    """Smallest ``start * 2**j`` (j >= 0) at which ``f`` is negative."""
    hi = start
    for _ in range(2100):
        if f(hi) < 0:
            return hi
        hi *= 2.0
    raise FloatingPointError("no upper bracket for tau2")  # pragma: no cover


def _brentq_rows(score, tau2, rows, y, v, scale):
    """Bracketing fallback for single rows: brentq on ``score`` over
    ``[0, upper]``; 0 when the score at 0 is not positive."""
    for i in rows:
        yi, vi = y[i : i + 1], v[i : i + 1]

        def f(t, yi=yi, vi=vi):
            return float(score(yi, vi, np.array([t]))[0])

        if f(0.0) <= 0:
            tau2[i] = 0.0
            continue
        hi = _upper_bracket(f, max(tau2[i], scale[i], 1e-300) * 2.0)
        tau2[i] = optimize.brentq(f, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)


def tau2_reml(y, v, mask, k, *, maxiter=MAXITER):
    """REML estimate of tau2 per row (algorithm in the module docstring)."""
    tau2 = tau2_he(y, v, mask, k)
    scale = _scale(v, mask, k)
    rows = np.flatnonzero(k > 1)
    s0 = reml_score(y[rows], v[rows], np.zeros(rows.size))
    start = tau2[rows]
    act = rows[(start > 0) | (s0 > 0)]  # others: HE = 0 and score(0) <= 0 -> tau2 = 0
    lo_ok = (s0 > 0)[(start > 0) | (s0 > 0)]
    t = tau2[act]
    lo = np.zeros(act.size)
    hi = np.full(act.size, np.inf)
    step_old = np.full(act.size, np.inf)
    for _ in range(maxiter):
        if act.size == 0:
            break
        ya, va = y[act], v[act]
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
        keep = ~done
        act, t, lo, hi, lo_ok, step_old = act[keep], new[keep], lo[keep], hi[keep], lo_ok[keep], step_old[keep]
    if act.size:
        _brentq_rows(reml_score, tau2, act, y, v, scale)
    # metafor's ll0check: tau2 = 0 if it has the higher restricted likelihood
    pos = np.flatnonzero(tau2 > 0)
    if pos.size:
        ll_t = reml_loglik(y[pos], v[pos], mask[pos], tau2[pos])
        ll_0 = reml_loglik(y[pos], v[pos], mask[pos], np.zeros(pos.size))
        tau2[pos[ll_0 > ll_t]] = 0.0
    return tau2


def _pm_q(y, v, tau2, deriv=False):
    """Generalised Q(tau2) and, if ``deriv``, dQ/dtau2 = -sum(w^2 (y - est)^2)."""
    w, sw, est, r = _sums(y, v, tau2)
    wr = w * r
    q = _rsum(wr * r)
    return (q, -_rsum(wr * wr)) if deriv else q


def tau2_pm(y, v, mask, k, *, maxiter=MAXITER):
    """Paule & Mandel (1982) estimate of tau2 per row (see module docstring)."""
    tau2 = np.zeros(y.shape[0])
    df = (k - 1).astype(float)
    scale = _scale(v, mask, k)
    rows = np.flatnonzero(k > 1)
    q0 = _pm_q(y[rows], v[rows], np.zeros(rows.size))
    act = rows[q0 > df[rows]]
    ybar = _rsum(y[act]) / k[act]
    d = np.where(mask[act], y[act] - ybar[:, None], 0.0)
    lo = np.zeros(act.size)
    hi = _rsum(d * d) / df[act]
    t = lo.copy()
    for _ in range(maxiter):
        if act.size == 0:
            break
        f, fp = _pm_q(y[act], v[act], t, deriv=True)
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
        keep = ~done
        act, t, lo, hi = act[keep], new[keep], lo[keep], hi[keep]
    if act.size:

        def score(yi, vi, tt):
            return _pm_q(yi, vi, tt) - (np.isfinite(vi).sum(axis=1) - 1)

        _brentq_rows(score, tau2, act, y, v, scale)
    return tau2


# --------------------------------------------------------------------------- fit


def fit(y, v, mask, k=None, *, method="DL", test="z", level=0.95, pi="z", weights=False):
    """Fit the intercept-only model to each row; return a dict of 1-D arrays.

    ``y`` (0 at padding), ``v`` (inf at padding), ``mask`` (True where a
    study exists), ``k`` (studies per row; computed from ``mask`` if None).
    Keys: ``k, estimate, se, stat, p, ci_low, ci_high, tau2, tau, i2, h2, q,
    q_df, q_p, pi_low, pi_high, hksj`` (True where the HKSJ test was used:
    never for k = 1, which falls back to z as metafor does) and, if
    ``weights``, ``weights`` (m x n, percent).
    """
    if k is None:
        k = np.count_nonzero(mask, axis=1)
    k = np.asarray(k, dtype=np.int64)
    one = k == 1
    df = k - 1
    w0 = 1.0 / v
    sw0 = _rsum(w0)
    sw0sq = _rsum(w0 * w0)
    est0 = _rsum(w0 * y) / sw0
    r0 = y - est0[:, None]
    q = np.maximum(_rsum(w0 * r0 * r0), 0.0)

    if method == "FE":
        tau2 = np.zeros(y.shape[0])
        w, sw, est, r = w0, sw0, est0, r0
    else:
        if method == "DL":
            tau2 = tau2_dl(q, k, sw0, sw0sq)
        elif method == "REML":
            tau2 = tau2_reml(y, v, mask, k)
        elif method == "PM":
            tau2 = tau2_pm(y, v, mask, k)
        else:  # pragma: no cover - checked by callers
            raise ValueError(method)
        w, sw, est, r = _sums(y, v, tau2)

    se = np.sqrt(1.0 / sw)
    alpha = 1.0 - level
    hksj = (~one) if test == "hksj" else np.zeros(k.shape, bool)
    use_t = hksj.any()
    with np.errstate(invalid="ignore", divide="ignore"):
        tdf = np.maximum(df, 1)
        if use_t:
            rss = _rsum(w * r * r)
            s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / tdf)
            se = np.where(hksj, np.sqrt(s2w / sw), se)
        stat = est / se
        zcrit = special.ndtri(1.0 - alpha / 2)
        if use_t:
            tcrit = _by_df(lambda d: special.stdtrit(d, 1.0 - alpha / 2), tdf)
            crit = np.where(hksj, tcrit, zcrit)
            p = np.where(hksj, 2.0 * special.stdtr(tdf, -np.abs(stat)), norm_sf2(stat))
        else:
            crit = zcrit
            p = norm_sf2(stat)
        ci_low = est - crit * se
        ci_high = est + crit * se

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
            q[one], q_p[one], i2[one], h2[one] = 0.0, 1.0, 0.0, 1.0

        spred = np.sqrt(se * se + tau2)
        if pi == "z":
            pcrit = crit
        else:
            pcrit = np.where(k > 2, _by_df(lambda d: special.stdtrit(d, 1.0 - alpha / 2), np.maximum(k - 2, 1)), np.nan)
        pi_low = est - pcrit * spred
        pi_high = est + pcrit * spred

    out = {
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
        "hksj": hksj,
    }
    if weights:
        out["weights"] = 100.0 * w / sw[:, None]
    return out
