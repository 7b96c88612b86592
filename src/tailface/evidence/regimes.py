"""Where the tail hurts (issue 22): the training regimes of ``tailface reproduce regimes``, as one table.

A regime is the profile's training set as is, perturbed the ways web-crawled long-tail data are
(:mod:`tailface.data.perturb`), or trained longer. Each regime trains AB, ABCD and ours
(:data:`MODELS`; ours starts from the AB cell of the same regime and seed):

    regime        training set                                                   perturbation
    clean         the profile's set as is (the cells ab, abcd, ours themselves)  -
    split         30% of the images of half the A identities cut into 1-3-image  --split-head 0.5:0.3
                  identities (the same person duplicated in the tail)
    noise20       20% of the tail images under a wrong identity, half open-set   --tail-noise 0.2:0.5
    noise40       40% of them                                                    --tail-noise 0.4:0.5
    split+noise   both, split first                                              both of the above
    long          the clean set, 3x the epochs                                   -

and, apart from that table (the ``shallow`` target's, :data:`SHALLOW`; not a row of ``regimes``):

    shallow       at most 2 images per identity, every identity kept             --shallow 2
                  (groups a=3, b=2, c=1: head = the 2-image identities)

A regime's cells are the models named ``MODEL@REGIME`` (``ab@split``: :func:`model_name`), in
``ROOT/cells/ab@split/seed<k>/``; the clean regime's are the ordinary ``ab``, ``abcd``, ``ours``.
The perturbation seed is the cell seed, so the spread over seeds includes the perturbation draw;
the perturbed set of (regime, seed) is built once (:func:`build`) into
``ROOT/regimes/<regime>/seed<k>/data/`` (``perturbed.lst`` + ``manifest.json``), from the data
spec of the clean cells, and every cell of that regime and seed trains on it. The evaluation
(LFW) is never perturbed. ``long`` scales every epoch count of a config by 3 (:func:`longer`):
``train.epochs``, the multistep milestones and ``step_size``, the method's budget and its stages'
milestones; the warm-up (``warmup_epochs``) is kept, as it guards the first steps, not the length.

In the split regimes the ours cell's clustering is read against the manifest
(:mod:`tailface.evidence.split_reunion`): ``split_reunion.json`` in its folder (:func:`write_reunion`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from tailface.atomic import write_text
from tailface.data.groups import GroupThresholds
from tailface.data.perturb import Labelling, Perturbation, make_manifest, perturb
from tailface.data.perturb.manifest import LIST_NAME, MANIFEST_NAME, source_reference, write_perturbed
from tailface.data.training_set import open_data
from tailface.errors import ConfigError
from tailface.evidence.split_reunion import split_reunion
from tailface.train.config import TrainConfig


@dataclass(frozen=True)
class Regime:
    name: str
    what: str  # the training set, in words (the page's first table)
    split: tuple[float, float] | None = None  # --split-head SHARE:IMAGES
    noise: tuple[float, float] | None = None  # --tail-noise SHARE:OPEN
    epochs_factor: int = 1  # the profile's epochs (and milestones) times this
    shallow: int | None = None  # --shallow MAX: at most MAX images per identity
    groups: tuple[int, int, int] | None = None  # the cells' data.groups (a, b, c) on this set; None: the profile's

    @property
    def perturbed(self) -> bool:
        return self.split is not None or self.noise is not None or self.shallow is not None


REGIMES = (
    Regime("clean", "the profile's training set as is"),
    Regime("split", "30% of the images of half the A identities cut into new identities of 1-3 images",
           split=(0.5, 0.3)),
    Regime("noise20", "20% of the tail images under a wrong identity, half of them open-set", noise=(0.2, 0.5)),
    Regime("noise40", "40% of the tail images under a wrong identity, half of them open-set", noise=(0.4, 0.5)),
    Regime("split+noise", "the split, then 20% tail noise (half open-set)", split=(0.5, 0.3), noise=(0.2, 0.5)),
    Regime("long", "the clean set trained 3x longer (epochs and milestones x3)", epochs_factor=3),
)
# The shallow set (issue 21, ``tailface reproduce shallow``): SST's regime, at most 2 images per identity and
# every identity kept. The profile's groups (A >= 21 ...) would put every identity in D and leave AB empty, so
# its cells use a=3, b=2, c=1: the head (B) is the identities with 2 images, the tail (C) those with 1.
SHALLOW = Regime("shallow", "at most 2 images per identity, every identity kept (the 2-image identities are the "
                 "head, the 1-image ones the tail)", shallow=2, groups=(3, 2, 1))
BY_NAME = {r.name: r for r in (*REGIMES, SHALLOW)}
MODELS = ("ab", "abcd", "ours")  # trained in every regime, in this order
# The strongest method of ``tailface reproduce methods`` (issue 21): the best row of that page by mean
# DIR@FAR=1% (``best`` in its JSON), trained in every regime after the three above, to ask whether it repairs
# what the regime does to plain softmax. Chosen from the archived methods page, which tests/test_regimes.py
# reads: the test fails when the page names another best. Empty while that page does not exist.
REPAIR: tuple[str, ...] = ()
MAPPED = (*MODELS, *REPAIR)  # every model of the regimes page, in its order
SEP = "@"
REUNION = "split_reunion.json"


def model_name(model: str, regime: str) -> str:
    """The cell model of ``model`` in ``regime``: ``ab`` (clean), ``ab@split``."""
    return model if regime == "clean" else f"{model}{SEP}{regime}"


def parse(name: str) -> tuple[str, Regime]:
    """``ab@split`` -> ("ab", the split regime); a model without ``@`` is clean."""
    model, _, regime = name.partition(SEP)
    if regime and regime not in BY_NAME:
        raise ConfigError(f"{name}: unknown regime {regime!r} (known: {', '.join(BY_NAME)})")
    return model, BY_NAME[regime or "clean"]


REGIME_MODELS = [model_name(m, r.name) for r in REGIMES[1:] for m in MAPPED]  # the cells beyond the clean ones


def is_regime_model(name: str) -> bool:
    return SEP in name


def data_dir(root: Path, regime: str, seed: int) -> Path:
    """The perturbed set of (``regime``, ``seed``): ``ROOT/regimes/<regime>/seed<k>/data``."""
    return Path(root) / "regimes" / regime / f"seed{seed}" / "data"


def manifest_path(root: Path, regime: str, seed: int) -> Path:
    return data_dir(root, regime, seed) / MANIFEST_NAME


def plan(regime: Regime, seed: int, thresholds: GroupThresholds) -> Perturbation:
    return Perturbation(split=regime.split, noise=regime.noise, shallow=regime.shallow, seed=seed,
                        thresholds=thresholds)


def _built_with(manifest: dict) -> dict:
    """What a manifest says its set was built from (compared with what a run needs)."""
    split, noise = manifest.get("split") or None, manifest.get("noise") or None
    shallow = manifest.get("shallow") or None
    built = {"source": manifest.get("source", {}).get("spec"), "seed": manifest.get("seed"),
             "thresholds": manifest.get("thresholds"),
             "split": [split["share"], split["images"]] if split else None,
             "noise": [noise["share"], noise["open"]] if noise else None}
    return {**built, "shallow": shallow["max"]} if shallow else built


def build(root: Path, regime: Regime, seed: int, spec: str, options: dict, thresholds: GroupThresholds) -> Path:
    """The perturbed set of (``regime``, ``seed``) over ``spec`` (opened with ``options``), built
    with the library of :mod:`tailface.data.perturb` unless it is there already (then checked:
    ConfigError, naming its manifest, when it was built from another source or plan)."""
    folder = data_dir(root, regime.name, seed)
    steps = plan(regime, seed, thresholds)
    reference = source_reference(spec, folder)
    if (folder / LIST_NAME).is_file():
        try:
            built = _built_with(json.loads((folder / MANIFEST_NAME).read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            built = {}
        wanted = {"source": reference, "seed": seed, "thresholds": asdict(thresholds),
                  "split": list(regime.split) if regime.split else None,
                  "noise": list(regime.noise) if regime.noise else None}
        if regime.shallow is not None:
            wanted["shallow"] = regime.shallow
        if built != wanted:
            differ = ", ".join(k for k in wanted if built.get(k) != wanted[k])
            raise ConfigError(f"{folder / MANIFEST_NAME}: the perturbed set of regime {regime.name} seed {seed} was "
                              f"built with another {differ or 'manifest'} than this run needs ({wanted}); delete "
                              f"{folder} to rebuild it, or use another --out")
        return folder
    source = open_data(spec, options)
    before = Labelling.of_faceset(source)
    after, changes = perturb(before, steps)
    write_perturbed(folder, after.pairs(), make_manifest(source, reference, steps, before, after, changes))
    return folder


def perturbation(name: str, seed: int) -> dict | None:
    """A regime cell's regime: its name, split, noise, seed and epochs factor (and, only when set, its
    shallow cap and groups: the fingerprints of the other regimes' cells stay as archived); None when clean."""
    if not is_regime_model(name):
        return None
    _, regime = parse(name)
    out: dict[str, object] = {"regime": regime.name, "split": regime.split, "noise": regime.noise, "seed": seed,
                              "epochs_factor": regime.epochs_factor}
    if regime.shallow is not None:
        out["shallow"] = regime.shallow
    if regime.groups is not None:
        out["groups"] = groups_block(regime)
    return out


def groups_block(regime: Regime) -> dict | None:
    """The ``data.groups`` block of the regime's cells (``{a, b, c}``); None: the profile's."""
    return None if regime.groups is None else dict(zip("abc", regime.groups))


def record(root: Path, name: str, seed: int) -> dict | None:
    """What a regime cell's ``cell.json`` says of its regime: :func:`perturbation` and the
    manifest (its path relative to ROOT and its sha256); None for a clean cell."""
    out = perturbation(name, seed)
    if out is None:
        return None
    regime = BY_NAME[out["regime"]]
    manifest = manifest_path(root, regime.name, seed)
    if regime.perturbed and manifest.is_file():
        out.update(manifest=manifest.relative_to(root).as_posix(),
                   manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest())
    return out


def longer(doc: dict, factor: int) -> dict:
    """``doc`` (an experiment config) trained ``factor`` times longer: every epoch count and
    schedule point of the train block, of the baselines' pretrain stage and of the method's stages
    (its budget and the milestones of ``<stage>_train``) times ``factor``; the warm-up is kept."""
    out = copy.deepcopy(doc)

    def scale(block: dict, epochs_default: int | None) -> None:
        epochs = block.get("epochs", epochs_default)
        if epochs is not None:
            block["epochs"] = factor * int(epochs)
        if "milestones" in block:
            block["milestones"] = [factor * m for m in block["milestones"]]
        if "step_size" in block:
            block["step_size"] = factor * block["step_size"]

    out["train"] = out.get("train") or {}
    scale(out["train"], TrainConfig.epochs)
    if isinstance(out.get("pretrain"), dict) and isinstance(out["pretrain"].get("train"), dict):
        scale(out["pretrain"]["train"], None)
    method = out.get("method")
    if isinstance(method, dict):
        for key in ("base_epochs", "budget", "prototype_epochs", "dispersion_epochs"):
            if method.get(key) is not None:
                method[key] = factor * method[key]
        for stage in ("base", "prototype", "dispersion", "abcd"):
            if isinstance(method.get(f"{stage}_train"), dict):
                scale(method[f"{stage}_train"], None)
    return out


def reunion_due(name: str) -> bool:
    """Whether ``name``'s cells are read against a split: the method in a split regime."""
    model, regime = parse(name)
    return is_regime_model(name) and model == "ours" and regime.split is not None


def reunion_doc(cell: Path, root: Path, name: str, seed: int) -> dict | None:
    """The split reunion of the cell's clustering (``cluster/super_classes.json``) against its
    regime's manifest, with the base model it clustered with; None when not due or when either
    file is missing."""
    if not reunion_due(name):
        return None
    _, regime = parse(name)
    clustering, manifest = cell / "cluster" / "super_classes.json", manifest_path(root, regime.name, seed)
    if not (clustering.is_file() and manifest.is_file()):
        return None
    result = split_reunion(clustering, manifest)
    return {"base": model_name("ab", regime.name), "clustering": "cluster/super_classes.json",
            "manifest": manifest.relative_to(root).as_posix(), "fakes": result.fakes, "counted": result.counted,
            "reunited": result.reunited, "share": _finite(result.share), "chance": _finite(result.chance)}


def write_reunion(cell: Path, root: Path, name: str, seed: int) -> Path | None:
    """``cell/split_reunion.json``: :func:`reunion_doc`, when there is one."""
    doc = reunion_doc(cell, root, name, seed)
    return None if doc is None else write_text(cell / REUNION, json.dumps(doc, indent=1) + "\n")


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value
