"""No silent wrong number from odd input (docs/input-rules.md): masked arrays,
mixed-type labels, tests on effects that carry no information, one rule for
``level``, the common-tau2 subgroup model for every estimator (against R
metafor 3.8.1: tests/r/subgroup_common_reference.R ->
tests/fixtures/subgroup_common_reference.json) and trim and fill without
missing studies (tests/r/trimfill_tests_reference.R ->
tests/fixtures/trimfill_tests_reference.json).

Tolerances for the subgroup fits: relative 1e-8 (absolute 1e-10) for the
closed forms (FE, DL, HE, HS, SJ); 1e-7 / 1e-9 for the iterative REML, ML, PM,
EB (metafor stops its Fisher scoring at a tau2 change below 1e-12 and
uniroot at tol 1e-12, not at the root).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from _reference import arr  # tests/ is on sys.path under pytest
from meta import _subgroup_tau2 as S
from meta.pool import subgroups

FIXTURES = Path(__file__).parent / "fixtures"
SUB = {c["name"]: c for c in json.loads((FIXTURES / "subgroup_common_reference.json").read_text())["cases"]}
ITERATIVE = ("REML", "ML", "PM", "EB")

# the set of the issue: REML's slope at tau2 = 0 is negative, yet an interior maximum is higher
Y6 = [-0.0897, 2.6676, 0.5625, 0.1551, 0.3, 0.31]
V6 = [0.095, 0.7272, 1.4897, 0.0016, 0.5, 0.6]
G6 = list("AAAABB")


def close(ours, ref, what, rtol, atol):
    np.testing.assert_allclose(arr(ours), arr(ref), rtol=rtol, atol=atol, err_msg=what)


# --------------------------------------------------------------------------- 5. common tau2 in subgroups


SUB_PARAMS = [pytest.param(n, i, id=f"{n}-{f['method']}") for n, c in SUB.items() for i, f in enumerate(c["common"])]


@pytest.mark.parametrize("name,i", SUB_PARAMS)
def test_common_tau2_matches_metafor_mods_factor_for_every_estimator(name, i):
    """subgroups(tau2="common", method=m) = metafor rma(yi, vi, mods = ~ factor(g), method = m)
    (tau2, QE, QM with G - 1 df, residual I2/H2) and ~ factor(g) - 1 (estimate, se, z, p, CI
    per group), for each of the nine estimators pool() accepts."""
    case, ref = SUB[name], SUB[name]["common"][i]
    m = ref["method"]
    rtol, atol = (1e-7, 1e-9) if m in ITERATIVE else (1e-8, 1e-10)
    res = subgroups(case["yi"], case["vi"], case["groups"], method=m, tau2="common")
    assert list(res.groups) == ref["labels"]
    for ours, theirs in [("tau2_common", "tau2"), ("qe", "qe"), ("qe_p", "qe_p"), ("q_between", "qm"),
                         ("q_between_p", "qm_p"), ("residual_i2", "i2"), ("residual_h2", "h2")]:
        close(getattr(res, ours), ref[theirs], f"{name} {m}: {ours}", rtol, atol)
    assert res.q_between_df == ref["qm_df"] and res.qe_df == ref["qe_df"]
    for f in ("estimate", "se", "stat", "p", "ci_low", "ci_high"):
        close([getattr(r, f) for r in res.groups.values()], ref[f], f"{name} {m}: {f}", rtol, atol)


@pytest.mark.parametrize("name,m", [(n, m) for n in SUB for m in ("REML", "ML")])
def test_common_tau2_is_the_global_maximum_of_metafors_profile(name, m):
    """REML/ML: our tau2 is the maximiser found on a dense grid of metafor's own
    logLik(rma(..., mods = ~ factor(g), tau2 = t)) refined by optimize() (tol 1e-10)."""
    case = SUB[name]
    ref = next(f for f in case["common"] if f["method"] == m)["profile_max"]
    res = subgroups(case["yi"], case["vi"], case["groups"], method=m, tau2="common")
    assert res.tau2_common == pytest.approx(ref["tau2"], rel=1e-6, abs=1e-9)


def test_interior_reml_maximum_is_found_where_the_slope_at_zero_is_negative():
    """The set of the issue: metafor rma(yi, vi, mods = ~ factor(g)) gives tau2 = 0.577,
    group A 0.549 (se 0.473); the boundary tau2 = 0 gave 0.157 (se 0.040, p 7e-5)."""
    ref = next(f for f in SUB["interior"]["common"] if f["method"] == "REML")
    y2 = np.array([[-0.0897, 0.3], [2.6676, 0.31], [0.5625, 0.0], [0.1551, 0.0]])
    v2 = np.array([[0.095, 0.5], [0.7272, 0.6], [1.4897, np.inf], [0.0016, np.inf]])
    assert S.reml_score(y2, v2, 0.0) < 0  # the slope at 0 that used to end the search
    assert S.loglik(y2, v2, ref["tau2"]) > S.loglik(y2, v2, 0.0)
    res = subgroups(Y6, V6, G6, method="REML", tau2="common")
    assert res.tau2_common == pytest.approx(ref["tau2"], rel=1e-7)
    assert res.groups["A"].estimate == pytest.approx(ref["estimate"][0], rel=1e-7)
    assert res.groups["A"].p == pytest.approx(ref["p"][0], rel=1e-7)
    assert res.groups["A"].p > 0.2


def _loglik_grid(y2, v2, t, ml):
    """S.loglik at every tau2 in ``t`` at once (the same formula, broadcast over a third axis)."""
    vt = v2[..., None] + t
    w = 1.0 / vt
    s1 = w.sum(axis=0)
    est = (w * y2[..., None]).sum(axis=0) / s1
    logv = np.where(np.isfinite(vt), np.log(vt), 0.0).sum(axis=(0, 1))
    rss = (w * (y2[..., None] - est) ** 2).sum(axis=(0, 1))
    return -0.5 * (logv + (0.0 if ml else np.log(s1).sum(axis=0)) + rss)


@pytest.mark.parametrize("ml", [False, True])
def test_common_tau2_likelihood_never_below_a_dense_grid(ml):
    """On 200 random grouped sets the (restricted) log-likelihood at our tau2 is never
    below the best of a dense grid (0 plus 3000 log-spaced points in [1e-6, 1e4], refined once)."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        k = int(rng.integers(4, 12))
        gcount = int(rng.integers(2, min(4, k - 1) + 1))
        codes = np.r_[np.arange(gcount), rng.integers(0, gcount, k - gcount)]
        y = rng.normal(0, rng.choice([0.1, 1.0, 3.0]), k) + rng.normal(0, 1, gcount)[codes]
        v = rng.choice([0.001, 0.05, 0.5, 2.0], k) * rng.uniform(0.5, 1.5, k)
        n = np.bincount(codes).max()
        y2, v2 = np.zeros((n, gcount)), np.full((n, gcount), np.inf)
        for j in range(gcount):
            pos = np.flatnonzero(codes == j)
            y2[: pos.size, j], v2[: pos.size, j] = y[pos], v[pos]
        ours = S.tau2_common(y2, v2, k, "ML" if ml else "REML")
        grid = np.r_[0.0, np.geomspace(1e-6, 1e4, 3000)]
        ll = _loglik_grid(y2, v2, grid, ml)
        j = int(ll.argmax())
        fine = np.linspace(grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)], 401)
        best = max(ll.max(), _loglik_grid(y2, v2, fine, ml).max())
        assert S.loglik(y2, v2, ours, ml) >= best - 1e-10 * (1 + abs(best)), (k, y, v, codes)


def test_common_tau2_refuses_an_unknown_estimator_with_the_valid_names():
    y2, v2 = np.array([[0.1, 0.2], [0.3, 0.5]]), np.array([[0.1, 0.1], [0.2, 0.2]])
    with pytest.raises(ValueError, match="tau2 estimator must be one of 'FE'.*'EB'"):
        S.tau2_common(y2, v2, 4, "GENQ")


# --------------------------------------------------------------------------- 1. masked arrays

import pandas as pd  # noqa: E402

from meta import _checks, effects  # noqa: E402
from meta.bayes import bayes_pool  # noqa: E402
from meta.bias import egger, trimfill  # noqa: E402
from meta.confint import confint  # noqa: E402
from meta.pool import cumulative, leave_one_out, pool, pool_many  # noqa: E402
from meta.plots import funnel  # noqa: E402
from meta.robustness import robustness  # noqa: E402

YM = np.array([0.1, 0.3, 5.0, 0.2, 0.4, 0.25])
VM = np.array([0.04, 0.05, 0.06, 0.03, 0.08, 0.05])
MASK = np.array([False, False, True, False, False, False])
MY = np.ma.array(YM, mask=MASK)
NS = np.array([20, 25, 30, 22, 18, 40])

MASKED_CALLS = {
    "pool": lambda: pool(MY, VM),
    "pool vi": lambda: pool(YM, np.ma.array(VM, mask=MASK)),
    "pool slab": lambda: pool(YM, VM, slab=np.ma.array(list("abcdef"), mask=MASK)),
    "pool_many": lambda: pool_many(np.ma.array([YM, YM], mask=[MASK, MASK & False]), np.array([VM, VM])),
    "leave_one_out": lambda: leave_one_out(MY, VM),
    "cumulative": lambda: cumulative(MY, VM),
    "cumulative order": lambda: cumulative(YM, VM, np.ma.array([1, 2, 3, 4, 5, 6], mask=MASK)),
    "subgroups": lambda: subgroups(MY, VM, list("aabbcc")),
    "subgroups groups": lambda: subgroups(YM, VM, np.ma.array(list("aabbcc"), mask=MASK)),
    "egger": lambda: egger(MY, VM),
    "trimfill": lambda: trimfill(MY, VM),
    "confint": lambda: confint(MY, VM),
    "bayes_pool": lambda: bayes_pool(MY, VM),
    "robustness": lambda: robustness(MY, VM),
    "smd": lambda: effects.smd(MY, 1.0, NS, 0.0, 1.0, NS),
    "smd n": lambda: effects.smd(YM, 1.0, np.ma.array(NS, mask=MASK), 0.0, 1.0, NS),
    "smd_from_t": lambda: effects.smd_from_t(MY, NS, NS),
    "smd_from_p": lambda: effects.smd_from_p(np.ma.array([0.01, 0.2, 0.5], mask=[0, 1, 0]), 20, 20, 1),
    "smd_from_md": lambda: effects.smd_from_md(MY, NS, NS, se=0.5),
    "smd_from_d": lambda: effects.smd_from_d(MY, NS, NS),
    "smd_from_d_ci": lambda: effects.smd_from_d_ci(MY, MY - 1, MY + 1, NS, NS),
    "smd_change": lambda: effects.smd_change(MY, NS, se=0.5),
    "smd_from_dz": lambda: effects.smd_from_dz(MY, NS),
    "smd_paired": lambda: effects.smd_paired(MY, 1.0, 0.0, 1.0, NS, r=0.5),
    "hedges_j": lambda: effects.hedges_j(np.ma.array([10.0, 20.0], mask=[0, 1])),
    "funnel": lambda: funnel(MY, VM),
}


@pytest.mark.parametrize("name", list(MASKED_CALLS))
def test_masked_values_are_refused_with_what_to_do(name):
    """np.asarray drops a mask, so pool(np.ma.array(y, mask=m), v) used to pool the masked
    values (2.351 instead of 0.071 in the issue); every function now refuses them and says what
    to pass instead."""
    with pytest.raises(TypeError, match=r"masked array with 1 masked value\(s\) at positions \(0-based\) (1|2|\(0, 2\));.*compressed\(\)"):
        MASKED_CALLS[name]()


def test_a_masked_array_with_nothing_masked_is_its_data_and_the_masked_constant_is_refused():
    assert pool(np.ma.array(YM), VM) == pool(YM, VM)
    with pytest.raises(TypeError, match="np.ma.masked"):
        pool([0.1, np.ma.masked, 0.3], [0.1, 0.1, 0.1])
    # the numbers: the masked study would have moved the estimate
    assert pool(YM[~MASK], VM[~MASK]).estimate != pytest.approx(pool(YM, VM).estimate, abs=0.1)


# --------------------------------------------------------------------------- 4. one rule for level


LEVEL_CALLS = {
    "pool": (lambda lv: pool(YM, VM, level=lv), lambda r: (r.ci_low, r.ci_high, r.level)),
    "leave_one_out": (lambda lv: leave_one_out(YM, VM, level=lv), lambda r: tuple(r["ci_low"])),
    "cumulative": (lambda lv: cumulative(YM, VM, level=lv), lambda r: tuple(r["ci_low"])),
    "pool_many": (lambda lv: pool_many(np.array([YM]), np.array([VM]), level=lv), lambda r: tuple(r["ci_low"])),
    "subgroups": (lambda lv: subgroups(YM, VM, list("aaabbb"), level=lv), lambda r: r.groups["a"].ci_low),
    "subgroups common": (lambda lv: subgroups(YM, VM, list("aaabbb"), level=lv, tau2="common"),
                         lambda r: r.groups["a"].ci_low),
    "egger": (lambda lv: egger(YM, VM, level=lv), lambda r: (r.ci_low, r.ci_high, r.level)),
    "confint": (lambda lv: confint(YM, VM, level=lv), lambda r: (r.ci_low, r.ci_high, r.level)),
    "PoolResult.confint": (lambda lv: pool(YM, VM).confint(level=lv), lambda r: (r.ci_low, r.level)),
    "bayes_pool": (lambda lv: bayes_pool(YM, VM, level=lv), lambda r: (r.mu_ci_low, r.mu_ci_high, r.level)),
    "robustness": (lambda lv: robustness(YM, VM, level=lv), lambda r: (tuple(r.to_frame()["ci_low"]), r.level)),
    "smd_from_md": (lambda lv: effects.smd_from_md(0.5, 20, 20, ci_low=0.1, ci_high=0.9, level=lv),
                    lambda r: tuple(r["vi"])),
    "smd_from_d_ci": (lambda lv: effects.smd_from_d_ci(0.5, 0.1, 0.9, 20, 20, level=lv), lambda r: tuple(r["vi"])),
    "smd_change": (lambda lv: effects.smd_change(0.5, 20, ci_low=0.1, ci_high=0.9, level=lv),
                   lambda r: tuple(r["vi"])),
    "funnel": (lambda lv: funnel(YM, VM, level=lv),
               lambda f: tuple(next(a for a in f.findobj() if a.get_gid() == "pseudo-ci").get_xdata())),
}


@pytest.mark.parametrize("name", list(LEVEL_CALLS))
def test_level_is_read_by_one_rule_everywhere(name):
    """metafor's rule, everywhere: a level above 1 is a percentage, so 1.5 means 1.5 % (pool
    read it so; egger, bayes_pool and the effect functions refused it) and 95 means 95 %."""
    call, key = LEVEL_CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert key(call(1.5)) == key(call(0.015))
        assert key(call(95)) == key(call(0.95))
        assert key(call(np.float64(90.0))) == key(call(0.9))


@pytest.mark.parametrize("name", list(LEVEL_CALLS))
@pytest.mark.parametrize("bad", [0, 1, 100, 150, -0.5, float("nan"), True, "95", None])
def test_level_refusals_are_the_same_everywhere(name, bad):
    call, key = LEVEL_CALLS[name]
    if bad is None and name in ("egger", "confint", "PoolResult.confint", "robustness", "leave_one_out", "cumulative",
                                      "bayes_pool"):
        assert key(call(None)) == key(call(0.95))  # None: the result's level, else metafor's 95 %
        return
    with pytest.raises(ValueError, match=r"level must be a fraction in \(0, 1\) such as 0.95, or a percentage in \(1, 100\)"):
        call(bad)


def test_no_library_module_compares_a_level_on_its_own():
    """The rule lives in meta._checks.level_fraction only: no other library module compares a
    ``level`` with a number (the review layer's data checks are not library code)."""
    import re

    lib = [p for p in (Path(__file__).parents[1] / "meta").rglob("*.py") if p.name != "_checks.py"]
    review = {"data.py", "analysis.py", "run.py", "report.py", "reproduce.py", "cli.py"}
    pat = re.compile(r"\blevel\s*[<>]=?\s*[\d.]|[\d.]\s*[<>]=?\s*level\b")
    offenders = [f"{p.name}:{i}" for p in lib if p.name not in review and "review" not in p.parts
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert offenders == []
    assert _checks.level_fraction(1.5) == 0.015 and _checks.level_fraction(0.5) == 0.5


# --------------------------------------------------------------------------- 3. tests on effects without information

TF = json.loads((FIXTURES / "trimfill_tests_reference.json").read_text())
NOINFO = TF["no_information"]


def test_metafor_prints_a_p_value_of_rounding_noise_for_identical_effects():
    """What metafor does (the reason for our choice): regtest(model = "lm") on five identical
    effects returns a t-test of rounding noise, with only R's warning; trimfill stops."""
    assert 0.05 < NOINFO["regtest_p"] < 1 and NOINFO["regtest_t"] != 0
    assert "essentially perfect fit" in NOINFO["regtest_warning"]
    assert "did not converge" in NOINFO["trimfill_identical_error"]
    assert "full rank" in NOINFO["equal_vi_error"]


@pytest.mark.parametrize("yi", [
    [0.3] * 5,                                   # identical (egger gave t = 1.48, p = 0.24 here)
    [0.3, 0.1 + 0.2, 0.3, 0.1 + 0.2, 0.3],       # identical up to rounding
    [-2.0] * 5,
    [0.0] * 5,
])
def test_egger_refuses_effects_that_carry_no_information(yi):
    with pytest.raises(ValueError, match=r"^egger: all 5 effects are equal \(up to rounding.*no test to report"):
        egger(yi, NOINFO["identical_vi"])


def test_egger_refuses_an_essentially_perfect_fit_and_equal_vi():
    v = np.array(NOINFO["identical_vi"])
    with pytest.raises(ValueError, match="exactly on a line in sqrt"):
        egger(0.1 + 0.7 * np.sqrt(v), v)
    with pytest.raises(ValueError, match="not of full rank"):
        egger([0.1, 0.3, 0.2, 0.5, 0.4], [0.1] * 5)
    # near-identical effects with real spread are still tested
    r = egger([0.3, 0.3 + 1e-9, 0.3 - 2e-9, 0.3 + 3e-9, 0.3], v)
    assert np.isfinite(r.p) and r.df == 3


@pytest.mark.parametrize("side", [None, "left", "right"])
def test_trimfill_refuses_identical_effects(side):
    with pytest.raises(ValueError, match=r"^trimfill: all 6 effects are equal \(up to rounding"):
        trimfill([0.3, 0.1 + 0.2, 0.3, 0.3, 0.3, 0.3], NOINFO["identical_vi"] + [0.3], side=side)
    with pytest.warns(RuntimeWarning, match="identical up to rounding"):
        res = pool([0.3] * 6, NOINFO["identical_vi"] + [0.3], test="knha")
    with pytest.raises(ValueError, match="all 6 effects are equal"):
        trimfill(res)


# --------------------------------------------------------------------------- 6. trim and fill: which model


TEST_NAME = {"z": "z", "knha": "hksj", "t": "t"}
TF_PARAMS = [pytest.param(c, id=f"{c['dataset']}-{c['method']}-{c['test']}-{c['level']}") for c in TF["trimfill"]]


def _fit_close(ours, ref, what, rtol, atol):
    assert ours.k == ref["k"], what
    assert ours.test == TEST_NAME[ref["test"]] and ours.level == pytest.approx(ref["level"], abs=1e-12), what
    for f in ("estimate", "se", "stat", "p", "ci_low", "ci_high", "tau2"):
        close(getattr(ours, f), ref[f], f"{what}: {f}", rtol, atol)


@pytest.mark.parametrize("case", TF_PARAMS)
def test_trimfill_of_a_fit_matches_metafor_test_and_level(case):
    """metafor 3.8.1 trimfill(rma(..., test, level)): with k0 = 0 the user's model itself
    (a knha fit stays a t-test at its level: we reported a z-test refit), with k0 > 0 a z-test
    at 95 % on observed + filled studies (metafor passes only `method` on)."""
    d = TF["data"][case["dataset"]]
    rtol, atol = (1e-7, 1e-9) if case["method"] in ("REML", "PM") else (1e-9, 1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = pool(d["yi"], d["vi"], method=case["method"], test=TEST_NAME[case["test"]], level=case["level"])
        tf = trimfill(res)
    _fit_close(res, case["fit"], "fit", rtol, atol)
    assert tf.k0 == case["k0"] and tf.side == case["side"]
    _fit_close(tf.result, case["filled"], "filled", rtol, atol)
    if case["k0"] == 0:
        assert case["same_object"] and tf.result is res and tf.original is res
    else:
        assert (tf.result.test, tf.result.level) == ("z", 0.95)
    assert ("t = " if tf.result.test != "z" else "z = ") in tf.summary().split("Observed + filled")[1]


# --------------------------------------------------------------------------- 2. labels of one kind

Y5, V5 = [0.1, 0.5, 0.2, 0.6, 0.3], [0.04, 0.05, 0.06, 0.05, 0.04]


@pytest.mark.parametrize("groups", [[1, "1", 1, "1", 2], [True, 1, True, 1, 2], [1.0, "a", "a", "b", "b"]])
@pytest.mark.parametrize("tau2", ["separate", "common"])
def test_subgroups_refuse_mixed_kinds_of_group_labels(groups, tau2):
    """[1, "1", 1, "1", 2] gave 2 groups holding 3 of the 5 studies (str(1) == "1" overwrote one);
    True == 1 merges in every grouping.  Refused, naming the positions and types."""
    with pytest.raises(ValueError, match=r"^groups mixes (number|string|boolean) and .*positions \(0-based\) \[.*types "):
        subgroups(Y5, V5, groups, tau2=tau2)


def test_group_labels_of_one_kind_stay_distinct_and_complete():
    res = subgroups(Y5, V5, ["1", "1", "01", "01", "2"])
    assert list(res.groups) == ["1", "01", "2"] and sum(r.k for r in res.groups.values()) == 5
    res = subgroups(Y5, V5, np.array([1, 1, 2, 2, 3]))
    assert list(res.groups) == ["1", "2", "3"] and sum(r.k for r in res.groups.values()) == 5


@pytest.mark.parametrize("call", [
    lambda: pool(Y5, V5, slab=[1, "1", 2, 3, 4]),
    lambda: leave_one_out(Y5, V5, labels=[1, "1", 2, 3, 4]),
    lambda: cumulative(Y5, V5, labels=[1, "1", 2, 3, 4]),
    lambda: subgroups(Y5, V5, list("aabbb"), slab=[1, "1", 2, 3, 4]),
    lambda: pool(pd.Series(Y5, index=[1, "1", 2, 3, 4]), V5),
], ids=["pool slab", "leave_one_out labels", "cumulative labels", "subgroups slab", "pool index"])
def test_study_labels_of_mixed_kinds_are_refused(call):
    """Study labels are matched by their text (forest(res, studies=) pairs rows by label; figures
    print str(label)): 1 and "1" would be one study there."""
    with pytest.raises(ValueError, match=r"mixes number and string: numbers at positions \(0-based\) \[0, 2, 3, 4\].*strings at positions \(0-based\) \[1\]"):
        call()


def test_forest_study_table_labels_and_subgroups_of_mixed_kinds_are_refused():
    """forest(res, studies) pairs rows with the result's subgroups by text: a subgroup column
    holding 1 and "1" drew the subgroup "1" twice."""
    from meta.plots import forest

    res = subgroups(Y5, V5, ["1", "1", "2", "2", "2"])
    table = pd.DataFrame({"label": list("abcde"), "yi": Y5, "vi": V5, "g": [1, "1", 2, 2, 2]})
    with pytest.raises(ValueError, match=r"^forest: studies\['g'\] mixes number and string"):
        forest(res, table, subgroup="g")
    table["g"] = ["1", "1", "2", "2", "2"]
    table["label"] = [1, "b", "c", "d", "e"]
    with pytest.raises(ValueError, match=r"^forest: studies\['label'\] mixes string and number"):
        forest(res, table, subgroup="g")


def test_sort_keys_of_mixed_kinds_are_refused():
    """cumulative(order=[9, "10", ...]) sorted the years as text ("10" < "9")."""
    with pytest.raises(ValueError, match=r"^order mixes number and string"):
        cumulative(Y5, V5, [2009, "2010", 2001, 2003, 2004])
    assert list(cumulative(Y5, V5, [9, 10, 1, 3, 4])["added"]) == [3, 4, 5, 1, 2]


def test_hksj_without_information_is_nan_with_a_warning_not_p_zero():
    """Identical effects: the Knapp-Hartung residual sum of squares is rounding noise; metafor
    sets the variance factor to 0 and reports se = 0, p = 0.  Here se, the test, p, CI and PI
    are NaN with a RuntimeWarning, in every fitting function; test='adhoc' still gives a test."""
    v = NOINFO["identical_vi"]
    with pytest.warns(RuntimeWarning, match="test='hksj': in 1 analysis the effects are identical up to rounding"):
        r = pool([0.3] * 5, v, test="knha")
    assert r.estimate == pytest.approx(0.3) and all(math.isnan(x) for x in (r.se, r.stat, r.p, r.ci_low, r.pi_high))
    with pytest.warns(RuntimeWarning, match="in 1 analysis"):
        df = pool_many(np.array([[0.3] * 5, [0.1, 0.2, 0.3, 0.4, 0.5]]), np.array([v, v]), test="hksj")
    assert math.isnan(df["p"].iloc[0]) and 0 < df["p"].iloc[1] < 1
    with pytest.warns(RuntimeWarning, match="in 5 analyses"):
        loo = leave_one_out([0.3] * 5, v, test="hksj")
    assert loo["p"].isna().all()
    with pytest.warns(RuntimeWarning, match="identical up to rounding"):
        sub = subgroups([0.3] * 4 + [0.5, 0.6], v + [0.1], list("aaaabb"), test="hksj")
    assert math.isnan(sub.groups["a"].p) and 0 < sub.groups["b"].p < 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 0 < pool([0.3] * 5, v, test="adhoc").p < 1
        assert 0 < pool([0.3, 0.31, 0.29, 0.3, 0.305], v, test="hksj").p < 1
