"""The spreadsheet-safe CSV rule (meta.review.outputs.csvsafe) gives, on its fast paths, exactly the
one-cell rule of its module docstring; and the pre-post r sweep, which rebuilds only the rows that take
the assumed r, gives the effect table a full rebuild at that r gives."""

import dataclasses
import re

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from meta.review.outputs.csvsafe import safe_cell, safe_row, spreadsheet_safe

FIXTURE = "tests/fixtures/review_data"

# the rule as the module docstring states it, written out here on its own; a number followed by one
# final newline counts as a number, as ``$`` matches there (a spreadsheet reads it as that number)
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\n?")


def rule(v):
    if not isinstance(v, str):
        return v
    if v[:1] not in ("=", "+", "-", "@", "\t", "\r") or v in ("+", "-") or _PLAIN_NUMBER.fullmatch(v):
        return v
    return "'" + v


TRICKY = ["=", "+", "-", "@", "\t", "\r", "-0.4", "+1", "1e-3", "-1.5e-3", "\ufeff=", "=1+1", "+x", "-x", "@SUM(A1)",
          "\tx", "\rx", "", "'=", " =", "-.5", "+.", "-1.", "--1", "-0.4\n", "=HYPERLINK(\"x\")", "plain", "+-", "-1e"]
text = st.one_of(st.sampled_from(TRICKY),
                 st.builds(lambda a, b: a + b, st.sampled_from(TRICKY), st.text(max_size=6)),
                 st.text(max_size=8))
cell = st.one_of(text, st.none(), st.floats(allow_nan=True), st.integers(-5, 5), st.just(np.nan), st.just(pd.NA))


def test_tricky_cells_follow_the_rule():
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("-0.4") == "-0.4" and safe_cell("-") == "-"
    assert safe_cell("\ufeff=") == "\ufeff=" and safe_cell("@x") == "'@x" and safe_cell(-0.4) == -0.4
    assert [safe_cell(c) for c in TRICKY] == [rule(c) for c in TRICKY]


@settings(max_examples=150, deadline=None)
@given(st.lists(text, max_size=12))
def test_safe_row_is_the_one_cell_rule(cells):
    assert safe_row(cells) == [rule(c) for c in cells]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(cell, text, cell), min_size=1, max_size=6), st.lists(text, min_size=3, max_size=3))
def test_spreadsheet_safe_is_the_one_cell_rule(records, names):
    df = pd.DataFrame(records, columns=names, dtype=object)
    got = spreadsheet_safe(df)
    assert list(got.columns) == [rule(c) for c in names]
    for j in range(df.shape[1]):
        want = [rule(v) for v in df.iloc[:, j].tolist()]
        assert all(map(_same, got.iloc[:, j].tolist(), want)), (got.iloc[:, j].tolist(), want)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(cell, text, st.one_of(text, st.none())), min_size=1, max_size=6),
       st.lists(text, min_size=3, max_size=3), st.booleans())
def test_spreadsheet_safe_writes_the_bytes_of_the_rule_applied_cell_by_cell(records, names, text_index):
    df = pd.DataFrame(records, columns=names, dtype=object)
    if text_index:
        df.index = [f"{r[1]}{i}" for i, r in enumerate(records)]  # text labels, some formula-like
    want = df.copy()
    for j in range(want.shape[1]):
        want.isetitem(j, want.iloc[:, j].map(rule))
    want.columns = want.columns.map(rule)
    want.index = want.index.map(rule)
    for index in (False, True):
        assert spreadsheet_safe(df).to_csv(index=index) == want.to_csv(index=index)


def _same(a, b) -> bool:
    """The same cell: equal text, or both missing, or equal numbers (a column of numbers may come back as floats)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return bool(pd.isna(a) and pd.isna(b)) or (not pd.isna(a) and not pd.isna(b) and a == b)


def test_prepost_sweep_rebuilds_only_assumed_r_rows_and_matches_a_full_rebuild():
    from meta.review.inputs import data
    from meta.review.inputs.study_effects import assumed_r_rows
    from meta.review.running.run import effect_table
    from meta.review.running.sensitivity import _with_r

    ds = data.load(FIXTURE)
    o = ds.outcomes
    pp = dataclasses.replace(ds, outcomes=o.loc[o["comparison"].astype("string").fillna("") == "post_vs_pre"])
    first = effect_table(pp, r=0.2)
    mask = assumed_r_rows(pp.outcomes)
    assert mask.any() and not mask.all()
    # the rows marked are those flagged r_assumed at any r; no row with its own r is among them
    flags = first["flags"].fillna("").astype(str)
    assert (flags.str.contains("r_assumed").to_numpy() <= mask).all()
    assert not (flags.str.contains("r_derived").to_numpy() & mask).any()
    for r in (0.5, 0.8):
        pd.testing.assert_frame_equal(_with_r(first, pp, r, np.flatnonzero(mask)), effect_table(pp, r=r),
                                      check_exact=True)
