"""metafor's default study labels ``1, ..., k`` without ``k`` Python integers.

``rma()`` labels the studies 1..k when no ``slab`` is given, and
:class:`meta.pool.PoolResult` keeps them.  As a tuple they cost ~36 bytes and
~30 ns per study to build and as much again to free (at k = 1,000,000: 29 ms
and 40 MB, more than the DerSimonian-Laird fit itself).  :class:`StudyNumbers`
holds only ``k`` and behaves as the tuple ``(1, ..., k)``: length, indexing
(negative too; a slice gives a tuple), iteration, ``in``, ``index``,
``count``, ``==`` / ``hash`` / ordering as the tuple (``(1, 2, 3) ==
StudyNumbers(3)`` is True: the tuple's comparison returns NotImplemented for
another type, so Python asks this one), ``+`` and ``*`` with tuples (giving
tuples), ``repr`` (beyond :data:`REPR_MAX` labels numpy's summary
``(1, 2, 3, ..., k)``, not a 7 MB string), pickling and ``np.asarray`` /
``pd.Index`` (through ``__array__``: ``np.arange(1, k + 1)``, the int64 array
of the tuple).  As the tuple, it is not equal to a list or a ``range``.
Unlike it, ``isinstance(x, tuple)`` is False (``isinstance(x,
collections.abc.Sequence)`` is True); ``tuple(x)`` gives the tuple itself.
"""

from __future__ import annotations

import functools
import numbers
import operator
import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["StudyNumbers", "REPR_MAX", "SHARED_MAX", "SHARED"]

REPR_MAX = 1000  # up to this many labels repr() is the tuple's; beyond, numpy's summary (3 ... 3)
SHARED_MAX = 1000  # StudyNumbers.of(k) shares one instance per k up to this
SHARED: dict = {}  # k -> the shared StudyNumbers(k) made so far (read it for a lookup without a call)


@functools.lru_cache(maxsize=8)
def _tuple_hash(k: int) -> int:
    """``hash((1, ..., k))`` (computed once per k)."""
    return hash(tuple(range(1, k + 1)))


class StudyNumbers(Sequence):
    """The study labels ``(1, 2, ..., k)`` (metafor's default ``slab``) as an
    immutable sequence that stores only ``k``; see the module docstring for
    how it stands in for the tuple."""

    # the range lives in a slot, k in __dict__: vars() is {"_k": k}, which is what
    # meta._figure_cache hashes for one of the package's own objects
    __slots__ = ("_range", "__dict__")

    def __init__(self, k: int):
        k = operator.index(k)
        if k < 0:
            raise ValueError(f"StudyNumbers: k must be >= 0; got {k}")
        object.__setattr__(self, "_k", k)
        object.__setattr__(self, "_range", range(1, k + 1))

    @classmethod
    def of(cls, k: int) -> "StudyNumbers":
        """``StudyNumbers(k)``, one shared instance per k up to :data:`SHARED_MAX` (they are immutable)."""
        s = SHARED.get(k)
        if s is None:
            s = cls(k)
            if k <= SHARED_MAX:
                SHARED[k] = s
        return s

    def __setattr__(self, name, value):
        raise AttributeError(f"StudyNumbers is immutable (as the tuple it stands for); cannot set {name!r}")

    def __delattr__(self, name):
        raise AttributeError(f"StudyNumbers is immutable (as the tuple it stands for); cannot delete {name!r}")

    def __reduce__(self):
        return (StudyNumbers, (self._k,))

    # --- the sequence

    def __len__(self) -> int:
        return self._k

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self._range[i])
        try:
            return self._range[i]
        except IndexError:
            raise IndexError("tuple index out of range") from None
        except TypeError:
            raise TypeError(f"tuple indices must be integers or slices, not {type(i).__name__}") from None

    def __iter__(self):
        return iter(self._range)

    def __reversed__(self):
        return reversed(self._range)

    def _number(self, x):
        """``x`` as an int when it is a number equal to one (int, bool, numpy
        integer, integral float); ``False`` when it is a number equal to no int;
        ``None`` for anything else (compared element by element, as the tuple)."""
        if isinstance(x, numbers.Integral):
            return int(x)
        if isinstance(x, (float, np.floating)):
            return int(x) if x.is_integer() else False
        return None

    def __contains__(self, x) -> bool:
        n = self._number(x)
        if n is None:
            return x in self._range  # range compares each element with ==, as tuple does
        return n is not False and 1 <= n <= self._k

    def index(self, value, start=0, stop=sys.maxsize) -> int:
        """First position of ``value`` in ``[start, stop)`` (``tuple.index``)."""
        lo, hi, _ = slice(start, stop).indices(self._k)
        n = self._number(value)
        if n is None:
            for i in range(lo, hi):
                if self._range[i] == value:
                    return i
        elif n is not False and lo <= n - 1 < hi:
            return n - 1
        raise ValueError("tuple.index(x): x not in tuple")

    def count(self, value) -> int:
        """How many labels equal ``value`` (``tuple.count``)."""
        n = self._number(value)
        if n is None:
            return self._range.count(value)
        return int(n is not False and 1 <= n <= self._k)

    # --- the tuple's comparisons and hash

    def __eq__(self, other):
        if type(other) is StudyNumbers:
            return self._k == other._k
        if not isinstance(other, tuple):
            return NotImplemented  # as the tuple: a list or a range is not equal
        return len(other) == self._k and all(map(operator.eq, self._range, other))

    def __hash__(self) -> int:
        return _tuple_hash(self._k)

    def _order(self, other, op):
        if type(other) is StudyNumbers:
            return op(self._k, other._k)  # one is a prefix of the other
        if not isinstance(other, tuple):
            return NotImplemented
        return op(tuple(self._range), other)

    def __lt__(self, other):
        return self._order(other, operator.lt)

    def __le__(self, other):
        return self._order(other, operator.le)

    def __gt__(self, other):
        return self._order(other, operator.gt)

    def __ge__(self, other):
        return self._order(other, operator.ge)

    # --- tuple arithmetic (the result is a tuple, as tuple + tuple)

    def __add__(self, other):
        if isinstance(other, tuple) or type(other) is StudyNumbers:
            return tuple(self._range) + tuple(other)
        return NotImplemented

    def __radd__(self, other):
        if isinstance(other, tuple):
            return other + tuple(self._range)
        return NotImplemented

    def __mul__(self, n):
        try:
            n = operator.index(n)
        except TypeError:
            return NotImplemented
        return tuple(self._range) * n

    __rmul__ = __mul__

    # --- text and arrays

    def __repr__(self) -> str:
        k = self._k
        if k <= REPR_MAX:
            return repr(tuple(self._range))
        return f"(1, 2, 3, ..., {k - 2}, {k - 1}, {k})"  # numpy's summary of a long array

    def __array__(self, dtype=None, copy=None):
        """``np.arange(1, k + 1)`` (int64, as ``np.asarray`` of the tuple); always a new array."""
        if copy is False:
            raise ValueError("StudyNumbers stores no array: np.array(..., copy=False) cannot avoid a copy")
        a = np.arange(1, self._k + 1)
        return a if dtype is None else a.astype(dtype, copy=False)
