"""Training: :func:`fit`, :class:`TrainConfig`, checkpoints (:func:`load_model`)."""

from tailface.train.checkpoint import build_head, build_model, load_checkpoint, load_head, load_model
from tailface.train.config import TrainConfig
from tailface.train.trainer import fit

__all__ = ["TrainConfig", "build_head", "build_model", "fit", "load_checkpoint", "load_head", "load_model"]
