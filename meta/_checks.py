"""Argument checks shared by the library layer, and their error messages.

One mechanism for every public function of :mod:`meta.effects`,
:mod:`meta.pool` and :mod:`meta.bias` (R meta keeps its checks in
``meta-chk.R`` the same way):

* :func:`align` - pandas inputs are paired **by index label**, never silently
  by position: Series (or DataFrames) holding the same labels in another
  order are reordered to the first pandas argument's order; different
  labels are refused, naming both arguments and the labels that differ.
  A pandas input beside a plain array (list, numpy array) is taken by
  position, as pandas itself does for ``Series + ndarray`` (a plain array has
  no labels to compare).
* :func:`not_masked` - numpy masked arrays with masked values are refused
  (``TypeError``): ``np.asarray`` drops the mask, so the masked values would
  be analysed; the message says what to pass instead (``y.compressed()``,
  ``np.ma.filled``, or the rows dropped).  Called first by :func:`real` (so
  by :func:`numbers`) and by :func:`align` for every argument (labels,
  groups, sort keys).
* :func:`real`, :func:`numbers` - numeric input as a float array: booleans,
  complex numbers and non-numbers are refused (``np.asarray(x, float)``
  would turn True into 1.0 and drop an imaginary part with only a warning).
  :func:`owned_numbers` also says whether the array was made here (a list
  converted, a cast), so that a result may keep it without a copy, while an
  array that is or may share the caller's memory is copied by whoever keeps it.
* :func:`one_kind` - label arguments (study labels ``slab``, subgroup
  ``groups``, sort keys ``order``) must be of one kind: all strings, all
  numbers or all booleans.  ``1`` and ``"1"`` print the same and were merged
  into one subgroup; ``True`` equals ``1`` in every pandas grouping; sort keys
  ``[9, "10"]`` would be sorted as text.  Refused, naming the positions and
  types.
* :func:`positions` - the ``offending positions (0-based): ...`` part of a
  message.
* :func:`finite_results` - sums that overflow (``yi = 1e200`` squares to inf)
  are refused, naming the arguments, instead of returning inf/NaN.
* :func:`level_fraction` - THE rule for every ``level`` argument of the library
  (pooling, Egger, Bayes, Q-profile, effect sizes from a CI): a fraction in
  (0, 1), or a percentage in (1, 100) as metafor's ``level = 95``.
* :func:`estimator_options` - ``method``, ``test``, ``level`` and ``pi`` of
  every pooling function, in metafor's spellings, to their canonical form
  (:func:`method_level`, :func:`option`); :func:`warn_k1` - the warning when
  a test needs k >= 2 and fell back to z.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from meta import _estimators as _est

__all__ = ["align", "not_masked", "level_fraction", "one_kind", "real", "numbers", "positions", "finite_results", "option", "method_level", "estimator_options",
           "warn_k1"]

_MAX_SHOWN = 10


def not_masked(x: Any, name: str) -> None:
    """Refuse a numpy masked array that has masked values (``TypeError``
    naming ``name``, how many values are masked and at which positions, and
    what to pass instead): ``np.asarray`` and every numpy reduction used here
    would silently analyse the masked values.  A masked array with nothing
    masked is its data and passes; so do lists holding no ``np.ma.masked``."""
    if isinstance(x, np.ma.MaskedArray):
        m = np.ma.getmaskarray(x)
        if not m.any():
            return
        where = f" at positions (0-based) {positions(m)}" if m.ndim in (1, 2) else ""
        raise TypeError(
            f"{name} is a numpy masked array with {int(m.sum())} masked value(s){where}; numpy would "
            f"analyse the masked values, so masked arrays are refused: drop those studies from every "
            f"argument alike (e.g. keep = ~np.ma.getmaskarray({name}); pass {name}.compressed() or "
            f"{name}[keep] with the other arguments [keep]), or fill them on purpose (np.ma.filled({name}, value))"
        )
    if isinstance(x, (list, tuple)) and any(e is np.ma.masked for e in _flat(x)):
        raise TypeError(f"{name} holds numpy's masked constant (np.ma.masked); drop those studies from every argument")


def level_fraction(value: Any, name: str = "level") -> float:
    """The one reading of a confidence / credible ``level`` in this library
    (metafor's rule, ``rma(level = 95)``): a number strictly between 0 and 1
    is a fraction (0.95); a number strictly between 1 and 100 is a percentage
    (95 = 0.95, 1.5 = 0.015).  Refused with a ``ValueError`` naming ``name``:
    1 itself (a 100 % fraction or a 1 % percentage: ambiguous), values <= 0 or
    >= 100, NaN, booleans and non-numbers (metafor's further reading of levels
    below 0.5 as alpha is not copied)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    lv = float(value) if ok else math.nan
    if ok and 1 < lv < 100:
        lv = lv / 100.0
    if not (ok and 0 < lv < 1):
        raise ValueError(
            f"{name} must be a fraction in (0, 1) such as 0.95, or a percentage in (1, 100) such as 95; got {value!r}"
        )
    return lv


def _kind(x) -> str:
    if isinstance(x, (str, np.str_, bytes)):
        return "string"
    if isinstance(x, (bool, np.bool_)):
        return "boolean"
    if isinstance(x, (int, float, np.integer, np.floating)):
        return "number"
    return type(x).__name__


def one_kind(values, name: str) -> None:
    """Refuse (``ValueError``) labels of more than one kind in ``values``
    (strings, numbers, booleans, or another type): ``1`` and ``"1"`` print
    the same, ``True == 1`` in every grouping, and mixed sort keys compare as
    text, so such labels were merged or misordered without a word.  Missing
    values (None, NaN) are left to the caller.  The message names the
    positions and types of the minority kind and how to make them one kind."""
    if isinstance(values, (pd.Series, pd.Index, np.ndarray)) and values.dtype != object:
        return  # a typed column (numbers, strings, booleans, dates) holds one kind
    vals = list(values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else values)
    kinds: dict[str, list[int]] = {}
    for i, x in enumerate(vals):
        if x is None or (isinstance(x, (float, np.floating)) and np.isnan(x)):
            continue
        kinds.setdefault(_kind(x), []).append(i)
    if len(kinds) <= 1:
        return
    order = sorted(kinds, key=lambda kd: -len(kinds[kd]))
    parts = "; ".join(
        f"{kd}s at positions (0-based) {_shown(kinds[kd])} (types {', '.join(sorted({type(vals[i]).__name__ for i in kinds[kd]}))}; "
        f"e.g. {vals[kinds[kd][0]]!r})" for kd in order
    )
    raise ValueError(
        f"{name} mixes {' and '.join(order)}: {parts}. Labels of different kinds can print alike "
        f"(1 and '1') or compare alike (True and 1) and would be merged or misordered; give {name} "
        f"one kind, e.g. all strings ([str(x) for x in {name}]) or all numbers"
    )


def _is_pandas(x: Any) -> bool:
    return isinstance(x, (pd.Series, pd.DataFrame))


def _shown(labels, limit: int = _MAX_SHOWN) -> str:
    labels = list(labels)
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return repr(labels[:limit])[:-1] + more + "]" if labels else "[]"


def _align_axis(ref: pd.Index, other: pd.Index, name: str, ref_name: str, what: str) -> np.ndarray | None:
    """Positions that reorder ``other`` to ``ref`` (None: already identical)."""
    if other.equals(ref):
        return None
    if len(other) != len(ref):
        raise ValueError(
            f"{ref_name} and {name} are pandas objects of different lengths ({len(other)} and {len(ref)} "
            f"{what}); they must hold the same labels"
        )
    if ref.has_duplicates or other.has_duplicates:
        dup = ref[ref.duplicated()] if ref.has_duplicates else other[other.duplicated()]
        raise ValueError(
            f"{ref_name} and {name} have {what} in a different order and duplicated labels "
            f"{_shown(pd.unique(dup))}, so their rows cannot be paired by label; give unique labels "
            "or the identical index"
        )
    missing = ref.difference(other, sort=False)
    extra = other.difference(ref, sort=False)
    if len(missing) or len(extra):
        raise ValueError(
            f"{ref_name} and {name} are pandas objects whose {what} hold different labels "
            f"(only in {ref_name}: {_shown(missing)}; only in {name}: {_shown(extra)}); "
            "rows are paired by label, never by position: pass inputs with the same labels "
            "(in any order), or plain arrays in matching order"
        )
    return other.get_indexer(ref)


def align(args: dict[str, Any]) -> tuple[dict[str, Any], pd.Index | None]:
    """Pair pandas arguments by label.

    The first pandas argument (Series or DataFrame) in ``args`` (name ->
    value, in signature order) is the reference; every other pandas argument
    with the same labels, in any order, is reordered to it (DataFrames on
    both the index and, between two DataFrames, the columns).  Labels that
    differ, or a different order with duplicated labels, raise ``ValueError``
    naming both arguments and the labels.  Other values (scalars, lists,
    arrays, None) are returned unchanged: beside a pandas input they are
    taken by position.

    Returns the new ``args`` and the reference index (None without pandas input).
    """
    for name, value in args.items():
        not_masked(value, name)
    ref_name = next((n for n, v in args.items() if _is_pandas(v)), None)
    if ref_name is None:
        return dict(args), None
    ref = args[ref_name]
    out = {}
    for name, value in args.items():
        if name == ref_name or not _is_pandas(value):
            out[name] = value
            continue
        rows = _align_axis(ref.index, value.index, name, ref_name, "indexes")
        if rows is not None:
            value = value.iloc[rows]
        if isinstance(ref, pd.DataFrame) and isinstance(value, pd.DataFrame):
            cols = _align_axis(ref.columns, value.columns, name, ref_name, "columns")
            if cols is not None:
                value = value.iloc[:, cols]
        out[name] = value
    return out, ref.index


def _flat(x):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _flat(e)
        else:
            yield e


def real(x: Any, name: str) -> None:
    """Refuse booleans and complex numbers (``ValueError`` naming ``name``):
    numpy would turn True into 1.0 and drop an imaginary part with only a
    warning.  Looks at the dtype of arrays and pandas objects and at the
    elements of lists and tuples (``[True, 2]`` becomes an integer array).
    Masked arrays: :func:`not_masked` first."""
    not_masked(x, name)
    if isinstance(x, (pd.Series, pd.DataFrame)):
        dtypes = [x.dtype] if isinstance(x, pd.Series) else list(x.dtypes)
        kinds = {"b" if pd.api.types.is_bool_dtype(d) else "c" if pd.api.types.is_complex_dtype(d) else "" for d in dtypes}
        if isinstance(x, pd.Series) and x.dtype == object:
            return real(x.tolist(), name)
    elif isinstance(x, (list, tuple)):
        kinds = {"b" if isinstance(e, (bool, np.bool_)) else "c" if isinstance(e, (complex, np.complexfloating)) else "" for e in _flat(x)}
    elif isinstance(x, (bool, np.bool_)):
        kinds = {"b"}
    elif isinstance(x, (complex, np.complexfloating)):
        kinds = {"c"}
    else:
        a = np.asarray(x) if isinstance(x, np.ndarray) else None
        kinds = {a.dtype.kind} if a is not None else set()
        if a is not None and a.dtype == object:
            return real(a.ravel().tolist(), name)
    if "b" in kinds:
        raise ValueError(f"{name} must be real numbers, got booleans (True/False)")
    if "c" in kinds:
        raise ValueError(f"{name} must be real numbers, got complex numbers")


def numbers(x: Any, name: str) -> np.ndarray:
    """``x`` as a float array; refuses booleans, complex numbers (:func:`real`)
    and non-numbers with a ``ValueError`` naming ``name``.  Nullable pandas
    missing values (``pd.NA``) become NaN (reported by the caller's
    finiteness check).  A float64 array (or float64 Series/DataFrame) is
    returned as it is, not copied: callers only read it (``pool_many`` on a
    large grid would otherwise hold each input twice)."""
    return owned_numbers(x, name)[0]


def owned_numbers(x: Any, name: str) -> tuple[np.ndarray, bool]:
    """:func:`numbers` and whether the array is one made here that nothing
    else refers to (a list converted, another dtype cast): a caller that keeps
    the data may keep that array as it is.  False where it is, or may share
    memory with, the caller's object (a float64 array, a pandas object's
    values, whatever ``__array__`` returns): a caller that keeps the data
    copies it, so that the caller's array stays theirs."""
    if type(x) is np.ndarray and x.dtype == np.float64 and (x.flags.c_contiguous or x.flags.f_contiguous):
        return x, False  # already what is asked for: no copy (pool_many on 1e6 x 10 would double its memory)
    real(x, name)
    if isinstance(x, (pd.Series, pd.DataFrame)):
        if isinstance(x, pd.Series) and x.dtype == np.float64:
            return x.to_numpy(), False  # NaN already NaN: a view, not a copy
        if isinstance(x, pd.DataFrame) and x.shape[1] and all(d == np.float64 for d in x.dtypes):
            return x.to_numpy(), False  # one float block: a view
        try:  # a nullable Float64 column without NA may come back as its own values: not owned
            return x.to_numpy(dtype=float, na_value=np.nan), False
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers; got a pandas object of dtype {getattr(x, 'dtype', 'object')}") from None
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValueError(f"{name} must be numbers (list, array or Series); got {type(x).__name__}: {exc}") from None
    if a.dtype.kind not in "iufUSO":  # strings of numbers ("0.5") are converted below, as before
        raise ValueError(f"{name} must be numbers, got dtype {a.dtype}")
    if a.dtype == np.float64:
        # np.asarray made no copy of a float64 array (or made the only one of a list or tuple)
        return a, isinstance(x, (list, tuple))
    try:
        return a.astype(float), True  # astype copies
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers (list, array or Series); got {type(x).__name__}: {exc}") from None


def positions(bad: np.ndarray, limit: int = _MAX_SHOWN) -> str:
    """``"2, 5"``: 0-based positions where ``bad`` is True ((row, column) for 2-D)."""
    bad = np.asarray(bad)
    idx = np.flatnonzero(bad) if bad.ndim == 1 else np.argwhere(bad)
    shown = [str(tuple(int(j) for j in i)) if np.ndim(i) else str(int(i)) for i in idx[:limit]]
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(shown) + more


def finite_results(values: dict[str, Any], args: str, who: str = "") -> None:
    """Refuse non-finite results of finite input (overflowing sums, e.g.
    ``yi = 1e200``): ``ValueError`` naming ``args`` (e.g. ``"yi, vi"``) and
    the result fields that are not finite."""
    bad = [k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))]
    if bad:
        raise ValueError(
            f"{who + ': ' if who else ''}{args} give non-finite results ({', '.join(bad)}): the values are too "
            "large or too small to compute with in double precision (sums overflow); rescale them "
            "(e.g. other units) so that |yi| and 1/vi are well below 1e150"
        )


def option(value, name: str, allowed, aliases, what: str) -> str:
    """Canonical (lower-case) name of option ``name`` or a ValueError listing
    what would be valid."""
    key = value.lower() if isinstance(value, str) else value
    key = aliases.get(key, key)
    if key not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))} ({what}); got {value!r}")
    return key


def method_level(method, level) -> tuple[str, float]:
    """Canonical ``method`` and ``level`` in metafor's conventions: methods
    case-insensitive, ``"EE"`` and ``"CE"`` for ``"FE"``
    (:data:`meta._estimators.METHOD_ALIASES`); ``level`` by
    :func:`level_fraction`."""
    m = method.upper() if isinstance(method, str) else method
    m = _est.METHOD_ALIASES.get(m, m)
    if m not in _est.METHODS:
        names = ", ".join(map(repr, _est.METHODS + tuple(_est.METHOD_ALIASES)))
        raise ValueError(f"method must be one of {names} (any case); got {method!r}")
    return m, level_fraction(level)


def estimator_options(method, test, level, pi):
    """Check the options shared by every pooling function; returns
    ``(method, test, level, pi)`` in canonical form: methods as
    :func:`method_level`, ``test`` and ``pi`` case-insensitive
    (``test="knha"`` -> ``"hksj"``, ``pi="z"`` -> ``"default"``), ``level``
    a fraction."""
    method, level = method_level(method, level)
    test = option(test, "test", _est.TESTS, _est.TEST_ALIASES, "metafor's test=; 'knha' = 'hksj'")
    pi = option(pi, "pi", _est.PIS, _est.PI_ALIASES, "metafor predict(pi.type=); 'z' = 'default'")
    return method, test, level, pi


def warn_k1(test: str, k1: int) -> None:
    """Warn (from the caller's caller) that ``k1`` analyses with k = 1 fell back from ``test`` to z, as metafor."""
    if test != "z" and k1:
        warnings.warn(
            f"test={test!r} needs k >= 2; used test='z' for {k1} analys{'is' if k1 == 1 else 'es'} with k = 1 (as metafor)",
            stacklevel=3,
        )


def _has_nan(labels: list) -> bool:
    """Whether a label is NaN (two NaN objects are distinct in a set; pandas counts them as one value)."""
    if not labels or isinstance(labels[0], str):  # labels are of one kind (one_kind): strings hold no NaN
        return False
    try:
        return bool(np.isnan(np.asarray(labels, dtype=float)).any())
    except (TypeError, ValueError):  # tuples and other objects
        return any(x != x for x in labels)


def warn_shared_labels(labels, who: str = "pool") -> None:
    """Warn (from the caller's caller) when study labels repeat: rows that share a label are most likely
    dependent effect sizes of one study, which a univariate pool treats as independent studies."""
    labels = list(labels)
    try:  # the common case, all distinct, without pandas (a pool() of k = 5 spent half its time here)
        if len(set(labels)) == len(labels) and not _has_nan(labels):  # NaN labels: pandas' rule below
            return
    except TypeError:  # an unhashable label or one without ==: pandas decides
        pass
    codes, uniques = pd.factorize(pd.Series(labels, dtype=object), use_na_sentinel=False)  # NaN labels: one value
    counts = np.bincount(codes, minlength=len(uniques))
    shared = np.flatnonzero(counts > 1)
    if not shared.size:
        return
    shared = shared[np.argsort([np.flatnonzero(codes == c)[0] for c in shared], kind="stable")]  # in row order
    parts = []
    for c in shared[:3]:
        rows = np.flatnonzero(codes == c)
        parts.append(f"rows {_shown(rows.tolist(), 6)} share the study label {uniques[c]!r}")
    more = shared.size - len(parts)
    warnings.warn(
        f"{who}(): " + "; ".join(parts) + (f"; and {more} more labels repeat" if more > 0 else "")
        + f"; {who}() treats them as independent; for dependent effects use meta.multilevel.rma_mv "
        "(or che() with cluster-robust tests)",
        UserWarning,
        stacklevel=3,
    )
