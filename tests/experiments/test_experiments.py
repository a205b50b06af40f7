"""What every experiment folder must do, tested once for all of them (pytest parametrised over the folders).

Adding an experiment: one entry in EXPERIMENTS (a few-step run of its cpu preset, a longer one for the
kill test, bad flags of its own) and a "Logged keys" table in its README.md. Experiment-specific tests
stay in tests/experiments/test_<folder>.py.
"""

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common import read_metrics

REPO = Path(__file__).resolve().parents[2]
QUIET = ["--threads", "1", "--no_progress"]
TIMING = {"train_s", "eval_s"}  # wall-clock keys: the only ones allowed to differ between identical runs

EXPERIMENTS = {
    "grokking_nc_rf": {
        "smoke": lambda data: ["--preset", "cpu", "--modulus", "11", "--steps", "40", "--eval_points", "6",
                               "--batch_size", "16"],
        "longer": ["--steps", "400", "--eval_points", "40"],
        "nan_at_step": 20,  # of 40
        "bad": [(["--modulus", "1"], "--modulus must be in [2, 3000]"),
                (["--modulus", "5", "--train_fraction", "0.999"], "gives 25 training and 0 validation equations"),
                (["--train_fraction", "0.0001"], "gives 0 training and 121 validation equations"),
                (["--modulus", "5", "--train_fraction", "0.01"], "gives 0 training and 25 validation equations"),
                (["--modulus", "5", "--train_fraction", "0.04"], "gives 1 training and 24 validation equations"),
                (["--train_fraction", "1.5"], "--train_fraction must be in (0, 1)"),
                (["--steps", "0"], "--steps must be > 0"),
                (["--steps", "1e3"], "invalid int value"),
                (["--d_model", "30"], "divisible by --n_heads"),
                (["--save_features", "-1"], "--save_features must be >= 0")],
    },
    "nc_experiments": {
        "smoke": lambda data: ["--preset", "cpu", "--data_dir", str(data["images"]), "--train_size", "30", "--val_size", "20",
                               "--epochs", "2", "--batch_size", "8", "--width", "2", "--augment",
                               "--running_metrics"],
        "longer": ["--epochs", "30"],
        "nan_at_step": 5,  # 30 images in batches of 8: step 5 is the first of epoch 2
        "bad": [(["--lam", "-1"], "--lam must be >= 0"),
                (["--width", "0"], "--width must be >= 1"),
                (["--dataset", "mnist"], "invalid choice"),
                (["--train_size", "100"], "--train_size 100 is larger than the 40 train images"),
                (["--train_size", "1"], "--train_size 1 is smaller than the 10 classes"),
                (["--val_size", "9"], "--val_size 9 is smaller than the 10 classes"),
                (["--data_dir", "/nonexistent"], "dataset-fashion-mnist")],
    },
    "rf_resnet18": {
        "smoke": lambda data: ["--preset", "cpu", "--data_dir", str(data["images"]), "--train_size", "30", "--val_size", "20",
                               "--epochs", "3", "--unplug_epoch", "1", "--batch_size", "8", "--width", "2",
                               "--augment"],
        "longer": ["--epochs", "30"],
        "nan_at_step": 9,  # 4 steps per epoch: the first step of epoch 3
        "bad": [(["--unplug_epoch", "-1"], "--unplug_epoch must be >= 0"),
                (["--cap", "nuclear"], "invalid choice"),
                (["--temperature", "0"], "--temperature must be > 0"),
                (["--max_norm", "-1"], "--max_norm must be > 0"),
                (["--train_size", "100"], "--train_size 100 is larger than the 40 train images"),
                (["--train_size", "1"], "--train_size 1 is smaller than the 10 classes")],
    },
    "rf_vit": {
        "smoke": lambda data: ["--preset", "cpu", "--data_dir", str(data["images"]), "--train_size", "30", "--val_size", "20",
                               "--epochs", "3", "--unplug_epoch", "1", "--batch_size", "8", "--num_layers", "1",
                               "--num_heads", "2", "--hidden_dim", "16", "--augment"],
        "longer": ["--epochs", "30"],
        "nan_at_step": 9,
        "bad": [(["--patch_size", "5"], "--image_size 16 must be a multiple of --patch_size 5"),
                (["--hidden_dim", "15"], "must be divisible by --num_heads"),
                (["--dataset", "imagenet100"], "apply to cifar10 and fashion_mnist only"),
                (["--workers", "-1"], "--workers must be >= 0"),
                (["--unplug_recipe", "later"], "invalid choice")],
    },
    "anti_grokking": {  # --loss ce: the divergence test injects its NaN through cross-entropy (MSE: test_anti_grokking)
        "smoke": lambda data: ["--preset", "cpu", "--data_dir", str(data["images"]), "--train_size", "40", "--val_size", "20",
                               "--steps", "30", "--eval_points", "5", "--batch_size", "8", "--width", "16",
                               "--loss", "ce"],
        "longer": ["--steps", "600", "--eval_points", "40"],
        "nan_at_step": 12,
        "bad": [(["--depth", "1"], "--depth must be >= 2"),
                (["--init_scale", "0"], "--init_scale must be > 0"),
                (["--batch_size", "41"], "--batch_size 41 is larger than --train_size 40"),
                (["--train_size", "100"], "--train_size 100 is larger than the 40 images of the train split"),
                (["--dataset", "cifar10"], "invalid choice"),
                (["--data_dir", "/nonexistent"], "dataset-fashion-mnist"),
                (["--dataset", "mnist", "--data_dir", "/nonexistent"], "torchvision.datasets.MNIST")],
    },
    "rf_bert": {  # a tiny BERT and tokenizer made in the tests, the made 5-class data set (conftest)
        "smoke": lambda data: ["--preset", "cpu", "--model_name", str(data["bert"]), "--data_dir", str(data["text"]),
                               "--train_subset", "0", "--freeze_layers", "0", "--max_length", "16", "--epochs", "3", "--unplug_epoch", "1",
                               "--batch_size", "8", "--features", "cls"],
        "longer": ["--epochs", "30"],
        "nan_at_step": 9,  # 5 steps per epoch: a step of epoch 2
        "bad": [(["--max_length", "1"], "--max_length must be >= 2"),
                (["--features", "last"], "invalid choice"),
                (["--dropout", "1"], "--dropout must be in [0, 1)"),
                (["--eval_batch_size", "0"], "--eval_batch_size must be >= 1"),
                (["--train_subset", "100"], "--train_subset 100 is larger than the 40 training rows"),
                (["--train_subset", "1"], "--train_subset 1 is smaller than the 5 classes"),
                (["--num_classes", "3"], "is outside 0..2; set --num_classes"),
                (["--data_dir", "/nonexistent"], "--data_dir /nonexistent is not a folder"),
                (["--model_name", "/nonexistent/tinybert"], "no such folder"),
                (["--freeze_layers", "-1"], "--freeze_layers must be >= 0"),
                (["--optimizer", "adam"], "invalid choice"),
                (["--eval_train_size", "-1"], "--eval_train_size must be >= 0")],
    },
    "rf_gpt2": {
        "smoke": lambda data: ["--preset", "cpu", "--model_name", str(data["gpt2"]), "--data_dir", str(data["text"]),
                               "--train_subset", "0", "--freeze_layers", "0", "--max_length", "16", "--epochs", "3", "--unplug_epoch", "1",
                               "--batch_size", "8", "--head_only"],
        "longer": ["--epochs", "30"],
        "nan_at_step": 9,
        "bad": [(["--features", "cls"], "unrecognized arguments"),
                (["--cap", "nuclear"], "invalid choice"),
                (["--lr_bump", "0"], "--lr_bump must be > 0"),
                (["--model_name", "./no/such/gpt2"], "no such folder")],
    },
}
COMMON_BAD = [(["--preset", "gpu"], "invalid choice"),
              (["--seed", "x"], "invalid int value"),
              (["--lr", "-1"], "--lr must be > 0"),
              (["--lr", "inf"], "--lr must be > 0 and finite"),
              (["--threads", "0"], "--threads must be >= 1"),
              (["--device", "gpu0"], "--device 'gpu0' is not a device name"),
              (["--no_such_flag"], "unrecognized arguments"),
              (["--tracker", "mlflow"], "--tracker 'mlflow': give none, tensorboard, wandb")]
if not torch.cuda.is_available():
    COMMON_BAD.append((["--device", "cuda"], "no CUDA device is available"))
NAMES = list(EXPERIMENTS)


def _flags(name, data, out_dir, *extra):
    return EXPERIMENTS[name]["smoke"](data) + QUIET + ["--out_dir", str(out_dir), *extra]


def _strip(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def documented_keys(name):
    """The keys of the '## Logged keys' table of <folder>/README.md (rows that start with | `key` |)."""
    text = (REPO / name / "README.md").read_text()
    section = text.split("## Logged keys", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M))


@pytest.fixture
def data(tiny_fashion_mnist, tiny_sst, tiny_text_models):
    """What the smoke flags read: the images folder, the text data folder and the text models' folders."""
    return {"images": tiny_fashion_mnist[0], "text": tiny_sst[0], **tiny_text_models}


def test_every_experiment_folder_is_covered():
    folders = {p.parent.name for p in REPO.glob("*/train.py")}
    assert folders == set(EXPERIMENTS)
    for name in folders:
        assert (REPO / name / "README.md").exists() and (REPO / name / "run_script.sh").exists()


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_logs_every_documented_key_and_a_rerun_is_a_noop(name, data, tmp_path, capsys):
    train = importlib.import_module(f"{name}.train")
    rows = train.main(_flags(name, data, tmp_path))
    run_dir = train.parse_args(_flags(name, data, tmp_path)).run_dir
    assert rows == read_metrics(run_dir / "metrics.jsonl") and (run_dir / "finished.json").exists()
    logged = set().union(*rows)
    documented = documented_keys(name)
    assert logged - documented == set(), "logged but not in the README's 'Logged keys' table"
    assert documented - logged == set(), "documented but not logged by the smoke run"
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})
    stored = json.loads((run_dir / "config.json").read_text())
    flags = _flags(name, data, tmp_path)  # paths outside the repository are recorded as <FLAG> placeholders
    expected = [f"<{flag[2:].upper()}>" if word.startswith("/") else word for flag, word in zip([""] + flags, flags)]
    assert stored["config"]["preset"] == "cpu" and stored["argv"][1:] == expected
    assert stored["experiment"] == name  # how common.plot and common.analysis find its plot.py
    assert "<OUT_DIR>" in expected
    capsys.readouterr()
    assert train.main(_flags(name, data, tmp_path)) == rows  # same return value when already finished
    assert "already finished" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_help_gives_every_key_its_meaning(name, capsys):
    train = importlib.import_module(f"{name}.train")
    with pytest.raises(SystemExit) as exc:
        train.main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for key, spec in train.KEYS.items():
        assert f"--{key}" in text and " ".join(spec.help.split()) in text, key


@pytest.mark.parametrize("name", NAMES)
def test_sigkilled_run_resumes_to_the_rows_of_an_uninterrupted_run(name, data, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    flags = EXPERIMENTS[name]["smoke"](data) + QUIET + EXPERIMENTS[name]["longer"]
    cmd = [sys.executable, "-m", f"{name}.train", *flags]
    subprocess.run(cmd + ["--out_dir", str(tmp_path / "ref")], env=env, check=True, capture_output=True)
    train = importlib.import_module(f"{name}.train")
    run = train.parse_args(flags + ["--out_dir", str(tmp_path / "run")]).run_dir
    reference = read_metrics(train.parse_args(flags + ["--out_dir", str(tmp_path / "ref")]).run_dir / "metrics.jsonl")
    proc = subprocess.Popen(cmd + ["--out_dir", str(tmp_path / "run")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a few rows (and checkpoints) exist, mid-run
        if (run / "metrics.jsonl").exists() and len(read_metrics(run / "metrics.jsonl")) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "finished.json").exists() and len(read_metrics(run / "metrics.jsonl")) < len(reference)
    subprocess.run(cmd + ["--out_dir", str(tmp_path / "run")], env=env, check=True, capture_output=True)
    assert _strip(read_metrics(run / "metrics.jsonl")) == _strip(reference)


@pytest.mark.parametrize("name, flags, message", [(n, f, m) for n in NAMES for f, m in COMMON_BAD + EXPERIMENTS[n]["bad"]])
def test_bad_flags_exit_2_with_one_line_and_write_nothing(name, flags, message, data, tmp_path, capsys):
    train = importlib.import_module(f"{name}.train")
    with pytest.raises(SystemExit) as exc:
        train.main(_flags(name, data, tmp_path / "out", *flags))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", NAMES)
def test_unwritable_out_dir_and_a_run_dir_of_another_config(name, data, tmp_path, capsys):
    train = importlib.import_module(f"{name}.train")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        train.main(_flags(name, data, blocker))
    assert exc.value.code == 2 and "writable --out_dir" in capsys.readouterr().err
    run_dir = train.parse_args(_flags(name, data, tmp_path / "out")).run_dir
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"config": {"seed": -1}}))
    with pytest.raises(SystemExit) as exc:
        train.main(_flags(name, data, tmp_path / "out"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "another config" in err


@pytest.mark.parametrize("name", NAMES)
def test_divergence_exits_1_keeps_the_last_good_checkpoint_and_resumes(name, data, tmp_path, capsys, monkeypatch):
    """A NaN training loss from step `nan_at_step` on (injected into cross-entropy, training calls only):
    the run stops with one line and exit 1 at the next check, its log ends at the last good checkpoint,
    and rerunning without the fault completes with the rows of a run that never diverged."""
    train = importlib.import_module(f"{name}.train")
    clean = train.main(_flags(name, data, tmp_path / "clean"))
    real, calls = torch.nn.functional.cross_entropy, []

    def failing(logits, *args, **kwargs):
        loss = real(logits, *args, **kwargs)
        if torch.is_grad_enabled() and logits.requires_grad:
            calls.append(1)
            if len(calls) >= EXPERIMENTS[name]["nan_at_step"]:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", failing)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        train.main(_flags(name, data, tmp_path / "run"))
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.count("\n") == 1 and "training diverged" in err and "checkpoint" in err
    run_dir = train.parse_args(_flags(name, data, tmp_path / "run")).run_dir
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert rows and len(rows) < len(clean) and _strip(rows) == _strip(clean[:len(rows)])
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", real)
    assert _strip(train.main(_flags(name, data, tmp_path / "run"))) == _strip(clean)
