"""One model per seed (issue 21, item 6): is a ``tailface reproduce`` cell the model that its shipped
config trains at the same seed?

A new user trains a shipped config (``tailface train configs/baselines/celeba/ab.yaml``) with
``train.seed`` changed and nothing else: :func:`shipped_config`. The cell of the same model and
seed is ``cells.cell_config``. :func:`differences` compares the two as parsed configs
(``ExperimentConfig.to_dict``: what ``OUT/config.yaml`` holds), key by key; :data:`EXPECTED` is
every difference there is, with why and whether it changes the weights. ``tests/test_same_model.py``
checks that nothing else differs, and on the built-in data (a few steps) that the AB cell, the
shipped AB baseline and the shipped method's base stage give bit-identical weights, and the ours
cell and the shipped method bit-identical dispersion weights.

Outside the config, one thing changes the bits: the number of torch threads. ``tailface reproduce
--jobs N`` gives each cell ``max(1, threads // N)`` threads (the CPU campaign: 1 thread, 2 cells at
once on 2 cores; ``cell.json`` records it), ``tailface train`` / ``run`` use all cores. Reductions
are split per thread, so the weights differ in their last bits and the runs part ways: the same
recipe and seed, not the same model bit for bit. ``OMP_NUM_THREADS=1 tailface train ...`` on the
same CPU (instruction set) trains the cell's model (docs/training.md, "What must match").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tailface.configs import resolve_config
from tailface.evidence import cells, methods
from tailface.evidence.cells import Profile
from tailface.experiment import ExperimentConfig
from tailface.yaml_config import read_yaml


@dataclass(frozen=True)
class Difference:
    path: str  # block.key
    why: str
    matters: bool  # whether it changes the trained weights


#: model -> its shipped config per family (None: no shipped config of that family)
SHIPPED_OF: dict[str, dict[str, str | None]] = {
    "ab": {"celeba": "baselines/celeba/ab", "synthetic": "baselines/ab"},
    "abcd": {"celeba": "baselines/celeba/abcd", "synthetic": "baselines/abcd"},
    **{m: {"celeba": f"baselines/celeba/{name}", "synthetic": f"baselines/{name}"}
       for m, name in cells.BASELINES.items()},
    **{m: {"celeba": s.celeba, "synthetic": s.synthetic} for m, s in methods.SHIPPED.items()},
    "ours": {"celeba": "method/celeba", "synthetic": "method/synthetic"},
    "arcface-ours": {"celeba": "method/celeba_arcface", "synthetic": None},
}

NAME = Difference("name", "a label (the cell's is MODEL-seedK); not read by training", False)
DATA = Difference("data.train", "the same prepared set, named two ways: the cell through TAILFACE_DATA (default "
                  "./data, absolute), the shipped config as data/celeba-train relative to the working folder; "
                  "the same files when run from the repository with TAILFACE_DATA unset or = ./data "
                  "(environment.json records the data's sha256)", False)
BASE = Difference("method.base", "the cell starts from the AB cell's checkpoint of the same seed; the shipped "
                  "config trains that base itself (its base stage is the AB baseline's config: bit-identical "
                  "weights, tested)", False)
EVALUATE = Difference("method.evaluate", "which checkpoints are evaluated (the cell: ours only; its base is the "
                      "AB cell); evaluation only", False)
ABCD_STAGE = Difference("method.abcd_baseline", "the synthetic shipped config also trains plain softmax on all "
                        "classes after the dispersion stage (row norms); each stage seeds torch itself, so the "
                        "stages before it are unchanged (tested)", False)
ARCFACE_BASE = Difference("method.base", "ArcFace + ours: the cell clusters with the (softmax) AB cell's "
                          "features, as every ours cell does, while method/celeba_arcface trains its own base with "
                          "the ArcFace head: a different base model, so different super classes", True)

EXPECTED: dict[str, dict[str, tuple[Difference, ...]]] = {  # model -> family -> the differences there are
    "ours": {"celeba": (NAME, DATA, BASE, EVALUATE), "synthetic": (NAME, BASE, EVALUATE, ABCD_STAGE)},
    "arcface-ours": {"celeba": (NAME, DATA, ARCFACE_BASE, EVALUATE)},
}
#: the AB cell against the shipped method's base stage (not a config of its own): what differs there
BASE_STAGE = (Difference("train.checkpoint_every", "method/celeba.yaml writes last.pt every 200 steps, the AB "
                         "baseline at each epoch's end only: when a checkpoint is written, not what is trained "
                         "(tested with a mid-epoch checkpoint)", False),)


def expected(model: str, family: str) -> tuple[Difference, ...]:
    """The documented differences between ``model``'s cell and its shipped config in ``family``."""
    default = (NAME, DATA) if family == "celeba" else (NAME,)
    return EXPECTED.get(model, {}).get(family, default)


def shipped_config(profile: Profile, model: str, seed: int) -> dict | None:
    """The shipped config of ``model`` for the profile's family with ``train.seed`` = ``seed`` and
    nothing else changed (the profile's overrides merged, as the cells have them); None when the
    family ships none."""
    name = SHIPPED_OF.get(model, {}).get(profile.family)
    if name is None:
        return None
    doc = cells.merged(read_yaml(resolve_config(name)), profile.overrides)
    doc["train"]["seed"] = seed
    return doc


def flat(doc: dict, prefix: str = "") -> dict[str, object]:
    """``{"block.key": value}`` of a config document (two levels: blocks and their keys)."""
    out: dict[str, object] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            out.update(flat(value, f"{path}."))
        else:
            out[path] = value
    return out


def differences(profile: Profile, model: str, seed: int, root: Path) -> dict[str, tuple[object, object]]:
    """Every key whose value differs between the cell and the shipped config, both parsed
    (``ExperimentConfig.to_dict``): ``{path: (cell's, shipped's)}``; a key one lacks reads as None."""
    shipped = shipped_config(profile, model, seed)
    if shipped is None:
        raise KeyError(f"{model}: no shipped config in the {profile.family} family")
    cell = ExperimentConfig.from_dict(cells.cell_config(profile, model, seed, root), f"{model} cell").to_dict()
    ours = ExperimentConfig.from_dict(shipped, f"{model} shipped").to_dict()
    a, b = flat(cell), flat(ours)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
