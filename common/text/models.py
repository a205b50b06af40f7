"""Hugging Face sequence classifiers for the rf_* loop: loading with clear errors, tokenising, batching with
dynamic padding, and the features the regulariser and the metrics use (the classifier's input)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from ..plumbing.cli import UsageError
from ..plumbing.loop import to_device
from .data import quiet_hub

__all__ = ["load_text_classifier", "freeze_lower_layers", "encode", "padded_batch", "sequence_features"]

# The model folders the documented commands write (common/text/assets.py), by folder name: what to run when one is missing
KNOWN_FOLDERS = {"all-MiniLM-L6-v2": "python -m common.text.assets minilm models/all-MiniLM-L6-v2",
                 "gpt2-scratch": "python -m common.text.assets gpt2_scratch models/gpt2-scratch"}

DROPOUTS = ("hidden_dropout_prob", "attention_probs_dropout_prob",  # BERT
            "embd_pdrop", "attn_pdrop", "resid_pdrop")  # GPT-2


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).exists()


def load_text_classifier(model_name: str, num_classes: int, dropout: float, head: str, pretrained: bool = True):
    """(model, tokenizer): `AutoModelForSequenceClassification.from_pretrained(model_name, num_labels=...)`
    (the pretrained encoder with a newly initialised classifier, as the original) and its `AutoTokenizer`,
    from the Hub or a local folder (a `save_pretrained` copy); with pretrained=False the same architecture
    from its config alone, every weight initialised from torch's generator (seed it first; a folder with
    config.json and tokenizer files, no weights, is enough). Dropout sets the encoder's hidden and
    attention dropout. A tokenizer without a padding token (GPT-2) pads with its end-of-text token, on
    the right, and the model is told so. `head` names the classifier layer the experiment measures
    ("classifier" for BERT, "score" for GPT-2); a model without it is refused."""
    try:
        import transformers
    except ImportError as err:
        raise UsageError("the text experiments need Hugging Face transformers: pip install -r requirements-text.txt") \
            from err
    if _looks_like_path(model_name) and not Path(model_name).expanduser().is_dir():
        how = KNOWN_FOLDERS.get(Path(model_name).name)
        raise UsageError(f"--model_name {model_name}: no such folder (run from the repository root); "
                         + (f"write it with `{how}`" if how else "give a folder saved with save_pretrained "
                            "(config.json, weights, tokenizer files) or a Hugging Face Hub id"))
    if not Path(model_name).expanduser().is_dir():
        print(f"{model_name}: from the Hugging Face Hub or its cache (no network: retries for about a minute; "
              f"HF_HUB_OFFLINE=1 skips them)", flush=True)
    try:
        with _quiet(transformers):
            tokenizer = transformers.AutoTokenizer.from_pretrained(model_name)
            config = transformers.AutoConfig.from_pretrained(model_name, num_labels=num_classes)
    except (OSError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot load the model {model_name!r} ({reason}); where the Hugging Face Hub is reachable, "
                         f"save it with save_pretrained (model and tokenizer) and pass --model_name PATH") from err
    for name in DROPOUTS:
        if hasattr(config, name):
            setattr(config, name, dropout)
    if tokenizer.pad_token is None:  # GPT-2: pad with eos on the right (the original)
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    config.pad_token_id = tokenizer.pad_token_id
    if not pretrained:
        model = transformers.AutoModelForSequenceClassification.from_config(config)
        if not isinstance(getattr(model, head, None), nn.Linear):
            raise UsageError(f"--model_name {model_name}: a {type(model).__name__} has no linear layer {head!r}")
        print(f"{model_name}: {type(model).__name__} from its config, randomly initialised (not pretrained), "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {num_classes} classes")
        return model, tokenizer
    try:
        with _quiet(transformers):  # its load report and bars on stderr; what it reports is printed below
            model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
                model_name, config=config, output_loading_info=True)
    except (OSError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot load the weights of {model_name!r} ({reason}); pass --model_name PATH to a "
                         f"save_pretrained folder") from err
    if not isinstance(getattr(model, head, None), nn.Linear):
        raise UsageError(f"--model_name {model_name}: a {type(model).__name__} has no linear layer {head!r}; this "
                         f"experiment measures that classifier: give a model of the family it trains")
    others = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(f"{head}."))
    print(f"{model_name}: pretrained {type(model).__name__}, new {head!r} layer ({num_classes} classes)"
          + (f"; also newly initialised (not in the checkpoint): {', '.join(others)}" if others else ""))
    return model, tokenizer


def freeze_lower_layers(model: nn.Module, layers: int) -> None:
    """Stop the gradient of the embeddings and of the lowest `layers` transformer blocks (BERT's
    encoder.layer, GPT-2's h), so that only the blocks above them, the pooler and the classifier train.
    layers=0 freezes nothing."""
    if layers == 0:
        return
    base = model.base_model
    blocks = base.encoder.layer if hasattr(base, "encoder") else getattr(base, "h", None)
    embeddings = [base.embeddings] if hasattr(base, "embeddings") else [getattr(base, "wte", None), getattr(base, "wpe", None)]
    if blocks is None or any(e is None for e in embeddings):
        raise UsageError(f"--freeze_layers: a {type(model).__name__} is neither BERT- nor GPT-2-shaped")
    if layers > len(blocks):
        raise UsageError(f"--freeze_layers {layers}: the model has only {len(blocks)} transformer blocks")
    for module in [*embeddings, *blocks[:layers]]:
        module.requires_grad_(False)


@contextmanager
def _quiet(transformers):
    """The Hub libraries' logging at error level and no transformers progress bars, restored afterwards."""
    logging = transformers.utils.logging
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        with quiet_hub():
            yield
    finally:
        if bars:
            logging.enable_progress_bar()


def encode(tokenizer, texts: list[str], max_length: int) -> list[dict]:
    """Each text tokenised (truncated to max_length, no padding): a list of {input_ids, attention_mask, ...}."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [{key: encoded[key][i] for key in encoded.keys()} for i in range(len(texts))]


def padded_batch(tokenizer, encodings: list[dict], index, device: torch.device) -> dict[str, Tensor]:
    """The encodings at `index` padded to the longest of them (the original's DataCollatorWithPadding), on
    `device` (to a GPU from pinned memory, without waiting: `to_device`)."""
    batch = tokenizer.pad([encodings[i] for i in index], return_tensors="pt")
    return {key: to_device(value, device) for key, value in batch.items()}



def sequence_features(captured: Tensor, attention_mask: Tensor) -> Tensor:
    """One feature row per sequence from the captured input of the classifier: (B, D) as it is (BERT's pooled
    output), or from (B, T, D) per-token states (GPT-2's score sees every position and the model keeps the
    logits of the last non-padding token, attention_mask.sum - 1 with right padding) that token's row."""
    if captured.dim() == 2:
        return captured
    last = attention_mask.sum(1) - 1
    return captured[torch.arange(len(captured), device=captured.device), last]
