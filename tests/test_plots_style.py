"""Figures do not depend on the user's machine: a hostile matplotlibrc (tight bbox, serif font, other dpi,
locale formatting, thick lines) leaves the PNG, SVG and PDF bytes of a forest and a funnel plot unchanged,
and the caller's rcParams are back after our functions return."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

import _background

ROOT = Path(__file__).resolve().parents[1]

HOSTILE_RC = """\
savefig.bbox: tight
font.family: serif
figure.dpi: 50
savefig.dpi: 72
axes.formatter.use_locale: True
lines.linewidth: 7
font.size: 17
axes.unicode_minus: False
"""

DRAW = """\
import locale
import sys
if len(sys.argv) > 2:  # a decimal-comma locale where the machine has one (C.UTF-8 only: use_locale is still set)
    for name in ("de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"):
        try:
            locale.setlocale(locale.LC_ALL, name)
            break
        except locale.Error:
            pass
from pathlib import Path
import numpy as np
import pandas as pd
from meta.plots import forest, funnel, save
from meta.pool import pool

# dat.bcg-like numbers (any fixed inputs do: both runs draw the same figures)
yi = np.array([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79, -1.62, 0.01, -0.47, -1.37])
vi = np.array([0.33, 0.19, 0.42, 0.02, 0.05, 0.01, 0.22, 0.004, 0.06, 0.27])
studies = pd.DataFrame({"label": [f"Study {i}" for i in range(1, 11)], "yi": yi, "vi": vi})
out = Path(sys.argv[1])
save(forest(pool(yi, vi), studies), out / "forest", formats=("png", "svg", "pdf"), dpi=100)
save(funnel(yi, vi), out / "funnel", formats=("png", "svg", "pdf"), dpi=100)
"""


def _draw(tmp: Path, name: str, rc_text: str) -> tuple[subprocess.Popen, Path]:
    """Run DRAW in a fresh interpreter whose matplotlibrc is ``rc_text`` (working folder and $MATPLOTLIBRC)."""
    work = tmp / name
    out = work / "out"
    out.mkdir(parents=True)
    rc = work / "matplotlibrc"
    rc.write_text(rc_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPL", "MATPLOTLIB"))}
    env.update(PYTHONPATH=str(ROOT), MPLBACKEND="Agg", MATPLOTLIBRC=str(rc), MPLCONFIGDIR=str(work / "cfg"))
    argv = [sys.executable, "-c", DRAW, str(out)] + (["locale"] if rc_text else [])
    return subprocess.Popen(argv, cwd=work, env=env, stderr=subprocess.PIPE, text=True), out


def plain_and_hostile(tmp: Path) -> None:
    """Background job (tests/_background.py): DRAW in two fresh interpreters at once, one with the hostile
    matplotlibrc; their exit codes and stderr go to tmp/runs.json, their figures to tmp/<name>/out."""
    import json

    jobs = {name: _draw(tmp, name, rc) for name, rc in (("plain", ""), ("hostile", HOSTILE_RC))}
    runs = {}
    for name, (proc, _) in jobs.items():
        _, err = proc.communicate(timeout=300)
        runs[name] = {"returncode": proc.returncode, "stderr": err}
    (tmp / "runs.json").write_text(json.dumps(runs))


@pytest.mark.background("test_plots_style:plain_and_hostile")
def test_hostile_matplotlibrc_leaves_figure_bytes_unchanged():
    import json

    tmp = _background.result("test_plots_style:plain_and_hostile")
    for run in json.loads((tmp / "runs.json").read_text()).values():
        assert run["returncode"] == 0, run["stderr"]
    plain, hostile = tmp / "plain" / "out", tmp / "hostile" / "out"
    files = sorted(p.name for p in plain.iterdir())
    assert files == [f"{k}.{f}" for k in ("forest", "funnel") for f in ("pdf", "png", "svg")]
    changed = [f for f in files if (plain / f).read_bytes() != (hostile / f).read_bytes()]
    assert not changed, f"the user's matplotlibrc changed {changed}"


def test_callers_rcparams_neither_change_the_figures_nor_are_changed(tmp_path):
    """A notebook's own rcParams (plt.style.use, rc_context) do not reach our figures and are theirs again after."""
    import numpy as np
    import pandas as pd

    from meta.plots import forest, funnel, save
    from meta.pool import pool

    yi, vi = np.array([0.1, 0.5, 0.3]), np.array([0.04, 0.09, 0.05])
    studies = pd.DataFrame({"label": ["a", "b", "c"], "yi": yi, "vi": vi})

    def draw(folder):  # same file names in both folders: the SVG ids are salted with the name
        return [p.read_bytes() for p in save(forest(pool(yi, vi), studies), tmp_path / folder / "forest", formats=("png", "svg"), dpi=72)
                + save(funnel(yi, vi), tmp_path / folder / "funnel", formats=("png", "svg"), dpi=72)]

    plain = draw("plain")
    hostile = {"lines.linewidth": 7.0, "font.family": ["serif"], "savefig.bbox": "tight", "font.size": 15.0,
               "xtick.major.size": 9.0, "axes.linewidth": 3.0}
    with matplotlib.rc_context(hostile):
        assert draw("hostile") == plain
        for k, v in hostile.items():
            assert matplotlib.rcParams[k] == v, k


@pytest.mark.parametrize("key", ["backend", "interactive"])
def test_style_leaves_how_matplotlib_runs_alone(key):
    from meta.plots.style import style

    assert key not in style()


def test_warnings_still_name_the_callers_line():
    import warnings

    import numpy as np
    import pandas as pd

    from meta.plots import forest
    from meta.pool import pool

    yi, vi = np.array([0.1, 0.5, 0.3]), np.array([0.04, 0.09, 0.05])
    studies = pd.DataFrame({"label": ["a very long study label that cannot fit"] * 3, "yi": yi, "vi": vi})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forest(pool(yi, vi), studies, width_cm=6)
    assert caught and {Path(w.filename).name for w in caught} == {Path(__file__).name}
