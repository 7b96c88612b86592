"""Classification heads: ``create_head(name, embedding_size, num_classes, **kwargs)``."""

from tailface.heads.base import HeadOutput, create_head, list_heads, register_head
from tailface.heads import softmax  # noqa: F401  (registers)

__all__ = ["HeadOutput", "create_head", "list_heads", "register_head"]
