"""grokking_nc_rf: the related work's quantities (Nanda et al.'s progress measures, Sakamoto et al.'s class
variances as logged) and the Grokfast intervention, each against an independent computation."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common import class_variances, load_runs, read_metrics
from grokking_nc_rf import train
from grokking_nc_rf.fourier import frequency_energies, key_frequencies, pair_grid, progress_losses
from grokking_nc_rf.grokfast import GrokfastEMA

TINY = ["--preset", "cpu", "--modulus", "11", "--steps", "40", "--eval_points", "6", "--batch_size", "16",
        "--threads", "1", "--no_progress"]


@pytest.mark.parametrize("p", [13, 12])
def test_frequency_energies_are_the_dft_power(p):
    """e_k from the discrete Fourier transform: 2 |F_k|^2 / p per dimension (|F_k|^2 / p at k = p / 2), and with
    the constant's |F_0|^2 / p they sum to ||E||_F^2."""
    embedding = torch.randn(p, 7, dtype=torch.float64)
    power = torch.fft.rfft(embedding, dim=0).abs().square().sum(1) / p  # (p // 2 + 1,)
    expected = 2 * power[1:]
    if p % 2 == 0:
        expected[-1] = power[-1]
    assert torch.allclose(frequency_energies(embedding), expected, rtol=1e-12)
    assert (frequency_energies(embedding).sum() + power[0]).item() == pytest.approx(embedding.square().sum().item())


def test_key_frequencies_of_a_constructed_embedding():
    """An embedding built from frequencies 2 (energy 3x) and 5, plus noise at 1e-3: a share of 0.5 keeps
    frequency 2 only, 0.9 both; the frequencies are ordered by energy, not by index."""
    p, d = 17, 16
    a = torch.arange(p, dtype=torch.float64)[:, None]
    x = torch.linalg.qr(torch.randn(d, 4, dtype=torch.float64))[0].T  # orthonormal directions
    embedding = (math.sqrt(3) * (torch.cos(2 * math.pi * 2 * a / p) * x[0] + torch.sin(2 * math.pi * 2 * a / p) * x[1])
                 + torch.cos(2 * math.pi * 5 * a / p) * x[2] + torch.sin(2 * math.pi * 5 * a / p) * x[3])
    embedding = embedding + 1e-3 * torch.randn(p, d, dtype=torch.float64)
    assert key_frequencies(embedding, share=0.5) == [2]
    assert key_frequencies(embedding, share=0.9) == [2, 5]
    assert key_frequencies(embedding.flip(1), share=0.9) == [2, 5]


def _fourier_logits(p, terms):
    """A constructed 'model': logit(c | a, b) = sum_k alpha_k cos(w_k (a + b - c)) for every pair, a-major."""
    a, b, c = torch.meshgrid(*(torch.arange(p, dtype=torch.float64),) * 3, indexing="ij")
    logits = sum(alpha * torch.cos(2 * math.pi * k / p * (a + b - c)) for k, alpha in terms.items())
    return logits.reshape(p * p, p), ((a + b) % p)[..., 0].flatten().long()


def test_restricted_and_excluded_loss_of_a_fourier_model():
    """Logits that are a sum over key frequencies 3 and 4: restricted to both, the loss is the full loss;
    with both excluded, the logits are 0 and the loss is log p; excluding 4 only leaves the model of
    frequency 3 alone (computed by hand)."""
    p = 13
    logits, targets = _fourier_logits(p, {3: 4.0, 4: 2.5})
    mask = torch.rand(p * p, generator=torch.Generator().manual_seed(0)) < 0.5
    splits = {"train": mask, "val": ~mask}
    both = progress_losses(logits, targets, splits, [3, 4])
    only_three = progress_losses(logits, targets, splits, [3])
    alone, _ = _fourier_logits(p, {3: 4.0})
    rest, _ = _fourier_logits(p, {4: 2.5})
    for split, m in splits.items():
        full = F.cross_entropy(logits[m], targets[m]).item()
        assert both[f"{split}_restricted_loss"].item() == pytest.approx(full, rel=1e-12)
        assert both[f"{split}_excluded_loss"].item() == pytest.approx(math.log(p), rel=1e-12)
        assert only_three[f"{split}_restricted_loss"].item() == pytest.approx(
            F.cross_entropy(alone[m], targets[m]).item(), rel=1e-10)
        assert only_three[f"{split}_excluded_loss"].item() == pytest.approx(
            F.cross_entropy(rest[m], targets[m]).item(), rel=1e-10)
    assert both["train_restricted_loss"].item() < 0.2  # the model does solve the task


def test_projection_is_the_least_squares_fit_on_cos_and_sin_of_a_plus_b():
    """For arbitrary logits (V outputs, p even so frequency p / 2 has no sine), the restricted logits are each
    output's least-squares fit on [1, cos(w_k (a + b)), sin(w_k (a + b))] (torch.linalg.lstsq), the excluded
    logits the residual of the fit without the constant."""
    p, vocab, keys = 12, 5, [1, 6]
    logits = torch.randn(p * p, vocab, dtype=torch.float64)
    targets = torch.randint(vocab, (p * p,))
    a, b = torch.meshgrid(torch.arange(p, dtype=torch.float64), torch.arange(p, dtype=torch.float64), indexing="ij")
    s = (a + b).flatten()
    waves = [torch.cos(2 * math.pi * 1 * s / p), torch.sin(2 * math.pi * 1 * s / p), torch.cos(2 * math.pi * 6 * s / p)]
    design = torch.stack([torch.ones_like(s), *waves], 1)
    fit = design @ torch.linalg.lstsq(design, logits).solution
    no_constant = torch.stack(waves, 1)
    residual = logits - no_constant @ torch.linalg.lstsq(no_constant, logits).solution
    everything = {"all": torch.ones(p * p, dtype=torch.bool)}
    losses = progress_losses(logits, targets, everything, keys)
    assert losses["all_restricted_loss"].item() == pytest.approx(F.cross_entropy(fit, targets).item(), rel=1e-10)
    assert losses["all_excluded_loss"].item() == pytest.approx(F.cross_entropy(residual, targets).item(), rel=1e-10)


def test_pair_grid_places_each_row_at_its_pair():
    """Rows of two splits, shuffled, land at row a * p + b of the grid, with their answers and split masks
    (brute force over the pairs)."""
    p = 7
    order = torch.randperm(p * p)
    a, b = order // p, order % p
    values, labels = torch.randn(p * p, 3), (a + b) % p
    split = {"train": slice(0, 20), "val": slice(20, None)}
    grid, answers, masks = pair_grid({s: order[r] for s, r in split.items()}, {s: values[r] for s, r in split.items()},
                                     {s: labels[r] for s, r in split.items()}, p)
    for i in range(p * p):
        row = a[i] * p + b[i]
        assert torch.equal(grid[row], values[i]) and answers[row] == (a[i] + b[i]) % p
        assert masks["train"][row] == (i < 20) and masks["val"][row] == (i >= 20)


def _their_filter(grads, model, alpha, lamb):
    """Lee et al.'s gradfilter_ema, as their repository writes it."""
    if grads is None:
        grads = {n: p.grad.data.detach() for n, p in model.named_parameters() if p.requires_grad}
    for n, p in model.named_parameters():
        if p.requires_grad:
            grads[n] = grads[n] * alpha + p.grad.data.detach() * (1 - alpha)
            p.grad.data = p.grad.data + grads[n] * lamb
    return grads


def test_grokfast_filter_matches_their_gradfilter_ema():
    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    theirs.load_state_dict(ours.state_dict())
    grokfast, grads = GrokfastEMA(dict(ours.named_parameters()), 0.9, 2.0), None
    for _ in range(5):
        x = torch.randn(8, 4)
        for model in (ours, theirs):
            model.zero_grad()
            model(x).square().sum().backward()
        grokfast()
        grads = _their_filter(grads, theirs, 0.9, 2.0)
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6), name  # float rounding only
        with torch.no_grad():  # move both the same way, so the next gradients differ from these
            for p, q in zip(ours.parameters(), theirs.parameters()):
                p -= 0.1 * p.grad
                q -= 0.1 * p.grad


def _values(rows):
    return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in rows]


def test_grokfast_changes_training_resumes_exactly_and_batches_per_seed(tmp_path, monkeypatch):
    """--grokfast_lamb moves the rows; a run killed after two evaluations resumes to the rows of an uninterrupted
    one (the moving averages are in the checkpoint); two seeds as one model give each seed's rows alone."""
    from common import RunLog

    flags = TINY + ["--steps", "24", "--eval_points", "4", "--grokfast_lamb", "2"]
    plain = train.main(TINY + ["--steps", "24", "--eval_points", "4", "--out_dir", str(tmp_path / "plain")])
    reference = train.main(flags + ["--out_dir", str(tmp_path / "ref")])
    assert reference[-1]["train_loss"] != plain[-1]["train_loss"]
    real, calls = RunLog.save_checkpoint, []

    def killed(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, step, *args, **kwargs)

    monkeypatch.setattr(RunLog, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        train.main(flags + ["--out_dir", str(tmp_path / "run")])
    monkeypatch.setattr(RunLog, "save_checkpoint", real)
    assert _values(train.main(flags + ["--out_dir", str(tmp_path / "run")])) == _values(reference)
    group = train.main(flags + ["--seeds", "42,7", "--out_dir", str(tmp_path / "group")])
    assert _values(group[42]) == _values(reference)
    assert _values(group[7]) == _values(train.main(flags + ["--seed", "7", "--out_dir", str(tmp_path / "seven")]))


def test_logged_related_quantities_match_their_recomputation(tmp_path):
    """The class variances of both splits recomputed from the saved '=' features, and the last evaluation's
    restricted and excluded losses read again from the saved features with the final key frequencies."""
    train.main(TINY + ["--save_features", "2", "--out_dir", str(tmp_path)])
    run_dir = next((tmp_path / "grokking_nc_rf").iterdir()) / "seed_42"
    rows, saved = read_metrics(run_dir / "metrics.jsonl"), np.load(run_dir / "features.npz")
    final = read_metrics(run_dir / "fourier_final_keys.jsonl")
    last = rows[-1]
    assert [r["step"] for r in final] == saved["steps"].tolist() and final[-1]["step"] == last["step"] == 40
    assert final[-1]["key_frequencies"] == last["key_frequencies"] and last["n_key_frequencies"] == len(
        last["key_frequencies"])
    for split, rows_of in (("train", saved["is_train"]), ("val", ~saved["is_train"])):
        features = torch.from_numpy(saved["features"][-1][rows_of]).double()
        labels = torch.from_numpy(saved["labels"][rows_of]).long()
        for key, value in class_variances(features, labels).items():
            assert last[f"{split}_{key}"] == pytest.approx(value.item(), rel=2e-3)
        for loss in ("restricted_loss", "excluded_loss"):
            assert final[-1][f"{split}_{loss}"] == pytest.approx(last[f"{split}_{loss}"], rel=2e-3)


def test_compare_figure_of_plain_and_grokfast_runs(tmp_path, capsys):
    """plot --compare draws every signal of both run groups into one PNG; without --out it is one line, exit 2."""
    from grokking_nc_rf import plot

    flags = TINY + ["--steps", "12", "--eval_points", "3"]
    train.main(flags + ["--save_features", "2", "--out_dir", str(tmp_path)])
    train.main(flags + ["--grokfast_lamb", "2", "--out_dir", str(tmp_path)])
    groups = sorted(str(p) for p in (tmp_path / "grokking_nc_rf").iterdir())
    assert len(groups) == 2
    plain = next(g for g in groups if "grokfast" not in g)
    frame = plot.with_final_keys(load_runs(plain), Path(plain))
    final = frame.dropna(subset=["val_restricted_loss_final_keys"])
    assert len(final) == 2 and final.step.iloc[-1] == 12  # the 2 saved evaluations, the last one's keys
    assert final.val_restricted_loss_final_keys.iloc[-1] == pytest.approx(final.val_restricted_loss.iloc[-1], rel=2e-3)
    png = plot.main(["--compare", *groups, "--out", str(tmp_path / "figures")])
    assert png.stat().st_size > 30_000
    with pytest.raises(SystemExit) as exc:
        plot.main(["--compare", *groups])
    assert exc.value.code == 2 and "--compare needs --out" in capsys.readouterr().err
