"""The configuration keys rf_bert and rf_gpt2 share (data, tokenisation, optimiser): one name per knob.
The rf_* regulariser keys are common.regularisation.RF_KEYS."""

from __future__ import annotations

from ..cli import UsageError
from ..config import NON_NEGATIVE, POSITIVE, Key

__all__ = ["TEXT_KEYS", "TEXT_RULES", "TEXT_OPTIONS", "check_text_options"]

TEXT_KEYS = {  # the original's bert_sst5.py / gpt_sst5.py and the run behind Figs. 16-19 (docs/original_code.md §6)
    "dataset": Key("SetFit/sst5", "Hugging Face data set with train/validation splits and text/label columns"),
    "num_classes": Key(5, "classes (SST-5: 5)"),
    "train_subset": Key(0, "train on the first N training rows (0: all)"),
    "max_length": Key(128, "tokens per text (truncation)"),
    "head_only": Key(False, "freeze the encoder and train only the classifier"),
    "dropout": Key(0.0, "hidden and attention dropout of the encoder"),
    "epochs": Key(300, "training epochs"),
    "batch_size": Key(32, "mini-batch size"),
    "lr": Key(1e-3, "SGD learning rate"),
    "momentum": Key(0.9, "SGD momentum"),
    "weight_decay": Key(0.0, "SGD weight decay before unplug"),
}
TEXT_RULES = [
    ("num_classes", lambda v: v >= 2, ">= 2"),
    ("train_subset", lambda v: v >= 0, ">= 0 (0: all)"),
    ("max_length", lambda v: v >= 2, ">= 2"),
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
