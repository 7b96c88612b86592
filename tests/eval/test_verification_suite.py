"""The verification suite ``verification:DIR``: every .bin of a folder through the single-file
protocol, one table, a mean row; the same figures as the files evaluated one by one; usable in
``eval.during_training``; an empty folder is one DataError naming it."""

import json

import numpy as np
import pytest
import torch

from tailface.cli.main import main as cli_main
from tailface.data.images import encode_jpeg
from tailface.data.synthetic import synthetic_eval_faceset
from tailface.data.verification_bin import read_bin, write_bin
from tailface.errors import ConfigError, DataError
from tailface.eval.api import evaluate_protocols, format_table
from tailface.eval.protocols import Features, get_protocol, parse_protocols
from tailface.eval.verification_bin import evaluate_bin
from tailface.train.checkpoint import build_model

SIZE = 16


def tiny_bin(path, n_pairs: int, seed: int):
    """``n_pairs`` pairs of 16x16 synthetic faces: even pairs one identity, odd pairs two."""
    fs = synthetic_eval_faceset(num_identities=n_pairs + 1, images_per_identity=2, image_size=SIZE, seed=seed)
    order = np.argsort(fs.labels, kind="stable")
    images, same = [], []
    for k in range(n_pairs):
        a, b = (order[2 * k], order[2 * k + 1]) if k % 2 == 0 else (order[2 * k], order[2 * k + 2])
        images += [encode_jpeg(fs.read(int(a))), encode_jpeg(fs.read(int(b)))]
        same.append(k % 2 == 0)
    return write_bin(path, images, same)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Three .bin files (sorted: agedb_30, cfp_fp, lfw) of 20, 23 and 30 pairs, and a stray file."""
    folder = tmp_path_factory.mktemp("val")
    tiny_bin(folder / "lfw.bin", 30, seed=1)
    tiny_bin(folder / "agedb_30.bin", 20, seed=2)
    tiny_bin(folder / "cfp_fp.bin", 23, seed=3)
    (folder / "README.txt").write_text("not a .bin\n")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("small", input_size=SIZE, embedding_size=8)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    torch.save({"model": model.state_dict(),
                "meta": {"model_spec": {"name": "small", "kwargs": {"input_size": SIZE, "embedding_size": 8}}}}, path)
    return path


def random_features(suite, seed=0):
    """Per-file feature blocks (noisy, so the accuracies are not all 1) and their concatenation."""
    rng = np.random.default_rng(seed)
    blocks = {}
    for name in ("agedb_30", "cfp_fp", "lfw"):
        issame = read_bin(suite / f"{name}.bin").issame
        x = rng.normal(size=(2 * len(issame), 6))
        x[1::2][issame] = x[0::2][issame] + rng.normal(scale=1.2, size=(issame.sum(), 6))
        blocks[name] = (x, issame)
    return blocks, np.concatenate([b[0] for b in blocks.values()])


def test_the_suite_is_the_single_file_protocol_on_each_file(suite):
    blocks, x = random_features(suite)
    name = f"verification:{suite}"
    result = evaluate_protocols(Features(x, None, None, "f"), [name])[name]
    assert list(result["sets"]) == ["agedb_30", "cfp_fp", "lfw"]            # sorted, by stem; README ignored
    for stem, (block, issame) in blocks.items():
        one = evaluate_bin(block, issame, source="one by one")
        got = result["sets"][stem]
        for key in ("pairs", "accuracy_mean", "accuracy_std", "fold_accuracy", "fold_threshold", "tar_at_far"):
            assert got[key] == one[key], (stem, key)
        assert got["file"] == str(suite / f"{stem}.bin")
    accs = [evaluate_bin(b, s)["accuracy_mean"] for b, s in blocks.values()]
    assert result["mean"]["accuracy_mean"] == pytest.approx(sum(accs) / 3, abs=1e-15)
    tar = [evaluate_bin(b, s)["tar_at_far"]["0.01"] for b, s in blocks.values()]
    assert result["mean"]["tar_at_far"]["0.01"] == pytest.approx(sum(tar) / 3, abs=1e-15)


def test_the_table_shows_the_per_file_figures_and_the_mean(suite):
    blocks, x = random_features(suite, seed=1)
    name = f"verification:{suite}"
    metrics = evaluate_protocols(Features(x, None, None, "f"), [name])
    text = format_table(metrics)
    table = text[text.index("verification suite"):].splitlines()
    assert table[1].split()[:5] == ["set", "pairs", "accuracy", "(%)", "threshold"]
    assert "TAR@FAR=0.1%" in table[1] and "TAR@FAR=1%" in table[1] and "TAR@FAR=10%" in table[1]
    for line, (stem, (block, issame)) in zip(table[2:5], blocks.items()):
        one = evaluate_bin(block, issame)
        cells = line.split()
        assert cells[:6] == [stem, str(len(issame)), f"{100 * one['accuracy_mean']:.2f}", "+-",
                             f"{100 * one['accuracy_std']:.2f}", f"{np.mean(one['fold_threshold']):.4f}"]
        assert cells[6:] == [f"{100 * one['tar_at_far'][f]:.2f}" for f in ("0.001", "0.01", "0.1")]
    mean = [evaluate_bin(b, s) for b, s in blocks.values()]
    assert table[5].split() == ["mean", f"{100 * np.mean([m['accuracy_mean'] for m in mean]):.2f}",
                                *(f"{100 * np.mean([m['tar_at_far'][f] for m in mean]):.2f}"
                                  for f in ("0.001", "0.01", "0.1"))]
    assert len(table) == 6
    summary = dict(get_protocol(name).summary(metrics[name]))
    assert summary["mean 10-fold accuracy (3 sets)"] == f"{100 * np.mean([m['accuracy_mean'] for m in mean]):.2f}"


def test_cli_suite_equals_the_files_one_by_one(suite, checkpoint, tmp_path, capsys):
    """`tailface eval MODEL --protocols verification:DIR` against `bin:` of each file (batch 1 in
    both runs, so every image goes through the same forward passes: exactly equal figures)."""
    files = [suite / f"{s}.bin" for s in ("agedb_30", "cfp_fp", "lfw")]
    torch.set_num_threads(1)
    assert cli_main(["eval", str(checkpoint), "--protocols", f"verification:{suite}", "--out", str(tmp_path / "a"),
                     "--no-plots", "--batch-size", "1"]) == 0
    out = capsys.readouterr().out
    assert f"verification suite {suite}" in out and "mean" in out
    assert cli_main(["eval", str(checkpoint), "--protocols", ",".join(f"bin:{f}" for f in files),
                     "--out", str(tmp_path / "b"), "--no-plots", "--batch-size", "1"]) == 0
    together = json.loads((tmp_path / "a" / "metrics.json").read_text())[f"verification:{suite}"]
    apart = json.loads((tmp_path / "b" / "metrics.json").read_text())
    for f in files:
        one, got = apart[f"bin:{f}"], together["sets"][f.stem]
        assert got == one
    table = out[out.index("verification suite"):]
    for f in files:
        r = apart[f"bin:{f}"]
        assert f"{100 * r['accuracy_mean']:.2f} +- {100 * r['accuracy_std']:.2f}" in table


def test_features_file_in_suite_order(suite, tmp_path, capsys):
    from tailface.eval.features import save_features

    blocks, x = random_features(suite, seed=2)
    path = tmp_path / "f.npz"
    save_features(path, x.astype(np.float32), [f"r{i}" for i in range(len(x))], None)
    assert cli_main(["eval", "--features", str(path), "--protocols", f"verification:{suite}",
                     "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())[f"verification:{suite}"]
    want = evaluate_bin(blocks["lfw"][0].astype(np.float32), blocks["lfw"][1])
    assert m["sets"]["lfw"]["accuracy_mean"] == want["accuracy_mean"]
    save_features(path, x[:-2].astype(np.float32), [f"r{i}" for i in range(len(x) - 2)], None)
    assert cli_main(["eval", "--features", str(path), "--protocols", f"verification:{suite}",
                     "--out", str(tmp_path / "o")]) == 2
    assert "feature rows, but the .bin files of" in capsys.readouterr().err


def test_empty_or_missing_folder_is_one_line_naming_it(tmp_path, checkpoint, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    for folder in (empty, tmp_path / "absent"):
        with pytest.raises(DataError, match=f"^{folder}: "):
            evaluate_protocols(Features(np.ones((4, 3)), None, None, "f"), [f"verification:{folder}"])
    assert cli_main(["eval", str(checkpoint), "--protocols", f"verification:{empty}", "--out",
                     str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert errors == [f"tailface eval: error: {empty}: no verification .bin files in this folder"]
    with pytest.raises(ConfigError, match="name the folder"):
        parse_protocols("verification:")


def test_names_and_config(suite):
    from tailface.experiment.config import EvalConfig

    name = f"verification:{suite}"
    assert parse_protocols(f"lfw,{name}") == ["lfw", name]
    assert get_protocol("verification:x.bin").name == "verification:x.bin"   # not the single-file family
    assert get_protocol("data/x.bin").name == "bin:data/x.bin"
    cfg = EvalConfig.from_block({"protocols": [name], "during_training": {"sets": [name], "every": 3}})
    assert cfg.protocols == (name,) and cfg.during_training.sets == (name,)
    assert EvalConfig.from_block(cfg.to_block()) == cfg
    with pytest.raises(ConfigError, match="during_training.sets"):
        EvalConfig.from_block({"during_training": {"sets": ["verification:"], "every": 3}})


def test_during_training_names_each_file_by_stem_and_the_mean(suite, checkpoint):
    from tailface.data.verification_bin import BinFaceSet
    from tailface.eval.during_training import make_validator
    from tailface.eval.features import extract_features
    from tailface.train.checkpoint import load_model

    torch.set_num_threads(1)
    model, _ = load_model(checkpoint)
    validator = make_validator([f"verification:{suite}"], every=5, batch_size=8)
    got = validator(model, step=5, image_size=(SIZE, SIZE), device=torch.device("cpu"))
    stems = ["agedb_30", "cfp_fp", "lfw"]
    assert list(got) == [f"{s}/{k}" for s in stems for k in ("accuracy", "accuracy_std")] + \
        ["verification/mean_accuracy"]
    for s in stems:
        faceset = BinFaceSet(read_bin(suite / f"{s}.bin"))
        feats = extract_features(model, faceset, (SIZE, SIZE), 8, flip=True, device=torch.device("cpu"),
                                 progress=False)
        assert got[f"{s}/accuracy"] == evaluate_bin(feats, faceset.vbin.issame)["accuracy_mean"]
    assert got["verification/mean_accuracy"] == pytest.approx(np.mean([got[f"{s}/accuracy"] for s in stems]),
                                                              abs=1e-15)
    with pytest.raises(DataError, match="nothing: verification folder not found"):
        make_validator([f"verification:{suite / 'nothing'}"], every=5)
