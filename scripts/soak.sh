#!/usr/bin/env bash
# Soak test of kill and resume, outside CI: the built-in pipeline killed with SIGKILL at random
# moments 20 times in a row, resumed with the same command each time, must end bit-identical to an
# uninterrupted run (docs/training.md, "Kill and resume"). Options go to scripts/soak.py, e.g.
#   scripts/soak.sh --kills 20 --max-steps 12 --out runs/soak
set -euo pipefail
cd "$(dirname "$0")/.."
exec python scripts/soak.py "$@"
