"""Data folders of many rows: the column-at-a-time paths give what the row-at-a-time rules give.

Each test builds a small synthetic fixture here (never data/) and compares the batched code with
the one-row code it replaces: the paired route of ``study_effects`` with ``_run`` row by row, the
cluster-robust CR2 test of a multilevel fit read as sparse blocks with the same fit given as
dense k x k matrices, the evidence filters with the pandas text formula, and the garbage
collector pause of the data checks with the collector's state before it.
"""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pandas as pd
import pytest

from meta.review.inputs import study_effects as se
from meta.review.inputs.schema import collector_paused
from meta.review.running.evidence import _isin, _text

# --------------------------------------------------------------------------- paired route


def _paired_rows() -> pd.DataFrame:
    """post_vs_pre rows with means and SDs and every source of a derived r (and none)."""
    base = dict(outcome="pain", comparison="post_vs_pre", timepoint="post", task="running", n1=20, n2=20,
                mean1=3.0, sd1=1.2, mean2=4.0, sd2=1.5, mean_diff=np.nan, se=np.nan, ci_low=np.nan,
                ci_high=np.nan, ci_level=np.nan, effect_size=np.nan, effect_size_type=pd.NA, p_value=np.nan,
                p_operator=pd.NA, direction=np.nan)
    rows = [
        {},  # no source: the assumed r, or no route
        dict(mean_diff=-1.0, se=0.25),  # SD of change from the SE
        dict(mean_diff=-1.0, ci_low=-1.5, ci_high=-0.5),  # from a 95% CI (level assumed)
        dict(mean_diff=-1.0, ci_low=-1.4, ci_high=-0.6, ci_level=0.9),  # from a 90% CI
        dict(effect_size=-4.2, effect_size_type="t"),  # paired t
        dict(p_value=0.003, p_operator="="),  # exact paired p
        dict(p_value=0.01, p_operator="<"),  # a bound: no r from it
        dict(mean_diff=-1.0, se=0.001),  # SD of change far too small: r outside (-1, 1), or refused
        dict(effect_size=-0.2, effect_size_type="t"),  # a paired t that the SDs cannot fit
        dict(n1=3, n2=3, p_value=0.5, p_operator="="),
        dict(mean1=4.0, mean2=4.0, p_value=0.2, p_operator="="),  # no change but p < 1
    ]
    recs = []
    for i, extra in enumerate(rows):
        rec = dict(base, study_id=f"study{2000 + i}", **extra)
        recs.append(rec)
    df = pd.DataFrame(recs, index=pd.RangeIndex(2, 2 + len(recs), name="row"))
    for col in ("effect_size_type", "p_operator", "outcome", "comparison", "timepoint", "task", "study_id"):
        df[col] = df[col].astype("string")
    for col in ("n1", "n2"):
        df[col] = df[col].astype("Int64")
    return df


def _one_by_one(df: pd.DataFrame, r) -> list[tuple]:
    """The paired route as ``_run`` gives it for each row alone (what the batch replaces)."""
    out = []
    for _, row in df.iterrows():
        row = {k: (None if v is pd.NA else v) for k, v in row.to_dict().items()}
        try:
            y, v, fl, ru = se._run("paired", row, variance="revman", inequality="bound", r=r)
        except se._NoRoute as exc:
            out.append(("none", str(exc)))
        except ValueError as exc:
            out.append(("refused", str(exc)))
        else:
            out.append((y, v, ";".join(fl), ru))
    return out


@pytest.mark.parametrize("r", [None, 0.5])
def test_paired_route_in_one_call_equals_row_by_row(r):
    df = _paired_rows()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = se.study_effects(df, variance="revman", r=r)
        ref = _one_by_one(df, r)
    assert len(got) == len(ref)
    for (_, g), want in zip(got.iterrows(), ref):
        if want[0] == "none":  # no paired route: the reason says why (a later route may serve the row)
            assert g["route"] != "paired"
            assert want[1] in g["reason"]
        elif want[0] == "refused":
            assert g["route"] != "paired" and "paired refused" in g["reason"]
        else:
            assert g["route"] == "paired"
            # the same arithmetic: equal to the last bit
            assert (g["yi"], g["vi"], g["flags"], g["r"]) == want
    flags = ";".join(got["flags"])
    assert "r_derived" in flags  # the fixture does exercise derived r
    if r is None:
        assert got["reason"].str.contains("paired design needs r").any()
    else:
        assert "r_assumed" in flags


def test_paired_route_notes_an_r_outside_minus_one_one():
    df = _paired_rows().iloc[[7, 8]]
    got = se.study_effects(df, variance="revman", r=None)
    ref = _one_by_one(df, None)
    assert [w[0] for w in ref] == ["none", "none"]
    for reason, want in zip(got["reason"], ref):
        assert want[1] in reason
    assert any("which the SMCR variance cannot use" in w[1] or "no r derived" in w[1] for w in ref)


# --------------------------------------------------------------------------- cluster-robust CR2 on blocks


def _che_fit(n_clusters: int, seed: int = 3):
    from meta.multilevel import che

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_clusters)
    cl = np.repeat(np.arange(n_clusters), sizes)
    yi = rng.normal(0.3, 0.4, cl.size)
    vi = rng.uniform(0.02, 0.2, cl.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return che(yi, vi, study=cl, r=0.6), cl


def test_multilevel_fit_offers_its_w_and_m_as_sparse_blocks():
    fit, _ = _che_fit(12)
    assert np.array_equal(fit.W_sparse.toarray(), fit.W)
    assert np.array_equal(fit.M_sparse.toarray(), fit.M)
    assert fit.W_sparse.nnz < fit.k * fit.k  # only the blocks


def test_cr2_from_sparse_blocks_equals_cr2_from_dense_matrices():
    from meta.robust import WorkingModel, coef_test, conf_int

    fit, cl = _che_fit(30)
    dense = WorkingModel.from_matrices(fit.X, fit.yi, W=fit.W, M=fit.M, beta=fit.beta, coef_names=fit.coef_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = conf_int(fit, cl, vcov="CR2")  # reads W_sparse / M_sparse
        b = conf_int(dense, cl, vcov="CR2")
        sa = coef_test(fit, cl, vcov="CR2", test="saddlepoint")
        sb = coef_test(dense, cl, vcov="CR2", test="saddlepoint")
    for name in ("beta", "se", "df", "ci_lb", "ci_ub", "pval"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.allclose(sa.pval, sb.pval, rtol=1e-12, atol=0)


def test_sparse_weights_linking_two_clusters_are_refused_as_dense_ones_are():
    from scipy import sparse

    from meta.robust import vcov_cr

    X = np.ones((4, 1))
    W = np.diag([1.0, 2.0, 1.5, 1.0])
    W[1, 2] = W[2, 1] = 0.3  # rows 1 and 2 belong to different clusters
    e = np.array([0.1, -0.2, 0.3, 0.0])
    cluster = ["a", "a", "b", "b"]
    with pytest.raises(ValueError) as dense_err:
        vcov_cr(X, W, e, cluster)
    with pytest.raises(ValueError) as sparse_err:
        vcov_cr(X, sparse.csr_matrix(W), e, cluster)
    assert str(sparse_err.value) == str(dense_err.value)
    assert "links rows 1 and 2" in str(sparse_err.value)


def test_sparse_weights_must_be_symmetric():
    from scipy import sparse

    from meta.robust import vcov_cr

    W = np.diag([1.0, 2.0, 1.5, 1.0])
    W[0, 1] = 0.3
    with pytest.raises(ValueError, match=r"W must be symmetric; W\[i, j\] != W\[j, i\] at \(0, 1\)"):
        vcov_cr(np.ones((4, 1)), sparse.csr_matrix(W), np.zeros(4), ["a", "a", "b", "b"])


# --------------------------------------------------------------------------- evidence filters


def test_filter_text_is_the_stripped_text_of_each_cell():
    s = pd.Series(pd.array([" case-control", "prospective ", None, "case-control", "", "x"], dtype="string"),
                  index=[10, 11, 12, 13, 14, 15])
    old = s.astype("string").fillna("").str.strip()
    assert _text(s).equals(old)
    assert _isin(s, ("case-control", "")).equals(old.isin(("case-control", "")))
    nums = pd.Series(pd.array([1, None, 2009], dtype="Int64"))
    assert _text(nums).equals(nums.astype("string").fillna("").str.strip())
    assert list(_isin(nums, ("2009",))) == [False, False, True]


# --------------------------------------------------------------------------- the collector pause


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_pause_restores_the_collectors_state(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError):
            with collector_paused():
                raise RuntimeError("boom")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_check_folder_of_many_rows_reports_what_a_small_one_does(tmp_path):
    """Copies of one study's rows give the same problems, row for row (the row numbers shifted)."""
    from pathlib import Path

    from meta.review.inputs.data import check_folder

    src = Path(__file__).resolve().parent / "fixtures" / "review_data"
    for name in ("studies.csv", "review_claims.csv", "vocabulary.csv"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    lines = (src / "outcomes.csv").read_text(encoding="utf-8").splitlines()
    bad = lines[1].split(",")
    bad[8] = "-3"  # sd1 of the first row: must be > 0
    (tmp_path / "outcomes.csv").write_text("\n".join([lines[0]] + [",".join(bad)] * 3 + lines[2:]) + "\n",
                                           encoding="utf-8")
    probs = [p for p in check_folder(tmp_path).problems if p.column == "sd1"]
    assert [p.row for p in probs if "must be > 0" in p.message] == [2, 3, 4]


def test_satterthwaite_df_without_the_j_by_j_matrix_agrees_with_it(monkeypatch):
    from meta import robust

    fit, cl = _che_fit(60, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = robust.conf_int(fit, cl, vcov="CR2").df
        monkeypatch.setattr(robust, "DENSE_P_MAX_CLUSTERS", 10)
        low_rank = robust.conf_int(fit, cl, vcov="CR2").df
    assert np.allclose(low_rank, dense, rtol=1e-12, atol=0)


def test_evidence_sets_with_a_kept_text_cache_select_the_same_rows():
    from meta.review.inputs.analysis import load_analyses
    from meta.review.inputs.data import load
    from meta.review.running.evidence import evidence_sets
    from meta.review.running.run import effect_table

    from pathlib import Path

    folder = Path(__file__).resolve().parent / "fixtures" / "review_data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = effect_table(load(folder))
    texts: dict = {}
    for a in load_analyses(folder):
        plain, kept = evidence_sets(table, a), evidence_sets(table, a, texts=texts)
        for name in plain:
            for part in ("matched", "other_scale", "added", "other_task"):
                assert getattr(kept[name], part).index.equals(getattr(plain[name], part).index), (a.analysis_id, part)
    assert {"task", "review_set"} <= set(texts)  # filled on first use, reused afterwards
