#!/bin/sh
# Figs. 18-19 (DistilGPT-2 on SST-5): for each seed (SEEDS, default "42") the regularised run and the fair
# baseline, then the figure (common/unplug/run_figure.sh; ORIGINAL_BASELINE=1 adds the original's baseline).
#   sh rf_gpt2/run_script.sh --preset paper                                  # distilgpt2 from the Hub (GPU)
#   sh rf_gpt2/run_script.sh --preset paper --model_name PATH --data_dir DIR # local copies of both
#   SEEDS="1 42 15213" sh rf_gpt2/run_script.sh --preset cpu                 # a from-scratch GPT-2 on the movie-snippet stand-in (README)
SEEDS=${SEEDS:-42}
export SEEDS
exec sh "$(dirname "$0")/../common/unplug/run_figure.sh" rf_gpt2 "$@"
