"""A figure the cache already holds is written without importing matplotlib's drawing machinery.

``meta.plots`` imports a plot module when one of its names is first used, and the plot modules
import ``matplotlib.figure``, artists and canvases inside the functions that draw; so a warm
``meta reproduce`` (every figure a cache hit of ``draw_and_save``) imports only what the
cache key needs. Checked in fresh interpreters sharing one matplotlib cache folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import _background

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import numpy as np
from meta.pool import pool
import meta.plots as plots
res = pool(np.array([0.1, 0.4, -0.2, 0.3]), np.array([0.04, 0.05, 0.03, 0.06]), method="DL",
           slab=["A 2001", "B 2002", "C 2003", "D 2004"])
files = plots.draw_and_save(plots.forest, sys.argv[1] + "/forest", args=(res,))
print(json.dumps({"figure": "matplotlib.figure" in sys.modules, "axes": "matplotlib.axes" in sys.modules,
                  "forest_plot": "meta.plots.forest_plot" in sys.modules,
                  "funnel_plot": "meta.plots.funnel_plot" in sys.modules,
                  "sizes": [len(open(f, "rb").read()) for f in files]}))
"""


def _run(out: Path, cache: Path) -> dict:
    env = dict(os.environ, MPLCONFIGDIR=str(cache), MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    env.pop("META_FIGURE_CACHE", None)
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=120)
    return {"returncode": p.returncode, "stderr": p.stderr,
            "modules": json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None}


def cold_and_warm(tmp: Path) -> None:
    """Background job (tests/_background.py): SCRIPT in a fresh interpreter twice, sharing the matplotlib cache
    folder tmp/mpl (the first run draws, the second finds the figure in the cache); to tmp/runs.json."""
    runs = {"cold": _run(tmp / "a", tmp / "mpl")}
    runs["warm"] = _run(tmp / "b", tmp / "mpl")
    (tmp / "runs.json").write_text(json.dumps(runs))


@pytest.mark.background("test_lazy_figures:cold_and_warm")
def test_a_cache_hit_imports_no_drawing_machinery():
    tmp = _background.result("test_lazy_figures:cold_and_warm")
    runs = json.loads((tmp / "runs.json").read_text())
    for run in runs.values():
        assert run["returncode"] == 0, run["stderr"]
    cold, warm = runs["cold"]["modules"], runs["warm"]["modules"]
    assert cold["figure"] and cold["forest_plot"]  # drawn: matplotlib's figure was needed
    assert warm["sizes"] == cold["sizes"] and min(warm["sizes"]) > 0
    assert not warm["figure"] and not warm["axes"]
    assert warm["forest_plot"] and not warm["funnel_plot"]  # only the plot module asked for
    for name in ("png", "svg", "pdf"):
        assert (tmp / "a" / f"forest.{name}").read_bytes() == (tmp / "b" / f"forest.{name}").read_bytes()


def test_meta_plots_still_lists_and_gives_every_public_name():
    import meta.plots as plots

    for name in plots.__all__:
        assert callable(getattr(plots, name)) or isinstance(getattr(plots, name), (str, float))
        assert name in dir(plots)


def test_no_plot_module_is_named_like_a_public_function():
    """Importing a submodule sets it as an attribute of its package: a module named like a public
    function (meta/plots/regplot.py defining regplot) would replace the function by the module."""
    from pathlib import Path

    import meta.plots as plots

    modules = {p.stem for p in Path(plots.__file__).parent.glob("*.py")}
    assert not modules & set(plots.__all__), sorted(modules & set(plots.__all__))
