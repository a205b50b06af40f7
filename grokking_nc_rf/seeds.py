"""Many seeds as one model (`--seeds 1,42,15213`): the seeds' runs, each the run a `--seed K` run would be,
their checkpoints in and out of the slots of a `SeedStack`, and a group that resumes at one step.

A seed's checkpoint holds a `Transformer` state dict and the AdamW state of its parameters (`SeedSlot`):
the same whichever way the seed was trained, so a seed trained in a group resumes alone and the other way
round. Each keeps the previous checkpoint inside it, so a group killed between its seeds' checkpoint writes
goes back one evaluation for the seeds ahead (`start_group`).
"""

from __future__ import annotations

import sys

import torch

from common import UsageError, load_checkpoint, save_checkpoint
from grokking_nc_rf.model import SeedStack

__all__ = ["SeedSlot", "seed_runs", "start_group"]


class SeedSlot:
    """Seed `seed` of a SeedStack and of its AdamW, seen as a `Transformer` and its optimizer: the state dicts
    are those a run of that seed alone saves (`Transformer.state_dict()`, AdamW's state of its parameters in
    the same order), and `load_state_dict` puts such a state into the slot. What `RunLog` saves and resumes,
    so a seed's checkpoint is the same whichever way it was trained."""

    def __init__(self, stack: SeedStack, optimizer: torch.optim.Optimizer, seed: int) -> None:
        self.stack, self.opt, self.seed = stack, optimizer, seed
        self.model = _Slot(lambda: stack.unstack(seed), lambda state: stack.load_seed(seed, state))
        self.optimizer = _Slot(self._optimizer_state, self._load_optimizer)

    def _optimizer_state(self) -> dict:
        full = self.opt.state_dict()
        one = lambda v: v[self.seed].clone() if torch.is_tensor(v) and v.dim() else v  # noqa: E731
        return {"state": {i: {k: one(v) for k, v in st.items()} for i, st in full["state"].items()},
                "param_groups": full["param_groups"]}

    def _load_optimizer(self, state: dict) -> None:
        for group, saved in zip(self.opt.param_groups, state["param_groups"]):  # lr and the rest (not the params)
            group.update({k: v for k, v in saved.items() if k != "params"})
        params = [p for group in self.opt.param_groups for p in group["params"]]
        for i, st in state["state"].items():
            current = self.opt.state[params[int(i)]]
            for k, v in st.items():
                if torch.is_tensor(v) and v.dim():
                    if k not in current:  # the first slot to resume: make room for every seed
                        current[k] = torch.zeros_like(params[int(i)])
                    current[k][self.seed].copy_(v)
                else:
                    current[k] = v.clone() if torch.is_tensor(v) else v


class _Slot:
    def __init__(self, get, put) -> None:
        self.state_dict, self.load_state_dict = get, put


def seed_runs(argv, run, parse_args):
    """The runs of --seeds, each parsed by `parse_args` as with `--seed K` (its run folder and config), or [run]."""
    if not run.args.seeds:
        return [run]
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        seeds = [int(word) for word in run.args.seeds.split(",")]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers (e.g. 1,42,15213), got {run.args.seeds!r}") from None
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {run.args.seeds} names a seed twice; give each seed once")
    if any(word == "--seed" or word.startswith("--seed=") for word in words):
        raise UsageError("give --seed or --seeds, not both")
    return [parse_args([*words, "--seed", str(seed)]) for seed in seeds]


def start_group(logs, slots, scheduler, device):
    """Each seed's checkpoint into its slot of the stack; returns their states (RunLog.start's). A group
    killed while it wrote its seeds' checkpoints has seeds one evaluation apart: those ahead go back to the
    previous checkpoint they keep, so the group resumes at one step with no row lost or doubled."""
    saved = [load_checkpoint(log.checkpoint_path, device) if log.checkpoint_path.exists() else None for log in logs]
    steps = [state["step"] if state else 0 for state in saved]
    for log, state in zip(logs, saved):
        if state and state["step"] > min(steps):
            previous = state["extra"].get("previous")
            if previous is None or previous["step"] != min(steps):
                raise UsageError(f"the runs of --seeds are at different steps ({', '.join(map(str, steps))}); "
                                 f"train them one by one with --seed, or delete the ones ahead")
            save_checkpoint(log.checkpoint_path, previous)
    return [log.start(slot.model, slot.optimizer, scheduler, map_location=device, unit="step")
            for log, slot in zip(logs, slots)]
