#!/bin/sh
# Fig. 4 (ResNet-18): for each seed (SEEDS, default "1 42 15213") the regularised run and the fair baseline,
# then the figure (common/unplug/run_figure.sh; ORIGINAL_BASELINE=1 adds the original's baseline).
#   sh rf_resnet18/run_script.sh --preset cpu --data_dir DIR      # Fashion-MNIST subset, minutes per run
#   sh rf_resnet18/run_script.sh --preset paper --data_dir data   # App. C on CIFAR-10 (GPU hours)
#   sh rf_resnet18/run_script.sh --preset repo --data_dir data    # the released script's protocol
exec sh "$(dirname "$0")/../common/unplug/run_figure.sh" rf_resnet18 "$@"
