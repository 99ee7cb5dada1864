"""notebooks/multilevel.ipynb (a three-level meta-analysis and the CHE working model with CR2 tests) and
notebooks/regression_influence.ipynb (risk ratios, Mantel-Haenszel, meta-regression, influence) run top to
bottom in a fresh kernel, leave data/ and notebooks/ untouched, and assert inside their cells the numbers of
R metafor 3.8.1 / clubSandwich 0.5.8 written by tests/r/multilevel_notebook_reference.R and
tests/r/regression_influence_notebook_reference.R (every number of those fixtures appears as a literal in the
notebook's code). Their bundled CSVs are the metadat 1.2.0 data sets the R scripts export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import _background
from _notebooks import execute, executed, fingerprint, numbers, output_text

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "multilevel.ipynb": ROOT / "tests" / "fixtures" / "multilevel_notebook_reference.json",
    "regression_influence.ipynb": ROOT / "tests" / "fixtures" / "regression_influence_notebook_reference.json",
}




def _code(name: str) -> str:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def _job(name: str, folder: Path) -> None:
    (folder / "before.json").write_text(json.dumps(fingerprint(ROOT / "notebooks", ROOT / "data")))
    execute(ROOT / "notebooks" / name, folder)


def multilevel_notebook(folder: Path) -> None:
    """Background job (tests/_background.py): run notebooks/multilevel.ipynb in a fresh kernel."""
    _job("multilevel.ipynb", folder)


def regression_influence_notebook(folder: Path) -> None:
    """Background job (tests/_background.py): run notebooks/regression_influence.ipynb in a fresh kernel."""
    _job("regression_influence.ipynb", folder)


def _run(job: str) -> tuple[str, int, dict]:
    """The outputs' text and number of images of the notebook the background job ran, and the fingerprint of
    notebooks/ and data/ from before it ran."""
    folder = _background.result(job)
    nb = executed(folder)  # the run raised CellExecutionError with the failing cell, e.g. an assert against metafor
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    texts = output_text(nb)
    return texts, sum("image/png" in o.get("data", {}) for o in outputs), json.loads((folder / "before.json").read_text())


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_asserts_every_r_reference_number(name):
    """Each float of the R fixture is a literal in the notebook, so its asserts are the committed R script's
    output, not numbers copied from our own."""
    source = _code(name)
    ref = json.loads(NOTEBOOKS[name].read_text())
    assert ref["metafor"] == "3.8.1" and ref["metadat"] == "1.2.0" and "metafor 3.8.1" in source
    missing = [x for x in numbers(ref) if repr(x) not in source]
    assert not missing, f"fixture numbers not asserted in {name}: {missing}"
    assert "np.testing.assert_allclose" in source


def test_multilevel_fixture_is_clubsandwich_058():
    ref = json.loads(NOTEBOOKS["multilevel.ipynb"].read_text())
    assert ref["clubSandwich"] == "0.5.8" and "clubSandwich 0.5.8" in _code("multilevel.ipynb")


def test_bundled_csvs_are_the_metadat_data_sets():
    import pandas as pd

    k = pd.read_csv(ROOT / "notebooks" / "data" / "konstantopoulos2011.csv")
    assert list(k.columns) == ["district", "school", "study", "year", "yi", "vi"]
    assert len(k) == 56 and k["district"].nunique() == 11 and k["study"].tolist() == list(range(1, 57))
    a = pd.read_csv(ROOT / "notebooks" / "data" / "assink2016.csv")
    assert list(a.columns) == ["study", "esid", "id", "yi", "vi", "pubstatus", "year", "deltype"]
    assert len(a) == 100 and a["study"].nunique() == 17 and set(a["deltype"]) == {"covert", "general", "overt"}
    b = pd.read_csv(ROOT / "notebooks" / "data" / "bcg.csv")
    assert list(b.columns) == ["trial", "author", "year", "tpos", "tneg", "cpos", "cneg", "ablat", "alloc"]
    assert b["trial"].tolist() == list(range(1, 14))


@pytest.mark.background("test_notebooks_new:multilevel_notebook")
def test_multilevel_notebook_runs_in_a_fresh_kernel():
    texts, images, before = _run("test_notebooks_new:multilevel_notebook")
    assert "Multivariate Meta-Analysis Model (k = 56; method: REML)" in texts
    assert "Multivariate Meta-Analysis Model (k = 100; method: REML)" in texts
    assert "QM(df = 1) = 0.3169" in texts  # the year moderator (metafor prints the same line)
    assert "Cluster-robust t tests (CR2, 17 clusters, df: Satterthwaite)" in texts
    assert "SmallDfWarning: coef_test: degrees of freedom < 4 for deltypegeneral" in texts
    assert images >= 1  # the forest plot of the multilevel fit
    assert fingerprint(ROOT / "notebooks", ROOT / "data") == before


@pytest.mark.background("test_notebooks_new:regression_influence_notebook")
def test_regression_influence_notebook_runs_in_a_fresh_kernel():
    texts, images, before = _run("test_notebooks_new:regression_influence_notebook")
    assert "Random-Effects Model (k = 13; tau^2 estimator: REML)" in texts
    assert "Mantel-Haenszel method" in texts
    assert "Mixed-Effects Model (k = 13; tau^2 estimator: REML)" in texts
    assert "Influence diagnostics (k = 13" in texts
    assert images >= 4  # bubble plot, Baujat plot, forest and funnel
    assert fingerprint(ROOT / "notebooks", ROOT / "data") == before
