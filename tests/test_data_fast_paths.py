"""The data checks' fast paths report exactly what the cell-by-cell rules report.

``schema._clean_cells`` lets a row whose cells all pass skip the cell-by-cell schema checks, and
``data._suspect_outcome_rows`` lets an outcome row on which no rule can fire skip the per-row rules.
On copies of the bundled data with cells replaced at random (numbers out of range, signs against
``direction``, broken CIs, vocabulary misses, placeholders, formulas, invisible characters, repeated
keys, ...), every problem and its order must be the same with the fast paths as with every row
checked one by one; and the vectorised route masks equal ``candidate_routes`` row by row.
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

from meta.review.inputs import data as data_mod
from meta.review.inputs import schema
from meta.review.inputs.study_effects import ROUTES, _route_masks, candidate_routes, study_effects

DATA = Path(__file__).resolve().parent / "fixtures" / "review_data"

POOL = ["", "0", "-1", "+1", "1", "2", "3", "abc", "1e13", "nan", "NA", "0.5", "-0.3", "1.5", "100000",
        "0.0000000000000001", "1,5", "=x", "-x", "[not seen]", "post_vs_pre", "pfp_vs_control",
        "intervention_vs_control", "running", "averaged_across_tasks", "exhaustive_run_control_group",
        "<", "=", "t", "cohen_d", "hedges_g", "odds_ratio", "0.95", "95", "0.05", "deg", "x\u200by",
        "http://x.org/a", "10.1000/x", "prospective", "case-control", "update", "original"]


def _mutate(src: Path, dst: Path, rng: random.Random, n_cells: int) -> None:
    shutil.copytree(src, dst)
    for name in ("outcomes.csv", "studies.csv"):
        with open(dst / name, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        header, body = rows[0], rows[1:]
        for _ in range(n_cells):
            i, j = rng.randrange(len(body)), rng.randrange(len(header))
            if rng.random() < 0.3:  # a value of the same column from another row (repeats keys, units)
                body[i][j] = body[rng.randrange(len(body))][j]
            else:
                body[i][j] = rng.choice(POOL)
        if rng.random() < 0.3:
            body.append(list(body[rng.randrange(len(body))]))  # a repeated row
        with open(dst / name, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows([header] + body)


def _problems(folder: Path) -> list[str]:
    return [f"{p} [{p.severity}]" for p in data_mod.check_folder(folder).problems]


@pytest.mark.parametrize("seed", range(12))
def test_fast_paths_report_what_the_row_by_row_rules_report(seed, tmp_path, monkeypatch):
    rng = random.Random(seed)
    folder = tmp_path / "d"
    _mutate(DATA, folder, rng, n_cells=8 + 4 * seed)
    fast = _problems(folder)
    monkeypatch.setattr(schema, "_clean_cells", lambda table, specs, vocab: [(schema._DIRTY,)] * len(table.rows))
    monkeypatch.setattr(data_mod, "_suspect_outcome_rows", lambda table, parsed, studies: [True] * len(parsed))
    slow = _problems(folder)
    assert len(slow) > 0
    assert fast == slow


def test_route_masks_equal_candidate_routes_row_by_row():
    outcomes = pd.read_csv(DATA / "outcomes.csv", dtype=str, keep_default_na=False)
    rng = random.Random(7)
    cols = [c for c in outcomes.columns if c not in ("study_id", "source_url", "extraction_note")]
    for _ in range(120):  # blank cells at random: every route loses and gains rows
        outcomes.iat[rng.randrange(len(outcomes)), outcomes.columns.get_loc(rng.choice(cols))] = ""
    frame = outcomes.copy()
    for c in ("n1", "n2", "mean1", "sd1", "mean2", "sd2", "mean_diff", "p_value", "effect_size", "direction",
              "ci_low", "ci_high", "se"):
        frame[c] = pd.to_numeric(frame[c].replace("", float("nan")))
    masks = _route_masks({c: frame[c].to_numpy() for c in frame.columns}, len(frame))
    records = frame.to_dict("records")
    got = [[r for r in ROUTES if masks[r][i]] for i in range(len(frame))]
    expected = [[r for r in ROUTES if r in candidate_routes(rec)] for rec in records]
    assert got == expected
    assert sum(map(bool, expected)) > 10


@pytest.mark.parametrize("variance, r", [("revman", None), ("ls", 0.5)])
def test_study_effects_of_a_table_equal_each_row_alone(variance, r):
    """Routes are computed for many rows per meta.effects call; a call that refuses some rows must give
    every row the yi, vi, route, flags and reason it gets on its own (values out of range at random)."""
    outcomes = pd.read_csv(DATA / "outcomes.csv", dtype=str, keep_default_na=False)
    studies = pd.read_csv(DATA / "studies.csv", dtype=str, keep_default_na=False)
    rng = random.Random(11)
    bad = {"n1": ["1", "2.5"], "n2": ["1"], "sd1": ["0", "-2"], "sd2": ["0"], "p_value": ["0", "1.5"],
           "se": ["0", "-1"], "ci_low": ["5", "-100"], "ci_high": ["-5"], "ci_level": ["1.5", "0.9"],
           "p_operator": ["<", ">"], "direction": ["0", "2"], "mean_diff": ["0"], "effect_size": ["1e308"]}
    for _ in range(60):
        col = rng.choice(sorted(bad))
        outcomes.iat[rng.randrange(len(outcomes)), outcomes.columns.get_loc(col)] = rng.choice(bad[col])
    table = pd.concat([outcomes] * 3, ignore_index=True)  # the same rows again: groups of several rows
    whole = study_effects(table, studies, variance=variance, r=r)
    assert (whole["reason"].str.contains("refused")).sum() >= 6
    for i in range(len(outcomes)):
        alone = study_effects(table.iloc[[i]], studies, variance=variance, r=r)
        pd.testing.assert_frame_equal(whole.iloc[[i]].astype(object), alone.astype(object), check_exact=True)
