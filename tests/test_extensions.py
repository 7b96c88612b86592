"""The worked examples of docs/architecture.md: a margin head, a protocol, a dataset format, a
head that uses class counts, an experiment kind and a reproduce target, each one new piece of code
plus one registration, used through the ordinary entry points."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from tailface.cli.main import main
from tailface.data import open as data_open
from tailface.data.faceset import InMemoryFaceSet
from tailface.data.label_space import ClassStats
from tailface.data.open import Format, accepted_specs, open_faceset
from tailface.data.synthetic import synthetic_faceset
from tailface.eval import api
from tailface.eval.features import save_features
from tailface.eval.protocols import Features, Protocol, register_protocol
from tailface.evidence import tables
from tailface.evidence.targets import Claim, Inputs, Report, Target, parse_names, register_target
from tailface.experiment import ExperimentConfig, run_experiment
from tailface.heads.base import HeadOutput, register_head
from tailface.heads.margin_head import MarginHead
from tailface.heads.margins import Margin, margin_logits, register_margin
from tailface.heads.softmax import SoftmaxHead
from tailface.heads.spec import HeadSpec
from tailface.method.dispersion import DispersionHead
from tailface.train import load_checkpoint, load_head
from test_reproduce import TINY as TINY_PROFILE  # the tiny profile of tests/test_reproduce.py


# -- a margin head: "additive angular + cosine" margin, target cos(theta + m) - 0.1 ---------------
@register_margin("example-combined")
def _combined(cos: torch.Tensor, m: float, easy_margin: bool) -> torch.Tensor:
    theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    return torch.cos(theta + m) - 0.1


EXAMPLE_MARGIN = Margin("example-combined", scale=32.0, value=0.3)


@register_head("example-combined", margin=EXAMPLE_MARGIN)
def _combined_head(embedding_size: int, num_classes: int, s: float = EXAMPLE_MARGIN.scale,
                   m: float = EXAMPLE_MARGIN.value) -> torch.nn.Module:
    return MarginHead(embedding_size, num_classes, "example-combined", s, m)


def test_a_registered_margin_head_trains_and_disperses():
    spec = HeadSpec.from_block({"name": "example-combined", "m": 0.25})
    assert spec.margin == Margin("example-combined", 32.0, 0.25)
    head = _combined_head(4, 3, m=0.25).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    out = head(x, y)
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(head.weight, dim=1).t()
    theta = torch.acos(cos[torch.arange(5), y])
    expected = (cos * 32).index_put((torch.arange(5), y), 32 * (torch.cos(theta + 0.25) - 0.1))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(expected, y))
    torch.testing.assert_close(margin_logits(cos, y, "example-combined", 32, 0.25), expected)
    # the method accepts it, and its dispersion head applies the same margin
    ExperimentConfig.from_dict({"head": {"name": "example-combined"}, "method": {}})
    disp = DispersionHead(4, 2, np.array([0, 0]), margin=spec.margin)
    assert torch.isfinite(disp(torch.randn(3, 4), torch.tensor([0, 2, 3])).loss)


# -- a protocol: mean L2 norm of the features of the synthetic evaluation set ---------------------
def _mean_norm(features: Features, options) -> dict:
    return {"mean_norm": float(np.linalg.norm(features.features, axis=1).mean())}


register_protocol(Protocol("example-mean-norm", "synthetic", _mean_norm,
                           summary=lambda m: [("mean feature norm", f"{100 * m['mean_norm']:.2f}")]))


def test_a_registered_protocol_runs_through_evaluate_features(tmp_path):
    x = np.array([[3.0, 4.0], [0.0, 1.0]], dtype=np.float32)
    save_features(tmp_path / "f.npz", x, ["a", "b"], [0, 1])
    metrics = api.evaluate_features(tmp_path / "f.npz", "example-mean-norm", tmp_path / "out", plots=True)
    assert metrics["example-mean-norm"]["mean_norm"] == pytest.approx(3.0)
    assert ("example-mean-norm", "mean feature norm", "300.00") in api.summary_rows(metrics)
    ExperimentConfig.from_dict({"eval": {"protocols": ["example-mean-norm"]}})  # accepted in configs


# -- a dataset format: an .npz of images and labels ------------------------------------------------
class NpzFaceSet(InMemoryFaceSet):
    def __init__(self, path: str):
        with np.load(path) as z:
            super().__init__(z["images"], z["labels"], source=path)


def test_a_registered_dataset_format_opens_everywhere(tmp_path, monkeypatch):
    monkeypatch.setattr(data_open, "FORMATS", list(data_open.FORMATS))
    data_open.FORMATS.insert(1, Format("FILE.faces.npz", "images + labels arrays in one .npz",
                                       lambda s: s.endswith(".faces.npz"), lambda s, **kw: NpzFaceSet(s)))
    path = tmp_path / "set.faces.npz"
    np.savez(path, images=np.zeros((3, 8, 8, 3), np.uint8), labels=np.array([0, 1, 1]))
    faces = open_faceset(str(path))
    assert len(faces) == 3 and faces.num_classes == 2
    assert "FILE.faces.npz" in accepted_specs()


# -- a head that uses class counts: cross-entropy weighted by 1 / n_c of the target class -----------
class ClassWeightedSoftmax(SoftmaxHead):
    """``loss = sum_i w_{y_i} l_i / sum_i w_{y_i}``, ``w_c = 1 / n_c`` (n_c: training images of c)."""

    def __init__(self, embedding_size: int, num_classes: int, class_stats: ClassStats):
        super().__init__(embedding_size, num_classes)
        self.class_stats = class_stats
        self.register_buffer("class_weight", torch.as_tensor(1.0 / class_stats.counts, dtype=torch.float32),
                             persistent=False)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        logits = F.linear(features, self.weight)
        return HeadOutput(F.cross_entropy(logits, labels, weight=self.class_weight), logits, labels)


@register_head("example-class-weighted", needs_class_stats=True)
def _class_weighted(embedding_size: int, num_classes: int, class_stats: ClassStats) -> torch.nn.Module:
    return ClassWeightedSoftmax(embedding_size, num_classes, class_stats)


def test_a_registered_class_count_head_gets_the_training_set_counts(tmp_path):
    options = {"num_identities": 40, "image_size": 16}
    doc = {"data": {"train": "synthetic", "subset": "AB", "options": options},
           "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
           "head": {"name": "example-class-weighted"}, "eval": {},
           "train": {"epochs": 1, "batch_size": 16, "max_steps": 2, "progress": False}}
    final = run_experiment(ExperimentConfig.from_dict(doc), tmp_path / "run").final
    # the true counts of the training set (AB: the head classes only), by identity name
    full = synthetic_faceset(**options)
    meta = load_checkpoint(final)["meta"]
    images_of = dict(zip(full.class_names, full.class_counts().tolist()))
    counts = [images_of[name] for name in meta["class_names"]]
    assert 0 < len(counts) < full.num_classes and min(counts) >= 10  # groups A and B
    assert meta["head_spec"]["class_stats"]["counts"] == counts
    head, _ = load_head(final)  # rebuilt with the same statistics
    assert isinstance(head, ClassWeightedSoftmax) and head.class_stats.counts.tolist() == counts
    # the loss against a naive float64 reference, and its gradients
    x = torch.randn(6, 16, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 3, 1])
    head = head.double()
    loss = head(x, y).loss
    loss.backward()
    w = 1.0 / torch.tensor(counts, dtype=torch.float64)
    xr, rows = x.detach().clone().requires_grad_(), head.weight.detach().clone().requires_grad_()
    nll = torch.logsumexp(xr @ rows.t(), 1) - (xr @ rows.t())[torch.arange(6), y]
    reference = (w[y] * nll).sum() / w[y].sum()
    reference.backward()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(head.weight.grad, rows.grad)


# -- an experiment kind: two-stage fine-tuning, with its own config block `finetune` ---------------
import dataclasses
from dataclasses import dataclass

from tailface.data.training_set import select_groups, training_set
from tailface.errors import ConfigError
from tailface.evidence import cells
from tailface.experiment.config import SUBSETS, check_keys
from tailface.experiment.kinds import ExperimentKind, KindBlock, kind_of, register_kind
from tailface.experiment.training import eval_stage, new_head, new_model, stage_class_stats, train_stage
from tailface.train.config import TrainConfig


@dataclass(frozen=True)
class FinetuneConfig:
    """``finetune: {subset: AB, lr_scale: 0.1}``: train on the groups of ``subset`` first, then
    fine-tune the backbone with a new classifier on the training set at ``lr_scale`` x ``train.lr``."""

    subset: str = "AB"
    lr_scale: float = 0.1

    @classmethod
    def from_block(cls, block, where: str) -> FinetuneConfig:
        block = check_keys(block, ("subset", "lr_scale"), where)
        cfg = cls(**block)
        if cfg.subset not in SUBSETS:
            raise ConfigError(f"{where}.subset must be one of {', '.join(SUBSETS)}, got {cfg.subset!r}")
        if not (isinstance(cfg.lr_scale, (int, float)) and not isinstance(cfg.lr_scale, bool) and cfg.lr_scale > 0):
            raise ConfigError(f"{where}.lr_scale must be a positive number, got {cfg.lr_scale!r}")
        return cfg


@register_kind
class TwoStageFinetune(ExperimentKind):
    name = "two-stage"
    blocks = (KindBlock("finetune", FinetuneConfig.from_block, dataclasses.asdict),)
    final = "finetune/final.pt"  # metrics: eval/metrics.json (the default)

    def training_stages(self, cfg):
        return ["first", "finetune"]

    def stage_changes(self, cfg, stage):
        if stage != "finetune":
            return {}, f"{cfg.source}: train"
        lr = TrainConfig.from_dict(cfg.train, f"{cfg.source}: train").lr
        return {"lr": lr * cfg.block("finetune").lr_scale}, f"{cfg.source}: train + finetune"

    def stages(self, cfg, out, faceset, command):
        def build(data):
            return new_model(cfg), new_head(cfg, stage_class_stats(cfg, data))

        def from_first(model, head):  # the first stage's backbone; the classifier starts afresh
            model.load_state_dict(load_checkpoint(first.output)["model"])

        subset = cfg.block("finetune").subset
        first = train_stage("first", out / "first", cfg.stage_train("first"),
                            lambda: select_groups(faceset, subset, cfg.data.groups), build, command=command)
        second = train_stage("finetune", out / "finetune", cfg.stage_train("finetune"),
                             lambda: training_set(faceset, cfg.data), build, from_first, (first.output,), command)
        evaluate = [eval_stage("eval", second.output, out / "eval", cfg, command)] if cfg.eval.protocols else []
        return [first, second, *evaluate]


FINETUNE = {"data": {"train": "synthetic", "options": {"num_identities": 40, "image_size": 16, "max_images": 30}},
            "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
            "train": {"epochs": 1, "batch_size": 16, "max_steps": 2, "lr": 0.1, "progress": False, "seed": 0},
            "eval": {"protocols": ["example-mean-norm"]},
            "finetune": {"subset": "AB", "lr_scale": 0.5}}


def test_a_registered_experiment_kind_runs_and_reproduce_finds_its_cells(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cfg = ExperimentConfig.from_dict(FINETUNE, "finetune.yaml")
    assert kind_of(cfg).name == "two-stage" and cfg.method is None and cfg.pretrain is None
    assert ExperimentConfig.from_dict(cfg.to_dict(), "finetune.yaml") == cfg  # config.yaml reads back equal
    assert cfg.stage_train("finetune").lr == pytest.approx(0.5 * cfg.stage_train("first").lr)
    with pytest.raises(ConfigError, match=r"finetune.yaml: finetune.lr_scale must be a positive number"):
        ExperimentConfig.from_dict({**FINETUNE, "finetune": {"lr_scale": 0}}, "finetune.yaml")
    with pytest.raises(ConfigError, match="finetune is a two-stage block; the method has its own stages"):
        ExperimentConfig.from_dict({**FINETUNE, "method": {}})

    # a reproduce cell of this kind: `tailface reproduce` finds its model and metrics through the registry
    monkeypatch.setitem(cells.CELL_KINDS, "example-finetune", "two-stage")
    out = cells.cell_dir(tmp_path, "example-finetune", 0)
    result = run_experiment(cfg, out)
    assert result.final == cells.final_checkpoint(tmp_path, "example-finetune", 0) == out / "finetune" / "final.pt"
    assert cells.metrics_path(tmp_path, "example-finetune", 0).is_file()
    assert cells.dependencies("example-finetune") == []
    assert result.metrics is not None and result.metrics["example-mean-norm"]["mean_norm"] > 0
    first, second = load_checkpoint(out / "first" / "final.pt"), load_checkpoint(result.final)
    assert first["meta"]["num_classes"] < second["meta"]["num_classes"] == synthetic_faceset(
        **FINETUNE["data"]["options"]).num_classes
    assert "finetune" in (out / "config.yaml").read_text()


# -- a reproduce target: each model's VR@FAR=0.1% seed by seed, and the claim "AB > A" -------------
def _per_seed_page(target: Target, inputs: Inputs) -> Report:
    """One row per model with its VR@FAR=0.1% at each seed, then the claims with their intervals."""
    vr = tables.METRICS[0]
    values = {model: inputs.results.values(model, vr) for model in target.models}
    rows = [f"| {model} | " + ", ".join(f"{100 * v:.2f}" for v in values[model].values()) + " |"
            for model in target.models]
    return Report("\n".join(["| model | VR@FAR=0.1% per seed |", "|---|---|", *rows, "",
                             tables.claims_table(inputs.results, target.claims)]),
                  {"vr_per_seed": values, "claims": tables.claim_numbers(inputs.results, target.claims)})


register_target(Target("example-per-seed", "VR per seed: A and AB", models=("softmax-A", "ab"),
                       claims=(Claim("AB > A", "ab", "softmax-A"),), write=_per_seed_page))


def test_a_registered_reproduce_target_trains_its_cells_and_writes_its_page(tmp_path, capsys):
    torch.set_num_threads(1)
    profile = tmp_path / "tiny.yaml"
    profile.write_text("# a tiny test profile\n" + yaml.safe_dump(TINY_PROFILE))
    out = tmp_path / "repro"
    assert main(["reproduce", "example-per-seed", "--profile", str(profile), "--out", str(out)]) == 0
    assert f"wrote {out / 'example-per-seed.md'}" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["ab", "softmax-A"]  # its models, trained
    text = (out / "example-per-seed.md").read_text()
    assert text.startswith("# VR per seed: A and AB\n\n`tailface reproduce example-per-seed --profile tiny --seeds 1")
    data = json.loads((out / "example-per-seed.json").read_text())  # beside the page: the same numbers
    assert f"| ab | {100 * data['vr_per_seed']['ab']['0']:.2f} |" in text
    assert data["claims"][0]["verdict"] == "one seed" and "| AB > A | VR@FAR=0.1% |" in text
    assert "example-per-seed" in parse_names("all")
