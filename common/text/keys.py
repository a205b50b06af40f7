"""The configuration keys rf_bert and rf_gpt2 share (data, tokenisation, optimiser): one name per knob.
The rf_* regulariser keys are common.unplug.regularisation.RF_KEYS."""

from __future__ import annotations

import torch

from ..plumbing.cli import UsageError
from ..plumbing.config import NON_NEGATIVE, POSITIVE, Key

__all__ = ["TEXT_KEYS", "TEXT_RULES", "TEXT_OPTIONS", "check_text_options", "text_optimizer"]

TEXT_KEYS = {  # the original's bert_sst5.py / gpt_sst5.py and the run behind Figs. 16-19 (docs/original_code.md §6)
    "dataset": Key("SetFit/sst5", "Hugging Face data set with train/validation splits and text/label columns"),
    "num_classes": Key(5, "classes (SST-5: 5)"),
    "train_subset": Key(0, "train on N training rows, a stratified draw seeded by --seed (0: all)"),
    "max_length": Key(128, "tokens per text (truncation)"),
    "pretrained": Key(True, "start from the checkpoint's weights (--no_pretrained: from its config, randomly "
                            "initialised with --seed)"),
    "head_only": Key(False, "freeze the encoder and train only the classifier"),
    "freeze_layers": Key(0, "freeze the embeddings and the lowest N transformer blocks (0: train all)"),
    "eval_train_size": Key(0, "measure the training split's epoch metrics on N of its rows, a stratified draw "
                              "seeded by --seed (0, or N >= the training rows: all)"),
    "dropout": Key(0.0, "hidden and attention dropout of the encoder"),
    "epochs": Key(300, "training epochs"),
    "batch_size": Key(32, "mini-batch size"),
    "optimizer": Key("sgd", "sgd (the paper's) or adamw (for a model trained from scratch)",
                     choices=("sgd", "adamw")),
    "lr": Key(1e-3, "learning rate"),
    "momentum": Key(0.9, "SGD momentum (adamw: unused)"),
    "weight_decay": Key(0.0, "weight decay before unplug (adamw: decoupled)"),
}
TEXT_RULES = [
    ("num_classes", lambda v: v >= 2, ">= 2"),
    ("train_subset", lambda v: v >= 0, ">= 0 (0: all)"),
    ("max_length", lambda v: v >= 2, ">= 2"),
    ("freeze_layers", lambda v: v >= 0, ">= 0 (0: train all)"),
    ("eval_train_size", lambda v: v >= 0, ">= 0 (0: the whole training split)"),
    ("dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("epochs", lambda v: v > 0, "> 0"),
    ("batch_size", lambda v: v > 1, "> 1"),
    ("lr", POSITIVE),
    ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("weight_decay", NON_NEGATIVE),
]
TEXT_OPTIONS = {
    "data_dir": Key(None, "read train.jsonl and validation.jsonl (or .csv; text, label) from this folder instead "
                          "of the Hub", type=str),
    "eval_batch_size": Key(128, "texts per forward pass of the evaluation"),
    "amp": Key(False, "bf16 autocast for the forward pass (GPU)"),
}


def check_text_options(config, args) -> None:
    """The `check` of common.parse for the text experiments' options."""
    if args.eval_batch_size < 1:
        raise UsageError(f"--eval_batch_size must be >= 1, got {args.eval_batch_size}")


def text_optimizer(model, config):
    """The optimiser over the parameters that train: SGD with momentum (the paper's, both text models) or
    AdamW (betas 0.9, 0.999); the unplug schedule later sets each group's lr and weight decay per epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=config["lr"], weight_decay=config["weight_decay"])
    return torch.optim.SGD(params, lr=config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"])
