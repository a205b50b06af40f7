"""Fixtures shared by the test files: tiny data sets in the real formats, made here."""

import gzip
import pickle

import numpy as np
import pytest
import torchvision


def write_idx(path, array, compress):
    """An idx file (MNIST format) of unsigned bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.fixture
def tiny_fashion_mnist(tmp_path):
    """40 training and 20 test images in the four standard idx files: (folder, {train: (images, labels)})."""
    rng = np.random.default_rng(0)
    arrays = {}
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for train, n in ((True, 40), (False, 20)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        prefix = "train" if train else "t10k"
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, compress=False)  # plain file also found
        arrays[train] = images, labels
    return folder, arrays


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar10" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8)  # rows: R plane, G plane, B plane
        labels = rng.integers(0, 10, size=4).tolist()
        with open(root / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        batches[name] = data, labels
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    # The archive is ours, so torchvision's MD5 check of the real files cannot pass: skip only that.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    return tmp_path / "cifar10", batches
