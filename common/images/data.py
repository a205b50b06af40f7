"""CIFAR-10 (paper presets) and Fashion-MNIST (CPU presets) as tensors in memory, class-balanced subsets.

CIFAR-10 comes through torchvision (`--data_dir`, `--download` where the internet is reachable).
Fashion-MNIST is read from the four standard idx files (.gz or not), as Debian's
`dataset-fashion-mnist` package installs them or as torchvision downloads them (FashionMNIST/raw/).
Missing data is a UsageError that says how to get it; nothing is ever substituted.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..plumbing.cli import UsageError

# App. B: the main experiments normalise with mean = std = 0.5; the augmentation ablation (Fig. 7)
# with the CIFAR-10 channel statistics.
CIFAR_ORIGINAL_NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
CIFAR_AUGMENT_NORM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
FASHION_MNIST_NORM = ((0.2860,), (0.3530,))  # training-set statistics
DATASETS = ("cifar10", "fashion_mnist")
FASHION_MNIST_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                       False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def load_cifar10(data_dir: str | Path, train: bool, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 as uint8 images (N, 3, 32, 32) and int64 labels (N,), via torchvision."""
    from torchvision.datasets import CIFAR10

    try:
        dataset = CIFAR10(root=str(data_dir), train=train, download=download)
    except RuntimeError as err:
        raise UsageError(f"CIFAR-10 not found in {data_dir} ({err}); rerun with --download where the internet is "
                         f"reachable, or unpack cifar-10-python.tar.gz so that {Path(data_dir) / 'cifar-10-batches-py'} "
                         f"exists") from err
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(dataset.targets, dtype=torch.long)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format: big-endian magic 0x0000 08 <ndim>, then the dims, then uint8 data)."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UsageError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UsageError(f"{path} is truncated: {data.size} bytes of data for shape {shape}")
    return data.reshape(shape)


def _find(data_dir: Path, name: str, torchvision_folder: str = "FashionMNIST") -> Path | None:
    for folder in (data_dir, data_dir / torchvision_folder / "raw"):
        for candidate in (folder / (name + ".gz"), folder / name):
            if candidate.exists():
                return candidate
    return None


def load_fashion_mnist(data_dir: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as uint8 images (N, 1, 28, 28) and int64 labels (N,) from the idx files in `data_dir`."""
    return load_idx_images(data_dir, train, "fashion_mnist")


def load_idx_images(data_dir: str | Path, train: bool, dataset: str = "fashion_mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST or MNIST (the same four idx file names) as uint8 images (N, 1, 28, 28) and int64
    labels (N,) from `data_dir` (or torchvision's <data_dir>/FashionMNIST/raw, <data_dir>/MNIST/raw)."""
    data_dir = Path(data_dir)
    name, folder = {"fashion_mnist": ("Fashion-MNIST", "FashionMNIST"), "mnist": ("MNIST", "MNIST")}[dataset]
    paths = [_find(data_dir, file, folder) for file in FASHION_MNIST_FILES[train]]
    if None in paths:
        missing = [n for n, p in zip(FASHION_MNIST_FILES[train], paths) if p is None]
        how = ("on Debian run `apt-get install dataset-fashion-mnist` and pass the folder `dpkg -L "
               "dataset-fashion-mnist` lists as --data_dir, or let torchvision.datasets.FashionMNIST(root, "
               "download=True) fetch it") if dataset == "fashion_mnist" else \
            "let torchvision.datasets.MNIST(root, download=True) fetch it and pass root as --data_dir"
        raise UsageError(f"{name} file {missing[0]}(.gz) not found in {data_dir}; {how}")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UsageError(f"{paths[0]} and {paths[1]} do not hold matching images (N, 28, 28) and labels (N,)")
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


def balanced_subset(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Indices of `size` samples with (as far as divisible) equal counts per class, drawn by `seed`."""
    classes = torch.unique(labels)
    per_class = [size // len(classes) + (i < size % len(classes)) for i in range(len(classes))]
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c, count in zip(classes.tolist(), per_class):
        members = torch.nonzero(labels == c).squeeze(1)
        if count > len(members):
            raise UsageError(f"a class-balanced subset of {size} needs {count} images of class {c}, "
                             f"but the data have {len(members)}; choose a smaller size")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


def to_float(images: torch.Tensor, norm: tuple[tuple[float, ...], tuple[float, ...]] | tuple[torch.Tensor, torch.Tensor],
             size: int | None = None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> normalised float32, optionally resized to size x size (bilinear, antialiased).
    `norm`: (mean, std) per channel, as numbers or as float32 tensors on the images' device."""
    x = images.float() / 255.0
    if size is not None and size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean, std = (torch.as_tensor(v, dtype=torch.float32, device=x.device).view(1, -1, 1, 1) for v in norm)
    return (x - mean) / std


class Images:
    """A split's images kept as uint8 (N, C, H, W) on their device and turned into the model's input batch by
    batch: `images[idx]` is `to_float(uint8[idx], norm, size)`, the values `to_float` gives the whole split, to the
    bit (each image is converted on its own; tests/images/test_images.py). A quarter of float32's memory on the
    device (CIFAR-10's training split: 150 MB instead of 600 MB). `len`, `shape` (of the converted images) and
    `to(device)` as a tensor's."""

    def __init__(self, uint8: torch.Tensor, norm, size: int | None = None) -> None:
        if uint8.dtype != torch.uint8 or uint8.dim() != 4:
            raise ValueError(f"Images holds uint8 (N, C, H, W), got {uint8.dtype} {tuple(uint8.shape)}")
        self.uint8, self.size = uint8, size
        self.norm = tuple(torch.as_tensor(v, dtype=torch.float32, device=uint8.device) for v in norm)  # on the device

    def __len__(self) -> int:
        return len(self.uint8)

    def __getitem__(self, index) -> torch.Tensor:
        return to_float(self.uint8[index], self.norm, self.size)

    @property
    def shape(self) -> torch.Size:
        n, c, h, w = self.uint8.shape
        return torch.Size((n, c, self.size or h, self.size or w))

    @property
    def device(self) -> torch.device:
        return self.uint8.device

    def to(self, device) -> "Images":
        return Images(self.uint8.to(device), tuple(v.to(device) for v in self.norm), self.size)


def normalisation(dataset: str, augment: bool = False) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel: App. B's 0.5 / 0.5 for CIFAR-10, its channel statistics with augmentation
    (Fig. 7), the training-set statistics for Fashion-MNIST."""
    if dataset == "cifar10":
        return CIFAR_AUGMENT_NORM if augment else CIFAR_ORIGINAL_NORM
    return FASHION_MNIST_NORM


def load_splits(dataset: str, data_dir: str | Path, train_size: int = 0, val_size: int = 0,
                image_size: int | None = None, seed: int = 0, augment: bool = False,
                download: bool = False) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": (x, y), "val": (x, y)}: the images as `Images` (uint8, converted to normalised float32
    (N, C, H, W) batch by batch: x[idx]) and int64 labels.

    A size of 0 keeps the whole split; otherwise a class-balanced subset drawn by `seed`. The
    validation split is the data set's test split (as the paper). Missing data or a size larger than
    the split raise UsageError."""
    norm = normalisation(dataset, augment)
    out = {}
    for split, train, size in (("train", True, train_size), ("val", False, val_size)):
        if dataset == "cifar10":
            images, labels = load_cifar10(data_dir, train, download)
        else:
            images, labels = load_fashion_mnist(data_dir, train)
        if size > len(labels):
            raise UsageError(f"--{split}_size {size} is larger than the {len(labels)} {split} images")
        classes = len(labels.unique())
        if 0 < size < classes:
            raise UsageError(f"--{split}_size {size} is smaller than the {classes} classes; a class-balanced subset "
                             f"needs at least one image of each (0 keeps the whole split)")
        if size:
            keep = balanced_subset(labels, size, seed)
            images, labels = images[keep], labels[keep]
        out[split] = Images(images.contiguous(), norm, image_size), labels
    return out


def black_pixel(dataset: str, augment: bool = False) -> torch.Tensor:
    """(C,) the value of a black pixel after normalisation: what torchvision's RandomCrop pads with when
    it runs before Normalize, as in the original's transform pipeline."""
    mean, std = normalisation(dataset, augment)
    return -torch.tensor(mean) / torch.tensor(std)


def train_batches(source, batch_size: int, generator: torch.Generator, device: torch.device,
                  fill: torch.Tensor | None = None, workers: int = 0, rank: int = 0, world_size: int = 1):
    """One epoch of shuffled mini-batches (x, y) on `device`, in the order `generator` draws (a generator from
    `common.epoch_generator(seed, epoch)` gives a resumed run the same batches).

    `source` is (images, labels) tensors in memory, or a torch Dataset of (image, label) (e.g. an
    ImageFolder), read by a DataLoader with `workers` processes in the drawn order. With `fill` (C,), each
    batch gets `random_crop_flip` with that padding, drawn after the order from the same generator on the
    CPU, elsewhere from a generator of the device that it seeds (`device_generator`).
    Under torchrun `batch_size` is the global batch and `rank` of `world_size` gets its contiguous share of
    each (common.plumbing.distributed.rank_rows); every rank draws the same order.
    """
    from torch.utils.data import DataLoader, Dataset

    from ..plumbing.distributed import rank_rows
    from ..plumbing.loop import to_device
    from .augment import device_generator, random_crop_flip

    if isinstance(source, Dataset):
        order = torch.randperm(len(source), generator=generator)
        shares = [batch[rank_rows(len(batch), rank, world_size)].tolist() for batch in order.split(batch_size)]
        loader = DataLoader(source, batch_sampler=shares, num_workers=workers, pin_memory=device.type == "cuda")
        batches = ((x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in loader)
    else:
        images, labels = source
        order = to_device(torch.randperm(len(labels), generator=generator), device)
        shares = (idx[rank_rows(len(idx), rank, world_size)] for idx in order.split(batch_size))
        batches = ((images[idx], labels[idx]) for idx in shares)
    augment = device_generator(generator, device) if fill is not None else None
    for x, y in batches:
        yield (random_crop_flip(x, augment, fill) if fill is not None else x), y


def num_samples(source) -> int:
    """Samples in a source of `train_batches`: (images, labels) tensors or a Dataset."""
    return len(source[1]) if isinstance(source, tuple) else len(source)


def num_batches(source, batch_size: int) -> int:
    """Mini-batches per epoch of `train_batches`."""
    return -(-num_samples(source) // batch_size)


IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def read_class_list(path: str | Path) -> list[str]:
    """Class folder names, one per line ('#' starts a comment)."""
    names = [line.split("#")[0].strip() for line in Path(path).read_text().splitlines()]
    return [name for name in names if name]


def load_image_folder(root: str | Path, classes: list[str], image_size: int = 224, resize: int = 256):
    """{"train": ImageFolder(root/train), "val": ImageFolder(root/val)} restricted to `classes` (class index =
    position in the sorted list), each image Resize(resize) -> CenterCrop(image_size) -> ToTensor ->
    Normalize(ImageNet mean and std), for both splits and without augmentation, as the original rf_vit.
    Missing folders or classes raise UsageError saying what is missing and how to lay the data out."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    root, wanted = Path(root), sorted(classes)
    transform = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(image_size), transforms.ToTensor(),
                                    transforms.Normalize(*IMAGENET_NORM)])

    class Subset(ImageFolder):
        def find_classes(self, directory):
            present = {p.name for p in Path(directory).iterdir() if p.is_dir()}
            missing = [c for c in wanted if c not in present]
            if missing:
                raise UsageError(f"{directory} lacks {len(missing)} of the {len(wanted)} class folders (e.g. "
                                 f"{', '.join(missing[:3])}); lay the data out as <data_dir>/train/<wnid>/*.JPEG and "
                                 f"<data_dir>/val/<wnid>/*.JPEG (ImageNet-1k's val split sorted into class folders)")
            return wanted, {c: i for i, c in enumerate(wanted)}

    out = {}
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise UsageError(f"no folder {root / split}; the ImageNet-100 data go in <data_dir>/train/<wnid>/ and "
                             f"<data_dir>/val/<wnid>/, one folder for each class listed in --classes_file "
                             f"(ImageNet-1k cannot be downloaded automatically: it needs an image-net.org account)")
        try:
            out[split] = Subset(str(root / split), transform=transform)
        except FileNotFoundError as err:  # a class folder without images
            raise UsageError(f"{root / split}: {err}") from err
    return out
