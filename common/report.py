"""Every published number from committed run logs: the tables of REPRODUCTION.md and the READMEs.

    python -m common.report                        # rewrite every table between report markers, redraw the PNGs
    python -m common.report --check                # exit 1 at the first table that differs from what the logs give
    python -m common.report --verify [--data_dir DIR] [--rows 6] [--only PATH]
                                                   # rerun the first rows of each committed run group; record stale ones
    python -m common.report --compare RUNS_DIR     # a rerun's onsets and check numbers beside ours, with our spread

A Markdown file owns prose; the tool owns what lies between

    <!-- report grokking_nc_rf.checks -->
    ...
    <!-- /report -->

`grokking_nc_rf.checks` names the function `checks` in `TABLES` of `grokking_nc_rf/report.py`: the marker names
the experiment, the library imports no experiment of its own accord. A table function takes a `Report` (the
committed run groups: every folder under `<experiment>/figures/` that holds seed_<k>/config.json and
metrics.jsonl; the paper's numbers from docs/paper_numbers.json; the staleness record docs/verified.json) and
returns Markdown whose every number is computed from those logs, with a line naming each group it read (path,
seeds, commit) and the command that made it.

Staleness is decided by running, not by `git log`: `--verify` reruns the first `--rows` evaluations of one seed
of each group from its config.json, in the environment that config.json records (threads, kernel variables;
common/plumbing/seeding.py), and compares them with the committed rows: identical, within a tolerance (|a - b| <= 1e-4
+ 1e-3 |b| for every logged number; timings excepted), or stale. The result goes to docs/verified.json, which the
tables read: a stale group's numbers are printed as stale, with the command that refreshes them.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .plumbing.cli import UsageError, entry_point
from .plumbing.config import REPO_ROOT
from .plumbing.seeding import PORTABLE_KERNELS

__all__ = ["Group", "Report", "render", "check_table", "compare", "agreement", "verify_group", "compare_rows", "number", "steps", "span", "per_seed", "fixed", "verdict", "sourced", "runs_table", "search_runs_table", "main"]

MARKER = re.compile(r"(<!-- report ([\w.]+) -->\n)(.*?)(<!-- /report -->)", re.S)
DOCUMENTS = ("README.md", "REPRODUCTION.md", "*/README.md")
PAPER_NUMBERS = "docs/paper_numbers.json"
VERIFIED = "docs/verified.json"
RTOL, ATOL = 1e-3, 1e-4
CODE = REPO_ROOT  # where the train.py files a rerun runs live (tests point REPO_ROOT at copies of the logs)


@dataclass
class Group:
    """One committed run group: `path` (relative to the repository) holds seed_<k>/{config.json, metrics.jsonl}."""

    path: Path
    root: Path = REPO_ROOT
    configs: dict = field(default_factory=dict)  # seed -> config.json record

    def __post_init__(self):
        for folder in sorted((self.root / self.path).glob("seed_*")):
            if (folder / "config.json").exists() and (folder / "metrics.jsonl").exists():
                record = json.loads((folder / "config.json").read_text())
                self.configs[record["config"]["seed"]] = record

    @property
    def seeds(self) -> list[int]:
        return sorted(self.configs)

    @property
    def experiment(self) -> str:
        program = next(iter(self.configs.values()))["argv"][0]
        return program.split("/")[0] if program.endswith("/train.py") else self.path.parts[0]

    @property
    def commits(self) -> list[str]:
        return sorted({str(r.get("git_commit")) for r in self.configs.values()})

    @property
    def clean(self) -> bool:
        return all(c not in ("None", "") and not c.endswith("-dirty") for c in self.commits)

    @cached_property
    def frame(self):
        from .plumbing.runlog import load_runs

        return load_runs(self.root / self.path)

    def rows(self, seed: int) -> list[dict]:
        from .plumbing.runlog import read_metrics

        return read_metrics(self.root / self.path / f"seed_{seed}" / "metrics.jsonl")

    def command(self, commands: dict[str, str]) -> str:
        """The command that made the group: its experiment's declared one, else seed 1's train.py command."""
        if str(self.path) in commands:
            return commands[str(self.path)]
        argv = next(iter(self.configs.values()))["argv"]
        return f"python -m {self.experiment}.train {' '.join(argv[1:])}"


class Report:
    """What a table function reads: committed run groups, the paper's numbers and the staleness record."""

    def __init__(self, root: Path = REPO_ROOT):
        self.root = Path(root)
        self.paper_numbers = json.loads((self.root / PAPER_NUMBERS).read_text())
        path = self.root / VERIFIED
        self.verified = json.loads(path.read_text()) if path.exists() else {}
        self._groups: dict[str, Group] = {}

    def group(self, path: str) -> Group:
        if path not in self._groups:
            group = Group(Path(path), self.root)
            if not group.configs:
                raise UsageError(f"no committed run group at {path} (seed_<k>/config.json and metrics.jsonl); train it "
                                 f"with the command its experiment's report.py names and copy its logs there")
            self._groups[path] = group
        return self._groups[path]

    def numbers(self, path: str, compute):
        """compute(group) for the committed group at `path`, computed once per Report (a document's tables share
        it): each experiment's per-seed numbers."""
        group = self.group(path)
        cache = group.__dict__.setdefault("_numbers", {})
        if compute not in cache:
            cache[compute] = compute(group)
        return cache[compute]

    def paper(self, experiment: str, key: str) -> str:
        """The paper's number `key` of `experiment`, followed by its source."""
        entry = self.paper_numbers[experiment][key]
        return f"{entry['value']} ({entry['source']})"

    def stale(self, group: Group) -> bool:
        return self.verified.get(str(group.path), {}).get("status", "").startswith("stale")

    def source(self, label: str, group: Group, commands: dict[str, str]) -> str:
        """One line naming where a column's numbers come from: group, seeds, commit, command, and staleness."""
        commits = ", ".join(c[:7] + (" (uncommitted changes)" if c.endswith("-dirty") else "") for c in group.commits)
        seeds = ", ".join(map(str, group.seeds))
        line = (f"{label}: `{group.path.as_posix()}`, seed{'s' if len(group.seeds) > 1 else ''} {seeds}, commit "
                f"{commits}, made by `{group.command(commands)}`")
        record = self.verified.get(str(group.path))
        if record:
            at = record["commit"][:7] + (" with uncommitted changes" if record["commit"].endswith("-dirty") else "")
        if self.stale(group):
            line += f". **Stale**: {record['status']} (checked at {at}); refresh with that command"
        elif record:
            line += f"; its first {record['rows']} rows rerun at {at}: {record['status']}"
        return line + "."


def tables_of(experiment: str) -> dict:
    try:
        module = importlib.import_module(f"{experiment}.report")
    except ModuleNotFoundError as err:
        raise UsageError(f"a report marker names {experiment!r}, which has no report.py") from err
    return module.TABLES


def render(text: str, report: Report, where: str = "") -> str:
    """`text` with every marked table rewritten."""
    def table(match):
        name = match.group(2)
        experiment, _, function = name.rpartition(".")
        tables = STATUS_TABLES if experiment == "common" else tables_of(experiment)
        if function not in tables:
            raise UsageError(f"{where}: report marker {name!r}: {experiment} has no table {function!r}")
        body = tables[function](report).rstrip("\n") + "\n"
        return match.group(1) + body + match.group(4)
    return MARKER.sub(table, text)


def documents(root: Path) -> list[Path]:
    found = []
    for pattern in DOCUMENTS:
        found += sorted(p for p in root.glob(pattern) if "<!-- report " in p.read_text())
    return found


def first_difference(old: str, new: str) -> str:
    for number, (a, b) in enumerate(zip(old.splitlines(), new.splitlines()), 1):
        if a != b:
            return f"line {number}:\n  committed: {a}\n  from logs: {b}"
    return f"line {min(len(old.splitlines()), len(new.splitlines())) + 1}: one has more lines"


# ---------------------------------------------------------------------------------------------- number formats

def number(x: float, digits: int = 3) -> str:
    """`digits` significant digits; whole numbers below 1e7 with thousands separators (steps); other numbers
    from 1e3 on as mantissa and power of ten (2.03e4); never Python's 'e+03'."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if float(x).is_integer() and abs(x) < 1e7:
        return f"{int(x):,}"
    if abs(x) >= 1e3:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    text = f"{x:.{digits}g}"
    return text if "e+" not in text else f"{x:.0f}"


def steps(values, sign: str = "") -> str:
    """Steps over seeds: 'mean ± std' (one seed: the step), rounded to whole steps; where some seeds never reach
    the event, over those that do, with their count: '3,715 ± 615 (2 of 3 seeds)'; none: 'not reached'.
    sign="+" writes the mean with its sign, for shifts: '+2,263 ± 120'."""
    values = [float(v) for v in values]
    if any(not math.isfinite(v) for v in values):
        reached = [v for v in values if math.isfinite(v)]
        return f"{steps(reached, sign)} ({len(reached)} of {len(values)} seeds)" if reached else "not reached"
    if len(values) == 1:
        return f"{values[0]:{sign},.0f}"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:{sign},.0f} ± {std:,.0f}"


def span(values, digits: int = 3) -> str:
    """Over seeds: 'mean (min-max)'; one seed: the value."""
    values = [float(v) for v in values]
    if len(values) == 1:
        return number(values[0], digits)
    return f"{number(sum(values) / len(values), digits)} ({number(min(values), digits)}-{number(max(values), digits)})"


def value_range(values, digits: int = 3) -> str:
    """Over seeds: 'min-max' ('min to max' when negative); one seed or all equal: the value. Seeds without
    the value (NaN) are left out; none: 'none'."""
    values = [float(v) for v in values if math.isfinite(float(v))]
    if not values:
        return "none"
    low, high = number(min(values), digits), number(max(values), digits)
    if low == high:
        return low
    return f"{low} to {high}" if min(values) < 0 else f"{low}-{high}"


def per_seed(values, digits: int = 3, missing: str = "n/a") -> str:
    """Over seeds, in seed order: 'a / b / c'; NaN as `missing`."""
    return " / ".join(number(float(v), digits) if math.isfinite(float(v)) else missing for v in values)


def verdict(holds, yes: str = "yes", no: str = "no") -> str:
    """Whether a claim holds over seeds, one flag per seed: `yes` for all, `no` for none, else 'in k of n seeds'."""
    holds = [bool(h) for h in holds]
    if all(holds):
        return yes
    return no if not any(holds) else f"in {sum(holds)} of {len(holds)} seeds"


def fixed(values, decimals: int = 3) -> str:
    """Over seeds, in seed order, with a fixed number of decimals (accuracies): '0.359 / 0.424 / 0.260'."""
    return " / ".join(f"{float(v):.{decimals}f}" for v in values)


def check_table(report: Report, experiment: str, columns: list[str], rows: list[tuple], sources: list[tuple],
                commands: dict[str, str]) -> str:
    """A check table: one line per (what is checked, key in docs/paper_numbers.json, *our cells), the paper's
    number (with its source) beside our cells under `columns`; below it one line per (label, group path) of
    `sources` naming where the cells come from."""
    from .plumbing.tables import markdown_table

    lines = [[text, report.paper(experiment, key), *cells] for text, key, *cells in rows]
    return sourced(report, markdown_table(["check", "paper / original run", *columns], lines), sources, commands)


def sourced(report: Report, table: str, sources: list[tuple], commands: dict[str, str]) -> str:
    """`table` (Markdown) followed by one line per (label, group path) of `sources` naming where it comes from."""
    notes = [report.source(label, report.group(path), commands) for label, path in sources]
    return table.rstrip("\n") + "\n\n" + "\n".join(f"{note}  " for note in notes).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------- the rf_* family's tables

def runs_table(report, sources, commands) -> str:
    """The per-run table (`unplug_summary`, as the plot step's summary.md) of committed groups: `sources` pairs
    each GROUPS label, in order, with a group path under `report` (a common.report.Report); with source lines."""
    from .unplug.figure import GROUPS, unplug_summary

    groups = [(label, color, report.group(path).frame) for (label, _, color), (_, path) in zip(GROUPS, sources)]
    unplug = int(groups[0][2].unplug_epoch.iloc[0])
    return sourced(report, unplug_summary(groups, unplug), sources, commands)


def search_runs_table(report, rows, commands, seed: int = 42, epochs=(20, 40, 50, 150)) -> str:
    """`search_table` of the committed groups of `rows` ((label, group path)), with source lines."""
    from .unplug.figure import search_table

    table = search_table([(label, report.group(path).frame) for label, path in rows], seed=seed, epochs=epochs)
    return sourced(report, table, rows, commands)



# ---------------------------------------------------------------------------------------------- status table

def status(report: Report) -> str:
    """How many committed run groups there are and how many are stale (the top README's line)."""
    unique = committed_groups(report.root)
    stale = [g for g in unique if report.stale(g)]
    unverified = [g for g in unique if str(g.path) not in report.verified]
    dirty = [g for g in unique if not g.clean]
    line = (f"{len(unique)} committed run groups stand behind the published numbers; {len(stale)} stale "
            f"(the goal is 0), {len(unverified)} not yet rerun by `python -m common.report --verify` (it needs the "
            f"data a group's runs read), {len(dirty)} made from a tree with uncommitted changes (to be rerun).")
    listed = [f"- stale: `{g.path.as_posix()}`" for g in stale] + [f"- uncommitted changes: `{g.path.as_posix()}`"
                                                                    for g in dirty]
    return "\n".join([line, *listed]) + "\n"


STATUS_TABLES = {"status": status}


# ---------------------------------------------------------------------------------------------- verify

def compare_rows(committed: list[dict], rerun: list[dict], rtol: float = RTOL, atol: float = ATOL) -> str:
    """'identical', 'within tolerance (...)' or 'stale: <the first difference>' for the rerun's rows against
    the committed ones (wall-clock keys *_s left out; keys only the rerun logs are new metrics, not differences)."""
    largest, exact = 0.0, True
    for index, (ours, theirs) in enumerate(zip(committed, rerun)):
        for key, a in ours.items():
            if key.endswith("_s"):
                continue
            where = f"row {index} (step {ours.get('step', ours.get('epoch'))}), {key}"
            if key not in theirs:
                return f"stale: {where} is no longer logged"
            b = theirs[key]
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                if a == b or (math.isnan(a) and math.isnan(b)):
                    continue
                exact = False
                if not abs(a - b) <= atol + rtol * abs(a):
                    return f"stale: {where} is {b!r} now, {a!r} committed"
                largest = max(largest, abs(a - b) / max(abs(a), 1e-300))
            elif a != b:
                return f"stale: {where} is {b!r} now, {a!r} committed"
    if len(rerun) < len(committed) and len(rerun) < 1:
        return "stale: the rerun wrote no rows"
    return "identical" if exact else f"within tolerance (largest relative difference {largest:.1e})"


def rerun_command(record: dict, experiment: str, out_dir: Path, data: dict[str, str]) -> list[str] | str:
    """The train.py command of a config.json record, writing to `out_dir`, with its placeholders (<DATA_DIR>)
    filled from `data`; or the name of a placeholder `data` lacks."""
    threads = record.get("environment", {}).get("threads")  # else the command's own --threads, if any
    words, skip = [], False
    for word in record["argv"][1:]:
        if skip:
            skip = False
            continue
        flag = word.split("=", 1)[0]
        if flag == "--out_dir" or (flag == "--threads" and threads):
            skip = "=" not in word
            continue
        if flag == "--no_progress":
            continue
        for name in re.findall(r"<([A-Z_]+)>", word):
            if name not in data:
                return name
            word = word.replace(f"<{name}>", data[name])
        words.append(word)
    return [sys.executable, "-m", f"{experiment}.train", *words, "--out_dir", str(out_dir), "--no_progress",
            *(["--threads", str(threads)] if threads else [])]


def rerun_environment(record: dict) -> dict:
    """os.environ with the kernel variables config.json records (unset where it records None; as now where the
    record predates them)."""
    env = dict(os.environ)
    recorded = record.get("environment", {}).get("kernel_env")
    if recorded is not None:
        for key in PORTABLE_KERNELS:
            env.pop(key, None)
            if recorded.get(key) is not None:
                env[key] = recorded[key]
    return env


def verify_group(group: Group, rows: int = 6, data: dict[str, str] | None = None, timeout: float = 600) -> dict:
    """Rerun the first `rows` evaluations of the group's first seed at today's code and compare them."""
    seed = group.seeds[0]
    record = group.configs[seed]
    committed = group.rows(seed)[:rows]
    with tempfile.TemporaryDirectory() as tmp:
        command = rerun_command(record, group.experiment, Path(tmp), data or {})
        if isinstance(command, str):
            return {"status": f"not rerun: needs --{command.lower()}", "rows": 0}
        proc = subprocess.Popen(command, cwd=CODE, env=rerun_environment(record), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        start, written = time.time(), []
        while True:
            logs = list(Path(tmp).glob("**/seed_*/metrics.jsonl"))
            if logs:
                lines = logs[0].read_text().split("\n")[:-1]  # complete rows only
                written = [json.loads(line) for line in lines[:len(committed)]]
            if len(written) >= len(committed) or proc.poll() is not None or time.time() - start > timeout:
                break
            time.sleep(0.2)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        elif proc.returncode != 0 and len(written) < len(committed):
            error = (proc.stderr.read().strip().splitlines() or ["(no message)"])[-1]
            proc.stderr.close()
            if proc.returncode == 2:  # bad input: here, data or a model this machine lacks
                return {"status": f"not rerun: {error}", "rows": 0}
            return {"status": f"stale: the rerun failed ({error})", "rows": len(written)}
        proc.stderr.close()
    if len(written) < len(committed):
        return {"status": f"stale: the rerun wrote {len(written)} of {len(committed)} rows in {timeout:.0f} s",
                "rows": len(written)}
    return {"status": compare_rows(committed, written), "rows": len(committed), "seed": seed}


def committed_groups(root: Path = REPO_ROOT) -> list[Group]:
    paths = sorted({p.parent.parent.relative_to(root) for p in root.glob("*/figures/**/seed_*/metrics.jsonl")})
    return [Group(p, root) for p in paths]


CODE_FILES = ("*.py", "*.sh", "requirements*.txt", "pyproject.toml")  # what a rerun runs; docs and logs are not code


def head_commit() -> str:
    """The commit whose code a rerun ran, with '-dirty' when a code file (CODE_FILES) has uncommitted changes:
    documents and logs do not count, so a verify run's own docs/verified.json does not mark the next one."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CODE, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_FILES], cwd=CODE,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


# ---------------------------------------------------------------------------------------------- compare

def _defaults(experiment: str) -> dict:
    """The defaults of `experiment`'s config keys (its train.py's KEYS), or {}."""
    try:
        return {k: key.default for k, key in importlib.import_module(f"{experiment}.train").KEYS.items()}
    except (ImportError, AttributeError):
        return {}


def same_config(committed: dict, rerun: dict, defaults: dict) -> bool:
    """Whether two configs are one, seeds aside; a key that one of them predates counts at its default (a run
    logged before a key existed ran as its default does)."""
    missing = object()
    return all(committed.get(k, defaults.get(k, missing)) == rerun.get(k, defaults.get(k, missing))
               for k in (set(committed) | set(rerun)) - {"seed"})


def comparison(runs_dir: Path, report: Report):
    """(group, rows) for a rerun under `runs_dir`: the committed group with the same config and, per number of
    the experiment's `numbers` and shared seed, (name, seed, ours, yours, our spread, within it)."""
    records = {p.parent: json.loads(p.read_text()) for p in sorted(runs_dir.glob("**/seed_*/config.json"))}
    if not records:
        raise UsageError(f"no run folders (seed_<k>/config.json) under {runs_dir}")
    program = next(iter(records.values()))["argv"][0]
    experiment = program.split("/")[0] if program.endswith("/train.py") else ""
    if not experiment:
        raise UsageError(f"the runs under {runs_dir} were not started as <experiment>/train.py ({program}); "
                         f"cannot tell which experiment's numbers to compare")
    try:
        module = importlib.import_module(f"{experiment}.report")
    except ModuleNotFoundError:
        module = None
    if not hasattr(module, "numbers") or not hasattr(module, "spread"):
        raise UsageError(f"{experiment} declares no numbers to compare (its report.py has no `numbers` and `spread`)")
    configs = {json.dumps({k: v for k, v in r["config"].items() if k != "seed"}, sort_keys=True) for r in records.values()}
    if len(configs) != 1:
        raise UsageError(f"the runs under {runs_dir} have {len(configs)} different configs; give the folder of one run group")
    config = json.loads(configs.pop())
    others = getattr(module, "SPREAD_OTHERS", [])
    defaults = _defaults(experiment)
    ours = next((g for g in committed_groups(report.root) if g.experiment == experiment and str(g.path) not in others
                 and same_config(next(iter(g.configs.values()))["config"], config, defaults)), None)
    if ours is None:
        raise UsageError(f"no committed run group of {experiment} has the config of the runs under {runs_dir}")
    from .plumbing.runlog import load_runs

    mine, yours, spread = module.numbers(ours.frame), module.numbers(load_runs(runs_dir)), module.spread(report)
    shared = sorted(set(mine.index) & set(yours.index))
    if not shared:
        raise UsageError(f"the runs under {runs_dir} share no seed with ours ({', '.join(map(str, ours.seeds))})")
    rows = []
    for name in mine.columns:
        for seed in shared:
            a = float(mine.loc[seed, name])
            b = float(yours.loc[seed, name]) if name in yours else math.nan
            width = float(spread.get(name, math.nan))
            both_missing = not math.isfinite(a) and not math.isfinite(b)
            inside = both_missing or a == b or (math.isfinite(a - b) and math.isfinite(width) and abs(a - b) <= width)
            rows.append((name, seed, a, b, width, inside))
    return ours, module, rows


def compare(runs_dir: Path, report: Report) -> str:
    """Markdown: a rerun's per-seed numbers beside the committed group with the same config, and whether each
    lies within the spread the experiment measured over settings (its report.py's `spread`)."""
    ours, module, rows = comparison(runs_dir, report)
    lines = [f"Your runs under `{runs_dir}` beside ours ({report.source('ours', ours, module.COMMANDS)})", "",
             "| number | seed | ours | yours | difference | our spread over settings | within it |",
             "|---|---|---|---|---|---|---|"]
    for name, seed, a, b, width, inside in rows:
        difference = number(b - a) if math.isfinite(a - b) else "n/a"
        lines.append(f"| {name} | {seed} | {number(a)} | {number(b)} | {difference} | {number(width)} | "
                     f"{'yes' if inside else '**no**'} |")
    lines += ["", agreement_line(rows)]
    return "\n".join(lines) + "\n"


def agreement_line(rows) -> str:
    inside = sum(row[5] for row in rows)
    outside = sorted({row[0] for row in rows if not row[5]})
    line = (f"{inside} of {len(rows)} numbers lie within the spread we measured over kernel settings and thread "
            f"counts for the same seed (the largest difference between two of our settings' runs)")
    return line + (f"; outside it: {', '.join(outside)}." if outside else ".")


def agreement(runs_dir: Path) -> str | None:
    """One line for a training script's plot step: whether a rerun agrees with the committed group of the same
    config, or None when there is no such group (another config, or an experiment without a spread)."""
    try:
        _, _, rows = comparison(Path(runs_dir), Report(REPO_ROOT))
    except (UsageError, OSError, KeyError, ValueError, ImportError):
        return None
    return (f"Against our committed runs of this config: {agreement_line(rows)} Per number: python -m common.report "
            f"--compare {runs_dir}")


# ---------------------------------------------------------------------------------------------- command line

class Differs(Exception):
    """A committed table differs from what the logs give (--check)."""


def update(root: Path = REPO_ROOT, check: bool = False) -> list[Path]:
    """Rewrite every marked table of the repository's documents from the logs (the files that changed), or with
    `check` raise Differs naming the first table that would change."""
    report, changed = Report(root), []
    for path in documents(root):
        old = path.read_text()
        new = render(old, report, str(path.relative_to(root)))
        if new != old:
            if check:
                raise Differs(f"{path.relative_to(root)} differs from what the logs give, at {first_difference(old, new)}"
                              f"\n(run `python -m common.report` to rewrite it, and commit)")
            path.write_text(new)
            changed.append(path)
    return changed


def redraw(root: Path = REPO_ROOT) -> list[str]:
    """Redraw the committed figures from the committed logs: each experiment's report.py lists, in FIGURES,
    the plot commands (python -m ... argument lists, run from the repository root) that write them."""
    done = []
    for marker_file in documents(root):
        for name in MARKER.findall(marker_file.read_text()):
            experiment = name[1].rpartition(".")[0]
            if experiment == "common" or experiment in done:
                continue
            done.append(experiment)
            for command in getattr(importlib.import_module(f"{experiment}.report"), "FIGURES", []):
                subprocess.run([sys.executable, "-m", *command], cwd=root, check=True, stdout=subprocess.DEVNULL)
                print(f"redrew: python -m {' '.join(command)}", flush=True)
    return done


def verify(root: Path = REPO_ROOT, rows: int = 6, only: str | None = None, data: dict[str, str] | None = None,
           write: bool = True) -> dict[str, dict]:
    """--verify: each committed group's result (printed as it comes), merged into docs/verified.json."""
    path = root / VERIFIED
    previous = json.loads(path.read_text()) if path.exists() else {}
    results, commit = {}, head_commit()
    for group in committed_groups(root):
        if only and only not in str(group.path):
            continue
        result = verify_group(group, rows, data)
        print(f"{group.path.as_posix()}: {result['status']}", flush=True)
        if not result["status"].startswith("not rerun"):
            results[str(group.path)] = {**result, "commit": commit}
    if write:
        path.write_text(json.dumps({**previous, **results}, indent=1, sort_keys=True) + "\n")
    return results


@entry_point
def main(argv=None):
    from .plumbing.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m common.report", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 naming the first table that differs from the logs")
    mode.add_argument("--verify", action="store_true", help="rerun the first rows of each committed run group")
    mode.add_argument("--compare", metavar="RUNS_DIR", help="your rerun's numbers beside ours")
    parser.add_argument("--rows", type=int, default=6, help="--verify: evaluations to rerun per group [default 6]")
    parser.add_argument("--only", default=None, help="--verify: only groups whose path contains this text")
    parser.add_argument("--data_dir", default=None, help="--verify: fills <DATA_DIR> of runs that read data")
    parser.add_argument("--no_write", action="store_true", help="--verify: print only; leave docs/verified.json")
    parser.add_argument("--no_figures", action="store_true", help="rewrite the tables only, not the committed PNGs")
    args = parser.parse_args(argv)
    if args.rows < 1:
        raise UsageError(f"--rows must be >= 1, got {args.rows}")
    if args.compare:
        folder = Path(args.compare)
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder; give the folder of your run group (e.g. runs/<experiment>/cpu)")
        print(compare(folder, Report(REPO_ROOT)))
        return 0
    if args.verify:
        data = {"DATA_DIR": args.data_dir} if args.data_dir else {}
        results = verify(REPO_ROOT, rows=args.rows, only=args.only, data=data, write=not args.no_write)
        if any(r["status"].startswith("stale") for r in results.values()):
            raise SystemExit(1)
        return 0
    try:
        changed = update(REPO_ROOT, check=args.check)
    except Differs as err:
        print(err, file=sys.stderr)
        raise SystemExit(1) from None
    if not args.check:
        print("\n".join(f"rewrote {p.relative_to(REPO_ROOT)}" for p in changed) or "every table is up to date")
        if not args.no_figures:
            redraw(REPO_ROOT)
    return 0


if __name__ == "__main__":
    main()
