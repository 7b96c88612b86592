"""The method's experiment configuration: the shared experiment blocks plus a ``method:`` block.

``method`` keys (all optional)::

    base_epochs: 10           # base model (= the AB baseline's budget); default train.epochs
    budget: 10                # prototype + dispersion epochs; default train.epochs
    prototype_epochs: null    # default round(0.4 * budget) (paper 40 of 100)
    dispersion_epochs: null   # default budget - prototype_epochs (paper 60 of 100)
    dispersion_lr: null       # default 0.2 * train.lr (paper 0.02 after 0.1)
    prototype_from_base: false  # start the prototype CNN from the base model
    num_super: auto           # or an int (total super classes)
    ratio: {C: 1, D: 3}       # split of the super classes between tail groups
    normalize_means: false    # L2-normalise features before the class means
    spherical: false          # spherical k-means (implies normalize_means)
    kmeans_init: kmeans++     # or random (faiss default)
    kmeans_iters: 20
    mode: sample              # dispersion: sample (Eqs. 6/8) or batch
    renormalize_phi: false    # margin heads: project Phi back onto the sphere
    abcd_baseline: false      # also train plain softmax on all classes (row-norm comparison)
    base_train: {}            # per-stage changes to the train block (e.g. milestones), no epochs
    prototype_train: {}
    dispersion_train: {}
    abcd_train: {}
    feature_batch_size: 256
    evaluate: [ours, base, abcd]   # checkpoints to evaluate with eval.protocols
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from tailface.errors import ConfigError
from tailface.yaml_config import read_yaml

MARGIN_HEADS = {"softmax": "none", "cosface": "cosface", "arcface": "arcface"}


@dataclass
class MethodConfig:
    base_epochs: int | None = None
    budget: int | None = None
    prototype_epochs: int | None = None
    dispersion_epochs: int | None = None
    dispersion_lr: float | None = None
    prototype_from_base: bool = False
    num_super: str | int = "auto"
    ratio: dict = field(default_factory=lambda: {"C": 1.0, "D": 3.0})
    normalize_means: bool = False
    spherical: bool = False
    kmeans_init: str = "kmeans++"
    kmeans_iters: int = 20
    mode: str = "sample"
    renormalize_phi: bool = False
    abcd_baseline: bool = False
    feature_batch_size: int = 256
    base_train: dict = field(default_factory=dict)
    prototype_train: dict = field(default_factory=dict)
    dispersion_train: dict = field(default_factory=dict)
    abcd_train: dict = field(default_factory=dict)
    evaluate: list = field(default_factory=lambda: ["ours", "base", "abcd"])

    @classmethod
    def from_dict(cls, d: dict | None) -> "MethodConfig":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"method: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        cfg = cls(**d)
        if cfg.mode not in ("sample", "batch"):
            raise ConfigError(f"method.mode must be sample or batch, got {cfg.mode!r}")
        if cfg.kmeans_init not in ("kmeans++", "random"):
            raise ConfigError(f"method.kmeans_init must be kmeans++ or random, got {cfg.kmeans_init!r}")
        bad_eval = set(cfg.evaluate) - {"ours", "base", "abcd", "prototype"}
        if bad_eval:
            raise ConfigError(f"method.evaluate: unknown model {sorted(bad_eval)} (ours, base, abcd, prototype)")
        for stage in ("base", "prototype", "dispersion", "abcd"):
            block = getattr(cfg, f"{stage}_train")
            if not isinstance(block, dict):
                raise ConfigError(f"method.{stage}_train must be a mapping of train keys, got {block!r}")
            if "epochs" in block:
                raise ConfigError(f"method.{stage}_train: set epochs through method.budget / "
                                  f"method.{'base_epochs' if stage == 'base' else 'budget'}, not here")
        for name in ("base_epochs", "budget", "prototype_epochs", "dispersion_epochs"):
            value = getattr(cfg, name)
            if value is not None and not (isinstance(value, int) and value > 0):
                raise ConfigError(f"method.{name} must be a positive integer, got {value!r}")
        return cfg

    def epochs(self, train_epochs: int) -> tuple[int, int, int]:
        """(base, prototype, dispersion) epochs."""
        budget = self.budget or train_epochs
        proto = self.prototype_epochs or max(1, round(0.4 * budget))
        disp = self.dispersion_epochs or max(1, budget - proto)
        return self.base_epochs or train_epochs, proto, disp


def load_config(path: str | Path) -> dict:
    """Experiment YAML -> dict, with a ConfigError naming the file when unreadable."""
    doc = read_yaml(path)
    unknown = set(doc) - {"data", "model", "head", "train", "eval", "method", "name"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level blocks {sorted(unknown)}")
    return doc


def head_margin(head_block: dict | None) -> tuple[str, dict, str, float, float]:
    """``head:`` block -> (head name, head kwargs, dispersion margin, scale, margin value)."""
    block = dict(head_block or {"name": "softmax"})
    name = block.pop("name", "softmax")
    if name not in MARGIN_HEADS:
        raise ConfigError(f"head.name: the method supports {', '.join(MARGIN_HEADS)}, got {name!r}")
    scale = float(block.get("s", block.get("scale", 64.0)))
    margin = float(block.get("m", block.get("margin", 0.5 if name == "arcface" else 0.35)))
    return name, block, MARGIN_HEADS[name], scale, margin
