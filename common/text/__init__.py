"""Text-classification ingredients shared by rf_bert and rf_gpt2, on Hugging Face `transformers` and
`datasets` (requirements-text.txt; `import common` itself never imports them).

    load_text_splits, export_dataset    SST-5 (or any data set with text and label columns) from the Hub or
                                        from local JSONL/CSV files (data)
    load_text_classifier                AutoTokenizer + AutoModelForSequenceClassification, from the Hub or a
                                        local folder, with one-line errors when they cannot be had (models)
    text_task                           the rf_* training loop's UnplugTask on tokenised text: batches with
                                        dynamic padding, the classifier's input as features (models)
    sequence_features                   the classifier's input of one sequence: GPT-2's last non-padding token
    TEXT_KEYS, TEXT_RULES, TEXT_OPTIONS, check_text_options   the shared flags and their check

Why a subpackage of `common/`: rf_bert and rf_gpt2 must read the same data, tokenise, batch and measure it
the same way; the recipes (model, regulariser values, presets) stay in each train.py.
"""

from .data import SPLITS, export_dataset, load_text_splits
from .keys import TEXT_KEYS, TEXT_OPTIONS, TEXT_RULES, check_text_options
from .models import encode, load_text_classifier, padded_batch, sequence_features, text_task

__all__ = ["SPLITS", "load_text_splits", "export_dataset", "load_text_classifier", "encode", "padded_batch",
           "sequence_features", "text_task", "TEXT_KEYS", "TEXT_RULES", "TEXT_OPTIONS", "check_text_options"]
