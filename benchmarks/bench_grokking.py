"""Speed of the grokking experiment: the training step against a plain transformer and the machine's matmul
rate, one full evaluation, and the wall time of the CPU and paper presets projected from them.

    python -m benchmarks.bench_grokking                   # 2 threads, mod-97 addition, batch 512
    python -m benchmarks.bench_grokking --threads 1 2 --repeats 21
    KERNELS=native python -m benchmarks.bench_grokking    # each library's own kernels (default: the main command's)

For each thread count, timed side by side in alternating pairs (`benchmarks.timing.alternating`):
- ours: train.py's step (forward at the distinct prefixes, loss at the two right-hand-side positions,
  backward, fused AdamW), plus, counted separately, the bookkeeping of Fig. 1's in-training values
  that train.py does only for the steps an evaluation reads;
- plain: the same model written the way one usually would (nanoGPT-style blocks with
  F.scaled_dot_product_attention, every position through every block, logits at every position,
  the loss at the two right-hand-side positions, AdamW with its defaults).
The step's FLOPs are counted by torch.utils.flop_counter; the matmul floor is the time a plain matmul
(3072 x 128 @ 128 x 512, the FFN's shape) takes for the same FLOPs. One evaluation is
`grokking_nc_rf.train.evaluate` (two full-batch forwards and every logged metric). Last, the first block's
attention (forward and backward) written three ways. The presets'
wall times add their steps, recorded steps and evaluations (checkpoints and log rows not included).
The model is at initialisation: step and evaluation cost do not depend on the weights.

Last, the floor of the README's main command on this machine (`--main_command` also times ours, about 8
minutes; `--install` adds a fresh `pip install -q -r requirements.txt`): the training steps' and evaluations'
FLOPs of the CPU preset's three seeds at the matmul rate of one thread per core (run_script.sh trains the
seeds as 1-thread processes side by side), plus the install and the plotting, which have no FLOP floor and
count at our own time.
"""

from __future__ import annotations

import math
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.timing import alternating, median_seconds
from common import ArgumentParser, markdown_table
from grokking_nc_rf import train
from grokking_nc_rf.data import equations, split_indices, vocab_size
from grokking_nc_rf.model import SeedStack, Transformer, sinusoidal_positions


class PlainBlock(nn.Module):
    """The same post-LN block, nanoGPT-style: one fused qkv projection and F.scaled_dot_product_attention."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.c_attn = nn.Linear(d_model, 3 * d_model, bias=False)
        self.c_proj = nn.Linear(d_model, d_model, bias=False)
        self.ln_1, self.ln_2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model, bias=False), nn.ReLU(),
                                 nn.Linear(4 * d_model, d_model, bias=False))

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = (t.view(batch, length, self.n_heads, -1).transpose(1, 2) for t in self.c_attn(x).split(width, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(batch, length, width)
        x = self.ln_1(x + self.c_proj(y))
        return self.ln_2(x + self.mlp(x))


class PlainTransformer(nn.Module):
    def __init__(self, vocab: int, d_model: int = 128, n_layers: int = 2, n_heads: int = 4) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.register_buffer("wpe", sinusoidal_positions(50, d_model), persistent=False)
        self.h = nn.ModuleList(PlainBlock(d_model, n_heads) for _ in range(n_layers))
        self.lm_head = nn.Linear(d_model, vocab, bias=False)

    def load_from(self, model: Transformer) -> "PlainTransformer":
        """Take `model`'s parameters (the same function: tests/bench/test_bench_grokking.py)."""
        names = {"embed": "wte", "blocks": "h", "qkv": "c_attn", "proj": "c_proj", "ln1": "ln_1", "ln2": "ln_2",
                 "ff": "mlp", "unembed": "lm_head"}
        self.load_state_dict({".".join(names.get(p, p) for p in k.split(".")): v for k, v in model.state_dict().items()})
        return self

    def forward(self, idx):
        x = self.wte(idx) + self.wpe[: idx.shape[1]]
        for block in self.h:
            x = block(x)
        return self.lm_head(x)  # (B, T, V): logits at every position


def training_steps(config, data):
    """(our step, plain step, record): closures over the same batches of the paper preset's shapes."""
    x_all, y_all = data["train"]
    batches = [torch.randperm(len(x_all), generator=torch.Generator().manual_seed(i))[:512] for i in range(10)]
    ours, plain = SeedStack([Transformer(vocab_size(config["modulus"]))]), PlainTransformer(vocab_size(config["modulus"]))
    adam = dict(lr=1e-4, betas=(0.9, 0.98), weight_decay=1.0)
    ours_opt = torch.optim.AdamW(ours.parameters(), fused=True, **adam)  # as train.py
    plain_opt = torch.optim.AdamW(plain.parameters(), **adam)
    window = train.new_window(10, 512, config["d_model"])
    counter = iter(range(10**9))

    def ours_step():
        idx = batches[next(counter) % 10][None]
        loss = F.cross_entropy(ours.unembed(ours(x_all[idx], train.RHS)).flatten(0, 2), y_all[idx].flatten())
        ours_opt.zero_grad(set_to_none=True)
        loss.backward()
        ours_opt.step()

    def plain_step():
        idx = batches[next(counter) % 10]
        logits = plain(x_all[idx])[:, train.RHS]
        loss = F.cross_entropy(logits.flatten(0, 1), y_all[idx].flatten())
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    with torch.no_grad():  # the step's own forward pass supplies these in train.py
        hidden = ours(x_all[batches[0]][None], train.RHS)[0]
        logits = ours.unembed(hidden[None])[0]

    def record():
        train.record_step(window, 0, hidden, logits, y_all[batches[0]], ours.p("unembed.weight")[0])

    return ours_step, plain_step, record


def seed_steps(config, data, seeds: int, batched: bool = False):
    """train.py's step for `seeds` seeds as one SeedStack, each on its own batch of 512 (per seed, as train.py
    on a CPU, or with `batched` the batched matmuls over seeds)."""
    x_all, y_all = data["train"]
    models = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        models.append(Transformer(vocab_size(config["modulus"])))
    stack = SeedStack(models)
    optimizer = torch.optim.AdamW(stack.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=1.0, fused=True)
    batches = [torch.stack([torch.randperm(len(x_all), generator=torch.Generator().manual_seed(i * 97 + s))[:512]
                            for s in range(seeds)]) for i in range(10)]
    counter = iter(range(10**9))

    def step():
        idx = batches[next(counter) % 10]
        logits = stack.unembed(stack(x_all[idx], train.RHS, batched=batched), batched=batched)
        losses = torch.stack([F.cross_entropy(z.flatten(0, 1), t.flatten()) for z, t in zip(logits, y_all[idx])])
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()

    return step


def attention_variants(repeats: int) -> dict:
    """Seconds of forward + backward of one block's attention, four ways, for the first block (queries at all
    6 positions) and the last (queries at the 2 right-hand-side positions): q (512, Tq, 128), k and v
    (512, 6, 128), 4 heads, as the projections give them."""
    from grokking_nc_rf.model import causal_attention

    def split(t):
        return t.view(len(t), -1, 4, 32).transpose(1, 2)

    def merge(t):
        return t.transpose(1, 2).reshape(-1, 128)

    def per_sequence(q, k, v, mask):  # model.py before: one (Tq, 32) @ (32, 6) product per sequence and head
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(32)
        return merge(scores.masked_fill(~mask, float("-inf")).softmax(-1) @ split(v))

    def broadcast(q, k, v, mask):  # earlier versions of model.py
        q, k, v = split(q), split(k), split(v)
        scores = (q[..., :, None, :] * k[..., None, :, :]).sum(-1) / math.sqrt(32)
        return merge((scores.masked_fill(~mask, float("-inf")).softmax(-1)[..., None] * v[..., None, :, :]).sum(-2))

    def sdpa(q, k, v, mask):
        return merge(F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask))

    times = {}
    for name, queries in (("first block (6 query positions)", slice(None)), ("last block (2)", train.RHS)):
        positions = torch.arange(6)
        mask = positions[None, :] <= positions[queries][:, None]
        q = torch.randn(512, len(positions[queries]), 128, requires_grad=True)
        k, v = (torch.randn(512, 6, 128, requires_grad=True) for _ in range(2))
        grad = torch.randn(512 * len(positions[queries]), 128)
        ways = {"model.py (two sequences per matmul)": lambda q, k, v, mask: causal_attention(q, k, v, queries, 4),
                "one sequence per matmul (before)": per_sequence, "F.scaled_dot_product_attention": sdpa,
                "broadcast products": broadcast}
        times[name] = {way: median_seconds((lambda fn: lambda: fn(q, k, v, mask).backward(grad))(fn), repeats)
                       for way, fn in ways.items()}
    return times


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_seconds_per_flop(repeats: int) -> float:
    a, b = torch.randn(3072, 128), torch.randn(128, 512)
    return median_seconds(lambda: [a @ b for _ in range(20)], repeats) / (20 * 2 * 3072 * 128 * 512)


def preset_minutes(config, batches_per_epoch, step_s, record_s, eval_s):
    """(minutes, evaluations, evaluation share) of a preset: its steps, recorded steps and evaluations."""
    schedule = train.eval_steps(config, batches_per_epoch)
    recorded = len({s for e in schedule for s in range(max(0, e - batches_per_epoch), e)})
    train_s = config["steps"] * step_s + recorded * record_s
    return (train_s + len(schedule) * eval_s) / 60, len(schedule), len(schedule) * eval_s / (train_s + len(schedule) * eval_s)


def measure(threads: int, repeats: int, evals: int, seeds=(1, 3, 8)) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = train.parse_args(["--preset", "paper"]).config
    inputs, targets = equations(config["modulus"])
    train_idx, val_idx = split_indices(config["modulus"], config["train_fraction"])
    data = {"train": (inputs[train_idx], targets[train_idx]), "val": (inputs[val_idx], targets[val_idx])}
    ours_step, plain_step, record = training_steps(config, data)
    step_flops, plain_flops = flops(ours_step), flops(plain_step)
    ours_s, plain_s, ratio = alternating(ours_step, plain_step, repeats)
    record_s = median_seconds(record, repeats)
    floor_s = step_flops * matmul_seconds_per_flop(repeats)
    model = Transformer(vocab_size(config["modulus"]))
    evaluate = lambda: train.evaluate(SeedStack([model]), model, data, config)  # noqa: E731
    eval_s, eval_flops = median_seconds(evaluate, evals), flops(evaluate)
    batches_per_epoch = train.batching(config, len(train_idx))[1]
    cpu = train.parse_args(["--preset", "cpu"]).config
    per_seed = {(n, batched): median_seconds(seed_steps(config, data, n, batched), max(3, repeats // 3)) / n
                for n in seeds for batched in (False, True)}
    return {"threads": threads, "step_s": ours_s, "plain_s": plain_s, "speedup": ratio, "record_s": record_s,
            "per_seed": per_seed,
            "gflop": step_flops / 1e9, "plain_gflop": plain_flops / 1e9, "floor_s": floor_s, "eval_s": eval_s,
            "eval_gflop": eval_flops / 1e9,
            "cpu": preset_minutes(cpu, batches_per_epoch, ours_s, record_s, eval_s),
            "paper": preset_minutes(config, batches_per_epoch, ours_s, record_s, eval_s),
            "attention": attention_variants(repeats)}


def whole_run(steps: int) -> tuple[float, float]:
    """Wall seconds of the CPU preset's three seeds for `steps` steps, as one process with --seeds (torch's
    default threads) and as three 1-thread processes at the same time; fresh run folders, portable kernels."""
    import os
    import subprocess
    import sys
    import tempfile
    import time

    from common.plumbing.seeding import PORTABLE_KERNELS

    flags = ["--preset", "cpu", "--steps", str(steps), "--eval_points", str(max(2, round(80 * steps / 4000))),
             "--no_progress"]
    env = {**os.environ, **PORTABLE_KERNELS}
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grokking_nc_rf.train", *flags, "--seeds", "1,42,15213", "--out_dir",
                        f"{out}/one"], env=env, cwd=repo, check=True, capture_output=True)
        one = time.perf_counter() - start
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "grokking_nc_rf.train", *flags, "--seed", seed, "--threads",
                                   "1", "--out_dir", f"{out}/three"], env=env, cwd=repo, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for seed in ("1", "42", "15213")]
        if any(p.wait() for p in procs):
            raise RuntimeError("a training process failed")
        return one, time.perf_counter() - start


CPU_SEEDS = ("1", "42", "15213")  # run_script.sh's


def portable_matmul_gflops() -> float:
    """The matmul rate (GFLOP/s) of one thread with the kernels the main command uses (run_script.sh sources
    common/plumbing/portable_kernels.sh), measured in a fresh process since the kernel variables are read when
    the libraries load."""
    import os
    import subprocess
    import sys

    from common.plumbing.seeding import PORTABLE_KERNELS

    code = ("import torch; torch.set_num_threads(1); from benchmarks.bench_grokking import matmul_seconds_per_flop; "
            "print(1e-9 / matmul_seconds_per_flop(5))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **PORTABLE_KERNELS}, check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]).stdout
    return float(out.split()[-1])


def compute_floor(step_flops: float, eval_flops: float, overrides: tuple[str, ...] = ()) -> dict:
    """The CPU preset's training and evaluation FLOPs for the three seeds (`overrides`: extra train.py flags,
    e.g. fewer steps) and the seconds they take at the 1-thread matmul rate (portable kernels, as the main
    command) on every core this process may use, up to one per seed."""
    import os

    config = train.parse_args(["--preset", "cpu", *overrides]).config
    n_train = len(split_indices(config["modulus"], config["train_fraction"], config["data_seed"], config["split"])[0])
    evaluations = len(train.eval_steps(config, train.batching(config, n_train)[1]))
    per_flop = 1 / (1e9 * portable_matmul_gflops())
    cores = min(len(CPU_SEEDS), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    total = len(CPU_SEEDS) * (config["steps"] * step_flops + evaluations * eval_flops)
    return {"steps": config["steps"], "evaluations": evaluations, "tflop": total / 1e12, "cores": cores,
            "gflops_per_core": 1e-9 / per_flop, "seconds": total * per_flop / cores}


def main_command(install: bool, overrides: tuple[str, ...] = ()) -> dict:
    """Wall seconds of the README's main command in its parts, on fresh folders: `pip install -q -r
    requirements.txt` into a new venv (if `install`), `sh grokking_nc_rf/run_script.sh --preset cpu` (training the
    three seeds, then plotting) and, run once more on the same logs, the plotting alone."""
    import os
    import subprocess
    import sys
    import tempfile
    import time

    repo = Path(__file__).resolve().parents[1]
    seconds = {}
    with tempfile.TemporaryDirectory() as out:
        if install:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", f"{out}/venv"], check=True)
            subprocess.run([f"{out}/venv/bin/pip", "install", "-q", "-r", str(repo / "requirements.txt")], check=True,
                           capture_output=True)
            seconds["install"] = time.perf_counter() - start
        flags = ["--preset", "cpu", *overrides, "--out_dir", f"{out}/runs", "--no_progress"]
        env = {**os.environ, "PYTHON": sys.executable}
        start = time.perf_counter()
        subprocess.run(["sh", "grokking_nc_rf/run_script.sh", *flags], cwd=repo, env=env, check=True, capture_output=True)
        whole = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grokking_nc_rf.plot", *flags], cwd=repo, check=True, capture_output=True)
        seconds["plotting"] = time.perf_counter() - start
        seconds["training"] = whole - seconds["plotting"]
    return seconds


def floor_table(floor: dict, ours: dict | None) -> str:
    """The main command's floor beside our time, part by part (install and plotting count at our time)."""
    ours = ours or {}
    rows = [["install (fresh venv, pip install -q -r requirements.txt)", "our time", ours.get("install")],
            [f"training and evaluations: {len(CPU_SEEDS)} seeds x ({floor['steps']} steps + {floor['evaluations']} "
             f"evaluations), {floor['tflop']:.1f} TFLOP at {floor['gflops_per_core']:.0f} GFLOP/s x {floor['cores']} "
             f"cores", floor["seconds"], ours.get("training")],
            ["plotting (grokking_nc_rf.plot)", "our time", ours.get("plotting")]]
    known = [r for r in rows if r[2] is not None]
    floor_total = floor["seconds"] + sum(r[2] for r in known if r[1] == "our time")
    table = [[name, f"{f:.0f} s" if isinstance(f, float) else f, "not timed" if o is None else f"{o:.0f} s",
              f"{o / f:.2f}x" if isinstance(f, float) and o is not None else ""] for name, f, o in rows]
    if len(known) == len(rows):
        total = sum(r[2] for r in rows)
        table.append(["**whole main command**", f"{floor_total:.0f} s ({floor_total / 60:.1f} min)",
                      f"{total:.0f} s ({total / 60:.1f} min)", f"{total / floor_total:.2f}x"])
    return markdown_table(["part", "floor", "ours", "ours / floor"], table)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.bench_grokking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--repeats", type=int, default=15, help="timed step pairs (and matmul, record repeats)")
    parser.add_argument("--evals", type=int, default=5, help="timed evaluations per thread count")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 8], help="stack sizes of the per-seed table")
    parser.add_argument("--whole_run", type=int, default=0, help="also time whole CPU-preset runs of this many steps "
                        "both ways (one process --seeds against three processes); 0: skip")
    parser.add_argument("--main_command", action="store_true", help="also time the README's main command "
                        "(run_script.sh --preset cpu on fresh folders, about 8 minutes here) beside its floor")
    parser.add_argument("--install", action="store_true", help="with --main_command: also time a fresh "
                        "`pip install -q -r requirements.txt` (several GB for the CUDA build of torch)")
    args = parser.parse_args(argv)
    if args.install and not args.main_command:
        parser.error("--install times a part of the main command: give --main_command too")
    if min(args.threads + [args.repeats, args.evals] + args.seeds) < 1 or args.whole_run < 0:
        parser.error("--threads, --repeats, --evals and --seeds must be >= 1, --whole_run >= 0")
    import os

    from common.plumbing.seeding import PORTABLE_KERNELS

    kernels = ", ".join(f"{k}={os.environ[k]}" for k in PORTABLE_KERNELS if k in os.environ) or "native"
    print(f"torch {torch.__version__}, python {platform.python_version()}, CPU {platform.processor() or platform.machine()}"
          f", kernels: {kernels}")
    threads = torch.get_num_threads()
    try:
        rows = [measure(t, args.repeats, args.evals, args.seeds) for t in args.threads]
    finally:
        torch.set_num_threads(threads)
    print("\n" + markdown_table(
        ["threads", "training step", "plain transformer", "speed-up", "step GFLOP (plain)", "step GFLOP/s",
         "matmul floor", "step / floor"],
        [[r["threads"], f"{1e3 * r['step_s']:.1f} ms", f"{1e3 * r['plain_s']:.1f} ms", f"{r['speedup']:.2f}x",
          f"{r['gflop']:.2f} ({r['plain_gflop']:.2f})", f"{r['gflop'] / r['step_s']:.0f}",
          f"{1e3 * r['floor_s']:.1f} ms ({r['gflop'] / r['floor_s']:.0f} GFLOP/s)",
          f"{r['step_s'] / r['floor_s']:.2f}x"] for r in rows]))
    print("\n" + markdown_table(
        ["threads", "recorded step (extra)", "one evaluation (GFLOP)", "CPU preset", "CPU evaluation share", "paper preset",
         "paper evaluation share"],
        [[r["threads"], f"{1e3 * r['record_s']:.1f} ms", f"{r['eval_s']:.2f} s ({r['eval_gflop']:.1f})",
          f"{r['cpu'][0]:.1f} min ({r['cpu'][1]} evaluations)", f"{100 * r['cpu'][2]:.1f}%",
          f"{r['paper'][0]:.0f} min ({r['paper'][1]} evaluations)", f"{100 * r['paper'][2]:.1f}%"] for r in rows]))
    print("\nSeeds as one model (train.py --seeds): the step of a stack of N seeds, each on its own batch of 512, "
          "per seed; in brackets one seed alone / that\n")
    print(markdown_table(
        ["threads", "way", *(f"{n} seed{'s' if n > 1 else ''}: per seed" for n in args.seeds), "one seed alone",
         "plain transformer"],
        [[r["threads"], "batched matmuls" if batched else "per seed (train.py on a CPU)",
          *(f"{1e3 * r['per_seed'][n, batched]:.1f} ms ({r['step_s'] / r['per_seed'][n, batched]:.2f}x)"
            for n in args.seeds), f"{1e3 * r['step_s']:.1f} ms", f"{1e3 * r['plain_s']:.1f} ms"]
         for r in rows for batched in (False, True)]))
    if args.whole_run:
        one, three = whole_run(args.whole_run)
        print(f"\nWhole runs, the CPU preset's seeds 1, 42, 15213 for {args.whole_run} steps (evaluations scaled to "
              f"match), portable kernels: one process with the seeds as one model, 2 threads: {one:.0f} s; three "
              f"1-thread processes side by side (run_script.sh's default): {three:.0f} s; one process / three: "
              f"{one / three:.2f}")
    print("\nOne block's attention, forward and backward\n")
    ways = list(next(iter(rows[0]["attention"].values())))
    print(markdown_table(["threads", "block", *ways],
                         [[r["threads"], block, *(f"{1e3 * t[w]:.2f} ms" for w in ways)]
                          for r in rows for block, t in r["attention"].items()]))
    floor = compute_floor(rows[0]["gflop"] * 1e9, rows[0]["eval_gflop"] * 1e9)
    ours = main_command(args.install) if args.main_command else None
    print("\nThe README's main command: its floor on this machine and our time" + ("" if ours else
          " (--main_command times ours)") + "\n")
    print(floor_table(floor, ours))
    return rows


def with_main_command_kernels(argv: list[str]) -> None:
    """Start again under the kernels the main command runs with: run_script.sh exports the portable setting
    (common/plumbing/portable_kernels.sh; KERNELS=native keeps each library's own choice, as there). The variables
    are read when the libraries load, hence a fresh process; one already set wins."""
    import os
    import sys

    from common.plumbing.seeding import PORTABLE_KERNELS

    kernels = os.environ.get("KERNELS", "portable")
    if kernels not in ("portable", "native"):
        print(f"error: KERNELS must be portable or native, got '{kernels}'", file=sys.stderr)
        sys.exit(2)
    missing = {k: v for k, v in PORTABLE_KERNELS.items() if k not in os.environ}
    if kernels == "portable" and missing and platform.machine().lower() in ("x86_64", "amd64"):
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.bench_grokking", *argv], {**os.environ, **missing})


if __name__ == "__main__":
    import sys

    with_main_command_kernels(sys.argv[1:])
    main()
