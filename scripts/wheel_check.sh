#!/usr/bin/env bash
# Build the wheel, install it in a fresh virtual environment (no source tree on the path) and run
# the built-in main job from it, in an empty folder: the shipped configs must come from the wheel.
# Usage: scripts/wheel_check.sh [extra `tailface run` arguments]. Called by .ci/run.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pip wheel -q --no-deps -w "$tmp/dist" "$repo"
python -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q torch==2.13.0
"$tmp/venv/bin/pip" install -q "$tmp"/dist/tailface-*.whl
mkdir "$tmp/work"
cd "$tmp/work"
"$tmp/venv/bin/tailface" run --list-configs
"$tmp/venv/bin/tailface" run "$@"
test -f runs/synthetic/report.md
echo "wheel check: $(ls "$tmp"/dist) installed in a fresh venv ran the main job (runs/synthetic/report.md)"
