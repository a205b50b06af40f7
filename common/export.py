"""Run folders as TensorBoard logs: our committed runs beside your own, in the tool you already watch.

    python -m common.export --tensorboard . tensorboard_runs        # every run below the repository (figures/, runs/)
    python -m common.export --tensorboard runs tensorboard_runs     # your own runs
    tensorboard --logdir tensorboard_runs

Each run folder (config.json + metrics.jsonl) below RUNS_DIR becomes OUT_DIR/<its relative path>/tensorboard,
the log `--tracker tensorboard` writes while a run trains (common.plumbing.trackers): every logged key at the
row's step (epoch-based experiments: epoch), lists as histograms, the config as hyperparameters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .plumbing.cli import ArgumentParser, UsageError, entry_point
from .plumbing.runlog import read_metrics
from .plumbing.trackers import TensorBoardLog, parse_trackers, x_axis

__all__ = ["export_tensorboard", "main"]


def export_tensorboard(runs_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Every run folder below `runs_dir` (config.json + metrics.jsonl; the committed ones under each figures/
    included) as a TensorBoard log under `out_dir`, at the same relative path: what `--tracker tensorboard`
    would have written. An earlier export of a run is replaced. Returns the folders written."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    written = []
    for metrics in sorted(runs_dir.rglob("metrics.jsonl")):
        config_path = metrics.with_name("config.json")
        if not config_path.exists() or out_dir.resolve() in metrics.resolve().parents:
            continue
        config = json.loads(config_path.read_text()).get("config", {})
        target = out_dir / metrics.parent.relative_to(runs_dir)
        for old in target.glob("tensorboard/events.out.tfevents.*"):
            old.unlink()
        log = TensorBoardLog(target, config, None)
        x_key = x_axis(config)
        for row in read_metrics(metrics):
            log.log(row, row.get(x_key, 0))
        log.close()
        written.append(target / "tensorboard")
    return written


@entry_point
def main(argv=None):
    parser = ArgumentParser(prog="python -m common.export", description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--tensorboard", nargs=2, metavar=("RUNS_DIR", "OUT_DIR"), required=True,
                        help="export every run folder below RUNS_DIR as TensorBoard logs under OUT_DIR")
    args = parser.parse_args(argv)
    runs_dir, out_dir = (Path(p) for p in args.tensorboard)
    if not runs_dir.is_dir():
        raise UsageError(f"{runs_dir} is not a folder; give the folder that holds the run folders (e.g. runs, or .)")
    parse_trackers("tensorboard")  # the package, or one line saying how to get it
    written = export_tensorboard(runs_dir, out_dir)
    if not written:
        raise UsageError(f"no run folder (config.json and metrics.jsonl) below {runs_dir}")
    print(f"{len(written)} runs written to {out_dir}; view them with: tensorboard --logdir {out_dir}")
    return written


if __name__ == "__main__":
    main()
