"""The review travels with the package: the wheel carries the bundled dataset, and `meta reproduce`
in an empty folder of a fresh environment reproduces from it and says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "meta").rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
    assert "meta.review.bundled" in listed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # built from a copy of the sources: setuptools writes build/ and *.egg-info next to what it builds
    src = tmp_path_factory.mktemp("src") / "meta-pfp-review"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "results", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis", "tests",
                                                             "notebooks", "benchmarks", "docs"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{r.stdout}\n{r.stderr}")
    (whl,) = out.glob("meta_pfp_review-*.whl")
    return whl


def test_the_wheel_installs_into_a_fresh_venv_and_reproduces_from_an_empty_folder(wheel, tmp_path):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for f in ("studies.csv", "outcomes.csv", "analyses.csv", "review_claims.csv", "vocabulary.csv"):
        assert f"meta/review/bundled/{f}" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    # run-time dependencies (numpy, pandas, ...) from this environment; meta itself only from the wheel
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"], "MPLBACKEND": "Agg"}
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    where = subprocess.run([str(py), "-c", "import meta, meta.review.inputs.bundled as b; print(meta.__file__); print(b.bundled_data())"],
                           cwd=empty, env=env, capture_output=True, text=True, check=True).stdout.split("\n")
    assert str(venv) in where[0] and str(venv) in where[1], where
    r = subprocess.run([str(venv / "bin" / "meta"), "reproduce", "--out", "results"], cwd=empty, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "using the dataset bundled with the package" in r.stderr
    assert (empty / "results" / "pooled.csv").is_file() and (empty / "results" / "report.md").is_file()
    r = subprocess.run([str(venv / "bin" / "meta"), "get-data"], cwd=empty, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and (empty / "data" / "outcomes.csv").is_file()
