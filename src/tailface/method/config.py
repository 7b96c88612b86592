"""The ``method:`` block of an experiment: aggregate-and-disperse's own settings.

``method`` keys (all optional)::

    base: ab                  # the base model that drives the clustering: ab (train it on the head
                              # classes, the paper's choice), abcd (train it on every class), or the
                              # path of a model file: a tailface checkpoint (.pt) or any ONNX face
                              # model (.onnx); no base stage then, and it is evaluated as "base"
    base_input: {}            # preprocessing of a foreign ONNX base: {size, mean, std, channel_order}
    base_epochs: 10           # base model (= the AB baseline's budget); default train.epochs
    budget: 10                # prototype + dispersion epochs; default train.epochs
    prototype_epochs: null    # default round(0.4 * budget) (paper 40 of 100)
    dispersion_epochs: null   # default budget - prototype_epochs (paper 60 of 100)
    dispersion_lr: null       # default 0.2 * train.lr (paper 0.02 after 0.1)
    prototype_from_base: false  # start the prototype CNN from the base model
    num_super: auto           # or an int (total super classes)
    num_super_factor: 1.0     # multiplies num_super (Table 4: 0.25, 0.5, 1, 2 x the automatic value)
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

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tailface.errors import ConfigError
from tailface.train.config import TrainConfig
from tailface.yaml_config import unknown_key

STAGES = ("base", "prototype", "dispersion", "abcd")
EVALUABLE = ("ours", "base", "abcd", "prototype")
BASES = ("ab", "abcd")


@dataclass
class MethodConfig:
    base: str = "ab"
    base_input: dict = field(default_factory=dict)
    base_epochs: int | None = None
    budget: int | None = None
    prototype_epochs: int | None = None
    dispersion_epochs: int | None = None
    dispersion_lr: float | None = None
    prototype_from_base: bool = False
    num_super: str | int = "auto"
    num_super_factor: float = 1.0
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
    def from_dict(cls, d: dict | None, where: str = "method") -> MethodConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise unknown_key(where, unknown[0], known)
        try:
            cfg = cls(**d)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "method") -> None:
        def bad(msg: str):
            raise ConfigError(f"{where}.{msg}")

        if not isinstance(self.base, str) or not self.base:
            bad(f"base must be ab, abcd or the path of a checkpoint, got {self.base!r}")
        if self.base not in BASES and not Path(self.base).is_file():
            bad(f"base: {self.base}: not ab or abcd, and no such checkpoint file")
        if not isinstance(self.base_input, dict) or set(self.base_input) - {"size", "mean", "std", "channel_order"}:
            bad(f"base_input must be a mapping of size, mean, std, channel_order; got {self.base_input!r}")
        if self.base_input and self.trains_base:
            bad("base_input is the preprocessing of a base model file; it does not apply to base: ab | abcd")
        if not (isinstance(self.num_super_factor, (int, float)) and not isinstance(self.num_super_factor, bool)
                and self.num_super_factor > 0):
            bad(f"num_super_factor must be a positive number, got {self.num_super_factor!r}")
        if self.mode not in ("sample", "batch"):
            bad(f"mode must be sample or batch, got {self.mode!r}")
        if self.kmeans_init not in ("kmeans++", "random"):
            bad(f"kmeans_init must be kmeans++ or random, got {self.kmeans_init!r}")
        if not isinstance(self.evaluate, list) or set(self.evaluate) - set(EVALUABLE):
            bad(f"evaluate: unknown model in {self.evaluate!r} (known: {', '.join(EVALUABLE)})")
        for stage in STAGES:
            block = getattr(self, f"{stage}_train")
            if not isinstance(block, dict):
                bad(f"{stage}_train must be a mapping of train keys, got {block!r}")
            if "epochs" in block:
                bad(f"{stage}_train: set epochs through method.budget / "
                    f"method.{'base_epochs' if stage == 'base' else 'budget'}, not here")
        for name in ("base_epochs", "budget", "prototype_epochs", "dispersion_epochs"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                bad(f"{name} must be a positive integer, got {value!r}")
        if self.num_super != "auto" and not (isinstance(self.num_super, int) and self.num_super > 0):
            bad(f"num_super must be 'auto' or a positive integer, got {self.num_super!r}")
        if not (isinstance(self.kmeans_iters, int) and self.kmeans_iters > 0):
            bad(f"kmeans_iters must be a positive integer, got {self.kmeans_iters!r}")
        if self.dispersion_lr is not None and not (isinstance(self.dispersion_lr, (int, float))
                                                   and not isinstance(self.dispersion_lr, bool)
                                                   and self.dispersion_lr > 0):
            bad(f"dispersion_lr must be a positive number or null, got {self.dispersion_lr!r}")
        if not (isinstance(self.feature_batch_size, int) and self.feature_batch_size > 0):
            bad(f"feature_batch_size must be a positive integer, got {self.feature_batch_size!r}")
        for name in ("prototype_from_base", "normalize_means", "spherical", "renormalize_phi", "abcd_baseline"):
            if not isinstance(getattr(self, name), bool):
                bad(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not (isinstance(self.ratio, dict) and set(self.ratio) <= {"C", "D"}
                and all(isinstance(v, (int, float)) and v >= 0 for v in self.ratio.values())):
            bad(f"ratio must map C and D to non-negative numbers, got {self.ratio!r}")

    def epochs(self, train_epochs: int) -> tuple[int, int, int]:
        """(base, prototype, dispersion) epochs."""
        budget = self.budget or train_epochs
        proto = self.prototype_epochs or max(1, round(0.4 * budget))
        disp = self.dispersion_epochs or max(1, budget - proto)
        return self.base_epochs or train_epochs, proto, disp

    @property
    def trains_base(self) -> bool:
        return self.base in BASES

    def stage_names(self) -> list[str]:
        """The training stages, in order."""
        return ((["base"] if self.trains_base else []) + ["prototype", "dispersion"]
                + (["abcd"] if self.abcd_baseline else []))

    def stage_changes(self, stage: str, train: TrainConfig) -> dict:
        """Changes to the train block for a training stage: its epochs (and the dispersion
        stage's learning rate), then ``<stage>_train``."""
        base, proto, disp = self.epochs(train.epochs)
        epochs = {"base": base, "prototype": proto, "dispersion": disp, "abcd": proto + disp}
        changes: dict = {"epochs": epochs[stage]}
        if stage == "dispersion":
            changes["lr"] = self.dispersion_lr or 0.2 * train.lr
        return {**changes, **getattr(self, f"{stage}_train")}

    def without_stage_keys(self, keys) -> MethodConfig:
        """A copy whose ``<stage>_train`` blocks no longer set ``keys`` (command-line changes win)."""
        changes: dict[str, Any] = {
            f"{stage}_train": {k: v for k, v in getattr(self, f"{stage}_train").items() if k not in keys}
            for stage in STAGES}
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
