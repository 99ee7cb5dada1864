"""Outputs of many rows: forest-type plots above a page of rows and report tables above REPORT_MAX_ROWS.

A forest plot of more than ``max_rows`` studies (default ``meta.plots.caterpillar.MAX_ROWS`` = 60)
is a caterpillar plot: studies sorted by estimate, every CI one segment of one LineCollection, the
estimates one scatter, no row labels, the pooled estimate as a line with its CI band and the PI as
dashed lines, and a caption that says so and names where the numbers are. At or below the limit
the labelled RevMan table is drawn as before. The same holds for the cumulative plot (the running
estimate) and the multilevel forest plot. The report shows the first REPORT_MAX_ROWS rows of a
per-row table and says how many more rows which CSV holds. The studies here are synthetic
(k = 120, built in the test).
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.text import Text

from meta.plots import cumulative_forest, forest, forest_mv
from meta.plots.caterpillar import MAX_ROWS
from meta.pool import cumulative, pool

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "review_data"


def _studies(k: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.02, 0.3, k)
    yi = rng.normal(0.4, 0.3, k) + rng.normal(0.0, np.sqrt(vi))
    return yi, vi, [f"Study {i:03d}" for i in range(k)]


def _gid(fig, gid):
    return [a for a in fig.findobj() if getattr(a, "get_gid", lambda: None)() == gid]


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text)]


def _svg(fig, path: Path) -> bytes:
    """The SVG bytes ``meta.plots.save`` writes (byte-reproducible)."""
    from meta.plots import save

    save(fig, path, formats=("svg",))
    return path.with_suffix(".svg").read_bytes()


# --------------------------------------------------------------------------- forest


def test_forest_of_120_studies_is_a_caterpillar_plot_sorted_by_estimate_with_the_pooled_line_band_and_pi():
    yi, vi, slab = _studies(120)
    res = pool(yi, vi, method="DL", slab=slab)
    fig = forest(res, title="T", rows_note="every row's numbers are in effect_sizes.csv")
    assert [ax.get_label() for ax in fig.axes] == ["caterpillar"]
    (lc,) = _gid(fig, "study-ci")
    assert isinstance(lc, LineCollection) and len(lc.get_segments()) == 120  # one artist for every CI
    (sc,) = _gid(fig, "study-markers")
    assert isinstance(sc, PathCollection)
    xy = sc.get_offsets()
    order = np.argsort(yi, kind="stable")
    np.testing.assert_array_equal(xy[:, 0], yi[order])  # sorted by estimate, bottom to top
    np.testing.assert_array_equal(xy[:, 1], np.arange(1, 121))
    z = 1.959963984540054
    segs = np.array(lc.get_segments())
    np.testing.assert_allclose(segs[:, 0, 0], yi[order] - z * np.sqrt(vi[order]), rtol=1e-12)
    np.testing.assert_allclose(segs[:, 1, 0], yi[order] + z * np.sqrt(vi[order]), rtol=1e-12)
    (line,) = _gid(fig, "pooled-line")
    assert line.get_xdata()[0] == pytest.approx(res.estimate)
    (band,) = _gid(fig, "pooled-ci-band")
    if hasattr(band, "get_width"):  # axvspan: a Rectangle (matplotlib >= 3.9), else a Polygon
        x_lo, x_hi = band.get_x(), band.get_x() + band.get_width()
    else:
        x_lo, x_hi = np.asarray(band.get_xy())[:, 0].min(), np.asarray(band.get_xy())[:, 0].max()
    assert (x_lo, x_hi) == (pytest.approx(res.ci_low), pytest.approx(res.ci_high))
    pis = sorted(ln.get_xdata()[0] for ln in _gid(fig, "prediction-interval"))
    assert pis == [pytest.approx(res.pi_low), pytest.approx(res.pi_high)]
    texts = _texts(fig)
    assert not any(s in t for s in slab for t in texts)  # no row labels
    assert "studies sorted by estimate (k = 120)" in fig.axes[0].get_ylabel()
    (note,) = _gid(fig, "caterpillar-note")
    caption = note.get_text().replace("\n", " ")
    assert "more than 60 rows" in caption and "without labels" in caption
    assert "every row's numbers are in effect_sizes.csv" in caption


def test_forest_at_the_limit_is_the_labelled_table_and_unchanged(tmp_path):
    yi, vi, slab = _studies(MAX_ROWS)
    res = pool(yi, vi, method="DL", slab=slab)
    fig = forest(res)
    assert "forest" in [ax.get_label() for ax in fig.axes] and not _gid(fig, "caterpillar-note")
    assert set(slab) <= set(_texts(fig))  # every study labelled
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    assert _svg(fig, tmp_path / "a" / "f") == _svg(forest(res, max_rows=None), tmp_path / "b" / "f")  # the limit changes nothing at or below it
    fig61 = forest(pool(*_studies(MAX_ROWS + 1)[:2]))
    assert [ax.get_label() for ax in fig61.axes] == ["caterpillar"]


def test_max_rows_is_an_argument_of_the_library_functions():
    yi, vi, slab = _studies(120)
    res = pool(yi, vi, slab=slab)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 120-row table is taller than a page; that is what was asked
        table = forest(res, max_rows=None)
    assert set(slab) <= set(_texts(table))
    small = pool(yi[:20], vi[:20], slab=slab[:20])
    assert [ax.get_label() for ax in forest(small, max_rows=10).axes] == ["caterpillar"]
    assert "forest" in [ax.get_label() for ax in forest(small, max_rows=20).axes]
    for bad in (0, -1, 2.5, True, "60"):
        with pytest.raises(ValueError, match="max_rows"):
            forest(small, max_rows=bad)
        with pytest.raises(ValueError, match="max_rows"):
            cumulative_forest(cumulative(small), max_rows=bad)


def test_a_ratio_measure_keeps_its_log_axis_labelled_in_ratios_in_the_caterpillar_plot():
    yi, vi, slab = _studies(80)
    res = pool(yi, vi, slab=slab, measure="OR")
    fig = forest(res)
    ax = fig.axes[0]
    assert ax.get_label() == "caterpillar"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "1" in labels  # the null line of a ratio, labelled as a ratio
    (sc,) = _gid(fig, "study-markers")
    np.testing.assert_array_equal(np.sort(sc.get_offsets()[:, 0]), np.sort(yi))  # log positions


# --------------------------------------------------------------------------- cumulative and multilevel


def test_cumulative_plot_above_the_limit_is_the_running_estimate_with_its_band():
    yi, vi, slab = _studies(120)
    cum = cumulative(pool(yi, vi, slab=slab))
    fig = cumulative_forest(cum, title="T", rows_note="every step's numbers are in cumulative.csv")
    assert [ax.get_label() for ax in fig.axes] == ["running"]
    (line,) = _gid(fig, "running-estimate")
    np.testing.assert_array_equal(line.get_xdata(), cum["k"].to_numpy(float))
    np.testing.assert_array_equal(line.get_ydata(), cum["estimate"].to_numpy(float))
    assert _gid(fig, "running-ci-band")
    assert not any(t.startswith("+ Study") for t in _texts(fig))
    (note,) = _gid(fig, "caterpillar-note")
    assert "every step's numbers are in cumulative.csv" in note.get_text().replace("\n", " ")
    below = cumulative_forest(cumulative(pool(yi[:MAX_ROWS], vi[:MAX_ROWS], slab=slab[:MAX_ROWS])))
    assert "+ Study 000" in _texts(below) and not _gid(below, "caterpillar-note")


def test_multilevel_forest_above_the_limit_is_a_caterpillar_plot_of_the_effect_sizes():
    from meta.multilevel import rma_mv

    rng = np.random.default_rng(3)
    cl = np.repeat(np.arange(12), 3)
    yi = 0.3 + rng.normal(0, 0.2, 12)[cl] + rng.normal(0, 0.2, 36)
    vi = rng.uniform(0.02, 0.1, 36)
    res = rma_mv(yi, vi, random="~ 1 | study/es", data=pd.DataFrame({"study": cl, "es": np.arange(36)}))
    fig = forest_mv(res, max_rows=30)  # 36 effect sizes (under 12 study headers)
    assert [ax.get_label() for ax in fig.axes] == ["caterpillar"]
    (sc,) = _gid(fig, "study-markers")
    np.testing.assert_array_equal(sc.get_offsets()[:, 0], np.sort(yi, kind="stable"))
    (line,) = _gid(fig, "pooled-line")
    assert line.get_xdata()[0] == pytest.approx(float(res.beta[0]))
    assert "forest" in [ax.get_label() for ax in forest_mv(res, max_rows=36).axes]


# --------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    from meta.review.reproduce import reproduce

    data = tmp_path_factory.mktemp("large_outputs") / "data"
    shutil.copytree(FIXTURE, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reproduce(data, None)


def test_report_tables_longer_than_the_limit_show_their_first_rows_and_name_the_csv(fixture_run, monkeypatch):
    from meta.review.outputs import report

    full = report.render(fixture_run)
    assert "more rows in" not in full and "more row in" not in full
    assert "Tables and lists of the report with more than" not in full  # said only where a table was shortened
    monkeypatch.setattr(report, "REPORT_MAX_ROWS", 3)
    md = report.render(fixture_run)
    run = max(fixture_run.runs, key=lambda r: r.k)
    aid = run.analysis.analysis_id
    assert run.k > 3
    line = f"... {run.k - 3} more row{'s' if run.k - 4 else ''} in `effect_sizes.csv` (rows whose `used_in` names `{aid}`)"
    assert line in md
    # the study table above that line holds exactly the first three pooled rows
    before = md[: md.index(line)].rstrip("\n").split("\n")
    table = []
    for ln in reversed(before):
        if not ln.startswith("|"):
            if table:
                break
            continue
        table.append(ln)
    assert len(table) == 2 + 3
    assert [ln.split(" | ")[0].lstrip("| ") for ln in reversed(table[:3])] == list(run.rows["label"].iloc[:3])
    loo = f"... {run.k - 3} more row{'s' if run.k - 4 else ''} in `leave_one_out.csv` (rows whose `analysis_id` is `{aid}`)"
    assert loo in md
    n_cov = len(fixture_run.coverage)
    assert f"... {n_cov - 3} more rows in `coverage.csv`" in md
    e = fixture_run.effects
    n_bad = int((~np.isfinite(pd.to_numeric(e["yi"], errors="coerce"))).sum())
    assert f"... {n_bad - 3} more rows in `effect_sizes.csv` (rows without `yi`)" in md
    methods = md[md.index("## Methods"):]
    assert "more than 3 rows show their first 3 rows" in methods
    for m in re.finditer(r"^\.\.\. (\d+) more rows? in ", md, re.M):
        assert int(m.group(1)) >= 1


def test_coverage_markdown_counts_every_study_when_shortened(fixture_run):
    from meta.review.outputs.coverage import to_markdown

    cov = fixture_run.coverage
    whole, short = to_markdown(cov), to_markdown(cov, max_rows=5)
    assert short.count("\n| ") == 5  # the header opens the text; the separator line is "|---|"
    assert f"... {len(cov) - 5} more rows in `coverage.csv`" in short
    assert whole.split("\n")[-1] == short.split("\n")[-1]  # the counts under the table: every study
    assert to_markdown(cov, max_rows=len(cov)) == whole
