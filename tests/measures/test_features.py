"""Tests of common/measures/features.py: capture_features records the classifier's input with its graph."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from common import FeatureCapture, capture_features, ncc


def _sequential(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3))


def _resnet(seed=0):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None, num_classes=10)


def _resnet_penultimate(model, x):
    """Manual forward of torchvision's ResNet up to the input of fc."""
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    h = model.layer4(model.layer3(model.layer2(model.layer1(h))))
    return torch.flatten(model.avgpool(h), 1)


@pytest.mark.parametrize("by_name", [False, True])
def test_sequential_captures_classifier_input(by_name):
    model = _sequential()
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    layer = "4" if by_name else model[4]
    with capture_features(model, layer) as cap:
        assert isinstance(cap, FeatureCapture) and cap.features is None
        logits = model(x)
    expected = model[3](model[2](model[1](model[0](x))))  # manual forward up to the last Linear
    assert cap.features.shape == (6, 6)
    torch.testing.assert_close(cap.features, expected, rtol=0, atol=0)
    torch.testing.assert_close(model[4](cap.features), logits, rtol=0, atol=0)


def test_nested_dotted_name():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))
    x = torch.randn(3, 4)
    with capture_features(model, "1.1") as cap:
        model(x)
    torch.testing.assert_close(cap.features, torch.relu(model[0](x)), rtol=0, atol=0)


@pytest.mark.parametrize("by_name", [False, True])
def test_resnet18_captures_fc_input(by_name):
    model = _resnet().eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with capture_features(model, "fc" if by_name else model.fc) as cap:
        logits = model(x)
    assert logits.shape == (2, 10)
    assert cap.features.shape == (2, 512)
    with torch.no_grad():
        manual = _resnet_penultimate(model, x)
        torch.testing.assert_close(cap.features, manual, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(model.fc(cap.features), logits, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(cap.features @ model.fc.weight.T + model.fc.bias, logits, rtol=1e-5, atol=1e-5)


def test_graph_is_kept_and_grad_reaches_parameters():
    model = _resnet().train()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.tensor([0, 1, 0, 1])
    with capture_features(model, "fc") as cap:
        logits = model(x)
        reg = ncc(cap.features, y)
    assert cap.features.requires_grad and cap.features.grad_fn is not None
    model.zero_grad()
    reg.backward()
    assert torch.isfinite(reg)
    conv_grad = model.conv1.weight.grad
    assert conv_grad is not None and torch.isfinite(conv_grad).all() and conv_grad.abs().sum() > 0
    assert model.layer4[1].conv2.weight.grad.abs().sum() > 0
    # ncc does not depend on the classifier: fc gets no gradient from it
    assert model.fc.weight.grad is None or model.fc.weight.grad.abs().sum() == 0
    # combined objective also reaches fc
    model.zero_grad()
    with capture_features(model, model.fc) as cap:
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y) - 0.1 * ncc(cap.features, y)
    loss.backward()
    assert model.fc.weight.grad.abs().sum() > 0 and model.conv1.weight.grad.abs().sum() > 0


def test_sequential_grad_reaches_parameters():
    model = _sequential()
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])
    with capture_features(model, model[4]) as cap:
        model(x)
    ncc(cap.features, y).backward()
    assert torch.isfinite(model[0].weight.grad).all() and model[0].weight.grad.abs().sum() > 0
    assert model[4].weight.grad is None


def test_latest_forward_is_kept_and_hook_removed_after_block():
    model = _sequential()
    g = torch.Generator().manual_seed(5)
    x1, x2, x3 = (torch.randn(4, 5, generator=g) for _ in range(3))
    with capture_features(model, model[4]) as cap:
        model(x1)
        model(x2)
        assert len(model[4]._forward_pre_hooks) == 1
    torch.testing.assert_close(cap.features, model[3](model[2](model[1](model[0](x2)))), rtol=0, atol=0)
    kept = cap.features
    assert len(model[4]._forward_pre_hooks) == 0
    model(x3)
    assert cap.features is kept


def test_hook_removed_on_error():
    model = _sequential()
    with pytest.raises(RuntimeError, match="boom"):
        with capture_features(model, "4") as cap:
            raise RuntimeError("boom")
    assert len(model[4]._forward_pre_hooks) == 0
    model(torch.randn(2, 5))
    assert cap.features is None


def test_resnet_hook_removed_after_block():
    model = _resnet().eval()
    g = torch.Generator().manual_seed(6)
    x1, x2 = torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 3, 32, 32, generator=g)
    with capture_features(model, "fc") as cap:
        model(x1)
    first = cap.features.detach().clone()
    with torch.no_grad():
        model(x2)
    torch.testing.assert_close(cap.features.detach(), first, rtol=0, atol=0)
    assert len(model.fc._forward_pre_hooks) == 0


@pytest.mark.parametrize("name", ["head", "fc.weight_x", "fc.weight", "layer9", "4.1"])
def test_unknown_name_raises_value_error(name):
    model = _resnet() if not name.startswith("4") else _sequential()
    with pytest.raises(ValueError):
        with capture_features(model, name):
            pass
