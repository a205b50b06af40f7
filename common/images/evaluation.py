"""The per-epoch measurement of an image classifier: one eval-mode pass per split, then the metrics."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..measures.features import capture_features
from ..measures.splits import split_metrics, upper_triangle
from ..plumbing.evaluation import measure_split

__all__ = ["features_and_logits", "dataset_features_and_logits", "split_metrics", "evaluate", "upper_triangle"]


@torch.no_grad()
def features_and_logits(model: nn.Module, head: nn.Module, x, chunk: int = 1024,
                        rows: slice = slice(None)) -> tuple[Tensor, Tensor]:
    """Eval-mode pass over the `rows` of a split (x: a tensor (N, C, H, W) or `Images`, converted chunk by
    chunk) in chunks: (features (n, D) = the input of `head`, logits (n, C))."""
    features, logits = [], []
    start, stop, _ = rows.indices(len(x))
    with capture_features(model, head) as cap:
        for i in range(start, stop, chunk):
            logits.append(model(x[i:min(i + chunk, stop)]))
            features.append(cap.features)
    return torch.cat(features), torch.cat(logits)


@torch.no_grad()
def dataset_features_and_logits(model: nn.Module, head: nn.Module, dataset, device: torch.device,
                                batch_size: int = 256, workers: int = 0, progress: bool = False,
                                desc: str = "evaluating") -> tuple[Tensor, Tensor, Tensor]:
    """Eval-mode pass over a torch Dataset of (image, label) in order: (features (N, D), logits (N, C),
    labels (N,)), on `device`; a progress bar over its batches with `progress`."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    features, logits, labels = [], [], []
    with capture_features(model, head) as cap:
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
        for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
            logits.append(model(x.to(device, non_blocking=True)))
            features.append(cap.features)
            labels.append(y.to(device))
    return torch.cat(features), torch.cat(logits), torch.cat(labels)


@torch.no_grad()
def evaluate(model: nn.Module, head: nn.Linear, data: dict, workers: int = 0, progress: bool = False,
             rank: int = 0, world_size: int = 1) -> dict:
    """One eval-mode pass over each split of `data` ({"train": source, "val": source}, a source being
    (images, labels), the images a tensor or `Images`, or a torch Dataset) and its metrics; a progress bar over a Dataset's batches
    with `progress`. Under torchrun each rank passes its contiguous share of a split and the metrics are
    computed from all ranks' features and logits (common.plumbing.distributed.gather_rows): the single-process
    values."""
    from torch.utils.data import Subset

    from ..plumbing.distributed import rank_rows

    model.eval()
    row = {}
    for split, source in data.items():
        if isinstance(source, tuple):
            x, y = source
            chunks = [features_and_logits(model, head, x, rows=rank_rows(len(x), rank, world_size))]
            row.update(measure_split(split, chunks, head, labels=y))
        else:
            device = next(model.parameters()).device
            share = range(len(source))[rank_rows(len(source), rank, world_size)]
            chunks = [dataset_features_and_logits(model, head, Subset(source, share), device, workers=workers,
                                                  progress=progress, desc=f"evaluating {split}")]
            row.update(measure_split(split, chunks, head))
    return row
