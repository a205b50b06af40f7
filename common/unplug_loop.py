"""The training loop of the rf_* experiments (rf_resnet18, rf_vit, rf_bert, rf_gpt2): the same protocol on
different models and data, so it is written once. Each train.py writes out its recipe (data, model,
classifier, optimiser, keys and presets) and hands them to `train_with_unplug` (images in memory or an
ImageFolder) or, for other inputs, to `unplug_training` with an `UnplugTask` (common.text builds the one of
the text models).

Per epoch: the unplug schedule sets the learning rate and weight decay and says whether the term is on;
each step computes CE, the regulariser (`rf_terms`: L = CE - lambda reg while on, Eq. 1) and the
fixed-definition relative flatness, steps the optimiser and caps the classifier; after the epoch one
eval-mode pass over both splits logs the metrics of `common.images.split_metrics`; the row and the
checkpoint are written together, so a killed run resumes without losing or doubling a row.

Under torchrun (`torchrun --nproc_per_node N -m <folder>.train ...`) the model is wrapped in
DistributedDataParallel, `--batch_size` is the global batch (each rank takes its share), the regulariser
and the fixed-definition RF are computed over the global batch (features and logits gathered with their
graph, common.distributed), the epoch sums are reduced over ranks and the evaluation gathers all ranks'
features: the logged values are those of one process on the same batches, up to float rounding (and
BatchNorm, whose statistics stay per rank). Rank 0 alone writes the log and checkpoints; each rank's RNG
state is saved, and a resumed run restores them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .config import Run, epoch_generator
from .distributed import all_gather_objects, current, gather_rows, run_rows, start_run, wrap
from .features import capture_features
from .images import black_pixel, evaluate, num_batches, num_samples, train_batches
from .loop import EpochSums
from .regularisation import cap_weight_, rf_regulariser, rf_terms, unplug_from_config
from .seeding import get_rng_state

__all__ = ["UnplugTask", "train_with_unplug", "unplug_training"]


@dataclass(frozen=True)
class UnplugTask:
    """What the loop needs of a model on its data, whatever the inputs are.

    n_train: training samples; steps: mini-batches per epoch.
    batches(generator): one epoch of (inputs, labels) on the device, in the order `generator` draws
        (`epoch_generator(seed, epoch)`, so a resumed run draws the same batches); under torchrun this
        rank's share of each global batch.
    forward(model, inputs): (features, logits) of a batch in train mode through `model` (the network, or
        its DistributedDataParallel wrapper): the features the regulariser uses (the classifier's input
        unless the experiment says otherwise), with their graph.
    evaluate(): the eval-mode metrics of both splits (`common.images.split_metrics` keys), under torchrun
        from all ranks' features.
    """

    n_train: int
    steps: int
    batches: Callable[[torch.Generator], Iterable[tuple[Any, Tensor]]]
    forward: Callable[[torch.nn.Module, Any], tuple[Tensor, Tensor]]
    evaluate: Callable[[], dict]


def train_with_unplug(run: Run, argv, model: torch.nn.Module, head: torch.nn.Linear, data: dict,
                      optimizer: torch.optim.Optimizer, memory_format=torch.contiguous_format,
                      workers: int = 0) -> list[dict]:
    """`unplug_training` on images: data = {"train": source, "val": source}, a source being (images, labels)
    tensors on the device or a torch Dataset (read by a DataLoader with `workers` processes); the features
    are the input of `head`. The config also holds dataset and augment (the crop's padding)."""
    args, config, run_dir, device = run
    fill = black_pixel(config["dataset"], config["augment"]) if config["augment"] else None
    rank, world = current().rank, current().world_size

    def forward(net, x):
        with capture_features(net, head) as cap:
            logits = net(x.contiguous(memory_format=memory_format))
        return cap.features, logits

    task = UnplugTask(
        n_train=num_samples(data["train"]), steps=num_batches(data["train"], config["batch_size"]),
        batches=lambda generator: train_batches(data["train"], config["batch_size"], generator, device, fill, workers,
                                                rank, world),
        forward=forward, evaluate=lambda: evaluate(model, head, data, workers=workers, progress=run.progress,
                                                   rank=rank, world_size=world))
    return unplug_training(run, argv, model, head, optimizer, task)


def unplug_training(run: Run, argv, model: torch.nn.Module, head: torch.nn.Linear, optimizer: torch.optim.Optimizer,
                    task: UnplugTask) -> list[dict]:
    """Train `model` (classifier `head`, taken before any wrapping) for config["epochs"] with the run's
    regulariser and unplug schedule, logging one row per epoch; returns the rows.

    The config holds RF_KEYS, lr, weight_decay, epochs, batch_size and seed; run.args.amp enables bf16
    autocast for the forward pass.
    """
    args, config, run_dir, device = run
    unplug = unplug_from_config(config)
    ddp = current()
    log, state = start_run(run, argv, model, optimizer)
    if state is None:
        return run_rows(log, run_dir)
    net = wrap(model, device)
    for epoch in range(state["step"], config["epochs"]):
        phase = unplug.apply(optimizer, epoch)  # this epoch's lr and weight decay, and whether the term is on
        model.train()
        batches = task.batches(epoch_generator(config["seed"], epoch))  # the same after a resume
        sums = EpochSums()  # on the device: no host sync in the loop
        start = time.perf_counter()
        for x, y in tqdm(batches, total=task.steps, disable=not (run.progress and ddp.is_main), leave=False,
                         desc=f"epoch {epoch + 1}/{config['epochs']}"):
            with torch.autocast(device.type, torch.bfloat16, enabled=args.amp):
                phi, logits = task.forward(net, x)
            phi, logits = phi.float(), logits.float()
            ce = F.cross_entropy(logits, y)
            # §6, Eq. (1): subtract lambda * kappa while the term is on; the fixed-definition RF beside it.
            # Both over the global batch: all ranks' features and logits, with their graph.
            phi_all, logits_all = gather_rows(phi, True), gather_rows(logits, True)
            loss, reg, rf = rf_terms(ce, phi_all, head.weight, logits_all, config, phase.regularise)
            with torch.no_grad():  # the term's form at temperature 1: the text models' original logged value off the term
                reg_tau1 = rf_regulariser(phi_all, head.weight, logits_all, 1.0, config["normalise_features"])
            optimizer.zero_grad(set_to_none=True)
            if ddp.enabled:  # DDP averages over ranks: weight the local CE by its share of the global batch
                total = len(gather_rows(y))
                (loss + ce * (len(y) * ddp.world_size / total - 1)).backward()
            else:
                loss.backward()
            optimizer.step()
            if config["cap"] != "none":  # the original caps after every step, for the whole run
                cap_weight_(head.weight, config["max_norm"], config["cap"])
            sums.add(loss=loss * len(y), ce=ce * len(y), reg=reg * len(y), reg_tau1=reg_tau1 * len(y),
                     rf_bound=rf * len(y), correct=(logits.argmax(1) == y).sum())
        train_s = time.perf_counter() - start
        mean = {k: v / task.n_train for k, v in sums.totals(reduce=ddp.enabled).items()}
        sums.check_finite(mean["loss"], f"epoch {epoch + 1}", run_dir, "lower --lam or --lr")
        row = {"epoch": epoch + 1, "step": (epoch + 1) * task.steps, "lr": phase.lr,
               "weight_decay": phase.weight_decay, "regularised": phase.regularise,
               "train_loss_total": mean["loss"], "train_ce_running": mean["ce"], "train_reg_running": mean["reg"],
               "train_reg_tau1_running": mean["reg_tau1"],
               "train_rf_bound_running": mean["rf_bound"], "train_acc_running": mean["correct"]}
        start = time.perf_counter()
        model.eval()
        row.update(task.evaluate())
        row["eval_s"], row["train_s"] = time.perf_counter() - start, train_s
        rng_ranks = all_gather_objects(get_rng_state())  # every rank's, for a resume under torchrun
        if ddp.is_main:
            log.append(row)
            log.save_checkpoint(epoch + 1, model, optimizer, rng_ranks=rng_ranks)
            print(f"epoch {epoch + 1:>4}  " + "  ".join(f"{k} {row[k]:.4g}" for k in (
                "lr", "train_loss_total", "train_acc", "val_acc", "train_reg_running", "train_rf_bound", "w_norm")),
                  flush=True)
    if ddp.is_main:
        log.mark_finished({"epochs": config["epochs"]})
    return run_rows(log, run_dir)
