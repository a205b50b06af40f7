#!/bin/sh
# Anti-grokking (Prakash & Martin 2025) with the paper's measures: the runs with weight decay (0.01) and
# without (0) side by side, one thread each, then the figure and the onset table (anti_grokking/plot.py).
#
#   sh anti_grokking/run_script.sh --preset cpu --data_dir /usr/share/datasets/fashion-mnist
#   sh anti_grokking/run_script.sh --preset paper --data_dir DIR_WITH_MNIST
#
# Every flag passes through to train.py and plot.py. A killed run resumes when the command is run again.
set -e
cd "$(dirname "$0")/.."
. common/plumbing/portable_kernels.sh
PYTHON=${PYTHON:-python3}
status=$(mktemp -d)
trap 'rm -rf "$status"' EXIT
for wd in 0.01 0; do
    { code=0; "$PYTHON" -m anti_grokking.train --weight_decay "$wd" --threads 1 "$@" 2>&1 || code=$?
      echo "$code" > "$status/$wd"; } |
        while IFS= read -r line; do printf '[weight decay %s] %s\n' "$wd" "$line"; done &
done
wait
for wd in 0.01 0; do
    code=$(cat "$status/$wd")
    [ "$code" = 0 ] || { echo "the run with weight decay $wd failed (exit $code); its lines above say why" >&2; exit "$code"; }
done
"$PYTHON" -m anti_grokking.plot "$@"
