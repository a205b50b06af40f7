"""One command line for every experiment: keys, presets, rules and the run folder, declared in train.py.

Each `train.py` declares its configuration as data and calls `parse`:

    KEYS = {  # what the run is: flag = config key = config.json entry; one line each
        "seed": Key(42, "model seed"),
        "dataset": Key("cifar10", "training data", choices=("cifar10", "fashion_mnist")),
        "augment": Key(False, "random crop and flip (App. B, Fig. 7)"),
        ...
    }
    PRESETS = {"paper": {}, "cpu": {"dataset": "fashion_mnist", "epochs": 150}}  # only what differs
    RULES = [("lr", lambda v: 0 < v < math.inf, "> 0 and finite"), ...]           # one rule a line
    OPTIONS = {"data_dir": Key("data", "where the data are")}  # how to run, not what: not in the folder name

    run = parse(argv, "nc_experiments", __doc__, KEYS, PRESETS, RULES, OPTIONS)
    run.config, run.run_dir, run.args.data_dir, run.device

Every experiment also gets `--preset`, `--out_dir`, `--threads`, `--device` (auto: CUDA if available)
and `--no_progress`, with the same meaning and checks. A boolean key is `--key` (True) and
`--no_key` (False). `--help` shows each key's meaning, default and preset values. Bad input is a
`UsageError` (one line, exit 2 under `entry_point`) raised before anything is written.

The run folder is OUT_DIR/<experiment>/<preset><_keyvalue for each key the command line set to a value
other than the preset's>/seed_<k>, so running the same command again finds (and resumes) the same run.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch

from .cli import ArgumentParser, UsageError
from .seeding import seed_everything

__all__ = ["Key", "Run", "parse", "with_defaults", "command_line", "epoch_generator", "POSITIVE", "NON_NEGATIVE"]

POSITIVE = (lambda v: 0 < v < math.inf, "> 0 and finite")
NON_NEGATIVE = (lambda v: 0 <= v < math.inf, ">= 0 and finite")


@dataclass(frozen=True)
class Key:
    """One configuration key: its default (the paper's value), a one-line meaning (the flag's --help),
    the allowed values, and the type (taken from the default unless the default is None)."""

    default: Any
    help: str
    choices: Sequence | None = None
    type: Callable | None = None


class Run(NamedTuple):
    """What `parse` returns: the parsed flags, the resolved config, the run folder and the device."""

    args: argparse.Namespace
    config: dict
    run_dir: Path
    device: torch.device

    @property
    def experiment(self) -> str:
        """The experiment folder (`parse` puts the run in OUT_DIR/<experiment>/<run>/seed_<k>)."""
        return self.run_dir.parent.parent.name

    @property
    def progress(self) -> bool:
        """Draw a progress bar: on a terminal unless --no_progress (in a log file, one line per evaluation)."""
        return not self.args.no_progress and sys.stderr.isatty()

    def setup(self, distributed: bool = False) -> None:
        """Set --threads and seed Python, NumPy and torch from the config's seed (before the model is built).
        Under torchrun, join the process group (and take this rank's GPU) when the experiment runs with
        DDP (`distributed`); an experiment that does not is refused (it would write one run N times)."""
        from .distributed import current, from_env

        if current().enabled:
            if not distributed:
                raise UsageError(f"{self.experiment} does not run under torchrun; launch it as one "
                                 f"process (python -m ...)")
            from_env(self.device.type)
        if self.args.threads:
            torch.set_num_threads(self.args.threads)
        seed_everything(self.config["seed"])


STANDARD_OPTIONS = {
    "out_dir": Key("runs", "runs go to OUT_DIR/<experiment>/<run>/seed_<k>"),
    "threads": Key(None, "torch CPU threads (default: torch's choice)", type=int),
    "device": Key("auto", "cpu, cuda, cuda:N, mps, or auto (CUDA when available, else the CPU)"),
    "no_progress": Key(False, "one line per evaluation instead of a progress bar (the default off a terminal)"),
    "tracker": Key("none", "also send every logged row to tensorboard, wandb, or both (tensorboard,wandb); "
                           "pip install -r requirements-trackers.txt"),
}


def _add(parser: argparse.ArgumentParser, name: str, key: Key, help_text: str) -> None:
    if isinstance(key.default, bool):  # --name sets True, --no_name sets False; None means "not given"
        group = parser.add_mutually_exclusive_group()
        group.add_argument(f"--{name}", dest=name, action="store_const", const=True, default=None, help=help_text)
        group.add_argument(f"--no_{name}", dest=name, action="store_const", const=False, help=argparse.SUPPRESS)
    else:
        parser.add_argument(f"--{name}", type=key.type or type(key.default), choices=key.choices, default=None,
                            help=help_text)


def _help(name: str, key: Key, presets: dict) -> str:
    differing = "; ".join(f"{preset}: {values[name]}" for preset, values in presets.items()
                          if name in values and values[name] != key.default)
    return f"{key.help} [default {key.default}{'; ' + differing if differing else ''}]"


def with_defaults(keys: dict[str, Key], **defaults: Any) -> dict[str, Key]:
    """A copy of `keys` with other defaults for some of them (meaning, choices and type kept): how an
    experiment takes shared keys (e.g. RF_KEYS) with its own paper values."""
    unknown = set(defaults) - set(keys)
    if unknown:
        raise KeyError(f"no such keys: {sorted(unknown)}")
    return {name: replace(key, default=defaults[name]) if name in defaults else key for name, key in keys.items()}


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU; anything else must name a device torch can use here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {name!r} is not a device name ({str(err).splitlines()[0]}); use cpu, cuda, "
                         f"cuda:N, mps or auto") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: MPS is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name}: unsupported device type; use cpu, cuda, cuda:N, mps or auto")
    return device


def parse(argv: Sequence[str] | None, experiment: str, doc: str, keys: dict[str, Key], presets: dict[str, dict],
          rules: Sequence[tuple] = (), options: dict[str, Key] | None = None,
          check: Callable[[dict, argparse.Namespace], None] | None = None) -> Run:
    """Parse `argv` (None: sys.argv[1:]) into the resolved config of one run of `experiment`.

    Args:
        experiment: the folder name; the run goes to OUT_DIR/<experiment>/...
        doc: the script's docstring; its first paragraph is the --help description.
        keys: the configuration (name -> Key), defaults = the paper's recipe.
        presets: preset name -> the keys it changes; the first preset is the default.
        rules: (key, (predicate, text)) or (key, predicate, text): `--key must be <text>` when
            predicate(config[key]) is false.
        options: flags that say how to run (paths, formats) and stay out of the config and folder name.
        check: called with (config, args) after the rules, for rules that involve several flags;
            raises UsageError.
    """
    parser = ArgumentParser(prog=f"python -m {experiment}.train", description=doc.strip().split("\n\n")[0])
    parser.add_argument("--preset", choices=list(presets), default=next(iter(presets)),
                        help=f"hyperparameter preset [default {next(iter(presets))}]")
    for name, key in keys.items():
        _add(parser, name, key, _help(name, key, presets))
    run_options = {**STANDARD_OPTIONS, **(options or {})}
    for name, key in run_options.items():
        if isinstance(key.default, bool):
            parser.add_argument(f"--{name}", action="store_true", help=key.help)
        else:
            parser.add_argument(f"--{name}", type=key.type or type(key.default), choices=key.choices,
                                default=key.default, help=f"{key.help} [default {key.default}]")
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name) for name in keys if getattr(args, name) is not None}
    preset = {name: presets[args.preset].get(name, key.default) for name, key in keys.items()}
    config = {**preset, **overrides, "preset": args.preset}
    for key, *rule in rules:
        predicate, text = rule[0] if len(rule) == 1 else rule
        if not predicate(config[key]):
            raise UsageError(f"--{key} must be {text}, got {config[key]}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    from .trackers import parse_trackers

    args.tracker = parse_trackers(args.tracker)  # names; a missing package is one line, before anything is written
    if check is not None:
        check(config, args)
    device = resolve_device(args.device)
    changed = "".join(f"_{k}{v}" for k, v in sorted(overrides.items()) if k != "seed" and preset[k] != v)
    changed = changed.replace("/", "-")  # a model id or path as a value: one folder, not nested ones
    run_dir = Path(args.out_dir) / experiment / (args.preset + changed) / f"seed_{config['seed']}"
    return Run(args, config, run_dir, device)


REPO_ROOT = Path(__file__).resolve().parents[2]


def repo_relative(word: str, flag: str | None = None) -> str:
    """`word` (or the value of `--flag=word`) relative to the repository when it is an absolute path inside it;
    an absolute path outside it becomes a named placeholder, <FLAG> after the flag that takes it (`--data_dir
    /usr/share/datasets/fashion-mnist` -> `--data_dir <DATA_DIR>`) or <PATH>; so that a committed config.json
    names no folder of the machine it ran on. Any other word unchanged."""
    if word.startswith("--") and "=" in word:
        name, value = word.split("=", 1)
        return f"{name}={repo_relative(value, name)}"
    path = Path(word)
    if not path.is_absolute():
        return word
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return f"<{flag.lstrip('-').upper()}>" if flag and flag.startswith("--") and "=" not in flag else "<PATH>"


def command_line(argv: Sequence[str] | None) -> list[str]:
    """The command as typed (for config.json): the program and `argv`, or sys.argv when argv is None, with
    absolute paths inside the repository (the program's, as `python -m` gives it) made relative to it and
    those outside it named by the flag that takes them (`repo_relative`)."""
    words = sys.argv[:1] + list(argv if argv is not None else sys.argv[1:])
    return [repo_relative(word, words[i - 1] if i else None) for i, word in enumerate(words)]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of one epoch's batch order and augmentation, from (seed, epoch) alone:
    a resumed run draws the same batches as an uninterrupted one."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)
