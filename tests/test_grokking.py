"""grokking_nc_rf: data split, schedule, the logged values, Fig. 1's in-training values, the model, plots.
What every experiment must do (smoke run, resume after SIGKILL, bad flags, divergence) is in
test_experiments.py."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common import ncc, read_metrics
from grokking_nc_rf import plot, train
from grokking_nc_rf.data import EOS, NUM_OFFSET, equations, split_indices, vocab_size

REPO = Path(__file__).resolve().parent.parent
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
        assert all(np.isfinite(v) for v in row.values())
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
    for name in ("fig1_grokking.png", "fig8_representativeness.png", "fig8_kde_terms.png", "fig1_panels.png"):
        assert (figures / name).stat().st_size > 10_000
    assert "mean ± std" in table.index and (run_dir.parent / "onsets.md").exists()


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


def test_model_matches_a_plain_causal_transformer():
    """Post-LN blocks with causal softmax attention written out by hand (docs/original_code.md §2.2), and the
    last-block shortcut (only the right-hand-side positions) gives the same hidden states."""
    import math

    from grokking_nc_rf.model import Transformer

    torch.manual_seed(0)
    model = Transformer(vocab_size(11)).double()
    tokens = equations(11)[0][:50]

    def reference_block(block, x):
        batch, length, width = x.shape
        q, k, v = (t.view(batch, length, 4, width // 4).transpose(1, 2) for t in block.qkv(x).split(width, -1))
        scores = q @ k.transpose(-1, -2) / math.sqrt(width // 4)
        scores = scores.masked_fill(~torch.tril(torch.ones(length, length, dtype=torch.bool)), float("-inf"))
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
        x = block.ln1(x + block.proj(attended))
        return block.ln2(x + block.ff(x))

    with torch.no_grad():
        x = model.embed(tokens) + model.positions[:6]
        # sinusoidal positions as the original: even i -> sin(pos / 10000^(i/d)), odd i -> cos(pos / 10000^((i-1)/d))
        assert model.positions[3, 4].item() == pytest.approx(math.sin(3 / 10000 ** (4 / 128)))
        assert model.positions[3, 5].item() == pytest.approx(math.cos(3 / 10000 ** (4 / 128)))
        for block in model.blocks:
            x = reference_block(block, x)
        assert torch.allclose(model(tokens), x, atol=1e-12)
        assert torch.allclose(model(tokens, train.RHS), x[:, 4:6], atol=1e-12)
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))


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
