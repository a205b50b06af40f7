"""Fig. 1 and Fig. 8: grokking on a + b mod 97 with relative flatness, NCC and representativeness.

A 2-layer transformer memorises the training half of all equations long before it generalises.
At every evaluation we log, on the full training and validation sets, the losses and accuracies,
NCC at the '=' position (Def. 3.1), the relative flatness of the unembedding (Lemma A.2 bound and
Def. 3.2 exact, plus the original code's variant), NC1-NC4 and the KDE representativeness (App. D)
as its two terms for each kernel and reading of the weights, and the related work's signals as their
authors compute them: Sakamoto et al.'s class variances, Nanda et al.'s restricted and excluded losses,
HTSR alpha (evaluation.py). Fig. 1's train-side curves are the original's: means over the last epoch's
in-training forward passes (`*_running`, docs/original_code.md §2.4). `--grokfast_lamb` puts Grokfast-EMA
(grokfast.py) between the backward pass and the AdamW step: an intervention that moves grokking.

    python -m grokking_nc_rf.train --preset paper --seed 42   # the original run: 1e5 steps, lr 1e-4
    python -m grokking_nc_rf.train --preset cpu --seed 1      # same phenomenon in minutes on a CPU
    python -m grokking_nc_rf.train --preset cpu --seeds 1,42,15213   # the seeds as one model in one process
    python -m grokking_nc_rf.train --preset paper --steps 25000 --grokfast_lamb 2 --seed 1   # with Grokfast

All seeds and the figures: `sh grokking_nc_rf/run_script.sh --preset cpu`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common import (POSITIVE, Diverged, Key, UsageError, RunLog, command_line, entry_point, epoch_generator,
                    log_grid_epochs, log_spaced_steps, ncc, parse, relative_flatness_bound, seed_everything)
from common.plumbing.loop import to_device
from grokking_nc_rf.data import NUM_OFFSET, equations, split_indices, vocab_size
from grokking_nc_rf.evaluation import RHS, evaluate, pack_features
from grokking_nc_rf.grokfast import GrokfastEMA
from grokking_nc_rf.model import SeedStack, Transformer
from grokking_nc_rf.seeds import SeedSlot, seed_runs, start_group

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
