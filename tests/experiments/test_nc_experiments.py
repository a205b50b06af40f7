"""nc_experiments: the paper preset, the regulariser, the original's running values, and the figures.
What every experiment must do (smoke run, resume, bad flags, divergence) is in test_experiments.py; the
data, model, augmentation and per-split metrics in test_images.py."""

import numpy as np
import pytest
import torch

from common import capture_features, ncc
from common.images import ResNet18


# ---- train.py -----------------------------------------------------------------------------------

def _tiny_flags(folder, out_dir, *extra):
    return ["--preset", "cpu", "--data_dir", str(folder), "--train_size", "30", "--val_size", "20",
            "--epochs", "2", "--batch_size", "8", "--width", "2", "--threads", "1", "--no_progress",
            "--out_dir", str(out_dir), *extra]


def test_paper_preset_is_appendix_b():
    from nc_experiments import train

    _, config, run_dir, _ = train.parse_args(["--preset", "paper", "--seed", "15213"])
    expected = {"dataset": "cifar10", "lr": 0.01, "momentum": 0.9, "batch_size": 64, "weight_decay": 0.0,
                "epochs": 250, "lam": 1e-3, "regularizer": "ncc", "width": 64, "cifar_stem": False,
                "augment": False, "train_size": 0, "val_size": 0, "image_size": 32, "seed": 15213,
                "init": "pytorch"}  # the original runs' scratch ResNet: PyTorch default init
    assert {k: config[k] for k in expected} == expected
    assert run_dir.parts[-3:] == ("nc_experiments", "paper", "seed_15213")
    cpu = train.parse_args(["--preset", "cpu"]).config
    assert (cpu["dataset"], cpu["train_size"], cpu["image_size"], cpu["width"], cpu["cifar_stem"],
            cpu["epochs"]) == ("fashion_mnist", 1000, 16, 16, True, 150)


def test_running_metrics_are_the_originals_epoch_values(tiny_fashion_mnist, tmp_path):
    """--running_metrics: NCC over the train-mode features of all the epoch's steps, and the per-sample
    RF bound (||W||^2 sum_k p(1-p) ||phi||^2) and ||W|| averaged over them (docs/original_code.md §1.1, 1.2), recomputed
    here by hand from the same batches; lr 1e-30 keeps the parameters those of the saved checkpoint."""
    from common import load_checkpoint
    from nc_experiments import train

    folder, _ = tiny_fashion_mnist
    flags = _tiny_flags(folder, tmp_path, "--epochs", "1", "--batch_size", "20", "--lr", "1e-30",
                        "--running_metrics", "--seed", "3")  # 30 images: batches of 20 and 10
    row = train.main(flags)[0]
    args, config, run_dir, _ = train.parse_args(flags)
    x, y = train.load_data(config, args)["train"]
    model = ResNet18(10, config["width"], 1, config["cifar_stem"])
    model.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["model"])
    model.train()  # batch statistics, as in training
    order = torch.randperm(30, generator=torch.Generator().manual_seed(3 * 1_000_003))  # train.py's epoch-0 order
    phis, labels, rf_sum = [], [], 0.0
    weight = model.fc.weight.detach().double()
    with torch.no_grad():
        for idx in (order[:20], order[20:]):
            with capture_features(model, model.fc) as cap:
                logits = model(x[idx]).double()
            phi = cap.features.double()
            p = torch.softmax(logits, 1)
            rf_sum += (weight.square().sum() * (p * (1 - p)).sum(1) * phi.square().sum(1)).sum().item()
            phis.append(phi), labels.append(y[idx])
    phi, labels = torch.cat(phis), torch.cat(labels)
    means = {c: phi[labels == c].mean(0) for c in range(10)}
    var = {c: (phi[labels == c] - means[c]).square().sum(1).mean() for c in range(10)}
    pairs = [(var[a] + var[b]) / (2 * (means[a] - means[b]).square().sum()) for a in range(10) for b in range(10)
             if a != b]
    assert row["train_ncc_running"] == pytest.approx(torch.stack(pairs).mean().item(), rel=1e-4)
    assert row["train_rf_bound_running"] == pytest.approx(rf_sum / 30, rel=1e-4)
    assert row["w_norm_running"] == pytest.approx(weight.norm().item(), rel=1e-6)
    # Fig. 3 from the same epoch class means: angles between the means centred on their average
    centred = {c: means[c] - torch.stack(list(means.values())).mean(0) for c in range(10)}
    angles = [np.degrees(np.arccos(float(centred[a] @ centred[b] / (centred[a].norm() * centred[b].norm()))))
              for a in range(10) for b in range(a + 1, 10)]
    assert row["train_angles_running"] == pytest.approx(angles, abs=1e-3)
    assert "train_ncc_running" not in train.main(_tiny_flags(folder, tmp_path / "b", "--epochs", "1"))[0]


def test_figure_runs_and_plots_from_smoke_logs(tiny_fashion_mnist, tmp_path, capsys):
    from nc_experiments import plot, train

    folder, _ = tiny_fashion_mnist
    runs = plot.main(["fig2", "--list_runs", "--preset", "paper"])
    assert len(runs) == 6 and {r[1] for r in runs} == {"1", "42", "15213"} and {r[3] for r in runs} == {"none", "ncc"}
    assert [r[3] for r in plot.main(["fig6", "--list_runs", "--preset", "paper"])] == \
        ["1e-2", "1e-3", "1e-4", "1e-5", "1e-6", "none"]  # App. B ablation, and the baseline for reference
    assert all("--augment" in r for r in plot.main(["fig7", "--list_runs", "--preset", "cpu"]))
    flags = _tiny_flags(folder, tmp_path, "--epochs", "1")
    last_rows = {}
    for run in plot.main(["fig2", "--list_runs", *flags])[:2] + plot.main(["fig2", "--list_runs", *flags])[3:5]:
        last_rows[(run[3], run[1])] = train.main(flags + run + ["--running_metrics"])[-1]  # as run_script.sh
    capsys.readouterr()
    out = plot.main(["fig2", *flags])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| baseline") or
             line.startswith("| REG")]
    assert [line.split(" | ")[:2] for line in table] == [["| baseline", "1"], ["| baseline", "42"],
                                                           ["| REG (lambda=0.03)", "1"], ["| REG (lambda=0.03)", "42"]]  # cpu preset
    # by default the table (and the figures) hold the original's running values, as the paper plots
    final_ncc = [float(line.split(" | ")[5]) for line in table]
    expected = [last_rows[(r, s)]["train_ncc_running"] for r, s in [("none", "1"), ("none", "42"), ("ncc", "1"),
                                                                     ("ncc", "42")]]
    assert final_ncc == pytest.approx(expected, rel=1e-2)
    assert expected != pytest.approx([last_rows[k]["train_ncc"] for k in last_rows], rel=1e-2)
    plot.main(["fig2", *flags, "--values", "eval"])
    for name in ("fig2.png", "fig3.png", "fig5.png", "fig2_eval.png", "fig3_eval.png", "fig5_eval.png"):
        assert (out / name).stat().st_size > 10_000
    with pytest.raises(SystemExit) as exc:
        plot.main(["fig6", *flags])  # not trained: one line, exit 2
    assert exc.value.code == 2
    for run in plot.main(["fig7", "--list_runs", *flags]):  # 3 lambdas and the baseline, with augmentation
        train.main(flags + run)  # without --running_metrics
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        plot.main(["fig7", *flags])
    assert exc.value.code == 2 and "--values eval" in capsys.readouterr().err
    assert (plot.main(["fig7", *flags, "--values", "eval"]) / "fig7_eval.png").stat().st_size > 10_000
    assert capsys.readouterr().out.count("augment | 42 |") == 4


def test_run_script_rejects_an_unknown_figure():
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "nc_experiments" / "run_script.sh"
    proc = subprocess.run(["sh", str(script), "fig9"], capture_output=True, text=True)
    assert proc.returncode == 2 and "fig2, fig6 or fig7" in proc.stderr


def test_logged_training_loss_is_ce_minus_lambda_ncc(tiny_fashion_mnist, tmp_path):
    from nc_experiments import train

    folder, _ = tiny_fashion_mnist
    rows = train.main(_tiny_flags(folder, tmp_path, "--lam", "0.1"))
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["train_reg_running"] > 0 for r in rows)
    for row in rows:  # the original's logged train loss (Fig. 5); float32 losses
        assert row["train_loss_total"] == pytest.approx(row["train_ce_running"] - 0.1 * row["train_reg_running"], rel=1e-6)
    baseline = train.main(_tiny_flags(folder, tmp_path, "--regularizer", "none"))
    assert all(r["train_reg_running"] == 0 and r["train_loss_total"] == r["train_ce_running"] for r in baseline)


def test_paper_preset_shape_runs_on_cifar10_with_the_gpu_options(tiny_cifar10, tmp_path):
    """The paper preset's model and loader (7x7 stem, max-pool, 32x32 RGB) for one epoch, with augmentation,
    channels-last and bf16 autocast (GPU options that also run on the CPU)."""
    from nc_experiments import train

    folder, _ = tiny_cifar10
    rows = train.main(["--preset", "paper", "--data_dir", str(folder), "--epochs", "1", "--width", "2",
                       "--threads", "1", "--no_progress", "--out_dir", str(tmp_path / "out"), "--augment",
                       "--channels_last", "--amp"])
    assert len(rows) == 1 and np.isfinite(rows[0]["train_rf_bound"]) and np.isfinite(rows[0]["train_ncc"])
    assert rows[0]["step"] == 1  # 20 images, batch 64


def test_ncc_regulariser_reaches_the_backbone_not_the_head():
    # docs/original_code.md §1.3: L = CE - lambda * NCC(phi, y); the NCC term has no path to the classifier.
    model = ResNet18(num_classes=10, width=4, cifar_stem=True)
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    with capture_features(model, model.fc) as cap:
        model(x)
    (-1e-3 * ncc(cap.features, y)).backward()
    assert model.fc.weight.grad is None or torch.count_nonzero(model.fc.weight.grad) == 0
    assert torch.count_nonzero(model.layer4[1].conv2.weight.grad) > 0
