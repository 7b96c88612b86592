"""Decode + align throughput (images/s): image folder vs RecordIO pack, 1 and 2 DataLoader workers.

Uses the first N LFW images with detected landmarks (``faces_root()/lfw``) when present, else N
generated 112x112 noise-ish JPEGs (landmarks on the template). The pack is written to a temporary
folder. Each setting runs ``--repeats`` full passes (after one untimed warm-up pass over both
sources, so every setting reads from the page cache) and reports the best; ratios are against the
1-worker folder run measured in the same process.

    python benchmarks/bench_decode.py [--images 2000] [--batch-size 64] [--repeats 2] [--reencode [--quality 95]]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tailface.data.align import ARCFACE_TEMPLATE_112, align_face
from tailface.data.recordio import RecordIOFaceSet, write_recordio
from tailface.data.sources import ImageFolderFaceSet
from tailface.data.tensors import normalize, resized
from tailface.paths import faces_root


class AlignedFaces(torch.utils.data.Dataset):
    """Decode image ``i``, align it with its five landmarks (unless ``align=False``: decode and
    resize only), return a 3x112x112 tensor."""

    def __init__(self, faceset, landmarks: dict[str, np.ndarray], align: bool = True):
        self.faceset = faceset
        self.landmarks = [landmarks[image_id] for image_id in faceset.image_ids]
        self.align = align

    def __len__(self):
        return len(self.faceset)

    def __getitem__(self, i):
        image = self.faceset.read(i)
        if self.align:
            image = np.array(align_face(image, self.landmarks[i]))  # writable, as torch wants
        image = torch.from_numpy(np.ascontiguousarray(resized(image, (112, 112)))).permute(2, 0, 1)
        return normalize(image), int(self.faceset.labels[i])


def lfw_subset(n: int):
    lfw = faces_root() / "lfw"
    if not (lfw / "landmarks.csv").is_file():
        return None
    landmarks = {}
    with open(lfw / "landmarks.csv") as f:
        for row in csv.DictReader(f):
            if row["left_eye_x"]:
                values = [float(row[k]) for k in list(row)[3:13]]
                landmarks[f"{row['identity']}/{row['file']}"] = np.array(values).reshape(5, 2)
    folder = ImageFolderFaceSet(lfw / "lfw-deepfunneled")
    keep = [i for i, image_id in enumerate(folder.image_ids) if image_id in landmarks][:n]
    return folder.subset(keep), landmarks, f"LFW deep-funneled 250x250 JPEG ({lfw})"


def generated_set(n: int, root: Path):
    rng = np.random.default_rng(0)
    landmarks = {}
    for i in range(n):
        image_id = f"id{i % 200:03d}/{i:05d}.jpg"
        path = root / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        smooth = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)
        image = Image.fromarray(smooth).resize((112, 112), Image.BILINEAR)
        noise = rng.integers(-20, 21, (112, 112, 3))
        Image.fromarray((np.asarray(image) + noise).clip(0, 255).astype(np.uint8)).save(path, quality=90)
        landmarks[image_id] = ARCFACE_TEMPLATE_112 + rng.normal(0, 2, (5, 2))
    return ImageFolderFaceSet(root), landmarks, "generated 112x112 JPEG"


def image_paths(faceset) -> list[Path]:
    if hasattr(faceset, "parent"):  # a subset of an ImageFolderFaceSet
        return [faceset.parent.paths[j] for j in faceset.indices]
    return faceset.paths


def throughput(dataset, workers: int, batch_size: int, repeats: int) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                         persistent_workers=True)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        count = sum(len(labels) for _, labels in loader)
        best = min(best, time.perf_counter() - start)
    assert count == len(dataset)
    return len(dataset) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--reencode", action="store_true",
                        help="pack re-encoded JPEGs instead of the files' own bytes")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality with --reencode")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    with tempfile.TemporaryDirectory() as tmp:
        found = lfw_subset(args.images) or generated_set(args.images, Path(tmp) / "folder")
        folder, landmarks, what = found
        rec = RecordIOFaceSet(write_recordio(folder, Path(tmp) / "pack/train.rec", quality=args.quality,
                                             progress=False, reencode=args.reencode).path)
        folder_bytes = sum(path.stat().st_size for path in image_paths(folder))
        print(f"data: {len(folder)} images of {folder.num_classes} identities, {what}: "
              f"{folder_bytes / len(folder) / 1024:.1f} KiB/image as files, "
              f"{rec.reader.size / len(rec) / 1024:.1f} KiB/image in the pack "
              f"({f're-encoded, JPEG q{args.quality}' if args.reencode else 'the files bytes, copied'})")
        settings = [(name, fs, workers, align) for align in (True, False) for name, fs in
                    (("folder", folder), ("recordio", rec)) for workers in ((1, 2) if align else (1,))]
        for fs in (folder, rec):  # warm-up: page cache, lazy imports
            for i in range(len(fs)):
                fs.read(i)
        results = {}
        for name, fs, workers, align in settings:
            dataset = AlignedFaces(fs, landmarks, align)
            results[name, workers, align] = throughput(dataset, workers, args.batch_size, args.repeats)
        base = results["folder", 1, True]
        print(f"{'source':<10} {'work':<14} {'workers':>7} {'images/s':>9} {'vs folder/1':>12}")
        for (name, workers, align), rate in results.items():
            work = "decode+align" if align else "decode+resize"
            print(f"{name:<10} {work:<14} {workers:>7} {rate:>9.0f} {rate / base:>11.2f}x")


if __name__ == "__main__":
    main()
