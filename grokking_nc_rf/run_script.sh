#!/bin/sh
# Fig. 1 and Fig. 8: train the three seeds of a preset, then plot them and print the onset table.
#   sh grokking_nc_rf/run_script.sh --preset cpu      # minutes per seed on a CPU
#   sh grokking_nc_rf/run_script.sh --preset paper    # the original run: 1e5 steps per seed
# Extra flags pass through to train.py and plot.py (e.g. --lr 3e-4 --steps 8000 --split unordered).
# PYTHON selects the interpreter (default python3), e.g. PYTHON=.venv/bin/python.
# PARALLEL=1 (the default) trains the seeds at the same time, one process and one thread each, their lines
# prefixed by the seed: on the 2-core CPU the fastest way (grokking_nc_rf/README.md). PARALLEL=0: one after
# another with torch's default thread count. PARALLEL=model: all seeds in one process as one model
# (train.py --seeds; each seed's rows are those of a run of it alone at the same thread count), the way for
# a GPU. A flag --threads N given here wins.
set -e
cd "$(dirname "$0")/.."
. common/plumbing/portable_kernels.sh
PYTHON=${PYTHON:-python3}
SEEDS=${SEEDS:-"1 42 15213"}
case "${PARALLEL:=1}" in 0|1|model) ;; *) echo "error: PARALLEL must be 1, 0 or model, got '$PARALLEL'" >&2; exit 2 ;; esac
if [ "$PARALLEL" = model ]; then
    "$PYTHON" -m grokking_nc_rf.train --seeds "$(echo $SEEDS | tr ' ' ',')" "$@"
elif [ "$PARALLEL" = 0 ]; then
    for seed in $SEEDS; do
        "$PYTHON" -m grokking_nc_rf.train --seed "$seed" "$@"
    done
else
    status=$(mktemp -d)
    trap 'rm -rf "$status"' EXIT
    for seed in $SEEDS; do
        { code=0; "$PYTHON" -m grokking_nc_rf.train --seed "$seed" --threads 1 "$@" 2>&1 || code=$?
          echo "$code" > "$status/$seed"; } |
            while IFS= read -r line; do printf '[seed %s] %s\n' "$seed" "$line"; done &
    done
    wait
    for seed in $SEEDS; do
        code=$(cat "$status/$seed")
        [ "$code" = 0 ] || { echo "seed $seed failed (exit $code); its lines above say why" >&2; exit "$code"; }
    done
fi
"$PYTHON" -m grokking_nc_rf.plot "$@"
