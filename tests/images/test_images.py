"""common.images: the loaders on tiny files made here, subsets, augmentation, the ResNet-18 and the
per-split metrics, each against an independent reference."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from common import UsageError, capture_features, class_mean_angles, ncc, relative_flatness_bound
from common.images import (CIFAR_AUGMENT_NORM, CIFAR_ORIGINAL_NORM, FASHION_MNIST_NORM, ResNet18, balanced_subset,
                           Images, black_pixel, device_generator, evaluate, features_and_logits, load_cifar10, load_fashion_mnist, load_splits,
                           random_crop_flip, read_idx, split_metrics, to_float)


def test_fashion_mnist_reads_idx_files(tiny_fashion_mnist):
    folder, arrays = tiny_fashion_mnist
    for train in (True, False):
        images, labels = load_fashion_mnist(folder, train)
        assert images.shape == (len(arrays[train][0]), 1, 28, 28) and images.dtype == torch.uint8
        assert np.array_equal(images[:, 0].numpy(), arrays[train][0])
        assert labels.tolist() == arrays[train][1].tolist()


def test_missing_or_broken_data_says_how_to_get_it(tmp_path, tiny_fashion_mnist):
    with pytest.raises(UsageError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "empty", train=True)
    with pytest.raises(UsageError, match="--download"):
        load_cifar10(tmp_path / "empty", train=True)
    folder, _ = tiny_fashion_mnist
    path = folder / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(UsageError, match="truncated"):
        read_idx(path)


def test_cifar10_through_torchvision_on_a_tiny_archive(tiny_cifar10):
    tmp_path, batches = tiny_cifar10
    images, labels = load_cifar10(tmp_path, train=True)
    assert images.shape == (20, 3, 32, 32) and labels.shape == (20,)
    first = batches["data_batch_1"][0][0].reshape(3, 32, 32)
    assert np.array_equal(images[0].numpy(), first)
    assert labels.tolist()[:4] == batches["data_batch_1"][1]
    test_images, _ = load_cifar10(tmp_path, train=False)
    assert np.array_equal(test_images[3].numpy(), batches["test_batch"][0][3].reshape(3, 32, 32))


@pytest.mark.parametrize("size, pad, norm", [(32, 4, CIFAR_AUGMENT_NORM), (16, 2, FASHION_MNIST_NORM)])
def test_random_crop_flip_is_torchvisions_random_crop_and_flip(size, pad, norm):
    """random_crop_flip(to_float(images)) equals torchvision's ToTensor -> RandomCrop(size, padding=pad) ->
    RandomHorizontalFlip -> Normalize (black padding, applied before normalising) for one crop offset
    and flip per image, found by brute force over all of them."""
    import torchvision.transforms.v2.functional as TF

    channels = len(norm[0])
    images = torch.randint(0, 256, (64, channels, size, size), dtype=torch.uint8)
    black = black_pixel("cifar10" if channels == 3 else "fashion_mnist", augment=True)
    assert torch.equal(black, to_float(torch.zeros(1, channels, 1, 1, dtype=torch.uint8), norm).flatten())
    out = random_crop_flip(to_float(images, norm), torch.Generator().manual_seed(0), black)
    offsets = range(2 * pad + 1)
    found = []
    for image, source in zip(out, images):
        padded = TF.pad(TF.to_dtype(source, torch.float32, scale=True), [pad], fill=0)
        references = {(dy, dx, flip): TF.normalize(TF.horizontal_flip(crop) if flip else crop, *norm)
                      for dy in offsets for dx in offsets for flip in (False, True)
                      for crop in [TF.crop(padded, dy, dx, size, size)]}
        matches = [key for key, ref in references.items() if torch.allclose(image, ref, atol=1e-5, rtol=0)]
        assert len(matches) == 1
        found.append(matches[0])
    assert len({m[:2] for m in found}) > len(offsets) ** 2 // 4  # offsets vary
    assert {m[0] for m in found} == {m[1] for m in found} == set(offsets)  # up to the full padding
    assert 10 < sum(m[2] for m in found) < 54  # about half flipped
    # the band is black, not the dataset-mean grey (the normalised 0) that padding after Normalize gives
    top_row = out[[i for i, m in enumerate(found) if m[0] == 0][0], :, 0, :]  # dy = 0: the top row is padding
    assert torch.allclose(top_row, black[:, None].expand_as(top_row)) and (black < -0.5).all()


def test_balanced_subset():
    labels = torch.arange(100) % 10
    idx = balanced_subset(labels, 35, seed=0)
    counts = torch.bincount(labels[idx], minlength=10)
    assert len(idx) == 35 and len(set(idx.tolist())) == 35
    assert counts.max() - counts.min() <= 1
    assert torch.equal(idx, balanced_subset(labels, 35, seed=0))
    assert not torch.equal(idx, balanced_subset(labels, 35, seed=1))
    with pytest.raises(UsageError, match="choose a smaller size"):
        balanced_subset(labels, 200, seed=0)


def test_to_float_normalises_and_resizes():
    images = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    x = to_float(images, CIFAR_ORIGINAL_NORM)
    assert torch.allclose(x, torch.ones_like(x))  # (1 - 0.5) / 0.5
    small = to_float(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), ((0.5,), (0.25,)), size=16)
    assert small.shape == (2, 1, 16, 16) and torch.allclose(small, torch.full_like(small, -2.0))


def test_resnet18_is_torchvision_resnet18():
    torch.manual_seed(3)
    ours = ResNet18(num_classes=10)
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(num_classes=10)
    ours_state, reference_state = ours.state_dict(), reference.state_dict()
    assert list(ours_state) == list(reference_state)
    assert all(torch.equal(ours_state[k], reference_state[k]) for k in ours_state)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(ours.eval()(x), reference.eval()(x))


def test_cifar_stem_width_and_init_options():
    model = ResNet18(num_classes=10, width=16, in_channels=1, cifar_stem=True, init="pytorch")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.fc.in_features == 128 and model.layer4[0].conv1.out_channels == 128
    x = torch.randn(4, 1, 16, 16)
    with capture_features(model, model.fc) as cap:
        logits = model(x)
    assert logits.shape == (4, 10) and cap.features.shape == (4, 128)
    # torchvision init: Kaiming normal, fan-out, ReLU gain -> std sqrt(2 / (out_channels * k * k))
    conv = ResNet18(width=64, init="torchvision").layer3[0].conv2
    assert conv.weight.std().item() == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.02)
    with pytest.raises(ValueError, match="width"):
        ResNet18(width=0)


def test_load_splits_subsets_normalises_and_says_when_too_large(tiny_fashion_mnist):
    folder, arrays = tiny_fashion_mnist
    data = load_splits("fashion_mnist", folder, train_size=20, val_size=0, image_size=16, seed=3)
    (x, y), (xv, yv) = data["train"], data["val"]
    assert isinstance(x, Images) and x.uint8.dtype == torch.uint8  # kept as bytes, converted batch by batch
    assert x.shape == (20, 1, 16, 16) and xv.shape == (20, 1, 16, 16) and x[:].dtype == torch.float32
    assert torch.bincount(y, minlength=10).tolist() == [2] * 10  # class-balanced
    keep = balanced_subset(torch.from_numpy(arrays[True][1]).long(), 20, seed=3)
    expected = to_float(torch.from_numpy(arrays[True][0][keep.numpy()]).to(torch.uint8)[:, None], FASHION_MNIST_NORM, 16)
    assert torch.equal(x[:], expected)
    batch = torch.tensor([17, 3, 0, 9])  # a batch converted alone: the bits of the whole split's conversion
    assert torch.equal(x[batch], expected[batch]) and torch.equal(x[5:6], expected[5:6])
    assert torch.equal(x.to("cpu")[batch], expected[batch])
    assert yv.tolist() == arrays[False][1].tolist()  # 0: the whole test split, in order
    with pytest.raises(UsageError, match="--val_size 21 is larger than the 20 val images"):
        load_splits("fashion_mnist", folder, val_size=21)


def test_random_crop_flip_draws_the_same_on_any_device_and_keeps_dtype():
    x = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    a = random_crop_flip(x, torch.Generator().manual_seed(5), fill)
    b = random_crop_flip(x, torch.Generator().manual_seed(5), fill)
    assert a.dtype == torch.float64 and torch.equal(a, b)
    # every output row is a shifted (maybe mirrored) row of the input or the fill: check one image by hand
    gen = torch.Generator().manual_seed(5)
    dy, dx = (torch.randint(0, 5, (6,), generator=gen) for _ in range(2))
    flip = torch.rand(6, generator=gen) < 0.5
    padded = F.pad(x[0], (2, 2, 2, 2))
    for c in range(3):
        padded[c][(padded[c] == 0)] = fill[c]  # the border only: x has no exact zeros
    crop = padded[:, dy[0]:dy[0] + 16, dx[0]:dx[0] + 16]
    assert torch.equal(a[0], crop.flip(-1) if flip[0] else crop)


def decode_crops(out, side, pad):
    """(dy, dx, flip) of each image of random_crop_flip's output on `arange` images (1 channel, values 1, 2, ...;
    the fill -1), from where two known pixels of each source landed."""
    draws = []
    for i, image in enumerate(out[:, 0]):
        centre = 1 + i * side * side + (side // 2) * side + side // 2  # source pixel (side/2, side/2), then its right neighbour
        (r, c), (r2, c2) = ((image == v).nonzero()[0].tolist() for v in (centre, centre + 1))
        assert r == r2 and abs(c2 - c) == 1
        flip = c2 == c - 1
        draws.append((side // 2 + pad - r, side // 2 + pad - (side - 1 - c if flip else c), flip))
    return draws


@pytest.mark.parametrize("kind", ["epoch", "seeded"])
def test_crop_offsets_and_flips_have_torchvisions_distribution(kind):
    """The draws of random_crop_flip, decoded from its output, are uniform over the (2 pad + 1)^2 offsets and
    fair coin flips, as torchvision's RandomCrop and RandomHorizontalFlip draw them (chi-square at p = 0.001),
    from the epoch's CPU generator and from a generator seeded by it as `device_generator` seeds one for
    another device. On the CPU, device_generator keeps the epoch's generator (the draws of earlier runs)."""
    side, pad, n = 16, 2, 4000
    epoch = torch.Generator().manual_seed(3)
    assert device_generator(epoch, torch.device("cpu")) is epoch
    generator = epoch if kind == "epoch" else torch.Generator().manual_seed(int(torch.randint(0, 2**62, (), generator=epoch)))
    x = torch.arange(1, n * side * side + 1, dtype=torch.float64).view(n, 1, side, side)
    draws = decode_crops(random_crop_flip(x, generator, torch.tensor([-1.0])), side, pad)
    joint = torch.zeros(2 * pad + 1, 2 * pad + 1)
    for dy, dx, _ in draws:
        joint[dy, dx] += 1
    expected = n / joint.numel()
    assert ((joint - expected) ** 2 / expected).sum() < 51.2  # chi-square, 24 degrees of freedom, p = 0.001
    flips = sum(f for *_, f in draws)
    assert abs(flips - n / 2) < 3.3 * (n / 4) ** 0.5


def test_random_crop_flip_refuses_a_generator_of_another_device():
    with pytest.raises(ValueError, match="device_generator"):
        random_crop_flip(torch.zeros(2, 1, 8, 8, device="meta"), torch.Generator(), torch.zeros(1))


def test_features_and_split_metrics_against_a_manual_pass():
    torch.manual_seed(0)
    model = ResNet18(num_classes=10, width=4, in_channels=1, cifar_stem=True).eval()
    x, y = torch.randn(50, 1, 16, 16), torch.arange(50) % 10
    features, logits = features_and_logits(model, model.fc, x, chunk=16)  # 4 chunks
    with torch.no_grad():
        trunk = torch.nn.Sequential(*list(model.children())[:-1])  # everything before fc
        manual = trunk(x).flatten(1)
        assert torch.allclose(features, manual, atol=1e-6) and torch.allclose(logits, model.fc(manual), atol=1e-6)
    row = split_metrics("train", features, logits, y, model.fc)
    assert row["train_loss"] == pytest.approx(-torch.log_softmax(logits.double(), 1)[torch.arange(50), y].mean().item(),
                                              rel=1e-5)
    assert row["train_acc"] == pytest.approx(sum(int(logits[i].argmax() == y[i]) for i in range(50)) / 50)
    assert row["train_ncc"] == pytest.approx(ncc(features.double(), y).item())
    bias_free = relative_flatness_bound(features.double(), model.fc.weight.double(), model.fc.bias.double())
    assert row["train_rf_bound"] == pytest.approx(bias_free.item()) and row["train_rf_exact"] <= row["train_rf_bound"]
    assert row["w_norm"] == pytest.approx(model.fc.weight.double().norm().item())
    angles = class_mean_angles(features.double(), y)
    assert row["train_angles"] == pytest.approx([angles[i, j].item() for i in range(10) for j in range(i + 1, 10)])
    assert len(row["train_angles"]) == 45 and row["simplex_angle"] == pytest.approx(96.379, abs=1e-3)
    val = split_metrics("val", features, logits, y, model.fc)
    assert set(val) == {"val_loss", "val_acc", "val_ncc"}
    both = evaluate(model.train(), model.fc, {"train": (x, y), "val": (x[:20], y[:20])})
    assert not model.training and both["train_ncc"] == pytest.approx(row["train_ncc"])  # eval mode, same values
