"""nc_experiments: the real data loaders on tiny files made here, subsets, and the ResNet-18."""

import gzip
import pickle

import numpy as np
import pytest
import torch
import torchvision

from common import UsageError, capture_features, ncc
from nc_experiments.data import (CIFAR_AUGMENT_NORM, CIFAR_ORIGINAL_NORM, FASHION_MNIST_NORM, balanced_subset, load_cifar10, load_fashion_mnist, read_idx,
                                 to_float)
from nc_experiments.model import ResNet18


def _write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.fixture
def tiny_fashion_mnist(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for train, n in ((True, 40), (False, 20)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        prefix = "train" if train else "t10k"
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels, compress=False)  # plain file also found
        arrays[train] = images, labels
    return tmp_path, arrays


def test_fashion_mnist_reads_idx_files(tiny_fashion_mnist):
    folder, arrays = tiny_fashion_mnist
    for train in (True, False):
        images, labels = load_fashion_mnist(folder, train)
        assert images.shape == (len(arrays[train][0]), 1, 28, 28) and images.dtype == torch.uint8
        assert np.array_equal(images[:, 0].numpy(), arrays[train][0])
        assert labels.tolist() == arrays[train][1].tolist()


def test_missing_or_broken_data_says_how_to_get_it(tmp_path, tiny_fashion_mnist):
    with pytest.raises(UsageError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "empty", train=True)
    with pytest.raises(UsageError, match="--download"):
        load_cifar10(tmp_path / "empty", train=True)
    folder, _ = tiny_fashion_mnist
    path = folder / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(UsageError, match="truncated"):
        read_idx(path)


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8)  # rows: R plane, G plane, B plane
        labels = rng.integers(0, 10, size=4).tolist()
        with open(root / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        batches[name] = data, labels
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    # The archive is ours, so torchvision's MD5 check of the real files cannot pass: skip only that.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    return tmp_path, batches


def test_cifar10_through_torchvision_on_a_tiny_archive(tiny_cifar10):
    tmp_path, batches = tiny_cifar10
    images, labels = load_cifar10(tmp_path, train=True)
    assert images.shape == (20, 3, 32, 32) and labels.shape == (20,)
    first = batches["data_batch_1"][0][0].reshape(3, 32, 32)
    assert np.array_equal(images[0].numpy(), first)
    assert labels.tolist()[:4] == batches["data_batch_1"][1]
    test_images, _ = load_cifar10(tmp_path, train=False)
    assert np.array_equal(test_images[3].numpy(), batches["test_batch"][0][3].reshape(3, 32, 32))


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


@pytest.mark.parametrize("size, pad, norm", [(32, 4, CIFAR_AUGMENT_NORM), (16, 2, FASHION_MNIST_NORM)])
def test_augment_is_torchvisions_random_crop_and_flip(size, pad, norm):
    """augment(to_float(images)) equals torchvision's ToTensor -> RandomCrop(size, padding=pad) ->
    RandomHorizontalFlip -> Normalize (black padding, applied before normalising) for one crop offset
    and flip per image, found by brute force over all of them."""
    import torchvision.transforms.v2.functional as TF

    from nc_experiments.data import to_float
    from nc_experiments.train import augment

    channels = len(norm[0])
    images = torch.randint(0, 256, (64, channels, size, size), dtype=torch.uint8)
    black = to_float(torch.zeros(1, channels, 1, 1, dtype=torch.uint8), norm).flatten()
    out = augment(to_float(images, norm), torch.Generator().manual_seed(0), black)
    offsets = range(2 * pad + 1)
    found = []
    for image, source in zip(out, images):
        padded = TF.pad(TF.to_dtype(source, torch.float32, scale=True), [pad], fill=0)
        references = {(dy, dx, flip): TF.normalize(TF.horizontal_flip(crop) if flip else crop, *norm)
                      for dy in offsets for dx in offsets for flip in (False, True)
                      for crop in [TF.crop(padded, dy, dx, size, size)]}
        matches = [key for key, ref in references.items() if torch.allclose(image, ref, atol=1e-5, rtol=0)]
        assert len(matches) == 1
        found.append(matches[0])
    assert len({m[:2] for m in found}) > len(offsets) ** 2 // 4  # offsets vary
    assert {m[0] for m in found} == {m[1] for m in found} == set(offsets)  # up to the full padding
    assert 10 < sum(m[2] for m in found) < 54  # about half flipped
    # the band is black, not the dataset-mean grey (the normalised 0) that padding after Normalize gives
    top_row = out[[i for i, m in enumerate(found) if m[0] == 0][0], :, 0, :]  # dy = 0: the top row is padding
    assert torch.allclose(top_row, black[:, None].expand_as(top_row)) and (black < -0.5).all()


def test_balanced_subset():
    labels = torch.arange(100) % 10
    idx = balanced_subset(labels, 35, seed=0)
    counts = torch.bincount(labels[idx], minlength=10)
    assert len(idx) == 35 and len(set(idx.tolist())) == 35
    assert counts.max() - counts.min() <= 1
    assert torch.equal(idx, balanced_subset(labels, 35, seed=0))
    assert not torch.equal(idx, balanced_subset(labels, 35, seed=1))
    with pytest.raises(UsageError, match="choose a smaller size"):
        balanced_subset(labels, 200, seed=0)


def test_to_float_normalises_and_resizes():
    images = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    x = to_float(images, CIFAR_ORIGINAL_NORM)
    assert torch.allclose(x, torch.ones_like(x))  # (1 - 0.5) / 0.5
    small = to_float(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), ((0.5,), (0.25,)), size=16)
    assert small.shape == (2, 1, 16, 16) and torch.allclose(small, torch.full_like(small, -2.0))


def test_resnet18_is_torchvision_resnet18():
    torch.manual_seed(3)
    ours = ResNet18(num_classes=10)
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(num_classes=10)
    ours_state, reference_state = ours.state_dict(), reference.state_dict()
    assert list(ours_state) == list(reference_state)
    assert all(torch.equal(ours_state[k], reference_state[k]) for k in ours_state)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(ours.eval()(x), reference.eval()(x))


def test_cifar_stem_width_and_init_options():
    model = ResNet18(num_classes=10, width=16, in_channels=1, cifar_stem=True, init="pytorch")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.fc.in_features == 128 and model.layer4[0].conv1.out_channels == 128
    x = torch.randn(4, 1, 16, 16)
    with capture_features(model, model.fc) as cap:
        logits = model(x)
    assert logits.shape == (4, 10) and cap.features.shape == (4, 128)
    # torchvision init: Kaiming normal, fan-out, ReLU gain -> std sqrt(2 / (out_channels * k * k))
    conv = ResNet18(width=64, init="torchvision").layer3[0].conv2
    assert conv.weight.std().item() == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.02)
    with pytest.raises(ValueError, match="width"):
        ResNet18(width=0)


def test_ncc_regulariser_reaches_the_backbone_not_the_head():
    # docs/original_code.md §1.3: L = CE - lambda * NCC(phi, y); the NCC term has no path to the classifier.
    model = ResNet18(num_classes=10, width=4, cifar_stem=True)
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    with capture_features(model, model.fc) as cap:
        model(x)
    (-1e-3 * ncc(cap.features, y)).backward()
    assert model.fc.weight.grad is None or torch.count_nonzero(model.fc.weight.grad) == 0
    assert torch.count_nonzero(model.layer4[1].conv2.weight.grad) > 0


# ---- train.py -----------------------------------------------------------------------------------

def _tiny_flags(folder, out_dir, *extra):
    return ["--preset", "cpu", "--data_dir", str(folder), "--train_size", "30", "--val_size", "20",
            "--epochs", "2", "--batch_size", "8", "--width", "2", "--threads", "1", "--no_progress",
            "--out_dir", str(out_dir), *extra]


def test_paper_preset_is_appendix_b():
    from nc_experiments import train

    _, config, run_dir = train.parse_args(["--preset", "paper", "--seed", "15213"])
    expected = {"dataset": "cifar10", "lr": 0.01, "momentum": 0.9, "batch_size": 64, "weight_decay": 0.0,
                "epochs": 250, "lam": 1e-3, "regularizer": "ncc", "width": 64, "cifar_stem": False,
                "augment": False, "train_size": 0, "val_size": 0, "image_size": 32, "seed": 15213,
                "init": "pytorch"}  # the original runs' scratch ResNet: PyTorch default init
    assert {k: config[k] for k in expected} == expected
    assert run_dir.parts[-3:] == ("nc_experiments", "paper", "seed_15213")
    _, cpu, _ = train.parse_args(["--preset", "cpu"])
    assert (cpu["dataset"], cpu["train_size"], cpu["image_size"], cpu["width"], cpu["cifar_stem"],
            cpu["epochs"]) == ("fashion_mnist", 1000, 16, 16, True, 150)


def test_smoke_run_logs_every_metric_and_resumes(tiny_fashion_mnist, tmp_path, capsys, monkeypatch):
    from nc_experiments import train

    folder, _ = tiny_fashion_mnist
    rows = train.main(_tiny_flags(folder, tmp_path / "a", "--lam", "0.1"))
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "train_ncc", "train_rf_bound", "train_rf_exact",
                "w_norm", "train_nc1", "train_nc4", "train_loss_total", "train_ce_running", "train_reg_running",
                "train_angle_mean", "train_angles"):
        assert key in rows[0], key
    row = rows[-1]
    assert 0 <= row["train_acc"] <= 1 and row["train_rf_exact"] <= row["train_rf_bound"]
    assert len(row["train_angles"]) == 45 and row["simplex_angle"] == pytest.approx(96.379, abs=1e-3)
    # the logged train loss is the original's CE - lambda * NCC
    assert row["train_loss_total"] == pytest.approx(row["train_ce_running"] - 0.1 * row["train_reg_running"], rel=1e-6)  # float32 losses
    # A run that dies during epoch 2 resumes from the epoch-1 checkpoint to the same rows.
    real_evaluate, calls = train.evaluate, []

    def dying_evaluate(model, data):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after training epoch 2, before its row and checkpoint
        return real_evaluate(model, data)

    monkeypatch.setattr(train, "evaluate", dying_evaluate)
    with pytest.raises(KeyboardInterrupt):
        train.main(_tiny_flags(folder, tmp_path / "b", "--lam", "0.1"))
    monkeypatch.setattr(train, "evaluate", real_evaluate)
    resumed = train.main(_tiny_flags(folder, tmp_path / "b", "--lam", "0.1"))
    assert "resuming after epoch 1" in capsys.readouterr().out
    timing = {"train_s", "eval_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in resumed] == \
           [{k: v for k, v in r.items() if k not in timing} for r in rows]
    again = train.main(_tiny_flags(folder, tmp_path / "b", "--lam", "0.1"))
    assert "already finished" in capsys.readouterr().out and len(again) == 2


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
    args, config, run_dir = train.parse_args(flags)
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


def test_a_diverging_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tiny_fashion_mnist, tmp_path,
                                                                            capsys, monkeypatch):
    from common import load_checkpoint, ncc
    from nc_experiments import train

    folder, _ = tiny_fashion_mnist
    calls = []

    def ncc_diverging_in_epoch_2(features, labels):  # 30 images in batches of 8: 4 steps per epoch
        if features.requires_grad:
            calls.append(1)
            if len(calls) == 5:
                return torch.tensor(float("nan"))
        return ncc(features, labels)

    monkeypatch.setattr(train, "ncc", ncc_diverging_in_epoch_2)
    with pytest.raises(SystemExit) as exc:
        train.main(_tiny_flags(folder, tmp_path))
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "loss nan at epoch 2, batch 0" in err and "checkpoint" in err
    run_dir = train.parse_args(_tiny_flags(folder, tmp_path))[2]
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 1
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    monkeypatch.setattr(train, "ncc", ncc)
    assert [r["epoch"] for r in train.main(_tiny_flags(folder, tmp_path))] == [1, 2]  # resumes after epoch 1


@pytest.mark.parametrize("flags, message", [
    (["--lam", "-1"], "--lam must be >= 0"),
    (["--width", "0"], "--width must be >= 1"),
    (["--dataset", "mnist"], "invalid choice"),
    (["--train_size", "100"], "--train_size 100 is larger than the 40 train images"),
])
def test_bad_input_is_one_line_exit_2(tiny_fashion_mnist, tmp_path, capsys, flags, message):
    from nc_experiments import train

    folder, _ = tiny_fashion_mnist
    with pytest.raises(SystemExit) as exc:
        train.main(_tiny_flags(folder, tmp_path / "out", *flags))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_missing_data_is_exit_2(tmp_path, capsys):
    from nc_experiments import train

    with pytest.raises(SystemExit) as exc:
        train.main(_tiny_flags(tmp_path / "nothing", tmp_path / "out"))
    assert exc.value.code == 2 and "dataset-fashion-mnist" in capsys.readouterr().err


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

    script = Path(__file__).resolve().parent.parent / "nc_experiments" / "run_script.sh"
    proc = subprocess.run(["sh", str(script), "fig9"], capture_output=True, text=True)
    assert proc.returncode == 2 and "fig2, fig6 or fig7" in proc.stderr
