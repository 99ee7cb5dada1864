"""Helpers shared by the notebook tests: a fingerprint of folders a notebook must not change, every float of
a reference fixture (each must appear as a literal in the notebook's code), and running a notebook in a
fresh kernel (the tests do that as background jobs, tests/_background.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fingerprint(*folders: Path) -> dict[str, str]:
    return {
        str(f.relative_to(ROOT)): hashlib.sha256(f.read_bytes()).hexdigest()
        for folder in folders
        for f in sorted(folder.rglob("*"))
        if f.is_file() and ".ipynb_checkpoints" not in f.parts
    }


def numbers(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from numbers(v)
    elif isinstance(x, list):
        for v in x:
            yield from numbers(v)
    elif isinstance(x, float):
        yield x


def output_text(nb) -> str:
    """What the code cells of the executed notebook ``nb`` printed and displayed, in order: stream outputs
    joined as they came (the kernel may split one ``print`` into several stream outputs when it flushes
    between its writes; each piece carries its own newlines) and each displayed value's text/plain on lines
    of its own."""
    pieces = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for o in cell.outputs:
            if o.get("output_type") == "stream":
                pieces.append(o.get("text", ""))
            else:
                pieces.append("\n" + str(o.get("data", {}).get("text/plain", "")) + "\n")
    return "".join(pieces)


def execute(notebook: Path, folder: Path, **env: str) -> None:
    """Run ``notebook`` top to bottom in a fresh kernel of this interpreter and write the executed notebook to
    ``folder/executed.ipynb``. The kernelspec "python3" is written to ``folder`` and is the only one looked up,
    so a fresh machine works and a user-level python3 kernel from elsewhere is never picked up; its command
    goes to ``folder/kernel.json`` for the test to check. ``env``: variables added to the kernel's environment."""
    import json
    import os
    import sys

    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = folder / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (meta venv)",
        "language": "python",
    }))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
    (folder / "kernel.json").write_text(json.dumps(specs.get_kernel_spec("python3").argv))
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs,
                            connection_file=str(folder / "connection.json"))
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        nb, km=km, kernel_name="python3", timeout=180,
        # a loaded machine can deliver a cell's output after its reply: wait for it (nbclient drops it after 4 s)
        iopub_timeout=60, resources={"metadata": {"path": str(notebook.parent)}}
    )
    client.execute(env={**os.environ, **env})  # raises CellExecutionError with the failing cell on any error
    nbformat.write(nb, folder / "executed.ipynb")


def executed(folder: Path):
    """The notebook :func:`execute` ran, with its outputs; asserts that it ran in this interpreter's kernel."""
    import json
    import sys

    import nbformat

    assert json.loads((folder / "kernel.json").read_text())[0] == sys.executable
    return nbformat.read(folder / "executed.ipynb", as_version=4)
