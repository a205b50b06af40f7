"""Every logged row, also where researchers watch training: TensorBoard and Weights & Biases (`--tracker`).

`metrics.jsonl` stays the source of truth; a tracker mirrors it. `RunLog` hands a tracker the rows that a
checkpoint has made safe (the rows written before it) and records, per tracker, how many it has durably
sent (<run_dir>/trackers_sent.json), so a killed and resumed run loses no row and sends none twice: rows
written after the last checkpoint are cut from metrics.jsonl on resume, written again and only then sent;
rows checkpointed but not yet sent are sent by the resumed run. TensorBoard also reopens its log with
`purge_step` (events at or after the first row the resumed run sends are dropped). Same key names as metrics.jsonl; x axis the row's "epoch" for the
epoch-based experiments (the config has "epochs"), its "step" otherwise; lists (the class-mean angles) as
histograms; the config as hyperparameters.

- tensorboard: event files in <run_dir>/tensorboard (`tensorboard --logdir OUT_DIR` shows every run below).
- wandb: one W&B run per run folder, its id kept in <run_dir>/wandb_id.txt; online, a resumed run continues
  the same W&B run (resume="allow"). W&B's service writes a process's rows when the process ends, so a killed
  process loses them: a resumed run sends W&B every row since the last process that finished (online, W&B
  drops the steps it already has). Offline (WANDB_MODE=offline) W&B cannot resume a run: each process makes
  its own offline run folder under <run_dir>/wandb (same id; `wandb sync` uploads them), a killed one's
  empty, the resumed one's holding the rows it sent. Never prompts for a login: without one, online mode is
  a one-line error before anything is written.

Packages: `pip install -r requirements-trackers.txt` (not in the core install).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import secrets
from pathlib import Path

from .cli import UsageError

__all__ = ["TRACKERS", "parse_trackers", "open_trackers", "Trackers", "TensorBoardLog", "x_axis"]

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # name -> the package it needs


def parse_trackers(value: str) -> tuple[str, ...]:
    """The --tracker value ("none", "tensorboard", "wandb" or several, comma-separated) as names; a bad name
    or a tracker whose package is missing is a UsageError (before anything is written)."""
    names = [name.strip() for name in str(value).split(",") if name.strip()]
    unknown = [name for name in names if name not in (*TRACKERS, "none")]
    if unknown or not names or ("none" in names and len(names) > 1) or len(set(names)) != len(names):
        raise UsageError(f"--tracker {value!r}: give none, tensorboard, wandb, or several of the last two "
                         f"comma-separated (tensorboard,wandb)")
    names = [name for name in names if name != "none"]
    for name in names:
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise UsageError(f"--tracker {name} needs the {TRACKERS[name]} package: pip install -r "
                             f"requirements-trackers.txt")
    if "wandb" in names and os.environ.get("WANDB_MODE", "online") not in ("offline", "dryrun", "disabled") \
            and not _wandb_login():
        raise UsageError("--tracker wandb: no W&B login here (WANDB_API_KEY, or `wandb login`'s entry in ~/.netrc); "
                         "log in, or run with WANDB_MODE=offline and `wandb sync` the run folders later")
    return tuple(names)


def _wandb_login() -> bool:
    """Whether W&B has an API key without asking for one: WANDB_API_KEY, or the netrc entry `wandb login` writes."""
    import netrc
    from urllib.parse import urlparse

    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def x_axis(config: dict) -> str:
    """The row key a tracker plots against: "epoch" for the epoch-based experiments (their config has "epochs"),
    "step" for the step-based ones."""
    return "epoch" if "epochs" in config else "step"


def _scalars_and_lists(row: dict) -> tuple[dict[str, float], dict[str, list]]:
    scalars, lists = {}, {}
    for key, value in row.items():
        if isinstance(value, bool):
            scalars[key] = float(value)
        elif isinstance(value, (int, float)):
            scalars[key] = float(value)
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            lists[key] = value
    return scalars, lists


def _hparam(value):
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)


class TensorBoardLog:
    """A TensorBoard log in <run_dir>/tensorboard (`log(row, x)`, `close()`); with `resume_x`, the x of the last
    row an earlier process sent, events after it are purged."""

    def __init__(self, run_dir: Path, config: dict, resume_x: float | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard drops an earlier process's events at or after the first x the resumed run
        # writes. It takes the first session start of a log as the log's beginning, so a new log starts one too.
        purge = 0 if resume_x is None else math.floor(resume_x) + 1
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)
        if resume_x is None:  # the config once, as the hparams plugin's table
            from torch.utils.tensorboard.summary import hparams

            for summary in hparams({k: _hparam(v) for k, v in config.items()}, {}):
                self.writer.file_writer.add_summary(summary)

    def log(self, row: dict, x: float) -> None:
        scalars, lists = _scalars_and_lists(row)
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, x, new_style=True, double_precision=True)  # float64: metrics.jsonl's
        for key, value in lists.items():
            import numpy as np

            self.writer.add_histogram(key, np.asarray(value, dtype=np.float64), x)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class _WandB:
    def __init__(self, run_dir: Path, config: dict, name: str) -> None:
        import wandb

        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)  # W&B ids: [a-z0-9]
        id_file.write_text(run_id + "\n")
        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "flatness-nc"), dir=str(run_dir), id=run_id,
                                  resume="allow", name=name, config=config, reinit="create_new",
                                  settings=wandb.Settings(console="off", silent=True))
        except Exception as err:  # noqa: BLE001: no login, no network: say what to do, on one line
            raise UsageError(f"--tracker wandb: {(str(err).strip().splitlines() or [type(err).__name__])[0][:160]}; "
                             f"log in with `wandb login`, or run with WANDB_MODE=offline") from err

    def log(self, row: dict, x: float) -> None:
        scalars, lists = _scalars_and_lists(row)
        import wandb

        self.run.log({**scalars, **{k: wandb.Histogram(v) for k, v in lists.items()}}, step=int(x))

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """The trackers of one run folder. `log(rows)` sends each tracker the rows of metrics.jsonl it has not had;
    `sent()` says, per tracker, how many rows are durably sent (TensorBoard: once written; W&B: once its run has
    finished, as its service writes and uploads when the process ends, and a killed process loses what it
    held); `close()` flushes. See the module docstring."""

    def __init__(self, names: tuple[str, ...], run_dir: Path, config: dict, sent: dict[str, int], rows: list[dict],
                 name: str) -> None:
        self.x_key = x_axis(config)
        self.done = {n: min(int(sent.get(n, 0)), len(rows)) for n in names}  # durable
        self.given = dict(self.done)  # handed over by this process
        self.open = {}
        for n in names:
            kept = rows[:self.done[n]]
            self.open[n] = (TensorBoardLog(run_dir, config, kept[-1].get(self.x_key) if kept else None)
                            if n == "tensorboard" else _WandB(run_dir, config, name))

    def log(self, rows: list[dict]) -> None:
        for n, tracker in self.open.items():
            for row in rows[self.given[n]:]:
                tracker.log(row, row.get(self.x_key, 0))
            self.given[n] = len(rows)
            if n == "tensorboard":
                tracker.writer.flush()
                self.done[n] = len(rows)

    def sent(self) -> dict[str, int]:
        return dict(self.done)

    def close(self) -> None:
        for n, tracker in self.open.items():
            tracker.close()
            self.done[n] = self.given[n]
        self.open = {}


def open_trackers(names: tuple[str, ...], run_dir: Path, config: dict, sent: dict[str, int], rows: list[dict],
                  name: str) -> Trackers | None:
    """Trackers for a run folder whose metrics.jsonl holds `rows`, of which `sent[tracker]` were sent before (by
    an earlier process: a resumed run), or None without --tracker."""
    if not names:
        return None
    return Trackers(names, Path(run_dir), config, sent, rows, name)
