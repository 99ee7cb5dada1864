"""meta.review.outputs.coverage: the study x outcome route table and its place in data/README.md."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from meta.review.inputs import data
from meta.cli import main as cli_main
from meta.review.outputs.coverage import END, NO_NUMBERS, START, coverage_table, to_markdown, write_coverage

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "tests" / "fixtures" / "data_good"
BAD = ROOT / "tests" / "fixtures" / "data_bad"

README = f"""# Data

Intro text that must survive | with a pipe.

## Coverage

{START}
old table
{END}

Text after the table.
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(GOOD, dst)
    (dst / "README.md").write_text(README)
    return dst


def test_table_on_fixture():
    t = coverage_table(data.load(GOOD))
    # excluded / unlikely studies are not rows; rows in studies.csv order; outcomes alphabetical
    assert list(t.index) == ["souza2009b", "noehren2013", "willson2008", "willson2011", "willy2012b",
                             "noehren2012a"]
    assert list(t.columns) == ["gluteus_medius_onset", "hip_internal_rotation", "peak_hip_adduction"]
    # the routes follow from which columns the fixture fills (see tests/fixtures/data_good/outcomes.csv)
    assert t.loc["souza2009b", "hip_internal_rotation"] == "means_sd"
    assert t.loc["noehren2013", "peak_hip_adduction"] == "p_only"
    assert t.loc["noehren2013", "hip_internal_rotation"] == "t"
    assert t.loc["willson2008", "peak_hip_adduction"] == "md_p"
    assert t.loc["willson2011", "gluteus_medius_onset"] == "reported_es"
    assert t.loc["willy2012b", "peak_hip_adduction"] == "paired"
    assert t.loc["noehren2012a", "peak_hip_adduction"] == NO_NUMBERS == "\u2013"
    assert t.loc["souza2009b", "peak_hip_adduction"] == ""  # no row


def test_several_rows_join_routes_in_priority_order_and_excluded_dropped():
    ds = data.load(GOOD)
    out = ds.outcomes.copy()
    extra = out.loc[[3]].assign(timepoint="6_months", p_value=float("nan"), p_operator=pd.NA,
                                mean1=9.0, sd1=3.0, mean2=6.0, sd2=2.5)
    extra2 = out.loc[[8]].assign(study_id="messier2008")
    out = pd.concat([out, extra, extra2], ignore_index=True)
    studies = ds.studies.copy()
    studies.loc[studies["study_id"] == "willson2011", "review_match"] = "unlikely"
    t = coverage_table((studies, out))
    assert t.loc["noehren2013", "peak_hip_adduction"] == "means_sd, p_only"
    assert "willson2011" not in t.index and "messier2008" not in t.index
    assert "gluteus_medius_onset" in t.columns  # outcome kept as a column even if now empty
    assert (t["gluteus_medius_onset"] == "").all()


def test_accepts_dict_pair_and_path():
    ds = data.load(GOOD)
    ref = coverage_table(ds)
    pd.testing.assert_frame_equal(coverage_table({"studies": ds.studies, "outcomes": ds.outcomes}), ref)
    pd.testing.assert_frame_equal(coverage_table(str(GOOD)), ref)
    with pytest.raises(TypeError, match="Dataset"):
        coverage_table(42)


def test_markdown():
    md = to_markdown(coverage_table(data.load(GOOD)))
    lines = md.splitlines()
    assert lines[0] == "| study | outcomes with an SMD (route) | outcomes with a row but no usable numbers |"
    assert lines[1] == "|---|---|---|"
    assert "| noehren2013 | hip_internal_rotation (t), peak_hip_adduction (p_only) |  |" in lines
    assert "| noehren2012a |  | peak_hip_adduction |" in lines
    assert "6 studies: 6 with at least one outcome row, 5 with at least one SMD" in md
    assert "`meta coverage`" in md


def test_write_replaces_only_between_markers_and_is_idempotent(folder: Path):
    readme = folder / "README.md"
    t = coverage_table(data.load(folder))
    assert write_coverage(readme, t) is True
    text = readme.read_text()
    before, rest = text.split(START)
    inside, after = rest.split(END)
    assert before == README.split(START)[0]
    assert after == README.split(END)[1]
    assert "old table" not in inside and "| noehren2013 | hip_internal_rotation (t), peak_hip_adduction (p_only) |  |" in inside
    first = readme.read_bytes()
    assert write_coverage(readme, t) is False
    assert readme.read_bytes() == first


def test_write_keeps_crlf(folder: Path):
    readme = folder / "README.md"
    readme.write_bytes(README.replace("\n", "\r\n").encode())
    write_coverage(readme, coverage_table(data.load(folder)))
    raw = readme.read_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert raw.startswith(b"# Data\r\n\r\nIntro text that must survive | with a pipe.\r\n")


@pytest.mark.parametrize("text", ["no markers", f"{START}\nonly start", f"{END}\n{START}\n",
                                  f"{START}\n{END}\n{START}\n{END}\n"])
def test_write_refuses_bad_markers(tmp_path: Path, text: str):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match="coverage:start"):
        write_coverage(readme, coverage_table(data.load(GOOD)))
    assert readme.read_text() == text


def test_main_regenerates(folder: Path, capsys):
    assert cli_main(["coverage", "--data", str(folder)]) == 0
    assert "coverage table updated (6 studies x 3 outcomes)" in capsys.readouterr().out
    assert cli_main(["coverage", "--data", str(folder)]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert "| willy2012b | peak_hip_adduction (paired) |  |" in (folder / "README.md").read_text()


def test_main_on_invalid_data_writes_nothing(tmp_path: Path, capsys):
    dst = tmp_path / "bad"
    shutil.copytree(BAD, dst)
    (dst / "README.md").write_text(README)
    assert cli_main(["coverage", "--data", str(dst)]) == 1
    out = capsys.readouterr().out
    assert "column sd1: must be > 0, got -6.6" in out and "coverage not written" in out
    assert (dst / "README.md").read_text() == README


def test_main_without_readme(tmp_path: Path, capsys):
    dst = tmp_path / "data"
    shutil.copytree(GOOD, dst)
    assert cli_main(["coverage", "--data", str(dst)]) == 1
    assert "coverage not written" in capsys.readouterr().out


def test_bundled_readme_coverage_is_current(tmp_path: Path):
    """data/README.md's table is the tool's output for the bundled data, not a hand edit.

    If this fails after a data change, run ``make docs`` (``python -m meta docs``) and commit data/README.md.
    """
    copy = tmp_path / "README.md"
    shutil.copyfile(ROOT / "data" / "README.md", copy)
    rewritten = write_coverage(copy, coverage_table(data.load(ROOT / "data")))
    assert not rewritten, "data/README.md coverage table is stale: run `make docs` (python -m meta docs) and commit it"
