"""An IJB-B or IJB-C release laid out as insightface distributes it (``IJB_release/IJBC/``).

``ROOT/meta/<t>_face_tid_mid.txt``, ``<t>_name_5pts_score.txt`` (the face crops: :mod:`ijb_meta`),
``<t>_template_pair_label.txt`` (1:1 pairs: :mod:`ijb_pairs`), the 1:N lists and the images in
``ROOT/loose_crop/``. ``<t>`` is ``ijbb`` or ``ijbc``. The 1:N lists, as the anchors name them
(insightface ``recognition/_evaluation_/ijb/ijb_1n.py`` and ``ijb_evals.py``, AdaFace
``validation_mixed/validate_IJB_BC.py``): IJB-C ``ijbc_1N_gallery_G1.csv``, ``ijbc_1N_gallery_G2.csv``,
``ijbc_1N_probe_mixed.csv``; IJB-B ``ijbb_1N_gallery_S1.csv``, ``ijbb_1N_gallery_S2.csv``,
``ijbb_1N_probe_mixed.csv``. ``ROOT`` may also be the folder above (``IJB_release/``, holding
``IJBC/``). Files are read on first use; a missing or malformed one is a :class:`DataError` naming it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from tailface.data.ijb_meta import ImageList, SearchList, read_image_list, read_search_list
from tailface.data.ijb_pairs import PairList, read_pairs
from tailface.errors import ConfigError, DataError

KINDS = ("ijbb", "ijbc")
#: 1:N file names per kind: the two galleries, then the probe list.
SEARCH_FILES = {
    "ijbb": ("ijbb_1N_gallery_S1.csv", "ijbb_1N_gallery_S2.csv", "ijbb_1N_probe_mixed.csv"),
    "ijbc": ("ijbc_1N_gallery_G1.csv", "ijbc_1N_gallery_G2.csv", "ijbc_1N_probe_mixed.csv"),
}
GALLERY_NAMES = {"ijbb": ("S1", "S2"), "ijbc": ("G1", "G2")}


def find_root(kind: str, path) -> Path:
    """The release folder holding ``meta/`` (``path`` itself or ``path/IJBB``, ``path/IJBC``)."""
    if kind not in KINDS:
        raise ConfigError(f"IJB release kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(path)
    for root in (path, path / kind.upper()):
        if (root / "meta").is_dir():
            return root
    if not path.exists():
        raise DataError(f"{path}: IJB release folder not found")
    raise DataError(f"{path / 'meta' / f'{kind}_face_tid_mid.txt'}: file not found (expected an {kind.upper()} "
                    f"release: meta/ and loose_crop/ in {path} or {path / kind.upper()})")


@dataclass(frozen=True)
class IjbRelease:
    kind: str
    root: Path

    @classmethod
    def open(cls, kind: str, path) -> IjbRelease:
        return cls(kind, find_root(kind, path))

    @property
    def meta(self) -> Path:
        return self.root / "meta"

    @property
    def loose_crop(self) -> Path:
        return self.root / "loose_crop"

    @property
    def face_tid_mid(self) -> Path:
        return self.meta / f"{self.kind}_face_tid_mid.txt"

    @property
    def name_5pts_score(self) -> Path:
        return self.meta / f"{self.kind}_name_5pts_score.txt"

    @property
    def pair_file(self) -> Path:
        return self.meta / f"{self.kind}_template_pair_label.txt"

    @property
    def search_files(self) -> tuple[Path, Path, Path]:
        g1, g2, probe = SEARCH_FILES[self.kind]
        return self.meta / g1, self.meta / g2, self.meta / probe

    @property
    def gallery_names(self) -> tuple[str, str]:
        return GALLERY_NAMES[self.kind]

    @functools.cached_property
    def images(self) -> ImageList:
        return read_image_list(self.face_tid_mid, self.name_5pts_score)

    @functools.cached_property
    def pairs(self) -> PairList:
        return read_pairs(self.pair_file)

    @functools.cached_property
    def searches(self) -> tuple[SearchList, SearchList, SearchList]:
        g1, g2, probe = (read_search_list(p) for p in self.search_files)
        return g1, g2, probe

    def read_all(self) -> IjbRelease:
        """Read and check every meta file now (a :class:`DataError` naming the first bad one)."""
        _ = self.images, self.pairs, self.searches
        return self

    def landmarks_digest(self) -> str:
        """sha1 of ``<t>_name_5pts_score.txt`` (which images are aligned, and how)."""
        digest = hashlib.sha1()
        try:
            with open(self.name_5pts_score, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except FileNotFoundError:
            raise DataError(f"{self.name_5pts_score}: file not found (an IJB release has it under meta/)") from None
        return digest.hexdigest()
