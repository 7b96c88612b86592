"""The models behind the paper's tables and figures, as experiment configs of one profile.

A *cell* is one model trained with one seed: ``ROOT/cells/<model>/seed<k>/`` is an ordinary
experiment folder of the one runner (``tailface.experiment``), so an interrupted cell resumes and
a finished one is skipped. A model needed by several tables is one cell (ABCD: Tables 2 and 3;
AB: Tables 2 and 3, and the base model of every "ours" cell, whose ``method.base`` is the AB
cell's checkpoint of the same seed).

Models (``MODELS``), each derived from the profile's family of shipped configs:

- ``softmax-A``, ``ab``, ``softmax-ABC``, ``abcd``: plain softmax on those groups (Table 2);
- ``ab-abcd``, ``resampling``, ``center-loss``, ``range-loss``, ``arcface``: the other baselines
  of Table 3; ``logit-adjusted``, ``ldam-drw``: the class-count-aware losses on ABCD (target
  ``losses``); ``ours`` and ``arcface-ours``: aggregate-and-disperse with the softmax / ArcFace
  head, both clustering with the AB cell's features;
- ``ours-nk0.25``, ``ours-nk0.5``, ``ours-nk2``: ``ours`` with ``N_k`` scaled (Table 4);
- ``sweep-C25``, ``sweep-C50``, ``sweep-D25``, ``sweep-D50``: AB plus a share of C's classes, or
  AB + C plus a share of D's (the tail sweep; its end points are ``ab``, ``softmax-ABC``, ``abcd``);
- ``uniform``, ``long-tail``: softmax on two subsets with the same identities and images, one
  uniform and one long-tailed (Fig. 3);
- ``VARIANTS``: one of the models above with a few settings changed, each testing one hypothesis:
  the baselines' hyper-parameters (``tailface reproduce tune``) and the method's choices
  (``tailface reproduce probes``), compared on the BLUFR development split;
- ``MODEL@REGIME`` (``ab@split``, ``ours@long``): ``ab``, ``abcd``, ``ours`` or the strongest method
  (``regimes.REPAIR``) trained in a regime of :mod:`tailface.evidence.regimes` (a perturbed training
  set, or 3x the epochs); ``ours@R`` starts from ``ab@R`` of the same seed (``tailface reproduce regimes``);
- the methods of :mod:`tailface.evidence.methods` (issue 21): the rows new to this table
  (``subcenter-arcface``, ``adaface``, ...: ``methods.SHIPPED``, each a shipped config of the
  profile's family, possibly of another experiment kind) and every row on the shallow set,
  ``MODEL@shallow`` (``regimes.SHALLOW``: at most 2 images per identity, its own groups).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from tailface.configs import resolve_config
from tailface.errors import ConfigError
from tailface.evidence import methods, regimes
from tailface.experiment.kinds import ExperimentKind, default_kind, kind_named
from tailface.paths import prepared_path
from tailface.yaml_config import read_yaml, unknown_key

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
PROFILE_KEYS = ("family", "data", "overrides")


@dataclass(frozen=True)
class Profile:
    name: str
    family: str  # "celeba" or "synthetic": which shipped configs the models derive from
    data: str  # dataset spec (a prepared set's name is resolved by tailface.paths.prepared_path)
    overrides: dict
    description: str

    @classmethod
    def load(cls, name_or_path: str) -> Profile:
        path = Path(name_or_path)
        if not path.is_file():
            path = PROFILES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
            raise ConfigError(f"{name_or_path}: unknown profile (known: {known}, or a profile YAML file)")
        doc = read_yaml(path)
        unknown = sorted(set(doc) - set(PROFILE_KEYS))
        if unknown:
            raise unknown_key(str(path), unknown[0], PROFILE_KEYS)
        family = doc.get("family", "celeba")
        if family not in ("celeba", "synthetic"):
            raise ConfigError(f"{path}: family must be celeba or synthetic, got {family!r}")
        first = next((line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
        return cls(path.stem, family, str(doc.get("data", "synthetic")), dict(doc.get("overrides") or {}), first)

    def data_spec(self) -> str:
        if self.data in ("celeba-train", "celeba-aligned", "celeba-wild", "lfw"):
            return str(prepared_path(self.data))
        return self.data

    def baseline(self, name: str) -> dict:
        folder = "baselines/celeba" if self.family == "celeba" else "baselines"
        return read_yaml(resolve_config(f"{folder}/{name}"))

    def method(self) -> dict:
        return read_yaml(resolve_config(f"method/{self.family}"))


SOFTMAX_GROUPS = {"softmax-A": "A", "ab": "AB", "softmax-ABC": "ABC", "abcd": "ABCD"}
BASELINES = {"ab-abcd": "ab_abcd", "resampling": "resampling", "center-loss": "center_loss",
             "range-loss": "range_loss", "arcface": "arcface",
             "logit-adjusted": "logit_adjusted", "ldam-drw": "ldam_drw"}  # class-count-aware losses
NK_FACTORS = {"ours-nk0.25": 0.25, "ours-nk0.5": 0.5, "ours": 1.0, "ours-nk2": 2.0}
SWEEP = {"sweep-C25": ("AB", {"C": 0.25}), "sweep-C50": ("AB", {"C": 0.5}),
         "sweep-D25": ("ABC", {"D": 0.25}), "sweep-D50": ("ABC", {"D": 0.5})}
FIG3_MODELS = ("uniform", "long-tail")  # softmax on a uniform / long-tail subset, same sizes


@dataclass(frozen=True)
class Variant:
    """Model ``of`` with ``changes`` merged into its config (block by block, one level deep); a
    method variant clusters with the ``base`` cell's features (of the same seed)."""

    of: str
    changes: dict
    why: str
    base: str = "ab"


PK16x4 = {"name": "pk", "p": 16, "k": 4}
VARIANTS = {
    # ArcFace and range loss collapse here with their published settings: their grids (tune)
    "arcface-s64-m0.5": Variant("arcface", {"head": {"s": 64.0, "m": 0.5}}, "the paper's setting"),
    "arcface-s64-m0.2": Variant("arcface", {"head": {"s": 64.0, "m": 0.2}}, "a smaller margin"),
    "arcface-s32-m0.2": Variant("arcface", {"head": {"s": 32.0, "m": 0.2}}, "smaller margin and scale"),
    "arcface-s32-m0.35": Variant("arcface", {"head": {"s": 32.0, "m": 0.35}}, "a smaller scale, mid margin"),
    "arcface-s32-m0.1": Variant("arcface", {"head": {"s": 32.0, "m": 0.1}}, "a still smaller margin"),
    "arcface-s16-m0.2": Variant("arcface", {"head": {"s": 16.0, "m": 0.2}}, "a still smaller scale"),
    "arcface-s16-m0.1": Variant("arcface", {"head": {"s": 16.0, "m": 0.1}}, "both smaller still"),
    "arcface-s16-m0.35": Variant("arcface", {"head": {"s": 16.0, "m": 0.35}}, "scale 16, a larger margin"),
    "arcface-s16-m0.5": Variant("arcface", {"head": {"s": 16.0, "m": 0.5}}, "scale 16, the paper's margin"),
    "arcface-s8-m0.2": Variant("arcface", {"head": {"s": 8.0, "m": 0.2}}, "the grid's edge: a scale of 8"),
    "range-lam1e-3": Variant("range-loss", {"head": {"lam": 1e-3}, "train": {"sampler": PK16x4}},
                             "our first setting: lam 1e-3, P x K = 16 x 4"),
    "range-lam0": Variant("range-loss", {"head": {"lam": 0.0}, "train": {"sampler": PK16x4}},
                          "no range term: is it the P x K sampler?"),
    "range-lam1e-4": Variant("range-loss", {"head": {"lam": 1e-4}, "train": {"sampler": PK16x4}},
                             "a 10x weaker range term"),
    "range-lam3e-4": Variant("range-loss", {"head": {"lam": 3e-4}, "train": {"sampler": PK16x4}},
                             "between the two best"),
    "range-pk32x2": Variant("range-loss", {"head": {"lam": 1e-4},
                                           "train": {"sampler": {"name": "pk", "p": 32, "k": 2}}},
                            "lam 1e-4, P x K with 32 identities x 2 images: each row visited twice as often"),
    "range-random": Variant("range-loss", {"head": {"lam": 1e-4}, "train": {"sampler": {"name": "random"}}},
                            "lam 1e-4, ordinary batches: the range term on whatever pairs a batch holds"),
    # resampling (16.5 VR against ABCD's 24.9 with full class balance): milder balancing
    "resampling-s1": Variant("resampling", {"train": {"sampler": {"name": "class_aware", "strength": 1.0}}},
                             "full class balance (our first setting)"),
    "resampling-s0.5": Variant("resampling", {"train": {"sampler": {"name": "class_aware", "strength": 0.5}}},
                               "square-root balance: classes drawn in proportion to sqrt(n_c)"),
    "resampling-s0.25": Variant("resampling", {"train": {"sampler": {"name": "class_aware", "strength": 0.25}}},
                                "milder still"),
    # the method's choices (probes), each against ``ours``
    "ours-base-abcd": Variant("ours", {}, "cluster with the ABCD model's features", base="abcd"),
    "ours-batch": Variant("ours", {"method": {"mode": "batch"}}, "batch-level dispersion (Eq. 7)"),
    "ours-from-base": Variant("ours", {"method": {"prototype_from_base": True}},
                              "start the prototype CNN from the base model"),
    "ours-spherical": Variant("ours", {"method": {"spherical": True}}, "spherical k-means on normalised means"),
    "ours-dlr0.05": Variant("ours", {"method": {"dispersion_lr": 0.05}}, "a higher dispersion learning rate"),
    "ours-dlr0.01": Variant("ours", {"method": {"dispersion_lr": 0.01}}, "a lower dispersion learning rate"),
    "ours-split60": Variant("ours", {"method": {"prototype_epochs": 12, "dispersion_epochs": 8,
                                                "prototype_train": {"milestones": [8, 10]},
                                                "dispersion_train": {"milestones": [5, 7], "warmup_epochs": 0}}},
                            "prototype 60% / dispersion 40% of the budget (paper 40 / 60)"),
    "arcface-ours-renorm": Variant("arcface-ours", {"method": {"renormalize_phi": True}},
                                   "Phi projected back onto the sphere (margin heads)"),
    "arcface-ours-s64-m0.5": Variant("arcface-ours", {"head": {"s": 64.0, "m": 0.5}},
                                     "the method on the paper's ArcFace head"),
}
# tune: each baseline's grid, its first setting (the published or first one) the reference
TUNED = {"ArcFace": [m for m, v in VARIANTS.items() if v.of == "arcface"],
         "Range loss": [m for m, v in VARIANTS.items() if v.of == "range-loss"],
         "Resampling": [m for m, v in VARIANTS.items() if v.of == "resampling"]}
PROBED = {"ours": [m for m, v in VARIANTS.items() if v.of == "ours"],
          "arcface-ours": [m for m, v in VARIANTS.items() if v.of == "arcface-ours"]}
METHOD_MODELS = {*NK_FACTORS, "arcface-ours"}
METHOD_MODELS |= {m for m, v in VARIANTS.items() if v.of in METHOD_MODELS}
METHOD_MODELS |= {m for m in [*regimes.REGIME_MODELS, *methods.SHALLOW_MODELS] if regimes.parse(m)[0] in METHOD_MODELS}
MODELS = [*SOFTMAX_GROUPS, *BASELINES, *NK_FACTORS, "arcface-ours", *SWEEP, *FIG3_MODELS, *VARIANTS,
          *regimes.REGIME_MODELS, *methods.SHIPPED, *methods.SHALLOW_MODELS]


def cell_dir(root: Path, model: str, seed: int) -> Path:
    return Path(root) / "cells" / model / f"seed{seed}"


# the experiment kind (tailface.experiment.kinds) of each model's cells; a model not listed is a baseline
CELL_KINDS: dict[str, str] = dict.fromkeys(sorted(METHOD_MODELS), "aggregate-and-disperse")
CELL_KINDS.update({m: s.kind for m, s in methods.SHIPPED.items() if s.kind != "baseline"})  # e.g. SST's kind
CELL_KINDS.update({m: CELL_KINDS[b] for m in [*regimes.REGIME_MODELS, *methods.SHALLOW_MODELS]
                   if (b := regimes.parse(m)[0]) in CELL_KINDS})


def cell_kind(model: str) -> ExperimentKind:
    """The experiment kind of ``model``'s cells: it says where a cell's model and metrics are."""
    return kind_named(CELL_KINDS[model]) if model in CELL_KINDS else default_kind()


def final_checkpoint(root: Path, model: str, seed: int) -> Path:
    return cell_dir(root, model, seed) / cell_kind(model).final


def metrics_path(root: Path, model: str, seed: int) -> Path:
    return cell_dir(root, model, seed) / cell_kind(model).metrics


def dependencies(model: str) -> list[str]:
    """Cells that must be trained before ``model``: the base cell of a kind that starts from
    another experiment's model (the method's ``method.base``; a variant's ``base``, else AB)."""
    if not cell_kind(model).starts_from_base:
        return []
    if regimes.is_regime_model(model):  # the same regime's base cell: ours@split starts from ab@split
        base, regime = regimes.parse(model)
        return [regimes.model_name(d, regime.name) for d in dependencies(base)]
    if model in methods.SHIPPED:  # a kind of its own: the cell its row names, if any
        return [b] if (b := methods.SHIPPED[model].base) else []
    return [VARIANTS[model].base if model in VARIANTS else "ab"]


def merged(doc: dict, overrides: dict) -> dict:
    """``doc`` with each block of ``overrides`` merged into the same block (one level deep)."""
    out = copy.deepcopy(doc)
    for block, changes in overrides.items():
        if isinstance(changes, dict) and isinstance(out.get(block), dict):
            out[block] = {**out[block], **changes}
        else:
            out[block] = copy.deepcopy(changes)
    return out


def _start_from(doc: dict, shipped: methods.Shipped, checkpoint: Path) -> None:
    """Point the ``base`` key of the block of ``shipped``'s kind at ``checkpoint`` (its base cell's model)."""
    block = kind_named(shipped.kind).blocks[0].name
    doc[block] = {**(doc.get(block) or {}), "base": str(checkpoint)}


def fig3_sizes(faceset, thresholds) -> tuple[int, int]:
    """Identities and images of both Fig. 3 sets (``uniform``, ``long-tail``): every identity with
    at least ``b`` images (group B's lower bound), ``b`` images each."""
    counts = faceset.class_counts()
    identities = int((counts >= thresholds.b).sum())
    if identities < 2:
        raise ConfigError(f"{faceset.source}: Fig. 3 needs identities with >= {thresholds.b} images")
    return identities, identities * thresholds.b


def cell_config(profile: Profile, model: str, seed: int, root: Path, data: str | None = None,
                fig3_sizes: tuple[int, int] | None = None) -> dict:
    """The experiment config (a YAML mapping) of one cell."""
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if model in VARIANTS:
        variant = VARIANTS[model]
        doc = merged(cell_config(profile, variant.of, seed, root, data, fig3_sizes), variant.changes)
        if model in METHOD_MODELS:
            doc["method"]["base"] = str(final_checkpoint(root, variant.base, seed))
        doc["name"] = f"{model}-seed{seed}"
        return doc
    if regimes.is_regime_model(model):  # the model on its regime's perturbed set, or trained longer
        of, regime = regimes.parse(model)
        spec = str(regimes.data_dir(root, regime.name, seed)) if regime.perturbed else data
        doc = cell_config(profile, of, seed, root, spec, fig3_sizes)
        if regime.epochs_factor != 1:
            doc = regimes.longer(doc, regime.epochs_factor)
        if regime.groups is not None:  # the shallow set: its own groups (regimes.SHALLOW)
            doc["data"]["groups"] = regimes.groups_block(regime)
        if model in METHOD_MODELS:
            doc["method"]["base"] = str(final_checkpoint(root, dependencies(model)[0], seed))
        elif of in methods.SHIPPED and dependencies(model):
            _start_from(doc, methods.SHIPPED[of], final_checkpoint(root, dependencies(model)[0], seed))
        doc["name"] = f"{model}-seed{seed}"
        return doc
    if model in SOFTMAX_GROUPS or model in SWEEP or model in FIG3_MODELS:
        doc = profile.baseline("ab")
        doc["data"]["subset"] = SOFTMAX_GROUPS.get(model, "ABCD")
        if model in SWEEP:
            doc["data"]["subset"], doc["data"]["tail_share"] = SWEEP[model]
            doc["data"]["subset_seed"] = seed
    elif model in BASELINES:
        doc = profile.baseline(BASELINES[model])
    elif model in methods.SHIPPED:  # a method's row: its shipped config (a head, or a kind of its own)
        shipped = methods.SHIPPED[model]
        doc = read_yaml(resolve_config(shipped.config(profile.family)))
        if shipped.base is not None:
            _start_from(doc, shipped, final_checkpoint(root, shipped.base, seed))
    else:
        doc = profile.method()
        method = doc.setdefault("method", {})
        method.update(base=str(final_checkpoint(root, "ab", seed)), abcd_baseline=False, evaluate=["ours"])
        if model == "arcface-ours":
            doc["head"] = profile.baseline("arcface")["head"]
        else:
            method["num_super_factor"] = NK_FACTORS[model]
    doc = merged(doc, profile.overrides)
    doc["name"] = f"{model}-seed{seed}"
    doc["data"]["train"] = data or profile.data_spec()
    doc["train"]["seed"] = seed
    if model in FIG3_MODELS:
        if fig3_sizes is None:
            raise ConfigError("the Fig. 3 cells need their subset sizes (identities, images)")
        doc["data"]["sample"] = {"kind": model, "identities": fig3_sizes[0], "images": fig3_sizes[1], "seed": seed}
    return doc
