"""Standardised mean differences (SMD) and the routes to them.

Every function is vectorised and returns a :class:`pandas.DataFrame` with
columns ``yi`` (the bias-corrected SMD, Hedges' g) and ``vi`` (its sampling
variance), plus boolean flag columns where relevant (``p_inequality``).
Sign convention: **group 1 minus group 2** (``smd_paired``: post minus pre).

Variance options (``variance=``), named after metafor's ``escalc(vtype=)``:

``"ls"`` (default)
    metafor ``escalc(measure="SMD")`` default ``vtype="LS"``: exact small-sample
    correction ``J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))`` with
    ``m = n1 + n2 - 2`` (Hedges 1981; Hedges & Olkin 1985, ch. 5; computed on
    the log scale exactly as metafor's ``.cmicalc``), ``g = J d`` and
    ``vi = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2))`` (Hedges & Olkin 1985, ch. 5,
    with g in place of delta).
``"ub"``
    metafor ``vtype="UB"``, the unbiased estimator of the variance
    (Hedges 1983): ``vi = 1/n1 + 1/n2 + (1 - (m - 2) / (m J^2)) g^2``.
``"revman"``
    Deeks & Higgins (2010), *Statistical algorithms in Review Manager 5*:
    ``J = 1 - 3 / (4N - 9)``, ``vi = N / (n1 n2) + g^2 / (2 (N - 3.94))`` with
    ``N = n1 + n2``. Identical to statsmodels
    ``stats.meta_analysis.effectsize_smd``.

Input rules (all functions)
---------------------------
* Each numeric argument is a scalar or a 1-d array-like (list, numpy array,
  pandas Series). Scalars are repeated to the common length. All non-scalar
  arguments must have the *same* length; a length-1 array is **not** stretched
  (that is usually a mistake) -- pass a scalar instead.
* If any argument is a pandas Series, the result keeps the first Series'
  index. Several Series are paired by label (:func:`meta._checks.align`, as
  everywhere in meta): the same labels in another order are reordered to the
  first Series' order; different labels are refused (never paired silently
  by position). A Series beside a plain array is taken by position.
* No NaN or inf, no booleans or complex numbers. Sample sizes must be whole
  numbers >= 2 (``smd_paired``: >= 3, because the correction J needs
  ``n - 1 > 1`` degrees of freedom). Results that overflow (non-finite yi or
  vi from finite input) are refused.
* Bad input raises ``ValueError`` naming the argument, the rule, the 0-based
  positions of the offending rows (and their index labels for a Series with a
  non-default index) and the offending values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from meta import _checks, _lazy

__all__ = [
    "VARIANCES",
    "hedges_j",
    "smd",
    "smd_from_t",
    "smd_from_p",
    "smd_from_md",
    "smd_from_d",
    "smd_paired",
    "smd_from_d_ci",
    "smd_change",
    "smd_from_dz",
]

VARIANCES = ("ls", "ub", "revman")
_P_OPERATORS = ("=", "<")
_INEQUALITY = ("error", "bound")
_MAX_SHOWN = 10


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------
class _Inputs:
    """Validated, broadcast 1-d float arrays plus the index to return."""

    def __init__(self, args: dict[str, Any], *, strings: Sequence[str] = ()):
        # Series are paired by label, as everywhere in meta (one mechanism:
        # meta._checks.align): same labels in another order are reordered to
        # the first Series' order, different labels are refused
        args, self.index = _checks.align(args)
        arrays: dict[str, np.ndarray] = {}
        scalar: dict[str, bool] = {}
        for name, value in args.items():
            if name not in strings:
                _checks.real(value, name)  # booleans, complex numbers
            if isinstance(value, pd.Series):
                if name in strings:
                    value = value.to_numpy(dtype=object)
                else:
                    try:  # nullable dtypes (Int64, Float64): pd.NA -> NaN, reported below
                        value = value.to_numpy(dtype=float, na_value=np.nan)
                    except (TypeError, ValueError):
                        raise ValueError(
                            f"{name} must be numeric; got a Series of dtype {value.dtype}"
                        ) from None
            if isinstance(value, pd.DataFrame):
                raise ValueError(f"{name} must be a scalar or 1-d array, got a DataFrame")
            arr = np.asarray(value, dtype=object if name in strings else None)
            if arr.ndim > 1:
                raise ValueError(
                    f"{name} must be a scalar or 1-d array, got shape {arr.shape}"
                )
            if name not in strings:
                if arr.dtype == bool or not (
                    np.issubdtype(arr.dtype, np.number) or arr.dtype == object
                ):
                    raise ValueError(
                        f"{name} must be numeric, got dtype {arr.dtype}"
                    )
                try:
                    arr = arr.astype(float)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{name} must be numeric; could not convert {value!r} to numbers"
                    ) from None
            scalar[name] = arr.ndim == 0
            arrays[name] = arr

        lengths = {n: a.shape[0] for n, a in arrays.items() if not scalar[n]}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{n} has {k}" for n, k in lengths.items())
            raise ValueError(
                "inputs must be scalars or 1-d arrays of one common length; "
                f"got lengths: {shown}. (Scalars are repeated; length-1 arrays are "
                "not stretched.)"
            )
        self.k = next(iter(lengths.values())) if lengths else 1
        if self.index is not None and len(self.index) != self.k:  # pragma: no cover
            raise ValueError("internal error: index length mismatch")
        self.values = {n: np.broadcast_to(a, (self.k,)).copy() if scalar[n] else a
                       for n, a in arrays.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    # -- checks --------------------------------------------------------------
    def _labels(self, pos: np.ndarray) -> str:
        if self.index is None or isinstance(self.index, pd.RangeIndex) and (
            self.index.start == 0 and self.index.step == 1
        ):
            return ""
        labels = [self.index[i] for i in pos[:_MAX_SHOWN]]
        return f" (index labels {labels})"

    def fail(self, name: str, rule: str, bad: np.ndarray) -> None:
        """Raise if any element of boolean mask ``bad`` is True."""
        if not np.any(bad):
            return
        pos = np.flatnonzero(bad)
        vals = self.values[name][pos[:_MAX_SHOWN]].tolist()
        more = f" ... and {pos.size - _MAX_SHOWN} more" if pos.size > _MAX_SHOWN else ""
        raise ValueError(
            f"{name} {rule}; bad at positions {pos[:_MAX_SHOWN].tolist()}"
            f"{self._labels(pos)}: {vals}{more}"
        )

    def finite(self, *names: str) -> None:
        for n in names:
            self.fail(n, "must be finite (not NaN or inf)", ~np.isfinite(self[n]))

    def positive(self, *names: str) -> None:
        self.finite(*names)
        for n in names:
            self.fail(n, "must be > 0", self[n] <= 0)

    def sample_size(self, *names: str, minimum: int = 2) -> None:
        self.finite(*names)
        for n in names:
            self.fail(n, f"must be >= {minimum} (a sample size)", self[n] < minimum)
        for n in names:
            self.fail(n, "must be a whole number (a sample size)", self[n] != np.round(self[n]))

    def results(self, yi: np.ndarray, vi: np.ndarray) -> None:
        """Finite input can still overflow (``m1 = 1e308``): refuse, naming the inputs."""
        bad = ~(np.isfinite(yi) & np.isfinite(vi))
        if np.any(bad):
            names = ", ".join(n for n in self.values if self.values[n].dtype != object)
            raise ValueError(
                f"{names} give a non-finite yi or vi (overflow) at positions "
                f"{np.flatnonzero(bad)[:_MAX_SHOWN].tolist()}{self._labels(np.flatnonzero(bad))}: "
                "the values are too large or too small for double precision; rescale them"
            )

    def p_value(self, name: str = "p") -> None:
        self.finite(name)
        p = self[name]
        self.fail(name, "must be a two-sided p-value in (0, 1]", (p <= 0) | (p > 1))

    def direction(self, name: str = "direction") -> None:
        self.finite(name)
        self.fail(
            name,
            "must be +1 (group 1 higher) or -1 (group 1 lower)",
            ~np.isin(self[name], (1.0, -1.0)),
        )

    def correlation(self, name: str = "r") -> None:
        self.finite(name)
        r = self[name]
        self.fail(name, "must be a correlation strictly between -1 and 1",
                  (r <= -1) | (r >= 1))

    def p_operator(self, inequality: str, name: str = "p_operator") -> np.ndarray:
        """Validate ``p_operator``; return the boolean ``p_inequality`` column."""
        op = np.array([str(v).strip() for v in self[name]], dtype=object)
        self.values[name] = op
        bad = ~np.isin(op, _P_OPERATORS)
        if np.any(bad):
            pos = np.flatnonzero(bad)
            raise ValueError(
                f"{name} must be '=' (exact p) or '<' (p reported as 'P < x'); "
                f"bad at positions {pos[:_MAX_SHOWN].tolist()}{self._labels(pos)}: "
                f"{op[pos[:_MAX_SHOWN]].tolist()}. A result reported only as "
                "'P > x' or 'NS' cannot be converted to an SMD."
            )
        ineq = op == "<"
        if inequality == "error" and np.any(ineq):
            pos = np.flatnonzero(ineq)
            raise ValueError(
                f"p is reported as an inequality ('P < x') at positions "
                f"{pos[:_MAX_SHOWN].tolist()}{self._labels(pos)}: "
                f"{self['p'][pos[:_MAX_SHOWN]].tolist()}. An inequality does not give an "
                "exact t, so the SMD is not identified. Choices: supply the exact p or "
                "another statistic (t, CI, SE, group SDs); or pass inequality='bound' "
                "to treat 'P < x' as 'P = x', which under-states |g| and marks the rows "
                "p_inequality=True."
            )
        return ineq

    def frame(self, yi: np.ndarray, vi: np.ndarray, **flags: np.ndarray) -> pd.DataFrame:
        self.results(np.asarray(yi, float), np.asarray(vi, float))
        data = {"yi": np.asarray(yi, float), "vi": np.asarray(vi, float)}
        data.update({k: np.asarray(v, bool) for k, v in flags.items()})
        return pd.DataFrame(data, index=self.index)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


# --------------------------------------------------------------------------
# the correction and the variances
# --------------------------------------------------------------------------
def hedges_j(m: Any) -> np.ndarray:
    """Exact small-sample bias correction J(m) for Cohen's d with m df.

    ``J(m) = Gamma(m/2) / (sqrt(m/2) * Gamma((m-1)/2))`` (Hedges 1981;
    Hedges & Olkin 1985, ch. 5), evaluated on the log scale as metafor's
    ``.cmicalc``: ``exp(lgamma(m/2) - log(sqrt(m/2)) - lgamma((m-1)/2))``.
    NaN for ``m <= 1`` (as metafor).  Masked arrays with masked values are
    refused (:func:`meta._checks.not_masked`).
    """
    _checks.not_masked(m, "m")
    m = np.asarray(m, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.exp(
            _lazy.special().gammaln(m / 2) - np.log(np.sqrt(m / 2)) - _lazy.special().gammaln((m - 1) / 2)
        )
    return np.where(m <= 1, np.nan, out)


def _g_vi(d: np.ndarray, n1: np.ndarray, n2: np.ndarray, variance: str):
    """Hedges' g and its variance from Cohen's d (pooled-SD standardiser)."""
    n = n1 + n2
    if variance == "revman":
        # Deeks & Higgins 2010, RevMan 5 statistical algorithms
        g = (1 - 3 / (4 * n - 9)) * d
        return g, n / (n1 * n2) + g**2 / (2 * (n - 3.94))
    m = n - 2
    j = hedges_j(m)
    g = j * d
    if variance == "ls":  # metafor escalc SMD, vtype="LS"
        return g, 1 / n1 + 1 / n2 + g**2 / (2 * n)
    # variance == "ub": metafor escalc SMD, vtype="UB" (Hedges 1983)
    return g, 1 / n1 + 1 / n2 + (1 - (m - 2) / (m * j**2)) * g**2


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
def smd(m1, sd1, n1, m2, sd2, n2, *, variance: str = "ls") -> pd.DataFrame:
    """Standardised mean difference (Hedges' g), group 1 minus group 2.

    ``d = (m1 - m2) / s_p`` with the pooled SD
    ``s_p = sqrt(((n1 - 1) sd1^2 + (n2 - 1) sd2^2) / (n1 + n2 - 2))``
    (Hedges & Olkin 1985), then ``g = J d`` with J and ``vi`` as set by
    ``variance`` (see the module docstring):

    * ``"ls"``: metafor ``escalc("SMD", vtype="LS")`` (the metafor default);
    * ``"ub"``: metafor ``escalc("SMD", vtype="UB")``;
    * ``"revman"``: Deeks & Higgins 2010 (RevMan 5), as statsmodels
      ``effectsize_smd``.

    Returns a DataFrame with columns ``yi``, ``vi``.
    """
    _check_choice("variance", variance, VARIANCES)
    x = _Inputs(dict(m1=m1, sd1=sd1, n1=n1, m2=m2, sd2=sd2, n2=n2))
    x.finite("m1", "m2")
    x.positive("sd1", "sd2")
    x.sample_size("n1", "n2")
    n1, n2 = x["n1"], x["n2"]
    sp = np.sqrt(((n1 - 1) * x["sd1"] ** 2 + (n2 - 1) * x["sd2"] ** 2) / (n1 + n2 - 2))
    yi, vi = _g_vi((x["m1"] - x["m2"]) / sp, n1, n2, variance)
    return x.frame(yi, vi)


def smd_from_d(d, n1, n2, *, variance: str = "ls") -> pd.DataFrame:
    """SMD from a reported Cohen's d (pooled-SD standardiser, not yet corrected).

    Applies the small-sample correction J for ``variance`` and computes ``vi``
    from the corrected g and the n's; equals metafor
    ``escalc("SMD", di=d, n1i=n1, n2i=n2)`` for ``"ls"``/``"ub"``.
    Do not pass a value that is already Hedges' g (it would be corrected twice).
    """
    _check_choice("variance", variance, VARIANCES)
    x = _Inputs(dict(d=d, n1=n1, n2=n2))
    x.finite("d")
    x.sample_size("n1", "n2")
    yi, vi = _g_vi(x["d"], x["n1"], x["n2"], variance)
    return x.frame(yi, vi)


def smd_from_t(t, n1, n2, *, variance: str = "ls") -> pd.DataFrame:
    """SMD from an independent-samples (pooled-variance) t statistic.

    ``d = t sqrt(1/n1 + 1/n2)`` (Hedges & Olkin 1985; Borenstein et al. 2009,
    ch. 7), then J and ``vi`` as set by ``variance``. The sign of ``t`` must
    follow group 1 minus group 2. Equals metafor
    ``escalc("SMD", ti=t, n1i=n1, n2i=n2)`` for ``"ls"``/``"ub"``.
    A Welch t (unequal variances) is not the pooled t; the result is then
    only approximate.
    """
    _check_choice("variance", variance, VARIANCES)
    x = _Inputs(dict(t=t, n1=n1, n2=n2))
    x.finite("t")
    x.sample_size("n1", "n2")
    n1, n2 = x["n1"], x["n2"]
    yi, vi = _g_vi(x["t"] * np.sqrt(1 / n1 + 1 / n2), n1, n2, variance)
    return x.frame(yi, vi)


def _t_ppf(q, df):
    """``scipy.stats.t.ppf(q, df)`` (= ``stdtrit(df, q)``, the same bits) without importing scipy.stats (~0.5 s)."""
    return np.asarray(_lazy.special().stdtrit(np.asarray(df, dtype=float), np.asarray(q, dtype=float)))[()]


def _t_isf(q, df):
    """``scipy.stats.t.isf(q, df)`` (= ``-stdtrit(df, q)``; ``q = 0`` gives inf and ``q = 0.5`` gives +0, as scipy.stats)."""
    q = np.asarray(q, dtype=float)
    return (np.where(q == 0, np.inf, -_t_ppf(q, df)) + 0.0)[()]


def _t_from_p(p: np.ndarray, df: np.ndarray) -> np.ndarray:
    """|t| with two-sided p-value p on df degrees of freedom: qt(1 - p/2, df)."""
    return _t_isf(p / 2, df)


def smd_from_p(p, n1, n2, direction, *, p_operator="=", inequality: str = "error",
               variance: str = "ls") -> pd.DataFrame:
    """SMD from a two-sided p-value of a pooled-variance t test.

    ``|t| = qt(1 - p/2, n1 + n2 - 2)`` (Cochrane Handbook 6.5.2.3), signed by
    ``direction`` (+1 if group 1 had the higher mean, -1 if lower), then
    :func:`smd_from_t`.

    ``p_operator`` (scalar or per row) is ``"="`` for an exact p or ``"<"``
    for a p reported as an inequality ("P < .05"). Inequalities never silently
    become exact: with ``inequality="error"`` (default) any ``"<"`` raises
    ``ValueError``; with ``inequality="bound"`` ``P < x`` is treated as
    ``P = x``, which under-states |g| (the true p is smaller, so the true |t|
    larger), and those rows get ``p_inequality=True``.

    Returns columns ``yi``, ``vi``, ``p_inequality``.
    """
    _check_choice("variance", variance, VARIANCES)
    _check_choice("inequality", inequality, _INEQUALITY)
    x = _Inputs(dict(p=p, n1=n1, n2=n2, direction=direction, p_operator=p_operator),
                strings=("p_operator",))
    x.p_value("p")
    x.sample_size("n1", "n2")
    x.direction("direction")
    ineq = x.p_operator(inequality)
    n1, n2 = x["n1"], x["n2"]
    t = x["direction"] * _t_from_p(x["p"], n1 + n2 - 2)
    yi, vi = _g_vi(t * np.sqrt(1 / n1 + 1 / n2), n1, n2, variance)
    return x.frame(yi, vi, p_inequality=ineq)


def smd_from_md(md, n1, n2, *, p=None, p_operator="=", ci_low=None, ci_high=None,
                se=None, level: float = 0.95, inequality: str = "error",
                variance: str = "ls") -> pd.DataFrame:
    """SMD from a mean difference (group 1 minus group 2) and its p, CI or SE.

    The pooled SD is recovered as in the Cochrane Handbook (Higgins et al.,
    section 6.5.2.3), from exactly one of:

    * ``se``: ``SD = se / sqrt(1/n1 + 1/n2)``;
    * ``ci_low``, ``ci_high`` (a ``level`` CI for the MD):
      ``se = (ci_high - ci_low) / (2 qt(1 - (1 - level)/2, n1 + n2 - 2))``, then
      as above. The t quantile with ``n1 + n2 - 2`` df is used for **every**
      sample size (the Handbook's small-sample rule; for large n it differs
      from 2 x 1.96 by a negligible amount). Only the CI width is used; ``md``
      must lie inside the CI;
    * ``p`` (two-sided, pooled t test): ``|t| = qt(1 - p/2, n1 + n2 - 2)``,
      ``se = |md| / |t|``, then as above -- algebraically
      ``d = sign(md) |t| sqrt(1/n1 + 1/n2)``, which is what is computed (so
      ``p = 1`` gives g = 0). ``md = 0`` with ``p < 1`` is contradictory and
      raises. ``p_operator`` / ``inequality`` work as in :func:`smd_from_p`.

    Then ``d = md / SD`` and J and ``vi`` as set by ``variance``.
    Returns columns ``yi``, ``vi``, ``p_inequality`` (all False unless the p
    route is used with ``inequality="bound"``).
    """
    _check_choice("variance", variance, VARIANCES)
    _check_choice("inequality", inequality, _INEQUALITY)
    level = _checks.level_fraction(level)
    given = [name for name, v in (("p", p), ("ci", ci_low if ci_low is not None
                                             else ci_high), ("se", se))
             if v is not None]
    if len(given) != 1:
        raise ValueError(
            "smd_from_md needs exactly one source of the MD's precision: p=, "
            "ci_low= and ci_high= together, or se=; got "
            + (", ".join(given) if given else "none")
        )
    if (ci_low is None) != (ci_high is None):
        raise ValueError("ci_low and ci_high must be given together")

    args: dict[str, Any] = dict(md=md, n1=n1, n2=n2)
    source = given[0]
    if source == "p":
        args.update(p=p, p_operator=p_operator)
    elif source == "ci":
        args.update(ci_low=ci_low, ci_high=ci_high)
    else:
        args.update(se=se)
    x = _Inputs(args, strings=("p_operator",))
    x.finite("md")
    x.sample_size("n1", "n2")
    n1, n2 = x["n1"], x["n2"]
    root = np.sqrt(1 / n1 + 1 / n2)
    ineq = np.zeros(x.k, dtype=bool)

    if source == "p":
        x.p_value("p")
        ineq = x.p_operator(inequality)
        x.fail("md", "is 0 but p < 1 says the groups differ; check the data",
               (x["md"] == 0) & (x["p"] < 1))
        d = np.sign(x["md"]) * _t_from_p(x["p"], n1 + n2 - 2) * root
    else:
        if source == "ci":
            x.finite("ci_low", "ci_high")
            lo, hi = x["ci_low"], x["ci_high"]
            x.fail("ci_high", "must be > ci_low", hi <= lo)
            x.fail("md", "must lie inside [ci_low, ci_high]", (x["md"] < lo) | (x["md"] > hi))
            se_md = (hi - lo) / (2 * _t_ppf(1 - (1 - level) / 2, n1 + n2 - 2))
        else:
            x.positive("se")
            se_md = x["se"]
        d = x["md"] / (se_md / root)
    yi, vi = _g_vi(d, n1, n2, variance)
    return x.frame(yi, vi, p_inequality=ineq)


def smd_paired(m_pre, sd_pre, m_post, sd_post, n, *, r=None, sd_change=None) -> pd.DataFrame:
    """Standardised mean change within one group, post minus pre.

    Give exactly one of:

    * ``r`` (pre-post correlation): metafor ``escalc("SMCR")``, raw-score
      standardisation by the pre-test SD (Becker 1988; Morris 2000):
      ``d = (m_post - m_pre) / sd_pre``, ``g = J(n - 1) d``,
      ``vi = 2 (1 - r) / n + g^2 / (2 n)`` (metafor vtype="LS");
    * ``sd_change`` (SD of the within-person change scores): metafor
      ``escalc("SMCC")``, change-score standardisation (Gibbons et al. 1993):
      ``d = (m_post - m_pre) / sd_change``, ``g = J(n - 1) d``,
      ``vi = 1 / n + g^2 / (2 n)`` (metafor vtype="LS"). metafor computes
      ``sd_change = sqrt(sd_pre^2 + sd_post^2 - 2 r sd_pre sd_post)``; here it
      is taken as given.

    J is the exact correction :func:`hedges_j` with ``n - 1`` df, so ``n``
    must be >= 3. ``sd_post`` enters neither metafor formula; it is validated
    (> 0) when given and may be ``None``.
    Returns columns ``yi``, ``vi``.
    """
    if (r is None) == (sd_change is None):
        raise ValueError(
            "smd_paired needs exactly one of r= (pre-post correlation; metafor SMCR, "
            "standardised by sd_pre) or sd_change= (SD of change scores; metafor SMCC)"
        )
    args: dict[str, Any] = dict(m_pre=m_pre, sd_pre=sd_pre, m_post=m_post, n=n)
    if sd_post is not None:
        args["sd_post"] = sd_post
    if r is not None:
        args["r"] = r
    else:
        args["sd_change"] = sd_change
    x = _Inputs(args)
    x.finite("m_pre", "m_post")
    x.positive("sd_pre")
    if sd_post is not None:
        x.positive("sd_post")
    x.sample_size("n", minimum=3)
    n = x["n"]
    j = hedges_j(n - 1)
    diff = x["m_post"] - x["m_pre"]
    if r is not None:
        x.correlation("r")
        yi = j * diff / x["sd_pre"]
        vi = 2 * (1 - x["r"]) / n + yi**2 / (2 * n)
    else:
        x.positive("sd_change")
        yi = j * diff / x["sd_change"]
        vi = 1 / n + yi**2 / (2 * n)
    return x.frame(yi, vi)


# --------------------------------------------------------------------------
# routes for what newer studies report (a reported d with its CI; a
# within-group mean change with its CI or SE; a reported change-score d)
# --------------------------------------------------------------------------


def smd_from_d_ci(d, ci_low, ci_high, n1, n2, *, es_type: str = "d", level: float = 0.95,
                  variance: str = "ls") -> pd.DataFrame:
    """SMD from a reported Cohen's d (or Hedges' g) with its confidence interval.

    The CI gives the variance: ``se = (ci_high - ci_low) / (2 z_{(1+level)/2})``
    on the scale of the reported effect size (the normal-approximation CI
    ``d -/+ z se`` of Hedges & Olkin 1985, ch. 5, and Borenstein et al. 2009,
    eq. 4.20; only the width is used, so a slightly asymmetric printed CI
    gives its mean half-width).  Then

    * ``es_type="d"`` (Cohen's d, not yet corrected): ``yi = J d`` with J as
      set by ``variance`` (see the module docstring) and ``vi = J^2 se^2``
      (Borenstein et al. 2009, eq. 4.24: ``V_g = J^2 V_d``);
    * ``es_type="g"`` (already corrected): ``yi = g``, ``vi = se^2``.

    For comparison, metafor ``escalc("SMD", di=d, n1i=n1, n2i=n2)`` ignores
    any CI and computes ``vi = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2))`` from the
    n's (:func:`smd_from_d`); when the source computed its CI as
    ``d -/+ z sqrt(1/n1 + 1/n2 + d^2 / (2 (n1 + n2)))`` the two variances
    differ only by the factor J^2 and ``d^2`` vs ``g^2`` (by about
    1 - J^2, i.e. 8% at N = 20, 4% at N = 40).  ``n1``, ``n2`` enter only through J.  ``d`` must lie inside
    the CI.  Returns columns ``yi``, ``vi``.
    """
    _check_choice("variance", variance, VARIANCES)
    _check_choice("es_type", es_type, ("d", "g"))
    level = _checks.level_fraction(level)
    x = _Inputs(dict(d=d, ci_low=ci_low, ci_high=ci_high, n1=n1, n2=n2))
    x.finite("d", "ci_low", "ci_high")
    x.sample_size("n1", "n2")
    lo, hi = x["ci_low"], x["ci_high"]
    x.fail("ci_high", "must be > ci_low", hi <= lo)
    x.fail("d", "must lie inside [ci_low, ci_high]", (x["d"] < lo) | (x["d"] > hi))
    se = (hi - lo) / (2 * _lazy.special().ndtri((1 + level) / 2))
    if es_type == "g":
        return x.frame(x["d"], se**2)
    n1, n2 = x["n1"], x["n2"]
    if variance == "revman":
        j = 1 - 3 / (4 * (n1 + n2) - 9)  # Deeks & Higgins 2010
    else:
        j = hedges_j(n1 + n2 - 2)
    return x.frame(j * x["d"], (j * se) ** 2)


def smd_change(md, n, *, ci_low=None, ci_high=None, se=None, level: float = 0.95) -> pd.DataFrame:
    """Standardised mean change d_z from a within-group mean change and its CI or SE.

    Standardised by the SD of the change scores (change-score
    standardisation; Gibbons et al. 1993; Becker 1988), **not** by the
    raw-score SD: ``d_z = md / sd_change`` with ``sd_change = se sqrt(n)``
    (Cochrane Handbook 6.5.2.3, one-group form) and, from a ``level`` CI,
    ``se = (ci_high - ci_low) / (2 qt((1 + level)/2, n - 1))`` (the paired t
    interval, n - 1 df).  Then, as metafor ``escalc("SMCC")`` with
    ``vtype="LS"`` (Becker 1988; Borenstein et al. 2009, ch. 4):
    ``yi = J(n - 1) d_z`` and ``vi = 1/n + yi^2 / (2 n)``.  Equals
    ``escalc("SMCC", m1i=md, m2i=0, sd1i=sd_change, sd2i=0, ri=0, ni=n)``.

    ``md`` is post minus pre (group 1 minus group 2).  Give exactly one of
    ``se`` or ``ci_low`` + ``ci_high``; ``md`` must lie inside the CI.
    d_z is on a different scale from an SMD standardised by the raw-score SD
    (:func:`smd`, :func:`smd_paired` with ``r``): for a pre-post correlation
    r, ``d_z = d_raw / sqrt(2 (1 - r))``; never pool the two together.
    ``n >= 3``.  Returns columns ``yi``, ``vi``.
    """
    level = _checks.level_fraction(level)
    if (se is None) == (ci_low is None and ci_high is None):
        raise ValueError("smd_change needs exactly one source of precision: se=, or ci_low= and "
                         "ci_high= together")
    if (ci_low is None) != (ci_high is None):
        raise ValueError("ci_low and ci_high must be given together")
    args: dict[str, Any] = dict(md=md, n=n)
    if se is not None:
        args["se"] = se
    else:
        args.update(ci_low=ci_low, ci_high=ci_high)
    x = _Inputs(args)
    x.finite("md")
    x.sample_size("n", minimum=3)
    n = x["n"]
    if se is not None:
        x.positive("se")
        se_md = x["se"]
    else:
        x.finite("ci_low", "ci_high")
        lo, hi = x["ci_low"], x["ci_high"]
        x.fail("ci_high", "must be > ci_low", hi <= lo)
        x.fail("md", "must lie inside [ci_low, ci_high]", (x["md"] < lo) | (x["md"] > hi))
        se_md = (hi - lo) / (2 * _t_ppf((1 + level) / 2, n - 1))
    yi = hedges_j(n - 1) * x["md"] / (se_md * np.sqrt(n))
    return x.frame(yi, 1 / n + yi**2 / (2 * n))


def smd_from_dz(dz, n) -> pd.DataFrame:
    """SMD from a reported within-group d standardised by the SD of change (d_z).

    ``yi = J(n - 1) d_z``, ``vi = 1/n + yi^2 / (2 n)`` (Becker 1988; metafor
    ``escalc("SMCC")``, vtype="LS", the variance for a d_z computed from its
    n).  Do not pass a within-group d standardised by the pre-test or
    average SD (d_av, d_rm): its variance is different (metafor SMCR needs
    the pre-post r).  ``n >= 3``.  Returns columns ``yi``, ``vi``.
    """
    x = _Inputs(dict(dz=dz, n=n))
    x.finite("dz")
    x.sample_size("n", minimum=3)
    n = x["n"]
    yi = hedges_j(n - 1) * x["dz"]
    return x.frame(yi, 1 / n + yi**2 / (2 * n))


# --------------------------------------------------------------------------
# pre-post correlation derived from what a paired study reports
# --------------------------------------------------------------------------
def _r_frame(x: "_Inputs", sd_change: np.ndarray, given: str):
    """r from sd_pre, sd_post and sd_change; a ValueError naming ``given`` where r is outside [-1, 1]."""
    a, b = x["sd_pre"], x["sd_post"]
    r = (a**2 + b**2 - sd_change**2) / (2 * a * b)
    bad = ~np.isfinite(r) | (r < -1) | (r > 1)
    if np.any(bad):
        pos = np.flatnonzero(bad)
        raise ValueError(
            f"sd_pre, sd_post and {given} give a pre-post correlation r outside [-1, 1] at positions "
            f"{pos[:_MAX_SHOWN].tolist()}{x._labels(pos)}: r = {np.round(r[pos[:_MAX_SHOWN]], 6).tolist()}. "
            "The SD of change must lie between |sd_pre - sd_post| and sd_pre + sd_post; check the row "
            "(SDs swapped with SEs, a one-sided p, or an unpaired test reported as paired)"
        )
    return pd.Series(r, index=x.index, name="r") if x.index is not None else r


def r_from_sd_change(sd_pre, sd_post, sd_change):
    """Pre-post correlation from the SDs at baseline, follow-up and of the change.

    ``r = (sd_pre^2 + sd_post^2 - sd_change^2) / (2 sd_pre sd_post)``, the
    identity ``var(post - pre) = var(pre) + var(post) - 2 r sd_pre sd_post``
    solved for r (Follmann et al. 1992, J Clin Epidemiol 45:769-773;
    Cochrane Handbook v6.5, section 6.5.2.8).  For sample SDs of one set of
    paired data it returns Pearson's r of those data exactly.

    All arguments > 0, scalars or 1-d (broadcast as the other functions of
    this module; Series paired by label, their index kept).  An r outside
    [-1, 1] (the SDs are inconsistent) is a ValueError naming the arguments
    and positions.  Returns a float array (a Series named ``r`` for Series
    input).
    """
    x = _Inputs(dict(sd_pre=sd_pre, sd_post=sd_post, sd_change=sd_change))
    x.positive("sd_pre", "sd_post", "sd_change")
    return _r_frame(x, x["sd_change"], "sd_change")


def sd_change_from_t(mean_change, t, n):
    """SD of the change scores from a paired t statistic.

    ``se = |mean_change| / |t|`` and ``sd_change = se sqrt(n)``, i.e.
    ``sd_change = |mean_change| sqrt(n) / |t|`` (Cochrane Handbook v6.5,
    sections 6.5.2.3 and 6.5.2.8: the paired t is the mean change over its
    SE).  ``mean_change`` and ``t`` must be non-zero (a zero t gives no SD),
    ``n >= 2``.  Returns a float array (Series for Series input).
    """
    x = _Inputs(dict(mean_change=mean_change, t=t, n=n))
    _check_change_t(x)
    sd = np.abs(x["mean_change"]) * np.sqrt(x["n"]) / np.abs(x["t"])
    return pd.Series(sd, index=x.index, name="sd_change") if x.index is not None else sd


def _check_change_t(x: "_Inputs") -> None:
    x.finite("mean_change", "t")
    x.sample_size("n", minimum=2)
    x.fail("mean_change", "must be non-zero (a zero mean change gives no SD of change from t or p)",
           x["mean_change"] == 0)
    x.fail("t", "must be non-zero (t = 0 gives no SD of change)", x["t"] == 0)


def r_from_paired_t(sd_pre, sd_post, mean_change, t, n):
    """Pre-post correlation from a paired t: ``sd_change = |mean_change|
    sqrt(n) / |t|`` (:func:`sd_change_from_t`), then
    ``r = (sd_pre^2 + sd_post^2 - sd_change^2) / (2 sd_pre sd_post)``
    (:func:`r_from_sd_change`; Follmann et al. 1992; Cochrane Handbook v6.5,
    6.5.2.3 and 6.5.2.8).  The sign of t is not used (only |t|); r outside
    [-1, 1] is a ValueError naming the arguments."""
    x = _Inputs(dict(sd_pre=sd_pre, sd_post=sd_post, mean_change=mean_change, t=t, n=n))
    x.positive("sd_pre", "sd_post")
    _check_change_t(x)
    sd = np.abs(x["mean_change"]) * np.sqrt(x["n"]) / np.abs(x["t"])
    return _r_frame(x, sd, "mean_change, t, n")


def r_from_paired_p(sd_pre, sd_post, mean_change, p, n):
    """Pre-post correlation from an exact two-sided paired p: ``|t| = qt(1 -
    p/2, n - 1)`` (the paired t test has n - 1 df), then as
    :func:`r_from_paired_t` (Cochrane Handbook v6.5, 6.5.2.3 and 6.5.2.8).
    ``p`` in (0, 1) and exact: a "p < x" bound gives no r.  r outside
    [-1, 1] is a ValueError naming the arguments."""
    x = _Inputs(dict(sd_pre=sd_pre, sd_post=sd_post, mean_change=mean_change, p=p, n=n))
    x.positive("sd_pre", "sd_post")
    x.finite("mean_change")
    x.sample_size("n", minimum=2)
    x.p_value("p")
    x.fail("p", "must be < 1 (p = 1 means t = 0, which gives no SD of change)", x["p"] >= 1)
    x.fail("mean_change", "must be non-zero (a zero mean change gives no SD of change from t or p)",
           x["mean_change"] == 0)
    t = _t_isf(x["p"] / 2, x["n"] - 1)
    sd = np.abs(x["mean_change"]) * np.sqrt(x["n"]) / t
    return _r_frame(x, sd, "mean_change, p, n")


__all__ += ["r_from_sd_change", "r_from_paired_t", "r_from_paired_p", "sd_change_from_t"]
