"""Speed of the grokking experiment: training step, one full evaluation, and the projected paper preset.

    python -m benchmarks.bench_grokking                   # 1 and 2 threads, mod-97 addition, batch 512
    python -m benchmarks.bench_grokking --threads 2 --steps 100

For each thread count: the mean time of a bare training step (forward, loss at the two right-hand-side
positions, backward, AdamW step, and the bookkeeping of Fig. 1's in-training values), the mean time of one evaluation (`grokking_nc_rf.train.evaluate`:
two full-batch forwards and every logged metric, representativeness with both kernels included), and
the paper preset projected from them: 1e5 steps plus its 622 evaluations, and the share of the wall
time spent evaluating and logging. The model is at initialisation; step and evaluation cost do not
depend on the weights.
"""

from __future__ import annotations

import math
import platform

import torch
import torch.nn.functional as F

from benchmarks.timing import timed
from common import ArgumentParser, markdown_table
from grokking_nc_rf import train
from grokking_nc_rf.data import equations, split_indices, vocab_size
from grokking_nc_rf.model import Transformer


def measure(threads: int, steps: int, evals: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = train.parse_args(["--preset", "paper"]).config
    inputs, targets = equations(config["modulus"])
    train_idx, val_idx = split_indices(config["modulus"], config["train_fraction"])
    data = {"train": (inputs[train_idx], targets[train_idx]), "val": (inputs[val_idx], targets[val_idx])}
    model = Transformer(vocab_size(config["modulus"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=1.0)
    window = train.new_window(10, 512, config["d_model"])

    def step(i):
        order = torch.randperm(len(train_idx))[:512]
        x, y = data["train"][0][order], data["train"][1][order]
        hidden = model(x, train.RHS)
        logits = model.unembed(hidden)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        train.record_step(window, i % 10, hidden, logits, y, model.unembed.weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    counter = iter(range(5 + steps))
    timed(lambda: step(next(counter)), 5)  # warm-up
    step_s = timed(lambda: step(next(counter)), steps)[0] / steps
    train.evaluate(model, model.unembed, data, config)
    eval_s = timed(lambda: train.evaluate(model, model.unembed, data, config), evals)[0] / evals
    n_evals = len(train.eval_steps(config, batches_per_epoch=math.ceil(len(train_idx) / 512)))
    total = config["steps"] * step_s + n_evals * eval_s
    return {"threads": threads, "step_s": step_s, "eval_s": eval_s, "n_evals": n_evals,
            "train_min": config["steps"] * step_s / 60, "total_min": total / 60,
            "eval_share": n_evals * eval_s / total, "steps_per_s_bare": 1 / step_s,
            "steps_per_s_logged": config["steps"] / total}


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.bench_grokking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per thread count")
    parser.add_argument("--evals", type=int, default=3, help="timed evaluations per thread count")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, python {platform.python_version()}, CPU {platform.processor() or platform.machine()}")
    threads = torch.get_num_threads()
    try:
        rows = [measure(t, args.steps, args.evals) for t in args.threads]
    finally:
        torch.set_num_threads(threads)
    print("\n" + markdown_table(
        ["threads", "training step", "steps/s (bare)", "one evaluation", "paper preset: 1e5 steps + evaluations",
         "steps/s with logging", "evaluation share"],
        [[r["threads"], f"{1e3 * r['step_s']:.1f} ms", f"{r['steps_per_s_bare']:.1f}", f"{r['eval_s']:.2f} s",
          f"{r['total_min']:.0f} min ({r['n_evals']} evaluations)", f"{r['steps_per_s_logged']:.1f}",
          f"{100 * r['eval_share']:.1f}%"] for r in rows]))
    return rows


if __name__ == "__main__":
    main()
