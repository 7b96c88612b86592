"""The aligned loose crops: tailface's aligner from the release's landmarks, a cache keyed on what the
content depends on (landmark file, size, template; each chunk's image files), atomic chunks and a
resume after a kill; the synthetic faces' landmarks are where the renderer draws the features."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tailface.data import ijb_aligned
from tailface.data.align import align_face
from tailface.data.ijb_aligned import AlignedIjb, align_loose_crop
from tailface.data.ijb_release import IjbRelease
from tailface.data.images import read_image
from tailface.data.synthetic import face_landmarks, face_parameters, render
from tailface.eval.ijb_synthetic import write_synthetic_ijb

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def release(tmp_path):
    write_synthetic_ijb(tmp_path / "IJBC", "ijbc", enrolled=2, unenrolled=1, image_size=32)
    return IjbRelease.open("ijbc", tmp_path / "IJBC")


@pytest.fixture
def counted(monkeypatch):
    calls = []

    def counting(image, landmarks, size, template):
        calls.append(size)
        return align_face(image, landmarks, size, template)

    monkeypatch.setattr(ijb_aligned, "align_face", counting)
    return calls


def test_faces_are_tailface_alignments_of_the_loose_crops(release, tmp_path):
    faces = AlignedIjb(release, 16, cache_root=tmp_path / "cache", chunk=8, progress=False)
    assert len(faces) == len(release.images) and faces.image_ids == release.images.names
    for i in (0, 9, len(faces) - 1):
        want = align_face(read_image(release.loose_crop / release.images.names[i]), release.images.landmarks[i], 16)
        assert np.array_equal(faces.read(i), want) and np.array_equal(want, align_loose_crop(
            read_image(release.loose_crop / release.images.names[i]), release.images.landmarks[i], 16, "arcface"))
    templates = np.unique(release.images.templates)
    assert [int(faces.class_names[k]) for k in faces.labels] == release.images.templates.tolist()
    assert len(faces.class_names) == len(templates)


def test_cache_is_reused_and_keyed_on_landmarks_size_and_files(release, tmp_path, counted):
    n, root = len(release.images), tmp_path / "cache"
    first = AlignedIjb(release, 16, cache_root=root, chunk=8, progress=False)
    assert len(counted) == n and first.aligned == n
    again = AlignedIjb(release, 16, cache_root=root, chunk=8, progress=False)
    assert len(counted) == n and again.aligned == 0 and again.folder == first.folder
    assert np.array_equal(again.read(n - 1), first.read(n - 1))
    other_size = AlignedIjb(release, 20, cache_root=root, chunk=8, progress=False)
    assert other_size.folder != first.folder and len(counted) == 2 * n
    image = release.loose_crop / release.images.names[9]  # in chunk 1 (images 8..15)
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = AlignedIjb(release, 16, cache_root=root, chunk=8, progress=False)
    assert touched.aligned == 8 and len(counted) == 2 * n + 8
    lm = release.name_5pts_score
    lm.write_text(lm.read_text().replace("\n", "\n", 1).replace(" ", "  ", 1))  # same numbers, another file
    moved = AlignedIjb(IjbRelease.open("ijbc", release.root), 16, cache_root=root, chunk=8, progress=False)
    assert moved.folder != first.folder and moved.aligned == n


def test_default_cache_is_under_tailface_data(release, tmp_path, monkeypatch):
    monkeypatch.setenv("TAILFACE_DATA", str(tmp_path / "data"))
    faces = AlignedIjb(release, 16, progress=False)
    assert faces.folder.parent == tmp_path / "data" / "ijbc-aligned"
    assert faces.folder.name.startswith("16px-arcface-") and sorted(p.name for p in faces.folder.iterdir())[0] == \
        "chunk_00000.npz"


def test_a_kill_while_writing_a_chunk_resumes_with_the_chunks_done(release, tmp_path, counted):
    """SIGKILL after chunk 1's temporary file is written, before its rename: chunk 0 is kept, chunk 1
    is not there (only its .tmp), and the next run aligns chunk 1 onwards, nothing before."""
    root = tmp_path / "cache"
    code = (f"from tailface.data.ijb_release import IjbRelease; from tailface.data.ijb_aligned import AlignedIjb; "
            f"AlignedIjb(IjbRelease.open('ijbc', {str(release.root)!r}), 16, cache_root={str(root)!r}, chunk=8, "
            f"progress=False)")
    env = {**os.environ, "TAILFACE_TEST_KILL_AT": "tmp-written.chunk_00001.npz:1",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    folder = next(root.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["chunk_00000.npz", "chunk_00001.npz.tmp.npz"]
    resumed = AlignedIjb(release, 16, cache_root=root, chunk=8, progress=False)
    assert resumed.aligned == len(release.images) - 8 == len(counted)
    assert not list(folder.glob("*.tmp*"))


def test_synthetic_landmarks_sit_on_the_drawn_features():
    """At 128 px the eye landmarks fall on the pupils: darker than 90 % of the image, whatever the
    pose, lighting and expression."""
    params = face_parameters(np.full(10, 3), seed=4)
    images = render(params, 128).astype(np.float64).mean(axis=3)
    points = face_landmarks(params, 128)
    for image, pts in zip(images, points):
        for x, y in pts[:2]:
            assert image[int(round(y)), int(round(x))] <= np.percentile(image, 10)


def test_the_model_template_cuts_the_crops_and_keys_the_cache(release, tmp_path):
    root = tmp_path / "cache"
    arcface = AlignedIjb(release, 16, cache_root=root, chunk=8, progress=False)
    dlib = AlignedIjb(release, 16, cache_root=root, chunk=8, progress=False, template="dlib-chip")
    assert dlib.folder != arcface.folder and "dlib-chip" in dlib.folder.name
    want = align_face(read_image(release.loose_crop / release.images.names[0]), release.images.landmarks[0], 16,
                      "dlib-chip")
    assert np.array_equal(dlib.read(0), want) and not np.array_equal(dlib.read(0), arcface.read(0))
