"""Fig. 4 (ViT): relative-flatness regularisation and "unplug" on a Vision Transformer trained from scratch.

The same protocol as rf_resnet18 (common/unplug/loop.py) on ViT-Tiny (192 wide, 12 layers, 3 heads,
patch 16 at 224; torchvision's VisionTransformer) and ImageNet-100. The paper gives no ViT recipe;
`--preset paper` is the original's rf_vit/run_script.sh (docs/original_code.md §5.4): batch 256, SGD lr 0.01,
momentum 0.9, no weight decay, 300 epochs, lambda 1e-2 at temperature 2 on unit-normalised features, the
classifier capped at Frobenius norm 150 (the term saturates at 150^2 (1 - 1/100) = 22275), unplug at epoch
150 with weight decay 2e-4, the learning rate x5 and cosine annealing to 1e-4. Both splits are resized to
256 and centre-cropped to 224, no augmentation, as the original. The features are the classifier's input
(the class token after the final LayerNorm), captured in the same forward pass (the original ran a second).

    python -m rf_vit.train --preset paper --data_dir DIR --workers 8    # DIR/train/<wnid>/, DIR/val/<wnid>/
    python -m rf_vit.train --preset cpu --data_dir DIR                  # a small ViT on the Fashion-MNIST subset

All runs of the figure and the plot: `sh rf_vit/run_script.sh --preset cpu --data_dir DIR`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from common import Key, UsageError, entry_point, parse, with_defaults
from common.images import (DATA_KEYS, DATA_RULES, DATASETS, IMAGE_OPTIONS, SGD_KEYS, SGD_RULES, load_image_folder,
                           load_splits, read_class_list, vision_transformer)
from common.unplug import RF_KEYS, RF_RULES, train_with_unplug

CLASS_LIST = Path(__file__).with_name("imagenet100_classes.txt")

KEYS = {  # the original's rf_vit/run_script.sh
    "seed": Key(42, "model seed; also draws the data subsets, batch order and augmentation"),
    **DATA_KEYS,
    "dataset": Key("imagenet100", "training data (validation: its val/test split)", choices=("imagenet100", *DATASETS)),
    "image_size": Key(224, "image side the ViT sees (ImageNet-100: centre crop of the 256 resize)"),
    "patch_size": Key(16, "ViT patch side"),
    "num_layers": Key(12, "ViT encoder blocks"),
    "num_heads": Key(3, "attention heads"),
    "hidden_dim": Key(192, "ViT width (MLP 4x)"),
    **with_defaults(SGD_KEYS, epochs=300, batch_size=256),  # lr and weight decay before unplug
    **with_defaults(RF_KEYS, lam=1e-2, temperature=2.0, normalise_features=True, cap="frobenius", max_norm=150.0,
                    unplug_epoch=150, unplug_recipe="repo", lr_bump=5.0),
}
PRESETS = {
    "paper": {},
    # Fashion-MNIST subset with a 4-block ViT on 4x4 patches of 16x16 images; lambda from the search in the README
    "cpu": {"dataset": "fashion_mnist", "train_size": 1000, "val_size": 1000, "image_size": 16, "patch_size": 4,
            "num_layers": 4, "num_heads": 4, "hidden_dim": 64, "batch_size": 64, "epochs": 150, "unplug_epoch": 40,
            "lam": 0.03, "max_norm": 50.0},
}
RULES = [
    ("patch_size", lambda v: v >= 1, ">= 1"),
    ("num_layers", lambda v: v >= 1, ">= 1"),
    ("num_heads", lambda v: v >= 1, ">= 1"),
    *SGD_RULES,
    *RF_RULES,
    *DATA_RULES,
]
OPTIONS = {
    **IMAGE_OPTIONS,
    "data_dir": Key("data", "ImageNet-100 root (train/<wnid>/, val/<wnid>/), CIFAR-10 root, or the Fashion-MNIST folder"),
    "classes_file": Key(str(CLASS_LIST), "the ImageNet-100 class list (one WordNet ID per line)"),
    "workers": Key(0, "DataLoader processes for ImageNet-100"),
}


def check(config, args):
    if config["image_size"] % config["patch_size"]:
        raise UsageError(f"--image_size {config['image_size']} must be a multiple of --patch_size {config['patch_size']}")
    if config["hidden_dim"] % config["num_heads"]:
        raise UsageError(f"--hidden_dim {config['hidden_dim']} must be divisible by --num_heads {config['num_heads']}")
    if config["dataset"] == "imagenet100" and (config["augment"] or config["train_size"] or config["val_size"]):
        raise UsageError("ImageNet-100 is read as it is: --augment, --train_size and --val_size apply to "
                         "cifar10 and fashion_mnist only")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")


def parse_args(argv):
    return parse(argv, "rf_vit", __doc__, KEYS, PRESETS, RULES, OPTIONS, check)


@entry_point
def main(argv=None):
    run = parse_args(argv)
    args, config, run_dir, device = run
    run.setup(distributed=True)
    if config["dataset"] == "imagenet100":  # ImageFolder datasets, read by a DataLoader every epoch
        data = load_image_folder(args.data_dir, read_class_list(args.classes_file), config["image_size"])
        classes, channels = len(data["train"].classes), 3
    else:  # tensors in memory
        data = load_splits(config["dataset"], args.data_dir, config["train_size"], config["val_size"],
                           config["image_size"], config["seed"], config["augment"], args.download)
        data = {split: (x.to(device), y.to(device)) for split, (x, y) in data.items()}
        classes, channels = int(data["train"][1].max()) + 1, data["train"][0].shape[1]
    model = vision_transformer(config["image_size"], config["patch_size"], config["num_layers"], config["num_heads"],
                               config["hidden_dim"], num_classes=classes, in_channels=channels).to(device)
    head = model.heads.head  # W, b: its input is the class token after the final LayerNorm (taken before wrapping)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"])
    return train_with_unplug(run, argv, model, head, data, optimizer, memory_format, args.workers)


if __name__ == "__main__":
    main()
