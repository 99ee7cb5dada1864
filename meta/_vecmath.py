"""exp, the normal tail and erfc as plain arithmetic, for the compiled kernel
of :mod:`meta._fast` (:func:`meta.pool.pool_many`, ``engine="numba"``).

A call to the C library's ``exp`` or ``erfc`` inside a loop keeps the
compiler from turning that loop into SIMD instructions (one scalar call of
~10 ns per value).  The functions here are branch-free arithmetic on one
float (every range is computed, the right one selected), so a loop over a
block of analyses that calls them, compiled with
``numba.njit(inline="always")``, runs 8 values per AVX-512 instruction.
They are also plain Python functions on floats (the tests call both).

* :func:`exp_neg_split` -- ``exp(-x) = m 2^k``: Cody & Waite (1980,
  "Software Manual for the Elementary Functions", ch. 6) range reduction
  ``r = -x - k ln2`` with ``ln2`` split in two (fdlibm's ``ln2_hi``, whose
  trailing 21 bits are zero so ``k ln2_hi`` is exact, and ``ln2_lo``), the
  rounding error of ``r`` carried to the linear term, the Taylor series of
  ``exp(r)`` to degree 13 (``|r| <= ln2/2``: truncation error below 5e-18
  relative) by Horner's rule in fused multiply-adds (:func:`fma`: the
  CPU's instruction where compiled) and ``1 + r`` summed exactly
  (Fast2Sum) before the rest is added, so the result is rounded about
  once.  The scale ``2^k`` is built from its exponent bits and applied in
  two factors (:func:`scale2`), so results down to the smallest subnormal
  are rounded once, and a caller may multiply ``m`` by a large factor
  before scaling (the chi-square tail ``exp(-h) P(h)``).
* :func:`pnorm2` -- ``2 pnorm(-|z|)``, R's ``pnorm_both`` (R 4,
  src/nmath/pnorm.c; W. J. Cody 1969, "Rational Chebyshev approximations
  for the error function", Math. Comp. 23:631-637, and Cody 1993, ACM TOMS
  19:22-32 ANORM): the same coefficients, the same order of operations in
  the rational functions, the same ranges (``|z| <= 0.67448975``,
  ``<= sqrt(32)``, ``< 37.5193``, else 0); ``exp(-z^2/2)`` by one
  :func:`exp_neg_split` of ``h = fl(z^2/2)`` times ``1 - lo``, where
  ``h + lo = z^2/2`` exactly (``lo`` from a fused multiply-add), instead of
  R's two ``exp`` of ``exp(-s^2/2) exp(-(z-s)(z+s)/2)``, ``s = trunc(16 z)/16``.
* :func:`erfc` -- Cody's ``CALERF`` (SPECFUN, Cody 1993; the 1969 paper's
  coefficients): ``erfc(x) = 1 - x R1(x^2)`` for ``x <= 0.46875``,
  ``exp(-x^2) R2(x)`` for ``x <= 4``, ``exp(-x^2) R3(x)`` above (his
  polynomials by Horner's rule in fused multiply-adds), with
  ``exp(-x^2)`` split as ``exp(-s^2) exp(-(x-s)(x+s))``, ``s = trunc(16 x)/16``; :func:`erfc_sqrt_parts` gives
  ``erfc(sqrt h)`` from ``h`` itself (``exp(-h)`` exact in its argument,
  the chi-square tail of odd df).

Accuracy, the maxima measured by tests/test_vecmath.py over the grids of
tests/r/vecmath_reference.R (R 4) and tests/r/vecmath_highprec.py (40
digits): :func:`exp_neg` within 1 ulp of R's ``exp`` for ``x`` in [0, 746]
(1 unit of 2^-1074 in the subnormal range); :func:`pnorm2` within 4 ulp of
the 40-digit ``erfc(z / sqrt 2)`` on ``z = j/64 < 37.5193`` (R's
``2 * pnorm(-z)`` as well) and within 2 ulp of R's value for ``z`` in [0, 38]; :func:`erfc` within 4 ulp of the
40-digit values on ``x = j/64 <= 28``, 5 on 4,000 scattered points (7 the
most seen on 300,000 random arguments; glibc's ``erfc`` is within 2).
"""

from __future__ import annotations

import math

import numpy as np

# Cody & Waite reduction constants (fdlibm e_exp.c): ln2_hi has 32 significant bits
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
ROUND = 6755399441055744.0  # 1.5 * 2^52: (t + ROUND) - ROUND rounds |t| < 2^51 to an integer
X_CLAMP = 1400.0  # exp(-x) for x >= 1400 is 0 even times 2^1000: k stays >= -2020, both halves of 2^k normal
# Taylor coefficients 1/j!, j = 2..13: exp(r) = 1 + r + r^2 (1/2! + r/3! + ...)
E2, E3, E4, E5, E6, E7 = 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040
E8, E9, E10, E11, E12, E13 = 1 / 40320, 1 / 362880, 1 / 3628800, 1 / 39916800, 1 / 479001600, 1 / 6227020800

# R 4 src/nmath/pnorm.c (Cody's ANORM)
PA0, PA1, PA2, PA3, PA4 = 2.2352520354606839287, 161.02823106855587881, 1067.6894854603709582, 18154.981253343561249, 0.065682337918207449113
PB0, PB1, PB2, PB3 = 47.20258190468824187, 976.09855173777669322, 10260.932208618978205, 45507.789335026729956
PC0, PC1, PC2, PC3, PC4 = 0.39894151208813466764, 8.8831497943883759412, 93.506656132177855979, 597.27027639480026226, 2494.5375852903726711
PC5, PC6, PC7, PC8 = 6848.1904505362823326, 11602.651437647350124, 9842.7148383839780218, 1.0765576773720192317e-8
PD0, PD1, PD2, PD3 = 22.266688044328115691, 235.38790178262499861, 1519.377599407554805, 6485.558298266760755
PD4, PD5, PD6, PD7 = 18615.571640885098091, 34900.952721145977266, 38912.003286093271411, 19685.429676859990727
PP0, PP1, PP2, PP3, PP4, PP5 = 0.21589853405795699, 0.1274011611602473639, 0.022235277870649807, 0.001421619193227893466, 2.9112874951168792e-5, 0.02307344176494017303
PQ0, PQ1, PQ2, PQ3, PQ4 = 1.28426009614491121, 0.468238212480865118, 0.0659881378689285515, 0.00378239633202758244, 7.29751555083966205e-5
M_1_SQRT_2PI = 0.398942280401432677939946059934
M_SQRT_32 = 5.656854249492380195206754896838
PNORM_SMALL = 0.67448975
PNORM_BIG = 37.5193

# Cody's CALERF (SPECFUN), erfc
EA0, EA1, EA2, EA3, EA4 = 3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03, 1.85777706184603153e-1
EB0, EB1, EB2, EB3 = 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03
EC0, EC1, EC2, EC3, EC4 = 5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02
EC5, EC6, EC7, EC8 = 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8
ED0, ED1, ED2, ED3 = 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03
ED4, ED5, ED6, ED7 = 3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03
EP0, EP1, EP2, EP3, EP4, EP5 = 3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2
EQ0, EQ1, EQ2, EQ3, EQ4 = 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2, 2.33520497626869185e-3
SQRPI = 5.6418958354775628695e-1  # 1/sqrt(pi)
ERFC_THRESH = 0.46875
ERFC_THRESH2 = ERFC_THRESH * ERFC_THRESH  # exact: 225/1024
ERFC_ZERO = 28.0  # erfc(x) < 1e-342 above: 0 in double precision

__all__ = ["fma", "exp_neg_split", "pow2", "scale2", "exp_neg", "pnorm2", "pnorm2_ranges", "erfc_r1", "erfc_r2", "erfc_r3", "erfc", "erfc_sqrt_parts"]


def fma(a, b, c):
    """``a b + c``: compiled (:func:`njit_namespace`), the CPU's fused
    multiply-add (one rounding); in plain Python two roundings."""
    return a * b + c


def exp_neg_split(x):
    """``(m, k)`` with ``exp(-x) = m 2^k`` for ``x >= 0`` (``m`` in [0.7, 1.42],
    ``k`` an int64); ``x >= 1400`` or NaN give ``x = 1400`` (``k = -2020``)."""
    x = x if x < X_CLAMP else X_CLAMP
    kf = (x * -INV_LN2 + ROUND) - ROUND
    hi = -x - kf * LN2_HI  # exact: kf ln2_hi has <= 43 bits and is within a factor 2 of x (Sterbenz)
    lo = kf * LN2_LO
    r = hi - lo
    err = (hi - r) - lo  # r + err = hi - lo to a few ulp of lo
    q = fma(E13, r, E12)
    q = fma(q, r, E11)
    q = fma(q, r, E10)
    q = fma(q, r, E9)
    q = fma(q, r, E8)
    q = fma(q, r, E7)
    q = fma(q, r, E6)
    q = fma(q, r, E5)
    q = fma(q, r, E4)
    q = fma(q, r, E3)
    q = fma(q, r, E2)
    hi1 = 1.0 + r
    lo1 = (1.0 - hi1) + r  # 1 + r = hi1 + lo1 exactly (Fast2Sum, |r| < 1)
    return hi1 + (lo1 + fma(r * r, q, err)), np.int64(kf)


def pow2(k):
    """``2^k`` for an int64 ``-1022 <= k <= 1023``, from its exponent bits."""
    return np.int64((k + 1023) << 52).view(np.float64)


def scale2(t, k):
    """``t 2^k`` (``-2044 <= k <= 2046``) in two factors ``2^ceil(k/2)``,
    ``2^floor(k/2)``, each a normal number: rounded once where ``t 2^ceil(k/2)``
    is normal, so down to the subnormal range."""
    half = k >> 1
    return (t * pow2(k - half)) * pow2(half)


def exp_neg(x):
    """``exp(-x)`` for ``x >= 0`` (NaN -> 0: callers select NaN themselves)."""
    m, k = exp_neg_split(x)
    return scale2(m, k)


def pnorm2(y):
    """``2 pnorm(-y)`` for ``y = |z| >= 0`` (NaN -> NaN): R 4's ``pnorm_both``,
    every range evaluated and the right one selected."""
    return pnorm2_ranges(y, True)


def pnorm2_ranges(y, big):
    """:func:`pnorm2`; with ``big`` False (a constant where compiled: the
    compiler then drops that range's code) only for ``y <= sqrt(32)`` or NaN."""
    # |z| <= 0.67448975: 0.5 - y R(y^2)
    t = y * y
    num = PA4 * t
    den = t
    num = (num + PA0) * t
    den = (den + PB0) * t
    num = (num + PA1) * t
    den = (den + PB1) * t
    num = (num + PA2) * t
    den = (den + PB2) * t
    small = 2.0 * (0.5 + (-y) * (num + PA3) / (den + PB3))
    # |z| <= sqrt(32)
    num = PC8 * y
    den = y
    num = (num + PC0) * y
    den = (den + PD0) * y
    num = (num + PC1) * y
    den = (den + PD1) * y
    num = (num + PC2) * y
    den = (den + PD2) * y
    num = (num + PC3) * y
    den = (den + PD3) * y
    num = (num + PC4) * y
    den = (den + PD4) * y
    num = (num + PC5) * y
    den = (den + PD5) * y
    num = (num + PC6) * y
    den = (den + PD6) * y
    mid = (num + PC7) / (den + PD7)
    # sqrt(32) < |z| < 37.5193
    u = 1.0 / t
    num = PP5 * u
    den = u
    num = (num + PP0) * u
    den = (den + PQ0) * u
    num = (num + PP1) * u
    den = (den + PQ1) * u
    num = (num + PP2) * u
    den = (den + PQ2) * u
    num = (num + PP3) * u
    den = (den + PQ3) * u
    tail3 = (M_1_SQRT_2PI - u * (num + PP4) / (den + PQ4)) / y
    ratio = mid if (y <= M_SQRT_32) | (not big) else tail3
    # exp(-y^2/2) = exp(-h) (1 - lo), h + lo = y^2/2 exactly (lo from a fused multiply-add)
    hy = 0.5 * y
    h = hy * y
    lo = fma(hy, y, -h)
    m, k = exp_neg_split(h)
    tail = 2.0 * scale2(fma(-m, lo, m) * ratio, k)
    p = small if y <= PNORM_SMALL else (tail if y < PNORM_BIG else 0.0)
    return p if y == y else y


def erfc_r1(t):
    """Cody's ``erf(x)/x`` for ``x <= 0.46875`` as a rational in ``t = x^2``
    (his polynomials, by Horner's rule in fused multiply-adds)."""
    num = fma(fma(fma(fma(EA4, t, EA0), t, EA1), t, EA2), t, EA3)
    den = fma(fma(fma(t + EB0, t, EB1), t, EB2), t, EB3)
    return num / den


def erfc_r2(x):
    """Cody's ``erfc(x) exp(x^2)`` for ``0.46875 < x <= 4`` (as :func:`erfc_r1`)."""
    num = fma(fma(fma(fma(fma(fma(fma(fma(EC8, x, EC0), x, EC1), x, EC2), x, EC3), x, EC4), x, EC5), x, EC6), x, EC7)
    den = fma(fma(fma(fma(fma(fma(fma(x + ED0, x, ED1), x, ED2), x, ED3), x, ED4), x, ED5), x, ED6), x, ED7)
    return num / den


def erfc_r3(x, t):
    """Cody's ``erfc(x) exp(x^2)`` for ``x > 4`` (``t = x^2``; as :func:`erfc_r1`)."""
    u = 1.0 / t
    num = fma(fma(fma(fma(fma(EP5, u, EP0), u, EP1), u, EP2), u, EP3), u, EP4)
    den = fma(fma(fma(fma(u + EQ0, u, EQ1), u, EQ2), u, EQ3), u, EQ4)
    return (SQRPI - u * num / den) / x


def erfc(x):
    """``erfc(x)`` for ``x >= 0`` (NaN -> NaN): Cody's CALERF, every range
    evaluated and the right one selected; ``exp(-x^2)`` as
    ``exp(-s^2) exp(-(x-s)(x+s))``, ``s = trunc(16 x)/16``, scaled once at
    the end (no cut-off at Cody's ``XBIG``: results run into the subnormals;
    0 from ``x = 28``)."""
    t = x * x
    small = 1.0 - x * erfc_r1(t)
    r2 = erfc_r2(x)
    r3 = erfc_r3(x, t)
    ratio = r2 if x <= 4.0 else r3
    s = np.trunc(x * 16.0) * 0.0625
    m1, k1 = exp_neg_split(s * s)
    m2, k2 = exp_neg_split((x - s) * (x + s))
    k = k1 + k2
    tail = scale2((m1 * m2) * ratio, k if k > -2044 else -2044)
    p = small if x <= ERFC_THRESH else (tail if x < ERFC_ZERO else 0.0)
    return p if x == x else x


def erfc_sqrt_parts(h, sh, big):
    """``erfc(sqrt h)`` from ``h >= 0`` and ``sh = sqrt(h)`` as ``(small, ratio)``:
    ``erfc(sqrt h) = small`` where ``h <= 0.46875^2``, else ``exp(-h) ratio``.
    ``exp(-h)`` is left to the caller (the chi-square tail of odd df shares it,
    with ``h`` exact where ``sh^2`` would be rounded).  With ``big`` False (a
    constant where compiled) only for ``h <= 16``."""
    small = 1.0 - sh * erfc_r1(h)
    r2 = erfc_r2(sh)
    r3 = erfc_r3(sh, h) if big else r2
    ratio = r2 if sh <= 4.0 else r3
    return small, ratio


def njit_namespace(numba):
    """A module of these functions compiled with ``numba.njit(inline="always")``
    and calling one another compiled (``numba`` passed in: it is imported by
    the caller, on first use only)."""
    import types

    mod = types.ModuleType(__name__ + "_njit")
    glb = {**globals()}
    mod.fma = _fma_intrinsic(numba)
    for name in __all__:
        if name == "fma":
            continue
        fn = globals()[name]
        clone = types.FunctionType(fn.__code__, glb, fn.__name__)
        clone.__qualname__, clone.__module__, clone.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
        setattr(mod, name, numba.njit(inline="always", error_model="numpy")(clone))
    glb.update({name: getattr(mod, name) for name in __all__})
    return mod


def _fma_intrinsic(numba):
    """``llvm.fma.f64`` as a numba function of three floats (vectorised like
    any arithmetic where it stands in a loop)."""
    from llvmlite import ir
    from numba.core import types as nt
    from numba.core.extending import intrinsic

    @intrinsic
    def fma_f64(typingctx, a, b, c):
        sig = nt.float64(nt.float64, nt.float64, nt.float64)

        def codegen(context, builder, signature, args):
            dbl = ir.DoubleType()
            fn = builder.module.declare_intrinsic("llvm.fma", [dbl], ir.FunctionType(dbl, [dbl, dbl, dbl]))
            return builder.call(fn, args)

        return sig, codegen

    @numba.njit(inline="always")
    def fma(a, b, c):
        return fma_f64(float(a), float(b), float(c))

    return fma
