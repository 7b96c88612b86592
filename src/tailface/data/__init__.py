"""Face datasets: the :class:`FaceSet` abstraction and its sources."""

from tailface.data.faceset import FaceSet, InMemoryFaceSet
from tailface.data.open import open_faceset
from tailface.data.recordio import RecordIOFaceSet, RecordIOReader, RecordIOWriter, write_recordio
from tailface.data.sources import IdentityFileFaceSet, ImageFolderFaceSet, ListFileFaceSet

__all__ = [
    "FaceSet", "InMemoryFaceSet", "open_faceset", "RecordIOFaceSet", "RecordIOReader",
    "RecordIOWriter", "write_recordio", "ImageFolderFaceSet", "ListFileFaceSet", "IdentityFileFaceSet",
]
