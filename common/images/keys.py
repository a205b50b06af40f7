"""The configuration keys every image experiment shares (data, ResNet-18, run options): one name per knob
in nc_experiments, rf_resnet18 and rf_vit. Each train.py spreads them into its KEYS and OPTIONS."""

from __future__ import annotations

from ..plumbing.config import NON_NEGATIVE, POSITIVE, Key
from .data import DATASETS

__all__ = ["DATA_KEYS", "RESNET_KEYS", "SGD_KEYS", "IMAGE_OPTIONS", "DATA_RULES", "SGD_RULES"]

DATA_KEYS = {
    "dataset": Key("cifar10", "training data (validation: its test split)", choices=DATASETS),
    "train_size": Key(0, "class-balanced training subset size (0: all)"),
    "val_size": Key(0, "class-balanced validation subset size (0: all)"),
    "image_size": Key(32, "images resized to this side (bilinear, antialiased)"),
    "augment": Key(False, "random crop (padding 1/8 of the side, black) and horizontal flip (Fig. 7)"),
}
RESNET_KEYS = {
    "width": Key(64, "ResNet-18 channels of the first stage (64 = torchvision)"),
    "cifar_stem": Key(False, "3x3 stride-1 stem without max-pool (Fig. 7) instead of torchvision's"),
    "init": Key("pytorch", "initialisation: PyTorch's default (the original) or torchvision's",
                choices=("torchvision", "pytorch")),
}
DATA_RULES = [
    ("image_size", lambda v: v >= 8, ">= 8"),
    ("train_size", lambda v: v >= 0, ">= 0 (0: all)"),
    ("val_size", lambda v: v >= 0, ">= 0 (0: all)"),
]
IMAGE_OPTIONS = {
    "data_dir": Key("data", "CIFAR-10 root, or the folder of the Fashion-MNIST idx files"),
    "download": Key(False, "let torchvision download CIFAR-10 into --data_dir"),
    "channels_last": Key(False, "channels-last memory format (GPU)"),
    "amp": Key(False, "bf16 autocast for the forward pass (GPU)"),
    "sync_bn": Key(False, "under torchrun, BatchNorm statistics over the global batch (SyncBatchNorm), not each "
                          "rank's share"),
}
SGD_KEYS = {  # App. B: SGD lr 0.01, momentum 0.9, batch 64, no weight decay
    "epochs": Key(250, "training epochs"),
    "batch_size": Key(64, "mini-batch size"),
    "lr": Key(0.01, "SGD learning rate"),
    "momentum": Key(0.9, "SGD momentum"),
    "weight_decay": Key(0.0, "SGD weight decay"),
}
SGD_RULES = [
    ("epochs", lambda v: v > 0, "> 0"),
    ("batch_size", lambda v: v > 1, "> 1"),
    ("lr", POSITIVE),
    ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("weight_decay", NON_NEGATIVE),
]
