"""Random crop with black padding and horizontal flip of a normalised batch, on the batch's device."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_crop_flip", "device_generator"]


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """The generator to draw a batch's augmentation from on `device`: `generator` itself on its own device
    (a CPU run draws what it always drew), else a generator of `device` seeded by one draw from `generator`
    (once per epoch, on the host: the steps then draw on the device and never wait for the host)."""
    device = torch.device(device)
    if device.type == generator.device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return torch.Generator(device).manual_seed(seed)


def random_crop_flip(x: Tensor, generator: torch.Generator, fill: Tensor) -> Tensor:
    """torchvision's RandomCrop(size, padding=size // 8) then RandomHorizontalFlip(), per image (App. B,
    Fig. 7: RandomCrop(32, padding=4)), on a batch that is already normalised.

    The padding is `fill` (C,), the normalised value of a black pixel (`data.black_pixel`): what the
    original's pipeline, which crops before Normalize, pads with. The offsets (uniform in [0, 2 pad]) and
    flips (probability 1/2) are drawn on x's device from `generator`, a generator of that device
    (`device_generator`), and the crop is one gather there: no host round trip.

    Args:
        x: (N, C, H, W) normalised images, H == W.
        generator: a torch.Generator on x's device (on the CPU e.g. `common.epoch_generator(seed, epoch)`).
        fill: (C,) padding value per channel.
    Returns:
        (N, C, H, W) on x's device, x's dtype.
    """
    n, c, h, w = x.shape
    pad = h // 8
    device = x.device
    if generator.device.type != device.type:
        raise ValueError(f"the generator is on {generator.device}, the images on {device}: draw from a generator "
                         f"of the images' device (device_generator)")
    padded = fill.to(device, x.dtype).view(1, c, 1, 1).repeat(n, 1, h + 2 * pad, w + 2 * pad)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy, dx = (torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]  # (n, 1, 1, w)
    images = torch.arange(n, device=device)[:, None, None, None]
    channels = torch.arange(c, device=device)[None, :, None, None]
    cropped = padded[images, channels, rows, cols]
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)
