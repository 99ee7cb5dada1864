"""The layers of meta: imports only go downward, no cycle, every module says its job.

Every module of ``meta/`` is parsed with ``ast`` (not imported); the import graph
includes imports inside functions. Two wings and the command line above them
(docs/DEVELOPING.md, "Layers"): the general library (``meta.*`` outside ``meta.review``)
never imports the review (``meta.review.*``) or the command line (``meta.cli``); nothing
imports the command line; inside the review, inputs -> running -> outputs -> reproduce.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "meta"

#: the command line: above both wings; nothing imports it but ``python -m meta``
COMMAND_LINE = {"cli", "__main__"}
#: the review wing's stages in the order data flows through them: each imports only earlier stages
#: (``reproduce`` runs the whole review, ``docs`` writes the README excerpt from such a run; ``run_cache``
#: serves a stored run or calls ``reproduce``)
REVIEW_ORDER = (("review.inputs",), ("review.running",), ("review.outputs",), ("review.reproduce", "review.docs"),
                ("review.run_cache",))


def _wing(module: str) -> str:
    if module in COMMAND_LINE:
        return "command line"
    return "review" if module == "review" or module.startswith("review.") else "library"


def _review_rank(module: str) -> int | None:
    for i, stage in enumerate(REVIEW_ORDER):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in stage):
            return i
    return None


#: not part of either layer's graph: the package's own __init__
SKIP = {"__init__"}
#: no cycle is allowed (PoolResult.confint() calls meta._qprofile, below meta.pool; meta.confint,
#: which fits yi/vi with meta.pool.pool, sits above both)
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def _name(path: Path) -> str:
    """``plots/layout.py`` -> ``plots.layout``; a subpackage's ``__init__.py`` is the package (``plots``)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@functools.cache
def _modules() -> dict[str, ast.Module]:
    """Every module's syntax tree, parsed once for all the tests here (they only read the trees)."""
    return {_name(p): ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for p in _files()}


def _module_of(dotted: list[str], names: set[str]) -> str | None:
    """The longest ``meta`` module named by the parts after ``meta.`` (``plots.layout.CM`` -> ``plots.layout``)."""
    for n in range(len(dotted), 0, -1):
        cand = ".".join(dotted[:n])
        if cand in names:
            return cand
    return None


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` -- runs only when the file is the program, never on import."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    t = node.test
    return (isinstance(t.left, ast.Name) and t.left.id == "__name__" and len(t.comparators) == 1
            and isinstance(t.comparators[0], ast.Constant) and t.comparators[0].value == "__main__")


def _imports(tree: ast.Module, names: set[str]) -> set[str]:
    """meta modules imported anywhere in ``tree`` (functions too), except under a __main__ guard."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_main_guard(node):
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "meta" and len(parts) > 1:
                    found.add(_module_of(parts[1:], names) or parts[1])
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"relative import (level {node.level}) of {node.module!r}: use absolute meta.* imports")
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "meta":
                for a in node.names:  # from meta import pool; from meta.plots import files, forest
                    found.add(_module_of(parts[1:] + [a.name], names) or ".".join(parts[1:2]) or a.name)
                found.discard("")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    names = set(mods)
    return {m: {n for n in _imports(t, names) - {m} if n in names} for m, t in mods.items() if m not in SKIP}


def test_no_import_cycle(graph):
    graph = {m: {n for n in deps if (m, n) not in KNOWN_CYCLE_EDGES} for m, deps in graph.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_library_never_imports_the_review_or_the_command_line(graph):
    bad = {m: sorted(d for d in deps if _wing(d) != "library") for m, deps in graph.items()
           if _wing(m) == "library" and any(_wing(d) != "library" for d in deps)}
    assert any(m.startswith("plots.") for m in graph), "the plots subpackage is part of the graph"
    assert any(m.startswith("review.") for m in graph), "the review subpackage is part of the graph"
    assert bad == {}, f"library modules importing the review or the command line: {bad}"


def test_nothing_imports_the_command_line(graph):
    bad = {m: sorted(deps & COMMAND_LINE) for m, deps in graph.items() if m != "__main__" and deps & COMMAND_LINE}
    assert bad == {}, f"modules importing the command line (only python -m meta may): {bad}"


def test_review_imports_follow_the_data_flow(graph):
    """inputs -> running -> outputs -> reproduce: a review module never imports a later stage."""
    bad = {}
    for m, deps in graph.items():
        rank = _review_rank(m)
        if rank is None:
            continue
        later = sorted(d for d in deps if (_review_rank(d) or -1) > rank)
        if later:
            bad[m] = later
    assert bad == {}, f"review modules importing a later stage ({' -> '.join('/'.join(s) for s in REVIEW_ORDER)}): {bad}"


def test_every_module_is_in_a_wing():
    """The top of meta/ holds the library, the command line and one review package, nothing else."""
    top = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    review = [n for n in top if not n.endswith(".py") and n not in ("plots", "review")]
    assert review == [], f"sub-folders of meta/ other than the library's plots/ and review/: {review}"
    for name in _modules():
        assert _review_rank(name) is not None or _wing(name) != "review" or name == "review", name


def test_printing_only_in_the_command_line_layer():
    """Library functions return values or raise; print() is called in meta.cli alone."""
    printing = {}
    for m, tree in _modules().items():
        if m in COMMAND_LINE:
            continue
        calls = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id == "print"]
        if calls:
            printing[m] = calls
    assert printing == {}, f"print() outside meta.cli: {printing}"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_states_its_job(path):
    doc = ast.get_docstring(_modules()[_name(path)])
    assert doc, f"{path.name} has no module docstring"
    first = doc.splitlines()[0].strip()
    assert len(first.split()) >= 4, f"{path.name}: the docstring's first line should state the module's job: {first!r}"
