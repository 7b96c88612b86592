"""Validation on verification .bin sets during training (``eval.during_training``).

``eval.during_training: {sets: [data/lfw.bin, data/cfp_fp.bin], every: 500, batch_size: 64}``
makes the trainer call a :class:`Validator` every ``every`` optimizer steps and after the last
step: it extracts flip-fused features of each set's images with the model being trained (eval
mode, no gradients; the model goes back to training mode after) and computes the 10-fold accuracy
of :mod:`tailface.eval.verification_bin`. The trainer (which does not import this module) writes
the results to ``val.csv`` beside ``train.csv`` (``epoch,step,metric,value``; metrics
``<set>/accuracy`` and ``<set>/accuracy_std``, ``<set>`` the file's stem) and, when
``train.tensorboard`` is on, as TensorBoard scalars ``val/<set>/accuracy``.

An entry ``verification:DIR`` stands for every ``.bin`` directly in DIR (sorted by name, the
protocol family of :mod:`tailface.eval.protocols.verification_suite`): each file is a set named by
its stem as above, plus ``verification/mean_accuracy``, the unweighted mean of their accuracies
(the suite's mean row; ``verification:DIR/mean_accuracy`` for a second suite).

The experiment runner builds it with :func:`validator_from_config` (None when the block is
absent); any caller of :func:`tailface.train.fit` can pass ``make_validator(...)`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tailface.data.verification_bin import BinFaceSet, bin_files, read_bin
from tailface.errors import ConfigError
from tailface.eval.features import extract_features
from tailface.eval.protocols.verification_suite import PREFIX as SUITE_PREFIX
from tailface.eval.protocols.verification_suite import suite_folder
from tailface.eval.verification_bin import evaluate_bin
from tailface.models import resolve_image_size
from tailface.train.checkpoint import spec_of


@dataclass(frozen=True)
class DuringTraining:
    sets: tuple[str, ...]
    every: int
    batch_size: int = 64

    def to_block(self) -> dict:
        return {"sets": list(self.sets), "every": self.every, "batch_size": self.batch_size}


def parse_during_training(block, where: str = "eval.during_training") -> DuringTraining | None:
    """The ``eval.during_training`` block (None when absent); :class:`ConfigError` naming the key."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ConfigError(f"{where} must be a mapping with keys sets, every (batch_size), got {block!r}")
    unknown = sorted(set(block) - {"sets", "every", "batch_size"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: sets, every, batch_size")
    sets = block.get("sets")
    if isinstance(sets, str):
        sets = [sets]
    if not sets or not isinstance(sets, list) or not all(
            isinstance(s, str) and (s.endswith(".bin") or (s.startswith(SUITE_PREFIX) and suite_folder(s)))
            for s in sets):
        raise ConfigError(f"{where}.sets must be a list of verification .bin files (or verification:DIR for "
                          f"every .bin of a folder), got {sets!r}")
    values = {}
    for key, default in (("every", None), ("batch_size", 64)):
        v = block.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{where}.{key} must be a positive integer, got {v!r}")
        values[key] = v
    return DuringTraining(tuple(sets), values["every"], values["batch_size"])


class Validator:
    """``validator(model, step, image_size=None, device=None) -> {metric: value}``; ``every``:
    the trainer calls it when ``step % every == 0`` and after the last step."""

    def __init__(self, sets, every: int, batch_size: int = 64, progress: bool = False):
        if int(every) <= 0:
            raise ConfigError(f"validation every {every} steps: must be positive")
        self.every, self.batch_size, self.progress = int(every), int(batch_size), progress
        self.sets: dict[str, BinFaceSet] = {}
        self.suites: dict[str, list[str]] = {}  # mean metric -> the names of its sets
        for entry in sets:
            if str(entry).startswith(SUITE_PREFIX):
                mean = "verification" if "verification" not in self.suites else str(entry)
                self.suites[mean] = [self._add(path) for path in bin_files(suite_folder(str(entry)))]
            else:
                self._add(entry)

    def _add(self, path) -> str:
        name = Path(path).stem
        if name in self.sets:
            name = str(path)
        self.sets[name] = BinFaceSet(read_bin(path))  # a bad file fails here, before training
        return name

    def __call__(self, model, step: int, image_size=None, device=None) -> dict[str, float]:
        if image_size is None:
            spec = spec_of(model) or {}
            image_size = resolve_image_size(spec.get("name"), spec.get("kwargs", {}).get("input_size"))
        if device is None:
            device = next(model.parameters()).device
        out: dict[str, float] = {}
        for name, faceset in self.sets.items():
            feats = extract_features(model, faceset, image_size, self.batch_size, flip=True, device=device,
                                     progress=self.progress)
            r = evaluate_bin(feats, faceset.vbin.issame, source=faceset.source)
            out[f"{name}/accuracy"] = r["accuracy_mean"]
            out[f"{name}/accuracy_std"] = r["accuracy_std"]
        for mean, names in self.suites.items():
            out[f"{mean}/mean_accuracy"] = sum(out[f"{n}/accuracy"] for n in names) / len(names)
        return out


def make_validator(sets, every: int, batch_size: int = 64) -> Validator:
    """A :class:`Validator` over the verification .bin files ``sets`` (and ``verification:DIR``
    folders; read now)."""
    return Validator(sets, every, batch_size)


def validator_from_config(during: DuringTraining | None) -> Validator | None:
    return None if during is None else make_validator(during.sets, during.every, during.batch_size)
