"""The living update end to end: inputs/ snapshot, ``meta diff`` (exit codes 0/1/2), ``make docs``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import _background
from meta.review import docs
from meta.cli import main
from meta.review.outputs.results_folder import read_inputs, write_inputs

ROOT = Path(__file__).resolve().parents[1]
#: the review data as a frozen fixture: these tests check behaviour, not today's bundled data/
REVIEW_DATA = ROOT / "tests" / "fixtures" / "review_data"


# --------------------------------------------------------------------------- inputs/ snapshot


def test_inputs_snapshot_is_a_byte_copy_of_every_data_file_read_and_a_spreadsheet_safe_copy(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(REVIEW_DATA, data)
    (data / "studies.csv").write_bytes((data / "studies.csv").read_bytes().replace(b"\n", b"\r\n"))  # bytes, not text
    inputs = read_inputs(data)
    assert set(inputs) == {"studies.csv", "outcomes.csv", "analyses.csv", "review_claims.csv",
                           "published_pooled.csv", "vocabulary.csv"}
    written = write_inputs(inputs, tmp_path / "res")
    exact = [p for p in written if p.parent == tmp_path / "res" / "inputs" / "exact"]
    assert len(exact) == 6 and len(written) == 12
    for p in exact:
        assert p.name.endswith(".csv.bytes")
        assert p.read_bytes() == (data / p.name.removesuffix(".bytes")).read_bytes()
    assert "README.md" not in inputs  # only the CSV files the run reads


def test_inputs_snapshot_leaves_out_an_optional_file_the_folder_lacks(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(REVIEW_DATA, data)
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
    assert rows == [["original", "a1", "0", "no usable data", "", "", ""],
                    ["updated", "a1", "1", "0.50 [0.10, 0.90]", "", "", ""],
                    ["original", "a2", "3", "0.40 [-0.10, 0.90]", "[-1.00, 1.80]", "50.0", ""]]
    assert docs.pooled_excerpt(pooled, ("a1",)).splitlines()[0] == ("| set | analysis | k | SMD [95% CI] | 95% PI | I² % "
                                                                   "| verdict (robustness) |")
    with_verdict = pooled.assign(verdict=["insufficient data (no usable data)", "insufficient data (single study)", "x", "y"])
    assert docs.excerpt_rows(with_verdict, ("a1",))[1][-1] == "insufficient data (single study)"


def test_make_docs_regenerates_both_after_adding_a_number_and_then_tests_pass_again(tmp_path, capsys):
    """The workflow: a data change makes both generated parts stale; one command makes them current."""
    data = tmp_path / "data"
    shutil.copytree(REVIEW_DATA, data)
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
    shutil.copytree(REVIEW_DATA, data)
    (data / "studies.csv").write_text("garbage\n1\n")
    readme = tmp_path / "README.md"
    shutil.copyfile(ROOT / "README.md", readme)
    before = (readme.read_bytes(), (data / "README.md").read_bytes())
    assert main(["docs", "--data", str(data), "--readme", str(readme)]) == 1
    err = capsys.readouterr().err
    assert "nothing was written" in err and "Traceback" not in err
    assert (readme.read_bytes(), (data / "README.md").read_bytes()) == before


# --------------------------------------------------------------------------- end to end: two sets, cumulative, diff


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, snapshot_results):
    """reproduce on a copy of data/ (r1: the session's run of the snapshot, tests/conftest.py, copied), again
    (r1b), then on the same copy with neal2019's mean difference changed (r2)."""
    import csv
    import io

    from meta.review.reproduce import reproduce

    base = tmp_path_factory.mktemp("living")
    data = base / "data"
    shutil.copytree(REVIEW_DATA, data)
    shutil.copytree(snapshot_results, base / "r1", symlinks=True)
    reproduce(data, base / "r1b", formats=("png",), dpi=72, html=True, progress=None)  # r1's settings
    text = (data / "outcomes.csv").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    header = next(csv.reader([lines[0]]))
    i = next(j for j, ln in enumerate(lines) if ln.startswith("neal2019,") and ",peak_hip_adduction," in ln)
    row = next(csv.reader([lines[i]]))
    md, lo, hi = (header.index(c) for c in ("mean_diff", "ci_low", "ci_high"))
    shift = -4.6  # the CI moves with its difference, so the row stays centred and usable
    row[md], row[lo], row[hi] = (str(round(float(row[c]) + shift, 6)) for c in (md, lo, hi))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    lines[i] = buf.getvalue()
    (data / "outcomes.csv").write_text("".join(lines), encoding="utf-8")
    reproduce(data, base / "r2", formats=("png",), dpi=72, html=False, progress=None)
    return base


def test_every_results_folder_holds_a_byte_copy_of_its_inputs(two_runs):
    for name in ("studies.csv", "outcomes.csv", "analyses.csv", "review_claims.csv", "published_pooled.csv", "vocabulary.csv"):
        assert (two_runs / "r2" / "inputs" / "exact" / f"{name}.bytes").read_bytes() == (two_runs / "data" / name).read_bytes()
    assert (two_runs / "r1" / "inputs" / "exact" / "outcomes.csv.bytes").read_bytes() != (two_runs / "data" / "outcomes.csv").read_bytes()


def test_meta_diff_identical_reruns_exit_0(two_runs, capsys):
    assert main(["diff", str(two_runs / "r1"), str(two_runs / "r1b")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("no changes")


def test_meta_diff_names_the_study_the_analysis_and_the_verdict(two_runs, capsys):
    import pandas as pd

    assert main(["diff", str(two_runs / "r1"), str(two_runs / "r2")]) == 1
    out = capsys.readouterr().out
    assert "outcomes.csv: study_id=neal2019 / outcome=peak_hip_adduction" in out  # the input row
    assert "effect_sizes.csv: study_id=neal2019 / outcome=peak_hip_adduction" in out  # its SMD
    assert "pooled.csv: cc_hip_adduction [updated]: " in out and "estimate" in out  # the estimate that moved
    assert "pooled.csv: cc_hip_adduction:" not in out  # the original set does not hold neal2019
    old = pd.read_csv(two_runs / "r1" / "claims.csv")
    new = pd.read_csv(two_runs / "r2" / "claims.csv")
    o = old.set_index(["claim_id", "set"])["verdict"]
    n = new.set_index(["claim_id", "set"])["verdict"]
    changed = [k for k in o.index if o[k] != n[k]]
    assert changed and all(s == "updated" for _, s in changed)
    for cid, _ in changed:
        assert f"claims.csv: {cid} [updated]: verdict '{o[(cid, 'updated')]}' -> '{n[(cid, 'updated')]}'" in out


def test_pooled_csv_has_a_row_per_analysis_and_set_scales_never_mixed(two_runs):
    import pandas as pd

    p = pd.read_csv(two_runs / "r1" / "pooled.csv")
    assert p.columns[0] == "set"
    analyses = pd.read_csv(REVIEW_DATA / "analyses.csv")["analysis_id"]
    assert list(zip(p["set"], p["analysis_id"])) == [(s, a) for a in analyses for s in ("original", "updated")]
    eff = pd.read_csv(two_runs / "r1" / "effect_sizes.csv")
    for _, row in p.iterrows():
        col = "used_in" if row["set"] == "original" else "used_in_updated"
        used = eff.loc[eff[col].fillna("").str.split(";").map(lambda xs: row["analysis_id"] in xs)]
        assert len(used) == row["k"], (row["set"], row["analysis_id"])
        assert used["es_scale"].nunique() <= 1
    cc = p.set_index(["analysis_id", "set"])
    assert cc.loc[("cc_hip_adduction", "original"), "k"] == 1 and cc.loc[("cc_hip_adduction", "updated"), "k"] == 2
    assert "neal2019" in cc.loc[("cc_hip_adduction", "updated"), "studies"]


def test_cumulative_csv_and_figures_for_every_updated_analysis_with_k_2(two_runs):
    import numpy as np
    import pandas as pd

    from meta.pool import cumulative, pool

    res = two_runs / "r1"
    p = pd.read_csv(res / "pooled.csv")
    want = sorted(p.loc[(p["set"] == "updated") & (p["k"] >= 2), "analysis_id"])
    cum = pd.read_csv(res / "cumulative.csv")
    assert sorted(cum["analysis_id"].unique()) == want
    for aid in want:
        assert (res / "figures" / f"{aid}_cumulative.png").is_file()
        c = cum.loc[cum["analysis_id"] == aid]
        assert list(c["year"]) == sorted(c["year"])  # by publication year
        assert list(c["k"]) == list(range(1, len(c) + 1))
        last = p.loc[(p["set"] == "updated") & (p["analysis_id"] == aid)].iloc[0]
        assert np.isclose(c["estimate"].iloc[-1], last["estimate"], rtol=0, atol=1e-12)
    # cc_hip_adduction: willson2008 (2008) first, then neal2019 (2019); values = meta.pool.cumulative
    c = cum.loc[cum["analysis_id"] == "cc_hip_adduction"]
    assert list(c["study_id"]) == ["willson2008", "neal2019"] and list(c["year"]) == [2008, 2019]
    eff = pd.read_csv(res / "effect_sizes.csv")
    rows = eff.loc[eff["used_in_updated"].fillna("").str.split(";").map(lambda xs: "cc_hip_adduction" in xs)]
    ref = cumulative(pool(rows["yi"], rows["vi"]), order=[2008 if s == "willson2008" else 2019 for s in rows["study_id"]])
    assert np.allclose(c["estimate"], ref["estimate"], rtol=0, atol=1e-12)
    assert np.allclose(c["ci_low"], ref["ci_low"], rtol=0, atol=1e-12)


def test_report_section_what_newer_studies_say(two_runs):
    md = (two_runs / "r1" / "report.md").read_text(encoding="utf-8")
    sec = md[md.index("## What newer studies say"):]
    sec = sec[: sec.index("\n## ", 5)]
    for cid in ("C01", "C02", "C04", "C05", "C06"):
        assert f"### {cid}:" in sec
    c02 = sec[sec.index("### C02:"): sec.index("### C03:")]
    assert "Original review" in c02 and "Updated" in c02 and "neal2019 (2019)" in c02
    assert "lopes2023" in c02  # successors' pooled result on the construct hip_adduction
    c04 = sec[sec.index("### C04:"): sec.index("### C05:")]
    assert "-0.46 [-0.90, -0.03]" in c04 and "AS PRINTED, NOT FLIPPED" in c04  # sign as printed, note verbatim
    c06 = sec[sec.index("### C06:"): sec.index("### C07:")]
    assert "bioscmed" in c06 and "bazettjones2023" not in c06  # an intervention result only beside an intervention claim
    # per-analysis section: the updated set and the published results beside the pooled analysis
    an = md[md.index("### Case-control: peak contralateral pelvic drop"):]
    an = an[: an.index("\n### ", 5)]
    assert "Original and updated set" in an and "bazettjones2023" in an
    assert "figures/cc_hip_adduction_cumulative.png" in md


def hostile_published_pooled(tmp: Path) -> None:
    """Background job (tests/_background.py): reproduce the hostile data set (tests/_hostile.py) with every text
    column of published_pooled.csv forged as well; what the test checks of the run goes to tmp/run.json."""
    import json

    import _hostile as H
    import pandas as pd

    from meta.review.reproduce import reproduce

    data = H.hostile_data(tmp / "data")
    p = pd.read_csv(data / "published_pooled.csv", dtype=str, keep_default_na=False)
    for col in ("population", "design", "evidence_level", "sign_convention", "source_citation"):
        p[col] = p[col] + " " + H.FORGED + " " + H.ALL
    p.to_csv(data / "published_pooled.csv", index=False)
    res = reproduce(data, tmp / "res", formats=("png",), dpi=72, progress=None)
    (tmp / "run.json").write_text(json.dumps({"claims": res.claims is not None}))


@pytest.mark.background("test_living:hostile_published_pooled")
def test_hostile_published_pooled_text_is_escaped():
    import json
    import re

    import _hostile as H

    from meta.review.outputs.report import markdown_to_html

    tmp = _background.result("test_living:hostile_published_pooled")
    md = (tmp / "res" / "report.md").read_text(encoding="utf-8")
    assert not [ln for ln in md.splitlines() if re.match(r"^\s{0,3}#{1,6}\s+Fake heading", ln)]
    assert not [ln for ln in md.splitlines() if re.match(r"^\s*\|\s*(verdict|C99)\s*\|", ln)]
    html = markdown_to_html(md, title="t")
    assert H.injection_problems(html, "t") == []
    assert "AS PRINTED, NOT FLIPPED" in H.visible_text(html)
    assert json.loads((tmp / "run.json").read_text())["claims"]
