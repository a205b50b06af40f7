"""One split's metrics from this process's share of it: under torchrun every rank measures its contiguous
share of a split and the metrics are computed from all ranks' rows, so they equal the single-process
values. The image and text experiments' evaluations both end here."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from ..measures.splits import split_metrics
from .distributed import gather_rows

__all__ = ["measure_split"]


@torch.no_grad()
def measure_split(split: str, chunks: Iterable[Sequence[Tensor]], head: nn.Linear, labels: Tensor | None = None,
                  order: Tensor | None = None) -> dict:
    """`split_metrics` of one split from this rank's share of it.

    Args:
        chunks: this rank's rows as (features, logits) or (features, logits, labels) tensors, chunk after chunk.
        labels: the labels of the whole split (every rank's rows); None: taken from the chunks' third tensor.
        order: the rows of the chunks are the share's rows in this order (e.g. sorted by length); they are put
            back into the share's order before the ranks' rows are gathered.
    Returns:
        the row of `split_metrics` (<split>_loss, <split>_acc, <split>_ncc, and the training split's extra keys).
    """
    parts = [torch.cat(column) for column in zip(*chunks)]
    if order is not None:
        back = torch.argsort(order).to(parts[0].device)
        parts = [part[back] for part in parts]
    features, logits = gather_rows(parts[0]), gather_rows(parts[1])
    return split_metrics(split, features, logits, labels if labels is not None else gather_rows(parts[2]), head)
