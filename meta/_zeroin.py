"""Brent's root finder exactly as R's ``uniroot`` runs it, for results that must land on R's own iterate.

R's ``uniroot`` (``R_zeroin2`` in R's ``src/library/stats/src/zeroin.c``; Brent 1973) stops at
``2 eps |b| + tol/2``; a root of a step function, or one found only to ``tol`` (a saddlepoint,
a rank statistic), is then wherever R's sequence of inverse quadratic, secant and bisection
steps stops, so the library follows the same steps where a test compares with R.
"""

from __future__ import annotations

__all__ = ["zeroin"]

_EPS = 2.220446049250313e-16  # double precision machine epsilon, as R's DBL_EPSILON


def zeroin(f, a: float, b: float, fa: float, fb: float, tol: float, maxit: int = 1000) -> float:
    """Brent's (1973) root finder as R's ``uniroot`` runs it (R_zeroin2:
    inverse quadratic interpolation, secant and bisection steps, tolerance
    ``2 eps |b| + tol/2``), so that a root of a step function lands where R's does."""
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPS * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    raise ValueError("fsn: the root search for Fisher's fail-safe N did not converge")
