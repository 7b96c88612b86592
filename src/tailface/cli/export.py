"""``tailface export CHECKPOINT OUT.onnx``: the embedding network to ONNX (see tailface.deploy)."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint's embedding network to ONNX",
        description="Write OUT.onnx: the backbone of CHECKPOINT with a dynamic batch axis, input "
                    "float32 Nx3xHxW normalised as its metadata_props say (tailface.input_size, "
                    "tailface.mean, tailface.std, tailface.channel_order; tailface models: "
                    "(x - 127.5) / 128, RGB), output NxE features (not L2-normalised). Without "
                    "--flip-fusion the graph is the backbone alone (tailface.flip_fusion=false). "
                    "Needs: pip install 'tailface[onnx]'.")
    p.add_argument("checkpoint", type=Path, help="checkpoint (.pt) written by `tailface train` / `run`")
    p.add_argument("out", type=Path, help="output .onnx")
    p.add_argument("--flip-fusion", action="store_true",
                   help="fold the mirrored pass into the graph: output f(x) + f(mirror x)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch.onnx exporter (default torchscript; dynamo needs onnxscript)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17; dynamo uses >= 18)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the onnxruntime-vs-PyTorch check on 3 images")
    p.set_defaults(func=run)


def run(args) -> int:
    # here, not at the top: the export loads torch (1.5 s measured); `tailface --help` stays light
    from tailface.deploy.onnx_export import export_onnx
    from tailface.eval.embedder import load_embedder

    result = export_onnx(args.checkpoint, args.out, flip_fusion=args.flip_fusion, exporter=args.exporter,
                         opset=args.opset, check=not args.no_check)
    m = result.metadata
    prep = load_embedder(result.path).preprocessing
    print(f"wrote {result.path}: {m['tailface.model']}, input {prep.describe()}, "
          f"{m['tailface.embedding_size']} features, flip_fusion={m['tailface.flip_fusion']} "
          f"({m['tailface.exporter']} exporter)")
    if result.max_abs_diff is not None:
        print(f"check: onnxruntime vs PyTorch on 3 noise images: max abs difference {result.max_abs_diff:.3g} "
              f"(features up to {result.max_abs_value:.3g})")
    return 0
