"""The registry of experiment kinds: a config's kind from its blocks, block ownership, the paths
the runner and `tailface reproduce` read from a kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailface.configs import shipped_configs
from tailface.errors import ConfigError
from tailface.evidence import cells
from tailface.experiment import ExperimentConfig
from tailface.experiment.config import known_blocks
from tailface.experiment.kinds import (
    ExperimentKind,
    KindBlock,
    block_owner,
    default_kind,
    kind_named,
    kind_of,
    kind_of_blocks,
    list_kinds,
    register_kind,
)
from tailface.yaml_config import unknown_key

BUILT_IN = ["name", "data", "model", "head", "train", "eval", "pretrain", "method"]


def test_the_two_built_in_kinds_and_their_layout():
    assert list_kinds()[:2] == ["baseline", "aggregate-and-disperse"]
    baseline, method = kind_named("baseline"), kind_named("aggregate-and-disperse")
    assert default_kind() is baseline
    assert (baseline.final, baseline.metrics, baseline.report) == ("train/final.pt", "eval/metrics.json", None)
    assert (method.final, method.metrics, method.report) == ("dispersion/final.pt", "eval/ours/metrics.json",
                                                             "report.md")
    assert not baseline.starts_from_base and method.starts_from_base
    with pytest.raises(ConfigError, match="unknown experiment kind 'nope'"):
        kind_named("nope")


def test_kind_of_follows_the_blocks():
    assert kind_of(ExperimentConfig.from_dict({})).name == "baseline"
    assert kind_of(ExperimentConfig.from_dict({"pretrain": {}})).name == "baseline"
    assert kind_of(ExperimentConfig.from_dict({"method": {}})).name == "aggregate-and-disperse"
    assert ExperimentConfig.from_dict({"method": None}).kind.name == "baseline"  # an empty block is no block
    assert kind_of_blocks(["data", "method"]).name == "aggregate-and-disperse"
    for name, path in shipped_configs().items():
        cfg = ExperimentConfig.load(path)
        expected = "baseline" if not name.startswith("method/") else \
            "subcenter-drop" if name.endswith("subcenter_drop") else \
            "semi-siamese" if name.endswith("sst") else "aggregate-and-disperse"
        assert cfg.kind.name == expected, name
        assert set(cfg.to_dict()) <= set(known_blocks()), name  # no key names the kind: the blocks do
        assert cfg.kind.first_stage(cfg) in ("base", "pretrain", "train")


def test_an_unknown_block_gives_the_same_error_as_before_the_registry():
    assert known_blocks()[:8] == BUILT_IN  # registered kinds append theirs
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict({"methdo": {}}, "W")
    assert str(info.value) == str(unknown_key("W", "methdo", known_blocks()))
    assert str(info.value).startswith("W: unknown key 'methdo'; did you mean 'method'? (valid keys: data, ")
    with pytest.raises(ConfigError, match="W: pretrain is a baseline block; the method has its own stages"):
        ExperimentConfig.from_dict({"pretrain": {}, "method": {}}, "W")


class _Claims(ExperimentKind):
    name = "test-claims-method"
    blocks = (KindBlock("method", dict, dict),)
    final = "x/final.pt"


def test_a_block_belongs_to_one_kind():
    before = list_kinds()
    with pytest.raises(ValueError, match="block 'method' belongs to the kind 'aggregate-and-disperse'"):
        register_kind(_Claims)

    class Common(_Claims):
        blocks = (KindBlock("train", dict, dict),)

    class Twice(_Claims):
        name = "baseline"
        blocks = ()

    class SecondDefault(_Claims):
        name, default, blocks = "test-second-default", True, ()

    with pytest.raises(ValueError, match="block 'train' is a block of every kind"):
        register_kind(Common)
    with pytest.raises(ValueError, match="'baseline' registered twice"):
        register_kind(Twice)
    with pytest.raises(ValueError, match="'baseline' is the default kind already"):
        register_kind(SecondDefault)
    assert list_kinds() == before and block_owner("method").name == "aggregate-and-disperse"


def test_reproduce_cells_read_their_layout_from_the_kind():
    root = Path("/results")
    assert cells.cell_kind("ours").name == "aggregate-and-disperse" and cells.cell_kind("ab").name == "baseline"
    assert cells.final_checkpoint(root, "ours", 2) == root / "cells" / "ours" / "seed2" / "dispersion" / "final.pt"
    assert cells.metrics_path(root, "ours", 2) == root / "cells" / "ours" / "seed2" / "eval" / "ours" / "metrics.json"
    assert cells.final_checkpoint(root, "ab-abcd", 0) == root / "cells" / "ab-abcd" / "seed0" / "train" / "final.pt"
    assert cells.metrics_path(root, "arcface", 0) == root / "cells" / "arcface" / "seed0" / "eval" / "metrics.json"
    assert cells.dependencies("ours") == ["ab"] and cells.dependencies("ours-base-abcd") == ["abcd"]
    assert cells.dependencies("arcface-s32-m0.2") == [] and cells.dependencies("ab") == []
