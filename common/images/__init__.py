"""Image-classification ingredients shared by nc_experiments, rf_resnet18 and rf_vit.

    ResNet18                       torchvision's ResNet-18 with a width knob and the CIFAR stem (models)
    load_splits, normalisation     CIFAR-10 (torchvision) and Fashion-MNIST (idx files) in memory (data)
    balanced_subset, to_float, black_pixel, read_idx, load_cifar10, load_fashion_mnist
    random_crop_flip               App. B's augmentation on the batch's device (augment)
    features_and_logits            eval-mode pass: classifier input and logits (evaluation)
    split_metrics, evaluate        the per-split metrics every image experiment logs (evaluation)

Why here, a subpackage of `common/`: these are plumbing several experiments must share exactly (the
same network, the same subset of the same data, the same augmentation and the same per-epoch
measurement), so they belong with the rest of what is shared, under the tests that cover it; a
subpackage, because they need torchvision and data files, while `import common` (the metrics, which
users drop into their own loops) stays pure PyTorch and imports none of this. The recipes (optimiser,
regulariser, loop, what is logged) stay in each experiment's train.py.
"""

from .augment import random_crop_flip
from .data import (CIFAR_AUGMENT_NORM, CIFAR_ORIGINAL_NORM, DATASETS, FASHION_MNIST_NORM, balanced_subset,
                   black_pixel, load_cifar10, load_fashion_mnist, load_splits, normalisation, read_idx, to_float)
from .evaluation import evaluate, features_and_logits, split_metrics, upper_triangle
from .models import ResNet18

__all__ = ["ResNet18", "load_splits", "normalisation", "balanced_subset", "to_float", "black_pixel", "read_idx",
           "load_cifar10", "load_fashion_mnist", "random_crop_flip", "features_and_logits", "split_metrics",
           "evaluate", "upper_triangle", "DATASETS", "CIFAR_ORIGINAL_NORM", "CIFAR_AUGMENT_NORM", "FASHION_MNIST_NORM"]
