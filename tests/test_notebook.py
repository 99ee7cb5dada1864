"""notebooks/reproduce.ipynb runs top to bottom in a fresh kernel, is committed without outputs,
and leaves the bundled data untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import _background
from _notebooks import execute, executed, output_text

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "reproduce.ipynb"


def _fingerprint(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.glob("*.csv"))}


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def reproduce_notebook(folder: Path) -> None:
    """Background job (tests/_background.py): run notebooks/reproduce.ipynb in a fresh kernel, with data/'s
    fingerprint from before the run."""
    (folder / "before.json").write_text(json.dumps(_fingerprint(ROOT / "data")))
    execute(NOTEBOOK, folder)


@pytest.mark.background("test_notebook:reproduce_notebook")
def test_notebook_runs_in_a_fresh_kernel():
    folder = _background.result("test_notebook:reproduce_notebook")
    before = json.loads((folder / "before.json").read_text())
    nb = executed(folder)  # the run raised CellExecutionError with the failing cell on any error
    texts = output_text(nb)
    assert "Random-Effects Model" in texts  # meta.pool.pool summary printed
    assert "problems: none" in texts  # the added study validates
    assert "before: k=" in texts and "after:  k=" in texts
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # forest plot before and after adding the study
    assert _fingerprint(ROOT / "data") == before


def test_output_text_joins_a_print_the_kernel_split_into_several_stream_outputs():
    """ipykernel may flush stdout between the writes of one ``print`` (under load), giving two stream
    outputs for one line; the text the tests search must still hold the line whole."""
    cell = nbformat.v4.new_code_cell("print('problems:', 'none')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="problems:"),
                    nbformat.v4.new_output("stream", name="stdout", text=" none\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    text = output_text(nb)
    assert "problems: none\n" in text and "\n42\n" in text
