"""meta reproduce --out: which folders it may replace, and that nothing else is ever lost.

Every case runs ``meta.cli.main`` in a fresh tmp_path holding real files, then checks
the exit code, the one stderr line and that every file that must survive is byte for
byte the same (refusals: the whole tmp_path; failures: the previous results).
Figures are replaced by a stub (one tiny file) where a run gets that far: drawing is
tested in test_reproduce.py and test_plots.py, here only the folder handling matters.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import _background

from meta.review import reproduce
from meta.review.outputs import report
from meta.review.outputs import results_folder as outputs
from meta.cli import main
from meta.review.outputs.results_folder import MARKER, MARKER_TEXT, OutputRefused

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
REF = ROOT / "tests" / "fixtures" / "reproduce_reference.json"


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``: folders, symlinks (their target) and file bytes."""
    snap: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                snap[rel] = ("symlink", os.readlink(p))
            elif p.is_dir():
                snap[rel] = "dir"
            else:
                snap[rel] = p.read_bytes()
    return snap


def synthetic(folder: Path) -> Path:
    """The small three-analysis data set of test_reproduce.py (metafor reference)."""
    from test_reproduce import _write_synthetic

    return _write_synthetic(folder, json.loads(REF.read_text()))


def old_results(folder: Path) -> dict[str, object]:
    """A results folder as an earlier run left it (marked as ours); returns its snapshot."""
    (folder / "figures").mkdir(parents=True)
    (folder / MARKER).write_text(MARKER_TEXT)
    (folder / "pooled.csv").write_text("analysis_id,k\nold,3\n")
    (folder / "report.md").write_text("# the previous report\n")
    (folder / "figures" / "old_forest.png").write_bytes(b"\x89PNG old")
    return snapshot(folder)


def _stub_figures(run, fig_dir, **kw):
    if run.k == 0:
        return ()
    p = fig_dir / f"{run.analysis.analysis_id}_forest.png"
    p.write_bytes(b"\x89PNG stub")
    return (str(p.relative_to(fig_dir.parent)),)


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(reproduce, "draw_figures", _stub_figures)


def run(capsys, *argv) -> tuple[int, list[str]]:
    try:
        rc = main(["reproduce", *map(str, argv)])
    except KeyboardInterrupt:  # would end the pytest session
        pytest.fail("KeyboardInterrupt reached the caller of main()")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err.strip().splitlines()


def leftovers(parent: Path) -> list[str]:
    """Temporary folders and lock files a run left beside its results."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") and (".tmp-" in p.name or p.name.endswith(".lock")))


# --------------------------------------------------------------------------- refusals


def _case(tmp_path: Path, monkeypatch, name: str):
    """Set up one refusal case; returns (--data, --out, the reason the message must give)."""
    data = tmp_path / "project" / "data"
    shutil.copytree(DATA, data)
    (tmp_path / "project" / "README.md").write_text("my project\n")
    work = tmp_path / "project"
    monkeypatch.chdir(work)
    if name == "data":
        return "data", "data", "is the data folder"
    if name == "inside data":
        return "data", "data/results", "lies inside the data folder"
    if name == "ancestor of data":
        monkeypatch.chdir(tmp_path)
        return data, tmp_path / "project", "contains the data folder"
    if name == "working directory":
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "draft.docx").write_bytes(b"chapter 1")
        monkeypatch.chdir(tmp_path / "elsewhere")
        return data, ".", "is the working directory"
    if name == "ancestor of working directory":
        (tmp_path / "p" / "q").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / "p" / "q")
        return data, "..", "contains the working directory"
    if name == "home":
        home = tmp_path / "home"
        home.mkdir()
        (home / ".bashrc").write_text("export X=1\n")
        monkeypatch.setenv("HOME", str(home))
        return "data", home, "is your home folder"
    if name == "root":
        def never(*a, **k):
            raise AssertionError("a run into / got as far as touching the file system")

        for mod, attr in ((os, "replace"), (shutil, "rmtree"), (outputs.tempfile, "mkdtemp")):
            monkeypatch.setattr(mod, attr, never)  # a regression must fail here, not touch /
        return "data", "/", "is a file system root"
    if name == "existing file":
        (work / "paper.docx").write_bytes(b"PK\x03\x04 my paper")
        return "data", "paper.docx", "is an existing file"
    if name == "unmarked folder with a draft":
        (work / "thesis").mkdir()
        (work / "thesis" / "draft.docx").write_bytes(b"PK\x03\x04 draft")
        return "data", "thesis", "is a folder that meta did not write"
    if name == "symlink to data":
        (work / "link").symlink_to(data, target_is_directory=True)
        return "data", "link", "is the data folder"
    if name == "symlink into data":
        (data / "sub").mkdir()
        (work / "link").symlink_to(data / "sub", target_is_directory=True)
        return "data", "link/results", "lies inside the data folder"
    if name == ".. from inside data":
        monkeypatch.chdir(data)
        return ".", "..", "contains the data folder"
    if name == "folder holding a marker-named folder":
        (work / "r" / MARKER).mkdir(parents=True)  # a folder, not our marker file
        return "data", "r", "is a folder that meta did not write"
    raise AssertionError(name)


REFUSALS = [
    "data",
    "inside data",
    "ancestor of data",
    "working directory",
    "ancestor of working directory",
    "home",
    "root",
    "existing file",
    "unmarked folder with a draft",
    "symlink to data",
    "symlink into data",
    ".. from inside data",
    "folder holding a marker-named folder",
]


@pytest.mark.parametrize("name", REFUSALS)
def test_refused_target_exits_2_with_one_line_and_changes_nothing(name, tmp_path, monkeypatch, capsys):
    data, out, reason = _case(tmp_path, monkeypatch, name)
    before = snapshot(tmp_path)
    rc, err = run(capsys, "--data", data, "--out", out)
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(f"meta reproduce: refusing --out {out}: "), err
    assert reason in err[0]
    assert snapshot(tmp_path) == before


def test_refusal_names_the_resolved_path(tmp_path, monkeypatch, capsys):
    data, out, _ = _case(tmp_path, monkeypatch, ".. from inside data")
    rc, err = run(capsys, "--data", data, "--out", out)
    assert err == [f"meta reproduce: refusing --out ..: {tmp_path.resolve() / 'project'} contains the data folder "
                   f"{(tmp_path / 'project' / 'data').resolve()}; choose another --out, e.g. results"]


def test_library_raises_and_prints_nothing(tmp_path, capsys):
    data = synthetic(tmp_path / "data")
    before = snapshot(tmp_path)
    with pytest.raises(OutputRefused, match="is the data folder"):
        reproduce.reproduce(data, data, progress=None)
    assert capsys.readouterr() == ("", "")
    assert snapshot(tmp_path) == before


def test_cli_refuses_the_data_folder(tmp_path, capsys):
    data = synthetic(tmp_path / "data")
    before = snapshot(tmp_path)
    assert main(["reproduce", "--data", str(data), "--out", str(data)]) == 2
    assert "is the data folder" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- accepted targets


def test_marked_folder_is_replaced_as_a_whole(tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old_results(target)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 0 and err[-1].startswith("done: 3 analyses")
    assert (target / MARKER).read_text() == MARKER_TEXT
    assert not (target / "figures" / "old_forest.png").exists()
    assert (target / "report.md").read_text() != "# the previous report\n"
    assert (target / "figures" / "cc_add_forest.png").is_file()
    assert sorted(os.listdir(tmp_path)) == ["data", "results"]


@pytest.mark.parametrize("where", ["empty folder", "new nested folder"])
def test_empty_or_new_folder_is_accepted_and_marked(where, tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results" if where == "empty folder" else tmp_path / "a" / "b" / "results"
    if where == "empty folder":
        target.mkdir()
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 0
    assert (target / MARKER).read_text() == MARKER_TEXT and (target / "pooled.csv").is_file()
    assert leftovers(target.parent) == []


def test_marked_folder_reached_through_a_symlink_is_replaced_in_place(tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    real = tmp_path / "store" / "results"
    old_results(real)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    rc, err = run(capsys, "--data", data, "--out", tmp_path / "link")
    assert rc == 0
    assert (tmp_path / "link").is_symlink() and os.readlink(tmp_path / "link") == str(real)
    assert (real / "pooled.csv").read_text() != "analysis_id,k\nold,3\n"
    assert leftovers(real.parent) == [] and leftovers(tmp_path) == []  # the temp folder was beside the real target


# --------------------------------------------------------------------------- a run killed at each step

KILLED_RUN = textwrap.dedent(
    """
    import os, sys
    from meta.review import reproduce
    from meta.review.outputs import results_folder as outputs
    data, out, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reproduce.draw_figures = lambda run, fig_dir, **kw: ()
    real_replace, calls = os.replace, []
    def replace(src, dst):
        if ".tmp-" in str(src) or ".tmp-" in str(dst):
            calls.append(src)  # the results folder's swap only (a figure-cache write is not counted)
            if len(calls) == step:   # 1: before the first rename, 2: between the two renames
                os._exit(9)
        return real_replace(src, dst)
    os.replace = replace
    if step == 3:                # after both renames, before the old results are removed
        outputs.ResultsFolder._remove_work = lambda self: os._exit(9)
    from meta.cli import main
    sys.exit(main(["reproduce", "--data", data, "--out", out]))
    """
)


KILL_STEPS = (1, 2, 3)


def killed_runs(tmp: Path) -> None:
    """Background job (tests/_background.py): for each step, the synthetic data and an earlier run's results in
    tmp/step<N>, then `meta reproduce` into them killed at that step (KILLED_RUN, a fresh interpreter); the
    killed process's exit code and stderr go to tmp/kills.json, the earlier results' snapshots to tmp/old.pickle."""
    import pickle

    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    kills, old = {}, {}
    for step in KILL_STEPS:
        data = synthetic(tmp / f"step{step}" / "data")
        target = tmp / f"step{step}" / "results"
        old[step] = old_results(target)
        proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(data), str(target), str(step)], env=env,
                              capture_output=True, text=True, timeout=120)
        kills[step] = {"returncode": proc.returncode, "stderr": proc.stderr}
    (tmp / "kills.json").write_text(json.dumps(kills))
    (tmp / "old.pickle").write_bytes(pickle.dumps(old))


@pytest.mark.background("test_outputs:killed_runs")
@pytest.mark.parametrize("step", KILL_STEPS, ids=["before first rename", "between renames", "after second rename"])
def test_next_run_recovers_what_a_killed_run_left(step, capsys, monkeypatch, fast):
    import pickle

    runs = _background.result("test_outputs:killed_runs")
    kill = json.loads((runs / "kills.json").read_text())[str(step)]
    assert kill["returncode"] == 9, kill["stderr"]
    old = pickle.loads((runs / "old.pickle").read_bytes())[step]
    tmp_path = runs / f"step{step}"  # holds data/ and what the kill left
    data = tmp_path / "data"
    target = tmp_path / "results"
    temps = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert len(temps) == 1  # what the kill left
    assert target.exists() == (step != 2)
    expected = old if step != 3 else snapshot(target)  # after the second rename the killed run's results are the previous ones

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "render", interrupt)  # the next run recovers, then is interrupted
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 130
    if step == 2:
        assert any(line.startswith(f"restored the previous results {target}") for line in err), err
    assert f"removed {temps[0]}, left by an interrupted run" in err
    assert err[-1] == f"meta reproduce: interrupted; the previous results in {target} are untouched"
    assert snapshot(target) == expected
    assert sorted(os.listdir(tmp_path)) == ["data", "results"]  # no temp folder, no lock file

    monkeypatch.undo()
    monkeypatch.setattr(reproduce, "draw_figures", _stub_figures)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 0 and not any("removed" in line or "restored" in line for line in err)
    assert (target / MARKER).is_file() and (target / "figures" / "cc_add_forest.png").is_file()
    assert sorted(os.listdir(tmp_path)) == ["data", "results"]


def test_recover_moves_previous_back_byte_for_byte(tmp_path):
    target = tmp_path / "results"
    old = old_results(tmp_path / ".results.tmp-k1ll3d" / "previous" / "results")
    new = tmp_path / ".results.tmp-k1ll3d" / "results"
    new.mkdir()
    (new / MARKER).write_text(MARKER_TEXT)
    (new / "pooled.csv").write_text("analysis_id,k\nnew,4\n")
    msgs = outputs.recover(target)
    assert msgs[0].startswith(f"restored the previous results {target} from ") and len(msgs) == 2
    assert snapshot(target) == old
    assert os.listdir(tmp_path) == ["results"]


def test_stale_temp_folder_with_foreign_files_is_left_alone(tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old_results(target)
    stale = tmp_path / ".results.tmp-mine"
    (stale / "results").mkdir(parents=True)
    (stale / "results" / "notes.txt").write_text("not written by meta")  # no marker
    keep = snapshot(stale)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 0
    assert f"left {stale} alone: it holds files meta did not write; remove it yourself" in err
    assert snapshot(stale) == keep


# --------------------------------------------------------------------------- two runs at once

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from meta.review.outputs.results_folder import _Lock
    _Lock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_second_run_into_a_locked_folder_is_refused_and_a_dead_holder_does_not_block(tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old = old_results(target)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(target)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc, err = run(capsys, "--data", data, "--out", target)
        assert rc == 2
        assert err[-1] == (f"meta reproduce: another meta reproduce (pid {holder.pid}) is writing {target}; "
                           "wait for it to finish or choose another --out")
        assert snapshot(target) == old
        assert leftovers(tmp_path) == [".results.lock"]  # the holder's, untouched
    finally:
        holder.kill()
        holder.wait()
    rc, err = run(capsys, "--data", data, "--out", target)  # the lock died with its process
    assert rc == 0 and (target / "figures" / "cc_add_forest.png").is_file()
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- OSError and Ctrl-C


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.ENAMETOOLONG])
def test_oserror_while_writing_is_one_line_and_previous_results_survive(code, tmp_path, capsys, monkeypatch, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old = old_results(target)
    bad = tmp_path / ".results.tmp-x" / "results" / "pooled.csv"

    def fail(res, folder):
        if code == errno.ENOSPC:  # a write() that fails carries no file name
            raise OSError(code, os.strerror(code))
        raise OSError(code, os.strerror(code), str(bad))

    monkeypatch.setattr(reproduce, "write_tables", fail)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 1
    named = target if code == errno.ENOSPC else bad
    assert err[-1] == f"meta reproduce: cannot write {named}: {os.strerror(code)}"
    assert snapshot(target) == old
    assert sorted(os.listdir(tmp_path)) == ["data", "results"]


def test_read_only_parent_is_one_line(tmp_path, capsys, monkeypatch, fast):
    """Tests run as root (chmod does not stop root), so the read-only mkdir is simulated."""
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old = old_results(target)

    def mkdtemp(prefix, dir):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, prefix + "abc"))

    monkeypatch.setattr(outputs.tempfile, "mkdtemp", mkdtemp)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 1 and err[-1] == f"meta reproduce: cannot write {tmp_path / '.results.tmp-abc'}: Read-only file system"
    assert snapshot(target) == old and sorted(os.listdir(tmp_path)) == ["data", "results"]


def test_failed_swap_is_one_line_and_previous_results_survive(tmp_path, capsys, monkeypatch, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old = old_results(target)
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 2:  # old -> previous worked; new -> results fails
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 1 and err[-1].startswith("meta reproduce: cannot write ") and err[-1].endswith(os.strerror(errno.EXDEV))
    assert snapshot(target) == old and sorted(os.listdir(tmp_path)) == ["data", "results"]


def test_real_name_too_long(tmp_path, capsys, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / ("r" * 300)
    before = snapshot(tmp_path)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 1 and len(err) == 1
    assert err[0] == f"meta reproduce: cannot write {target}: File name too long"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("previous", [True, False])
def test_ctrl_c_mid_run_exits_130_and_leaves_previous_results(previous, tmp_path, capsys, monkeypatch, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    if previous:
        old_results(target)
    before = snapshot(tmp_path)

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "render", interrupt)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 130
    if previous:
        assert err[-1] == f"meta reproduce: interrupted; the previous results in {target} are untouched"
    else:
        assert err[-1] == f"meta reproduce: interrupted; nothing was written to {target}"
    assert snapshot(tmp_path) == before


def test_unreadable_analyses_csv_is_one_line_naming_it(tmp_path, capsys):
    data = synthetic(tmp_path / "data")
    (data / "analyses.csv").unlink()
    (data / "analyses.csv").mkdir()
    rc, err = run(capsys, "--data", data, "--out", tmp_path / "results")
    assert rc == 1 and len(err) == 2 and str(data / "analyses.csv") in err[0] and "nothing was written" in err[0]
    assert "is a folder, not a file" in err[1]
    assert not (tmp_path / "results").exists()


def test_old_results_that_cannot_be_removed_do_not_fail_a_finished_run(tmp_path, capsys, monkeypatch, fast):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old_results(target)
    real = outputs._remove_ours

    def stuck(folder):
        if folder.parent.name == "previous":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))
        return real(folder)

    monkeypatch.setattr(outputs, "_remove_ours", stuck)
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 0 and (target / "figures" / "cc_add_forest.png").is_file()
    assert any(line.startswith("could not remove the previous results in ") for line in err), err
    monkeypatch.setattr(outputs, "_remove_ours", real)
    rc, err = run(capsys, "--data", data, "--out", target)  # the next run cleans up and says so
    assert rc == 0 and any(line.startswith("removed ") for line in err)
    assert sorted(os.listdir(tmp_path)) == ["data", "results"]


SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    from meta.review import reproduce
    def slow(run, fig_dir, **kw):
        print("drawing", file=sys.stderr, flush=True)
        time.sleep(60)
    reproduce.draw_figures = slow
    from meta.cli import main
    sys.exit(main(["reproduce", "--data", sys.argv[1], "--out", sys.argv[2]]))
    """
)


def test_real_ctrl_c_while_drawing(tmp_path):
    import signal

    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old = old_results(target)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    # Ctrl-C as in a user's terminal even where pytest itself was started with SIGINT ignored (a
    # background job of a shell without job control): the child starts with SIGINT's default
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(data), str(target)], env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = []
        while not lines or lines[-1] != "drawing":
            line = proc.stderr.readline()
            assert line, lines
            lines.append(line.strip())
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in rest
    assert rest.strip().splitlines()[-1] == f"meta reproduce: interrupted; the previous results in {target} are untouched"
    assert snapshot(target) == old and sorted(os.listdir(tmp_path)) == ["data", "results"]


def test_results_missing_after_a_kill_come_back_even_if_the_next_run_has_bad_data(tmp_path, capsys):
    data = synthetic(tmp_path / "data")
    target = tmp_path / "results"
    old = old_results(tmp_path / ".results.tmp-k1ll3d" / "previous" / "results")  # killed between the renames
    (data / "analyses.csv").write_text("not,an,analyses,file\n")
    rc, err = run(capsys, "--data", data, "--out", target)
    assert rc == 1 and err[2] == f"meta reproduce: 1 problem(s) in {data / 'analyses.csv'}; nothing was written:"
    assert err[0].startswith(f"restored the previous results {target} from ")
    assert err[1] == f"removed {tmp_path / '.results.tmp-k1ll3d'}, left by an interrupted run"
    assert snapshot(target) == old and sorted(os.listdir(tmp_path)) == ["data", "results"]
