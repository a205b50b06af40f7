"""Random crop with black padding and horizontal flip of a normalised batch, on the batch's device."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_crop_flip"]


def random_crop_flip(x: Tensor, generator: torch.Generator, fill: Tensor) -> Tensor:
    """torchvision's RandomCrop(size, padding=size // 8) then RandomHorizontalFlip(), per image (App. B,
    Fig. 7: RandomCrop(32, padding=4)), on a batch that is already normalised.

    The padding is `fill` (C,), the normalised value of a black pixel (`data.black_pixel`): what the
    original's pipeline, which crops before Normalize, pads with. The offsets and flips are drawn on the
    CPU from `generator` (so a run draws the same augmentation on any device); the crop itself is one
    gather on x's device.

    Args:
        x: (N, C, H, W) normalised images, H == W.
        generator: a CPU torch.Generator (e.g. `common.epoch_generator(seed, epoch)`).
        fill: (C,) padding value per channel.
    Returns:
        (N, C, H, W) on x's device, x's dtype.
    """
    n, c, h, w = x.shape
    pad = h // 8
    device = x.device
    padded = fill.to(device, x.dtype).view(1, c, 1, 1).repeat(n, 1, h + 2 * pad, w + 2 * pad)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy, dx = (torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(device) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]  # (n, 1, 1, w)
    images = torch.arange(n, device=device)[:, None, None, None]
    channels = torch.arange(c, device=device)[None, :, None, None]
    cropped = padded[images, channels, rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(device)
    return torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)
