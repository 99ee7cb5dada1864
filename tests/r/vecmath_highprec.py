"""Reference values for tests/test_vecmath.py that R cannot give: the
chi-square upper tail and erfc to 40 significant digits, from their series
in Python's ``decimal`` arithmetic (independent of the double-precision code
under test).

    python tests/r/vecmath_highprec.py     (from the repository root, ~1 min)

writes tests/fixtures/vecmath_highprec.json (17 significant digits).

``2 pnorm(-z)`` is ``erfc(z / sqrt 2)`` (the argument divided at 70 digits).

Why not R alone: R's ``pchisq`` computes the far upper tail through
logarithms and is off by up to ~750 ulp there (q ~ 1400, tests/r/vecmath_reference.R
keeps its values as well), and R has no ``erfc`` of its own (``2 pnorm(-x sqrt 2)``
rounds the argument).

* ``erfc(x) = 1 - (2/sqrt(pi)) sum_n (-1)^n x^(2n+1) / (n! (2n+1))`` (Abramowitz
  & Stegun 7.1.5), summed with ``2 x^2 / ln(10) + 60`` digits so that the
  cancellation of terms as large as ``exp(x^2)`` leaves 40 correct digits;
* chi-square upper tail, integer df (A&S 26.4.4-26.4.5): even df
  ``exp(-x/2) sum_{j < df/2} (x/2)^j / j!``, odd df
  ``erfc(sqrt(x/2)) + sqrt(2x/pi) exp(-x/2) sum_{r=1}^{(df-1)/2} x^(r-1) / (1 3 ... (2r-1))``;
* pi from Machin's formula ``pi = 16 atan(1/5) - 4 atan(1/239)``.

The arguments are the dyadic grids of tests/r/vecmath_reference.R (exact in
binary, rebuilt bit for bit by the test).
"""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from pathlib import Path

DIGITS = 40


def _atan_inv(n: int, prec: int) -> Decimal:
    """atan(1/n) by its Taylor series at ``prec`` digits."""
    with localcontext() as c:
        c.prec = prec + 10
        x = Decimal(1) / n
        x2 = x * x
        total, term, k = x, x, 1
        eps = Decimal(10) ** (-(prec + 5))
        while True:
            term = -term * x2
            add = term / (2 * k + 1)
            if abs(add) < eps:
                return total
            total += add
            k += 1


def pi(prec: int) -> Decimal:
    """pi to ``prec`` digits (Machin)."""
    with localcontext() as c:
        c.prec = prec + 10
        return 16 * _atan_inv(5, prec) - 4 * _atan_inv(239, prec)


def erfc(x: float | Decimal) -> Decimal:
    """erfc(x), x >= 0, to DIGITS significant digits (Taylor series of erf)."""
    x = Decimal(x)
    prec = DIGITS + int(2 * float(x) ** 2 / 2.302585) + 60
    with localcontext() as c:
        c.prec = prec
        x2 = x * x
        term, total, n = x, Decimal(0), 0
        eps = Decimal(10) ** (-prec)
        while True:
            add = term / (2 * n + 1)
            total += add if n % 2 == 0 else -add
            n += 1
            term = term * x2 / n
            if n > 10 and term < eps:
                break
        return 1 - 2 * total / pi(prec).sqrt()


def chi2_sf(q: float, df: int, erfc_sqrt_h: Decimal | None = None) -> Decimal:
    """Upper tail of the chi-square distribution at ``q`` with integer ``df``
    (``erfc_sqrt_h``: erfc(sqrt(q/2)) if already known)."""
    x = Decimal(q)
    with localcontext() as c:
        c.prec = DIGITS + 30
        h = x / 2
        if df % 2 == 0:
            total, term = Decimal(0), Decimal(1)
            for j in range(df // 2):
                total += term
                term = term * h / (j + 1)
            return (-h).exp() * total
        total, term = Decimal(0), Decimal(1)
        for r in range(1, (df - 1) // 2 + 1):
            if r > 1:
                term = term * x / (2 * r - 1)
            total += term
        tail = erfc(h.sqrt()) if erfc_sqrt_h is None else erfc_sqrt_h
        return tail + (2 * x / pi(c.prec)).sqrt() * (-h).exp() * total


def sqrt_half(q: float) -> Decimal:
    """sqrt(q/2) to DIGITS + 30 digits."""
    with localcontext() as c:
        c.prec = DIGITS + 30
        return (Decimal(q) / 2).sqrt()


def q_grid() -> list[float]:
    """q = m 2^e, m = 1, 1.125, ..., 1.875, e = -27 ... 10, q <= 1500 (as the R script)."""
    return sorted(q for q in ((1 + i / 8) * 2.0**e for i in range(8) for e in range(-27, 11)) if q <= 1500)


def q_edges() -> list[float]:
    """q next to the range boundaries of erfc(sqrt(q/2)), in the order of the
    R script's ``as.vector(outer(...))``."""
    return [b * (1 + j * 2.0**-52) for j in range(-3, 4) for b in (2 * 0.46875**2, 32.0)] + [1e-300, 5e-324]


def erfc_grid() -> list[float]:
    """x = j/64, j = 0 ... 28*64 (erfc is 0 in double precision from x ~ 27.3)."""
    return [j / 64 for j in range(28 * 64 + 1)]


def erfc_scattered() -> list[float]:
    """x = 28 frac(j g), g = (sqrt 5 - 1)/2, j = 1 ... 4000: arguments off the dyadic grid."""
    g = 0.6180339887498949
    return [(j * g) % 1.0 * 28.0 for j in range(1, 4001)]


def pnorm2_grid() -> list[float]:
    """z = j/64 below R's cut-off 37.5193 (``2 pnorm(-z)`` is 0 in R above)."""
    return [j / 64 for j in range(37 * 64 + 33)]


def pnorm2(z: float) -> Decimal:
    """2 pnorm(-z) = erfc(z / sqrt 2) to DIGITS significant digits."""
    with localcontext() as c:
        c.prec = DIGITS + 30
        x = Decimal(z) / Decimal(2).sqrt()
    return erfc(x)


def main() -> None:
    def g17(d: Decimal) -> float:
        """The double nearest to ``d`` (via 25 significant digits)."""
        return float(f"{d:.25e}")

    qs = q_grid() + q_edges()
    tails = {q: erfc(sqrt_half(q)) for q in qs}
    out = {
        "digits": DIGITS,
        "erfc": [g17(erfc(x)) for x in erfc_grid()],
        "erfc_scattered": [g17(erfc(x)) for x in erfc_scattered()],
        "pnorm2": [g17(pnorm2(z)) for z in pnorm2_grid()],
        "chisq_q": qs,
        "chisq": [[g17(chi2_sf(q, df, tails[q])) for q in qs] for df in range(1, 31)],
    }
    path = Path("tests/fixtures/vecmath_highprec.json")
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
