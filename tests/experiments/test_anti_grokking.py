"""anti_grokking: the training matches a hand-written Omnigrok loop, and its logged metrics their definitions."""

import math

import pytest
import torch
import torch.nn.functional as F

from anti_grokking import plot, train
from common import load_checkpoint, read_metrics
from common.measures.htsr import powerlaw_fit

FLAGS = ["--preset", "cpu", "--train_size", "40", "--val_size", "20", "--steps", "12", "--eval_points", "3",
         "--batch_size", "8", "--width", "16", "--threads", "1", "--no_progress"]


def test_training_matches_a_plain_loop_and_metrics_their_definitions(tiny_fashion_mnist, tmp_path):
    folder, arrays = tiny_fashion_mnist
    flags = FLAGS + ["--data_dir", str(folder), "--out_dir", str(tmp_path)]
    rows = train.main(flags)
    run_dir = train.parse_args(flags).run_dir

    # The recipe written out: 784-16-16-10 ReLU MLP, default init times 8, MSE on one-hot, AdamW, the
    # first 40 images in [0, 1], batches of 8 from one permutation per epoch drawn from (seed, epoch).
    torch.manual_seed(0)
    sizes = [784, 16, 16, 10]
    layers = [torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    with torch.no_grad():
        for p in params:
            p.mul_(8)
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    x = torch.as_tensor(arrays[True][0][:40]).flatten(1).float() / 255
    y = torch.as_tensor(arrays[True][1][:40]).long()

    def forward(inputs):
        h = inputs
        for i, layer in enumerate(layers):
            h = layer(h) if i == len(layers) - 1 else torch.relu(layer(h))
        return h

    for step in range(12):
        epoch, batch = divmod(step, 5)
        order = torch.randperm(40, generator=torch.Generator().manual_seed(epoch))  # seed 0: 0 * 1_000_003 + epoch
        idx = order[batch * 8:(batch + 1) * 8]
        loss = ((forward(x[idx]) - F.one_hot(y[idx], 10).float()) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = load_checkpoint(run_dir / "checkpoint.pt")["model"]
    for i, layer in enumerate(layers):
        assert torch.allclose(state[f"{2 * i}.weight"], layer.weight, atol=1e-5)
        assert torch.allclose(state[f"{2 * i}.bias"], layer.bias, atol=1e-5)

    last = rows[-1]
    assert last["step"] == 12 and [r["step"] for r in rows] == sorted({r["step"] for r in rows})
    with torch.no_grad():
        logits = forward(x)
        assert last["train_loss"] == pytest.approx(((logits - F.one_hot(y, 10)) ** 2).mean().item(), rel=1e-5)
        assert last["train_acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
        for i, layer in enumerate(layers):
            eig = torch.linalg.eigvalsh(layer.weight.double() @ layer.weight.double().T)
            assert last[f"alpha_{2 * i}"] == pytest.approx(powerlaw_fit(eig)["alpha"].item(), rel=1e-6)
        norm = math.sqrt(sum(p.double().pow(2).sum().item() for p in params))
        assert last["param_norm"] == pytest.approx(norm, rel=1e-5)
    assert read_metrics(run_dir / "metrics.jsonl") == rows


def test_plot_writes_the_figure_and_the_onset_table(tiny_fashion_mnist, tmp_path):
    folder = tiny_fashion_mnist[0]
    flags = FLAGS + ["--data_dir", str(folder), "--out_dir", str(tmp_path)]
    for wd in ("0.01", "0"):
        train.main(flags + ["--weight_decay", wd])
    table = plot.main(flags)
    root = tmp_path / "anti_grokking"
    groups = {train.parse_args(flags + ["--weight_decay", wd]).run_dir.parent.name for wd in ("0.01", "0")}
    assert (root / "figures" / "cpu.png").stat().st_size > 20_000
    assert len(table) == 2 and {g for g, _ in table.index} == groups
    assert (root / "onsets.md").exists() and (root / "onsets.csv").exists()
