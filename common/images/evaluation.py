"""The per-epoch measurement of an image classifier: one eval-mode pass per split, then the metrics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..features import capture_features
from ..neural_collapse import class_mean_angles, ncc, neural_collapse, simplex_angle
from ..relative_flatness import relative_flatness_bound, relative_flatness_exact

__all__ = ["features_and_logits", "dataset_features_and_logits", "split_metrics", "evaluate", "upper_triangle"]


@torch.no_grad()
def features_and_logits(model: nn.Module, head: nn.Module, x: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Eval-mode pass over a whole split in chunks: (features (N, D) = the input of `head`, logits (N, C))."""
    features, logits = [], []
    with capture_features(model, head) as cap:
        for i in range(0, len(x), chunk):
            logits.append(model(x[i:i + chunk]))
            features.append(cap.features)
    return torch.cat(features), torch.cat(logits)


def upper_triangle(matrix: Tensor) -> Tensor:
    """The entries above the diagonal of a (C, C) matrix, row by row: one value per class pair."""
    return matrix[torch.triu_indices(len(matrix), len(matrix), 1).unbind()]


@torch.no_grad()
def split_metrics(split: str, features: Tensor, logits: Tensor, labels: Tensor, head: nn.Linear) -> dict:
    """Loss, accuracy and NCC of one split; on the training split also the RF bound (Lemma A.2) and exact
    value (Def. 3.2) of `head`, ||W||_F, NC1-NC4 and the pairwise class-mean angles (Fig. 3). Metrics in
    float64 for the small values. Keys: <split>_loss, <split>_acc, <split>_ncc, and train_rf_bound,
    train_rf_exact, w_norm, train_nc1..train_nc4, train_angle_mean, train_angle_std, train_angles,
    simplex_angle."""
    row = {f"{split}_loss": F.cross_entropy(logits, labels).item(),
           f"{split}_acc": (logits.argmax(1) == labels).float().mean().item()}
    phi = features.double()
    row[f"{split}_ncc"] = ncc(phi, labels).item()
    if split == "train":
        weight = head.weight.double()
        bias = head.bias.double() if head.bias is not None else None  # GPT-2's score has none
        row["train_rf_bound"] = relative_flatness_bound(phi, weight, bias).item()
        row["train_rf_exact"] = relative_flatness_exact(phi, weight, bias).item()
        row["w_norm"] = weight.norm().item()
        row.update({f"train_{k}": v.item() for k, v in neural_collapse(phi, labels, weight, bias).items()})
        angles = class_mean_angles(phi, labels)  # (C, C) degrees
        pairs = upper_triangle(angles)
        row.update(train_angle_mean=pairs.mean().item(), train_angle_std=pairs.std().item(),
                   train_angles=pairs.tolist(), simplex_angle=simplex_angle(len(angles)))
    return row


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
    (images, labels) tensors or a torch Dataset) and its metrics; a progress bar over a Dataset's batches
    with `progress`. Under torchrun each rank passes its contiguous share of a split and the metrics are
    computed from all ranks' features and logits (common.distributed.gather_rows): the single-process
    values."""
    from torch.utils.data import Subset

    from ..distributed import gather_rows, rank_rows

    model.eval()
    row = {}
    for split, source in data.items():
        if isinstance(source, tuple):
            x, y = source
            features, logits = features_and_logits(model, head, x[rank_rows(len(x), rank, world_size)])
        else:
            device = next(model.parameters()).device
            share = range(len(source))[rank_rows(len(source), rank, world_size)]
            features, logits, y = dataset_features_and_logits(model, head, Subset(source, share), device,
                                                              workers=workers, progress=progress,
                                                              desc=f"evaluating {split}")
            y = gather_rows(y)
        row.update(split_metrics(split, gather_rows(features), gather_rows(logits), y, head))
    return row
