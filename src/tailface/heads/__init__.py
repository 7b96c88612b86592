"""Classification heads: ``create_head(name, embedding_size, num_classes, **kwargs)``."""

from tailface.heads.base import HeadOutput, create_head, list_heads, register_head
from tailface.heads import softmax, cosface, arcface, center_loss, range_loss  # noqa: F401  (registers)
from tailface.heads import logit_adjusted, ldam  # noqa: F401  (registers; class-count-aware losses)
from tailface.heads import subcenter, adaface  # noqa: F401  (registers; sub-center ArcFace, AdaFace)
from tailface.heads import vpl  # noqa: F401  (registers; variational prototype learning)

__all__ = ["HeadOutput", "create_head", "list_heads", "register_head"]
