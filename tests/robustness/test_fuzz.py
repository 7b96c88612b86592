"""Bounded fuzzing (hypothesis, derandomized, a fixed example budget; well under 60 s in all): the
parsers of every input file and the YAML validators raise only tailface's own errors on any input,
never another exception, a crash or a hang."""

from __future__ import annotations

import io
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailface.errors import TailfaceError

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@contextmanager
def no_hang(seconds: int = 10):
    def alarm(signum, frame):
        raise AssertionError(f"no answer within {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def only_tailface_errors(fn, *args, **kwargs):
    """``fn(*args)`` may succeed or raise a TailfaceError; anything else fails the test."""
    with no_hang():
        try:
            return fn(*args, **kwargs)
        except TailfaceError as exc:
            assert str(exc).strip(), "an error without a message"
            return None


lines = st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=8)
numberish = st.one_of(st.integers(-5, 10**20).map(str), st.floats(allow_nan=True, allow_subnormal=False).map(str),
                      st.sampled_from(["", "abc", "1e400", "-0", "0x10", "nan", "inf", "\t"]))


# -- RecordIO ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    from tailface.data.recordio import write_recordio
    from tailface.data.synthetic import synthetic_faceset

    folder = tmp_path_factory.mktemp("pack")
    write_recordio(synthetic_faceset(num_identities=4, image_size=16, max_images=3), folder / "train.rec",
                   progress=False)
    return folder


def _read_all(rec: Path) -> None:
    from tailface.data.recordio import RecordIOFaceSet

    faceset = RecordIOFaceSet(rec)
    for i in range(len(faceset)):
        faceset.read(i)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=8)), max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_rec_bytes_mutated(pack, tmp_path, edits, cut):
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pack, work)
    data = bytearray((work / "train.rec").read_bytes())
    for at, chunk in edits:
        at %= len(data)
        data[at:at + len(chunk)] = chunk
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    (work / "train.rec").write_bytes(bytes(data))
    only_tailface_errors(_read_all, work / "train.rec")


@FUZZ
@given(idx=st.lists(st.tuples(st.integers(-3, 40), st.integers(-10, 20_000)), max_size=20), junk=lines)
def test_idx_replaced(pack, tmp_path, idx, junk):
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pack, work)
    (work / "train.idx").write_text("".join(f"{k}\t{o}\n" for k, o in idx) + "\n".join(junk[:2]))
    only_tailface_errors(_read_all, work / "train.rec")


# -- list, identity, landmarks, pairs files ---------------------------------------------------------

@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 8)).save(root / name)
    (root / "empty.png").write_bytes(b"")
    return root


names = st.sampled_from(["a.png", "b.png", "c.png", "empty.png", "missing.png", "", "a.png extra", "#c.png"])


@FUZZ
@given(rows=st.lists(st.tuples(names, numberish, st.sampled_from([" ", "\t", "  "])), max_size=8), junk=lines)
def test_list_file(images, rows, junk):
    from tailface.data.sources import ListFileFaceSet

    path = images / "list.txt"
    path.write_text("\n".join([f"{n}{sep}{label}" for n, label, sep in rows] + junk[:2]), encoding="utf-8")
    only_tailface_errors(ListFileFaceSet, path)


@FUZZ
@given(rows=st.lists(st.tuples(names, numberish), max_size=8), junk=lines,
       on_missing=st.sampled_from(["error", "skip"]))
def test_identity_file(images, rows, junk, on_missing):
    from tailface.data.sources import IdentityFileFaceSet

    path = images.parent / f"{images.name}-identity.txt"
    path.write_text("\n".join([f"{n} {label}" for n, label in rows] + junk[:2]), encoding="utf-8")
    only_tailface_errors(IdentityFileFaceSet, images, path, on_missing=on_missing)


@FUZZ
@given(header=st.lists(st.sampled_from(["file", "identity", "score", "left_eye_x", "left_eye_y", "right_eye_x",
                                        "right_eye_y", "nose_x", "nose_y", "mouth_left_x", "mouth_left_y",
                                        "mouth_right_x", "mouth_right_y", "extra", ""]), max_size=14),
       full_header=st.booleans(), rows=st.lists(st.lists(numberish, max_size=14), max_size=5))
def test_landmarks_csv(tmp_path, header, full_header, rows):
    from tailface.data.landmarks import COORD_COLUMNS, read_landmarks

    if full_header:
        header = ["file", *COORD_COLUMNS, *header[:2]]
    path = tmp_path / "landmarks.csv"
    path.write_text("\n".join([",".join(header)] + [",".join(["a.png", *r]) for r in rows]) + "\n", encoding="utf-8")
    table = only_tailface_errors(read_landmarks, path)
    if table is not None:
        only_tailface_errors(table.mean_points)


@FUZZ
@given(head=st.tuples(numberish, numberish), rows=st.lists(st.lists(st.one_of(numberish, st.sampled_from(
    ["A", "B", "Name_X"])), max_size=5), max_size=10))
def test_pairs_file(tmp_path, head, rows):
    from tailface.eval.lfw_pairs import read_pairs

    path = tmp_path / "pairs.txt"
    path.write_text("\n".join([" ".join(head)] + [" ".join(r) for r in rows]) + "\n", encoding="utf-8")
    only_tailface_errors(read_pairs, path)


# -- BLUFR .mat -------------------------------------------------------------------------------------

arrays = st.one_of(
    st.lists(st.integers(-3, 12), max_size=12).map(lambda v: np.asarray(v, dtype=np.float64).reshape(-1, 1)),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False), max_size=6).map(
        lambda v: np.asarray(v).reshape(-1, 1)),
    st.text(max_size=6).map(np.asarray),
    st.lists(st.lists(st.integers(1, 8), min_size=1, max_size=6), max_size=3).map(
        lambda cells: np.array([[np.asarray(c, dtype=np.float64).reshape(-1, 1)] for c in cells] + [[None]],
                               dtype=object)[:-1] if cells else np.empty((0, 1), dtype=object)))
BLUFR_KEYS = ["imageList", "labels", "trainIndex", "testIndex", "galIndex", "probIndex", "devTrainIndex",
              "devTestIndex"]


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(BLUFR_KEYS), arrays, max_size=8), raw=st.binary(max_size=64),
       as_bytes=st.booleans())
def test_blufr_mat(tmp_path, doc, raw, as_bytes):
    import scipy.io

    from tailface.eval.blufr import load_blufr_config

    path = tmp_path / "cfg.mat"
    if as_bytes:
        path.write_bytes(b"MATLAB 5.0 MAT-file" + raw)
    else:
        buf = io.BytesIO()
        scipy.io.savemat(buf, doc or {"x": np.zeros(1)})
        path.write_bytes(buf.getvalue())
    only_tailface_errors(load_blufr_config, path)


# -- YAML validators --------------------------------------------------------------------------------

KEYS = ["name", "data", "model", "head", "train", "eval", "pretrain", "method", "lr", "epochs", "batch_size",
        "subset", "groups", "protocols", "budget", "num_super", "mode", "ratio", "seed", "sampler", "options",
        "milestones", "schedule", "width", "embedding_size", "input_size", "m", "s", "tail_init", "unknown"]
leaves = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True, allow_subnormal=False),
                   st.sampled_from(["abc", "small", "softmax", "arcface", "AB", "ABCD", "synthetic", "auto",
                                    "multistep", "blufr", "", "1e-3"]))
yaml_docs = st.recursive(leaves, lambda children: st.one_of(st.lists(children, max_size=3),
                                                            st.dictionaries(st.sampled_from(KEYS), children,
                                                                            max_size=4)), max_leaves=12)


@settings(FUZZ, max_examples=150)
@given(doc=st.dictionaries(st.sampled_from(KEYS[:8] + ["unknown"]), yaml_docs, max_size=5))
def test_experiment_config(doc):
    from tailface.experiment import ExperimentConfig

    only_tailface_errors(ExperimentConfig.from_dict, doc)


@settings(FUZZ, max_examples=100)
@given(doc=st.dictionaries(st.sampled_from(KEYS), yaml_docs, max_size=5))
def test_train_and_method_blocks(doc):
    from tailface.method.config import MethodConfig
    from tailface.train.config import TrainConfig

    only_tailface_errors(TrainConfig.from_dict, doc)
    only_tailface_errors(MethodConfig.from_dict, doc)


@FUZZ
@given(text=st.text(max_size=200))
def test_yaml_text(tmp_path, text):
    from tailface.experiment import ExperimentConfig

    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    only_tailface_errors(ExperimentConfig.load, path)
