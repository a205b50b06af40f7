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

import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from common import (Key, NON_NEGATIVE, class_mean_angles, capture_features, entry_point, epoch_generator, ncc, parse,
                    relative_flatness_bound)
from common.plumbing.distributed import current, gather_rows, wrap
from common.images import (DATA_KEYS, DATA_RULES, IMAGE_OPTIONS, RESNET_KEYS, SGD_KEYS, SGD_RULES, ResNet18,
                           black_pixel, evaluate, load_splits, num_batches, train_batches, upper_triangle)
from common.plumbing.loop import EpochSums, end_epoch, global_batch_loss, run_rows, start_run

KEYS = {  # App. B: SGD lr 0.01, momentum 0.9, batch 64, no weight decay, constant lr, 250 epochs, lambda 1e-3
    "seed": Key(42, "model seed; also draws the data subsets, batch order and augmentation"),
    **DATA_KEYS,
    **RESNET_KEYS,
    **SGD_KEYS,  # constant lr, no scheduler
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
    *SGD_RULES,
    *DATA_RULES,
]
OPTIONS = {
    **IMAGE_OPTIONS,
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
    run.setup(distributed=True)
    ddp = current()  # under torchrun: --batch_size is the global batch, each rank takes its share
    data = {split: (x.to(device), y.to(device)) for split, (x, y) in load_data(config, args).items()}
    classes = 10
    model = ResNet18(num_classes=classes, width=config["width"], in_channels=data["train"][0].shape[1],
                     cifar_stem=config["cifar_stem"], init=config["init"]).to(device)
    head = model.fc  # W, b: the layer NCC and relative flatness are measured at (taken before any wrapping)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"])  # constant lr, no scheduler (App. B)

    log, state = start_run(run, argv, model, optimizer)  # rank 0 writes; every rank resumes
    if state is None:
        return run_rows(log, run_dir)
    net = wrap(model, device, args.sync_bn)  # DistributedDataParallel under torchrun
    if ddp.is_main:
        print(f"{len(data['train'][1])} train / {len(data['val'][1])} val images of {config['dataset']}")
    n_train, steps = len(data["train"][1]), num_batches(data["train"], config["batch_size"])
    fill = black_pixel(config["dataset"], config["augment"]) if config["augment"] else None  # the crop's padding
    for epoch in range(state["step"], config["epochs"]):
        model.train()
        generator = epoch_generator(config["seed"], epoch)  # batches and augmentation: the same after a resume
        batches = train_batches(data["train"], config["batch_size"], generator, device, fill, 0, ddp.rank,
                                ddp.world_size)
        sums = EpochSums()  # on the device: no host sync in the loop
        seen_features, seen_labels = [], []  # --running_metrics: every step's features and labels
        start = time.perf_counter()
        for x, y in tqdm(batches, total=steps, disable=not (run.progress and ddp.is_main), leave=False,
                         desc=f"epoch {epoch + 1}/{config['epochs']}"):
            with capture_features(net, head) as cap, torch.autocast(device.type, torch.bfloat16, enabled=args.amp):
                logits = net(x.contiguous(memory_format=memory_format))
            ce = F.cross_entropy(logits.float(), y)
            # §5: subtract lambda * NCC of the batch (classes present): maximise NCC, through the features only.
            # Under torchrun the global batch's NCC: all ranks' features, with their graph.
            # num_classes: the classes present found without a host read, so a GPU step never waits for the host.
            y_all = gather_rows(y)
            reg = (ncc(gather_rows(cap.features.float(), True), y_all, num_classes=classes)
                   if config["regularizer"] == "ncc" else torch.zeros((), device=device))
            loss = ce - config["lam"] * reg
            if args.running_metrics:  # before this step's update, as the original computed them
                phi, weight = cap.features.detach().double(), head.weight.detach().double()
                seen_features.append(phi), seen_labels.append(y)
                rf = relative_flatness_bound(gather_rows(phi), weight, logits=gather_rows(logits.detach().double()))
                sums.add(rf_bound=rf * len(y), w_norm=weight.norm() / ddp.world_size)  # summed over ranks below
            optimizer.zero_grad(set_to_none=True)
            global_batch_loss(loss, ce, len(y), len(y_all)).backward()  # DDP: the local CE by its share
            optimizer.step()
            sums.add(loss=loss * len(y), ce=ce * len(y), reg=reg * len(y), correct=(logits.argmax(1) == y).sum())
        train_s = time.perf_counter() - start
        totals = sums.totals(reduce=ddp.enabled)
        mean = {k: v / n_train for k, v in totals.items()}
        sums.check_finite(mean["loss"], f"epoch {epoch + 1}", run_dir, "lower --lam or --lr")
        row = {"epoch": epoch + 1, "step": (epoch + 1) * steps, "lr": config["lr"],
               # The original's logged train loss includes -lambda * NCC (Fig. 5); CE and the term apart.
               "train_loss_total": mean["loss"], "train_ce_running": mean["ce"], "train_reg_running": mean["reg"],
               "train_acc_running": mean["correct"]}
        if args.running_metrics:
            phi_epoch, y_epoch = gather_rows(torch.cat(seen_features)), gather_rows(torch.cat(seen_labels))
            row.update(train_ncc_running=ncc(phi_epoch, y_epoch).item(), train_rf_bound_running=mean["rf_bound"],
                       w_norm_running=totals["w_norm"] / steps,
                       # Fig. 3 from the original's epoch class means
                       train_angles_running=upper_triangle(class_mean_angles(phi_epoch, y_epoch)).tolist())
        start = time.perf_counter()
        row.update(evaluate(model, head, data, progress=run.progress, rank=ddp.rank, world_size=ddp.world_size))
        row["eval_s"], row["train_s"] = time.perf_counter() - start, train_s
        end_epoch(log, epoch + 1, row, model, optimizer, show=("train_loss_total", "train_acc", "val_loss", "val_acc",
                                                               "train_ncc", "train_rf_bound", "train_angle_mean"))
    if ddp.is_main:
        log.mark_finished({"epochs": config["epochs"]})
    return run_rows(log, run_dir)


if __name__ == "__main__":
    main()
