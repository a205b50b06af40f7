"""Atomic checkpoints: write to a temporary file in the same folder, fsync, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint"]


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read (corrupt, truncated, or not a checkpoint)."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Save `state` with torch.save so that `path` holds either the old or the new file, never a
    partial one: a kill at any moment leaves the previous checkpoint intact."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint`.

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError: the file exists but is unreadable; the message names the file and the fix.
            A run never silently restarts from scratch over a damaged checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        # Our own files: they hold NumPy/Python RNG states, which weights_only=True rejects.
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on damage
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
            f"delete it to restart the run from scratch") from err
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no 'step'); delete it to restart")
    return state
