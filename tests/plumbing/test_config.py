"""common.plumbing.config: every experiment's command line (keys, presets, booleans, devices, rules, run folder)."""

import math
from pathlib import Path

import pytest
import torch

from common import Diverged, Key, UsageError, entry_point, epoch_generator, parse
from common.plumbing.config import command_line

KEYS = {"seed": Key(42, "model seed"),
        "lr": Key(0.1, "learning rate"),
        "mode": Key("a", "which mode", choices=("a", "b")),
        "augment": Key(False, "augment the data"),
        "size": Key(None, "a size", type=int)}
PRESETS = {"paper": {}, "cpu": {"lr": 1.0, "augment": True}}
RULES = [("lr", (lambda v: 0 < v < math.inf, "> 0 and finite"))]


def _parse(*argv, **kw):
    return parse(list(argv), "exp", "The doc line.\n\nMore.", KEYS, PRESETS, RULES, **kw)


def test_presets_change_only_what_they_list_and_the_folder_names_what_the_command_changed(tmp_path):
    run = _parse("--out_dir", str(tmp_path))
    assert run.config == {"seed": 42, "lr": 0.1, "mode": "a", "augment": False, "size": None, "preset": "paper"}
    assert run.run_dir == tmp_path / "exp" / "paper" / "seed_42"
    run = _parse("--preset", "cpu", "--seed", "3", "--mode", "b", "--lr", "1.0", "--out_dir", str(tmp_path))
    assert run.config["lr"] == 1.0 and run.config["augment"] is True
    # --lr 1.0 equals the preset's value and the seed has its own level: neither is in the name
    assert run.run_dir == tmp_path / "exp" / "cpu_modeb" / "seed_3"


def test_boolean_keys_switch_both_ways():
    assert _parse("--augment").config["augment"] is True
    assert _parse("--preset", "cpu", "--no_augment").config["augment"] is False
    assert _parse("--preset", "cpu", "--no_augment").run_dir.parent.name == "cpu_augmentFalse"
    with pytest.raises(SystemExit) as exc:
        _parse("--augment", "--no_augment")
    assert exc.value.code == 2


def test_devices_and_threads():
    assert _parse("--device", "cpu").device == torch.device("cpu")
    assert _parse().device == torch.device("cuda" if torch.cuda.is_available() else "cpu")  # auto
    with pytest.raises(UsageError, match="not a device name"):
        _parse("--device", "gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device is available here; use --device cpu"):
            _parse("--device", "cuda:0")
    with pytest.raises(UsageError, match="--threads must be >= 1, got 0"):
        _parse("--threads", "0")


def test_rules_options_and_combination_checks():
    with pytest.raises(UsageError, match=r"--lr must be > 0 and finite, got -1.0"):
        _parse("--lr", "-1")
    run = _parse("--data_dir", "x", options={"data_dir": Key("data", "where the data are")})
    assert run.args.data_dir == "x" and "data_dir" not in run.config and run.run_dir.parent.name == "paper"

    def check(config, args):
        if config["mode"] == "b" and config["size"] is None:
            raise UsageError("--mode b needs --size")
    with pytest.raises(UsageError, match="--mode b needs --size"):
        _parse("--mode", "b", check=check)
    assert _parse("--mode", "b", "--size", "3", check=check).config["size"] == 3


def test_help_gives_meaning_default_and_preset_values(capsys):
    with pytest.raises(SystemExit) as exc:
        _parse("--help")
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "The doc line." in text and "More." not in text
    assert "--lr LR learning rate [default 0.1; cpu: 1.0]" in text
    assert "--augment augment the data [default False; cpu: True]" in text
    assert "--no_augment" not in text  # the off switch is listed once, not per key
    assert "--device DEVICE cpu, cuda, cuda:N, mps, or auto" in text


def test_diverged_exits_1_with_one_line(capsys):
    @entry_point
    def main(argv=None):
        raise Diverged("loss nan at step 3; the last good checkpoint is kept in X")

    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 1
    assert capsys.readouterr().err == "error: training diverged: loss nan at step 3; the last good checkpoint is kept in X\n"


def test_epoch_generator_depends_on_seed_and_epoch_only():
    draw = lambda seed, epoch: torch.randperm(50, generator=epoch_generator(seed, epoch))  # noqa: E731
    assert torch.equal(draw(1, 2), draw(1, 2))
    assert not torch.equal(draw(1, 2), draw(1, 3)) and not torch.equal(draw(1, 2), draw(2, 2))
    assert torch.equal(draw(1, 2), torch.randperm(50, generator=torch.Generator().manual_seed(1 * 1_000_003 + 2)))


def test_command_line_names_no_folder_of_the_machine(tmp_path, monkeypatch):
    repo = Path(__file__).resolve().parents[2]  # found independently of common.plumbing.config's REPO_ROOT
    monkeypatch.setattr("sys.argv", [str(repo / "rf_bert" / "train.py"), "--seed", "1"])
    outside = str(tmp_path / "data")
    argv = ["--data_dir", str(repo / "data" / "movie_snippets"), f"--model_name={repo / 'models' / 'm'}",
            "--out_dir", outside, "--lr", "-1", "runs/x", f"--tokenizer={outside}", outside]
    assert command_line(argv) == ["rf_bert/train.py", "--data_dir", "data/movie_snippets", "--model_name=models/m",
                                  "--out_dir", "<OUT_DIR>", "--lr", "-1", "runs/x", "--tokenizer=<TOKENIZER>",
                                  "<PATH>"]
    assert not any(outside in word for word in command_line(argv))
    assert command_line(None) == ["rf_bert/train.py", "--seed", "1"]
