"""notebooks/own_data.ipynb (pooling your own CSV with the public API) runs top to bottom in a fresh
kernel, is committed without outputs, writes only into a temporary folder, and asserts the metafor
3.8.1 numbers of tests/r/normand1999_notebook_reference.R (the same numbers as
tests/fixtures/normand1999_notebook_reference.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import _background
from _notebooks import execute, executed, fingerprint, numbers, output_text

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "own_data.ipynb"
CSV = ROOT / "notebooks" / "data" / "normand1999.csv"
FIXTURE = ROOT / "tests" / "fixtures" / "normand1999_notebook_reference.json"




def test_own_data_notebook_asserts_the_r_referencenumbers():
    """Every metafor / R number of the fixture appears as a literal in the notebook's code, so the
    asserts there are the committed R script's output, not numbers copied from our own."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    ref = json.loads(FIXTURE.read_text())
    assert ref["metafor"] == "3.8.1" and "metafor 3.8.1" in source
    missing = [x for x in numbers(ref) if repr(x) not in source]
    assert not missing, f"fixture numbers not asserted in the notebook: {missing}"
    assert "assert" in source and "np.testing.assert_allclose" in source


def test_own_data_csv_is_dat_normand1999():
    import pandas as pd

    dat = pd.read_csv(CSV)
    assert list(dat.columns) == ["study", "source", "n1i", "m1i", "sd1i", "n2i", "m2i", "sd2i"]
    assert len(dat) == 9 and dat["study"].tolist() == list(range(1, 10))


def own_data_notebook(folder: Path) -> None:
    """Background job (tests/_background.py): run notebooks/own_data.ipynb in a fresh kernel whose temporary
    folder is folder/tmp, with the fingerprint of notebooks/ and data/ from before the run."""
    tmp = folder / "tmp"
    tmp.mkdir()
    (folder / "before.json").write_text(json.dumps(fingerprint(ROOT / "notebooks", ROOT / "data")))
    execute(NOTEBOOK, folder, TMPDIR=str(tmp))  # tempfile.mkdtemp in the kernel writes here


@pytest.mark.background("test_notebook_own_data:own_data_notebook")
def test_own_data_notebook_runs_in_a_fresh_kernel_writing_only_to_a_temp_folder():
    folder = _background.result("test_notebook_own_data:own_data_notebook")
    tmp = folder / "tmp"
    before = json.loads((folder / "before.json").read_text())
    nb = executed(folder)  # the run raised CellExecutionError with the failing cell, e.g. an assert against metafor
    texts = output_text(nb)
    assert "Random-Effects Model (k = 9; tau^2 estimator: REML)" in texts
    assert "Q-profile confidence intervals" in texts
    assert "k = 9 < 10" in texts and "Sterne et al. 2011" in texts
    assert "Bayesian random-effects meta-analysis" in texts
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # forest and funnel plot
    saved = sorted(p.name for p in tmp.glob("meta-own-data-*/*") if p.is_file())
    assert saved == ["normand1999_forest.pdf", "normand1999_forest.png", "normand1999_forest.svg", "normand1999_funnel.png"]
    assert fingerprint(ROOT / "notebooks", ROOT / "data") == before
