"""InsightFace verification .bin: restricted reading (a planted payload is refused and nothing
runs), writing, bad files, the 10-fold accuracy on a hand-computed case, the protocol family,
pack --bin and validation during training."""

import csv
import io
import os
import pickle

import numpy as np
import pytest

from tailface.cli.main import main as cli_main
from tailface.data.images import encode_jpeg
from tailface.data.verification_bin import read_bin, write_bin
from tailface.errors import DataError
from tailface.eval.verification_bin import consecutive_folds, evaluate_bin


def jpeg(value: int, size: int = 16) -> bytes:
    return encode_jpeg(np.full((size, size, 3), value, np.uint8))


class Payload:
    """Unpickling this runs ``fn(*args)``: the classic pickle exploit."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("kind", ["os.system", "builtins.open"])
def test_planted_payload_is_refused_and_nothing_runs(tmp_path, kind):
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload = Payload(os.system, f"touch {marker}")
    else:
        payload = Payload(open, str(marker), "w")
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([jpeg(0), payload], [True]), protocol=2))
    with pytest.raises(DataError, match=r"evil.bin: refused to load: global '(posix|os|nt)\.system'|"
                                        r"evil.bin: refused to load: global '(io|builtins)\.open'"):
        read_bin(path)
    assert not marker.exists()


def test_write_read_roundtrip_and_python2_style(tmp_path):
    images = [jpeg(v) for v in (0, 10, 200, 210)]
    path = write_bin(tmp_path / "a.bin", images, [True, False])
    vbin = read_bin(path)
    assert vbin.images == images and vbin.issame.tolist() == [True, False]
    for protocol in (0, 2):   # bytes as _codecs.encode(..., 'latin1'); numpy bool array for issame
        p = tmp_path / f"p{protocol}.bin"
        p.write_bytes(pickle.dumps((images, np.array([True, False])), protocol=protocol))
        assert read_bin(p).images == images and read_bin(p).issame.tolist() == [True, False]


def test_bad_files_name_the_file(tmp_path, capsys):
    cases = {"odd.bin": pickle.dumps(([jpeg(0)] * 3, [True, False])),
             "notpair.bin": pickle.dumps({"a": 1}),
             "flags.bin": pickle.dumps(([jpeg(0)] * 2, ["yes"])),
             "trunc.bin": pickle.dumps(([jpeg(0)] * 2, [True]))[:20],
             "objarr.bin": pickle.dumps(([jpeg(0)] * 2, np.array([True], dtype=object)))}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=name):
            read_bin(tmp_path / name)
    with pytest.raises(DataError, match="3 images for 2 pairs"):
        read_bin(tmp_path / "odd.bin")
    (tmp_path / "badimg.bin").write_bytes(pickle.dumps(([b"junk", jpeg(0)] * 10, [True] * 10)))
    assert cli_main(["eval", "--features", str(tmp_path / "x.npz"), "--protocols", "bin:" + str(tmp_path / "odd.bin"),
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tailface eval: error:") and "Traceback" not in err


def test_consecutive_folds_match_kfold():
    assert np.bincount(consecutive_folds(6000)).tolist() == [600] * 10
    f = consecutive_folds(23)
    assert np.bincount(f).tolist() == [3, 3, 3] + [2] * 7 and (np.diff(f) >= 0).all()


def test_ten_fold_accuracy_hand_computed():
    """20 pairs, 10 folds of 2 consecutive pairs. Pair k's cosine is scores[k]; pair 19 (same,
    score 0.1) is wrong for every threshold the other folds choose, so fold 9 scores 1/2 and the
    other folds 2/2 (thresholds 0.5 and, for fold 9, 0.55): mean 0.95, std (N-1) =
    sqrt((9 * 0.05**2 + 0.45**2) / 9) = sqrt(0.025), std (N) = 0.15."""
    scores = np.array([0.9, 0.2] * 9 + [0.8, 0.1])
    same = np.array([True, False] * 10)
    x = np.stack([np.ones_like(scores), np.zeros_like(scores)], 1)   # unit vector e0
    y = np.stack([scores, np.sqrt(1 - scores ** 2)], 1)              # cos(e0, y) = score
    features = np.empty((40, 2))
    features[0::2], features[1::2] = x, y
    same[19] = True
    r = evaluate_bin(features, same)
    assert r["fold_accuracy"] == [1.0] * 9 + [0.5]
    assert r["accuracy_mean"] == pytest.approx(0.95)
    assert r["accuracy_std"] == pytest.approx(np.sqrt(0.025))
    assert r["accuracy_std_ddof0"] == pytest.approx(0.15)
    assert r["fold_threshold"][:9] == pytest.approx([0.5] * 9) and r["fold_threshold"][9] == pytest.approx(0.55)


def test_bin_protocol_in_eval_and_config(tmp_path):
    from tailface.eval.protocols import get_protocol, parse_protocols
    from tailface.experiment.config import EvalConfig

    path = tmp_path / "v.bin"
    assert parse_protocols(f"lfw,{path},bin:{path}") == ["lfw", f"bin:{path}", f"bin:{path}"]
    assert get_protocol(str(path)).eval_set == f"bin:{path}"
    cfg = EvalConfig.from_block({"protocols": [str(path)],
                                 "during_training": {"sets": [str(path)], "every": 7}})
    assert cfg.protocols == (f"bin:{path}",) and cfg.during_training.every == 7
    assert EvalConfig.from_block(cfg.to_block()) == cfg
    from tailface.errors import ConfigError

    with pytest.raises(ConfigError, match="during_training.every"):
        EvalConfig.from_block({"during_training": {"sets": [str(path)], "every": 0}})
    with pytest.raises(ConfigError, match="during_training.sets"):
        EvalConfig.from_block({"during_training": {"sets": ["x.txt"], "every": 5}})


def synthetic_bin(tmp_path, n_pairs=20):
    from tailface.data.synthetic import synthetic_eval_faceset

    fs = synthetic_eval_faceset(num_identities=n_pairs, images_per_identity=2, image_size=32, seed=3)
    order = np.argsort(fs.labels, kind="stable")
    images, same = [], []
    for k in range(n_pairs):   # even pairs: the identity's two images; odd: two identities
        a, b = (order[2 * k], order[2 * k + 1]) if k % 2 == 0 else (order[2 * k], order[(2 * k + 2) % len(order)])
        images += [encode_jpeg(fs.read(int(a))), encode_jpeg(fs.read(int(b)))]
        same.append(k % 2 == 0)
    return write_bin(tmp_path / "syn.bin", images, same)


def test_eval_cli_on_bin_and_validation_during_training(tmp_path, capsys):
    import torch

    from tailface.data.synthetic import synthetic_faceset
    from tailface.eval.during_training import make_validator
    from tailface.train import TrainConfig, build_head, build_model, fit

    path = synthetic_bin(tmp_path)
    torch.manual_seed(0)
    data = synthetic_faceset(num_identities=30, image_size=32, seed=0, max_images=10)
    model, head = build_model("small", embedding_size=32), build_head("softmax", 32, data.num_classes)
    validator = make_validator([path], every=2, batch_size=16)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.05, progress=False, max_steps=5, tensorboard=True)
    ckpt = fit(model, head, data, cfg, tmp_path / "run", validator=validator)
    rows = list(csv.DictReader(open(tmp_path / "run" / "val.csv")))
    assert [(r["step"], r["metric"]) for r in rows] == [(s, m) for s in ("2", "4", "5")
                                                        for m in ("syn/accuracy", "syn/accuracy_std")]
    assert all(0 <= float(r["value"]) <= 1 for r in rows)
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    # the same model through `tailface eval`: the validator's last figure is the protocol's
    assert cli_main(["eval", str(ckpt), "--protocols", str(path), "--out", str(tmp_path / "ev"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"bin:{path}" in out and "10-fold accuracy (20 pairs)" in out
    import json

    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())[f"bin:{path}"]
    assert m["accuracy_mean"] == pytest.approx(float(rows[-2]["value"]))


def test_pack_bin_cli(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "faces"
    for name, n in (("Ann", 2), ("Bob", 2)):
        (root / name).mkdir(parents=True)
        for k in range(1, n + 1):
            Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(root / name / f"{name}_{k:04d}.jpg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2 1\nAnn 1 2\nAnn 1 Bob 2\nBob 1 2\nBob 1 Ann 2\n")
    out = tmp_path / "p.bin"
    assert cli_main(["pack", str(root), "--bin", str(out), "--pairs", str(pairs)]) == 0
    assert "4 pairs (2 same), 8 images" in capsys.readouterr().out
    vbin = read_bin(out)
    assert vbin.issame.tolist() == [True, False, True, False]
    assert vbin.images[0] == (root / "Ann" / "Ann_0001.jpg").read_bytes()   # stored bytes copied
    assert vbin.images[3] == (root / "Bob" / "Bob_0002.jpg").read_bytes()
    assert cli_main(["pack", str(root), str(tmp_path / "x.rec"), "--bin", str(out)]) == 2
    assert cli_main(["pack", str(root), "--bin", str(tmp_path / "x.rec"), "--pairs", str(pairs)]) == 2
    assert io is not None
