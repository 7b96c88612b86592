"""Issue 24 item 7: the headline job's report says that one seed orders nothing, ranks the models of
its seed from the numbers (no ordering written in advance), points to ``study`` / ``reproduce``;
its metric tables on stdout are titled with the model."""

from __future__ import annotations

import torch
import yaml
from tests.robustness._helpers import TINY_DATA, TINY_MODEL, TINY_TRAIN

from tailface.cli.main import main
from tailface.experiment import ExperimentConfig
from tailface.experiment.report import seed_ranking, seed_section, tail_norms_finding


def synthetic_metrics(ours: float, base: float, abcd: float) -> dict:
    """The ``synthetic`` protocol's result for three models, the same figure on its three metrics."""
    def doc(v):
        return {"synthetic": {"vr_far_0.1%": v, "vr_far_1%": v + 0.3, "dir_far_1%_rank1": v - 0.1}}
    return {"ours": doc(ours), "base": doc(base), "abcd": doc(abcd)}


def test_the_ranking_follows_the_numbers_whatever_they_are():
    low = seed_ranking(synthetic_metrics(0.40, 0.55, 0.57))
    assert low[0] == "- synthetic VR@FAR=0.1%: abcd 57.00 > base 55.00 > ours 40.00 (ours 3 of 3)"
    assert len(low) == 3 and all(line.endswith("(ours 3 of 3)") for line in low)
    high = seed_ranking(synthetic_metrics(0.60, 0.55, 0.57))
    assert high[2] == "- synthetic DIR@FAR=1%,rank1: ours 50.00 > abcd 47.00 > base 45.00 (ours 1 of 3)"
    tied = seed_ranking(synthetic_metrics(0.55, 0.55, 0.57))
    assert tied[0] == "- synthetic VR@FAR=0.1%: abcd 57.00 > ours 55.00 = base 55.00 (ours tied 2 of 3)"
    alone = seed_ranking({"ours": synthetic_metrics(0.4, 0.5, 0.6)["ours"]})
    assert alone == []  # one model: nothing to rank


def test_the_section_says_one_seed_orders_nothing_and_names_the_commands_with_seeds():
    cfg = ExperimentConfig.from_dict({"train": {"seed": 3}, "method": {}})
    text = "\n".join(seed_section(cfg, synthetic_metrics(0.40, 0.55, 0.57)))
    assert "one seed (train.seed 3): this table orders nothing" in text
    assert "`tailface study synthetic --seeds 3`" in text and "`tailface reproduce table3 --seeds 3`" in text
    assert "ours 3 of 3" in text and "95% interval" in text


def test_the_row_norm_finding_is_computed_not_claimed():
    smaller = {"ABCD softmax": {g: {"mean": m} for g, m in zip("ABCD", (9.0, 8.0, 5.0, 4.0))}}
    larger = {"ABCD softmax": {g: {"mean": m} for g, m in zip("ABCD", (4.0, 5.0, 8.0, 9.0))}}
    assert tail_norms_finding(smaller) == "ABCD softmax: tail rows smaller (mean norm C/D 5/4 vs A/B 9/8)"
    assert tail_norms_finding(larger) == "ABCD softmax: tail rows not all smaller (mean norm C/D 8/9 vs A/B 4/5)"


def test_run_titles_its_tables_on_stdout_and_its_report_tells_the_truth(tmp_path, capsys):
    doc = {"name": "tiny-method", "data": TINY_DATA, "model": TINY_MODEL, "head": {"name": "softmax"},
           "train": TINY_TRAIN, "method": {"budget": 2, "evaluate": ["ours", "base"]},
           "eval": {"protocols": ["synthetic"], "batch_size": 256}}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(doc))
    torch.set_num_threads(1)
    assert main(["run", str(config), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    ours, base = out.index(f"model ours ({tmp_path / 'o' / 'dispersion' / 'final.pt'}):"), out.index("model base (")
    assert "VR@FAR=0.1%" in out[ours:base] and "VR@FAR=0.1%" in out[base:]  # each table under its model's title
    assert "note: one run, one seed (train.seed 0)" in out and "tailface study" in out
    report = (tmp_path / "o" / "report.md").read_text()
    assert "this table orders nothing" in report and "> Note: one run, one seed" in report
    assert "`tailface study " in report and "`tailface reproduce table3 --seeds 3`" in report
    assert "On this seed only, highest first:" in report and "(ours " in report
    assert "Here, on this seed: ours (dispersion): tail rows " in report  # the models this run trained, measured
