#!/bin/sh
# The runs of an rf_* figure, for the run_script.sh of rf_resnet18, rf_vit, rf_bert and rf_gpt2:
#   sh common/unplug/run_figure.sh EXPERIMENT [train.py flags]
# For each seed in SEEDS (default "1 42 15213"): the regularised run and the fair baseline (the same
# schedule change at unplug, --baseline_same_schedule); with ORIGINAL_BASELINE=1 also the original's
# baseline (no schedule change). Then the figure: python -m EXPERIMENT.plot.
# PYTHON selects the interpreter (default python3). NPROC=N trains each run on N processes with torchrun
# (DDP; --batch_size stays the global batch), e.g. NPROC=8 on 8 GPUs.
set -e
cd "$(dirname "$0")/../.."
. common/plumbing/portable_kernels.sh
PYTHON=${PYTHON:-python3}
NPROC=${NPROC:-1}
case "$NPROC" in ''|*[!0-9]*|0) echo "error: NPROC must be a positive integer, got '$NPROC'" >&2; exit 2 ;; esac
if [ "$NPROC" -gt 1 ]; then TRAIN="$PYTHON -m torch.distributed.run --standalone --nproc_per_node $NPROC -m"; else TRAIN="$PYTHON -m"; fi
SEEDS=${SEEDS:-"1 42 15213"}
EXPERIMENT=$1
shift
for seed in $SEEDS; do
    $TRAIN "$EXPERIMENT.train" --seed "$seed" "$@" < /dev/null
    $TRAIN "$EXPERIMENT.train" --seed "$seed" --regularizer none --baseline_same_schedule "$@" < /dev/null
    if [ "${ORIGINAL_BASELINE:-0}" = 1 ]; then
        $TRAIN "$EXPERIMENT.train" --seed "$seed" --regularizer none "$@" < /dev/null
    fi
done
"$PYTHON" -m "$EXPERIMENT.plot" --seeds "$SEEDS" "$@"
