#!/bin/sh
# Figs. 2/3/5, 6 and 7: train every run of one figure, then plot it.
#   sh nc_experiments/run_script.sh fig2 --preset cpu --data_dir DIR    # baseline vs REG, seeds 1 42 15213
#   sh nc_experiments/run_script.sh fig6 --preset paper --data_dir data  # lambda ablation, seed 42
#   sh nc_experiments/run_script.sh fig7 --preset cpu --data_dir DIR     # with augmentation, CIFAR stem
# The figure comes first; every other flag passes through to train.py and plot.py. Which seeds and
# lambdas a figure needs is listed once, in nc_experiments/plot.py (figure_runs, LAMBDAS).
# PYTHON selects the interpreter (default python3), e.g. PYTHON=.venv/bin/python. NPROC=N trains each run
# on N processes with torchrun (DDP; --batch_size stays the global batch), e.g. NPROC=4 on 4 GPUs.
set -e
cd "$(dirname "$0")/.."
. common/plumbing/portable_kernels.sh
PYTHON=${PYTHON:-python3}
NPROC=${NPROC:-1}
case "$NPROC" in ''|*[!0-9]*|0) echo "error: NPROC must be a positive integer, got '$NPROC'" >&2; exit 2 ;; esac
if [ "$NPROC" -gt 1 ]; then TRAIN="$PYTHON -m torch.distributed.run --standalone --nproc_per_node $NPROC -m"; else TRAIN="$PYTHON -m"; fi
case "${1:-}" in
    fig2|fig6|fig7) FIGURE=$1; shift ;;
    *) echo "error: the first argument must be fig2, fig6 or fig7, got '${1:-}' (see the top of $0)" >&2; exit 2 ;;
esac
RUNS=$("$PYTHON" -m nc_experiments.plot "$FIGURE" --list_runs "$@")
echo "$RUNS" | while read -r flags; do
    # shellcheck disable=SC2086
    # --running_metrics: the original's in-training epoch values, which the paper's figures plot
    $TRAIN nc_experiments.train $flags --running_metrics "$@" < /dev/null
done
"$PYTHON" -m nc_experiments.plot "$FIGURE" "$@"
