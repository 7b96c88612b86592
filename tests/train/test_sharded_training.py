"""The class-sharded heads in the trainer and the runner (``head.sharded``, train/sharded.py).

Three torchrun launches of ``sharded_script.py`` (gloo, CPU): 1 process and 2 processes (at the
same time) train a sharded ArcFace head with TinyNet for 8 steps and run the aggregate-and-disperse
pipeline with ``head.sharded: true`` in both dispersion modes (BN-free backbone, 3 steps per
stage); 2 processes also stop an ArcFace run after 4 steps, which 3 processes then resume to 8.
Same global batch everywhere, so the runs must agree.

Tolerance (final weights, model and head): rtol = atol = 1e-5; what differs is only the order
of float32 sums (global-batch loss over ranks, DDP's gradient sum, class-sharded logits); the
observed differences are ~4e-6 on head rows of norm ~20 and < 4e-6 on the backbone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TinyNet, random_faceset

from tailface.errors import ConfigError
from tailface.heads.arcface import ArcFaceHead
from tailface.heads.sharded import ShardedMarginHead
from tailface.heads.spec import HeadSpec
from tailface.train import TrainConfig, fit, load_head
from tailface.train.log import read_log
from tailface.train.sharded import build_sharded_head

HERE = Path(__file__).parent
TOL = dict(rtol=1e-5, atol=1e-5)
MODES = ("sample", "batch")


def launch(world: int, jobs: list[tuple[str, Path, int]]) -> subprocess.Popen:
    skip = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]))
    args = [a for job, out, steps in jobs for a in (job, str(out), str(steps))]
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                             str(world), str(HERE / "sharded_script.py"), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-6000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded_training")
    one = launch(1, [("arcface", root / "one", 8)] + [(f"method-{m}", root / f"method-{m}-1", 3) for m in MODES])
    two = launch(2, [("arcface", root / "two", 8), ("arcface", root / "resumed", 4)]
                 + [(f"method-{m}", root / f"method-{m}-2", 3) for m in MODES])
    wait(two)
    four = torch.load(root / "resumed" / "last.pt", weights_only=False)
    three = launch(3, [("arcface", root / "resumed", 8)])
    wait(one)
    wait(three)
    return root, four


def load(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def assert_close_weights(a: Path, b: Path) -> None:
    ca, cb = load(a), load(b)
    for part in ("model", "head"):
        assert ca[part].keys() == cb[part].keys()
        for name, value in ca[part].items():
            assert not torch.equal(value, torch.zeros_like(value))
            torch.testing.assert_close(cb[part][name], value, **TOL, msg=f"{b}: {part}.{name}")


def test_two_ranks_train_a_sharded_arcface_head_like_one(runs):
    root, _ = runs
    assert_close_weights(root / "one" / "final.pt", root / "two" / "final.pt")
    final = load(root / "two" / "final.pt")
    assert final["meta"]["world_size"] == 2 and final["head"]["weight"].shape == (7, 8)
    assert len(read_log(root / "two" / "train.csv")) == 8  # rank 0 alone writes the log


def test_checkpoint_of_two_ranks_resumes_on_three_and_finishes(runs):
    root, four = runs
    # last.pt of 2 ranks: the whole classifier and its momentum in class order
    assert four["meta"]["world_size"] == 2 and four["global_step"] == 4
    assert four["head"]["weight"].shape == (7, 8) and four["sharded_head"]["world_size"] == 2
    (momentum,) = [s["momentum_buffer"] for s in four["optimizer"]["state"].values() if s["momentum_buffer"].shape
                   == (7, 8)]
    assert momentum.abs().sum() > 0
    final = load(root / "resumed" / "final.pt")
    assert final["meta"]["world_size"] == 3 and final["meta"]["global_step"] == 8
    assert [r["step"] for r in read_log(root / "resumed" / "train.csv")] == list(range(1, 9))
    assert_close_weights(root / "one" / "final.pt", root / "resumed" / "final.pt")
    head, _ = load_head(root / "resumed" / "final.pt")  # what `tailface eval` / `norms` rebuild
    assert isinstance(head, ArcFaceHead)
    torch.testing.assert_close(head.weight.detach(), load(root / "one" / "final.pt")["head"]["weight"], **TOL)


@pytest.mark.parametrize("mode", MODES)
def test_method_pipeline_with_sharded_heads_on_two_ranks_matches_one(runs, mode):
    root, _ = runs
    one, two = root / f"method-{mode}-1", root / f"method-{mode}-2"
    clusters = [json.loads((run / "cluster" / "super_classes.json").read_text()) for run in (one, two)]
    assert clusters[0]["super_of_tail"] == clusters[1]["super_of_tail"]  # (k-means inertia: ~1e-6 apart)
    for stage in ("base", "prototype", "dispersion"):
        assert_close_weights(one / stage / "final.pt", two / stage / "final.pt")
    # the dispersion head's rows are stored per rank in the plan's order; the checkpoint has them
    # in class order (head classes, then tail classes), as the unsharded head writes them
    final = load(two / "dispersion" / "final.pt")
    assert final["meta"]["world_size"] == 2 and final["head"]["weight"].shape == (40, 8)
    assert (two / "norms" / "norms.json").is_file() and (two / "report.md").is_file()


# in-process (world size 1, no process group) -----------------------------------------------------
CFG = dict(epochs=2, batch_size=12, lr=0.1, warmup_epochs=0.5, milestones=[1], log_every=1, image_size=16,
           progress=False, device="cpu", seed=3)


def test_sharded_head_trains_like_the_unsharded_head_from_the_same_rows(tmp_path):
    faces = random_faceset(n=48, classes=5)
    sharded = build_sharded_head("arcface", 8, 5, s=16.0, m=0.3)
    plain = ArcFaceHead(8, 5, s=16.0, m=0.3)
    with torch.no_grad():
        plain.weight.copy_(sharded.weight)
    cfg = TrainConfig.from_dict({**CFG, "clip_grad_norm": 1.0})
    paths = []
    for name, head in (("sharded", sharded), ("plain", plain)):
        torch.manual_seed(0)
        paths.append(fit(TinyNet(), head, faces, cfg, tmp_path / name))
    assert_close_weights(paths[1], paths[0])


def test_sampled_sharded_head_resumes_exactly(tmp_path):
    faces = random_faceset(n=48, classes=10)

    def run(out, steps):
        torch.manual_seed(0)
        head = build_sharded_head("cosface", 8, 10, sample_rate=0.5, seed=2)
        return fit(TinyNet(), head, faces, TrainConfig.from_dict({**CFG, "max_steps": steps}), out)

    full = run(tmp_path / "full", 6)
    run(tmp_path / "part", 3)
    part = run(tmp_path / "part", 6)
    assert load(part)["sharded_head"]["step"] == 6
    a, b = load(full), load(part)
    for key in ("model", "head"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key


def test_head_block_sharding_keys():
    spec = HeadSpec.from_block({"name": "arcface", "s": 32, "sharded": True, "sample_rate": 0.2})
    assert (spec.kwargs, spec.sharded, spec.sample_rate) == ({"s": 32}, True, 0.2)
    assert HeadSpec.from_block(spec.to_block()) == spec
    assert HeadSpec.from_block({"name": "softmax"}).to_block() == {"name": "softmax"}  # unchanged configs
    assert spec.use_sharded(10) and not HeadSpec.from_block({"name": "arcface"}).use_sharded(10**6)
    auto = HeadSpec.from_block({"name": "arcface", "sharded": "auto"})
    assert not auto.use_sharded(10**6)  # one process: auto stays unsharded
    assert HeadSpec.from_block({"name": "arcface", "sharded": "auto", "sample_rate": 0.5}).use_sharded(10)
    for block, match in [({"sharded": "yes"}, "true, false or auto"), ({"sample_rate": 0}, r"in \(0, 1\]"),
                         ({"sample_rate": 0.5}, "needs the sharded head"),
                         ({"name": "center_loss", "sharded": True}, "no sharded version")]:
        with pytest.raises(ConfigError, match=match):
            HeadSpec.from_block({"name": "arcface", **block})
    head = build_sharded_head("softmax", 4, 9)
    assert isinstance(head, ShardedMarginHead) and head.kind == "softmax" and head.num_classes == 9
