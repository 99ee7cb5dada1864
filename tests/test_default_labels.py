"""metafor's default study labels 1..k (meta._slab.StudyNumbers) stand in for the tuple
(1, ..., k) everywhere a user or the package uses ``res.slab``; a result never shares memory
with the caller's arrays (the caller's array stays theirs) and keeps the arrays it made itself
without a second copy; the sums in blocks of meta._one / meta._qprofile / fit_one agree with
exactly rounded sums (math.fsum, an independent computation) at k beyond one block.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import pickle
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest

from meta import _estimators as _est
from meta import _one, _qprofile
from meta._slab import REPR_MAX, StudyNumbers
from meta.confint import confint
from meta.pool import PoolResult, cumulative, leave_one_out, pool, subgroups

BIG = 3 * _est.BLOCK + 123  # several blocks of the block-wise sums, and a short last one


def _data(k, seed=1):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.5, k)
    return rng.normal(0.3, np.sqrt(v + 0.1)), v


# --------------------------------------------------------------------------- the labels


@pytest.mark.parametrize("k", [1, 2, 7])
def test_behaves_as_the_tuple(k):
    s, t = StudyNumbers(k), tuple(range(1, k + 1))
    assert s == t and t == s and not (s != t) and not (t != s)  # tuple.__eq__ -> NotImplemented -> ours
    assert hash(s) == hash(t) and {t: "x"}[s] == "x" and len({s, t}) == 1
    assert repr(s) == repr(t) and str(s) == str(t)
    assert len(s) == k and list(s) == list(t) and tuple(s) == t and list(reversed(s)) == list(reversed(t))
    for i in range(-k, k):
        assert s[i] == t[i] and type(s[i]) is int
    assert s[np.int64(k - 1)] == t[-1]
    for sl in (slice(None), slice(1, None), slice(None, None, -1), slice(-2, None), slice(0, 100, 2)):
        assert s[sl] == t[sl] and type(s[sl]) is tuple
    for bad in (k, -k - 1):
        with pytest.raises(IndexError, match="tuple index out of range"):
            s[bad]
    with pytest.raises(TypeError, match="tuple indices must be integers or slices"):
        s["1"]
    for x in (1, k, 0, k + 1, 1.0, 1.5, True, False, np.int64(k), np.float32(1), "1", None, float("nan")):
        assert (x in s) == (x in t), x
        assert s.count(x) == t.count(x), x
    assert s.index(k) == t.index(k) and s.index(1.0) == 0
    with pytest.raises(ValueError):
        s.index(k + 1)
    with pytest.raises(ValueError):
        s.index(1, 1)  # tuple.index(x, start): 1 is only at position 0
    assert s + ("a",) == t + ("a",) and ("a",) + s == ("a",) + t and s + s == t + t
    assert s * 2 == t * 2 and 2 * s == 2 * t
    assert (s < t + (0,)) and (s <= t) and (s >= t) and not (s > t) and (t + (0,) > s)
    assert s != list(t) and list(t) != s  # as the tuple: a list is not equal to it
    assert s != range(1, k + 1)
    assert sorted(s) == sorted(t) and max(s) == k and set(s) == set(t)


def test_arrays_pandas_pickle_copy_and_immutability():
    s = StudyNumbers(5)
    a = np.asarray(s)
    assert a.dtype == np.asarray((1, 2, 3, 4, 5)).dtype and a.tolist() == [1, 2, 3, 4, 5]
    assert np.asarray(s, dtype=float).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.asarray(s, dtype=object).tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        np.array(s, copy=False)  # nothing stored: a copy cannot be avoided, as for a tuple
    assert pd.Index(s).equals(pd.Index((1, 2, 3, 4, 5)))
    assert pd.Index(s, tupleize_cols=False).tolist() == [1, 2, 3, 4, 5]
    assert pd.Series(np.zeros(5), index=s).index.tolist() == [1, 2, 3, 4, 5]
    assert pd.DataFrame({"x": s})["x"].tolist() == [1, 2, 3, 4, 5]
    for other in (pickle.loads(pickle.dumps(s)), copy.copy(s), copy.deepcopy(s)):
        assert type(other) is StudyNumbers and other == s
    with pytest.raises(AttributeError):
        s._k = 3
    with pytest.raises(AttributeError):
        del s._k
    assert bool(s) and not bool(StudyNumbers(0))


def test_repr_is_the_tuple_up_to_the_limit_then_a_summary():
    assert repr(StudyNumbers(REPR_MAX)) == repr(tuple(range(1, REPR_MAX + 1)))
    assert repr(StudyNumbers(10**6)) == "(1, 2, 3, ..., 999998, 999999, 1000000)"


def test_figure_cache_hashes_it_by_value():
    from meta._figure_cache import _feed

    def key(x):
        h = hashlib.sha256()
        _feed(h, x)
        return h.hexdigest()

    assert key(StudyNumbers(4)) == key(StudyNumbers(4)) != key(StudyNumbers(5))


# --------------------------------------------------------------------------- in results and verbs


def test_pool_default_labels_in_results_and_verbs():
    y, v = _data(9)
    res = pool(y, v, method="REML")
    assert type(res.slab) is StudyNumbers and res.slab == tuple(range(1, 10)) and tuple(range(1, 10)) == res.slab
    assert "slab" not in repr(res) and "slab" not in res.to_frame().columns
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.slab = (1,)
    rep = dataclasses.replace(res, tau2=0.5)
    assert type(rep.slab) is StudyNumbers and rep.slab == res.slab
    back = pickle.loads(pickle.dumps(res))
    assert back.slab == res.slab and np.array_equal(back.yi, res.yi)
    # the labels passed on as slab= are taken as they are (no repeated-label warning, no list)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pool(y, v, method="REML", slab=res.slab)
    assert again.slab is res.slab
    assert leave_one_out(res)["omitted"].tolist() == list(range(1, 10))
    added = cumulative(res, order=-y)["added"].tolist()
    assert added == [int(i) + 1 for i in np.argsort(-y, kind="stable")] and all(type(x) is int for x in added)
    sub = subgroups(y, v, ["a", "b", "a", "b", "a", "b", "a", "b", "a"])
    assert sub.groups["a"].slab == (1, 3, 5, 7, 9) and sub.groups["b"].slab == (2, 4, 6, 8)
    assert sub.overall.slab == tuple(range(1, 10))
    hand = PoolResult(**{f.name: getattr(res, f.name) for f in dataclasses.fields(res) if f.name != "slab"}, slab=[1, 2])
    assert hand.slab == (1, 2) and type(hand.slab) is tuple  # a list given by hand becomes a tuple


def test_given_labels_stay_a_tuple():
    y, v = _data(4)
    assert pool(y, v, slab=["a", "b", "c", "d"]).slab == ("a", "b", "c", "d")
    assert type(pool(pd.Series(y, index=list("wxyz")), v).slab) is tuple


def test_large_k_holds_no_python_int_per_study():
    """k = 200,000: the labels are not k Python ints (a tuple of them takes ~36 bytes per study)."""
    k = 200_000
    y, v = _data(k)
    pool(y, v)
    tracemalloc.start()
    res = pool(y, v)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert res.slab[-1] == k and len(res.slab) == k
    assert peak < 3 * 8 * k + 1_000_000, peak  # yi, vi, weights and small buffers; a tuple of labels adds 7 MB


# --------------------------------------------------------------------------- the caller's arrays stay theirs


@pytest.mark.parametrize("k", [5, 300, BIG])  # Python floats, numpy sums, several blocks (copied while checked)
def test_result_never_aliases_the_callers_arrays(k):
    y, v = _data(k)
    y0, v0 = y.copy(), v.copy()
    for yi, vi in ((y, v), (pd.Series(y), pd.Series(v)), (y[:, None][:, 0], v)):
        res = pool(yi, vi, method="PM")
        for kept, given in ((res.yi, y), (res.vi, v), (res.weights, y), (res.weights, v)):
            assert not np.shares_memory(kept, given)
        assert not res.yi.flags.writeable and not res.vi.flags.writeable
        with pytest.raises(ValueError):
            res.yi[0] = 1.0
        y[0] += 1.0  # the caller changes their data: the result does not follow
        v[1] *= 2.0
        assert res.yi[0] == y0[0] and res.vi[1] == v0[1]
        y[0], v[1] = y0[0], v0[1]
        assert y.flags.writeable and v.flags.writeable  # the caller's arrays keep their flags
    np.testing.assert_array_equal(y, y0)


def test_subgroup_results_do_not_alias_the_input():
    y, v = _data(8)
    res = subgroups(y, v, list("abababab"))
    for r in res.groups.values():
        assert not np.shares_memory(r.yi, y) and not np.shares_memory(r.vi, v) and not r.yi.flags.writeable


def test_an_index_input_keeps_its_flags():
    """np.asarray(pd.Index) returns the Index's own array: never frozen or kept by the result."""
    y, v = _data(6)
    idx = pd.Index(y)
    before = np.asarray(idx).flags.writeable
    res = pool(idx, v)
    assert not np.shares_memory(res.yi, np.asarray(idx))
    assert np.asarray(idx).flags.writeable == before


def test_lists_are_converted_once():
    """A list is made into an array once and the result keeps that array (no second copy):
    the peak is the arrays of a call on float64 arrays (two copies and the weights)."""
    k = 200_000
    y, v = _data(k)
    yl, vl = y.tolist(), v.tolist()
    pool(yl, vl)

    def peak(*args):
        tracemalloc.start()
        res = pool(*args)
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p, res

    p_list, res = peak(yl, vl)
    p_array, _ = peak(y, v)
    for p in (p_list, p_array):  # yi, vi and the weights; a second copy of yi and vi would add 3.2 MB
        assert p <= 3 * 8 * k + 600_000, (p_list, p_array)  # + block buffers (2 x 128 kB)
    assert not res.yi.flags.writeable and res.yi.tolist() == yl


def test_confint_of_arrays_does_not_alias():
    y, v = _data(BIG)
    y0 = y.copy()
    ci = confint(y, v, method="REML")
    np.testing.assert_array_equal(y, y0)
    assert y.flags.writeable and ci.k == BIG


# --------------------------------------------------------------------------- block-wise sums against exact sums


def _exact_q(y, v, tau2, power=1):
    """sum(w^power (y - est)^2), w = 1/(v + tau2), est = sum(w y)/sum(w), every sum by math.fsum."""
    w = [1.0 / (x + tau2) for x in v.tolist()]
    est = math.fsum(a * b for a, b in zip(w, y.tolist())) / math.fsum(w)
    return math.fsum(a**power * (b - est) ** 2 for a, b in zip(w, y.tolist()))


@pytest.mark.parametrize("offset", [0.0, 1e3])  # a large common offset: the block means must not cancel
def test_block_sums_agree_with_exact_sums(offset):
    y, v = _data(BIG, seed=7)
    y = y + offset
    work = _one._Work(y, v)
    for tau2 in (0.0, 0.01, 0.3, 30.0):
        q, g = work.pm_q(tau2, deriv=True)
        assert abs(q - _exact_q(y, v, tau2)) <= 1e-13 * _exact_q(y, v, tau2)
        assert abs(g - _exact_q(y, v, tau2, 2)) <= 1e-12 * _exact_q(y, v, tau2, 2)
        assert abs(_qprofile._gen_q(y, v, tau2) - _exact_q(y, v, tau2)) <= 1e-13 * _exact_q(y, v, tau2)
    m = math.fsum(y.tolist()) / y.size
    exact_ss = math.fsum((x - m) ** 2 for x in y.tolist())
    assert abs(_one._centred_ss(y) - exact_ss) <= 1e-13 * exact_ss
    sw0, swy0, sw0sq, q0 = _est._Blocks(y, v).first()
    w0 = (1.0 / v).tolist()
    assert abs(sw0 - math.fsum(w0)) <= 1e-14 * sw0
    assert abs(sw0sq - math.fsum(x * x for x in w0)) <= 1e-14 * sw0sq
    assert abs(q0 - _exact_q(y, v, 0.0)) <= 1e-13 * q0
    # pool's pass: the copies, its quick check of the input and the same sums at once
    ys, vs = np.empty_like(y), np.empty_like(v)
    assert _est._Blocks(ys, vs).first(source=(y, v)) == (sw0, swy0, sw0sq, q0)
    assert np.array_equal(ys, y) and np.array_equal(vs, v)
    bad = v.copy()
    bad[-1] = -1.0  # in the last block
    with np.errstate(all="ignore"):
        assert _est._Blocks(np.empty_like(y), bad).first(source=(y, None)) is None
    # the REML/ML score scan in tiles, blocks merged: against exact sums (fsum), relative to the
    # terms whose difference the score is (the score itself passes through 0 at the estimate)
    grid = np.array([0.0, 0.01, 0.1, 0.3, 1.0, 30.0])
    for ml in (False, True):
        scan = _one._scan_blocks(y, v, grid, ml)
        for t, got in zip(grid.tolist(), scan.tolist()):
            w = [1.0 / (x + t) for x in v.tolist()]
            sw = math.fsum(w)
            est = math.fsum(a * b for a, b in zip(w, y.tolist())) / sw
            swr2 = math.fsum((a * (b - est)) ** 2 for a, b in zip(w, y.tolist()))
            sw2 = math.fsum(a * a for a in w)
            want = swr2 - (sw if ml else sw - sw2 / sw)
            assert abs(got - want) <= 1e-13 * (swr2 + sw), (ml, t)
            assert abs(got - work.score(t, ml=ml)) <= 1e-13 * (swr2 + sw), (ml, t)


def test_single_block_sums_are_the_whole_array_numpy_calls():
    """Up to one block the Q-profile statistic is the two numpy passes over the whole arrays, bit for bit."""
    y, v = _data(5000, seed=2)
    for tau2 in (0.0, 0.2):
        w = 1.0 / (v + tau2)
        est = float(np.add.reduce(w * y)) / float(np.add.reduce(w))
        r = y - est
        assert _qprofile._gen_q(y, v, tau2) == float(np.add.reduce(r * r * w))
