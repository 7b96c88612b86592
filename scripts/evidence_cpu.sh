#!/usr/bin/env bash
# The CPU evidence campaign (docs/results.md): every table and figure of the paper on the CelebA
# training set (BLUFR on LFW) with 3 seeds (Tables 2 and 3, the central comparisons, with 5; the
# baselines' tuning grid with 1), and `tailface study` on the built-in data and on CelebA.
# Resumable: rerun the same command after a stop; finished cells are skipped. Cheap and central
# results first (the synthetic study, the baselines' tuning, Tables 2-4 with 3 seeds), so that
# complete tables exist early.
# Usage: scripts/evidence_cpu.sh [OUT]   (default runs/evidence; run it under nice)
# TAILFACE_JOBS (default 2): cells trained at once (`--jobs`, 1.28x faster on 2 cores: docs/benchmarks.md)
set -euo pipefail
out="${1:-runs/evidence}"
jobs="${TAILFACE_JOBS:-2}"
data="${TAILFACE_DATA:-data}"
[ -f "$data/lfw/train.rec" ] || tailface prepare lfw
[ -f "$data/celeba-train/train.rec" ] || tailface prepare celeba-train
tailface reproduce table1,fig1 --profile cpu --out "$out/reproduce-cpu"
tailface study synthetic --seeds 3 --jobs "$jobs" --out "$out/study-synthetic"
# the baselines' grids on BLUFR's development split; configs/baselines/celeba/ ship the choice
tailface reproduce tune --profile cpu --seeds 1 --jobs "$jobs" --out "$out/reproduce-cpu"
tailface reproduce table2,fig2,table3,table4 --profile cpu --seeds 3 --jobs "$jobs" --out "$out/reproduce-cpu"
tailface reproduce sweep,fig3 --profile cpu --seeds 3 --jobs "$jobs" --out "$out/reproduce-cpu"
tailface study "$data/celeba-train" --seeds 3 --jobs "$jobs" --out "$out/study-celeba"
# the method's choices one at a time, and the super classes they build
tailface reproduce probes,superclasses --profile cpu --seeds 3 --jobs "$jobs" --out "$out/reproduce-cpu"
# two more seeds of Tables 2 and 3 narrow the intervals of ours vs ABCD and AB vs ABCD
tailface reproduce table2,table3 --profile cpu --seeds 5 --jobs "$jobs" --out "$out/reproduce-cpu"
# the class-count-aware losses (issue 20) against ABCD and ours: their cells, and ABCD / AB / ours reused
# (--archive: each finished cell's records kept in git, so the campaign survives a wiped run folder)
tailface reproduce losses --profile cpu --seeds 3 --jobs "$jobs" --out "$out/reproduce-cpu" \
    --archive docs/evidence/reproduce-cpu
# where the tail hurts (issue 22): perturbed CelebA sets (split, tail noise, both, 3x longer), AB / ABCD / ours
tailface reproduce regimes --profile cpu --seeds 3 --jobs "$jobs" --out "$out/reproduce-cpu" \
    --archive docs/evidence/reproduce-cpu
# the scale and margin every margin head shares (issue 21), chosen on held-out training identities (3 seeds)
tailface reproduce tune --profile cpu-heldout --seeds 3 --jobs "$jobs" --out "$out/reproduce-cpu-heldout" \
    --only arcface-s16-m0.35,arcface-s32-m0.35,arcface-s16-m0.2,arcface-s16-m0.5,arcface-s64-m0.5 \
    --archive docs/evidence/reproduce-cpu-heldout
# the tail methods of the field (issue 21): on the CelebA training set and on its shallow version (at most 2
# images per identity), then seeds 5-9 of AB / ABCD / ours before any verdict of the methods table is read
tailface reproduce methods,shallow --profile cpu --seeds 3 --jobs "$jobs" --out "$out/reproduce-cpu" \
    --archive docs/evidence/reproduce-cpu
tailface reproduce table3 --only ab,abcd,ours --profile cpu --seeds 10 --jobs "$jobs" --out "$out/reproduce-cpu" \
    --archive docs/evidence/reproduce-cpu
# the seed-7 question (issue 21, item 6): the shipped AB config at seed 7 with one thread against the AB cell
python scripts/same_model_check.py ab 7 --cells "$out/reproduce-cpu" --out "$out/same-model-ab-seed7"
