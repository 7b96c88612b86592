"""The built-in evaluation sets: aligned LFW, the held-out synthetic identities, and the held-out
identities of an experiment's own training data (``data.holdout``)."""

from __future__ import annotations

from pathlib import Path

from tailface.data.faceset import FaceSet
from tailface.data.open import open_faceset
from tailface.errors import ConfigError, DataError
from tailface.eval.protocols.registry import EvalOptions, EvalSet, register_eval_set
from tailface.eval.synthetic import eval_faceset
from tailface.paths import prepared_path


def lfw_faceset(lfw: Path | None = None) -> FaceSet:
    path = Path(lfw) if lfw is not None else prepared_path("lfw")
    if not path.exists():
        raise DataError(f"{path}: aligned LFW set not found; run `tailface prepare lfw` first "
                        "(or pass --lfw DIR)")
    return open_faceset(str(path))


def _lfw(options: EvalOptions, image_size: tuple[int, int]) -> FaceSet:
    return lfw_faceset(options.lfw)


def _synthetic(options: EvalOptions, image_size: tuple[int, int]) -> FaceSet:
    return eval_faceset(image_size=image_size[0])


def _heldout(options: EvalOptions, image_size: tuple[int, int]) -> FaceSet:
    if options.heldout is None:
        raise ConfigError("protocol 'heldout' needs the experiment's data.holdout (the identities kept out of "
                          "training); run it from an experiment config or `tailface study`")
    return options.heldout()


def _lfw_pack(options: EvalOptions) -> str:
    return str(Path(options.lfw) if options.lfw is not None else prepared_path("lfw"))


register_eval_set(EvalSet("lfw", _lfw, cache=True, pack=_lfw_pack))
register_eval_set(EvalSet("heldout", _heldout))
register_eval_set(EvalSet("synthetic", _synthetic))
