"""Run directories: config.json, metrics.jsonl, checkpoint.pt, and the reader `load_runs`.

    <run_dir>/
        config.json     # {"config": resolved config, "argv", "git_commit", "versions", "device", "environment"}
        metrics.jsonl   # one JSON object per evaluation, flushed after every row
        checkpoint.pt   # model, optimizer, scheduler, RNG states, step, log offset (atomic)
        finished.json   # written when the run completed; a rerun is then a no-op
        tensorboard/, wandb/, wandb_id.txt, trackers_sent.json   # with --tracker (common.plumbing.trackers)

Resume protocol: a checkpoint records the byte length of metrics.jsonl when it was written.
On resume the log is truncated back to that length, so rows written after the checkpoint (and a
half-written last row) are dropped and written again by the resumed run: no row is lost or doubled.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import REPO_ROOT
from .cli import UsageError
from .seeding import environment, get_rng_state, set_rng_state

__all__ = ["RunLog", "load_runs", "read_metrics", "git_commit", "experiment_of"]


def git_commit() -> str | None:
    """Commit hash of the repository holding this file, with '-dirty' for uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        return value.item()
    return value


def _differences(old: dict, new: dict, ignore: tuple[str, ...]) -> list[str]:
    keys = sorted((set(old) | set(new)) - set(ignore))
    return [f"{k}: {old.get(k, '<missing>')!r} -> {new.get(k, '<missing>')!r}"
            for k in keys if old.get(k, "<missing>") != new.get(k, "<missing>")]


class RunLog:
    """Writer for one run directory.

    Args:
        run_dir: the run's folder, created if needed.
        config: the resolved configuration (flag = key); stored in config.json.
        argv: the command line, stored for reproduction.
        device: where the run computes, stored.
        ignore: config keys allowed to differ when an existing run directory is reused
            (e.g. "out_dir"); any other difference raises UsageError.
        world_size: processes of a torchrun launch (stored; only rank 0 writes a RunLog).
        experiment: the experiment folder that made the run (stored; `python -m common.plot` finds the run's
            figures in <experiment>/plot.py by it); None: the folder of the program in argv.
        trackers: --tracker's names (common.plumbing.trackers): every row is also sent there, once a
            checkpoint (or the end of the run) has made it safe, so a resumed run sends no row twice.
    """

    def __init__(self, run_dir: str | os.PathLike, config: dict, argv: list[str] | None = None,
                 device: str | None = None, ignore: tuple[str, ...] = (), world_size: int = 1,
                 experiment: str | None = None, trackers: tuple[str, ...] = ()) -> None:
        self.run_dir = Path(run_dir)
        # the trackers, opened at the first send, and the log's rows as they know them (read once, then appended)
        self._tracker_names, self._trackers, self._tracked_rows = tuple(trackers), None, None
        self.config = _jsonable(config)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write_test"
            probe.touch()
            probe.unlink()
        except OSError as err:
            raise UsageError(f"cannot write to {self.run_dir} ({err.strerror}); choose a writable --out_dir") from err
        if self.config_path.exists():
            stored = json.loads(self.config_path.read_text())["config"]
            diff = _differences(stored, self.config, ignore)
            if diff:
                raise UsageError(f"{self.run_dir} holds a run with another config ({'; '.join(diff)}); "
                                 f"use another --out_dir or delete that folder")
        else:
            argv = list(argv) if argv is not None else sys.argv
            record = {"experiment": experiment or experiment_of({"argv": argv}), "config": self.config, "argv": argv,
                      "git_commit": git_commit(), "torch_version": torch.__version__,
                      "python_version": platform.python_version(), "platform": platform.platform(),
                      "device": str(device) if device is not None else None, "world_size": world_size,
                      "environment": environment(device)}
            tmp = self.config_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(record, indent=2) + "\n")
            os.replace(tmp, self.config_path)
        self._file = open(self.metrics_path, "a", encoding="utf-8")
        self._experiment = experiment

    config_path = property(lambda self: self.run_dir / "config.json")
    metrics_path = property(lambda self: self.run_dir / "metrics.jsonl")
    checkpoint_path = property(lambda self: self.run_dir / "checkpoint.pt")
    finished_path = property(lambda self: self.run_dir / "finished.json")

    @property
    def offset(self) -> int:
        """Byte length of metrics.jsonl: the log position a checkpoint records."""
        self._file.flush()
        return self._file.tell()

    def append(self, row: dict) -> None:
        """Write one metrics row (tensors become floats) and flush it to disk."""
        line = json.dumps(_jsonable(row))
        self._file.write(line + "\n")
        self._file.flush()
        if self._tracked_rows is not None:
            self._tracked_rows.append(json.loads(line))  # as metrics.jsonl holds it

    def send_to_trackers(self) -> None:
        """Send the --tracker trackers the rows that a checkpoint (or the run's end) has made safe and that they
        have not had, then record per tracker how many rows are durably sent (<run_dir>/trackers_sent.json;
        common.plumbing.trackers). Opened at the first call of a process: a resumed run first sends the kept
        rows its predecessor did not get to send."""
        if not self._tracker_names:
            return
        if self._tracked_rows is None:
            self._tracked_rows = self.rows()
        rows = self._tracked_rows
        if self._trackers is None:
            from .trackers import open_trackers

            sent = json.loads(self._sent_path.read_text()) if self._sent_path.exists() else {}
            experiment = self._experiment or experiment_of(json.loads(self.config_path.read_text()))
            self._trackers = open_trackers(self._tracker_names, self.run_dir, self.config, sent, rows,
                                           f"{experiment}/{self.run_dir.parent.name}/{self.run_dir.name}")
        self._trackers.log(rows)
        self._record_sent()

    _sent_path = property(lambda self: self.run_dir / "trackers_sent.json")

    def _record_sent(self) -> None:
        old = json.loads(self._sent_path.read_text()) if self._sent_path.exists() else {}
        tmp = self._sent_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**old, **self._trackers.sent()}) + "\n")
        os.replace(tmp, self._sent_path)

    def truncate(self, offset: int) -> None:
        """Cut metrics.jsonl back to `offset` bytes (drops rows written after a checkpoint)."""
        self._file.flush()
        self._file.truncate(offset)
        self._file.seek(offset)
        self._tracked_rows = None

    def rows(self) -> list[dict]:
        """The rows written so far."""
        self._file.flush()
        return read_metrics(self.metrics_path)

    def rows_and_close(self) -> list[dict]:
        """The rows written, then close the log: what every train.py's `main` returns."""
        rows = self.rows()
        self.close()
        return rows

    # Checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any = None, **extra: Any) -> dict:
        """Atomically save model, optimizer, scheduler, all RNG states, `step`, the log offset and
        `extra` (anything picklable); returns the saved dict. Then the rows it covers go to the trackers."""
        state = {"step": step, "log_offset": self.offset, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "rng": get_rng_state(), "extra": extra,
                 "scheduler": scheduler.state_dict() if scheduler is not None else None}
        save_checkpoint(self.checkpoint_path, state)
        self.send_to_trackers()
        return state

    def start(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
              map_location: str | torch.device = "cpu", unit: str = "epoch") -> dict | None:
        """Where a train.py's loop begins: None when the run has finished (nothing to do; the caller returns
        `rows_and_close()`), else the checkpoint resumed by `resume` or {"step": 0, "extra": {}} for a new
        run. Prints one line saying which."""
        if self.finished:
            print(f"{self.run_dir}: already finished; nothing to do")
            return None
        state = self.resume(model, optimizer, scheduler, map_location=map_location)
        if state is None:
            print(f"{self.run_dir}: new run")
            return {"step": 0, "extra": {}}
        print(f"{self.run_dir}: resuming after {unit} {state['step']}")
        return state

    def resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
               map_location: str | torch.device = "cpu") -> dict | None:
        """Restore the last checkpoint into model/optimizer/scheduler and the global RNGs, and truncate
        the log to it. Returns the checkpoint dict (with "step" and "extra"), or None for a fresh run
        (the log is then emptied). A damaged checkpoint raises CheckpointError.
        """
        if not self.checkpoint_path.exists():
            self.truncate(0)
            return None
        state = load_checkpoint(self.checkpoint_path, map_location=map_location)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.truncate(state["log_offset"])
        return state

    # Completion --------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.finished_path.exists()

    def mark_finished(self, summary: dict | None = None) -> None:
        """Record that the run completed (with an optional summary); reruns become no-ops."""
        self.send_to_trackers()
        tmp = self.finished_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(_jsonable(summary or {}), indent=2) + "\n")
        os.replace(tmp, self.finished_path)

    def close(self) -> None:
        """Close metrics.jsonl and the trackers (rows written after the last checkpoint are not sent: a resumed
        run writes them again)."""
        self._file.close()
        if self._trackers is not None:
            self._trackers.close()
            self._record_sent()
            self._trackers = None

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Rows of a metrics.jsonl; a half-written last line (a run killed mid-write) is skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            rows.append(json.loads(line))
    return rows


def experiment_of(record: dict) -> str | None:
    """The experiment of a run from its config.json record: its "experiment" field, or for a log written before
    the field existed the folder of the program it ran (argv[0] = "<experiment>/train.py"); None if neither."""
    if record.get("experiment"):
        return record["experiment"]
    program = Path(str((record.get("argv") or [""])[0]))
    return program.parent.name or None if program.name == "train.py" else None


def load_runs(root: str | os.PathLike):
    """Every run under `root` as one long pandas DataFrame: one row per logged evaluation.

    Columns: the metrics keys, then each config key that is not also a metrics key (a metric such as
    the current `lr` wins over the configured one), `experiment` (`experiment_of` its config.json) and
    `run_dir` (relative to root).
    Returns an empty DataFrame when no metrics.jsonl is found.
    """
    import pandas as pd

    root = Path(root)
    frames = []
    for metrics_path in sorted(root.rglob("metrics.jsonl")):
        rows = read_metrics(metrics_path)
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        config_path = metrics_path.with_name("config.json")
        record = json.loads(config_path.read_text()) if config_path.exists() else {}
        config = record.get("config", {})
        for key, value in config.items():
            if key not in frame.columns:
                frame[key] = [value] * len(frame) if isinstance(value, (list, dict)) else value
        frame["experiment"] = experiment_of(record)
        frame["run_dir"] = str(metrics_path.parent.relative_to(root))
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
