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
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from common import (Diverged, Key, NON_NEGATIVE, POSITIVE, RunLog, class_mean_angles, capture_features,
                    command_line, entry_point, epoch_generator, ncc, parse, relative_flatness_bound)
from common.images import (DATASETS, ResNet18, black_pixel, evaluate, load_splits, random_crop_flip,
                           upper_triangle)

KEYS = {  # App. B: SGD lr 0.01, momentum 0.9, batch 64, no weight decay, constant lr, 250 epochs, lambda 1e-3
    "seed": Key(42, "model seed; also draws the data subsets, batch order and augmentation"),
    "dataset": Key("cifar10", "training data (validation: its test split)", choices=DATASETS),
    "train_size": Key(0, "class-balanced training subset size (0: all)"),
    "val_size": Key(0, "class-balanced validation subset size (0: all)"),
    "image_size": Key(32, "images resized to this side (bilinear, antialiased)"),
    "augment": Key(False, "random crop (padding 1/8 of the side, black) and horizontal flip (Fig. 7)"),
    "width": Key(64, "ResNet-18 channels of the first stage (64 = torchvision)"),
    "cifar_stem": Key(False, "3x3 stride-1 stem without max-pool (Fig. 7) instead of torchvision's"),
    "init": Key("pytorch", "initialisation: PyTorch's default (the original) or torchvision's",
                choices=("torchvision", "pytorch")),
    "epochs": Key(250, "training epochs"),
    "batch_size": Key(64, "mini-batch size (the batch NCC is computed over the classes present)"),
    "lr": Key(0.01, "SGD learning rate, constant"),
    "momentum": Key(0.9, "SGD momentum"),
    "weight_decay": Key(0.0, "SGD weight decay"),
    "regularizer": Key("ncc", "ncc: L = CE - lam * NCC(batch features); none: the baseline",
                       choices=("none", "ncc")),
    "lam": Key(1e-3, "lambda, the regulariser's weight"),
}
PRESETS = {
    "paper": {},
    # ~2.4k steps instead of ~195k: lambda 30x larger shows the effect at this budget (1e-1 is unstable).
    "cpu": {"dataset": "fashion_mnist", "train_size": 1000, "val_size": 1000, "image_size": 16, "width": 16,
            "cifar_stem": True, "epochs": 150, "lam": 3e-2},
}
RULES = [
    ("lam", NON_NEGATIVE),
    ("width", lambda v: v >= 1, ">= 1"),
    ("epochs", lambda v: v > 0, "> 0"),
    ("lr", POSITIVE),
    ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("weight_decay", NON_NEGATIVE),
    ("batch_size", lambda v: v > 1, "> 1"),
    ("image_size", lambda v: v >= 8, ">= 8"),
    ("train_size", lambda v: v >= 0, ">= 0 (0: all)"),
    ("val_size", lambda v: v >= 0, ">= 0 (0: all)"),
]
OPTIONS = {
    "data_dir": Key("data", "CIFAR-10 root, or the folder of the Fashion-MNIST idx files"),
    "download": Key(False, "let torchvision download CIFAR-10 into --data_dir"),
    "channels_last": Key(False, "channels-last memory format (GPU)"),
    "amp": Key(False, "bf16 autocast for the forward pass (GPU)"),
    "running_metrics": Key(False, "also log the original's epoch values, which the paper plots: "
                                  "train_acc_running, train_ncc_running, train_rf_bound_running, w_norm_running, "
                                  "train_angles_running (docs/original_code.md §3.2)"),
}


def parse_args(argv):
    return parse(argv, "nc_experiments", __doc__, KEYS, PRESETS, RULES, OPTIONS)


def load_data(config, args):
    """{"train": (x, y), "val": (x, y)}: normalised images and labels, class-balanced subsets by the seed."""
    return load_splits(config["dataset"], args.data_dir, config["train_size"], config["val_size"],
                       config["image_size"], config["seed"], config["augment"], args.download)


@entry_point
def main(argv=None):
    run = parse_args(argv)
    args, config, run_dir, device = run
    run.setup()
    data = {split: (x.to(device), y.to(device)) for split, (x, y) in load_data(config, args).items()}
    model = ResNet18(num_classes=10, width=config["width"], in_channels=data["train"][0].shape[1],
                     cifar_stem=config["cifar_stem"], init=config["init"]).to(device)
    head = model.fc  # W, b: the layer NCC and relative flatness are measured at (taken before any wrapping)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"])  # constant lr, no scheduler (App. B)

    log = RunLog(run_dir, config, argv=command_line(argv), device=str(device))
    if log.finished:
        print(f"{run_dir}: already finished ({config['epochs']} epochs); nothing to do")
        return log.rows_and_close()
    state = log.resume(model, optimizer, map_location=device)
    epoch = state["step"] if state is not None else 0
    print(f"{run_dir}: {'resuming after epoch ' + str(epoch) if epoch else 'new run'}; "
          f"{len(data['train'][1])} train / {len(data['val'][1])} val images of {config['dataset']}")
    x_train, y_train = data["train"]
    black = black_pixel(config["dataset"], config["augment"])  # (C,) the crop's padding value
    n_train, batch_size = len(y_train), config["batch_size"]
    for epoch in range(epoch, config["epochs"]):
        model.train()
        generator = epoch_generator(config["seed"], epoch)  # batches and augmentation: same after a resume
        order = torch.randperm(n_train, generator=generator).to(device)
        # Sums over the epoch (float64, on the device: no host sync in the loop); --running_metrics also
        # keeps every step's features and labels.
        sums = {k: torch.zeros((), dtype=torch.float64, device=device)
                for k in ("loss", "ce", "reg", "correct", "rf_bound", "w_norm")}
        seen_features, seen_labels = [], []
        start = time.perf_counter()
        batches = range(0, n_train, batch_size)
        for i in tqdm(batches, disable=not run.progress, leave=False, desc=f"epoch {epoch + 1}/{config['epochs']}"):
            idx = order[i:i + batch_size]
            x, y = x_train[idx], y_train[idx]
            if config["augment"]:
                x = random_crop_flip(x, generator, black)
            with capture_features(model, head) as cap, torch.autocast(device.type, torch.bfloat16, enabled=args.amp):
                logits = model(x.contiguous(memory_format=memory_format))
            ce = F.cross_entropy(logits.float(), y)
            # §5: subtract lambda * NCC of the batch (classes present): maximise NCC, through the features only.
            reg = ncc(cap.features.float(), y) if config["regularizer"] == "ncc" else torch.zeros((), device=device)
            loss = ce - config["lam"] * reg
            if args.running_metrics:  # before this step's update, as the original computed them
                phi, weight = cap.features.detach().double(), head.weight.detach().double()
                seen_features.append(phi), seen_labels.append(y)
                sums["rf_bound"] += relative_flatness_bound(phi, weight, logits=logits.detach().double()) * len(y)
                sums["w_norm"] += weight.norm()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in (("loss", loss), ("ce", ce), ("reg", reg)):
                sums[key] += (value.detach() * len(y)).double()
            sums["correct"] += (logits.argmax(1) == y).sum().double()
        train_s = time.perf_counter() - start
        mean = {k: v.item() / n_train for k, v in sums.items()}
        if not math.isfinite(mean["loss"]):  # checked once per epoch; the checkpoint is the last epoch's
            log.close()
            raise Diverged(f"mean training loss {mean['loss']} in epoch {epoch + 1}; the last good checkpoint "
                           f"(epoch {epoch}) is kept in {run_dir}; lower --lam or --lr")
        row = {"epoch": epoch + 1, "step": (epoch + 1) * len(batches), "lr": config["lr"],
               # The original's logged train loss includes -lambda * NCC (Fig. 5); CE and the term apart.
               "train_loss_total": mean["loss"], "train_ce_running": mean["ce"], "train_reg_running": mean["reg"],
               "train_acc_running": mean["correct"]}
        if args.running_metrics:
            phi_epoch, y_epoch = torch.cat(seen_features), torch.cat(seen_labels)
            row.update(train_ncc_running=ncc(phi_epoch, y_epoch).item(), train_rf_bound_running=mean["rf_bound"],
                       w_norm_running=sums["w_norm"].item() / len(batches),
                       # Fig. 3 from the original's epoch class means
                       train_angles_running=upper_triangle(class_mean_angles(phi_epoch, y_epoch)).tolist())
        start = time.perf_counter()
        row.update(evaluate(model, head, data))
        row["eval_s"], row["train_s"] = time.perf_counter() - start, train_s
        log.append(row)
        log.save_checkpoint(epoch + 1, model, optimizer)
        print(f"epoch {epoch + 1:>4}  " + "  ".join(f"{k} {row[k]:.4g}" for k in (
            "train_loss_total", "train_acc", "val_loss", "val_acc", "train_ncc", "train_rf_bound",
            "train_angle_mean")), flush=True)
    log.mark_finished({"epochs": config["epochs"]})
    return log.rows_and_close()


if __name__ == "__main__":
    main()
