"""rf_resnet18: the presets against App. C and the released script, the unplug switch and schedule in a
training run, the fair baseline, the cap, and Fig. 4 from smoke logs. What every experiment must do is in
test_experiments.py; the regulariser, cap and schedule themselves in test_regularisation.py."""

import pytest
import torch

from common import load_checkpoint
from tests.unplug.test_regularisation import _original_lrs


def _flags(folder, out_dir, *extra):
    return ["--preset", "cpu", "--data_dir", str(folder), "--train_size", "30", "--val_size", "20",
            "--epochs", "5", "--unplug_epoch", "2", "--batch_size", "8", "--width", "2", "--threads", "1",
            "--no_progress", "--out_dir", str(out_dir), *extra]


def _without(rows, *keys):
    return [{k: v for k, v in r.items() if k not in {"train_s", "eval_s", *keys}} for r in rows]


def test_presets_are_appendix_c_and_the_released_script():
    from rf_resnet18 import train

    paper = train.parse_args(["--preset", "paper"]).config
    assert {k: paper[k] for k in ("dataset", "epochs", "lam", "unplug_epoch", "unplug_recipe", "temperature",
                                  "normalise_features", "cap", "lr", "momentum", "batch_size", "weight_decay",
                                  "augment", "width", "cifar_stem")} == \
        {"dataset": "cifar10", "epochs": 650, "lam": 1e-4, "unplug_epoch": 100, "unplug_recipe": "paper",
         "temperature": 1.0, "normalise_features": False, "cap": "none", "lr": 0.01, "momentum": 0.9,
         "batch_size": 64, "weight_decay": 0.0, "augment": False, "width": 64, "cifar_stem": False}
    repo = train.parse_args(["--preset", "repo"]).config
    assert {k: repo[k] for k in ("epochs", "lam", "unplug_epoch", "unplug_recipe", "temperature",
                                 "normalise_features", "cap", "max_norm", "lr_bump", "weight_decay_after",
                                 "lr_floor")} == \
        {"epochs": 400, "lam": 1e-2, "unplug_epoch": 200, "unplug_recipe": "repo", "temperature": 2.0,
         "normalise_features": True, "cap": "frobenius", "max_norm": 50.0, "lr_bump": 10.0,
         "weight_decay_after": 2e-4, "lr_floor": 1e-4}


def test_unplug_switches_at_the_stated_epoch_and_the_fair_baseline_gets_the_same_schedule(tiny_fashion_mnist,
                                                                                         tmp_path):
    from rf_resnet18 import train

    folder, _ = tiny_fashion_mnist
    regularised = train.main(_flags(folder, tmp_path, "--lam", "1"))
    fair = train.main(_flags(folder, tmp_path, "--regularizer", "none", "--baseline_same_schedule"))
    original = train.main(_flags(folder, tmp_path, "--regularizer", "none"))
    expected = _original_lrs(0.01, 5, 2, 10.0, 1e-4, regularised=True)  # torch's CosineAnnealingLR after the bump
    assert [r["regularised"] for r in regularised] == [True, True, False, False, False]
    assert [r["lr"] for r in regularised] == pytest.approx(expected, rel=1e-9)
    assert [r["weight_decay"] for r in regularised] == [0.0, 0.0, 2e-4, 2e-4, 2e-4]
    assert [r["lr"] for r in fair] == [r["lr"] for r in regularised] and not any(r["regularised"] for r in fair)
    assert [r["weight_decay"] for r in fair] == [r["weight_decay"] for r in regularised]
    assert [r["lr"] for r in original] == [0.01] * 5 and [r["weight_decay"] for r in original] == [0.0] * 5
    # the term changed the run (same seed, batches and schedule: only the loss differs) ...
    assert regularised[0]["train_loss_total"] != pytest.approx(regularised[0]["train_ce_running"])
    assert regularised[2]["train_loss_total"] == regularised[2]["train_ce_running"]  # ... and is off after unplug
    assert regularised[0]["train_rf_bound"] != pytest.approx(fair[0]["train_rf_bound"])
    # unplugged at epoch 0, a regularised run never applies its term: it is the fair baseline
    never = train.main(_flags(folder, tmp_path / "never", "--lam", "1", "--unplug_epoch", "0"))
    fair_0 = train.main(_flags(folder, tmp_path / "never", "--regularizer", "none", "--baseline_same_schedule",
                               "--unplug_epoch", "0"))
    assert _without(never, "regularised") == _without(fair_0, "regularised")


def test_the_cap_holds_after_every_step_of_the_whole_run(tiny_fashion_mnist, tmp_path):
    from rf_resnet18 import train

    folder, _ = tiny_fashion_mnist
    flags = _flags(folder, tmp_path, "--lam", "1", "--max_norm", "0.3")
    rows = train.main(flags)
    assert all(r["w_norm"] <= 0.3 * (1 + 1e-6) for r in rows)
    weight = load_checkpoint(train.parse_args(flags).run_dir / "checkpoint.pt")["model"]["fc.weight"]
    assert weight.norm().item() <= 0.3 * (1 + 1e-6)
    uncapped = train.main(_flags(folder, tmp_path, "--lam", "1", "--cap", "none"))
    assert max(r["w_norm"] for r in uncapped) > 0.3


def test_fig4_from_smoke_logs(tiny_fashion_mnist, tmp_path, capsys):
    from rf_resnet18 import plot, train

    folder, _ = tiny_fashion_mnist
    for seed in ("1", "42"):
        train.main(_flags(folder, tmp_path, "--seed", seed))
        train.main(_flags(folder, tmp_path, "--seed", seed, "--regularizer", "none", "--baseline_same_schedule"))
    capsys.readouterr()
    out = plot.main(["--seeds", "1 42", *_flags(folder, tmp_path)])
    assert (out / "fig4.png").stat().st_size > 10_000
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| RF") or
             line.startswith("| baseline")]
    assert [line.split(" | ")[:2] for line in table] == [["| RF regulariser, unplugged", "1"],
                                                         ["| RF regulariser, unplugged", "42"],
                                                         ["| baseline, same schedule", "1"],
                                                         ["| baseline, same schedule", "42"]]
    with pytest.raises(SystemExit) as exc:
        plot.main(["--seeds", "1", *_flags(folder, tmp_path / "empty")])
    assert exc.value.code == 2
    assert torch.get_num_threads() >= 1
