"""Evaluation schedules, seeding and the one-line CLI errors."""

import subprocess
import sys

import pytest
import torch

from common import ArgumentParser, UsageError, entry_point, log_grid_epochs, log_spaced_steps, seed_everything


def test_log_grid_reproduces_the_original_620_points():
    # docs/original_code.md §2.4: 1e5 steps, 10 batches per epoch -> 620 logged steps 9, 19, ..., 99709.
    steps = [(e + 1) * 10 - 1 for e in log_grid_epochs(10_000)]
    assert len(steps) == 620
    assert steps[:4] == [9, 19, 29, 39]
    assert steps[-1] == 99_709
    epochs = log_grid_epochs(10_000)
    assert epochs[:200] == list(range(200))  # every epoch while int(1.01 e) <= e + 1
    assert epochs[200:203] == [200, 202, 204]  # int(1.01 * 200) = 202, int(1.01 * 202) = 204


def test_log_spaced_steps():
    steps = log_spaced_steps(4000, 100)
    assert steps[0] == 0 and steps[-1] == 4000
    assert steps == sorted(set(steps))
    assert 60 <= len(steps) <= 101
    ratios = [b / a for a, b in zip(steps[40:], steps[41:])]
    assert max(ratios) < 1.15  # geometric spacing in the tail (4000^(1/99) ~ 1.087)


def test_seed_everything_is_reproducible():
    seed_everything(3)
    a = torch.randn(5)
    seed_everything(3)
    assert torch.equal(a, torch.randn(5))


def test_parser_error_is_one_line_exit_2(capsys):
    parser = ArgumentParser(prog="train.py")
    parser.add_argument("--preset", choices=["paper", "cpu"])
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--preset", "gpu"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "invalid choice" in err


def test_entry_point_turns_usage_error_into_exit_2_without_traceback(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(
        "from common import UsageError, entry_point\n"
        "@entry_point\n"
        "def main(argv=None):\n"
        "    raise UsageError('--lr must be > 0, got -1')\n"
        "main()\n")
    from pathlib import Path
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr == "error: --lr must be > 0, got -1\n"


def test_entry_point_passes_results_through():
    @entry_point
    def main(argv=None):
        return argv

    assert main(["x"]) == ["x"]
    with pytest.raises(UsageError):
        raise UsageError("still a ValueError subclass")
