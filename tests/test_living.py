"""The living update end to end: inputs/ snapshot, ``meta diff`` (exit codes 0/1/2), ``make docs``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from meta import docs
from meta.cli import main
from meta.outputs import read_inputs, write_inputs

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- inputs/ snapshot


def test_inputs_snapshot_is_a_byte_copy_of_every_data_file_read(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    (data / "studies.csv").write_bytes((data / "studies.csv").read_bytes().replace(b"\n", b"\r\n"))  # bytes, not text
    inputs = read_inputs(data)
    assert set(inputs) == {"studies.csv", "outcomes.csv", "analyses.csv", "review_claims.csv",
                           "published_pooled.csv", "vocabulary.csv"}
    written = write_inputs(inputs, tmp_path / "res")
    assert len(written) == 6
    for p in written:
        assert p.parent == tmp_path / "res" / "inputs"
        assert p.read_bytes() == (data / p.name).read_bytes()
    assert "README.md" not in inputs  # only the CSV files the run reads


def test_inputs_snapshot_leaves_out_an_optional_file_the_folder_lacks(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    (data / "published_pooled.csv").unlink()
    assert "published_pooled.csv" not in read_inputs(data)


# --------------------------------------------------------------------------- meta diff (cli)


def test_diff_cli_bad_folder_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("meta diff: ") and "Traceback" not in err
    assert "pooled.csv" in err  # the first folder exists but was not written by meta reproduce


def _fake(root: Path, est: str) -> Path:
    root.mkdir(parents=True)
    (root / "pooled.csv").write_text(f"set,analysis_id,status,k,estimate,ci_low,ci_high,tau2\noriginal,a1,pooled,2,{est},0,1,0\n")
    (root / "claims.csv").write_text("set,claim_id,verdict\noriginal,C1,agrees\n")
    (root / "effect_sizes.csv").write_text("study_id,outcome,comparison,timepoint,task,yi,vi,route\ns,o,c,t,r,0.1,0.2,md_p\n")
    return root


def test_diff_cli_exit_0_when_nothing_changed_1_when_something_did(tmp_path, capsys):
    a, b, c = _fake(tmp_path / "a", "0.4"), _fake(tmp_path / "b", "0.4"), _fake(tmp_path / "c", "0.5")
    assert main(["diff", str(a), str(b)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("no changes")
    assert main(["diff", str(a), str(c)]) == 1
    out = capsys.readouterr().out
    assert "a1" in out and "estimate 0.4 -> 0.5" in out and out.rstrip().endswith("changed")


# --------------------------------------------------------------------------- make docs


README = "# x\n\nbefore\n<!-- pooled-excerpt:start -->\nold table\n<!-- pooled-excerpt:end -->\nafter\n"


def test_replace_between_touches_only_the_markers_keeps_crlf_and_is_idempotent(tmp_path):
    p = tmp_path / "README.md"
    p.write_bytes(README.replace("\n", "\r\n").encode())
    assert docs.replace_between(p, docs.START, docs.END, "| a |\n| b |")
    text = p.read_bytes().decode()
    assert text == "# x\r\n\r\nbefore\r\n<!-- pooled-excerpt:start -->\r\n| a |\r\n| b |\r\n<!-- pooled-excerpt:end -->\r\nafter\r\n"
    assert not docs.replace_between(p, docs.START, docs.END, "| a |\n| b |")


@pytest.mark.parametrize("text", ["no markers\n", f"{docs.END}\n{docs.START}\n", f"{docs.START}\n{docs.START}\n{docs.END}\n"])
def test_replace_between_refuses_bad_markers(tmp_path, text):
    p = tmp_path / "README.md"
    p.write_text(text)
    with pytest.raises(ValueError, match="pooled-excerpt:start"):
        docs.replace_between(p, docs.START, docs.END, "x")
    assert p.read_text() == text


def test_excerpt_has_a_row_per_analysis_and_set():
    import pandas as pd

    pooled = pd.DataFrame(
        [("original", "a1", 0, None, None, None, None, None, None), ("updated", "a1", 1, 0.5, 0.1, 0.9, None, None, None),
         ("original", "a2", 3, 0.4, -0.1, 0.9, -1.0, 1.8, 50.0), ("updated", "zz", 2, 0, 0, 0, 0, 0, 0)],
        columns=["set", "analysis_id", "k", "estimate", "ci_low", "ci_high", "pi_low", "pi_high", "i2"])
    rows = docs.excerpt_rows(pooled, ("a1", "a2"))
    assert rows == [["original", "a1", "0", "no usable data", "", ""], ["updated", "a1", "1", "0.50 [0.10, 0.90]", "", ""],
                    ["original", "a2", "3", "0.40 [-0.10, 0.90]", "[-1.00, 1.80]", "50.0"]]
    assert docs.pooled_excerpt(pooled, ("a1",)).splitlines()[0] == "| set | analysis | k | SMD [95% CI] | 95% PI | I² % |"


def test_make_docs_regenerates_both_after_adding_a_number_and_then_tests_pass_again(tmp_path, capsys):
    """The workflow: a data change makes both generated parts stale; one command makes them current."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    readme = tmp_path / "README.md"
    shutil.copyfile(ROOT / "README.md", readme)
    assert main(["docs", "--data", str(data), "--readme", str(readme)]) == 0
    assert capsys.readouterr().out.count("already up to date") == 2  # the bundled docs are current
    out = (data / "outcomes.csv").read_text(encoding="utf-8")
    # a corrected number: souza2009a's PFP mean of peak hip internal rotation (means_sd route, in
    # cc_hip_internal_rotation, which the excerpt shows)
    lines = out.splitlines(keepends=True)
    i = next(j for j, ln in enumerate(lines) if ln.startswith("souza2009a,") and ",peak_hip_internal_rotation," in ln)
    import csv
    import io

    header = next(csv.reader([lines[0]]))
    row = next(csv.reader([lines[i]]))
    m1 = header.index("mean1")
    row[m1] = str(float(row[m1]) + 5)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    lines[i] = buf.getvalue()
    (data / "outcomes.csv").write_text("".join(lines), encoding="utf-8")
    before = readme.read_text(encoding="utf-8")
    assert main(["docs", "--data", str(data), "--readme", str(readme)]) == 0
    after = readme.read_text(encoding="utf-8")
    assert after != before
    assert before.split(docs.START)[0] == after.split(docs.START)[0]
    assert before.split(docs.END)[1] == after.split(docs.END)[1]


def test_make_docs_on_invalid_data_writes_nothing(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    (data / "studies.csv").write_text("garbage\n1\n")
    readme = tmp_path / "README.md"
    shutil.copyfile(ROOT / "README.md", readme)
    before = (readme.read_bytes(), (data / "README.md").read_bytes())
    assert main(["docs", "--data", str(data), "--readme", str(readme)]) == 1
    err = capsys.readouterr().err
    assert "nothing was written" in err and "Traceback" not in err
    assert (readme.read_bytes(), (data / "README.md").read_bytes()) == before
