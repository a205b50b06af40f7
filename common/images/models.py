"""ResNet-18 with torchvision's topology and building blocks, a width knob and the CIFAR stem.

App. B: "ResNet-18 as implemented in torchvision 0.19.1, without any modifications" (7x7 stride-2 stem
and max-pool, 64-128-256-512 channels). Fig. 7 uses the CIFAR variant (3x3 stride-1 stem, no max-pool).
`width` scales the channels (64 = torchvision); `init` chooses torchvision's initialisation (Kaiming
normal fan-out for convolutions, BatchNorm 1/0) or PyTorch's default, which the original code used
(its scratch ResNet, docs/original_code.md §3.1). With width 64, the standard stem and torchvision init, the network,
its parameter names and, under the same seed, its initial weights and outputs equal
torchvision.models.resnet18(num_classes=10) (tests/images/test_images.py).
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet as tv


class ResNet18(nn.Module):
    # torchvision's own layer builder and forward, so the blocks and their order are torchvision's.
    _make_layer = tv.ResNet._make_layer
    forward = tv.ResNet._forward_impl

    def __init__(self, num_classes: int = 10, width: int = 64, in_channels: int = 3, cifar_stem: bool = False,
                 init: str = "torchvision") -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if init not in ("torchvision", "pytorch"):
            raise ValueError(f"init must be 'torchvision' or 'pytorch', got {init!r}")
        self._norm_layer, self.inplanes, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, width, 1, 1, 64
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(tv.BasicBlock, width, 2)
        self.layer2 = self._make_layer(tv.BasicBlock, 2 * width, 2, stride=2)
        self.layer3 = self._make_layer(tv.BasicBlock, 4 * width, 2, stride=2)
        self.layer4 = self._make_layer(tv.BasicBlock, 8 * width, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, num_classes)  # W, b: the layer NCC and relative flatness are measured at
        if init == "torchvision":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)


def vision_transformer(image_size: int = 224, patch_size: int = 16, num_layers: int = 12, num_heads: int = 3,
                       hidden_dim: int = 192, mlp_dim: int | None = None, num_classes: int = 100,
                       in_channels: int = 3) -> nn.Module:
    """A ViT from scratch, torchvision's `VisionTransformer` (the defaults are ViT-Tiny: 192 wide, 12 layers,
    3 heads, MLP 4x, patch 16 at 224, as timm's vit_tiny_patch16_224 of the original), all dropouts 0.

    The classifier is `model.heads.head`; its input is the class token after the final LayerNorm, so
    `common.capture_features(model, model.heads.head)` gives the features in the same forward pass.
    `in_channels` != 3 replaces the patch embedding by one with that many input channels, initialised as
    torchvision initialises its own (truncated normal, std sqrt(1 / fan_in), zero bias).
    """
    from torchvision.models.vision_transformer import VisionTransformer

    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    model = VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=num_layers,
                              num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim or 4 * hidden_dim,
                              dropout=0.0, attention_dropout=0.0, num_classes=num_classes)
    if in_channels != 3:
        conv = nn.Conv2d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)
        fan_in = in_channels * patch_size * patch_size
        nn.init.trunc_normal_(conv.weight, std=(1.0 / fan_in) ** 0.5)
        nn.init.zeros_(conv.bias)
        model.conv_proj = conv
    return model
