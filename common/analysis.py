"""Onset tables: when each logged signal crosses a threshold or peaks, per run and over seeds, and its lead or
lag against the rise of validation accuracy.

    python -m common.analysis RUNS_DIR                      # every run under RUNS_DIR; the events of its experiment
    python -m common.analysis RUNS_DIR --events generic     # peak and trough of every logged metric
    python -m common.analysis RUNS_DIR --smooth 1 --out DIR # raw values; onsets.csv / onsets.md to DIR

An event is found on the curve of one run (its evaluations in step order). Peaks, troughs and threshold
crossings are read from the running median of `smooth` consecutive evaluations (3 by default: an
evaluation and its two neighbours; the first and last evaluation keep their values), so one evaluation that spikes (the one-evaluation loss spikes of the
grokking runs after memorisation) can neither be a peak nor cross a threshold; an event may also be
sought only after or before another event of the same run (its phase). The reference is the rise of
validation accuracy: the first evaluation at which it has covered half of the way from its initial value
to its highest. Each event's lag is its step minus the reference's (negative: it comes first).
Over the seeds of a run group: mean +- std and a 95% percentile-bootstrap interval of the mean
(10,000 resamples of the seeds; with 3 seeds it is coarse, and it is given only when every seed has the event).

Experiments declare their events as `EVENTS` in their plot module (<experiment>/plot.py); the runs' config.json
names their experiment (older logs: the folder of the program in argv), or --events names one. Runs of an
experiment that declares none get the generic events.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .plumbing.cli import UsageError, entry_point
from .plumbing.tables import markdown_table
from .plumbing.runlog import load_runs

__all__ = ["Event", "REFERENCE", "find_event", "onsets", "onset_table", "summary", "generic_events", "events_of", "experiments_in",
           "declared", "main"]

@dataclass(frozen=True)
class Event:
    """One event of a curve.

    kind: "max" / "min" (the step of the highest / lowest value), "above" / "below" (the first step at or
        above / below `threshold`), "rise" (the first step that has covered `threshold` of the way from the
        initial value to the highest, e.g. 0.5 for the midpoint of a rise).
    relative: for "above" / "below", the threshold is a multiple of the curve's "initial" or "peak" value.
    after / before: names of other events of the same run; only evaluations after (before, inclusive) them
        count. An event whose phase event did not happen is not reached either.
    """

    name: str
    metric: str
    kind: str
    threshold: float | None = None
    relative: str | None = None
    after: str | None = None
    before: str | None = None

    def __post_init__(self):
        if self.kind not in ("max", "min", "above", "below", "rise"):
            raise ValueError(f"unknown event kind {self.kind!r}")
        if self.kind in ("above", "below", "rise") and self.threshold is None:
            raise ValueError(f"event {self.name!r} of kind {self.kind} needs a threshold")
        if self.relative not in (None, "initial", "peak"):
            raise ValueError(f"relative must be 'initial' or 'peak', got {self.relative!r}")


REFERENCE = Event("val_acc rise (half-way)", "val_acc", "rise", 0.5)


def smoothed(values: np.ndarray, window: int) -> np.ndarray:
    """Running median of `window` consecutive values, centred; the first and last window // 2 values are
    kept as they are (the initial value is the one at initialisation)."""
    values = values.astype(float)
    half = window // 2
    if half == 0 or len(values) <= 2 * half:
        return values
    out = values.copy()
    windows = np.lib.stride_tricks.sliding_window_view(values, 2 * half + 1)
    out[half:len(values) - half] = np.nanmedian(windows, axis=1)
    return out


def find_event(steps: np.ndarray, values: np.ndarray, event: Event, lower: float = -np.inf,
               upper: float = np.inf) -> float:
    """The step of `event` on one (already smoothed) curve, searched among steps in (lower, upper]; NaN if
    it does not happen. `values` at the initial step and the peak are taken over the whole curve."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.nan
    window = finite & (steps > lower) & (steps <= upper)
    if not window.any():
        return np.nan
    if event.kind in ("max", "min"):
        masked = np.where(window, values, -np.inf if event.kind == "max" else np.inf)
        return float(steps[np.argmax(masked) if event.kind == "max" else np.argmin(masked)])
    threshold = event.threshold
    if event.relative == "initial":
        threshold *= values[finite][0]
    elif event.relative == "peak":
        threshold *= np.nanmax(values)
    if event.kind == "rise":
        start = values[finite][0]
        if not np.nanmax(values) > start:  # a curve that never rises has no rise
            return np.nan
        threshold = start + event.threshold * (np.nanmax(values) - start)
        hits = window & (values >= threshold)
    else:
        hits = window & (values >= threshold if event.kind == "above" else values <= threshold)
    return float(steps[np.argmax(hits)]) if hits.any() else np.nan


def onsets(run, events: list[Event], smooth: int = 3, x: str = "step") -> dict[str, float]:
    """{event name: step} for one run (a DataFrame of its rows), events in order (a phase names an earlier
    event or the reference). Metrics the run did not log give NaN."""
    run = run.sort_values(x)
    steps = run[x].to_numpy(dtype=float)
    found = {}
    for event in [REFERENCE, *events]:
        if event.metric not in run:
            found[event.name] = np.nan
            continue
        lower = found.get(event.after, np.nan) if event.after else -np.inf
        upper = found.get(event.before, np.nan) if event.before else np.inf
        if np.isnan(lower) or np.isnan(upper):
            found[event.name] = np.nan
            continue
        values = smoothed(run[event.metric].to_numpy(dtype=float), smooth)
        found[event.name] = find_event(steps, values, event, lower, upper)
    return found


def onset_table(frame, events: list[Event], smooth: int = 3, x: str = "step"):
    """One row per run (run group, seed): each event's step (events whose metric none of the runs logged
    are left out). Returns a DataFrame indexed by (group, seed)."""
    import pandas as pd

    events = [e for e in events if e.metric in frame and frame[e.metric].notna().any()]
    frame = frame.assign(group=frame["run_dir"].map(lambda p: str(Path(p).parent)))
    rows = {}
    for (group, run_dir), run in frame.groupby(["group", "run_dir"], sort=True):
        seed = run["seed"].iloc[0] if "seed" in run else Path(run_dir).name
        rows[(group, seed)] = onsets(run, events, smooth, x)
    table = pd.DataFrame(rows).T
    table.index.names = ["group", "seed"]
    return table


def bootstrap_interval(values: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of `values` (resampled with replacement)."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(1)
    return tuple(np.percentile(means, [2.5, 97.5]))


def summary(table) -> list[list]:
    """Markdown-ready rows, per run group and event: seeds reached, mean +- std of the step, the bootstrap
    interval (where every seed has the event), and the mean lag against the reference."""
    rows = []
    reference = REFERENCE.name
    for group, runs in table.groupby(level="group", sort=True):
        for name in runs.columns:
            steps = runs[name].to_numpy(dtype=float)
            reached = np.isfinite(steps)
            lags = steps - runs[reference].to_numpy(dtype=float)
            if reached.all():
                low, high = bootstrap_interval(steps)
                cells = [f"{steps.mean():.0f} ± {steps.std(ddof=1) if len(steps) > 1 else 0:.0f}",
                         f"[{low:.0f}, {high:.0f}]",
                         f"{lags.mean():+.0f}" if np.isfinite(lags).all() else "no val_acc rise"]
            else:
                cells = ["not reached" if not reached.any() else f"{reached.sum()}/{len(steps)} seeds", "", ""]
            rows.append([group, name, f"{reached.sum()}/{len(steps)}", *cells])
    return rows


SUMMARY_COLUMNS = ["run group", "event", "seeds", "step: mean ± std", "95% bootstrap CI", "lag vs val_acc rise"]


def runs_under(root: Path):
    """`load_runs(root)`, or a UsageError saying why there is nothing to read (the CLIs' common start)."""
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; give the folder that holds the runs (e.g. runs/<experiment>/cpu)")
    frame = load_runs(root)
    if frame.empty:
        raise UsageError(f"no metrics.jsonl under {root}; train the runs first")
    return frame


def generic_events(frame) -> list[Event]:
    """The peak and the trough of every numeric logged metric (step, epoch, lr and timings left out)."""
    skip = {"step", "epoch", "lr", "train_s", "eval_s", "seed"}
    metrics = [c for c in frame.columns if c not in skip and frame[c].dtype.kind in "fi" and frame[c].notna().any()]
    return [Event(f"{m} {kind}", m, kind) for m in metrics for kind in ("max", "min")]


def experiments_in(frame) -> list[str]:
    """The experiments of the runs of a `load_runs` frame (each run's config.json names it), sorted."""
    return sorted(frame["experiment"].dropna().unique()) if "experiment" in frame else []


def declared(experiment: str, name: str, default=None):
    """What <experiment>/plot.py declares as `name` (`FIGURES`, `EVENTS`), or `default` when the experiment has
    no plot module (or none importable from here) or declares no such name. How common.plot and this module
    find an experiment's figures and events."""
    try:
        module = importlib.import_module(f"{experiment}.plot")
    except ModuleNotFoundError as err:
        if err.name not in (experiment, f"{experiment}.plot"):
            raise
        return default
    return getattr(module, name, default)


def events_of(frame, name: str | None = None) -> list[Event]:
    """The events for the runs of `frame`: experiment `name`'s (its `EVENTS`), else those of the runs'
    experiment; `generic_events` when it declares none or `name` is "generic"."""
    if name is None:
        found = experiments_in(frame)
        if len(found) > 1:
            raise UsageError(f"the runs are of several experiments ({', '.join(found)}); give a folder of one, or "
                             f"--events NAME")
        name = found[0] if found else "generic"
    if name == "generic":
        return generic_events(frame)
    events = declared(name, "EVENTS")
    if events is None and name not in experiments_in(frame):
        raise UsageError(f"--events {name}: no experiment {name} declares onset events (its plot.py's EVENTS); "
                         f"give an experiment folder that does, or generic")
    return events if events is not None else generic_events(frame)


def write_tables(table, folder: Path, smooth: int = 3, digits: int = 6) -> str:
    """onsets.csv (one line per run and event: step and lag) and onsets.md (per run, each cell 'step (lag)',
    then the summary over seeds) in `folder`; returns the Markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    lags = table.sub(table[REFERENCE.name], axis=0)
    long = table.stack(future_stack=True).rename("step").to_frame().join(lags.stack(future_stack=True).rename("lag"))
    long.index.names = ["group", "seed", "event"]
    long.to_csv(folder / "onsets.csv")
    def cell(step, lag):
        if not np.isfinite(step):
            return "not reached"
        return f"{step:.0f} ({lag:+.0f})" if np.isfinite(lag) else f"{step:.0f}"

    per_run = markdown_table(["run group", "seed", *table.columns],
                             [[g, s, *(cell(v, lags.loc[(g, s), c]) for c, v in row.items())]
                              for (g, s), row in table.iterrows()], digits)
    how = "raw values" if smooth == 1 else f"the running median of {smooth} evaluations"
    markdown = (f"Step of each event per run, in brackets its lag against the val_acc rise (negative: before); "
                f"'not reached': never. Read from {how} (common/analysis.py).\n\n{per_run}\n"
                f"Over seeds:\n\n{markdown_table(SUMMARY_COLUMNS, summary(table))}")
    (folder / "onsets.md").write_text(markdown)
    return markdown


@entry_point
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m common.analysis", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", help="a folder holding run folders (any depth)")
    parser.add_argument("--events", default=None,
                        help="whose event list: an experiment folder (its plot.py's EVENTS) or generic (default: the "
                             "runs' experiment; generic when it declares none)")
    parser.add_argument("--smooth", type=int, default=3, help="running median over this many evaluations (1: raw)")
    parser.add_argument("--out", default=None, help="where onsets.csv and onsets.md go (default: RUNS_DIR)")
    args = parser.parse_args(argv)
    if args.smooth < 1:
        raise UsageError(f"--smooth must be >= 1, got {args.smooth}")
    root = Path(args.runs_dir)
    frame = runs_under(root)
    events = events_of(frame, args.events)
    table = onset_table(frame, events, args.smooth)
    markdown = write_tables(table, Path(args.out) if args.out else root, args.smooth)
    print(markdown)
    return table


if __name__ == "__main__":
    main()
