"""Evaluation schedules: when to log metrics."""

from __future__ import annotations

import numpy as np

__all__ = ["log_grid_epochs", "log_spaced_steps"]


def log_grid_epochs(num_epochs: int, factor: float = 1.01) -> list[int]:
    """The original grokking code's logging grid (docs/original_code.md §2.4): epochs 0, then next = max(int(factor * e), e + 1).

    Every epoch is logged while (factor - 1) e < 2 (e < 200 for 1.01), then geometrically spaced.
    With 10 steps per epoch and 10,000 epochs (1e5 steps) this gives 620 epochs; the original
    labels epoch e with the global step (e + 1) * steps_per_epoch - 1 (9, 19, ..., 99709).

    Returns:
        sorted epochs in [0, num_epochs).
    """
    if factor <= 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    epochs, e = [], 0
    while e < num_epochs:
        epochs.append(e)
        e = max(int(factor * e), e + 1)
    return epochs


def log_spaced_steps(num_steps: int, num_points: int, first: int = 1) -> list[int]:
    """About `num_points` distinct integer steps, log-spaced in [first, num_steps], plus step 0.

    Always contains 0 (the initialisation) and `num_steps` (the end of training); early steps,
    where rounding collides, appear once each.
    """
    if num_steps < 1 or num_points < 1:
        raise ValueError("num_steps and num_points must be >= 1")
    first = min(max(1, first), num_steps)
    grid = np.geomspace(first, num_steps, num_points)
    return sorted({0, num_steps, *np.rint(grid).astype(int).tolist()})
