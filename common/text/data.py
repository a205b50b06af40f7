"""Text classification data: the train and validation splits of a Hugging Face data set (SST-5 by default,
`SetFit/sst5`: train 8544, validation 1101, labels 0-4), or the same from local files.

    python -m common.text.data SetFit/sst5 DIR     # where the Hub is reachable: write DIR/train.jsonl, ...
    python -m rf_bert.train --data_dir DIR ...     # then anywhere: read them

A local folder holds train.jsonl and validation.jsonl (one {"text": ..., "label": ...} object a line), or
train.csv and validation.csv with a header row that has the columns text and label.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from ..cli import UsageError, entry_point

__all__ = ["SPLITS", "load_text_splits", "read_local_split", "export_dataset", "quiet_hub"]

SPLITS = {"train": "train", "val": "validation"}  # our split name -> the data set's


@contextmanager
def quiet_hub():
    """The Hugging Face libraries' logging at error level while loading, restored afterwards: their retry
    warnings and load reports would otherwise bury the one-line error (and what we print instead)."""
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "transformers", "datasets")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _rows_to_split(texts: list, labels: list, where: str, num_classes: int) -> tuple[list[str], torch.Tensor]:
    if not texts:
        raise UsageError(f"{where} has no rows")
    try:
        label_tensor = torch.tensor([int(label) for label in labels])
    except (TypeError, ValueError) as err:
        raise UsageError(f"{where}: every label must be an integer class index ({err})") from err
    bad = label_tensor[(label_tensor < 0) | (label_tensor >= num_classes)]
    if len(bad):
        raise UsageError(f"{where}: label {bad[0].item()} is outside 0..{num_classes - 1}; set --num_classes")
    return [str(text) for text in texts], label_tensor


def read_local_split(data_dir: Path, split: str, num_classes: int) -> tuple[list[str], torch.Tensor]:
    """(texts, labels) of DIR/<split>.jsonl or DIR/<split>.csv (columns text and label)."""
    jsonl, table = data_dir / f"{split}.jsonl", data_dir / f"{split}.csv"
    if jsonl.exists():
        rows = []
        for number, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise UsageError(f"{jsonl} line {number} is not JSON ({err.msg})") from err
        path = jsonl
    elif table.exists():
        with open(table, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        path = table
    else:
        raise UsageError(f"--data_dir {data_dir} has neither {split}.jsonl nor {split}.csv (columns text and label; "
                         f"`python -m common.text.data DATASET DIR` writes them where the Hub is reachable)")
    missing = [row for row in rows if not isinstance(row, dict) or "text" not in row or "label" not in row]
    if missing:
        raise UsageError(f"{path}: every row needs the fields text and label")
    return _rows_to_split([row["text"] for row in rows], [row["label"] for row in rows], str(path), num_classes)


def load_text_splits(dataset: str, data_dir: str | Path | None, num_classes: int,
                     train_subset: int = 0) -> dict[str, tuple[list[str], torch.Tensor]]:
    """{"train": (texts, labels), "val": (texts, labels)}: from the local files of `data_dir` when given,
    else from `datasets.load_dataset(dataset)` (its train and validation splits). With train_subset > 0 the
    first train_subset training rows (the original's --train_subset)."""
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise UsageError(f"--data_dir {data_dir} is not a folder; it should hold train.jsonl and validation.jsonl "
                             f"(or .csv) with text and label")
        splits = {ours: read_local_split(data_dir, theirs, num_classes) for ours, theirs in SPLITS.items()}
    else:
        splits = _load_hub(dataset, num_classes)
    if train_subset:
        texts, labels = splits["train"]
        if train_subset > len(texts):
            raise UsageError(f"--train_subset {train_subset} is larger than the {len(texts)} training rows")
        splits["train"] = texts[:train_subset], labels[:train_subset]
    return splits


def _load_hub(dataset: str, num_classes: int) -> dict[str, tuple[list[str], torch.Tensor]]:
    try:
        import datasets
    except ImportError as err:
        raise UsageError("the text experiments need Hugging Face datasets: pip install -r requirements-text.txt") from err
    print(f"{dataset}: from the Hugging Face Hub or its cache (no network: retries for about a minute; "
          f"HF_HUB_OFFLINE=1 skips them)", flush=True)
    try:
        with quiet_hub():
            loaded = datasets.load_dataset(dataset)
    except Exception as err:  # offline, unknown name, no access: the library raises many types
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot load the data set {dataset!r} ({type(err).__name__}: {reason}); where the Hugging "
                         f"Face Hub is reachable run `python -m common.text.data {dataset} DIR` and pass "
                         f"--data_dir DIR") from err
    splits = {}
    for ours, theirs in SPLITS.items():
        if theirs not in loaded:
            raise UsageError(f"the data set {dataset!r} has no {theirs!r} split (it has {sorted(loaded)})")
        part = loaded[theirs]
        if "text" not in part.column_names or "label" not in part.column_names:
            raise UsageError(f"the data set {dataset!r} needs the columns text and label (it has {part.column_names})")
        splits[ours] = _rows_to_split(part["text"], part["label"], f"{dataset} {theirs}", num_classes)
    return splits


def export_dataset(dataset: str, out_dir: str | Path, num_classes: int = 5) -> Path:
    """Write the train and validation splits of `dataset` as OUT_DIR/<split>.jsonl, for --data_dir."""
    out_dir = Path(out_dir)
    splits = _load_hub(dataset, num_classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    for ours, theirs in SPLITS.items():
        texts, labels = splits[ours]
        lines = (json.dumps({"text": text, "label": label}) for text, label in zip(texts, labels.tolist()))
        (out_dir / f"{theirs}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir


@entry_point
def main(argv=None):
    args = (sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0].startswith("-"):
        raise UsageError("usage: python -m common.text.data DATASET OUT_DIR (e.g. SetFit/sst5 data/sst5)")
    out = export_dataset(*args)
    print(f"wrote {out}/train.jsonl and {out}/validation.jsonl")


if __name__ == "__main__":
    main()
