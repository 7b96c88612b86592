#!/usr/bin/env bash
# The CPU evidence campaign (docs/results.md): every table and figure of the paper with 3 seeds on the
# CelebA training set, BLUFR on LFW. Resumable: rerun the same command after a stop; finished cells are
# skipped. Seed 0 of Table 3 comes first, so a first complete table exists early.
# Usage: scripts/evidence_cpu.sh [OUT]   (default runs/reproduce-cpu; run it under nice)
set -euo pipefail
out="${1:-runs/reproduce-cpu}"
data="${TAILFACE_DATA:-data}"
[ -f "$data/lfw/train.rec" ] || tailface prepare lfw
[ -f "$data/celeba-train/train.rec" ] || tailface prepare celeba-train
tailface reproduce table1,fig1 --profile cpu --out "$out"
tailface reproduce table3 --profile cpu --seeds 1 --out "$out"
tailface reproduce table2,fig2,sweep --profile cpu --seeds 1 --out "$out"
tailface reproduce table4,fig3 --profile cpu --seeds 1 --out "$out"
tailface reproduce all --profile cpu --seeds 3 --out "$out"
