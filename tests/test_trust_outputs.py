"""Nothing a user owns is lost and nothing blocks the next run: files of the user's own in a
results folder are never deleted, an undeletable leftover is reported and worked around, a closed
or full standard stream ends no command in a traceback, and the copies of the inputs users open
in a spreadsheet carry no formulas."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

import _background
from meta.cli import main
from meta.review.outputs import results_folder as rf
from test_outputs import fast, synthetic  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv) -> tuple[int, str]:
    rc = main(["reproduce", *map(str, argv)])
    return rc, capsys.readouterr().err


def test_the_manifest_lists_every_file_the_run_wrote(tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    rc, err = _run(capsys, "--data", data, "--out", tmp_path / "results")
    assert rc == 0, err
    listed = (tmp_path / "results" / rf.MANIFEST).read_text().splitlines()
    on_disk = sorted(p.relative_to(tmp_path / "results").as_posix() for p in (tmp_path / "results").rglob("*")
                     if p.is_file() and p.name != rf.MANIFEST)
    assert listed == on_disk and "pooled.csv" in listed and rf.MARKER in listed


def test_a_users_own_file_in_results_is_never_deleted(tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    out = tmp_path / "results"
    assert _run(capsys, "--data", data, "--out", out)[0] == 0
    (out / "notes.txt").write_text("my notes on the pooled estimates\n")
    (out / "figures" / "my_sketch.png").write_bytes(b"\x89PNG mine")
    rc, err = _run(capsys, "--data", data, "--out", out)
    assert rc == 2
    assert "notes.txt" in err and "figures/my_sketch.png" in err and "move them out" in err
    assert (out / "notes.txt").read_text() == "my notes on the pooled estimates\n"
    assert (out / "figures" / "my_sketch.png").read_bytes() == b"\x89PNG mine"
    (out / "notes.txt").unlink()
    (out / "figures" / "my_sketch.png").unlink()
    assert _run(capsys, "--data", data, "--out", out)[0] == 0


def test_a_leftover_that_cannot_be_removed_is_reported_and_the_run_still_succeeds(tmp_path, capsys, fast, monkeypatch):
    data = synthetic(tmp_path / "data")
    out = tmp_path / "results"
    assert _run(capsys, "--data", data, "--out", out)[0] == 0
    # a previous results folder left beside the target that cannot be removed (read-only as a user sees it;
    # the suite runs as root, which ignores permission bits, so the removal itself is made to fail)
    left = tmp_path / ".results.tmp-stuck"
    (left / "previous" / "results" / "figures").mkdir(parents=True)
    (left / "previous" / "results" / rf.MARKER).write_text(rf.MARKER_TEXT)
    (left / "previous" / "results" / "figures" / "a.png").write_bytes(b"png")
    real = rf._remove_ours

    def stuck(folder):
        if "stuck" in str(folder):
            raise PermissionError(13, "Permission denied", str(folder / "figures" / "a.png"))
        return real(folder)

    monkeypatch.setattr(rf, "_remove_ours", stuck)
    rc, err = _run(capsys, "--data", data, "--out", out)
    assert rc == 0, err
    assert f"could not remove {left}" in err and "remove it yourself" in err
    assert (out / "pooled.csv").is_file()
    rc, err = _run(capsys, "--data", data, "--out", out)  # and the run after it too
    assert rc == 0 and f"could not remove {left}" in err


def _cli(*args, stdout=None, stderr=None, shell=None):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    if shell:
        return subprocess.run(["bash", "-c", shell], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return subprocess.run([sys.executable, "-m", "meta", *args], cwd=ROOT, env=env, stdout=stdout, stderr=stderr,
                          text=True, timeout=300)


STREAM_COMMANDS = {"validate": ["validate", "--data", "tests/fixtures/review_data"],
                   "diff": ["diff", "tests/fixtures", "tests/fixtures"]}


def closed_streams(tmp: Path) -> None:
    """Background job (tests/_background.py): `meta reproduce` of the synthetic data into a pipe closed after one
    line, and `meta validate` and `meta diff` into a closed pipe and into a full disk (/dev/full), each a fresh
    process; their exit codes and output go to tmp/runs.json, the results folder to tmp/results."""
    import json

    def kept(r):
        return {"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr}

    data = synthetic(tmp / "data")
    out = tmp / "results"
    runs = {"reproduce": kept(_cli(shell=f"{sys.executable} -m meta reproduce --data {data} --out {out} 2>&1 | head -1; "
                                        "echo rc=${PIPESTATUS[0]}"))}
    for name, command in STREAM_COMMANDS.items():
        runs[f"{name} pipe"] = kept(_cli(shell="set -o pipefail; " + " ".join([sys.executable, "-m", "meta", *command])
                                         + " | head -c 1 >/dev/null"))
        with open("/dev/full", "w") as full:
            runs[f"{name} full"] = kept(_cli(*command, stdout=full, stderr=subprocess.PIPE))
    (tmp / "runs.json").write_text(json.dumps(runs))


def _closed_streams() -> tuple[Path, dict]:
    import json

    tmp = _background.result("test_trust_outputs:closed_streams")
    return tmp, json.loads((tmp / "runs.json").read_text())


@pytest.mark.background("test_trust_outputs:closed_streams")
def test_reproduce_into_a_pipe_closed_after_one_line_still_writes_its_results():
    tmp, runs = _closed_streams()
    r = runs["reproduce"]
    assert "Traceback" not in r["stdout"] + r["stderr"]
    assert r["stdout"].strip().endswith("rc=0"), r["stdout"] + r["stderr"]
    assert (tmp / "results" / "pooled.csv").is_file()


@pytest.mark.background("test_trust_outputs:closed_streams")
@pytest.mark.parametrize("command", list(STREAM_COMMANDS))
def test_validate_and_diff_into_a_closed_pipe_or_a_full_disk_give_no_traceback(command):
    _, runs = _closed_streams()
    r = runs[f"{command} pipe"]
    assert "Traceback" not in r["stderr"] and "BrokenPipeError" not in r["stderr"], r["stderr"]
    r = runs[f"{command} full"]
    assert "Traceback" not in r["stderr"], r["stderr"]
    if command == "validate":
        assert r["stderr"].strip().splitlines() == [
            "meta: standard output could not be written (No space left on device); its output is incomplete"]


def test_inputs_users_open_carry_no_formulas_and_diff_keeps_the_bytes(tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    rows = list(csv.reader(open(data / "studies.csv", newline="", encoding="utf-8")))
    payloads = ["+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1"]
    col = rows[0].index("notes")
    for r, p in zip(rows[1:], payloads):
        r[col] = p
    with open(data / "studies.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    assert _run(capsys, "--data", data, "--out", tmp_path / "results")[0] == 0
    safe = list(csv.reader(open(tmp_path / "results" / "inputs" / "studies.csv", newline="", encoding="utf-8")))
    notes = [r[col] for r in safe[1:len(payloads) + 1]]
    assert notes == ["'" + p for p in payloads]
    exact = tmp_path / "results" / "inputs" / "exact" / "studies.csv.bytes"
    assert exact.read_bytes() == (data / "studies.csv").read_bytes()
    assert not list((tmp_path / "results" / "inputs").glob("exact/*.csv")), "no byte copy a spreadsheet opens by default"
    assert main(["diff", str(tmp_path / "results"), str(tmp_path / "results")]) == 0
