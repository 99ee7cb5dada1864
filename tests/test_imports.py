"""``import meta.pool`` stays light: scipy's subpackages, matplotlib and numba
are imported on first use only (:mod:`meta._lazy`), so a script that pools a
few studies does not pay ~0.9 s of imports (benchmarks/README.md, "Speed where
users feel it").  Checked on ``sys.modules`` in a fresh interpreter, which is
deterministic, unlike timing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("scipy.special", "scipy.stats", "scipy.optimize", "matplotlib", "numba")


def _loaded(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    mods = json.loads(out.stdout.strip().splitlines()[-1])
    return [m for m in mods if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("module", ["meta", "meta.pool", "meta.bias", "meta.confint", "meta.bayes"])
def test_import_pulls_in_no_heavy_module(module):
    assert _loaded(f"import {module}") == []


def test_default_pool_call_needs_no_scipy():
    """pool() with the defaults (DL, z test) uses closed forms only (meta._formulas)."""
    assert _loaded("from meta.pool import pool; pool([0.1, 0.3, 0.2, 0.5], [0.01, 0.02, 0.015, 0.03])") == []


def test_lazy_accessor_returns_the_module():
    from meta import _lazy

    import scipy.special

    assert _lazy.special() is scipy.special
