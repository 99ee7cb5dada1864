"""One standardised mean difference per outcome row: ``yi``, ``vi``, the route used and flags.

:func:`study_effects` turns the rows of ``outcomes.csv`` into effect sizes by
calling the conversions of :mod:`meta.effects` (it implements no formula
itself).  Sign convention: group 1 minus group 2 (PFP minus control, post
minus pre, intervention minus control).

Route priority (first route whose numbers are all present wins; if its
conversion refuses the numbers, e.g. a ``"<"`` p-value under
``inequality="error"``, the next route is tried and the refusal is kept in
``reason``):

Between-group rows (``pfp_vs_control``, ``intervention_vs_control``)

1. ``means_sd``    -- ``mean1, sd1, n1, mean2, sd2, n2`` -> :func:`meta.effects.smd`
   (Hedges & Olkin 1985).
2. ``md_ci``       -- ``mean_diff, ci_low, ci_high, ci_level, n1, n2`` ->
   :func:`meta.effects.smd_from_md` with ``ci_low=, ci_high=`` (Cochrane
   Handbook 6.5.2.3: ``se = width / (2 qt((1+level)/2, n1+n2-2))``,
   ``SD = se / sqrt(1/n1 + 1/n2)``).
3. ``md_se``       -- ``mean_diff, se, n1, n2`` -> :func:`meta.effects.smd_from_md`
   with ``se=`` (same section).
4. ``md_p``        -- ``mean_diff, p_value, p_operator, n1, n2`` ->
   :func:`meta.effects.smd_from_md` with ``p=`` (Cochrane Handbook 6.5.2.3);
   the sign is that of ``mean_diff``.
5. ``t``           -- ``effect_size`` with ``effect_size_type = t`` and ``n1, n2``
   -> :func:`meta.effects.smd_from_t`; sign from ``direction`` when given
   (else as printed, flag ``sign_as_reported``).
6. ``reported_es_ci`` -- an SMD-like ``effect_size`` with ``ci_low, ci_high``
   (and no ``mean_diff``: when a row has a ``mean_diff``, its CI/SE belong to
   the mean difference) and ``n1, n2`` -> :func:`meta.effects.smd_from_d_ci`:
   the CI gives the variance, ``se = width / (2 z_{(1+level)/2})``,
   ``vi = J^2 se^2`` for a d, ``se^2`` for a g.  Sign and type handling as
   ``reported_es``.
7. ``reported_es`` -- ``effect_size`` with an SMD-like ``effect_size_type``
   (empty, ``cohen_d``, ``hedges_g``, ``smd``, ``d``, ``g``, ``unspecified``;
   see ``SMD_LIKE_TYPES``) and ``n1, n2`` -> :func:`meta.effects.smd_from_d`,
   which applies the small-sample correction J.  ``cohen_d`` is used as is;
   ``hedges_g`` (already corrected) is first divided by the J that
   ``smd_from_d`` applies for the chosen ``variance`` (obtained by calling it
   with d = 1), so that yi equals the reported g and vi is computed from it;
   any other SMD-like label is treated as Cohen's d and flagged
   ``es_type_unspecified`` (if it was really g it is shrunk once more, by
   under 2% for N >= 40).  Any other type (an odds ratio, a correlation, a
   percentage, ...) is never treated as an SMD.  Sign: ``direction * |effect_size|`` when
   ``direction`` is given, else the sign as reported (flag ``sign_as_reported``).
8. ``p_only``      -- ``p_value, p_operator, direction, n1, n2`` ->
   :func:`meta.effects.smd_from_p`.

Within-group rows (``post_vs_pre``; group 1 = post, group 2 = pre, n1 = n2 = n)

1. ``paired``      -- ``mean1, sd1, mean2, sd2, n1`` -> :func:`meta.effects.smd_paired`
   (metafor SMCR: standardised by the pre-test SD, needs the pre-post
   correlation ``r``).  A row that reports the SE or CI of its mean change,
   a paired t (``effect_size_type=t``) or an exact paired p gives its own r
   (:func:`meta.effects.r_from_sd_change`, ``r_from_paired_t``,
   ``r_from_paired_p``; Follmann et al. 1992, Cochrane Handbook 6.5.2.8),
   flagged ``r_derived``; otherwise the ``r`` option is used, flagged
   ``r_assumed``.  With neither, the route is refused with reason
   ``"paired design needs r"`` (and the next route is tried).  Column ``r``:
   the correlation used (NaN for other routes).
2. ``change_ci``   -- ``mean_diff`` (the mean change, post minus pre) with
   ``ci_low, ci_high, ci_level`` and ``n1`` -> :func:`meta.effects.smd_change`:
   d_z standardised by the SD of change, ``sd_change = se sqrt(n)``, ``se``
   from the CI via ``qt((1+level)/2, n-1)``; metafor SMCC variance.
3. ``change_se``   -- ``mean_diff`` with ``se`` and ``n1`` -> the same.
4. ``reported_es_within`` -- a within-group ``effect_size`` labelled
   ``cohen_d`` or ``hedges_g`` (an unlabelled "ES" is not used) and ``n1`` ->
   :func:`meta.effects.smd_from_dz`: ``yi = J(n-1) d``, metafor SMCC
   variance, which is right only if the source standardised by the SD of
   change; flagged ``es_standardiser_unstated`` (a labelled g is corrected
   once more: J(n-1) > 0.9 for n >= 9).
   A within-group p-value alone is not converted.

``es_scale`` says what an SMD is standardised by, so that analyses keep
scales apart (never pool them silently): ``raw_sd`` (a raw-score SD: pooled
between-group SD, or the pre-test SD of ``paired``), ``change_sd`` (the SD
of within-person change, d_z: ``change_ci``, ``change_se``; also flagged
``d_z``), ``unstated`` (``reported_es_within``), empty without an SMD.

Flags (``;``-joined): ``p_inequality`` (p reported as ``P < x`` and used as the
bound ``P = x``, which under-states |g|), ``averaged_across_tasks`` (task is
``averaged_across_tasks``: not running alone), ``r_assumed``, ``r_derived``,
``es_type_unspecified`` (reported effect size labelled neither ``cohen_d``
nor ``hedges_g``), ``sign_as_reported`` (reported effect size or t without
``direction``: its printed sign is used), ``d_z`` (standardised by the SD of
change), ``es_standardiser_unstated``, ``ci_level_assumed`` (``ci_level``
empty: 0.95 used), ``ci_excludes_estimate`` (the printed CI does not contain
its own estimate) and ``ci_not_centred`` (the estimate is not at the centre
of a mean difference's CI, beyond the printed rounding plus 10% of the
half-width; such a CI is symmetric by construction): a CI so flagged is
never used, the row falls through to a route without it.

Rows are never dropped: a row without a route keeps NaN ``yi``/``vi``, route
``none`` and a ``reason``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["study_effects", "candidate_routes", "missing_for_routes", "ROUTES", "ROUTE_RANK", "FLAGS",
           "SMD_LIKE_TYPES", "ES_SCALES"]

BETWEEN_ROUTES = ("means_sd", "md_ci", "md_se", "md_p", "t", "reported_es_ci", "reported_es", "p_only")
WITHIN_ROUTES = ("paired", "change_ci", "change_se", "reported_es_within")
ROUTES = BETWEEN_ROUTES + WITHIN_ROUTES
#: preference between two rows of one cohort (lower is preferred; the unit-of-analysis rule of
#: meta.review.running.run.unit_of_analysis): raw means and SDs, then a mean difference or t, then a reported
#: effect size, then a p-value alone. Every route of ROUTES has a rank.
ROUTE_RANK = {
    "means_sd": 0,
    "paired": 0,
    "md_ci": 1,
    "md_se": 1,
    "md_p": 1,
    "t": 1,
    "change_ci": 1,
    "change_se": 1,
    "reported_es_ci": 2,
    "reported_es": 2,
    "reported_es_within": 2,
    "p_only": 3,
}
FLAGS = ("p_inequality", "averaged_across_tasks", "r_assumed", "r_derived", "es_type_unspecified", "sign_as_reported",
         "d_z", "es_standardiser_unstated", "ci_level_assumed", "ci_excludes_estimate", "ci_not_centred")
#: what each route's SMD is standardised by (``es_scale`` column); analyses must not mix scales
ES_SCALES = {"means_sd": "raw_sd", "md_ci": "raw_sd", "md_se": "raw_sd", "md_p": "raw_sd", "t": "raw_sd",
             "reported_es_ci": "raw_sd", "reported_es": "raw_sd", "p_only": "raw_sd", "paired": "raw_sd",
             "change_ci": "change_sd", "change_se": "change_sd", "reported_es_within": "unstated"}
_CI_ROUTES = ("md_ci", "reported_es_ci", "change_ci")

SMD_LIKE_TYPES = ("", "cohen_d", "hedges_g", "smd", "d", "g", "unspecified")

_ID_COLUMNS = ("study_id", "cohort_id", "outcome", "comparison", "timepoint", "task")
_OUT_COLUMNS = _ID_COLUMNS + ("n1", "n2", "yi", "vi", "route", "es_scale", "flags", "reason",
                              "source_url", "source_locator", "r")
_NUMERIC = ("n1", "n2", "mean1", "sd1", "mean2", "sd2", "mean_diff", "p_value", "effect_size",
            "direction", "ci_low", "ci_high", "ci_level", "se")


def _has(v: Any) -> bool:
    """True for a present value (not None / NA / NaN / empty string)."""
    if v is None or v is pd.NA:
        return False
    if isinstance(v, str):
        return v.strip() != ""
    try:
        return not math.isnan(v)
    except TypeError:
        return True


def _text(v: Any) -> str:
    return str(v).strip() if _has(v) else ""


def _needs(row: Mapping, route: str) -> list[str]:
    """Columns missing for ``route`` (empty list = the route's numbers are all there)."""
    es_type = _text(row.get("effect_size_type"))
    if route == "means_sd" or route == "paired":
        cols = ["mean1", "sd1", "n1", "mean2", "sd2"] + ([] if route == "paired" else ["n2"])
    elif route == "md_p":
        cols = ["mean_diff", "p_value", "n1", "n2"]
    elif route in ("md_ci", "change_ci"):
        cols = ["mean_diff", "ci_low", "ci_high", "n1"] + (["n2"] if route == "md_ci" else [])
    elif route in ("md_se", "change_se"):
        cols = ["mean_diff", "se", "n1"] + (["n2"] if route == "md_se" else [])
    elif route == "reported_es_within" and es_type not in ("cohen_d", "hedges_g"):
        return [f"effect_size_type cohen_d or hedges_g for a within-group effect size (not {es_type!r})"]
    elif route in ("reported_es_ci", "reported_es_within"):
        if es_type not in SMD_LIKE_TYPES:
            return [f"an SMD-like effect_size_type (not {es_type!r})"]
        if route == "reported_es_ci" and _has(row.get("mean_diff")):
            return ["a CI of the effect size (the row's CI belongs to its mean_diff)"]
        cols = ["effect_size", "n1"] + (["ci_low", "ci_high", "n2"] if route == "reported_es_ci" else [])
    elif route == "t":
        if es_type != "t":
            return ["effect_size_type=t"]
        cols = ["effect_size", "n1", "n2"]
    elif route == "reported_es":
        if es_type not in SMD_LIKE_TYPES:
            return [f"an SMD-like effect_size_type (not {es_type!r})"]
        cols = ["effect_size", "n1", "n2"]
    elif route == "p_only":
        cols = ["p_value", "direction", "n1", "n2"]
    else:  # pragma: no cover
        raise ValueError(f"unknown route {route!r}; valid: {', '.join(ROUTES)}")
    return [c for c in cols if not _has(row.get(c))]


def candidate_routes(row: Mapping) -> list[str]:
    """Routes whose numbers are all present in ``row``, in priority order.

    Ignores options (``r``, ``inequality``): a ``post_vs_pre`` row with means
    and SDs counts as having the ``paired`` route even though it needs ``r``.
    Used by :mod:`meta.review.inputs.data` to check that each row has a route or an
    ``extraction_note``.
    """
    routes = WITHIN_ROUTES if _text(row.get("comparison")) == "post_vs_pre" else BETWEEN_ROUTES
    return [r for r in routes if not _needs(row, r)]


def _present(values) -> np.ndarray:
    """:func:`_has` of each value of a column (a float array: not NaN)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return ~np.isnan(arr)
    return np.fromiter(map(_has, values), dtype=bool, count=len(arr))


def _route_masks(columns: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """For each route, the rows whose numbers are all present: :func:`candidate_routes` of every row
    at once (``columns``: column name -> the rows' values; a missing column is absent in every row).
    Same rules as :func:`_needs`, route by route."""
    no = np.zeros(n, dtype=bool)
    has = {c: (_present(columns[c]) if c in columns else no) for c in
           ("mean1", "sd1", "n1", "mean2", "sd2", "n2", "mean_diff", "p_value", "ci_low", "ci_high", "se",
            "effect_size", "direction")}
    es_type = (np.array([_text(v) for v in columns["effect_size_type"]], dtype=object)
               if "effect_size_type" in columns else np.full(n, "", dtype=object))
    within = (np.array([_text(v) == "post_vs_pre" for v in columns["comparison"]], dtype=bool)
              if "comparison" in columns else no)
    smd_like = np.isin(es_type, SMD_LIKE_TYPES)
    n1, both_n = has["n1"], has["n1"] & has["n2"]
    means = has["mean1"] & has["sd1"] & n1 & has["mean2"] & has["sd2"]
    ci = has["mean_diff"] & has["ci_low"] & has["ci_high"] & n1
    se = has["mean_diff"] & has["se"] & n1
    between = {
        "means_sd": means & has["n2"],
        "md_ci": ci & has["n2"],
        "md_se": se & has["n2"],
        "md_p": has["mean_diff"] & has["p_value"] & both_n,
        "t": (es_type == "t") & has["effect_size"] & both_n,
        "reported_es_ci": smd_like & ~has["mean_diff"] & has["effect_size"] & n1 & has["ci_low"] & has["ci_high"]
        & has["n2"],
        "reported_es": smd_like & has["effect_size"] & both_n,
        "p_only": has["p_value"] & has["direction"] & both_n,
    }
    within_masks = {
        "paired": means,
        "change_ci": ci,
        "change_se": se,
        "reported_es_within": np.isin(es_type, ("cohen_d", "hedges_g")) & has["effect_size"] & n1,
    }
    out = {r: m & ~within for r, m in between.items()}
    out.update({r: m & within for r, m in within_masks.items()})
    return out


def missing_for_routes(row: Mapping) -> str:
    """Human-readable account of what a row lacks for every route."""
    if _text(row.get("comparison")) == "post_vs_pre":
        miss = _needs(row, "paired")
        text = ("post_vs_pre rows need mean1, sd1, mean2, sd2 and n1 (paired route), a mean change "
                "(mean_diff) with its CI or SE and n1 (change_ci, change_se), or a within-group "
                "effect size (cohen_d, hedges_g) with n1; missing " + ", ".join(miss))
        if _has(row.get("p_value")) or _has(row.get("effect_size")) or _has(row.get("mean_diff")):
            text += (" (a within-group p-value, mean change or effect size is not converted unless "
                     "the mean change has its CI or SE, or the effect size is labelled cohen_d or "
                     "hedges_g: the independent-groups formulas do not apply and the pre-post "
                     "correlation is unknown)")
        return text
    n_missing = [c for c in ("n1", "n2") if not _has(row.get(c))]
    if n_missing:
        return f"every route needs n1 and n2; missing {', '.join(n_missing)}"
    es_type = _text(row.get("effect_size_type"))
    if _has(row.get("effect_size")) and es_type not in SMD_LIKE_TYPES + ("t",):
        return (f"effect_size_type {es_type!r} is not a standardised mean difference or t; "
                "needs group means and SDs, mean_diff with p_value, or p_value with direction")
    return ("needs group means and SDs, mean_diff with p_value, an effect_size, "
            "or p_value with direction")


def _num(row: Mapping, col: str) -> float:
    v = row.get(col)
    return float(v) if _has(v) else math.nan


def _signed_effect_size(row: Mapping, flags: list[str]) -> float:
    """``effect_size`` signed by the row's ``direction``; as reported (flagged) when no direction is given."""
    es = _num(row, "effect_size")
    if _has(row.get("direction")):
        return _num(row, "direction") * abs(es)
    flags.append("sign_as_reported")
    return es


def _run(route: str, row: Mapping, *, variance: str, inequality: str, r: float | None):
    """Call the :mod:`meta.effects` conversion for ``route``; return (yi, vi, flags)."""
    from meta import effects

    n1, n2 = _num(row, "n1"), _num(row, "n2")
    flags: list[str] = []
    es_type = _text(row.get("effect_size_type"))
    direction = _num(row, "direction")
    p_op = _text(row.get("p_operator")) or "="
    if route == "means_sd":
        out = effects.smd(_num(row, "mean1"), _num(row, "sd1"), n1,
                          _num(row, "mean2"), _num(row, "sd2"), n2, variance=variance)
    elif route == "md_p":
        out = effects.smd_from_md(_num(row, "mean_diff"), n1, n2, p=_num(row, "p_value"),
                                  p_operator=p_op, inequality=inequality, variance=variance)
    elif route in ("md_ci", "md_se"):
        prec = (dict(ci_low=_num(row, "ci_low"), ci_high=_num(row, "ci_high"), level=_level(row, flags))
                if route == "md_ci" else dict(se=_num(row, "se")))
        out = effects.smd_from_md(_num(row, "mean_diff"), n1, n2, variance=variance, **prec)
    elif route in ("change_ci", "change_se"):
        prec = (dict(ci_low=_num(row, "ci_low"), ci_high=_num(row, "ci_high"), level=_level(row, flags))
                if route == "change_ci" else dict(se=_num(row, "se")))
        out = effects.smd_change(_num(row, "mean_diff"), n1, **prec)
        flags.append("d_z")
    elif route == "reported_es_within":
        out = effects.smd_from_dz(_signed_effect_size(row, flags), n1)
        flags.append("es_standardiser_unstated")
    elif route == "reported_es_ci":
        d = _signed_effect_size(row, flags)
        if es_type not in ("cohen_d", "hedges_g", "g"):
            flags.append("es_type_unspecified")
        out = effects.smd_from_d_ci(d, _num(row, "ci_low"), _num(row, "ci_high"), n1, n2,
                                    es_type="g" if es_type in ("hedges_g", "g") else "d",
                                    level=_level(row, flags), variance=variance)
    elif route == "t":
        out = effects.smd_from_t(_signed_effect_size(row, flags), n1, n2, variance=variance)
    elif route == "reported_es":
        d = _signed_effect_size(row, flags)
        if es_type in ("hedges_g", "g"):
            # undo the correction smd_from_d is about to apply: yi comes out as the reported g
            j = float(np.asarray(effects.smd_from_d(1.0, n1, n2, variance=variance)["yi"])[0])
            d = d / j
        elif es_type != "cohen_d":
            flags.append("es_type_unspecified")
        out = effects.smd_from_d(d, n1, n2, variance=variance)
    elif route == "p_only":
        out = effects.smd_from_p(_num(row, "p_value"), n1, n2, direction, p_operator=p_op,
                                 inequality=inequality, variance=variance)
    elif route == "paired":
        r_used, note = _derived_r(row)
        if r_used is not None:
            flags.append("r_derived")
        elif r is None:
            raise _NoRoute("paired design needs r" + (f" ({note})" if note else ""))
        else:
            r_used = r
            flags.append("r_assumed")
        out = effects.smd_paired(_num(row, "mean2"), _num(row, "sd2"), _num(row, "mean1"),
                                 _num(row, "sd1"), n1, r=r_used)
    else:  # pragma: no cover
        raise ValueError(f"unknown route {route!r}")
    if "p_inequality" in out.columns and bool(np.asarray(out["p_inequality"])[0]):
        flags.insert(0, "p_inequality")
    r_out = r_used if route == "paired" else math.nan
    return float(np.asarray(out["yi"])[0]), float(np.asarray(out["vi"])[0]), flags, r_out


def _derived_r(row: Mapping) -> tuple[float | None, str]:
    """The pre-post correlation a ``post_vs_pre`` row with means and SDs implies, if it reports one of
    (first that is present): the SE or CI of its mean change (``mean_diff`` with ``se`` or ``ci_low``,
    ``ci_high``; ``sd_change = se sqrt(n)``), a paired t (``effect_size`` with ``effect_size_type=t``)
    or an exact paired p (``p_value`` with ``p_operator`` "=" or empty); ``(None, why)`` otherwise.
    :func:`meta.effects.r_from_sd_change` / ``r_from_paired_t`` / ``r_from_paired_p`` (Follmann et al.
    1992; Cochrane Handbook 6.5.2.8); pre = group 2, post = group 1.  An r outside (-1, 1) (the numbers
    do not fit together, or r = +-1, which SMCR cannot use) is not used; the reason says why."""
    from meta import effects

    n, sd_pre, sd_post = _num(row, "n1"), _num(row, "sd2"), _num(row, "sd1")
    change = _num(row, "mean1") - _num(row, "mean2")
    try:
        if _has(row.get("mean_diff")) and (_has(row.get("se")) or (_has(row.get("ci_low")) and _has(row.get("ci_high")))):
            if _has(row.get("se")):
                se = _num(row, "se")
            else:
                level = _num(row, "ci_level") if _has(row.get("ci_level")) else 0.95
                # the paired t interval, n - 1 df (effects' t quantile: scipy.stats is not imported)
                se = (_num(row, "ci_high") - _num(row, "ci_low")) / (2 * effects._t_ppf((1 + level) / 2, n - 1))
            r = effects.r_from_sd_change(sd_pre, sd_post, se * math.sqrt(n))
            how = "SD of change"
        elif _text(row.get("effect_size_type")) == "t" and _has(row.get("effect_size")):
            r = effects.r_from_paired_t(sd_pre, sd_post, change, _num(row, "effect_size"), n)
            how = "paired t"
        elif _has(row.get("p_value")) and (_text(row.get("p_operator")) or "=") == "=":
            r = effects.r_from_paired_p(sd_pre, sd_post, change, _num(row, "p_value"), n)
            how = "paired p"
        else:
            return None, ""
    except ValueError as exc:
        msg = re.sub(r"(; bad)? at positions? \[0\](: \[[^\]]*\])?", "", str(exc))
        return None, f"no r derived from the row: {msg}"
    r = float(np.asarray(r)[0])
    if not -1 < r < 1:
        return None, f"the {how} gives r = {r:g}, which the SMCR variance cannot use"
    return r, how


class _NoRoute(Exception):
    pass


def _level(row: Mapping, flags: list[str]) -> float:
    """The row's ``ci_level`` (0.95, flagged ``ci_level_assumed``, when empty)."""
    if _has(row.get("ci_level")):
        return _num(row, "ci_level")
    flags.append("ci_level_assumed")
    return 0.95


def _decimals(x: float) -> int:
    """Decimal places of ``x`` as printed (shortest repr of the float read from the CSV)."""
    text = repr(float(x))
    if "e" in text or "E" in text:
        mant, exp = text.lower().split("e")
        return max(0, (len(mant.split(".")[1]) if "." in mant else 0) - int(exp))
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def _ci_flags(row: Mapping) -> list[str]:
    """``ci_excludes_estimate`` / ``ci_not_centred`` for the row's printed CI (empty list if fine or absent).

    The CI belongs to ``mean_diff`` when the row has one, else to ``effect_size``
    (signed as the ``reported_es`` routes sign it).  A mean difference's CI
    (t or z interval) is symmetric, so its estimate must sit at the centre to
    within the printed rounding (one unit of the finest printed decimal) plus
    10% of the half-width; a CI of an effect size may be asymmetric
    (noncentral t) and is checked for containment only.
    """
    lo, hi = _num(row, "ci_low"), _num(row, "ci_high")
    if math.isnan(lo) or math.isnan(hi):
        return []
    is_md = _has(row.get("mean_diff"))
    if is_md:
        est = _num(row, "mean_diff")
    elif _has(row.get("effect_size")):
        est = _signed_effect_size(row, [])
    else:
        return []
    if not lo <= est <= hi:
        return ["ci_excludes_estimate"]
    if is_md:
        unit = 10.0 ** -max(_decimals(est), _decimals(lo), _decimals(hi))
        if abs(est - (lo + hi) / 2) > unit + 0.1 * (hi - lo) / 2:
            return ["ci_not_centred"]
    return []


class _Rows:
    """The rows of an outcomes frame column by column, each value as ``DataFrame.to_dict("records")``
    gives it (``None`` for a missing value of a nullable column), and one row as a dict on demand."""

    def __init__(self, df: pd.DataFrame):
        self.df = df
        self.n = len(df)
        self._columns: dict[str, list] = {}
        self._numbers: dict[str, np.ndarray] = {}
        self._texts: dict[str, np.ndarray] = {}
        self.names = frozenset(df.columns)

    def column(self, name: str, default: Any = None) -> list:
        if name not in self.names:
            return [default] * self.n
        if name not in self._columns:  # to_numpy(object): the values tolist() gives, without a call per cell
            na = pd.NA
            self._columns[name] = [None if v is na else v for v in self.df[name].to_numpy(dtype=object).tolist()]
        return self._columns[name]

    def num(self, name: str) -> np.ndarray:
        """:func:`_num` of every row (NaN where missing)."""
        if name not in self._numbers:
            self._numbers[name] = (self.df[name].to_numpy(dtype=float, na_value=np.nan) if name in self.names
                                   else np.full(self.n, np.nan))
        return self._numbers[name]

    def text(self, name: str) -> np.ndarray:
        """:func:`_text` of every row."""
        if name not in self._texts:  # judged once per distinct value (and type: 1 and 1.0 print differently)
            memo: dict = {}
            out = []
            for v in self.column(name):
                key = (v.__class__, v)
                t = memo.get(key)
                if t is None:
                    t = memo[key] = _text(v)
                out.append(t)
            self._texts[name] = np.array(out, dtype=object)
        return self._texts[name]

    def row(self, i: int, columns: tuple[str, ...] | None = None) -> dict:
        """Row ``i`` as ``to_dict("records")`` gives it (``columns``: only these, where the frame has them)."""
        names = self.df.columns if columns is None else [c for c in columns if c in self.names]
        return {c: self.column(c)[i] for c in names}


#: the columns :func:`missing_for_routes` and :func:`_ci_flags` read
_MISSING_COLUMNS = ("comparison", "mean1", "sd1", "n1", "mean2", "sd2", "n2", "effect_size", "effect_size_type",
                    "p_value", "mean_diff")
_CI_COLUMNS = ("ci_low", "ci_high", "mean_diff", "effect_size", "direction")


_POSITIONS = re.compile(r"positions \[([0-9, ]+)\]")


def _route_rows(rows: _Rows, *, variance: str, inequality: str, r: float | None) -> list[tuple]:
    """Per row ``(yi, vi, route, flags, reasons, r)``: the first usable route of each row, as trying its
    :func:`candidate_routes` one by one with :func:`_run` gives it, computed route by route for all
    rows that reach it at once (one :mod:`meta.effects` call per route and CI level). A call that
    refuses some rows names their positions: those rows are run one by one with :func:`_run` (so
    their reasons are the one-row messages) and the call is repeated without them. ``paired``
    (each row's own derived r) runs row by row."""
    n = rows.n
    masks = _route_masks({**{c: rows.num(c) for c in _NUMERIC},
                          "effect_size_type": rows.text("effect_size_type"),
                          "comparison": rows.text("comparison")}, n)
    yi, vi, r_out = np.full(n, math.nan), np.full(n, math.nan), np.full(n, math.nan)
    route = ["none"] * n
    flags: list[list[str]] = [[] for _ in range(n)]
    reasons: list[list[str]] = [[] for _ in range(n)]
    done = np.zeros(n, dtype=bool)
    ci_flags: list[list[str]] = [[]] * n
    for i in np.flatnonzero(~np.isnan(rows.num("ci_low")) & ~np.isnan(rows.num("ci_high"))).tolist():
        ci_flags[i] = _ci_flags(rows.row(i, _CI_COLUMNS))

    def one(i: int, cand: str) -> None:
        try:
            y, v, fl, ru = _run(cand, rows.row(i), variance=variance, inequality=inequality, r=r)
        except _NoRoute as exc:
            reasons[i].append(str(exc))
        except ValueError as exc:
            msg = re.sub(r"(; bad)? at positions? \[0\](: \[[^\]]*\])?", "", str(exc))
            reasons[i].append(f"{cand} refused: {msg}")
        else:
            yi[i], vi[i], r_out[i], route[i], flags[i], done[i] = y, v, ru, cand, fl, True

    for cand in ROUTES:
        idx = np.flatnonzero(masks[cand] & ~done)
        if cand in _CI_ROUTES and idx.size:
            keep = []
            for i in idx.tolist():
                if ci_flags[i]:
                    reasons[i].append(f"{cand} not used: {ci_flags[i][0].replace('_', ' ')} (the printed CI "
                                      f"[{rows.num('ci_low')[i]:g}, {rows.num('ci_high')[i]:g}] does not fit its estimate)")
                else:
                    keep.append(i)
            idx = np.array(keep, dtype=np.intp)
        if not idx.size:
            continue
        if cand == "paired":
            _paired_rows(rows, idx, r, one, reasons, yi, vi, r_out, route, flags, done)
            continue
        for group, options in _route_groups(cand, rows, idx):
            pending = group
            while pending.size:
                try:
                    y, v, fl = _run_many(cand, rows, pending, options, variance=variance, inequality=inequality)
                except ValueError as exc:
                    m = _POSITIONS.search(str(exc))
                    bad = sorted({int(x) for x in m.group(1).split(",")}) if m else list(range(pending.size))
                    bad = [b for b in bad if b < pending.size] or list(range(pending.size))
                    for b in bad:
                        one(int(pending[b]), cand)
                    pending = np.delete(pending, bad)
                    continue
                yi[pending], vi[pending] = y, v
                done[pending] = True
                for k, i in enumerate(pending.tolist()):
                    route[i], flags[i] = cand, fl[k]
                break

    # what a row without a route lacks depends only on its comparison, its effect_size_type and which
    # of _MISSING_COLUMNS it has: worded once per such combination
    present = [~np.isnan(rows.num(c)) if c in _NUMERIC else np.array([t != "" for t in rows.text(c)], dtype=bool)
               for c in _MISSING_COLUMNS]
    kinds = list(zip(rows.text("comparison").tolist(), rows.text("effect_size_type").tolist(), *present))
    missing: dict[tuple, str] = {}
    out = []
    for i in range(n):
        rs = reasons[i]
        if not rs and route[i] == "none":
            if kinds[i] not in missing:
                missing[kinds[i]] = missing_for_routes(rows.row(i, _MISSING_COLUMNS))
            rs = [missing[kinds[i]]]
        out.append((float(yi[i]), float(vi[i]), route[i], ci_flags[i] + flags[i], rs, float(r_out[i])))
    return out


def _batches(idx: np.ndarray, call, single) -> None:
    """``call(pending)`` on the rows ``idx`` at once; where it refuses rows (a ValueError naming their
    positions, as :mod:`meta.effects` does) ``single(i)`` handles each of them and the call is repeated
    without them (no positions named: every row goes to ``single``)."""
    pending = idx
    while pending.size:
        try:
            call(pending)
        except ValueError as exc:
            m = _POSITIONS.search(str(exc))
            bad = sorted({int(x) for x in m.group(1).split(",")}) if m else list(range(pending.size))
            bad = [b for b in bad if b < pending.size] or list(range(pending.size))
            for b in bad:
                single(int(pending[b]))
            pending = np.delete(pending, bad)
            continue
        break


def _derived_r_many(rows: _Rows, idx: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """:func:`_derived_r` of the rows ``idx``: ``(r, how, note)`` with r NaN where none is derived.
    Each of its three sources (SD of change, paired t, exact paired p) is one :mod:`meta.effects`
    call on the rows that use it, elementwise the arithmetic of the one-row call; a row the call
    refuses gets :func:`_derived_r` of its own (the same reason text)."""
    from meta import effects

    k = idx.size
    r_all, how, note = np.full(k, math.nan), [""] * k, [""] * k

    def num(col: str) -> np.ndarray:
        return rows.num(col)[idx]

    has = {c: ~np.isnan(num(c)) for c in ("mean_diff", "se", "ci_low", "ci_high", "ci_level", "effect_size", "p_value")}
    n, sd_pre, sd_post = num("n1"), num("sd2"), num("sd1")
    change = num("mean1") - num("mean2")
    es_t = rows.text("effect_size_type")[idx] == "t"
    exact_p = np.array([(t or "=") == "=" for t in rows.text("p_operator")[idx].tolist()], dtype=bool)
    by_change = has["mean_diff"] & (has["se"] | (has["ci_low"] & has["ci_high"]))
    by_t = ~by_change & es_t & has["effect_size"]
    by_p = ~by_change & ~by_t & has["p_value"] & exact_p
    with np.errstate(all="ignore"):
        level = np.where(has["ci_level"], num("ci_level"), 0.95)
        se = np.where(has["se"], num("se"),
                      (num("ci_high") - num("ci_low")) / (2 * effects._t_ppf((1 + level) / 2, n - 1)))
    sources = (
        (by_change, "SD of change", lambda j: effects.r_from_sd_change(sd_pre[j], sd_post[j], se[j] * np.sqrt(n[j]))),
        (by_t, "paired t", lambda j: effects.r_from_paired_t(sd_pre[j], sd_post[j], change[j], num("effect_size")[j], n[j])),
        (by_p, "paired p", lambda j: effects.r_from_paired_p(sd_pre[j], sd_post[j], change[j], num("p_value")[j], n[j])),
    )

    def single(j: int) -> None:
        got, why = _derived_r(rows.row(int(idx[j])))
        r_all[j], how[j], note[j] = (math.nan, "", why) if got is None else (got, why, "")

    for mask, name, fn in sources:
        def call(j: np.ndarray, fn=fn, name=name) -> None:
            r_j = np.asarray(fn(j), dtype=float).reshape(-1)
            for jj, rv in zip(j.tolist(), r_j.tolist()):
                if -1 < rv < 1:
                    r_all[jj], how[jj] = rv, name
                else:
                    note[jj] = f"the {name} gives r = {rv:g}, which the SMCR variance cannot use"

        _batches(np.flatnonzero(mask), call, single)
    return r_all, how, note


def _paired_rows(rows: _Rows, idx: np.ndarray, r: float | None, one, reasons, yi, vi, r_out, route, flags,
                 done) -> None:
    """The ``paired`` route of the rows ``idx`` as :func:`_run` gives it row by row: each row's own
    derived r (flag ``r_derived``), else the assumed ``r`` (``r_assumed``), else no route
    ("paired design needs r"); one :func:`meta.effects.smd_paired` call with one r per row."""
    from meta import effects

    r_der, _, note = _derived_r_many(rows, idx)
    derived = ~np.isnan(r_der)
    if r is None:
        for j in np.flatnonzero(~derived).tolist():
            reasons[int(idx[j])].append("paired design needs r" + (f" ({note[j]})" if note[j] else ""))
        use = np.flatnonzero(derived)
    else:
        use = np.arange(idx.size)
    r_used = np.where(derived, r_der, r if r is not None else math.nan)

    def call(j: np.ndarray) -> None:
        i = idx[j]
        out = effects.smd_paired(rows.num("mean2")[i], rows.num("sd2")[i], rows.num("mean1")[i], rows.num("sd1")[i],
                                 rows.num("n1")[i], r=r_used[j])
        y, v = np.asarray(out["yi"], dtype=float), np.asarray(out["vi"], dtype=float)
        ineq = np.asarray(out["p_inequality"], dtype=bool) if "p_inequality" in out.columns else np.zeros(j.size, bool)
        for jj, ii, yy, vv, q in zip(j.tolist(), i.tolist(), y.tolist(), v.tolist(), ineq.tolist()):
            fl = ["r_derived" if derived[jj] else "r_assumed"]
            yi[ii], vi[ii], r_out[ii], route[ii], flags[ii], done[ii] = yy, vv, r_used[jj], "paired", \
                (["p_inequality"] + fl if q else fl), True

    _batches(use, call, lambda j: one(int(idx[j]), "paired"))


def _route_groups(cand: str, rows: _Rows, idx: np.ndarray) -> list[tuple[np.ndarray, tuple]]:
    """The rows of ``idx`` split by what :mod:`meta.effects` takes as one scalar: the CI level
    (``ci_level``, 0.95 when empty) of a CI route, and for ``reported_es_ci`` / ``reported_es``
    whether the effect size is a g."""
    keys: list[tuple] = [()] * idx.size
    if cand in _CI_ROUTES:
        level = rows.num("ci_level")[idx]
        keys = [(0.95 if math.isnan(x) else float(x),) for x in level.tolist()]
    if cand in ("reported_es_ci", "reported_es"):
        is_g = [t in ("hedges_g", "g") for t in rows.text("effect_size_type")[idx].tolist()]
        keys = [k + (g,) for k, g in zip(keys, is_g)]
    groups: dict[tuple, list[int]] = {}
    for k, i in zip(keys, idx.tolist()):
        groups.setdefault(k, []).append(i)
    return [(np.array(v, dtype=np.intp), k) for k, v in groups.items()]


def _run_many(cand: str, rows: _Rows, idx: np.ndarray, options: tuple, *, variance: str,
              inequality: str) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """:func:`_run` for the rows ``idx`` of one group of :func:`_route_groups` at once (not ``paired``):
    the same :mod:`meta.effects` call on arrays, the same flags per row."""
    from meta import effects

    def num(col: str) -> np.ndarray:
        return rows.num(col)[idx]

    k = idx.size
    n1, n2 = num("n1"), num("n2")
    pre: list[list[str]] = [[] for _ in range(k)]
    post: list[str] = []
    if cand in ("reported_es_within", "reported_es_ci", "t", "reported_es"):  # _signed_effect_size
        direction, es = num("direction"), num("effect_size")
        unsigned = np.isnan(direction)
        d = np.where(unsigned, es, direction * np.abs(es))
        for j in np.flatnonzero(unsigned).tolist():
            pre[j].append("sign_as_reported")
    if cand in ("reported_es_ci", "reported_es"):
        es_type = rows.text("effect_size_type")[idx]
        for j, t in enumerate(es_type.tolist()):
            if t not in ("cohen_d", "hedges_g", "g"):
                pre[j].append("es_type_unspecified")
    if cand in _CI_ROUTES:
        level = options[0]
        for j in np.flatnonzero(np.isnan(num("ci_level"))).tolist():
            pre[j].append("ci_level_assumed")
    p_op = None
    if cand in ("md_p", "p_only"):
        p_op = np.array([t or "=" for t in rows.text("p_operator")[idx].tolist()], dtype=object)
    if cand == "means_sd":
        out = effects.smd(num("mean1"), num("sd1"), n1, num("mean2"), num("sd2"), n2, variance=variance)
    elif cand == "md_p":
        out = effects.smd_from_md(num("mean_diff"), n1, n2, p=num("p_value"), p_operator=p_op,
                                  inequality=inequality, variance=variance)
    elif cand == "md_ci":
        out = effects.smd_from_md(num("mean_diff"), n1, n2, variance=variance, ci_low=num("ci_low"),
                                  ci_high=num("ci_high"), level=level)
    elif cand == "md_se":
        out = effects.smd_from_md(num("mean_diff"), n1, n2, variance=variance, se=num("se"))
    elif cand == "change_ci":
        out = effects.smd_change(num("mean_diff"), n1, ci_low=num("ci_low"), ci_high=num("ci_high"), level=level)
        post = ["d_z"]
    elif cand == "change_se":
        out = effects.smd_change(num("mean_diff"), n1, se=num("se"))
        post = ["d_z"]
    elif cand == "reported_es_within":
        out = effects.smd_from_dz(d, n1)
        post = ["es_standardiser_unstated"]
    elif cand == "reported_es_ci":
        out = effects.smd_from_d_ci(d, num("ci_low"), num("ci_high"), n1, n2, es_type="g" if options[1] else "d",
                                    level=level, variance=variance)
    elif cand == "t":
        out = effects.smd_from_t(d, n1, n2, variance=variance)
    elif cand == "reported_es":
        if options[0]:  # a g: undo the correction smd_from_d applies, as _run does
            d = d / np.asarray(effects.smd_from_d(np.ones(k), n1, n2, variance=variance)["yi"])
        out = effects.smd_from_d(d, n1, n2, variance=variance)
    elif cand == "p_only":
        out = effects.smd_from_p(num("p_value"), n1, n2, num("direction"), p_operator=p_op,
                                 inequality=inequality, variance=variance)
    else:  # pragma: no cover
        raise ValueError(f"unknown route {cand!r}")
    flags = [f + post for f in pre]
    if "p_inequality" in out.columns:
        for j in np.flatnonzero(np.asarray(out["p_inequality"])).tolist():
            flags[j].insert(0, "p_inequality")
    return np.asarray(out["yi"], dtype=float), np.asarray(out["vi"], dtype=float), flags


def _numeric_frame(outcomes: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``outcomes`` with its numeric columns (:data:`_NUMERIC`) as numbers (empty = NaN)."""
    df = outcomes.copy()
    for col in _NUMERIC:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col].replace("", np.nan), errors="raise")
    return df


#: the columns of :func:`study_effects` whose values can depend on the assumed pre-post ``r``
R_DEPENDENT_COLUMNS = ("yi", "vi", "route", "es_scale", "flags", "reason", "r")


def assumed_r_rows(outcomes: pd.DataFrame) -> np.ndarray:
    """Which rows of ``outcomes`` may take their effect size from the assumed pre-post ``r`` of
    :func:`study_effects`: ``post_vs_pre`` rows with the numbers of the ``paired`` route (means, SDs,
    n) that give no r of their own (no SD of change, paired t or exact paired p that yields one).

    ``r`` enters no other route, and a row with its own r uses it, so for every other row the
    columns :data:`R_DEPENDENT_COLUMNS` are the same whatever ``r`` (not None) is assumed; each row's
    route is worked out from that row alone."""
    rows = _Rows(_numeric_frame(outcomes))
    masks = _route_masks({**{c: rows.num(c) for c in _NUMERIC},
                          "effect_size_type": rows.text("effect_size_type"),
                          "comparison": rows.text("comparison")}, rows.n)
    out = np.zeros(rows.n, dtype=bool)
    idx = np.flatnonzero(masks["paired"])
    if idx.size:
        r_der, _, _ = _derived_r_many(rows, idx)
        out[idx[np.isnan(r_der)]] = True
    return out


def study_effects(outcomes: pd.DataFrame, studies: pd.DataFrame | None = None, *,
                  variance: str = "revman", inequality: str = "bound",
                  r: float | None = None) -> pd.DataFrame:
    """One SMD (Hedges' g) per row of ``outcomes``, by the first usable route.

    Parameters
    ----------
    outcomes
        Rows shaped like ``outcomes.csv`` (e.g. ``meta.review.inputs.data.load().outcomes``);
        numeric columns may be numbers or numeric strings; empty = unknown.
    studies
        Optional ``studies.csv`` frame; supplies ``cohort_id`` by ``study_id``
        (``<NA>`` when not given or the study is not listed).
    variance
        ``"revman"`` (default, Deeks & Higgins 2010, as the review's RevMan
        analysis), ``"ls"`` or ``"ub"`` (metafor ``escalc`` vtypes); passed to
        :mod:`meta.effects`.
    inequality
        ``"bound"`` (default): ``P < x`` used as ``P = x`` and flagged
        ``p_inequality``; ``"error"``: such rows cannot use ``md_p``/``p_only``.
    r
        Pre-post correlation assumed for ``post_vs_pre`` rows (metafor SMCR)
        that do not give their own (see the ``paired`` route). ``None``
        (default): those rows get no paired route.

    Returns
    -------
    DataFrame with the index of ``outcomes`` and columns ``study_id, cohort_id,
    outcome, comparison, timepoint, task, n1, n2, yi, vi, route, es_scale, flags,
    reason, source_url, source_locator, r``.  See the module docstring for the route
    priority and flags.
    """
    if variance not in ("ls", "ub", "revman"):
        raise ValueError(f"variance must be one of 'ls', 'ub', 'revman'; got {variance!r}")
    if inequality not in ("bound", "error"):
        raise ValueError(f"inequality must be 'bound' or 'error'; got {inequality!r}")
    if r is not None and not (isinstance(r, (int, float)) and -1 < r < 1):
        raise ValueError(f"r must be a correlation in (-1, 1) or None; got {r!r}")
    missing = [c for c in ("study_id", "outcome", "comparison", "n1", "n2") if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes is missing column(s) {', '.join(missing)}")

    df = _numeric_frame(outcomes)
    cohort = {}
    if studies is not None and "cohort_id" in studies.columns:
        cohort = dict(zip(studies["study_id"].to_numpy(dtype=object).tolist(),
                          studies["cohort_id"].to_numpy(dtype=object).tolist()))

    rows = _Rows(df)
    routed = _route_rows(rows, variance=variance, inequality=inequality, r=r)
    get = rows.column
    comparison, task = rows.text("comparison"), rows.text("task")
    # column by column (one list per column, not one dict per row); the frame DataFrame.from_records
    # builds from the same values
    yi_, vi_, route_, flags_, reasons_, r_ = zip(*routed) if routed else ((),) * 6
    averaged = task == "averaged_across_tasks"
    sids = get("study_id")
    columns = {
        "study_id": sids,
        "cohort_id": [cohort.get(sid, pd.NA) for sid in sids],
        "outcome": get("outcome"),
        "comparison": list(comparison),
        "timepoint": get("timepoint", pd.NA),
        "task": get("task", pd.NA),
        "n1": get("n1"),
        "n2": get("n2"),
        "yi": list(yi_),
        "vi": list(vi_),
        "route": list(route_),
        "es_scale": [ES_SCALES.get(x, "") for x in route_],
        "flags": [";".join(f + ["averaged_across_tasks"] if a else f) for f, a in zip(flags_, averaged.tolist())],
        "reason": ["; ".join(x) for x in reasons_],
        "source_url": get("source_url", pd.NA),
        "source_locator": get("source_locator", pd.NA),
        "r": list(r_),
    }
    out = pd.DataFrame.from_records(list(zip(*columns.values())), index=outcomes.index, columns=list(_OUT_COLUMNS))
    for col in ("n1", "n2"):
        vals = [float(v) if _has(v) else None for v in columns[col]]
        whole = all(v is None or v.is_integer() for v in vals)
        out[col] = pd.array([None if v is None else (int(v) if whole else v) for v in vals],
                            dtype="Int64" if whole else "Float64")
    out["yi"] = out["yi"].astype(float)
    out["vi"] = out["vi"].astype(float)
    return out
