#!/usr/bin/env bash
# The GPU check of issue #12 / docs/training.md (one H100/H200, <= 8 minutes), printing ONE table:
#   1. iResNet-50 112x112 batch 128: images/s of tailface's trainer (fp32 and AMP) against a bare
#      PyTorch loop (benchmarks/bench_backbones.py's train step) on the same GPU;
#   2. 50 AMP steps against 50 fp32 steps from the same start (loss curves: mean relative
#      difference <= 5%, last-10-step means within 5%);
#   3. the sharded heads under torchrun with NCCL (one process per GPU, $NPROC, default 1) equal to
#      the unsharded heads (loss and gradients, rtol 1e-4) and in fit (final weights, rtol 1e-3, atol 1e-5);
#   4. the dispersion head against softmax at 1,000,000 classes on the GPU (time, peak memory);
#   5. after the table: the tail heads of issue 21 (ArcFace, sub-center ArcFace K 3, AdaFace, VPL) against
#      softmax at 1,000,000 classes (benchmarks/bench_tail_heads.py, one step of the head: time, memory;
#      sub-center ArcFace at 1M does not fit the 23 GiB development machine).
# Usage: scripts/gpu_check.sh            (GPU)
#        scripts/gpu_check.sh --cpu-smoke (tiny sizes on the CPU, gloo: tests the script itself)
# Exit status 1 when a row FAILs. Run from the repository root (or anywhere: it finds it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
smoke=""
[ "${1:-}" = "--cpu-smoke" ] && smoke="--cpu-smoke"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GPU_CHECK_TMP="$work"
out="$work/rows.jsonl"
: > "$out"
if [ -z "$smoke" ]; then
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device (use --cpu-smoke)')"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
fi
start=$SECONDS
py() { timeout "${GPU_CHECK_PART_TIMEOUT:-200}" python "$here/gpu_check.py" "$@" "$out" $smoke >"$work/$1.log" 2>&1 \
       || { echo "gpu_check: part $1 failed:"; tail -30 "$work/$1.log"; echo "{\"check\": \"part $1\", \"value\": \"error\", \"reference\": \"-\", \"diff\": \"-\", \"tolerance\": \"-\", \"ok\": false}" >> "$out"; }; }
py speed
py amp
timeout "${GPU_CHECK_PART_TIMEOUT:-200}" python -m torch.distributed.run --standalone --nproc_per_node "${NPROC:-1}" \
  "$here/gpu_check.py" sharded "$out" $smoke >"$work/sharded.log" 2>&1 \
  || { echo "gpu_check: part sharded failed:"; tail -30 "$work/sharded.log"; echo '{"check": "part sharded", "value": "error", "reference": "-", "diff": "-", "tolerance": "-", "ok": false}' >> "$out"; }
py dispersion
echo
python "$here/gpu_check.py" table "$out"
if [ -z "$smoke" ]; then tail_args=(--device cuda --classes 1000000 --rounds 1 --warmup 2 --repeats 5)
else tail_args=(--device cpu --classes 2000 --rounds 1 --warmup 1 --repeats 2 --threads 2); fi
echo
timeout "${GPU_CHECK_PART_TIMEOUT:-200}" python "$root/benchmarks/bench_tail_heads.py" "${tail_args[@]}" \
  --json "$work/tail_heads.json" 2>&1 | tail -12 || echo "gpu_check: the tail heads benchmark failed (not a check row)"
echo "($((SECONDS - start)) s${smoke:+, CPU smoke mode: tiny sizes, not a GPU measurement})"
! grep -q '"ok": false' "$out"
