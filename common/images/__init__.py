"""Image-classification ingredients shared by nc_experiments, rf_resnet18 and rf_vit.

    ResNet18                       torchvision's ResNet-18 with a width knob and the CIFAR stem (models)
    vision_transformer             torchvision's ViT from scratch, ViT-Tiny by default (models)
    load_image_folder, read_class_list   ImageNet-100 from ImageFolder train/ and val/ with a class list (data)
    load_splits, normalisation     CIFAR-10 (torchvision) and Fashion-MNIST (idx files) in memory (data)
    Images                         a split as uint8 on its device, converted batch by batch (data)
    balanced_subset, to_float, black_pixel, read_idx, load_cifar10, load_fashion_mnist, load_idx_images
    train_batches, num_batches, num_samples   one epoch of shuffled (augmented) mini-batches, from tensors or a Dataset (data)
    random_crop_flip, device_generator   App. B's augmentation drawn and applied on the batch's device (augment)
    features_and_logits            eval-mode pass: classifier input and logits (evaluation)
    split_metrics, evaluate        the per-split metrics every image experiment logs (evaluation)
    DATA_KEYS, RESNET_KEYS, SGD_KEYS, DATA_RULES, SGD_RULES, IMAGE_OPTIONS   the shared flags (keys)

Why here, a subpackage of `common/`: these are plumbing several experiments must share exactly (the
same network, the same subset of the same data, the same augmentation and the same per-epoch
measurement), so they belong with the rest of what is shared, under the tests that cover it; a
subpackage, because they need torchvision and data files, while `import common` (the metrics, which
users drop into their own loops) stays pure PyTorch and imports none of this. The recipes (optimiser,
regulariser, loop, what is logged) stay in each experiment's train.py.
"""

from .augment import device_generator, random_crop_flip
from .data import (CIFAR_AUGMENT_NORM, CIFAR_ORIGINAL_NORM, DATASETS, FASHION_MNIST_NORM, IMAGENET_NORM, Images, balanced_subset,
                   black_pixel, load_cifar10, load_fashion_mnist, load_idx_images, load_image_folder, load_splits, normalisation,
                   num_batches, num_samples, read_class_list, read_idx,
                   to_float, train_batches)
from .evaluation import dataset_features_and_logits, evaluate, features_and_logits, split_metrics, upper_triangle
from .keys import DATA_KEYS, DATA_RULES, IMAGE_OPTIONS, RESNET_KEYS, SGD_KEYS, SGD_RULES
from .models import ResNet18, vision_transformer

__all__ = [
    "ResNet18", "vision_transformer",
    "load_splits", "Images", "normalisation", "balanced_subset", "to_float", "black_pixel", "read_idx", "load_cifar10",
    "load_fashion_mnist", "load_idx_images", "load_image_folder", "read_class_list", "train_batches", "num_batches", "num_samples",
    "random_crop_flip", "device_generator",
    "features_and_logits", "dataset_features_and_logits", "split_metrics", "evaluate", "upper_triangle",
    "DATASETS", "DATA_KEYS", "RESNET_KEYS", "SGD_KEYS", "SGD_RULES", "DATA_RULES", "IMAGE_OPTIONS",
    "CIFAR_ORIGINAL_NORM", "CIFAR_AUGMENT_NORM", "FASHION_MNIST_NORM", "IMAGENET_NORM",
]
