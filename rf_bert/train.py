"""Figs. 16-17: relative-flatness regularisation and "unplug" on a pretrained BERT fine-tuned on SST-5.

The protocol of rf_resnet18 (common/unplug/loop.py) on Hugging Face's BertForSequenceClassification (a
pretrained encoder, a new 5-way classifier on the pooled output) and SST-5 (`SetFit/sst5`). `--preset
paper` is the run behind the original's TinyBERT figure (docs/original_code.md §6.1): TinyBERT
(huawei-noah/TinyBERT_General_4L_312D), batch 32, SGD lr 1e-3, momentum 0.9, no dropout or weight decay,
300 epochs, lambda 0.3 at temperature 2 on unit-normalised features, the classifier capped at Frobenius norm
30 (the term saturates at 30^2 (1 - 1/5) = 720), unplugged from the 150th epoch (1-based, as the original)
with weight decay 3e-4, the learning rate x3 and cosine annealing to 1e-4. The features are the
classifier's input (tanh of the pooler), captured in the same forward pass; `--features cls` regularises
the pre-pooler [CLS] state as the original did (the evaluation measures the classifier's input either way).

    python -m rf_bert.train --preset paper                               # needs the Hub, or:
    python -m rf_bert.train --preset paper --model_name PATH --data_dir DIR   # local copies (README)
    python -m rf_bert.train --preset paper --model_name bert-base-uncased     # BERT-base

All runs of the figure and the plot: `sh rf_bert/run_script.sh --preset paper`.
"""

from __future__ import annotations

from common import Key, UsageError, entry_point, parse, with_defaults
from common.text import (TEXT_KEYS, TEXT_OPTIONS, TEXT_RULES, check_text_options, freeze_lower_layers,
                         load_text_classifier, load_text_splits, text_optimizer)
from common.unplug import RF_KEYS, RF_RULES, text_task, unplug_training

KEYS = {
    "seed": Key(42, "model seed (the new classifier) and batch order"),
    "model_name": Key("huawei-noah/TinyBERT_General_4L_312D", "Hugging Face model id or a save_pretrained folder "
                                                              "(bert-base-uncased: BERT-base)"),
    "features": Key("pooled", "what the regulariser sees: pooled (the classifier's input) or cls (the pre-pooler "
                              "[CLS] state, as the original)", choices=("pooled", "cls")),
    **TEXT_KEYS,
    **with_defaults(RF_KEYS, lam=0.3, temperature=2.0, normalise_features=True, cap="frobenius", max_norm=30.0,
                    unplug_epoch=149, unplug_recipe="repo", lr_bump=3.0, weight_decay_after=3e-4, lr_floor=1e-4),
}
PRESETS = {
    "paper": {},
    # Figs. 16-17's protocol at CPU scale (README, "The CPU recipe"): all-MiniLM-L6-v2 (a pretrained BERT, 6
    # blocks of width 384, the lowest 4 and the embeddings frozen) on 1000 texts of the movie-snippet
    # stand-in for SST-5, 48 tokens, batch 8 (125 steps an epoch), 30 epochs with the term on in the first
    # 15; the training split's metrics on 500 of its texts. Both folders come from the documented commands.
    "cpu": {"model_name": "models/all-MiniLM-L6-v2", "dataset": "movie_snippets", "train_subset": 1000,
            "max_length": 48, "freeze_layers": 4, "batch_size": 8, "eval_train_size": 500, "epochs": 30,
            "unplug_epoch": 15},
}
RULES = [*TEXT_RULES, *RF_RULES]
OPTIONS = TEXT_OPTIONS


def parse_args(argv):
    return parse(argv, "rf_bert", __doc__, KEYS, PRESETS, RULES, OPTIONS, check_text_options)


@entry_point
def main(argv=None):
    run = parse_args(argv)
    args, config, run_dir, device = run
    run.setup(distributed=True)
    data = load_text_splits(config["dataset"], args.data_dir, config["num_classes"], config["train_subset"],
                            config["seed"])
    model, tokenizer = load_text_classifier(config["model_name"], config["num_classes"], config["dropout"],
                                            head="classifier", pretrained=config["pretrained"])
    model.to(device)
    head = model.classifier  # W (5 x hidden), b: its input is the pooled output (dropout 0)
    feature_layer = head
    if config["features"] == "cls":  # the original's phi = hidden_states[-1][:, 0]: the input of the pooler's dense
        pooler = getattr(model.base_model, "pooler", None)
        if pooler is None:
            raise UsageError(f"--features cls needs a BERT pooler; {config['model_name']} has none")
        feature_layer = pooler.dense
    if config["head_only"]:  # the original's --head_only 1: the encoder (with the pooler) is frozen
        model.base_model.requires_grad_(False)
    freeze_lower_layers(model, config["freeze_layers"])  # the cpu preset trains the top blocks only
    optimizer = text_optimizer(model, config)
    task = text_task(model, head, tokenizer, data, config, device, feature_layer, args.eval_batch_size, run.progress)
    return unplug_training(run, argv, model, head, optimizer, task)


if __name__ == "__main__":
    main()
