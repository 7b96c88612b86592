"""`tailface reproduce` on tiny synthetic data: cells on the one runner, seed accumulation, tables."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tailface.cli.main import main
from tailface.evidence import cells, tables
from tailface.evidence.cells import Profile
from tailface.evidence.reproduce import needed_models, reproduce
from tailface.evidence.targets import get_target, parse_names, target_names
from tailface.evidence.targets.registry import Inputs
from tailface.evidence.targets.tune import ON_HELDOUT, on_heldout
from tailface.experiment import ExperimentConfig

TINY = {"family": "synthetic", "data": "synthetic",
        "overrides": {"data": {"options": {"num_identities": 40, "image_size": 16, "max_images": 30},
                               "groups": {"a": 21, "b": 10, "c": 4}},
                      "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
                      "train": {"max_steps": 2, "progress": False, "num_workers": 0}}}


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("# a tiny test profile\n" + yaml.safe_dump(TINY))
    return Profile.load(str(path))


def test_a_profile_with_an_unknown_key_is_refused(tmp_path):
    from tailface.errors import ConfigError

    path = tmp_path / "typo.yaml"
    path.write_text("famly: synthetic\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'famly'; did you mean 'family'\? "
                                          r"\(valid keys: data, family, overrides\)"):
        Profile.load(str(path))


def test_every_cell_config_validates(profile, tmp_path):
    bases = sorted({d for model in cells.MODELS for d in cells.dependencies(model)})
    assert {"ab", "abcd", "ab@split", "ab@long"} <= set(bases)
    for seed in (0, 1):
        for base_model in bases:  # a base cell's checkpoint must exist before an "ours" cell is configured
            base = cells.final_checkpoint(tmp_path, base_model, seed)
            base.parent.mkdir(parents=True)
            base.write_bytes(b"")
    for model in cells.MODELS:
        doc = cells.cell_config(profile, model, 1, tmp_path, fig3_sizes=(10, 100))
        cfg = ExperimentConfig.from_dict(doc, model)
        assert cfg.seed == 1 and doc["name"] == f"{model}-seed1"
        if model in cells.METHOD_MODELS:
            base = cells.VARIANTS[model].base if model in cells.VARIANTS else cells.dependencies(model)[0]
            assert cfg.method is not None and cfg.method.base == str(cells.final_checkpoint(tmp_path, base, 1))


def test_a_variant_changes_only_its_settings(profile, tmp_path):
    for base_model in ("ab", "abcd"):
        path = cells.final_checkpoint(tmp_path, base_model, 0)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
    arc = cells.cell_config(profile, "arcface", 0, tmp_path)
    small_margin = cells.cell_config(profile, "arcface-s32-m0.2", 0, tmp_path)
    assert small_margin["head"] == {**arc["head"], "s": 32.0, "m": 0.2}
    assert {k: v for k, v in small_margin.items() if k not in ("head", "name")} == \
        {k: v for k, v in arc.items() if k not in ("head", "name")}
    batch = cells.cell_config(profile, "ours-batch", 0, tmp_path)
    ours = cells.cell_config(profile, "ours", 0, tmp_path)
    assert batch["method"]["mode"] == "batch" and ours["method"]["mode"] != "batch"
    assert cells.dependencies("ours-base-abcd") == ["abcd"] and cells.dependencies("arcface-s32-m0.2") == []
    assert needed_models(["probes"]).index("abcd") < needed_models(["probes"]).index("ours-base-abcd")


def test_a_cell_trained_with_other_settings_is_refused(profile, tmp_path):
    from tailface.errors import ConfigError
    from tailface.evidence.reproduce import run_cell

    torch.set_num_threads(1)
    out = tmp_path / "repro"
    run_cell(profile, out, None, None, 1, "ab", 0)
    config = cells.cell_dir(out, "ab", 0) / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.1", "lr: 0.2"))  # as if the shipped config were retuned
    with pytest.raises(ConfigError, match="different experiment"):
        run_cell(profile, out, None, None, 1, "ab", 0)


def test_tuning_marks_the_best_development_score(tmp_path):
    import json

    from tailface.evidence import tables

    def write(model, seed, dev, test):
        path = cells.metrics_path(tmp_path, model, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {"vr_far_0.1%": {"mean": test, "std": 0.01}, "dir_far_1%_rank1": {"mean": test / 2, "std": 0.0}}
        path.write_text(json.dumps({"blufr": {"report": report, "development": {"vr_far_0.1%": dev}}}))

    grid = cells.TUNED["ArcFace"]
    for seed in (0, 1, 2):
        write(grid[0], seed, 0.01 + 0.001 * seed, 0.9)   # best on the test trials, worst on development
        write(grid[1], seed, 0.30 + 0.01 * seed, 0.2)     # best on development: chosen
        write(grid[2], seed, 0.20 - 0.01 * seed, 0.5)
    text = tables.variants_table(tables.Results(tmp_path, [0, 1, 2]), grid[0], grid)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()[2:]}
    assert "**(best dev)**" in rows[grid[1] + " **(best dev)**"] and sum("best dev" in r for r in rows.values()) == 1
    # dev difference grid[1] - grid[0] = 0.29 + 0.009 * seed: mean 29.90, t-interval 29.90 +- 4.303 * 0.9 / sqrt(3)
    assert "+29.90 [+27.66, +32.14] (n=3)" in rows[grid[1] + " **(best dev)**"] and "| holds |" in text
    assert "| - | - | - |" in rows[grid[3]]  # a setting not run yet: empty cells, never filled in
    # the best against each setting: grid[1] - grid[2] on dev = 0.10 + 0.02 * seed: 12.00 +- 4.303 * 2 / sqrt(3)
    assert rows[grid[2]].endswith("| +12.00 [+7.03, +16.97] (n=3) | holds |")
    assert rows[grid[1] + " **(best dev)**"].endswith("| (best) |  |")
    numbers = tables.variants_numbers(tables.Results(tmp_path, [0, 1, 2]), grid[0], grid)
    assert numbers["models"][grid[2]]["best_minus_this"]["mean"] == pytest.approx(0.12)
    assert numbers["models"][grid[1]]["best_minus_this"] is None


def test_held_out_identities_are_the_development_data_where_a_cell_has_them(tmp_path):
    """A ``cpu-heldout`` cell is scored on its held-out training identities (the selection score),
    BLUFR being its test; a BLUFR-only cell keeps BLUFR's development split; the tune page says which."""
    blufr = {"report": {"vr_far_0.1%": {"mean": 0.2, "std": 0.0}, "dir_far_1%_rank1": {"mean": 0.05, "std": 0.0}},
             "development": {"vr_far_0.1%": 0.11}}
    both = {"blufr": blufr, "heldout": {"vr_far_0.1%": 0.33, "dir_far_1%_rank1": 0.04}}
    assert tables.DEV.get(both) == 0.33 and tables.DEV.get({"blufr": blufr}) == 0.11
    assert tables.METRICS[0].get(both) == 0.2  # the test figure stays BLUFR's
    grid = cells.TUNED["ArcFace"]
    path = cells.metrics_path(tmp_path, grid[0], 0)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"blufr": blufr}))
    inputs = Inputs(tables.Results(tmp_path, [0]), None, None, tmp_path)
    assert not on_heldout(inputs)
    path.write_text(json.dumps(both))
    assert on_heldout(inputs) and "held-out training identities" in ON_HELDOUT
    profile = Profile.load("cpu-heldout")
    doc = cells.cell_config(profile, "arcface-s32-m0.35", 1, tmp_path)
    assert doc["data"]["holdout"] == {"fraction": 0.2, "seed": 0, "min_images": 2}
    assert doc["eval"]["protocols"] == ["heldout", "blufr"] and doc["head"]["s"] == 32.0


def test_targets_and_shared_models():
    from tailface.errors import ConfigError

    assert parse_names("all") == target_names() and parse_names("table2, fig2") == ["table2", "fig2"]
    for name in target_names():  # every target has its models, title, writer; its claims compare its models
        target = get_target(name)
        assert target.name == name and target.title and callable(target.write)
        assert all(m in cells.MODELS for m in target.models)
        assert all(c.a in target.models and c.b in target.models for c in target.claims)
    with pytest.raises(ConfigError, match=r"unknown reproduce target \['table9'\]; choose among table1, .*, all"):
        parse_names("table2,table9")


def test_the_command_line_names_the_targets_without_loading_them(capsys):
    import subprocess
    import sys

    assert main(["reproduce", "table9", "--report-only"]) == 2
    assert "tailface reproduce: error: unknown reproduce target ['table9']; choose among table1, fig1" in \
        capsys.readouterr().err
    check = ("import sys; from tailface.cli.main import build_parser; build_parser(); "
             "assert 'tailface.evidence.targets' not in sys.modules and 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", check]).returncode == 0  # every start stays light: no torch
    order = needed_models(["table2", "table3"])
    assert order.count("abcd") == 1 and order.count("ab") == 1  # trained once for both tables
    assert order.index("ab") < order.index("ours") and order.index("ab") < order.index("arcface-ours")


def test_seeds_accumulate_and_tables_are_written(profile, tmp_path, capsys, monkeypatch):
    torch.set_num_threads(1)
    out = tmp_path / "repro"
    reproduce(["table2", "fig2"], profile, 1, out)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("final.pt")}
    text = (out / "table2.md").read_text()
    assert "| AB | " in text and "96.62" in text and "one seed" in text
    assert main(["reproduce", "table2,fig2", "--profile", str(tmp_path / "tiny.yaml"), "--seeds", "2",
                 "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # seed 0 not retrained
    assert cells.final_checkpoint(out, "ours", 1).is_file() and cells.final_checkpoint(out, "abcd", 1).is_file()
    text = (out / "table2.md").read_text()
    assert "(n=2)" in text and any(v in text for v in ("holds", "reversed", "within noise"))
    data = json.loads((out / "table2.json").read_text())  # the page's numbers beside it, as data
    vr = data["models"]["ab"]["metrics"]["VR@FAR=0.1%"]
    assert vr["n"] == 2 and vr["paper_percent"] == 96.62 and vr["seeds"] == {
        str(s): tables.METRICS[0].get(json.loads(cells.metrics_path(out, "ab", s).read_text())) for s in (0, 1)}
    claim = data["claims"][0]
    assert (claim["claim"], claim["metric"]) == ("AB > ABCD (the tail hurts softmax)", "VR@FAR=0.1%")
    assert f"| {claim['claim']} | VR@FAR=0.1% | {100 * claim['mean']:+.2f} [{100 * claim['low']:+.2f}, " \
           f"{100 * claim['high']:+.2f}] (n=2) | {claim['verdict']} |" in text
    assert (out / "fig2.png").is_file() and "ABCD softmax (n=2)" in (out / "fig2.md").read_text()
    assert "skipped" in capsys.readouterr().err
    reproduce(["superclasses"], profile, 2, out, train=False)  # measured on the ours cells just trained
    text = (out / "superclasses.md").read_text()
    assert "| Ours | C |" in text and "(n=2)" in text and "scikit-learn is not installed" not in text
    monkeypatch.setattr("tailface.evidence.superclasses._sklearn_inertia", lambda *args: None)  # as without it
    reproduce(["superclasses"], profile, 2, out, train=False)
    assert "scikit-learn is not installed here" in (out / "superclasses.md").read_text()


def test_report_only_trains_nothing(profile, tmp_path):
    out = tmp_path / "repro"
    reproduce(["table2"], profile, 2, out, train=False)
    assert not (out / "cells").exists()
    text = (out / "table2.md").read_text()
    assert "| AB | - | 96.62 |" in text and "no paired seeds" in text
    data = json.loads((out / "table2.json").read_text())
    assert data["target"] == "table2" and data["seeds"] == [0, 1] and data["cells"]["finished"] == 0
    assert data["models"]["ab"]["metrics"]["VR@FAR=0.1%"] == {"seeds": {}, "n": 0, "mean": None, "std": None,
                                                             "paper_percent": 96.62}  # nan written as null
    assert {c["verdict"] for c in data["claims"]} == {"not run yet"} and len(data["claims"]) == 4


def test_only_trains_the_named_models_and_their_base(profile, tmp_path):
    from tailface.errors import ConfigError

    torch.set_num_threads(1)
    out = tmp_path / "repro"
    reproduce(["table3"], profile, 1, out, only=["ours"])
    trained = sorted(p.name for p in (out / "cells").iterdir())
    assert trained == ["ab", "ours"]  # ours and its base model, nothing else of Table 3
    assert "| ABCD | - |" in (out / "table3.md").read_text()
    with pytest.raises(ConfigError, match="not a model of table3"):
        reproduce(["table3"], profile, 1, out, only=["sweep-C25"])


def test_cells_train_at_once_after_their_base_model(profile, tmp_path, capsys):
    import json

    from tailface.evidence.parallel import threads_per_job

    out = tmp_path / "repro"
    reproduce(["table2", "fig2"], profile, 1, out, jobs=2)
    models = needed_models(["table2", "fig2"])
    for model in models:
        assert cells.final_checkpoint(out, model, 0).is_file()
        assert f"{model} seed 0: -> " in (out / "logs" / f"{model}-seed0.log").read_text()  # its output went there
        record = json.loads((cells.cell_dir(out, model, 0) / "cell.json").read_text())
        assert record["cells_at_once"] == 2 and record["threads"] == threads_per_job(2)
    err = capsys.readouterr().err
    assert err.index("ab seed 0: finished") < err.index("ours seed 0: started")  # the method waits for its base
    text = (out / "table2.md").read_text()
    assert "| AB | " in text and f"4 cells, {threads_per_job(2)} torch thread(s) each, 2 at once" in text
    assert f"trained at commit {record['commit']}" in text  # every cell of this run at one commit


def test_a_failing_cell_stops_the_others_and_names_itself(profile, tmp_path):
    from tailface.errors import ConfigError
    from tailface.evidence.reproduce import cell_experiment

    out = tmp_path / "repro"
    folder, cfg = cell_experiment(profile, out, None, None, "abcd", 0)
    (folder / "train").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))  # this very cell ...
    (folder / "train" / "last.pt").write_bytes(b"not a checkpoint")  # ... interrupted, its checkpoint damaged
    with pytest.raises(ConfigError, match=r"abcd seed 0 failed: .*last.pt.*rerun the same command"):
        reproduce(["table2"], profile, 1, out, jobs=2)
    with pytest.raises(ConfigError, match="abcd seed 0 failed: .*different experiment"):  # refused in its process
        (folder / "config.yaml").write_text(yaml.safe_dump({"name": "another experiment"}))
        reproduce(["table2"], profile, 1, out, jobs=2)


def test_the_losses_target_trains_the_class_count_aware_losses(profile, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "repro"
    reproduce(["losses"], profile, 1, out, only=["logit-adjusted", "ldam-drw"])  # the shipped configs, tiny
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["ldam-drw", "logit-adjusted"]
    heads = {m: yaml.safe_load((cells.cell_dir(out, m, 0) / "config.yaml").read_text())["head"]["name"]
             for m in ("logit-adjusted", "ldam-drw")}
    assert heads == {"logit-adjusted": "logit_adjusted", "ldam-drw": "ldam"}
    text = (out / "losses.md").read_text()
    assert text.startswith("# Class-count-aware losses: logit-adjusted softmax and LDAM-DRW")
    assert "has no figures for these two losses" in text and "| claim (ours, not the paper's) |" in text
    data = json.loads((out / "losses.json").read_text())
    for model, label in (("logit-adjusted", "Logit-adjusted"), ("ldam-drw", "LDAM-DRW")):
        vr = data["models"][model]["metrics"]["VR@FAR=0.1%"]
        assert vr["paper_percent"] is None and vr["n"] == 1
        assert f"| {label} | {100 * vr['mean']:.2f} (1 seed) | - |" in text  # the paper column: -
    assert "| ABCD | - | 96.50 |" in text  # not trained here: shown empty, never filled in
    assert [(c["a"], c["b"]) for c in data["claims"]][::2] == [
        ("logit-adjusted", "abcd"), ("logit-adjusted", "ours"), ("ldam-drw", "abcd"), ("ldam-drw", "ours")]


def test_the_losses_claims_have_paired_intervals(profile, tmp_path):
    def write(model, seed, vr):
        path = cells.metrics_path(tmp_path, model, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {"vr_far_0.1%": {"mean": vr, "std": 0.01}, "dir_far_1%_rank1": {"mean": vr / 2, "std": 0.0}}
        path.write_text(json.dumps({"blufr": {"report": report}}))

    for seed in (0, 1, 2):
        write("abcd", seed, 0.20)
        write("ours", seed, 0.20 + 0.01 * seed)
        write("logit-adjusted", seed, 0.21 + 0.01 * seed)  # above ABCD by 1, 2, 3 points
        write("ldam-drw", seed, 0.10)
    reproduce(["losses"], profile, 3, tmp_path, train=False)
    text = (tmp_path / "losses.md").read_text()
    # differences 1, 2, 3 points: mean 2, sd 1, interval 2 +- 4.302653 / sqrt(3) = [-0.48, +4.48]
    assert "| logit-adjusted > ABCD | VR@FAR=0.1% | +2.00 [-0.48, +4.48] (n=3) | within noise |" in text
    assert "| logit-adjusted > ours | VR@FAR=0.1% | +1.00 [+1.00, +1.00] (n=3) | holds |" in text
    assert "| LDAM-DRW > ours | DIR@FAR=1% |" in text and "| reversed |" in text
    claims = {(c["claim"], c["metric"]): c for c in json.loads((tmp_path / "losses.json").read_text())["claims"]}
    ldam = claims[("LDAM-DRW > ABCD", "VR@FAR=0.1%")]
    assert ldam["verdict"] == "reversed" and ldam["mean"] == pytest.approx(-0.10) and ldam["n"] == 3
