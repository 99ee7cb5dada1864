"""meta.plots.robustness.robustness_plot: draws the RobustnessResult it is given, nothing refitted."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from meta.plots import save
from meta.plots.robustness import robustness_plot
from meta.robustness import robustness

CASES = {c["name"]: c for c in json.loads((Path(__file__).parent / "fixtures" / "intervals_reference.json").read_text())["cases"]}


def by_gid(fig, gid):
    return [a for a in fig.findobj() if getattr(a, "get_gid", lambda: None)() == gid]


def texts(fig):
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


@pytest.fixture
def normand():
    c = CASES["normand_smd"]
    return robustness(c["yi"], c["vi"], direction=-1)


def test_one_row_per_method_with_its_numbers_and_verdict(normand):
    fig = robustness_plot(normand, title="Normand", favours=("Favours A", "Favours B"))
    assert isinstance(fig, Figure)
    tx = texts(fig)
    for pm, r in zip(normand.panel, normand.rows):
        assert pm.short in tx
        assert by_gid(fig, f"verdict-{pm.method_id}")[0].get_text() == r["verdict"]
        est = f"{r['estimate']:.2f}".replace("-", "\u2212")
        assert any(t.startswith(est + " [") for t in tx), est
    assert "Favours A" in tx and "Favours B" in tx
    assert by_gid(fig, "holds-line")[0].get_text().startswith(f"Verdict holds under {normand.holds_under} methods")
    assert "fragile" in by_gid(fig, "holds-line")[0].get_text()
    # the Bayesian row: its own marker at the posterior median, drawn with its credible interval
    (bm,) = by_gid(fig, "estimate-bayes")
    assert bm.get_xdata()[0] == normand.rows[-1]["estimate"] and bm.get_marker() == "D"
    (cri,) = by_gid(fig, "credible-interval")
    seg = cri.get_segments()[0]
    assert seg[0][0] == pytest.approx(normand.rows[-1]["ci_low"]) and seg[1][0] == pytest.approx(normand.rows[-1]["ci_high"])
    assert "0.965" in tx  # P(direction) of the Bayesian row (0.9651)
    (fm,) = by_gid(fig, "estimate-frequentist")
    np.testing.assert_array_equal(fm.get_xdata(), [r["estimate"] for r in normand.rows[:-1]])
    # verdicts that differ from the primary's are bold
    assert by_gid(fig, "verdict-reml_hksj")[0].get_fontweight() == "bold"
    assert by_gid(fig, "verdict-fe")[0].get_fontweight() == "normal"
    assert by_gid(fig, "primary-band")


def test_wide_hksj_interval_is_clipped_with_an_arrow():
    c = CASES["bcg_first2"]  # k = 2: REML + HKSJ on t(1) spans -5.76 to 3.11
    rob = robustness(c["yi"], c["vi"], direction=-1)
    fig = robustness_plot(rob)
    ax = [a for a in fig.axes if a.get_label() == "robustness"][0]
    lo, hi = ax.get_xlim()
    assert lo == -hi and lo > -5.76 and hi > 2.0  # the DL/FE intervals (to -2.01) are shown whole
    assert by_gid(fig, "ci-arrow")


def test_k1_footer_says_nothing_is_pooled():
    fig = robustness_plot(robustness([0.3], [0.04], direction=1))
    assert "nothing is pooled" in by_gid(fig, "holds-line")[0].get_text()


def test_no_pyplot_state_and_rcparams_untouched(normand, tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    with matplotlib.rc_context({"font.family": ["serif"], "lines.linewidth": 5}):
        fig = robustness_plot(normand)
        assert matplotlib.rcParams["lines.linewidth"] == 5
    assert plt.get_fignums() == before
    paths = save(fig, tmp_path / "rob", formats=("png", "svg", "pdf"), dpi=150)
    assert all(p.stat().st_size > 1000 for p in paths)


def test_bad_arguments():
    rob = robustness([0.1, 0.3], [0.04, 0.05], direction=1)
    with pytest.raises(ValueError, match="favours"):
        robustness_plot(rob, favours=("only one",))
    with pytest.raises(ValueError, match="xlim"):
        robustness_plot(rob, xlim=(1, -1))
    with pytest.raises(ValueError, match="width_cm"):
        robustness_plot(rob, width_cm=6)
