#!/usr/bin/env bash
# The CelebA version of the paper's Table 3: aggregate-and-disperse and every baseline, trained on the
# CelebA training set from ../shared/data/faces and evaluated on BLUFR, LFW pairs and the MegaFace proxy.
# Resumable: rerun after an interruption and finished stages are skipped. Results: runs/celeba*/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
tailface prepare all --no-progress
tailface run configs/method/celeba.yaml --out runs/celeba > runs/celeba.log 2>&1
tailface run configs/method/celeba_arcface.yaml --out runs/celeba-arcface-ours > runs/celeba-arcface-ours.log 2>&1
for b in abcd ab resampling ab_abcd center_loss range_loss arcface; do
  tailface train "configs/baselines/celeba/$b.yaml" --out "runs/celeba-$b" > "runs/celeba-$b.log" 2>&1
done
echo "all CelebA runs done"
