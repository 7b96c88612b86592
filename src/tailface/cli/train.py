"""``tailface train CONFIG``: run a baseline experiment (see docs/training.md)."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a baseline from a YAML experiment config",
        description="Train (and evaluate, when eval.protocols is set) the experiment described by "
                    "CONFIG (blocks data, model, head, [pretrain], train, eval). Outputs go to --out; "
                    "finished stages are reused and an interrupted stage resumes from its last.pt. "
                    "Works under `torchrun --nproc_per_node N` (DDP: NCCL on GPU, gloo on CPU).")
    p.add_argument("config", type=Path, help="experiment YAML, e.g. configs/baselines/abcd.yaml")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<config name>)")
    p.add_argument("--data", default=None, help="override data.train (any dataset spec)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the total epoch budget (AB-ABCD keeps its pretrain/fine-tune split)")
    p.add_argument("--max-steps", type=int, default=None, help="stop each stage after this many steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--num-workers", type=int, default=None)
    p.set_defaults(func=run)


def run(args) -> int:
    from tailface.train.experiment import is_main_process, load_experiment, run_experiment

    config = load_experiment(args.config)
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("device", args.device),
                                   ("num_workers", args.num_workers)) if v is not None}
    out = args.out or Path("runs") / args.config.stem
    result = run_experiment(config, out, data=args.data, epochs=args.epochs, train_overrides=overrides)
    if is_main_process():
        print(f"final checkpoint: {result['final']}")
    return 0
