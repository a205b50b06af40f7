"""The metrics of one split of a classifier's data, as every image and text experiment logs them each epoch:
loss, accuracy and NCC, and on the training split relative flatness (bound and exact), NC1-NC4 and the
class-mean angles. Tensors in, a row (dict of floats) out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .neural_collapse import class_mean_angles, ncc, neural_collapse, simplex_angle
from .relative_flatness import relative_flatness_bound, relative_flatness_exact

__all__ = ["split_metrics", "upper_triangle"]


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
