"""Backbones: ``create_model(name, input_size=None, embedding_size=512)``; see :func:`list_models`."""

from tailface.models.registry import create_model, default_input_size, list_models, register_model, resolve_image_size
from tailface.models import iresnet, mobilefacenet, resnet, small  # noqa: F401  (register their models)
from tailface.models.iresnet import load_insightface_backbone

__all__ = ["create_model", "default_input_size", "list_models", "load_insightface_backbone", "register_model",
           "resolve_image_size"]
