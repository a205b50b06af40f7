"""Figs. 2, 3, 5, 6, 7: ResNet-18 trained with L = CE - lambda * NCC generalizes without neural collapse.

The NCC regulariser (§5, docs/original_code.md §1.3) is computed on each mini-batch over the classes present and
subtracted, so training maximises NCC. After every epoch one evaluation pass (eval-mode BatchNorm)
over the whole training and validation sets logs losses, accuracies, NCC, the relative flatness of
the last layer (Lemma A.2 bound and Def. 3.2 exact), ||W||_F, NC1-NC4 and the class-mean angles.

    python -m nc_experiments.train --preset paper --seed 42 --data_dir data   # App. B: CIFAR-10, 250 epochs
    python -m nc_experiments.train --preset cpu --data_dir DIR                # Fashion-MNIST, 1000 images

The unregularised baseline is `--regularizer none`. `--running_metrics` also logs the original's epoch
values, the ones the paper's figures plot (docs/original_code.md §3.2: train-mode features of the
epoch's steps, each with the parameters of its step): train_acc_running, train_ncc_running,
train_rf_bound_running, w_norm_running, train_angles_running.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from common import (ArgumentParser, RunLog, UsageError, capture_features, class_mean_angles, entry_point, ncc,
                    neural_collapse, relative_flatness_bound, relative_flatness_exact, seed_everything, simplex_angle)
from nc_experiments import data as datasets
from nc_experiments.model import ResNet18

DEFAULTS = {  # App. B: SGD lr 0.01, momentum 0.9, batch 64, no weight decay, constant lr, 250 epochs, lambda 1e-3
    "seed": 42, "dataset": "cifar10", "train_size": 0, "val_size": 0, "image_size": 32, "augment": False,
    "width": 64, "cifar_stem": False, "init": "pytorch", "epochs": 250, "batch_size": 64, "lr": 0.01,
    "momentum": 0.9, "weight_decay": 0.0, "regularizer": "ncc", "lam": 1e-3,
}
PRESETS = {
    "paper": {},
    # ~2.4k steps instead of ~195k: lambda 30x larger shows the effect at this budget (1e-1 is unstable).
    "cpu": {"dataset": "fashion_mnist", "train_size": 1000, "val_size": 1000, "image_size": 16, "width": 16,
            "cifar_stem": True, "epochs": 150, "lam": 3e-2},
}
CHOICES = {"dataset": ["cifar10", "fashion_mnist"], "init": ["torchvision", "pytorch"], "regularizer": ["none", "ncc"]}


def parse_args(argv):
    parser = ArgumentParser(prog="python -m nc_experiments.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    for key, value in DEFAULTS.items():
        if isinstance(value, bool):
            parser.add_argument(f"--{key}", action="store_true", default=None)
        else:
            parser.add_argument(f"--{key}", type=type(value), choices=CHOICES.get(key), default=None,
                                help=f"default {value} (paper), preset cpu: {PRESETS['cpu'].get(key, value)}")
    parser.add_argument("--data_dir", default="data", help="CIFAR-10 root or folder of the Fashion-MNIST idx files")
    parser.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 into --data_dir")
    parser.add_argument("--out_dir", default="runs", help="runs go to OUT_DIR/nc_experiments/<run>/seed_<k>")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels_last", action="store_true", help="channels-last memory format (GPU)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for the forward pass (GPU)")
    parser.add_argument("--no_progress", action="store_true", help="one line per epoch instead of a progress bar")
    parser.add_argument("--running_metrics", action="store_true",
                        help="also log the original's epoch values, which the paper plots (docs/original_code.md "
                             "§3.2): accuracy, NCC, RF bound and class-mean angles over the train-mode features of "
                             "the epoch's steps, each with the parameters of its step")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    config = {**DEFAULTS, **PRESETS[args.preset], **overrides, "preset": args.preset}
    for key, ok, rule in [("lam", config["lam"] >= 0, ">= 0"), ("width", config["width"] >= 1, ">= 1"),
                          ("epochs", config["epochs"] > 0, "> 0"), ("lr", 0 < config["lr"] < math.inf, "> 0"),
                          ("batch_size", config["batch_size"] > 1, "> 1"),
                          ("train_size", config["train_size"] >= 0, ">= 0 (0: all)"),
                          ("val_size", config["val_size"] >= 0, ">= 0 (0: all)")]:
        if not ok:
            raise UsageError(f"--{key} must be {rule}, got {config[key]}")
    changed = "".join(f"_{k}{v}" for k, v in sorted(overrides.items())
                      if k != "seed" and PRESETS[args.preset].get(k, DEFAULTS[k]) != v)
    run_dir = Path(args.out_dir) / "nc_experiments" / (args.preset + changed) / f"seed_{config['seed']}"
    return args, config, run_dir


def normalisation(config):
    """(mean, std) per channel: App. B's 0.5 / 0.5, or the CIFAR-10 statistics with augmentation (Fig. 7)."""
    augment_norm = config["augment"] and config["dataset"] == "cifar10"
    return {"cifar10": datasets.CIFAR_AUGMENT_NORM if augment_norm else datasets.CIFAR_ORIGINAL_NORM,
            "fashion_mnist": datasets.FASHION_MNIST_NORM}[config["dataset"]]


def load_data(config, args):
    """Training and validation tensors (float, normalised) and labels, class-balanced subsets by the seed."""
    norm = normalisation(config)
    out = {}
    for split, train in (("train", True), ("val", False)):
        if config["dataset"] == "cifar10":
            images, labels = datasets.load_cifar10(args.data_dir, train, args.download)
        else:
            images, labels = datasets.load_fashion_mnist(args.data_dir, train)
        size = config[f"{split}_size"]
        if size > len(labels):
            raise UsageError(f"--{split}_size {size} is larger than the {len(labels)} {split} images")
        if size:
            keep = datasets.balanced_subset(labels, size, config["seed"])
            images, labels = images[keep], labels[keep]
        out[split] = datasets.to_float(images, norm, config["image_size"]), labels
    return out


def augment(x, generator, fill):
    """Random crop with padding of 1/8 of the image side (App. B, Fig. 7: RandomCrop(32, padding=4); 2 pixels
    at the CPU preset's 16x16) and random horizontal flip, per image. x is already normalised, so the
    padding is `fill` (C,), the normalised value of a black pixel: what torchvision's RandomCrop before
    Normalize pads with."""
    n, c, h, w = x.shape
    pad = h // 8
    padded = fill.to(x.dtype).view(1, c, 1, 1).repeat(n, 1, h + 2 * pad, w + 2 * pad)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy, dx = (torch.randint(0, 2 * pad + 1, (n,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (n, 1, 1, w)
    cropped = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)


@torch.no_grad()
def features_and_logits(model, x, chunk=1024):
    """Eval-mode pass over a whole split: (features (N, D), logits (N, C))."""
    feats, logits = [], []
    with capture_features(model, model.fc) as cap:
        for i in range(0, len(x), chunk):
            logits.append(model(x[i:i + chunk]))
            feats.append(cap.features)
    return torch.cat(feats), torch.cat(logits)


@torch.no_grad()
def split_metrics(split, phi, logits, y, head):
    """Loss, accuracy and NCC of one split; on the training split also the RF bound and exact value,
    ||W||_F, NC1-NC4 and the pairwise class-mean angles (float64 for the small values)."""
    row = {f"{split}_loss": F.cross_entropy(logits, y).item(), f"{split}_acc": (logits.argmax(1) == y).float().mean().item()}
    phi = phi.double()
    row[f"{split}_ncc"] = ncc(phi, y).item()
    if split == "train":
        weight, bias = head.weight.double(), head.bias.double()
        row["train_rf_bound"] = relative_flatness_bound(phi, weight, bias).item()
        row["train_rf_exact"] = relative_flatness_exact(phi, weight, bias).item()
        row["w_norm"] = weight.norm().item()
        row.update({f"train_{k}": v.item() for k, v in neural_collapse(phi, y, weight, bias).items()})
        angles = class_mean_angles(phi, y)  # (C, C) degrees
        pairs = angles[torch.triu_indices(len(angles), len(angles), 1).unbind()]
        row.update(train_angle_mean=pairs.mean().item(), train_angle_std=pairs.std().item(),
                   train_angles=pairs.tolist(), simplex_angle=simplex_angle(len(angles)))
    return row


@torch.no_grad()
def evaluate(model, data):
    """One eval-mode pass over each split, and its metrics."""
    model.eval()
    row = {}
    for split in ("train", "val"):
        x, y = data[split]
        row.update(split_metrics(split, *features_and_logits(model, x), y, model.fc))
    return row


@entry_point
def main(argv=None):
    args, config, run_dir = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    seed_everything(config["seed"])
    data = {k: (x.to(device), y.to(device)) for k, (x, y) in load_data(config, args).items()}  # tensors in memory
    model = ResNet18(num_classes=10, width=config["width"], in_channels=data["train"][0].shape[1],
                     cifar_stem=config["cifar_stem"], init=config["init"]).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"])  # constant lr, no scheduler (App. B)

    log = RunLog(run_dir, config, argv=sys.argv[:1] + list(argv if argv is not None else sys.argv[1:]),
                 device=str(device))
    if log.finished:
        print(f"{run_dir}: already finished ({config['epochs']} epochs); nothing to do")
        rows = log.rows()
        log.close()
        return rows
    state = log.resume(model, optimizer, map_location=device)
    epoch = state["step"] if state is not None else 0
    print(f"{run_dir}: {'resuming after epoch ' + str(epoch) if epoch else 'new run'}; "
          f"{len(data['train'][1])} train / {len(data['val'][1])} val images of {config['dataset']}")
    x_train, y_train = data["train"]
    black = datasets.to_float(torch.zeros(1, x_train.shape[1], 1, 1, dtype=torch.uint8), normalisation(config))
    black = black.flatten()  # (C,) the crop's padding value: a black pixel after normalisation
    n_train, batch_size = len(y_train), config["batch_size"]
    show_bar = not args.no_progress and sys.stderr.isatty()
    for epoch in range(epoch, config["epochs"]):
        model.train()
        # Batches and augmentation from (seed, epoch): a resumed run sees the same ones.
        generator = torch.Generator().manual_seed(config["seed"] * 1_000_003 + epoch)
        order = torch.randperm(n_train, generator=generator).to(device)
        sums = torch.zeros(6, dtype=torch.float64, device=device)  # loss, CE, reg, correct, RF bound, ||W||
        seen = []  # --running_metrics: (features, labels) of every step
        start = time.perf_counter()
        batches = range(0, n_train, batch_size)
        for i in tqdm(batches, disable=not show_bar, leave=False, desc=f"epoch {epoch + 1}/{config['epochs']}"):
            idx = order[i:i + batch_size]
            x, y = x_train[idx], y_train[idx]
            if config["augment"]:
                x = augment(x.cpu(), generator, black).to(device)
            with capture_features(model, model.fc) as cap, torch.autocast(device.type, torch.bfloat16,
                                                                          enabled=args.amp):
                logits = model(x.contiguous(memory_format=memory_format))
            ce = F.cross_entropy(logits.float(), y)
            # §5: subtract lambda * NCC of the batch (classes present): maximise NCC, through the features only.
            reg = ncc(cap.features.float(), y) if config["regularizer"] == "ncc" else torch.zeros((), device=device)
            loss = ce - config["lam"] * reg
            if not torch.isfinite(loss):
                log.close()
                print(f"error: loss {loss.item()} at epoch {epoch + 1}, batch {i // batch_size}; the last good "
                      f"checkpoint is kept in {run_dir}; lower --lam or --lr", file=sys.stderr)
                raise SystemExit(1)
            if args.running_metrics:  # before this step's update, as the original computed them
                phi, weight = cap.features.detach().double(), model.fc.weight.detach().double()
                seen.append((phi, y))
                rf = relative_flatness_bound(phi, weight, logits=logits.detach().double())
                norm = weight.norm()
            else:
                rf = norm = torch.zeros((), device=device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += torch.stack([loss.detach() * len(y), ce.detach() * len(y), reg.detach() * len(y),
                                 (logits.argmax(1) == y).sum(), rf * len(y), norm]).double()
        train_s = time.perf_counter() - start
        running = (sums / n_train).tolist()
        row = {"epoch": epoch + 1, "step": (epoch + 1) * len(batches), "lr": config["lr"],
               # The original's logged train loss includes -lambda * NCC (Fig. 5); CE and the term apart.
               "train_loss_total": running[0], "train_ce_running": running[1], "train_reg_running": running[2],
               "train_acc_running": running[3]}
        if args.running_metrics:
            phi_epoch, y_epoch = map(torch.cat, zip(*seen))
            angles = class_mean_angles(phi_epoch, y_epoch)  # Fig. 3 from the original's epoch class means
            row.update(train_ncc_running=ncc(phi_epoch, y_epoch).item(), train_rf_bound_running=running[4],
                       w_norm_running=sums[5].item() / len(batches),
                       train_angles_running=angles[torch.triu_indices(len(angles), len(angles), 1).unbind()].tolist())
        start = time.perf_counter()
        row.update(evaluate(model, data))
        row["eval_s"], row["train_s"] = time.perf_counter() - start, train_s
        log.append(row)
        log.save_checkpoint(epoch + 1, model, optimizer)
        print(f"epoch {epoch + 1:>4}  " + "  ".join(f"{k} {row[k]:.4g}" for k in (
            "train_loss_total", "train_acc", "val_loss", "val_acc", "train_ncc", "train_rf_bound",
            "train_angle_mean")), flush=True)
    log.mark_finished({"epochs": config["epochs"]})
    rows = log.rows()
    log.close()
    return rows


if __name__ == "__main__":
    main()
