"""Face datasets: the :class:`FaceSet` abstraction and its sources."""

from tailface.data.faceset import FaceSet, InMemoryFaceSet

__all__ = ["FaceSet", "InMemoryFaceSet"]
