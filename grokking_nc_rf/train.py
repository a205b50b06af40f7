"""Fig. 1 and Fig. 8: grokking on a + b mod 97 with relative flatness, NCC and representativeness.

A 2-layer transformer memorises the training half of all equations long before it generalises.
At every evaluation we log, on the full training and validation sets, the losses and accuracies,
NCC at the '=' position (Def. 3.1), the relative flatness of the unembedding (Lemma A.2 bound and
Def. 3.2 exact, plus the original code's variant), NC1-NC4 and the KDE representativeness (App. D)
as its two terms for each kernel and reading of the weights. Fig. 1's train-side curves are the
original's: means over the last epoch's in-training forward passes (`*_running`,
docs/original_code.md §2.4).

    python -m grokking_nc_rf.train --preset paper --seed 42   # the original run: 1e5 steps, lr 1e-4
    python -m grokking_nc_rf.train --preset cpu --seed 1      # same phenomenon in minutes on a CPU
    python -m grokking_nc_rf.train --preset cpu --seeds 1,42,15213   # the seeds as one model in one process

All seeds and the figures: `sh grokking_nc_rf/run_script.sh --preset cpu`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common import (POSITIVE, Diverged, Key, UsageError, RunLog, class_variances, command_line, entry_point,
                    epoch_generator, layer_alphas, log_grid_epochs, log_spaced_steps, ncc, neural_collapse, parse, relative_flatness_bound,
                    relative_flatness_exact, representativeness_terms, seed_everything)
from common.plumbing.loop import to_device
from grokking_nc_rf.data import ANSWER_POS, EOS_POS, NUM_OFFSET, equations, split_indices, vocab_size
from grokking_nc_rf.fourier import final_key_rows, key_frequencies, progress_losses
from grokking_nc_rf.grokfast import GrokfastEMA
from grokking_nc_rf.model import SeedStack, Transformer
from grokking_nc_rf.seeds import SeedSlot, seed_runs, start_group

RHS = slice(ANSWER_POS, EOS_POS + 1)  # the two right-hand-side positions the loss uses

KEYS = {  # the defaults are the original run (docs/original_code.md §2.3-2.4)
    "seed": Key(42, "model seed (initialisation and batch order)"),
    "data_seed": Key(0, "seed of the train/validation split of the equations"),
    "modulus": Key(97, "p: the equations a + b = c mod p"),
    "train_fraction": Key(0.5, "fraction of all p^2 equations used for training"),
    "split": Key("ordered", "ordered: (a, b) and (b, a) split independently (the original); unordered: "
                            "commuted pairs on the same side", choices=("ordered", "unordered")),
    "steps": Key(100_000, "optimizer steps"),
    "batch_size": Key(512, "mini-batch size, at most half the training set (the original's rule)"),
    "lr": Key(1e-4, "AdamW learning rate after the warm-up"),
    "weight_decay": Key(1.0, "AdamW decoupled weight decay"),
    "warmup_steps": Key(10, "linear learning-rate warm-up from 0, in steps"),
    "beta1": Key(0.9, "AdamW beta1"),
    "beta2": Key(0.98, "AdamW beta2"),
    "d_model": Key(128, "transformer width"),
    "n_layers": Key(2, "transformer blocks"),
    "n_heads": Key(4, "attention heads"),
    "eval_schedule": Key("original", "original: after the epochs of the original's 1.01x log grid; log_spaced: "
                                     "EVAL_POINTS log-spaced steps", choices=("original", "log_spaced")),
    "eval_points": Key(120, "evaluations of the log_spaced schedule"),
    "bandwidth": Key(1.0, "KDE bandwidth of representativeness (App. D)"),
    "sample_weight": Key(0.02, "App. D's per-sample weight of the KDE term"),
    "grokfast_alpha": Key(0.98, "Grokfast-EMA's (Lee et al. 2024) moving-average factor of the gradient"),
    "grokfast_lamb": Key(0.0, "Grokfast-EMA's amplification: g <- g + lamb * EMA(g); 0: off (the original); 2 in "
                              "their paper"),
}
PRESETS = {
    "paper": {},
    # 10x the paper's lr: memorisation at ~750 steps, validation accuracy 99% at ~2-3k steps (README).
    "cpu": {"steps": 4000, "lr": 1e-3, "eval_schedule": "log_spaced", "eval_points": 80},
}
RULES = [
    ("modulus", lambda v: 2 <= v <= 3000, "in [2, 3000] (all p^2 equations are held in memory)"),
    ("train_fraction", lambda v: 0 < v < 1, "in (0, 1)"),
    ("steps", lambda v: v > 0, "> 0"),
    ("batch_size", lambda v: v > 0, "> 0"),
    ("lr", POSITIVE),
    ("weight_decay", lambda v: 0 <= v < math.inf, ">= 0"),
    ("warmup_steps", lambda v: v >= 0, ">= 0"),
    ("beta1", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("beta2", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("d_model", lambda v: v >= 1, ">= 1"),
    ("n_layers", lambda v: v >= 1, ">= 1"),
    ("n_heads", lambda v: v >= 1, ">= 1"),
    ("eval_points", lambda v: v > 0, "> 0"),
    ("bandwidth", POSITIVE),
    ("sample_weight", POSITIVE),
    ("grokfast_alpha", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("grokfast_lamb", lambda v: 0 <= v < math.inf, ">= 0"),
]
OPTIONS = {
    "save_features": Key(0, "keep the '=' features (float16) and W_U at N log-spaced evaluations in "
                            "<run>/features.npz (logits = features @ W_U^T; N=40: ~100 MB for p=97), and Nanda et al.'s "
                            "losses at those evaluations with the last one's key frequencies in <run>/fourier_final_keys.jsonl"),
    "seeds": Key("", "train these seeds (comma-separated, e.g. 1,42,15213) as one batched model in one process; "
                     "each writes the run folder and rows a run of it alone (--seed) would"),
}


def check(config, args):
    if config["d_model"] % config["n_heads"]:
        raise UsageError(f"--d_model {config['d_model']} must be divisible by --n_heads {config['n_heads']}")
    if args.save_features < 0:
        raise UsageError(f"--save_features must be >= 0, got {args.save_features}")
    train_idx, val_idx = split_indices(config["modulus"], config["train_fraction"], config["data_seed"], config["split"])
    if len(train_idx) < 2 or len(val_idx) < 1:
        raise UsageError(f"--modulus {config['modulus']} with --train_fraction {config['train_fraction']} gives "
                         f"{len(train_idx)} training and {len(val_idx)} validation equations; both splits need equations "
                         f"(at least 2 for training, 1 for validation): change --train_fraction or --modulus")


def parse_args(argv):
    return parse(argv, "grokking_nc_rf", __doc__, KEYS, PRESETS, RULES, OPTIONS, check)


def batching(config, n_train):
    """(batch size, batches per epoch): the configured batch, at most half the training set (the original's rule)."""
    batch_size = min(config["batch_size"], math.ceil(n_train / 2))
    return batch_size, math.ceil(n_train / batch_size)


def eval_steps(config, batches_per_epoch):
    """Optimizer-step counts after which to evaluate, plus 0 (the initialisation)."""
    if config["eval_schedule"] == "original":  # 1.01x epoch grid, evaluated at the end of epoch e
        epochs = log_grid_epochs(math.ceil(config["steps"] / batches_per_epoch))
        return sorted({0, *((e + 1) * batches_per_epoch for e in epochs if (e + 1) * batches_per_epoch <= config[
            "steps"]), config["steps"]})
    # Log-spaced from step 10: the first 10 steps are the linear warm-up from lr 0.
    return log_spaced_steps(config["steps"], config["eval_points"], first=min(10, config["steps"]))


@torch.no_grad()
def forward_rhs(model, inputs, targets, chunk=512):
    """Every seed's hidden states and logits at the two right-hand-side positions of one whole split, and its
    loss and accuracy as the original: (S, N, 2, d), (S, N, 2, V), (S,), (S,). Computed in chunks of 512 rows
    (2x faster on a CPU than one 4704-row pass)."""
    seeds = model.n_seeds
    hidden = torch.cat([model(inputs[i:i + chunk].expand(seeds, -1, -1), RHS) for i in range(0, len(inputs), chunk)], 1)
    logits = model.unembed(hidden)
    loss = torch.stack([F.cross_entropy(z.flatten(0, 1), targets.flatten()) for z in logits])
    acc = torch.stack([(z.argmax(-1) == targets).all(1).float().mean() for z in logits])  # both RHS tokens right
    return hidden, logits, loss, acc


def new_window(batches_per_epoch, batch_size, d_model):
    """Slots for the in-training forward passes of the last epoch's worth of steps, one per step (a ring):
    (flatness sum, correct rows, batch size), the '=' features and the answer labels (-1: slot unused)."""
    return {"sums": torch.zeros(batches_per_epoch, 3, dtype=torch.float64),
            "features": torch.zeros(batches_per_epoch, batch_size, d_model),
            "labels": torch.full((batches_per_epoch, batch_size), -1, dtype=torch.long)}


@torch.no_grad()
def record_step(window, slot, hidden, logits, targets, weight):
    """Fig. 1's train-side values as the original computed them (docs/original_code.md §2.4), on one
    batch's in-training forward pass before its update: sharpness2 with the product-of-logits softmax
    over both positions' features, the rows with both tokens right, and the '=' features for NCC."""
    rf = relative_flatness_bound(hidden.flatten(1), weight, logits=logits[:, 0] * logits[:, 1]).double()
    correct = (logits.argmax(-1) == targets).all(1).sum()
    window["sums"][slot] = torch.stack([len(targets) * rf, correct.double(), rf.new_tensor(len(targets))])
    window["features"][slot, :len(targets)] = hidden[:, 0]
    window["labels"][slot] = -1
    window["labels"][slot, :len(targets)] = targets[:, 0]


@torch.no_grad()
def evaluate(model, template, data, config):
    """One row of metrics per seed of the stack from one full-batch forward pass per split, and those passes
    ({split: (hidden (S, N, 2, d), logits (S, N, 2, V))} at the right-hand-side positions). A seed whose
    training loss is not finite (divergence) gets None. `template`: a Transformer that takes each seed's
    weights in turn, for HTSR alpha."""
    passes, rows = {}, [{} for _ in range(model.n_seeds)]
    for split, (inputs, targets) in data.items():
        hidden, logits, loss, acc = forward_rhs(model, inputs, targets)
        passes[split] = hidden, logits
        for row, value, right in zip(rows, loss.tolist(), acc.tolist()):
            row[f"{split}_loss"], row[f"{split}_acc"] = value, right
    for s, row in enumerate(rows):
        if not math.isfinite(row["train_loss"]):
            rows[s] = None
            continue
        template.load_state_dict(model.unstack(s))
        row.update(seed_metrics(template, {split: (h[s], z[s]) for split, (h, z) in passes.items()}, data, config))
    return rows, passes


@torch.no_grad()
def seed_metrics(model, passes, data, config):
    """The metrics of one seed from its passes ({split: (hidden (N, 2, d), logits (N, 2, V))})."""
    row = {}
    # In float32 (the closed forms keep rounding-level relative error) except NC1-NC4: NC1's
    # pseudo-inverse of the between-class covariance needs float64.
    w_u = model.unembed.weight  # (V, d) the unembedding W_U, all vocabulary rows
    # Measured where the answer is predicted: the hidden state at '=' (N, d), its logits (N, V), and the
    # answer tokens (N,) as class labels.
    at_eq = {split: passes[split][0][:, 0] for split in data}
    logits_at_eq = {split: passes[split][1][:, 0] for split in data}
    answers = {split: targets[:, 0] for split, (_, targets) in data.items()}
    for split in data:
        row[f"{split}_ncc"] = ncc(at_eq[split], answers[split]).item()
        row[f"{split}_rf_bound"] = relative_flatness_bound(at_eq[split], w_u).item()
        row[f"{split}_rf_exact"] = relative_flatness_exact(at_eq[split], w_u).item()
    # The original's variant (docs/original_code.md §2.4): softmax of the product of both RHS logits, both features.
    hidden, logits = passes["train"]
    row["train_rf_original"] = relative_flatness_bound(hidden.flatten(1), w_u, logits=logits[:, 0] * logits[:, 1]).item()
    row["w_norm"] = w_u.norm().item()
    # HTSR alpha of every weight matrix (Martin & Mahoney; the signal of Prakash & Martin's anti-grokking).
    row.update({k: v.item() for k, v in layer_alphas(model).items()})
    # Papyan et al.'s NC1-NC4 on the training split; Sakamoto et al.'s within- and between-class variances and
    # their ratio on both splits (their claim is about the held-out, population one).
    nc = neural_collapse(at_eq["train"].double(), answers["train"], w_u.double())
    row.update({f"train_{k}": v.item() for k, v in nc.items()})
    for split in data:
        row.update({f"{split}_{k}": v.item() for k, v in class_variances(at_eq[split].double(), answers[split]).items()})
    # Nanda et al.'s progress measures (fourier.py): the answer logits of all p^2 pairs, the key frequencies of
    # the current embedding of the numbers.
    p = config["modulus"]
    grid, grid_answers, masks = pair_grid(data, logits_at_eq, p)
    keys = key_frequencies(model.embed.weight[NUM_OFFSET:NUM_OFFSET + p])
    row["n_key_frequencies"], row["key_frequencies"] = len(keys), keys
    row.update({k: v.item() for k, v in progress_losses(grid, grid_answers, masks, keys).items()})
    # App. D: representativeness = validation loss - KDE term, both logged, for each kernel and each
    # reading of the weights (README: with the reference code's weights the KDE term is ~1e-4 of the value).
    terms = representativeness_terms(at_eq["train"], logits_at_eq["train"], at_eq["val"], logits_at_eq["val"],
                                     answers["val"], bandwidth=config["bandwidth"], kernel=("petzka", "gaussian"),
                                     weights=("normalised", "as_given"), sample_weight=config["sample_weight"])
    row["representativeness_val_loss"] = terms["val_loss"].item()
    for kernel, prefix in (("petzka", "representativeness"), ("gaussian", "representativeness_gaussian")):
        for weights, key in (("normalised", prefix), ("as_given", prefix + "_as_given")):
            row[key + "_kde"] = terms[f"kde_{kernel}_{weights}"].item()
            row[key] = row["representativeness_val_loss"] - row[key + "_kde"]
    return row


def pair_grid(data, values, p):
    """`values` ({split: (N, ...)}, rows in the split's order) on the a-major grid of all p^2 pairs, the answers
    there, and each split's mask of its pairs."""
    grid = {}
    for split, (inputs, targets) in data.items():
        index = (inputs[:, 1] - NUM_OFFSET) * p + inputs[:, 3] - NUM_OFFSET  # row a * p + b
        grid[split] = index
    first = values[next(iter(data))]
    out = first.new_empty((p * p, *first.shape[1:]))
    answers = torch.empty(p * p, dtype=torch.long, device=first.device)
    masks = {}
    for split, index in grid.items():
        out[index], answers[index] = values[split], data[split][1][:, 0]
        masks[split] = torch.zeros(p * p, dtype=torch.bool, device=first.device).index_fill_(0, index, True)
    return out, answers, masks


def pack_features(run_dir: Path) -> None:
    """Merge the per-evaluation feature files into one compressed features.npz."""
    parts = sorted((run_dir / "features").glob("step_*.pt"), key=lambda f: int(f.stem[5:]))
    if not parts:
        return
    saved = [torch.load(f) for f in parts]
    packed = dict(steps=np.array([d["step"] for d in saved]),
                  features=np.stack([d["features"].numpy() for d in saved]),  # (E, N, d) float16
                  unembedding=np.stack([d["unembedding"].numpy() for d in saved]),  # (E, V, d)
                  embedding=np.stack([d["embedding"].numpy() for d in saved]),  # (E, p, d) the numbers' rows
                  labels=saved[0]["labels"].numpy(), is_train=saved[0]["is_train"].numpy(),
                  pairs=saved[0]["pairs"].numpy())  # (N,) each row's pair a * p + b
    np.savez_compressed(run_dir / "features.npz", **packed)
    # Nanda et al.'s way: the progress measures of the whole run with the final key frequencies (fourier.py).
    with open(run_dir / "fourier_final_keys.jsonl", "w") as out:
        out.writelines(json.dumps(row) + "\n" for row in final_key_rows(packed))
    for f in parts:
        f.unlink()
    (run_dir / "features").rmdir()


@entry_point
def main(argv=None):
    run = parse_args(argv)
    runs = seed_runs(argv, run, parse_args)
    args, config, _, device = run
    run.setup()

    # Data: all equations on the device, split by the data seed (independent of the model seed).
    inputs, targets = equations(config["modulus"])
    train_idx, val_idx = split_indices(config["modulus"], config["train_fraction"], config["data_seed"],
                                       config["split"])
    data = {"train": (inputs[train_idx].to(device), targets[train_idx].to(device)),
            "val": (inputs[val_idx].to(device), targets[val_idx].to(device))}
    n_train, p = len(train_idx), config["modulus"]
    batch_size, batches_per_epoch = batching(config, n_train)

    # One model per seed, each initialised as a run of that seed alone, trained as one SeedStack (one seed:
    # a stack of one); seeds whose runs have finished are left out.
    logs, rows_done = [], {}
    for r in runs:
        log = RunLog(r.run_dir, r.config, argv=command_line(argv), device=str(device), experiment=r.experiment,
                     trackers=args.tracker)
        if log.finished:
            print(f"{r.run_dir}: already finished; nothing to do")
            rows_done[r.config["seed"]] = log.rows_and_close()
        else:
            logs.append((r, log))
    if not logs:
        return rows_done[runs[0].config["seed"]] if len(runs) == 1 else rows_done
    models = []
    for r, _ in logs:
        seed_everything(r.config["seed"])
        models.append(Transformer(vocab_size(config["modulus"]), config["d_model"], config["n_layers"],
                                  config["n_heads"], 4 * config["d_model"]).to(device))
    model, template = SeedStack(models).to(device), models[0]
    # AdamW with decoupled decay on every parameter, linear warm-up from 0 (docs/original_code.md §2.3): it
    # updates each element on its own, so each seed of the stack takes the step it takes alone.
    # fused=True: one kernel for the whole update (CPU and CUDA), the same arithmetic as the per-tensor loop.
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], betas=(config["beta1"], config["beta2"]),
                                  eps=1e-8, weight_decay=config["weight_decay"], fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(s / config["warmup_steps"], 1.0)
                                                  if config["warmup_steps"] > 0 else 1.0)
    slots = [SeedSlot(model, optimizer, s) for s in range(len(logs))]
    states = start_group([log for _, log in logs], slots, scheduler, device)
    # Grokfast-EMA (grokfast.py) between backward and the optimizer step; its moving averages are in the checkpoint.
    grokfast = (GrokfastEMA({name: model.p(name) for name in model.names}, config["grokfast_alpha"],
                            config["grokfast_lamb"]) if config["grokfast_lamb"] > 0 else None)
    for s, state in enumerate(states if grokfast else []):
        grokfast.load_seed(s, state["extra"].get("grokfast", {}))
    step = states[0]["step"]
    times = states[0]["extra"].get("times", {"train_s": 0.0, "eval_s": 0.0})
    # Fig. 1's train side: the original's values over the last epoch's in-training forward passes.
    windows = [{k: v.to(device) for k, v in (state["extra"].get("window") or
                                              new_window(batches_per_epoch, batch_size, config["d_model"])).items()}
               for state in states]
    saved = [None] * len(logs)  # each seed's last checkpoint, kept inside the next (start_group's way back)
    active, failures = list(range(len(logs))), []
    schedule = eval_steps(config, batches_per_epoch)
    picks = np.geomspace(1, len(schedule), args.save_features).round().astype(int) - 1 if args.save_features else []
    save_at = {schedule[i] for i in picks}
    print(f"{n_train} train / {len(val_idx)} val equations, batch {batch_size}, {len(schedule)} evaluations"
          + (f", seeds {', '.join(str(r.config['seed']) for r, _ in logs)} as one model" if len(runs) > 1 else ""))

    def evaluate_and_log(append):
        start = time.perf_counter()
        rows, out = evaluate(model, template, data, config)
        for s in list(active):
            r, log = logs[s]
            if rows[s] is None:  # checked at evaluations only: no host sync in the step loop; this seed stops
                failures.append(f"{'seed %d: ' % r.config['seed'] if len(logs) > 1 else ''}training loss not finite "
                                f"at step {step}; the last good checkpoint (the previous evaluation) is kept in "
                                f"{r.run_dir}; try a smaller --lr")
                if len(logs) > 1:
                    print(f"{failures[-1]}; the other seeds go on", flush=True)
                active.remove(s)
                log.close()
                continue
            row = {"step": step, "epoch": step / batches_per_epoch, "lr": scheduler.get_last_lr()[0], **rows[s]}
            if step:  # mean over the samples of the last min(step, batches_per_epoch) steps
                rf_sum, correct, seen = windows[s]["sums"].sum(0).tolist()
                used = windows[s]["labels"] >= 0
                row.update(train_rf_original_running=rf_sum / seen, train_acc_running=correct / seen,
                           train_ncc_running=ncc(windows[s]["features"][used], windows[s]["labels"][used]).item())
            else:  # no step yet: the values at initialisation, as a train-mode pass gives them (no dropout)
                row.update(train_rf_original_running=row["train_rf_original"], train_acc_running=row["train_acc"],
                           train_ncc_running=row["train_ncc"])
            rows[s] = row
            if append[s]:
                log.append(row)
            if step in save_at:
                (r.run_dir / "features").mkdir(exist_ok=True)
                torch.save({"step": step, "unembedding": model.p("unembed.weight")[s].detach().cpu().clone(),
                            "embedding": model.p("embed.weight")[s, NUM_OFFSET:NUM_OFFSET + p].detach().cpu().clone(),
                            "features": torch.cat([out[split][0][s, :, 0] for split in ("train", "val")]).half().cpu(),
                            "labels": torch.cat([data[split][1][:, 0] for split in ("train", "val")]).short().cpu(),
                            "is_train": torch.arange(n_train + len(val_idx)) < n_train,
                            "pairs": torch.from_numpy(np.concatenate([train_idx, val_idx]))},
                           r.run_dir / "features" / f"step_{step}.pt")
        times["eval_s"] += time.perf_counter() - start
        for s in active:
            state = logs[s][1].save_checkpoint(step, slots[s].model, slots[s].optimizer, scheduler, times=times,
                                               window={k: v.cpu() for k, v in windows[s].items()}, previous=saved[s],
                                               grokfast=grokfast.seed_state(s) if grokfast else {})
            saved[s] = {**state, "extra": {k: v for k, v in state["extra"].items() if k != "previous"}}
        return rows

    bar = tqdm(total=config["steps"], initial=step, disable=not run.progress, dynamic_ncols=True, unit="step")
    if step == 0:  # the initialisation's row, for the seeds that have none yet
        evaluate_and_log([state.get("log_offset") is None for state in states])
    pending = [s for s in schedule if s > step]
    orders = None
    seeds = [r.config["seed"] for r, _ in logs]
    while step < config["steps"] and active:
        start = time.perf_counter()
        epoch, batch = divmod(step, batches_per_epoch)
        if orders is None or batch == 0:  # one permutation per seed and epoch, from (seed, epoch): the same on resume
            orders = to_device(torch.stack([torch.randperm(n_train, generator=epoch_generator(seed, epoch))
                                            for seed in seeds]), device)  # pinned, non-blocking: no wait on a GPU
        idx = orders[:, batch * batch_size:(batch + 1) * batch_size]  # (S, B)
        x, y = data["train"][0][idx], data["train"][1][idx]  # (S, B, 6), (S, B, 2)
        hidden = model(x, RHS)  # (S, B, 2, d): the last block only where the loss is
        logits = model.unembed(hidden)  # (S, B, 2, V)
        losses = torch.stack([F.cross_entropy(z.flatten(0, 1), t.flatten()) for z, t in zip(logits, y)])
        if pending and step >= pending[0] - batches_per_epoch:  # only the steps the next evaluation reads
            for s in active:
                record_step(windows[s], step % batches_per_epoch, hidden[s], logits[s], y[s],
                            model.p("unembed.weight")[s])
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # each seed's parameters get the gradient of its own loss
        if grokfast:
            grokfast()
        optimizer.step()
        scheduler.step()
        step += 1
        bar.update(1)
        times["train_s"] += time.perf_counter() - start
        if pending and step == pending[0]:
            pending.pop(0)
            rows = evaluate_and_log([True] * len(logs))
            for s in active:
                line = "  ".join(f"{k} {rows[s][k]:.4g}" for k in ("train_loss", "train_acc", "val_loss", "val_acc",
                                                                   "train_ncc_running", "train_rf_original_running",
                                                                   "representativeness"))
                who = f"seed {seeds[s]}  " if len(logs) > 1 else ""
                if run.progress:
                    bar.set_postfix_str(who + line.replace("train_rf_original_running", "rf")
                                        .replace("train_ncc_running", "ncc").replace("representativeness", "rep"))
                else:
                    print(f"{who}step {step:>6}  {line}", flush=True)
    bar.close()
    summary = {"steps": step, **times, "eval_fraction": times["eval_s"] / max(1e-9, times["train_s"] + times["eval_s"]),
               "steps_per_s_train": step / max(1e-9, times["train_s"]), "seeds_in_process": len(logs)}
    for s in active:
        r, log = logs[s]
        pack_features(r.run_dir)
        log.mark_finished(summary)
        print(f"{r.run_dir}: done; train {times['train_s']:.0f} s, evaluation {times['eval_s']:.0f} s "
              f"({100 * summary['eval_fraction']:.1f}% of the time)")
        rows_done[r.config["seed"]] = log.rows_and_close()
    if failures:
        raise Diverged("; ".join(failures))
    return rows_done[runs[0].config["seed"]] if len(runs) == 1 else rows_done


if __name__ == "__main__":
    main()
