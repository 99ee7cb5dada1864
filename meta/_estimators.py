"""Vectorised random-effects estimators: one implementation shared by
``meta.pool.pool`` (one row) and ``meta.pool.pool_many`` (many rows).

Every function works on 2-D arrays of shape ``(m, n)``: ``m`` analyses, each
with up to ``n`` studies.  ``mask`` marks the studies that exist; at positions
where ``mask`` is False, ``y`` must hold 0 and ``v`` must hold 1 (any finite
positive value would do: their weight is forced to 0).

The formulas are those of the intercept-only model in metafor 3.8
(``rma.uni``; Viechtbauer 2010, J Stat Softw 36(3)):

* weights ``w_i = 1 / (v_i + tau2)``, estimate ``sum(w y) / sum(w)``,
  ``se = sqrt(1 / sum(w))``;
* Cochran's ``Q = sum(w0 (y - est0)^2)`` with ``w0 = 1 / v``;
* DerSimonian & Laird (1986): ``tau2 = max(0, (Q - (k-1)) / (sum(w0) - sum(w0^2)/sum(w0)))``;
* REML (Viechtbauer 2005, eq. 12): root of the restricted score
  ``sum(w^2 (y - est)^2) - tr(P)``, ``tr(P) = sum(w) - sum(w^2)/sum(w)``,
  found by Fisher scoring (step ``(y'PPy - tr P) / tr(PP)``) from the Hedges
  (HE) starting value as metafor does, with step-halving on the restricted
  log-likelihood, then :func:`scipy.optimize.brentq` for any row that has not
  converged after ``MAXITER`` steps;
* Paule & Mandel (1982): root of the generalised ``Q(tau2) = k - 1``,
  bracketed in ``[0, var(y)]`` and found by safeguarded Newton steps
  (DerSimonian & Kacker 2007), :func:`scipy.optimize.brentq` as fallback;
* Knapp & Hartung (2003) / Hartung & Knapp (2001) ("HKSJ", metafor
  ``test="knha"``): ``se^2 = s2w / sum(w)`` with
  ``s2w = sum(w (y - est)^2) / (k - 1)``, not truncated at 1, t with ``k-1`` df;
* ``I2`` and ``H2`` as metafor computes them: FE model from Q
  (``I2 = max(0, 100 (Q - (k-1)) / Q)``, ``H2 = Q / (k-1)``), random-effects
  models from tau2 and the typical within-study variance
  ``s2 = (k-1) sum(w0) / (sum(w0)^2 - sum(w0^2))`` (Higgins & Thompson 2002):
  ``I2 = 100 tau2 / (s2 + tau2)``, ``H2 = tau2 / s2 + 1``;
* prediction interval ``pi="z"``: metafor ``predict()``,
  ``est +- crit sqrt(se^2 + tau2)`` with the test's critical value (normal, or
  t with ``k-1`` df for HKSJ); ``pi="t"``: Higgins, Thompson & Spiegelhalter
  (2009), t with ``k-2`` df (NaN when ``k < 3``).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

METHODS = ("FE", "DL", "REML", "PM")
TESTS = ("z", "hksj")
PIS = ("z", "t")

MAXITER = 100  # Fisher-scoring / Newton steps before the bracketing fallback
_RTOL = 1e-13  # convergence on tau2, relative to (tau2 + mean within-study variance)


# --------------------------------------------------------------------------- sums


def _sums(y, v, mask, tau2):
    """Weights and the weighted sums every estimator needs, per row."""
    w = np.where(mask, 1.0 / (v + tau2[:, None]), 0.0)
    sw = w.sum(axis=1)
    est = (w * y).sum(axis=1) / sw
    r = np.where(mask, y - est[:, None], 0.0)
    return w, sw, est, r


def _reml_parts(y, v, mask, tau2):
    """Restricted log-likelihood (up to a constant), REML score and Fisher
    information for tau2 (Viechtbauer 2005, eqs. 10-12), per row."""
    w, sw, est, r = _sums(y, v, mask, tau2)
    w2 = w * w
    sw2 = w2.sum(axis=1)
    sw3 = (w2 * w).sum(axis=1)
    wr2 = (w * r * r).sum(axis=1)
    w2r2 = (w2 * r * r).sum(axis=1)
    log_v = np.where(mask, np.log(np.where(mask, v + tau2[:, None], 1.0)), 0.0).sum(axis=1)
    ll = -0.5 * (log_v + np.log(sw) + wr2)
    tr_p = sw - sw2 / sw
    tr_pp = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
    return ll, w2r2 - tr_p, tr_pp


def _scale(v, mask, k):
    """Typical size of a variance in each row, for relative tolerances."""
    return np.where(mask, v, 0.0).sum(axis=1) / k


# --------------------------------------------------------------------------- tau2


def tau2_dl(q, k, sw0, sw0sq):
    """DerSimonian & Laird (1986) moment estimator, truncated at 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (q - (k - 1)) / (sw0 - sw0sq / sw0)
    return np.where(k > 1, np.maximum(t, 0.0), 0.0)


def tau2_he(y, v, mask, k):
    """Hedges (1983) estimator (metafor's REML starting value), truncated at 0."""
    ybar = np.where(mask, y, 0.0).sum(axis=1) / k
    rss = np.where(mask, (y - ybar[:, None]) ** 2, 0.0).sum(axis=1)
    sv = np.where(mask, v, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (rss - (k - 1) / k * sv) / (k - 1)
    return np.where(k > 1, np.maximum(t, 0.0), 0.0)


def _upper_bracket(f, start):
    """Smallest ``start * 2**j`` (j >= 0) at which ``f`` is negative."""
    hi = start
    for _ in range(2000):
        if f(hi) < 0:
            return hi
        hi *= 2.0
    raise FloatingPointError("no upper bracket for tau2")  # pragma: no cover


def _brentq_rows(score, tau2, idx, y, v, mask, scale):
    """Per-row bracketing fallback: brentq on ``score`` over ``[0, upper]``."""
    for i in idx:
        yi, vi, mi = y[i : i + 1], v[i : i + 1], mask[i : i + 1]

        def f(t, yi=yi, vi=vi, mi=mi):
            return float(score(yi, vi, mi, np.array([t]))[0])

        if f(0.0) <= 0:
            tau2[i] = 0.0
            continue
        hi = _upper_bracket(f, max(tau2[i], scale[i], 1e-300) * 2.0)
        tau2[i] = optimize.brentq(f, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)


def _reml_score(y, v, mask, tau2):
    return _reml_parts(y, v, mask, tau2)[1]


def tau2_reml(y, v, mask, k):
    """REML estimate of tau2 per row (see module docstring).

    Fisher scoring starts, as in metafor, from the truncated Hedges estimator.
    A step that would leave ``[0, inf)`` goes to 0 when the score at 0 is not
    positive (boundary maximum) and is otherwise halved; a step that lowers the
    restricted log-likelihood is halved (up to 60 times).  Rows still moving
    after ``MAXITER`` steps are solved by brentq on the score.  As in metafor
    (``ll0check``), a positive root whose log-likelihood is below that at
    ``tau2 = 0`` is replaced by 0.
    """
    m = y.shape[0]
    tau2 = tau2_he(y, v, mask, k)
    scale = _scale(v, mask, np.maximum(k, 1))
    active = np.flatnonzero(k > 1)
    for _ in range(MAXITER):
        if active.size == 0:
            break
        ya, va, ma, ta = y[active], v[active], mask[active], tau2[active]
        ll, score, info = _reml_parts(ya, va, ma, ta)
        new = ta + score / info
        out = new < 0
        if out.any():
            s0 = _reml_score(ya[out], va[out], ma[out], np.zeros(int(out.sum())))
            new[out] = np.where(s0 <= 0, 0.0, ta[out] / 2.0)
        # step-halving on the restricted log-likelihood
        ll_new = _reml_parts(ya, va, ma, new)[0]
        worse = ll_new < ll - 1e-12 * np.abs(ll)
        for _h in range(60):
            if not worse.any():
                break
            wi = np.flatnonzero(worse)
            new[wi] = (ta[wi] + new[wi]) / 2.0
            ll_new_w = _reml_parts(ya[wi], va[wi], ma[wi], new[wi])[0]
            worse[wi] = ll_new_w < ll[wi] - 1e-12 * np.abs(ll[wi])
        change = np.abs(new - ta)
        tau2[active] = new
        done = (change <= _RTOL * (new + scale[active])) | ((new == 0) & (ta == 0))
        active = active[~done]
    if active.size:
        _brentq_rows(_reml_score, tau2, active, y, v, mask, scale)
    # ll0check, as metafor: keep tau2 = 0 if it has the higher likelihood
    pos = np.flatnonzero(tau2 > 0)
    if pos.size:
        ll_t = _reml_parts(y[pos], v[pos], mask[pos], tau2[pos])[0]
        ll_0 = _reml_parts(y[pos], v[pos], mask[pos], np.zeros(pos.size))[0]
        tau2[pos[ll_0 > ll_t]] = 0.0
    assert tau2.shape == (m,)
    return tau2


def _pm_parts(y, v, mask, tau2):
    """Generalised Q(tau2) and its derivative -sum(w^2 (y - est)^2)."""
    w, sw, est, r = _sums(y, v, mask, tau2)
    wr2 = w * r * r
    return wr2.sum(axis=1), -(w * wr2).sum(axis=1)


def tau2_pm(y, v, mask, k):
    """Paule & Mandel (1982) estimate per row: root of ``Q(tau2) = k - 1``.

    ``Q`` decreases in tau2 and ``Q(var(y)) <= k - 1`` (because
    ``w_i <= 1/tau2`` and the weighted mean minimises the weighted sum of
    squares), so the root lies in ``[0, var(y)]``; tau2 = 0 when
    ``Q(0) < k - 1`` (metafor's rule).  Newton steps from 0 are kept inside the
    shrinking bracket (bisection otherwise); brentq handles any row left after
    ``MAXITER`` steps.
    """
    tau2 = np.zeros(y.shape[0])
    df = (k - 1).astype(float)
    scale = _scale(v, mask, np.maximum(k, 1))
    cand = np.flatnonzero(k > 1)
    if cand.size == 0:
        return tau2
    q0 = _pm_parts(y[cand], v[cand], mask[cand], np.zeros(cand.size))[0]
    active = cand[q0 > df[cand]]
    ybar = np.where(mask[active], y[active], 0.0).sum(axis=1) / k[active]
    lo = np.zeros(active.size)
    hi = np.where(mask[active], (y[active] - ybar[:, None]) ** 2, 0.0).sum(axis=1) / df[active]
    t = lo.copy()
    for _ in range(MAXITER):
        if active.size == 0:
            break
        ya, va, ma = y[active], v[active], mask[active]
        f, fp = _pm_parts(ya, va, ma, t)
        f = f - df[active]
        lo = np.where(f > 0, t, lo)
        hi = np.where(f < 0, t, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = t - f / fp
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        new = np.where(f == 0, t, new)
        tol = _RTOL * (new + scale[active])
        done = (np.abs(new - t) <= tol) | (hi - lo <= tol)
        tau2[active] = new
        keep = ~done
        active, t, lo, hi = active[keep], new[keep], lo[keep], hi[keep]
    if active.size:

        def score(yi, vi, mi, tt):
            return _pm_parts(yi, vi, mi, tt)[0] - (mi.sum(axis=1) - 1)

        _brentq_rows(score, tau2, active, y, v, mask, scale)
    return tau2


# --------------------------------------------------------------------------- fit


def fit(y, v, mask, *, method="DL", test="z", level=0.95, pi="z", weights=False):
    """Fit the intercept-only model to each row; return a dict of 1-D arrays.

    Keys: ``k, estimate, se, stat, p, ci_low, ci_high, tau2, tau, i2, h2, q,
    q_df, q_p, pi_low, pi_high, test_used`` (``"z"`` where HKSJ was requested
    but k = 1, as metafor does) and, if ``weights``, ``weights`` (m x n,
    percent).
    """
    k = mask.sum(axis=1)
    one = k == 1
    w0 = np.where(mask, 1.0 / v, 0.0)
    sw0 = w0.sum(axis=1)
    sw0sq = (w0 * w0).sum(axis=1)
    est0 = (w0 * y).sum(axis=1) / sw0
    q = np.maximum((w0 * np.where(mask, y - est0[:, None], 0.0) ** 2).sum(axis=1), 0.0)
    df = k - 1

    if method == "FE":
        tau2 = np.zeros(y.shape[0])
    elif method == "DL":
        tau2 = tau2_dl(q, k, sw0, sw0sq)
    elif method == "REML":
        tau2 = tau2_reml(y, v, mask, k)
    elif method == "PM":
        tau2 = tau2_pm(y, v, mask, k)
    else:  # pragma: no cover - checked by callers
        raise ValueError(method)

    w, sw, est, r = _sums(y, v, mask, tau2)
    se = np.sqrt(1.0 / sw)
    hksj = np.full(k.shape, test == "hksj") & ~one
    with np.errstate(invalid="ignore", divide="ignore"):
        if hksj.any():
            rss = (w * r * r).sum(axis=1)
            s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / np.maximum(df, 1))
            se = np.where(hksj, np.sqrt(s2w / sw), se)
        stat = est / se
        tdf = np.maximum(df, 1)
        alpha = 1.0 - level
        crit = np.where(hksj, stats.t.isf(alpha / 2, tdf), stats.norm.isf(alpha / 2))
        p = np.where(hksj, 2 * stats.t.sf(np.abs(stat), tdf), 2 * stats.norm.sf(np.abs(stat)))
        ci_low = est - crit * se
        ci_high = est + crit * se

        trp0 = sw0 - sw0sq / sw0
        vt = df / trp0
        if method == "FE":
            i2 = np.maximum(100.0 * (q - df) / q, 0.0)
            i2 = np.where(q == 0, np.nan, i2)
            h2 = q / df
        else:
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
        q_p = stats.chi2.sf(q, tdf)
        # k = 1: metafor reports Q = 0, p = 1, I2 = 0, H2 = 1
        q = np.where(one, 0.0, q)
        q_p = np.where(one, 1.0, q_p)
        i2 = np.where(one, 0.0, i2)
        h2 = np.where(one, 1.0, h2)

        spred = np.sqrt(se * se + tau2)
        if pi == "z":
            pcrit = crit
        else:
            pcrit = np.where(k > 2, stats.t.isf(alpha / 2, np.maximum(k - 2, 1)), np.nan)
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
        "test_used": np.where(hksj, "hksj", "z") if test == "hksj" else np.full(k.shape, "z"),
    }
    if weights:
        out["weights"] = 100.0 * w / sw[:, None]
    return out
