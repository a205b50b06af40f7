"""Capture the classifier's input features with a forward pre-hook, without changing any forward."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import Tensor, nn

__all__ = ["FeatureCapture", "capture_features"]


class FeatureCapture:
    """Holds the latest input of the hooked layer; `features` is None until a forward pass ran."""

    def __init__(self) -> None:
        self.features: Tensor | None = None

    def __repr__(self) -> str:
        shape = None if self.features is None else tuple(self.features.shape)
        return f"FeatureCapture(features={shape})"


@contextmanager
def capture_features(model: nn.Module, layer: nn.Module | str) -> Iterator[FeatureCapture]:
    """Context manager that records the input of `layer` (the classifier) at every forward pass.

    The captured tensor keeps its autograd graph, so it can feed a regulariser such as
    `L = CE - lambda * ncc(captured.features, y)` (Eq. in §5). Works for any module: for a
    torchvision ResNet use `layer=model.fc` (or "fc"), for a Hugging Face model the name of its
    head ("classifier", "score", ...). The hook is removed on exit, also on error.

    Args:
        model: the network; used to resolve `layer` when it is a dotted name.
        layer: the classifier module, or its dotted name in `model.named_modules()`.
    Yields:
        a FeatureCapture whose `.features` is the layer's first positional input of the latest call.

    Example:
        with capture_features(model, model.fc) as cap:
            logits = model(x)
            reg = ncc(cap.features, y)
    """
    if isinstance(layer, str):
        try:
            layer = model.get_submodule(layer)
        except AttributeError as err:
            raise ValueError(f"model has no submodule {layer!r}") from err
    capture = FeatureCapture()

    def hook(module: nn.Module, args: tuple) -> None:
        capture.features = args[0]

    handle = layer.register_forward_pre_hook(hook)
    try:
        yield capture
    finally:
        handle.remove()
