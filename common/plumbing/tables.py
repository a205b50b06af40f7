"""What every plot script, report and benchmark shares: the seed mean with its band, a run frame's groups and
seeds, and Markdown tables.

Neither function imports matplotlib: `seed_band` draws on the Axes it is given, so `import common`
stays free of plotting libraries.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

__all__ = ["seed_band", "markdown_table", "run_groups", "seeds_label"]


def seed_band(ax, frame, key: str, label: str | None = None, color: str | None = None, x: str = "step",
              scale: float = 1.0, alpha: float = 0.2, **line_kw):
    """Plot the mean over runs (seeds) of column `key` against column `x`, with the min-max band.

    Args:
        ax: a matplotlib Axes.
        frame: a long DataFrame (e.g. `common.load_runs`), one row per run and evaluation; rows with
            the same `x` are averaged. Rows where `key` is missing (NaN) are left out.
        scale: multiplies the values (e.g. 100 for percent).
        line_kw: passed to `ax.plot` (linestyle, linewidth, ...).
    Returns:
        the Line2D of the mean (for legends).
    """
    stats = frame.groupby(x)[key].agg(["mean", "min", "max"]).dropna() * scale
    (line,) = ax.plot(stats.index, stats["mean"], label=label, color=color, **line_kw)
    ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=alpha, linewidth=0)
    return line


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "not reached" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 4) -> str:
    """A Markdown table: a header of `columns`, then one line per row; floats with `digits` significant
    digits (NaN: 'not reached'), anything else as str(). Ends with a newline."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_groups(frame) -> list[tuple[str, Any]]:
    """[(run group, its rows)] of a `load_runs` frame in folder order: the group of a run is the folder above
    its seed_<k> folder (relative to the frame's root; '.' when the root is the group)."""
    from pathlib import Path

    frame = frame.assign(group=frame["run_dir"].map(lambda p: str(Path(p).parent)))
    return [(group, rows) for group, rows in frame.groupby("group", sort=True)]


def seeds_label(frame) -> str:
    """What a figure's band is: "mean and min-max over N seeds", or "seed K" for one."""
    seeds = frame["seed"].nunique()
    return f"mean and min-max over {seeds} seeds" if seeds > 1 else f"seed {frame['seed'].iloc[0]}"
