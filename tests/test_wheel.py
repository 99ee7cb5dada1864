"""The review travels with the package: the wheel carries the bundled dataset, and `meta reproduce`
in an empty folder of a fresh environment reproduces from it and says so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

import _background

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "meta").rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
    assert "meta.review.bundled" in listed


def wheel_in_a_fresh_venv(tmp: Path) -> None:
    """Background job (tests/_background.py): build the wheel, install it into a fresh venv, run `meta reproduce`
    and `meta get-data` from it in an empty folder; each process's exit code and output go to tmp/runs.json."""
    runs = {}

    def run(key, cmd, **kw):
        r = subprocess.run(cmd, capture_output=True, text=True, **kw)
        runs[key] = {"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr}
        (tmp / "runs.json").write_text(json.dumps(runs))
        return r

    out = tmp / "dist"
    # built from a copy of the sources: setuptools writes build/ and *.egg-info next to what it builds
    src = tmp / "src" / "meta-pfp-review"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "results", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis", "tests",
                                                             "notebooks", "benchmarks", "docs"))
    if run("build", [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
           timeout=600).returncode != 0:
        return
    (whl,) = out.glob("meta_pfp_review-*.whl")
    venv = tmp / "venv"
    # a venv without its own pip (creating one with pip costs seconds); this environment's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps", "--no-index",
                    str(whl)], check=True, timeout=300)
    # run-time dependencies (numpy, pandas, ...) from this environment; meta itself only from the wheel
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"], "MPLBACKEND": "Agg"}
    empty = tmp / "elsewhere"
    empty.mkdir()
    run("where", [str(py), "-c", "import meta, meta.review.inputs.bundled as b; print(meta.__file__); print(b.bundled_data())"],
        cwd=empty, env=env, check=True)
    run("reproduce", [str(venv / "bin" / "meta"), "reproduce", "--out", "results"], cwd=empty, env=env, timeout=600)
    run("get_data", [str(venv / "bin" / "meta"), "get-data"], cwd=empty, env=env)


@pytest.mark.background("test_wheel:wheel_in_a_fresh_venv")
def test_the_wheel_installs_into_a_fresh_venv_and_reproduces_from_an_empty_folder():
    import zipfile

    tmp = _background.result("test_wheel:wheel_in_a_fresh_venv")
    runs = json.loads((tmp / "runs.json").read_text())
    if runs["build"]["returncode"] != 0:
        pytest.fail(f"building the wheel failed:\n{runs['build']['stdout']}\n{runs['build']['stderr']}")
    (wheel,) = (tmp / "dist").glob("meta_pfp_review-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("studies.csv", "outcomes.csv", "analyses.csv", "review_claims.csv", "vocabulary.csv"):
        assert f"meta/review/bundled/{f}" in names
    venv, empty = tmp / "venv", tmp / "elsewhere"
    where = runs["where"]["stdout"].split("\n")
    assert str(venv) in where[0] and str(venv) in where[1], where
    r = runs["reproduce"]
    assert r["returncode"] == 0, r["stderr"][-2000:]
    assert "using the dataset bundled with the package" in r["stderr"]
    assert (empty / "results" / "pooled.csv").is_file() and (empty / "results" / "report.md").is_file()
    r = runs["get_data"]
    assert r["returncode"] == 0 and (empty / "data" / "outcomes.csv").is_file()
