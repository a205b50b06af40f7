"""Anti-grokking (Prakash & Martin 2025): a 3-layer MLP on 1,000 images trained far past grokking, with
the paper's flatness and neural-collapse measures and the HTSR alpha of each layer on one step axis.

The recipe is Omnigrok's MNIST grokking setting (Liu, Michaud & Tegmark 2023), the one Prakash & Martin
extend to 1e7 steps: a depth-3, width-200 ReLU MLP whose initial parameters are multiplied by 8, MSE
on one-hot targets, AdamW (lr 1e-3, weight decay 0.01, or 0 for the run without), batches of 200 from
the first 1,000 training images (pixels in [0, 1]). At each evaluation of a log-spaced grid it logs
losses and accuracies (validation: the test split), HTSR alpha per layer (common.measures.htsr), the relative
flatness of the last layer (Lemma A.2 bound, Def. 3.2's softmax cross-entropy reading of the outputs,
as the paper's measure; the training loss is MSE), NCC and NC1-NC4 of the penultimate features.

    python -m anti_grokking.train --preset paper --data_dir DIR                    # MNIST, 1e7 steps
    python -m anti_grokking.train --preset cpu --data_dir DIR                      # Fashion-MNIST
    python -m anti_grokking.train --preset cpu --data_dir DIR --weight_decay 0     # without weight decay

Both runs and the figure: `sh anti_grokking/run_script.sh --preset cpu --data_dir DIR`.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from common import (NON_NEGATIVE, POSITIVE, Diverged, Key, RunLog, UsageError, command_line, entry_point, epoch_generator,
                    layer_alphas, log_spaced_steps, ncc, neural_collapse, parse, relative_flatness_bound)
from common.images import load_idx_images

KEYS = {  # Omnigrok's MNIST setting, which Prakash & Martin train for 1e7 steps
    "seed": Key(0, "model seed (initialisation and batch order)"),
    "dataset": Key("mnist", "the idx-format data set (validation: its test split)", choices=("mnist", "fashion_mnist")),
    "train_size": Key(1000, "the first N training images"),
    "val_size": Key(0, "the first N test images (0: all)"),
    "width": Key(200, "hidden width"),
    "depth": Key(3, "Linear layers"),
    "init_scale": Key(8.0, "every initial parameter (PyTorch's default init) multiplied by this"),
    "loss": Key("mse", "mse: mean squared error on one-hot targets (Omnigrok); ce: cross-entropy", choices=("mse", "ce")),
    "lr": Key(1e-3, "AdamW learning rate"),
    "weight_decay": Key(0.01, "AdamW decoupled weight decay (0: the run without)"),
    "batch_size": Key(200, "mini-batch size"),
    "steps": Key(10_000_000, "optimisation steps"),
    "eval_points": Key(200, "log-spaced evaluations (plus step 0)"),
}
PRESETS = {
    "paper": {},
    # Two side-by-side 1-thread runs (with and without weight decay): ~1.9 hours on the 2-core CPU (README).
    "cpu": {"dataset": "fashion_mnist", "val_size": 2000, "steps": 1_000_000, "eval_points": 150},
}
RULES = [
    ("train_size", lambda v: v >= 10, ">= 10"),
    ("val_size", lambda v: v >= 0, ">= 0 (0: all)"),
    ("width", lambda v: v >= 1, ">= 1"),
    ("depth", lambda v: v >= 2, ">= 2"),
    ("init_scale", POSITIVE),
    ("lr", POSITIVE),
    ("weight_decay", NON_NEGATIVE),
    ("batch_size", lambda v: v >= 1, ">= 1"),
    ("steps", lambda v: v >= 1, ">= 1"),
    ("eval_points", lambda v: v >= 1, ">= 1"),
]
OPTIONS = {"data_dir": Key("data", "the folder of the four idx files (MNIST or Fashion-MNIST)")}


def check(config, args):
    if config["batch_size"] > config["train_size"]:
        raise UsageError(f"--batch_size {config['batch_size']} is larger than --train_size {config['train_size']}")


def parse_args(argv):
    return parse(argv, "anti_grokking", __doc__, KEYS, PRESETS, RULES, OPTIONS, check)


def load_data(config, data_dir):
    """{"train": (x (N, 784) in [0, 1], y (N,)), "val": ...}: the first train_size / val_size images."""
    data = {}
    for split, train, size in (("train", True, config["train_size"]), ("val", False, config["val_size"])):
        images, labels = load_idx_images(data_dir, train, config["dataset"])
        if size > len(labels):
            raise UsageError(f"--{split}_size {size} is larger than the {len(labels)} images of the {split} split")
        keep = slice(0, size or len(labels))
        data[split] = images[keep].flatten(1).float() / 255, labels[keep]
    return data


def mlp(config, in_features=784, classes=10):
    """Linear-ReLU-...-Linear, PyTorch's default init times init_scale (Omnigrok). model[-2] is the last ReLU:
    the penultimate features are its output, the input of model[-1]."""
    sizes = [in_features] + [config["width"]] * (config["depth"] - 1) + [classes]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(config["init_scale"])
    return model


def loss_fn(config, logits, y):
    if config["loss"] == "mse":
        return F.mse_loss(logits, F.one_hot(y, logits.shape[1]).to(logits.dtype))
    return F.cross_entropy(logits, y)


@torch.no_grad()
def evaluate(model, data, config):
    """One row: loss and accuracy per split, HTSR alpha per layer, and at the penultimate features of the
    training set the relative flatness of the last layer, NCC and NC1-NC4. Raises FloatingPointError when
    the training loss is not finite (divergence), before any spectrum is taken."""
    row, features = {}, {}
    for split, (x, y) in data.items():
        features[split] = model[:-1](x)
        logits = model[-1](features[split])
        row[f"{split}_loss"] = loss_fn(config, logits, y).item()
        row[f"{split}_acc"] = (logits.argmax(1) == y).float().mean().item()
    if not math.isfinite(row["train_loss"]):
        raise FloatingPointError(row["train_loss"])
    head, (phi, y) = model[-1], (features["train"], data["train"][1])
    row["train_rf_bound"] = relative_flatness_bound(phi, head.weight, head.bias).item()
    row["train_ncc"] = ncc(phi, y).item()
    nc = neural_collapse(phi.double(), y, head.weight.double(), head.bias.double())
    row.update({f"train_{k}": v.item() for k, v in nc.items()})
    row.update({k: v.item() for k, v in layer_alphas(model).items()})
    row["w_norm"] = head.weight.norm().item()
    row["param_norm"] = torch.cat([p.flatten() for p in model.parameters()]).norm().item()
    return row


@entry_point
def main(argv=None):
    run = parse_args(argv)
    args, config, run_dir, device = run
    data = load_data(config, args.data_dir)  # before anything is written: missing data is a UsageError
    run.setup()
    data = {split: (x.to(device), y.to(device)) for split, (x, y) in data.items()}
    model = mlp(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"], fused=True)
    log = RunLog(run_dir, config, argv=command_line(argv), device=str(device), experiment=run.experiment,
                 trackers=args.tracker)
    state = log.start(model, optimizer, map_location=device, unit="step")
    if state is None:
        return log.rows_and_close()
    step, times = state["step"], state["extra"].get("times", {"train_s": 0.0, "eval_s": 0.0})
    n_train = len(data["train"][1])
    batches_per_epoch = math.ceil(n_train / config["batch_size"])
    schedule = log_spaced_steps(config["steps"], config["eval_points"])
    print(f"{n_train} train / {len(data['val'][1])} val images of {config['dataset']}, {len(schedule)} evaluations")

    def evaluate_and_log():
        start = time.perf_counter()
        try:
            row = {"step": step, "epoch": step / batches_per_epoch, **evaluate(model, data, config)}
        except FloatingPointError as loss:  # checked at evaluations only: no host sync in the step loop
            bar.close()
            log.close()
            raise Diverged(f"training loss {loss} at step {step}; the last good checkpoint (the previous "
                           f"evaluation) is kept in {run_dir}; try a smaller --lr") from None
        log.append(row)
        times["eval_s"] += time.perf_counter() - start
        log.save_checkpoint(step, model, optimizer, times=times)
        return row

    bar = tqdm(total=config["steps"], initial=step, disable=not run.progress, dynamic_ncols=True, unit="step",
               mininterval=2)
    if step == 0:
        evaluate_and_log()
    pending = [s for s in schedule if s > step]
    x_all, y_all = data["train"]
    order = None
    start = time.perf_counter()
    while step < config["steps"]:
        epoch, batch = divmod(step, batches_per_epoch)
        if order is None or batch == 0:  # one permutation per epoch from (seed, epoch): the same after a resume
            order = torch.randperm(n_train, generator=epoch_generator(config["seed"], epoch)).to(device)
        idx = order[batch * config["batch_size"]:(batch + 1) * config["batch_size"]]
        loss = loss_fn(config, model(x_all[idx]), y_all[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if pending and step == pending[0]:
            pending.pop(0)
            times["train_s"] += time.perf_counter() - start
            bar.update(step - bar.n)
            row = evaluate_and_log()
            line = "  ".join(f"{k} {row[k]:.4g}" for k in ("train_acc", "val_acc", "alpha_mean", "train_rf_bound",
                                                          "train_ncc", "train_nc1"))
            if run.progress:
                bar.set_postfix_str(line)
            else:
                print(f"step {step:>8}  {line}", flush=True)
            start = time.perf_counter()
    bar.close()
    log.mark_finished({"steps": step, **times})
    print(f"{run_dir}: done; train {times['train_s']:.0f} s, evaluation {times['eval_s']:.0f} s")
    return log.rows_and_close()


if __name__ == "__main__":
    main()
