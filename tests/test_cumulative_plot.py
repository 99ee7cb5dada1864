"""meta.plots.cumulative: the cumulative forest plot draws meta.pool.cumulative's table, one row per step."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from meta.plots import MINUS, save
from meta.plots.cumulative import cumulative_forest, step_labels
from meta.pool import cumulative, pool

YI = [0.5, 0.2, -0.1, 0.9]
VI = [0.04, 0.09, 0.05, 0.1]
LABELS = ["Willson 2008", "Noehren 2012b", "Souza 2009a", "Smith"]
YEARS = [2008, 2012, 2009, 2009]  # a tie: Souza before Smith (input order, as metafor cumul())


@pytest.fixture
def cum():
    res = pool(YI, VI, slab=LABELS)
    return cumulative(res, order=YEARS)


def _by_gid(fig, prefix):
    out = {}
    for a in [fig, *fig.axes]:
        for art in [*a.texts, *getattr(a, "lines", [])]:
            g = art.get_gid()
            if g and g.startswith(prefix):
                out[g] = art
    return out


def test_one_row_per_step_in_year_order_labels_plus_study_year(cum):
    assert list(cum["added"]) == ["Willson 2008", "Souza 2009a", "Smith", "Noehren 2012b"]
    years = sorted(YEARS, key=lambda y: y)  # the years in the order added (stable)
    fig = cumulative_forest(cum, years=[2008, 2009, 2009, 2012], title="t")
    assert isinstance(fig, Figure)
    labels = _by_gid(fig, "label-")
    assert [labels[f"label-{i}"].get_text() for i in range(4)] == [
        "+ Willson 2008", "+ Souza 2009a", "+ Smith 2009", "+ Noehren 2012b"]  # year added only where missing
    ks = _by_gid(fig, "k-")
    assert [ks[f"k-{i}"].get_text() for i in range(4)] == ["1", "2", "3", "4"]
    assert years == [2008, 2009, 2009, 2012]


def test_drawn_values_equal_cumulative(cum):
    fig = cumulative_forest(cum)
    marks = _by_gid(fig, "step-")
    texts = _by_gid(fig, "ci-")
    for i, row in cum.reset_index(drop=True).iterrows():
        x, y = marks[f"step-{i}"].get_data()
        assert x[0] == row["estimate"] and y[0] == i + 1
        lo_hi, _ = marks[f"step-ci-{i}"].get_data()
        assert list(lo_hi) == [row["ci_low"], row["ci_high"]]
        want = f"{row['estimate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]".replace("-", MINUS)
        assert texts[f"ci-{i}"].get_text() == want
    # the last step is the full model
    full = pool(YI, VI)
    assert np.isclose(cum["estimate"].iloc[-1], full.estimate, rtol=0, atol=1e-12)


def test_step_labels():
    assert step_labels(["A", "B 2001"], [1999, 2001]) == ["+ A 1999", "+ B 2001"]
    assert step_labels(["A"]) == ["+ A"]


def test_bad_input_is_named(cum):
    with pytest.raises(ValueError, match="lacks column"):
        cumulative_forest(cum.drop(columns="ci_low"))
    with pytest.raises(ValueError, match="years has 2 values for 4 steps"):
        cumulative_forest(cum, years=[1, 2])
    with pytest.raises(TypeError):
        cumulative_forest([1, 2])


def test_byte_reproducible_and_callers_rc_untouched(cum, tmp_path):
    with matplotlib.rc_context({"lines.linewidth": 7.0, "font.family": ["serif"]}):
        paths = []
        for name in ("a", "b"):
            paths.append(save(cumulative_forest(cum, title="t"), tmp_path / name / "cum", formats=("png", "svg", "pdf"),
                              dpi=100))
        assert matplotlib.rcParams["lines.linewidth"] == 7.0
    for pa, pb in zip(*paths):
        assert pa.stat().st_size > 0 and pa.read_bytes() == pb.read_bytes(), pa.suffix
    # our style, not the caller's: line widths are the drawn ones
    fig = cumulative_forest(cum)
    assert _by_gid(fig, "step-ci-0")["step-ci-0"].get_linewidth() == 1.0
