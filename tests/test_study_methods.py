"""`tailface study --methods` (issue 21, item 7): the rows of the methods table trained with seeds on the
user's data beside the study's own cells, and a recommendation that ends the page: the best method
with its paired interval against ABCD, or "nothing beats plain softmax here beyond noise". The rule
is tested on hand-made per-seed tables; one tiny `--methods all --seeds 2` study runs once for the
module (:func:`studied`)."""

from __future__ import annotations

import io
import json
import math
import re
import time
from contextlib import redirect_stderr

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats
from tests.study_run import run_study

from tailface.cli.main import main
from tailface.evidence import cells
from tailface.evidence import study_recommendation as rule
from tailface.evidence.methods import Method
from tailface.evidence.reproduce import needed_models
from tailface.evidence.stats import NOISE, ONE_SEED
from tailface.evidence.study import STUDY_TARGETS
from tailface.evidence.study_methods import method_names, parse_methods
from tailface.evidence.study_recommendation import recommend

TINY = {"data": {"options": {"num_identities": 40, "image_size": 16, "max_images": 30}},
        "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
        "train": {"max_steps": 2, "batch_size": 8}}
VR, DIR = "VR@FAR=0.1%", "DIR@FAR=1%"


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """``tailface study synthetic --profile tiny.yaml --methods all --seeds 2 --no-progress --out OUT``
    run once: (OUT, its stderr)."""
    out, err, _ = run_study(tmp_path_factory.mktemp("study-methods"), TINY, "--methods", "all", "--seeds", "2",
                            "--no-progress")
    return out, err


def test_methods_all_trains_every_row_with_seeds_and_ends_with_the_recommendation(studied):
    out, log = studied
    models = needed_models(list(STUDY_TARGETS), method_names())
    assert set(method_names()) <= set(models)
    n = 2 * len(models)
    assert f"{len(models)} models x 2 seeds = {n} cells" in log and f"0 finished, {n} to train" in log  # the plan
    assert re.search(rf"estimated .+ for the {n} cells to train", log)
    assert f"cell {n} of {n}: finished in" in log and f"{n} of {n} done, all cells trained" in log  # progress
    for model in method_names():
        for seed in (0, 1):
            assert cells.metrics_path(out, model, seed).is_file(), (model, seed)
    config = yaml.safe_load((cells.cell_dir(out, "adaface", 1) / "config.yaml").read_text())
    assert config["train"]["progress"] is False  # --no-progress
    text = (out / "study.md").read_text()
    assert f"--methods all --out {out}`" in text.splitlines()[2]  # the command that rewrites the page
    recommendation = text[text.index("## Recommendation"):]
    assert "\n## " not in recommendation[3:]  # the page ends with it
    assert rule.RULE in recommendation


def test_the_json_recommendation_matches_the_page(studied):
    out, _ = studied
    text = (out / "study.md").read_text()
    doc = json.loads((out / "study.json").read_text())
    rec = doc["recommendation"]
    assert rec["outcome"] in (rule.RECOMMEND, rule.NONE) and rec["metrics"] == [VR, DIR] and rec["ranked_by"] == DIR
    assert rec["text"] in text
    nothing = rec["outcome"] == rule.NONE
    assert (rule.NOTHING in rec["text"]) == nothing and (rec["best"] is None) == nothing
    assert doc["methods"] == list(method_names())
    compared = {m["model"]: m for m in rec["methods"]}
    assert set(compared) == set(method_names()) - {"abcd"}
    for row in rec["methods"]:
        assert row[VR]["n"] == row[DIR]["n"] == 2
        standing = f"**{row['standing']}**" if row["model"] == rec["best"] else row["standing"]
        section = text[text.index("## Recommendation"):].splitlines()
        line = next(line for line in section if line.startswith(f"| {row['label']} | "))
        assert line.endswith(f" | {standing} |"), line
        assert f"{100 * row[DIR]['mean']:+.2f} [{100 * row[DIR]['low']:+.2f}, {100 * row[DIR]['high']:+.2f}]" in line
    assert sorted(rec["beats_abcd"]) == sorted(m for m, row in compared.items() if row["standing"] == rule.BEATS)


def test_a_second_run_trains_nothing(studied):
    out, _ = studied
    profile = out.parent / "tiny.yaml"
    err = io.StringIO()
    with redirect_stderr(err):
        assert main(["study", "synthetic", "--profile", str(profile), "--methods", "all", "--seeds", "2",
                     "--no-progress", "--out", str(out)]) == 0
    assert " to train" in err.getvalue() and ": started;" not in err.getvalue()
    assert re.search(r"(\d+) finished, 0 to train", err.getvalue())


# -- the rule, on hand-made per-seed tables --------------------------------------------------------------------------

def row(model: str) -> Method:
    return Method(model, model.upper(), "-", "-", "-")


def table(reference: dict[str, list[float]], gains: dict[str, dict[str, list[float]]]) -> dict:
    """Per-seed values: ABCD's, and each method's as ABCD's plus its per-seed gains."""
    values = {"abcd": {m: dict(enumerate(v)) for m, v in reference.items()}}
    for model, by_metric in gains.items():
        values[model] = {m: {s: reference[m][s] + g for s, g in enumerate(d)} for m, d in by_metric.items()}
    return values


ABCD3 = {VR: [0.50, 0.52, 0.51], DIR: [0.30, 0.31, 0.29]}


def test_a_clear_winner_is_the_largest_dir_gain_among_those_beating_abcd_on_both_metrics():
    gains = {
        "x": {VR: [0.05, 0.06, 0.055], DIR: [0.04, 0.05, 0.045]},  # beats ABCD on both
        "w": {VR: [0.10, 0.11, 0.105], DIR: [0.02, 0.021, 0.019]},  # beats on both: larger VR gain, smaller DIR gain
        "y": {VR: [0.03, 0.031, 0.029], DIR: [0.20, -0.05, 0.30]},  # the largest mean DIR gain, but within noise
        "z": {VR: [0.01, -0.01, 0.0], DIR: [0.01, -0.02, 0.0]},  # within noise on both
        "v": {VR: [0.30], DIR: [0.30]},  # one seed only: no interval
    }
    rec = recommend(table(ABCD3, gains), [row(m) for m in ("abcd", *gains)])
    assert rec.outcome == rule.RECOMMEND and rec.best is not None and rec.best.model == "x"
    assert {c.model: c.standing for c in rec.comparisons} == {"x": rule.BEATS, "w": rule.BEATS, "y": rule.ONE_METRIC,
                                                               "z": NOISE, "v": ONE_SEED}
    d = np.array(gains["x"][DIR], dtype=np.float64)  # the interval: a naive float64 t-interval
    half = scipy_stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    got = rec.best.diffs[DIR]
    assert got.mean == pytest.approx(d.mean(), abs=1e-12) and got.low == pytest.approx(d.mean() - half, abs=1e-12)
    text = rec.sentence("RERUN")
    assert text.startswith("**Recommendation: X.**") and "Also beyond noise: W" in text and rule.NOTHING not in text
    assert f"{DIR} {got.text()}" in text
    data = rec.data("RERUN")
    assert data["best"] == "x" and data["beats_abcd"] == ["x", "w"] and data["outcome"] == rule.RECOMMEND


def test_nothing_beats_plain_softmax_when_no_method_clears_both_metrics():
    abcd = {VR: [0.50, 0.52], DIR: [0.30, 0.31]}
    gains = {
        "d": {VR: [-0.05, -0.0501], DIR: [0.05, 0.0501]},  # metrics disagree: DIR above 0, VR below
        "e": {VR: [0.05, 0.0501], DIR: [0.2, -0.1]},  # VR above 0, DIR within noise
        "f": {VR: [-0.05, -0.0501], DIR: [0.01, -0.01]},  # worse on VR
    }
    rec = recommend(table(abcd, gains), [row(m) for m in ("abcd", *gains)])
    assert rec.outcome == rule.NONE and rec.best is None
    assert [c.standing for c in rec.comparisons] == [rule.DISAGREE, rule.ONE_METRIC, rule.WORSE]
    text = "\n".join(rec.markdown("RERUN"))
    assert f"**Recommendation: {rule.NOTHING}.**" in text and "with 2 seeds" in text and "`RERUN`" in text
    assert "Better on one metric only, so not recommended: D (metrics disagree), E (one metric only)" in text
    for c in rec.comparisons:  # every interval listed
        assert f"| {c.label} | {c.diffs[VR].text()} | {c.diffs[DIR].text()} | {c.standing} |" in text
    assert rec.data("RERUN")["best"] is None and rec.data("RERUN")["outcome"] == rule.NONE


def test_one_seed_recommends_nothing():
    abcd = {VR: [0.50], DIR: [0.30]}
    gains = {"x": {VR: [0.40], DIR: [0.50]}, "y": {VR: [0.01], DIR: [0.01]}}
    rec = recommend(table(abcd, gains), [row(m) for m in ("abcd", *gains)])
    assert rec.outcome == rule.ONE and rec.best is None
    text = rec.sentence("RERUN")
    assert text.startswith("**Nothing can be recommended with one seed**") and rule.NOTHING not in text
    assert "| X | +40.00 (1 seed, no interval) | +50.00 (1 seed, no interval) | one seed |" in rec.table()


# -- the option ------------------------------------------------------------------------------------------------------

def test_methods_names_the_rows_of_the_methods_table():
    assert parse_methods("all") == method_names()
    assert parse_methods(" arcface, abcd") == ("abcd", "arcface")  # the table's order


def test_an_unknown_method_is_one_line_naming_the_known_ones_before_any_work(tmp_path, capsys):
    start = time.perf_counter()
    assert main(["study", "synthetic", "--methods", "arcface,nope", "--out", str(tmp_path / "o")]) == 2
    assert time.perf_counter() - start < 30
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1
    assert err[0] == (f"tailface study: error: --methods nope: unknown method; choose among "
                      f"{', '.join(method_names())}, or all")
    assert not (tmp_path / "o").exists()


def test_the_flags_reach_the_study(tmp_path, monkeypatch):
    seen = {}

    def study(data, profile, seeds, out, **kwargs):
        seen.update(kwargs, data=data, seeds=seeds)
        return out / "study.md"

    monkeypatch.setattr("tailface.evidence.study.study", study)
    last, first = method_names()[-1], method_names()[0]
    assert main(["study", "synthetic", "--methods", f"{last},{first}", "--accept-changed-inputs", "--no-progress",
                 "--jobs", "2", "--out", str(tmp_path / "o")]) == 0
    assert seen["methods"] == (first, last) and seen["accept_changed"] is True
    assert seen["progress"] is False and seen["jobs"] == 2
