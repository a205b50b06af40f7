#!/bin/sh
# Figs. 16-17 (BERT on SST-5): for each seed (SEEDS, default "42", the original figure's single seed) the
# regularised run and the fair baseline, then the figure (common/unplug/run_figure.sh; ORIGINAL_BASELINE=1
# adds the original's baseline, which keeps the constant learning rate).
#   sh rf_bert/run_script.sh --preset paper                                  # TinyBERT from the Hub (GPU)
#   sh rf_bert/run_script.sh --preset paper --model_name PATH --data_dir DIR # local copies of both
#   SEEDS="1 42 15213" sh rf_bert/run_script.sh --preset cpu                 # all-MiniLM-L6-v2 on the movie-snippet stand-in (README)
SEEDS=${SEEDS:-42}
export SEEDS
exec sh "$(dirname "$0")/../common/unplug/run_figure.sh" rf_bert "$@"
