#!/bin/sh
# One short check that every family runs on a GPU, how fast, and what each paper preset will cost
# (benchmarks/gpu_check.py says what it runs). At most ~5 minutes on one H100-class GPU.
#   sh benchmarks/gpu_check.sh OUT_DIR                        # --device cuda
#   sh benchmarks/gpu_check.sh OUT_DIR --device cpu --tiny    # the script itself on a CPU (~1 min)
# Writes OUT_DIR/gpu_check.md and OUT_DIR/gpu_check.json. PYTHON selects the interpreter (default python3).
set -e
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m benchmarks.gpu_check "$@"
