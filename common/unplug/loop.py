"""The training loop of the rf_* experiments (rf_resnet18, rf_vit, rf_bert, rf_gpt2): the same protocol on
different models and data, so it is written once. Each train.py writes out its recipe (data, model,
classifier, optimiser, keys and presets) and hands them to `train_with_unplug` (images in memory or an
ImageFolder) or, for other inputs, to `unplug_training` with an `UnplugTask` (`common.unplug.tasks`: `image_task`,
`text_task`).

Per epoch: the unplug schedule sets the learning rate and weight decay and says whether the term is on;
each step computes CE, the regulariser (`rf_terms`: L = CE - lambda reg while on, Eq. 1) and the
fixed-definition relative flatness, steps the optimiser and caps the classifier; after the epoch one
eval-mode pass over both splits logs the metrics of `common.measures.splits.split_metrics`; the row and the
checkpoint are written together, so a killed run resumes without losing or doubling a row.

Under torchrun (`torchrun --nproc_per_node N -m <folder>.train ...`) the model is wrapped in
DistributedDataParallel, `--batch_size` is the global batch (each rank takes its share), the regulariser
and the fixed-definition RF are computed over the global batch (features and logits gathered with their
graph, common.plumbing.distributed), the epoch sums are reduced over ranks and the evaluation gathers all ranks'
features: the logged values are those of one process on the same batches, up to float rounding (and
BatchNorm, whose statistics stay per rank). Rank 0 alone writes the log and checkpoints; each rank's RNG
state is saved, and a resumed run restores them.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..plumbing.config import Run, epoch_generator
from ..plumbing.distributed import current, gather_rows, wrap
from ..plumbing.loop import EpochSums, end_epoch, global_batch_loss, run_rows, start_run
from .regularisation import cap_weight_, rf_regulariser, rf_terms, unplug_from_config
from .tasks import UnplugTask, image_task

__all__ = ["UnplugTask", "train_with_unplug", "unplug_training"]


def train_with_unplug(run: Run, argv, model: torch.nn.Module, head: torch.nn.Linear, data: dict,
                      optimizer: torch.optim.Optimizer, memory_format=torch.contiguous_format,
                      workers: int = 0) -> list[dict]:
    """`unplug_training` on images (`image_task`): data = {"train": source, "val": source}, a source being
    (images, labels) tensors on the device or a torch Dataset (read by a DataLoader with `workers` processes);
    the features are the input of `head`. The config also holds dataset and augment (the crop's padding)."""
    return unplug_training(run, argv, model, head, optimizer, image_task(run, model, head, data, memory_format, workers))


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
    net = wrap(model, device, getattr(args, "sync_bn", False))  # the image experiments' --sync_bn
    batch_size = config["batch_size"]  # global: each rank holds its share (rank_rows)
    for epoch in range(state["step"], config["epochs"]):
        phase = unplug.apply(optimizer, epoch)  # this epoch's lr and weight decay, and whether the term is on
        model.train()
        batches = task.batches(epoch_generator(config["seed"], epoch))  # the same after a resume
        sums = EpochSums()  # on the device: no host sync in the loop
        start = time.perf_counter()
        bar = tqdm(batches, total=task.steps, disable=not (run.progress and ddp.is_main), leave=False,
                   desc=f"epoch {epoch + 1}/{config['epochs']}")
        for step, (x, y) in enumerate(bar):
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
            global_batch_loss(loss, ce, len(y), min(batch_size, task.n_train - step * batch_size)).backward()
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
        end_epoch(log, epoch + 1, row, model, optimizer, show=("lr", "train_loss_total", "train_acc", "val_acc",
                                                               "train_reg_running", "train_rf_bound", "w_norm"))
    if ddp.is_main:
        log.mark_finished({"epochs": config["epochs"]})
    return run_rows(log, run_dir)
