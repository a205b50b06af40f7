#!/bin/sh
# Fig. 4 (ViT): for each seed (SEEDS, default "1 42 15213") the regularised run and the fair baseline,
# then the figure (common/unplug/run_figure.sh; ORIGINAL_BASELINE=1 adds the original's baseline).
#   sh rf_vit/run_script.sh --preset cpu --data_dir DIR                  # small ViT, Fashion-MNIST subset
#   sh rf_vit/run_script.sh --preset paper --data_dir DIR --workers 8    # ViT-Tiny on ImageNet-100 (GPU)
exec sh "$(dirname "$0")/../common/unplug/run_figure.sh" rf_vit "$@"
