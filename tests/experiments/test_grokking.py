"""grokking_nc_rf: data split, schedule, the logged values, Fig. 1's in-training values, the model, plots.
What every experiment must do (smoke run, resume after SIGKILL, bad flags, divergence) is in
test_experiments.py."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common import ncc, read_metrics
from grokking_nc_rf import plot, train
from grokking_nc_rf.data import EOS, NUM_OFFSET, equations, split_indices, vocab_size

REPO = Path(__file__).resolve().parents[2]
TINY = ["--preset", "cpu", "--modulus", "11", "--steps", "40", "--eval_points", "6", "--batch_size", "16",
        "--threads", "1", "--no_progress"]


def test_equations_and_vocabulary_match_the_original():
    inputs, targets = equations(97)
    assert vocab_size(97) == 239  # docs/original_code.md §2.1
    assert inputs.shape == (9409, 6) and targets.shape == (9409, 2)
    a, b = 23, 90
    row = inputs[a * 97 + b].tolist()
    assert row == [EOS, NUM_OFFSET + a, 6, NUM_OFFSET + b, 1, NUM_OFFSET + (a + b) % 97]
    assert targets[a * 97 + b].tolist() == [NUM_OFFSET + 16, EOS]


@pytest.mark.parametrize("split", ["ordered", "unordered"])
def test_split_covers_every_pair_exactly_once(split):
    train_idx, val_idx = split_indices(97, 0.5, data_seed=0, split=split)
    both = np.concatenate([train_idx, val_idx])
    assert sorted(both.tolist()) == list(range(97 * 97))
    assert len(train_idx) == 4704  # round(4704.5) = 4704, as the original
    again, _ = split_indices(97, 0.5, data_seed=0, split=split)
    assert np.array_equal(train_idx, again)
    other, _ = split_indices(97, 0.5, data_seed=1, split=split)
    assert not np.array_equal(train_idx, other)
    train_pairs = {tuple(divmod(int(i), 97)) for i in train_idx}
    twins = np.mean([(b, a) in train_pairs for a, b in (divmod(int(i), 97) for i in val_idx)])
    if split == "ordered":
        assert 0.4 < twins < 0.6  # the commutativity shortcut the README warns about
    else:
        assert twins == 0.0


def test_paper_schedule_reproduces_the_original_grid():
    config = train.parse_args(["--preset", "paper"]).config
    assert (config["steps"], config["lr"], config["weight_decay"], config["batch_size"]) == (100_000, 1e-4, 1.0, 512)
    steps = train.eval_steps(config, batches_per_epoch=10)
    # The original logs after epochs e of the 1.01x grid at global step (e + 1) * 10 - 1, i.e. after
    # (e + 1) * 10 optimizer steps: 620 points; we add the initialisation and the last step.
    assert steps[:4] == [0, 10, 20, 30]
    assert len(steps) == 622 and steps[-2:] == [99_710, 100_000]


def test_smoke_run_values_and_plots(tmp_path, capsys):
    train.main(TINY + ["--out_dir", str(tmp_path)])
    run_dir = tmp_path / "grokking_nc_rf" / "cpu_batch_size16_eval_points6_modulus11_steps40" / "seed_42"
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows}) and rows[-1]["step"] == 40
    for row in rows:
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["val_acc"] <= 1
        assert row["train_rf_exact"] <= row["train_rf_bound"]
        assert all(np.isfinite(v) for v in row.values() if not isinstance(v, list))
        for kernel in ("", "_gaussian"):
            for reading in ("", "_as_given"):
                key = "representativeness" + kernel + reading
                assert row[key] == pytest.approx(row["representativeness_val_loss"] - row[key + "_kde"], abs=1e-12)
                assert row[key + "_kde"] > 0
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["modulus"] == 11 and config["preset"] == "cpu"
    assert json.loads((run_dir / "finished.json").read_text())["steps"] == 40

    # Plots from the smoke run's logs.
    table = plot.main(TINY + ["--out_dir", str(tmp_path)])
    figures = run_dir.parent / "figures"
    for name in ("fig1_grokking.png", "fig8_representativeness.png", "fig8_kde_terms.png", "fig1_panels.png", "signals.png"):
        assert (figures / name).stat().st_size > 10_000
    assert list(table.index) == [(".", 42)] and (run_dir.parent / "onsets.md").exists()
    assert set(table.columns) == {"val_acc rise (half-way)", *(e.name for e in plot.EVENTS)}


def test_running_flatness_is_the_mean_over_the_last_epochs_steps(tmp_path):
    """train_rf_original_running (Fig. 1's curve): the original's per-sample sharpness2 with the
    product-of-logits softmax, ||W_U||^2 sum_v q_v (1 - q_v) (||h_=||^2 + ||h_c||^2), averaged over the
    samples of the last batches_per_epoch steps (here 4: batches of 16, 16, 16, 12), recomputed by hand
    from train.py's batch order; lr 1e-30 keeps the parameters those of the checkpoint."""
    from common import load_checkpoint
    from grokking_nc_rf.model import Transformer

    flags = TINY + ["--lr", "1e-30", "--steps", "16", "--eval_points", "4", "--out_dir", str(tmp_path)]
    train.main(flags)
    args, config, run_dir, _ = train.parse_args(flags)
    rows = read_metrics(run_dir / "metrics.jsonl")
    model = Transformer(vocab_size(11))
    model.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["model"])
    inputs, targets = equations(11)
    train_idx, _ = split_indices(11, 0.5, 0, "ordered")
    x_train, y_train = inputs[train_idx], targets[train_idx]
    assert len(train_idx) == 60
    with torch.no_grad():
        weight_sq = model.unembed.weight.double().square().sum()
        values = []  # per step: the per-sample values of its batch
        for step in range(16):
            epoch, batch = divmod(step, 4)
            order = torch.randperm(60, generator=torch.Generator().manual_seed(42 * 1_000_003 + epoch))
            hidden = model(x_train[order[batch * 16:(batch + 1) * 16]]).double()[:, 4:6]  # (B, 2, d) full forward
            logits = hidden @ model.unembed.weight.double().T
            q = torch.softmax(logits[:, 0] * logits[:, 1], dim=1)
            labels = y_train[order[batch * 16:(batch + 1) * 16]]
            values.append((weight_sq * (q * (1 - q)).sum(1) * hidden.square().sum((1, 2)),
                           (logits.argmax(-1) == labels).all(1).double(), hidden[:, 0], labels[:, 0]))
    assert rows[0]["step"] == 0
    for key in ("rf_original", "acc", "ncc"):
        assert rows[0][f"train_{key}_running"] == rows[0][f"train_{key}"]
    for row in rows[1:]:
        rf, correct, phi, answers = map(torch.cat, zip(*values[max(0, row["step"] - 4):row["step"]]))
        assert row["train_rf_original_running"] == pytest.approx(rf.mean().item(), rel=1e-4)
        assert row["train_acc_running"] == pytest.approx(correct.mean().item(), abs=1e-12)
        assert row["train_ncc_running"] == pytest.approx(ncc(phi, answers).item(), rel=1e-4)
    # a window of a whole epoch at fixed parameters covers every training sample once: the full-set value
    full = [r for r in rows if r["step"] % 4 == 0 and r["step"] > 0]
    for key in ("rf_original", "acc", "ncc"):
        assert full and all(r[f"train_{key}_running"] == pytest.approx(r[f"train_{key}"], rel=1e-4) for r in full)


def reference_block(block, x):
    """One post-LN block written out by hand: causal softmax attention over (B, H, T, T) scores."""
    import math

    batch, length, width = x.shape
    q, k, v = (t.view(batch, length, 4, width // 4).transpose(1, 2) for t in block.qkv(x).split(width, -1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(width // 4)
    scores = scores.masked_fill(~torch.tril(torch.ones(length, length, dtype=torch.bool)), float("-inf"))
    attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
    x = block.ln1(x + block.proj(attended))
    return block.ln2(x + block.ff(x))


def reference_forward(model, tokens):
    """The plain causal transformer: every position of every sequence through every block."""
    x = model.embed(tokens) + model.positions[:tokens.shape[1]]
    for block in model.blocks:
        x = reference_block(block, x)
    return x


def test_model_matches_a_plain_causal_transformer():
    """Post-LN blocks with causal softmax attention written out by hand (docs/original_code.md §2.2); the
    shared-prefix computation and the last-block shortcut (only the right-hand-side positions) give the
    same hidden states, also for batches with repeated sequences and for sequences of any tokens."""
    import math

    from grokking_nc_rf.model import Transformer, every_prefix, shared_prefixes

    torch.manual_seed(0)
    model = Transformer(vocab_size(11)).double()
    tokens = equations(11)[0][:50]
    random_tokens = torch.randint(0, 4, (64, 6))  # few tokens: many shared prefixes of every length
    with torch.no_grad():
        # sinusoidal positions as the original: even i -> sin(pos / 10000^(i/d)), odd i -> cos(pos / 10000^((i-1)/d))
        assert model.positions[3, 4].item() == pytest.approx(math.sin(3 / 10000 ** (4 / 128)))
        assert model.positions[3, 5].item() == pytest.approx(math.cos(3 / 10000 ** (4 / 128)))
        for batch in (tokens, torch.cat([tokens, tokens[:7]]), random_tokens):
            x = reference_forward(model, batch)
            for merge in (True, False):  # shared prefixes (the CPU's default) or every position (elsewhere)
                assert torch.allclose(model(batch, merge=merge), x, atol=1e-12)
                assert torch.allclose(model(batch, train.RHS, merge), x[:, 4:6], atol=1e-12)
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))
    # the packing: one row per distinct prefix, each sequence position pointing at its own prefix
    token, position, rows, first = shared_prefixes(random_tokens)
    prefixes = {tuple(seq[:p + 1].tolist()) for seq in random_tokens for p in range(6)}
    assert len(token) == len(prefixes)
    for b, p in [(0, 0), (5, 2), (63, 5), (17, 3)]:
        r = rows[b, p]
        assert position[r] == p and token[r] == random_tokens[b, p]
        assert all(torch.equal(random_tokens[c, :p + 1], random_tokens[b, :p + 1]) == bool(rows[c, p] == r)
                   for c in range(64))
    assert torch.equal(rows.flatten()[first], torch.arange(len(token)))
    token, position, rows, first = every_prefix(random_tokens)  # one packed row per (sequence, position)
    assert sorted(rows.flatten().tolist()) == list(range(64 * 6)) and torch.equal(rows.flatten()[first], torch.arange(64 * 6))
    assert torch.equal(token[rows], random_tokens) and torch.equal(position[rows], torch.arange(6).expand(64, 6))


def test_seed_stack_is_its_models_side_by_side():
    """A SeedStack of 3 models, each seed on its own batch (repeated sequences, different prefix counts), gives
    each model's hidden states (per seed: the same bits; batched over seeds: equal to rounding, float64), its
    logits and gradients under the summed loss (batched), and its parameters back; the single-model packing is
    unchanged by the grouping."""
    from grokking_nc_rf.model import SeedStack, Transformer, shared_prefixes

    models = []
    for seed in (1, 42, 15213):
        torch.manual_seed(seed)
        models.append(Transformer(vocab_size(11)).double())
    stack = SeedStack(models)
    tokens = equations(11)[0]
    batches = torch.stack([tokens[:40], torch.cat([tokens[50:70], tokens[50:70]]), torch.randint(0, 4, (40, 6))])
    for positions in (slice(None), train.RHS):
        for s, model in enumerate(models):
            assert torch.equal(stack(batches, positions)[s], model(batches[s], positions))  # per seed: to the bit
            for merge in (True, False):
                assert torch.allclose(stack(batches, positions, batched=True, merge=merge)[s], model(batches[s], positions),
                                      atol=1e-12)
    targets = torch.randint(0, vocab_size(11), (3, 40, 2))
    logits = stack.unembed(stack(batches, train.RHS, batched=True), batched=True)
    F.cross_entropy(logits.flatten(1, 2).transpose(1, 2), targets.flatten(1), reduction="none").mean(1).sum().backward()
    for s, model in enumerate(models):
        loss = F.cross_entropy(model.unembed(model(batches[s], train.RHS)).flatten(0, 1), targets[s].flatten())
        loss.backward()
        for name, param in model.named_parameters():
            assert torch.allclose(stack.p(name).grad[s], param.grad, atol=1e-10), name
        assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in stack.unstack(s).items())
    assert torch.equal(shared_prefixes(tokens[:40])[2], shared_prefixes(tokens[:40], groups=40)[2])


def test_training_matches_a_plain_reference_loop(tmp_path):
    """train.py's step (shared prefixes, last-block shortcut, fused AdamW, Fig. 1's values recorded only for
    the steps an evaluation reads) changes no number beyond float tolerance: 12 steps of a plain loop (the
    hand-written transformer above at every position, per-tensor AdamW, the lr warm-up written out, the
    same batches) end at the same parameters and the same logged training loss. Without the causal mask, or
    with AMSGrad in train.py, this fails."""
    import torch.nn.functional as F

    from common import epoch_generator, load_checkpoint, seed_everything
    from grokking_nc_rf.model import Transformer

    flags = TINY + ["--steps", "12", "--eval_points", "3", "--warmup_steps", "3", "--lr", "3e-3",
                    "--seed", "5", "--out_dir", str(tmp_path)]
    rows = train.main(flags)
    run_dir = train.parse_args(flags).run_dir
    seed_everything(5)
    model = Transformer(vocab_size(11))  # the same initialisation as train.py's
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=1.0,
                                  foreach=False, fused=False)
    inputs, targets = equations(11)
    train_idx, _ = split_indices(11, 0.5, 0, "ordered")
    x_train, y_train = inputs[train_idx], targets[train_idx]
    batches = [order[i:i + 16] for epoch in range(3)
               for order in [torch.randperm(len(train_idx), generator=epoch_generator(5, epoch))]
               for i in range(0, len(train_idx), 16)]  # 60 equations: batches of 16, 16, 16, 12
    for step, idx in enumerate(batches[:12]):
        optimizer.param_groups[0]["lr"] = 3e-3 * min(step / 3, 1.0)
        logits = model.unembed(reference_forward(model, x_train[idx]))[:, 4:6]
        loss = F.cross_entropy(logits.flatten(0, 1), y_train[idx].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = load_checkpoint(run_dir / "checkpoint.pt")["model"]
    moved = 0.0
    for name, value in model.state_dict().items():
        # rounding-level differences everywhere, except where a ReLU sits at its kink (one weight here)
        assert torch.allclose(trained[name], value, rtol=0, atol=1e-4), name
        assert ((trained[name] - value).abs() > 1e-6).float().mean() < 1e-3, name
        moved = max(moved, (value - Transformer(vocab_size(11)).state_dict()[name]).abs().max().item())
    assert moved > 1e-2  # the parameters did move
    with torch.no_grad():
        logits = model.unembed(reference_forward(model, x_train))[:, 4:6]
        loss = F.cross_entropy(logits.flatten(0, 1), y_train.flatten()).item()
    assert rows[-1]["step"] == 12 and rows[-1]["train_loss"] == pytest.approx(loss, rel=1e-5)


def test_save_features_packs_one_file(tmp_path):
    train.main(TINY + ["--save_features", "3", "--out_dir", str(tmp_path)])
    run_dir = next((tmp_path / "grokking_nc_rf").iterdir()) / "seed_42"
    saved = np.load(run_dir / "features.npz")
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert saved["features"].shape == (3, 121, 128) and saved["features"].dtype == np.float16
    assert saved["unembedding"].shape == (3, vocab_size(11), 128)
    assert set(saved["steps"].tolist()) <= {r["step"] for r in rows} and saved["steps"][-1] == 40
    assert saved["is_train"].sum() == 60 and (saved["labels"] >= NUM_OFFSET).all()
    assert not (run_dir / "features").exists()


@pytest.mark.parametrize("parallel", ["model", "1", "0"])
def test_run_script_rows_equal_single_seed_runs(tmp_path, parallel):
    """run_script.sh trains the seeds side by side (PARALLEL=1, one thread each), one after another, or as one
    model in one process (PARALLEL=model: --seeds); each seed's rows equal those of the same seed run alone (one
    thread), and the plot step runs. A failing seed fails the script; a bad PARALLEL is one line."""
    import os
    import subprocess
    import sys

    flags = TINY + ["--steps", "12", "--eval_points", "3", "--out_dir", str(tmp_path / "script")]
    # KERNELS=native: the kernels this test process uses (the portable setting has its own test below)
    env = {**os.environ, "PYTHON": sys.executable, "SEEDS": "3 4", "PARALLEL": parallel, "KERNELS": "native"}
    done = subprocess.run(["sh", str(REPO / "grokking_nc_rf" / "run_script.sh"), *flags], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    if parallel == "1":
        assert "[seed 3] " in done.stdout and "[seed 4] " in done.stdout
    for seed in ("3", "4"):
        alone = train.main(TINY + ["--steps", "12", "--eval_points", "3", "--seed", seed, "--out_dir", str(tmp_path / "alone")])
        run_dir = train.parse_args(flags + ["--seed", seed]).run_dir
        script_rows = read_metrics(run_dir / "metrics.jsonl")
        keys = [k for k in alone[0] if not k.endswith("_s")]
        assert [[r[k] for k in keys] for r in script_rows] == [[r[k] for k in keys] for r in alone]
    assert (run_dir.parent / "figures" / "fig1_grokking.png").exists()
    failing = subprocess.run(["sh", str(REPO / "grokking_nc_rf" / "run_script.sh"), *flags, "--steps", "0"],
                             env=env, capture_output=True, text=True)
    assert failing.returncode == 2 and "--steps" in failing.stdout + failing.stderr
    bad = subprocess.run(["sh", str(REPO / "grokking_nc_rf" / "run_script.sh"), *flags], env={**env, "PARALLEL": "2"},
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "PARALLEL must be 1, 0 or model" in bad.stderr


def test_portable_kernel_setting_repeats_rows_and_is_recorded(tmp_path):
    """The reproducible setting (common/plumbing/portable_kernels.sh, which every run_script.sh sources): two processes
    with the same seed, one thread and the portable kernels write identical rows, and config.json records the
    kernel variables, the kernel set in use and the thread count. A bad KERNELS value is refused."""
    import json
    import os
    import platform
    import subprocess
    import sys

    from common.plumbing.seeding import PORTABLE_KERNELS

    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_KERNELS}
    flags = TINY + ["--steps", "12", "--eval_points", "3", "--threads", "1", "--no_progress"]
    rows = []
    for name in ("a", "b"):
        command = f'. common/plumbing/portable_kernels.sh && exec "$0" -m grokking_nc_rf.train "$@"'
        subprocess.run(["sh", "-c", command, sys.executable, *flags, "--out_dir", str(tmp_path / name)], cwd=REPO,
                       env=env, check=True, capture_output=True)
        run_dir = train.parse_args(flags + ["--out_dir", str(tmp_path / name)]).run_dir
        rows.append([{k: v for k, v in r.items() if not k.endswith("_s")} for r in read_metrics(run_dir / "metrics.jsonl")])
        recorded = json.loads((run_dir / "config.json").read_text())["environment"]
        assert recorded["threads"] == 1 and recorded["cpu"]
        if platform.machine() in ("x86_64", "amd64"):
            assert recorded["kernel_env"] == PORTABLE_KERNELS
            assert recorded["cpu_capability"] in ("AVX2", "DEFAULT")  # DEFAULT: a CPU without AVX2
    assert len(rows[0]) == 4 and rows[0] == rows[1]
    bad = subprocess.run(["sh", "-c", ". common/plumbing/portable_kernels.sh"], cwd=REPO, env={**env, "KERNELS": "fast"},
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "KERNELS must be portable or native" in bad.stderr


SEEDS_FLAGS = ["--preset", "cpu", "--modulus", "23", "--steps", "300", "--eval_points", "12", "--batch_size", "32",
               "--threads", "1", "--no_progress"]


def _values(rows):
    return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in rows]


@pytest.mark.parametrize("seeds", ["1,42", "1,42,15213"])
def test_seeds_as_one_model_give_the_rows_of_each_seed_alone(seeds, tmp_path):
    """--seeds trains the seeds as one SeedStack in one process; each seed writes the run folder of a run of it
    alone, with the same rows over 300 steps (12 evaluations). Tolerance: none at one thread, where every seed's
    slice of each batched matmul runs the kernel of a stack of one (measured: bitwise equal); other thread counts
    or kernels may round differently, like any rerun (grokking_nc_rf/README.md)."""
    group = train.main(SEEDS_FLAGS + ["--seeds", seeds, "--out_dir", str(tmp_path / "group")])
    assert sorted(group) == sorted(int(s) for s in seeds.split(","))
    for seed in group:
        alone = train.main(SEEDS_FLAGS + ["--seed", str(seed), "--out_dir", str(tmp_path / "alone")])
        assert len(alone) == 13 and _values(group[seed]) == _values(alone)
        run_dir = train.parse_args(SEEDS_FLAGS + ["--seed", str(seed), "--out_dir", str(tmp_path / "group")]).run_dir
        assert _values(read_metrics(run_dir / "metrics.jsonl")) == _values(alone)
        record = json.loads((run_dir / "config.json").read_text())
        assert record["config"]["seed"] == seed and "seeds" not in record["config"]
    assert _values(group[1]) != _values(group[42])  # the seeds are different runs


def test_seeds_resume_after_a_kill_between_their_checkpoints_and_a_finished_seed_is_left_out(tmp_path, monkeypatch):
    """A group killed after the first seed's checkpoint of an evaluation and before the second's resumes one
    evaluation back for the first (the checkpoint it keeps) and ends with the rows of an uninterrupted group;
    a seed that finished alone is not trained again; a seed trained in a group resumes alone."""
    from common import RunLog

    flags = SEEDS_FLAGS + ["--steps", "120", "--eval_points", "6"]
    reference = train.main(flags + ["--seeds", "3,4", "--out_dir", str(tmp_path / "ref")])
    real, calls = RunLog.save_checkpoint, []

    def killed(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 8:  # the 4th evaluation: seed 3's checkpoint written, seed 4's not
            raise KeyboardInterrupt
        return real(self, step, *args, **kwargs)

    monkeypatch.setattr(RunLog, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        train.main(flags + ["--seeds", "3,4", "--out_dir", str(tmp_path / "run")])
    monkeypatch.setattr(RunLog, "save_checkpoint", real)
    steps = {seed: torch.load(train.parse_args(flags + ["--seed", str(seed), "--out_dir", str(tmp_path / "run")])
                              .run_dir / "checkpoint.pt", weights_only=False)["step"] for seed in (3, 4)}
    assert steps[3] > steps[4]
    resumed = train.main(flags + ["--seeds", "3,4", "--out_dir", str(tmp_path / "run")])
    assert all(_values(resumed[seed]) == _values(reference[seed]) for seed in (3, 4))
    # seed 5 finished alone: the group trains seed 6 only; seed 6 killed in a group resumes alone
    alone = train.main(flags + ["--seed", "5", "--out_dir", str(tmp_path / "mixed")])
    assert _values(train.main(flags + ["--seeds", "5,6", "--out_dir", str(tmp_path / "mixed")])[5]) == _values(alone)
    calls.clear()
    monkeypatch.setattr(RunLog, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        train.main(flags + ["--seeds", "7,8", "--out_dir", str(tmp_path / "split")])
    monkeypatch.setattr(RunLog, "save_checkpoint", real)
    seven = train.main(flags + ["--seed", "7", "--out_dir", str(tmp_path / "split")])
    assert _values(seven) == _values(train.main(flags + ["--seed", "7", "--out_dir", str(tmp_path / "seven")]))


def test_one_diverging_seed_stops_alone_and_bad_seeds_are_one_line(tmp_path, monkeypatch, capsys):
    """A seed whose training loss turns NaN stops at the next evaluation with its message, the others finish
    with their own rows, and the process exits 1; malformed --seeds exit 2 with one line, writing nothing."""
    flags = SEEDS_FLAGS + ["--steps", "60", "--eval_points", "4"]
    clean = train.main(flags + ["--seeds", "1,2", "--out_dir", str(tmp_path / "clean")])
    real, calls = F.cross_entropy, []

    def failing(logits, *args, **kwargs):  # train.py takes each seed's loss in turn: seed 2's from step 20 on
        loss = real(logits, *args, **kwargs)
        if torch.is_grad_enabled() and logits.requires_grad:
            calls.append(1)
            if len(calls) % 2 == 0 and len(calls) // 2 > 20:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(F, "cross_entropy", failing)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        train.main(flags + ["--seeds", "1,2", "--out_dir", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert exc.value.code == 1 and err.count("\n") == 1 and "seed 2: training loss not finite" in err
    assert "seed 2: training loss not finite" in out and "the other seeds go on" in out
    monkeypatch.setattr(F, "cross_entropy", real)
    one = train.parse_args(flags + ["--seed", "1", "--out_dir", str(tmp_path / "run")]).run_dir
    two = train.parse_args(flags + ["--seed", "2", "--out_dir", str(tmp_path / "run")]).run_dir
    assert _values(read_metrics(one / "metrics.jsonl")) == _values(clean[1]) and (one / "finished.json").exists()
    rows = read_metrics(two / "metrics.jsonl")
    assert 0 < len(rows) < len(clean[2]) and _values(rows) == _values(clean[2][:len(rows)])
    for bad, message in ((["--seeds", "1,x"], "--seeds must be comma-separated integers"),
                         (["--seeds", "3,3"], "names a seed twice"),
                         (["--seeds", "1,2", "--seed", "5"], "give --seed or --seeds, not both")):
        with pytest.raises(SystemExit) as exc:
            train.main(flags + bad + ["--out_dir", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "bad").exists()


def test_a_run_killed_right_after_its_first_checkpoint_logs_step_0_once(tmp_path, monkeypatch):
    """Killed after the initialisation's row and checkpoint, before the first step: the resumed run does not
    write the step-0 row again, and ends with the rows of an uninterrupted run."""
    flags = TINY + ["--steps", "20", "--eval_points", "3"]
    reference = train.main(flags + ["--out_dir", str(tmp_path / "ref")])

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.optim.AdamW, "step", killed)
    with pytest.raises(KeyboardInterrupt):
        train.main(flags + ["--out_dir", str(tmp_path / "run")])
    monkeypatch.undo()
    assert _values(train.main(flags + ["--out_dir", str(tmp_path / "run")])) == _values(reference)


def test_causal_attention_matches_torch_attention_forward_and_backward():
    """`causal_attention` (two sequences per batched matmul when the batch is even, the softmax written out) is
    F.scaled_dot_product_attention with the causal mask at the query positions, for even and odd batches and
    for all or the last two query positions, values and gradients (float64)."""
    from grokking_nc_rf.model import causal_attention

    torch.manual_seed(0)
    for batch in (6, 7):
        for queries, query_positions in ((slice(None), torch.arange(6)), (train.RHS, torch.tensor([4, 5]))):
            q = torch.randn(batch, len(query_positions), 16, dtype=torch.float64, requires_grad=True)
            k, v = (torch.randn(batch, 6, 16, dtype=torch.float64, requires_grad=True) for _ in range(2))
            ours = causal_attention(q, k, v, queries, n_heads=4)
            heads = lambda t: t.view(batch, -1, 4, 4).transpose(1, 2)  # noqa: E731
            mask = torch.arange(6)[None, :] <= query_positions[:, None]
            theirs = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask)
            theirs = theirs.transpose(1, 2).reshape(-1, 16)
            assert torch.allclose(ours, theirs, atol=1e-12)
            grad = torch.randn_like(ours)
            mine = torch.autograd.grad(ours, (q, k, v), grad)
            reference = torch.autograd.grad(theirs, (q, k, v), grad)
            assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(mine, reference))
