"""Closed forms shared by the numpy estimators (:mod:`meta._estimators`),
the one-analysis path of :func:`meta.pool.pool` and the compiled kernel
(:mod:`meta._fast`): ONE source for each formula.

Every function here is plain arithmetic on its arguments plus ``np.sqrt``,
``np.exp``, ``np.abs`` and ``np.maximum``, so the same function works

* on numpy arrays (one value per analysis, :func:`meta._estimators.finish`),
* on Python or numpy floats (``pool()`` with one analysis), and
* inside ``numba.njit`` (numba compiles these numpy calls on scalars to the
  C library's functions; :mod:`meta._fast` wraps the functions with
  ``numba.njit(inline="always")``).

Hence no ``np.where`` (branches belong to the caller) and no scipy: the
normal tail ``erfc`` is passed in by the caller where a formula needs it
(``scipy.special.erfc`` on arrays, :func:`math.erfc` on scalars; both are
accurate to a few ulp).  The compiled kernel takes the closed forms of
the intervals, tau2 and I2 from here; its p-value and chi-square tail use
the branch-free special functions of :mod:`meta._vecmath` (same closed
form of the tail, one ``exp`` shared by its two terms); the two engines'
``p`` and ``q_p`` agree to ~1e-14 relative.

Sources (intercept-only model of metafor 3.8 ``rma.uni``; Viechtbauer 2010):

* DerSimonian & Laird (1986): ``tau2 = max(0, (Q - df) / (sum(w0) - sum(w0^2)/sum(w0)))``;
* Higgins & Thompson (2002): typical within-study variance
  ``s2 = df sum(w0) / (sum(w0)^2 - sum(w0^2))``, ``I2 = 100 tau2 / (s2 + tau2)``,
  ``H2 = tau2 / s2 + 1`` (random effects); ``I2 = max(0, 100 (Q - df) / Q)``,
  ``H2 = Q / df`` (fixed effect), as metafor;
* chi-square upper tail, integer df (Abramowitz & Stegun 1964, 26.4.4-26.4.5):
  even df ``exp(-h) P(h)``, odd df ``sqrt(h) exp(-h) P(h) + erfc(sqrt h)``
  with ``h = x/2`` and ``P`` a polynomial with positive coefficients
  (:data:`meta._estimators.CHI2_TABLE`), evaluated by Horner's rule;
* normal two-sided p: ``erfc(|z| / sqrt 2)``;
* Knapp & Hartung (2003) / metafor ``test="knha"``: ``s2w = sum(w (y - est)^2) / df``
  (0 if the sum is below machine epsilon), ``"adhoc"``: ``max(1, s2w)``;
  ``se = sqrt(s2w / sum(w))``;
* intervals ``est -+ crit se``; prediction interval
  ``est -+ crit sqrt(se^2 + tau2)`` (``pi="simple"``: ``crit sqrt(tau2)``;
  metafor ``predict.rma``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "tau2_dl", "typical_variance", "i2_from_tau2", "h2_from_tau2", "i2_from_q", "h2_from_q",
    "chi2_poly", "chi2_sf_even", "chi2_sf_odd", "z_arg", "hksj_factor", "adjusted_se", "interval", "pi_bounds",
]

SQRT1_2 = math.sqrt(0.5)
EPS = float(np.finfo(float).eps)


def tau2_dl(q, df, sw0, sw0sq):
    """DerSimonian & Laird (1986) tau2 from Cochran's Q (df = k - 1 >= 1), truncated at 0."""
    return np.maximum((q - df) / (sw0 - sw0sq / sw0), 0.0)


def typical_variance(df, sw0, sw0sq):
    """Higgins & Thompson (2002) typical within-study variance ``s2``."""
    return df * sw0 / (sw0 * sw0 - sw0sq)


def i2_from_tau2(tau2, s2):
    """I2 (percent) of a random-effects model, as metafor: ``100 tau2 / (s2 + tau2)``."""
    return 100.0 * tau2 / (s2 + tau2)


def h2_from_tau2(tau2, s2):
    """H2 of a random-effects model, as metafor: ``tau2 / s2 + 1``."""
    return tau2 / s2 + 1.0


def i2_from_q(q, df):
    """I2 (percent) of the fixed-effect model: ``max(0, 100 (Q - df) / Q)``;
    Q = 0 (k > 1) gives ``max(0, -inf) = 0``, as metafor."""
    return np.maximum(100.0 * (q - df) / q, 0.0)


def h2_from_q(q, df):
    """H2 of the fixed-effect model: ``Q / df``."""
    return q / df


def chi2_poly(tab, h, d, jmax):
    """Horner's rule for the polynomial ``P(h)`` of the chi-square tail with
    ``d`` degrees of freedom (``d`` an int or an int array; ``tab[j]`` the
    coefficients of ``h^j`` by df; ``jmax`` terms, the longest sum needed).
    In-place updates: on arrays they save the temporaries (page faults on
    ~65,000 analyses at once), on scalars they are plain assignments."""
    acc = tab[jmax - 1][d]  # a new array (or scalar): safe to update in place
    for j in range(jmax - 2, -1, -1):
        acc *= h
        acc += tab[j][d]
    return acc


def chi2_sf_even(acc, h):
    """Chi-square upper tail, even df: ``exp(-h) P(h)`` (``acc = P(h)``, updated in place)."""
    acc *= np.exp(-h)
    return acc


def chi2_sf_odd(acc, h, sh, erfc_sh):
    """Chi-square upper tail, odd df: ``sqrt(h) exp(-h) P(h) + erfc(sqrt h)``
    (``acc = P(h)``, updated in place; ``sh = sqrt(h)``, ``erfc_sh = erfc(sh)``
    from the caller)."""
    acc *= sh
    acc *= np.exp(-h)
    acc += erfc_sh
    return acc


def z_arg(stat):
    """Argument of the two-sided normal p-value ``erfc(|z| / sqrt 2)``."""
    return np.abs(stat) * SQRT1_2


def hksj_factor(rss, df, adhoc):
    """Knapp & Hartung (2003) factor ``s2w = rss / df`` (0 if ``rss <= eps``;
    with ``adhoc``, at least 1), metafor ``test="knha"`` / ``"adhoc"``."""
    s2w = (rss > EPS) * (rss / df)
    return np.maximum(s2w, 1.0) if adhoc else s2w


def adjusted_se(s2w, sw):
    """Knapp-Hartung standard error ``sqrt(s2w / sum(w))``."""
    return np.sqrt(s2w / sw)


def interval(est, crit, se):
    """``est -+ crit se`` (confidence interval)."""
    half = crit * se
    return est - half, est + half


def pi_bounds(est, crit, se, tau2, simple):
    """Prediction interval ``est -+ crit sqrt(se^2 + tau2)`` (``simple``:
    ``crit sqrt(tau2)``, metafor ``pi.type="simple"``)."""
    half = crit * np.sqrt(tau2 if simple else se * se + tau2)
    return est - half, est + half
