"""Run log, checkpoints and resume: a killed run neither loses nor duplicates a row."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from common import CheckpointError, RunLog, UsageError, load_checkpoint, load_runs, read_metrics, save_checkpoint

REPO = Path(__file__).resolve().parents[2]

# A tiny resumable training job: logs every step, checkpoints every 3 steps, and (if asked)
# SIGKILLs itself after writing half a row at step KILL_AT, i.e. between two checkpoints.
JOB = textwrap.dedent("""
    import os, signal, sys, torch
    from common import RunLog, seed_everything
    run_dir, steps, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seed_everything(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    log = RunLog(run_dir, {"steps": steps}, argv=sys.argv)
    state = log.resume(model, opt, sched)
    start = 0 if state is None else state["step"]
    for step in range(start, steps):
        x = torch.randn(8, 4)  # global RNG: must continue the same stream after resume
        loss = model(x).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if step == kill_at:
            log._file.write('{"step": %d, "loss": 0.12' % step)  # half a row, no newline
            log._file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        log.append({"step": step, "loss": loss, "lr": sched.get_last_lr()[0]})
        if (step + 1) % 3 == 0:
            log.save_checkpoint(step + 1, model, opt, sched)
    log.mark_finished({"steps": steps})
""")


def _run_job(tmp_path, run_dir, steps, kill_at):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(script), str(run_dir), str(steps), str(kill_at)],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kill_at", [1, 4, 8])
def test_kill_and_resume_gives_one_identical_row_per_step(tmp_path, kill_at):
    steps = 11
    reference = _run_job(tmp_path, tmp_path / "ref", steps, kill_at=-1)
    assert reference.returncode == 0, reference.stderr
    killed = _run_job(tmp_path, tmp_path / "run", steps, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "finished.json").exists()
    resumed = _run_job(tmp_path, tmp_path / "run", steps, kill_at=-1)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    ref_rows = read_metrics(tmp_path / "ref" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(steps))
    assert rows == ref_rows  # same losses and lr: model, optimizer, scheduler and RNG restored
    assert (tmp_path / "run" / "metrics.jsonl").read_text().endswith("\n")


def test_config_json_records_config_argv_and_versions(tmp_path):
    with RunLog(tmp_path / "r", {"lr": 1e-3, "sizes": (1, 2)}, argv=["--lr", "1e-3"], device="cpu") as log:
        log.append({"step": 0, "train_acc": torch.tensor(0.5)})
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["config"] == {"lr": 1e-3, "sizes": [1, 2]}
    assert record["argv"] == ["--lr", "1e-3"]
    assert record["torch_version"] == torch.__version__
    assert record["device"] == "cpu"
    assert "git_commit" in record
    assert read_metrics(tmp_path / "r" / "metrics.jsonl") == [{"step": 0, "train_acc": 0.5}]


def test_conflicting_config_is_a_usage_error(tmp_path):
    RunLog(tmp_path / "r", {"lr": 1e-3, "out_dir": "a"}).close()
    with pytest.raises(UsageError, match=r"lr: 0.001 -> 0.01"):
        RunLog(tmp_path / "r", {"lr": 1e-2, "out_dir": "a"})
    RunLog(tmp_path / "r", {"lr": 1e-3, "out_dir": "b"}, ignore=("out_dir",)).close()


def test_unwritable_run_dir_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match="choose a writable --out_dir"):
        RunLog(blocker / "run", {})


def test_truncated_or_garbage_checkpoint_is_a_clear_error(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    log = RunLog(tmp_path / "r", {})
    log.save_checkpoint(5, model, opt)
    data = log.checkpoint_path.read_bytes()
    log.checkpoint_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable.*delete it"):
        log.resume(model, opt)
    log.checkpoint_path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        log.resume(model, opt)
    torch.save({"no": "step"}, log.checkpoint_path)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(log.checkpoint_path)


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"step": 1})

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # a kill during the write

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_fresh_resume_empties_a_log_without_checkpoint(tmp_path):
    log = RunLog(tmp_path / "r", {})
    log.append({"step": 0})
    model = torch.nn.Linear(2, 2)
    assert log.resume(model, torch.optim.SGD(model.parameters(), lr=1)) is None
    assert log.rows() == []


def test_read_metrics_skips_a_half_written_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"step": 2, "lo')
    assert read_metrics(path) == [{"step": 0}, {"step": 1}]


def test_load_runs_joins_config_columns(tmp_path):
    for seed in (1, 2):
        with RunLog(tmp_path / "exp" / f"seed_{seed}", {"seed": seed, "lr": 0.1}) as log:
            for step in range(3):
                log.append({"step": step, "lr": 0.1 * step, "val_acc": seed * step})
    frame = load_runs(tmp_path)
    assert len(frame) == 6
    assert sorted(frame["run_dir"].unique()) == ["exp/seed_1", "exp/seed_2"]
    seed2 = frame[frame["seed"] == 2].sort_values("step")
    assert seed2["val_acc"].tolist() == [0, 2, 4]
    assert seed2["lr"].tolist() == [0.0, 0.1, 0.2]  # the metric column wins over the config key
    assert load_runs(tmp_path / "nothing").empty


def test_the_experiment_of_a_run_is_recorded_or_read_from_its_program(tmp_path):
    """config.json names the experiment; a log from before the field is read by its argv[0] folder."""
    import json

    from common.plumbing.runlog import experiment_of

    log = RunLog(tmp_path / "a", {"seed": 0}, argv=["x"], experiment="my_experiment")
    log.append({"step": 0, "loss": 1.0})
    log.close()
    assert json.loads((tmp_path / "a" / "config.json").read_text())["experiment"] == "my_experiment"
    log = RunLog(tmp_path / "b", {"seed": 0}, argv=["some_folder/train.py", "--seed", "0"])
    log.append({"step": 0, "loss": 1.0})
    log.close()
    assert json.loads((tmp_path / "b" / "config.json").read_text())["experiment"] == "some_folder"
    assert experiment_of({"argv": ["grokking_nc_rf/train.py", "--preset", "cpu"]}) == "grokking_nc_rf"
    assert experiment_of({"argv": ["<PATH>", "--preset", "cpu"]}) is None
    assert experiment_of({"experiment": "rf_vit", "argv": ["grokking_nc_rf/train.py"]}) == "rf_vit"
    assert sorted(load_runs(tmp_path)["experiment"]) == ["my_experiment", "some_folder"]
