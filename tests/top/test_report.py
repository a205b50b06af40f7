"""common.report: every published table from committed logs; --check, --verify, --compare."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from common import report
from common.report import (Differs, Group, Report, compare_rows, number, per_seed, rerun_command, rerun_environment,
                           span, steps, update, value_range, verdict, verify_group)
from common.plumbing.seeding import PORTABLE_KERNELS

REPO = Path(__file__).resolve().parents[2]
CPU = "grokking_nc_rf/figures/cpu"
PAPER = "grokking_nc_rf/figures/paper"


def test_number_formats_against_hand_computed_strings():
    assert number(1888.0) == "1,888" and number(100000.0) == "100,000"
    assert number(20340.5) == "2.03e4" and number(364123.7) == "3.64e5" and number(9770.3) == "9.77e3"
    assert number(0.04567) == "0.0457" and number(254.33) == "254" and number(254.33, 4) == "254.3"
    assert number(99.96, 2) == "100" and number(-0.00085) == "-0.00085"
    assert number(float("nan")) == "n/a"
    # mean 1789; deviations -179, 232, -53; sample variance (32041 + 53824 + 2809) / 2 = 44337; sqrt = 210.6
    assert steps([1610, 2021, 1736]) == "1,789 ± 211"
    assert steps([2190]) == "2,190" and steps([1, float("nan")]) == "1 (1 of 2 seeds)"
    # mean 844.7; deviations -1357.7, 202.3, 1155.3; sample variance 3218993 / 2 = 1609497; sqrt = 1268.7
    assert steps([-513, 1047, 2000], "+") == "+845 ± 1,269" and steps([7, float("nan")], "+") == "+7 (1 of 2 seeds)"
    assert steps([10, float("nan"), 20]) == "15 ± 7 (2 of 3 seeds)" and steps([float("nan")]) == "not reached"
    assert span([47.84, 48.89, 48.31]) == "48.3 (47.8-48.9)" and span([47.84]) == "47.8"
    assert value_range([0.5, 0.25, 0.4]) == "0.25-0.5" and value_range([3.0, 3.0]) == "3"
    assert value_range([-1.72, -0.679]) == "-1.72 to -0.679" and value_range([float("nan"), 2.0]) == "2"
    assert value_range([float("nan")]) == "none"
    assert per_seed([0.359, 0.4241, 0.26]) == "0.359 / 0.424 / 0.26"


def test_a_check_cell_says_not_reached_where_no_seed_reaches_an_event():
    from grokking_nc_rf.report import ROWS, _cell

    cell = dict((key, text) for _, key, text in ROWS)["val_acc_100"]
    nan = float("nan")
    assert _cell(cell, {"val_acc >= 90%": [900, 1100], "val_acc >= 99%": [nan, nan]}) == "90% at 1,000 ± 141, 99% not reached"
    assert _cell(cell, {"val_acc >= 90%": [nan], "val_acc >= 99%": [nan]}) == "90% not reached, 99% not reached"
    assert _cell(cell, {"val_acc >= 90%": [7]}) == "not logged (val_acc >= 99%)"


def test_verdict_counts_the_seeds_a_claim_holds_for():
    assert verdict([True, True, True]) == "yes" and verdict([False, False]) == "no"
    assert verdict([True, False, True]) == "in 2 of 3 seeds" and verdict([False], no="**no**") == "**no**"


def test_unplug_numbers_and_search_table_against_a_hand_made_run():
    """Fig. 4's numbers of a 6-epoch run with unplug at epoch 2, read off by hand."""
    import pandas as pd

    from common.unplug.figure import search_table, unplug_numbers

    run = pd.DataFrame({"epoch": [1, 2, 3, 4, 5, 6], "seed": 7, "unplug_epoch": 2, "regularizer": "rf",
                        "max_norm": 3.0, "dataset": "fashion_mnist",  # saturation 3^2 (1 - 1/10) = 8.1
                        "train_acc": [0.5, 0.2, 0.3, 0.6, 0.9, 1.0], "val_acc": [0.4, 0.1, 0.2, 0.5, 0.7, 0.6],
                        "train_rf_bound": [5.0, 50.0, 80.0, 40.0, 20.0, 9.0],
                        "train_reg_running": [8.05, 8.1, 3.0, 2.0, 1.0, 0.5], "w_norm": [2.0, 3.0, 3.0, 2.5, 2.0, 1.5]})
    row = unplug_numbers(run).loc[7]
    assert row["saturation"] == pytest.approx(8.1) and row["term at 99% of saturation from epoch"] == 1
    assert row["term at unplug"] == 8.1 and row["RF bound at unplug"] == 50.0 and row["final RF bound"] == 9.0
    assert row["RF bound: highest in the 5 epochs after unplug"] == 80.0  # epochs 3-6 (7 is not logged)
    assert row["val acc at epoch 5"] == 0.7 and row["best val acc after unplug"] == 0.7
    assert row["best val acc after unplug: epoch"] == 5 and row["train acc >= 0.99 again after unplug: epoch"] == 6
    assert row["val acc 10 epochs after unplug"] != row["val acc 10 epochs after unplug"]  # epoch 12: NaN
    table = search_table([("a run", run)], seed=7, epochs=(1, 6, 9)).splitlines()
    assert table[0] == ("| run | train / val acc at epoch 1 | train / val acc at epoch 6 | train / val acc at epoch 9 "
                        "| RF bound at epoch 2 | regulariser at epoch 2 | largest ‖W‖_F until epoch 2 |")
    assert table[2] == "| a run | 0.50 / 0.40 | 1.00 / 0.60 | not run | 50 | 8.1 | 3 |"


def test_compare_rows_tells_identical_close_and_stale_apart():
    rows = [{"step": 0, "loss": 2.5, "acc": 0.1, "train_s": 1.0}, {"step": 10, "loss": 2.0, "acc": float("nan")}]
    same = [dict(r, train_s=9.0) for r in rows]
    assert compare_rows(rows, same) == "identical"
    assert compare_rows(rows, [dict(r, new_metric=1.0) for r in same]) == "identical"  # a metric added since
    close = [dict(rows[0], loss=2.5 * (1 + 1e-6)), rows[1]]
    assert compare_rows(rows, close).startswith("within tolerance (largest relative difference 1.0e-06")
    moved = [rows[0], dict(rows[1], loss=2.01)]
    assert compare_rows(rows, moved) == "stale: row 1 (step 10), loss is 2.01 now, 2.0 committed"
    gone = [rows[0], {"step": 10, "acc": float("nan")}]
    assert compare_rows(rows, gone) == "stale: row 1 (step 10), loss is no longer logged"


def test_rerun_command_and_environment_come_from_config_json(tmp_path, monkeypatch):
    record = {"argv": ["nc_experiments/train.py", "--seed", "1", "--data_dir", "<DATA_DIR>", "--out_dir", "runs",
                       "--threads", "1", "--no_progress", "--preset", "cpu"],
              "environment": {"threads": 1, "kernel_env": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": None,
                                                           "ONEDNN_MAX_CPU_ISA": "AVX2"}}}
    assert rerun_command(record, "nc_experiments", tmp_path, {}) == "DATA_DIR"
    assert rerun_command(record, "nc_experiments", tmp_path, {"DATA_DIR": "/d"}) == [
        sys.executable, "-m", "nc_experiments.train", "--seed", "1", "--data_dir", "/d", "--preset", "cpu",
        "--out_dir", str(tmp_path), "--no_progress", "--threads", "1"]
    old = {"argv": ["grokking_nc_rf/train.py", "--threads", "2", "--out_dir=runs"]}  # before `environment` was recorded
    assert rerun_command(old, "grokking_nc_rf", tmp_path, {})[3:] == ["--threads", "2", "--out_dir", str(tmp_path),
                                                                     "--no_progress"]
    assert rerun_environment(old) == dict(__import__("os").environ)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    env = rerun_environment(record)
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and "MKL_CBWR" not in env and env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert set(PORTABLE_KERNELS) == {"ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"}


def _copy_groups(root: Path, paths, tamper=None):
    """Copy committed groups' config.json and metrics.jsonl under `root`; `tamper(rows)` may edit seed rows."""
    for path in paths:
        for seed_dir in sorted((REPO / path).glob("seed_*")):
            target = root / path / seed_dir.name
            target.mkdir(parents=True)
            shutil.copy(seed_dir / "config.json", target)
            lines = (seed_dir / "metrics.jsonl").read_text().splitlines()
            if tamper is not None:
                rows = [json.loads(line) for line in lines]
                tamper(rows)
                lines = [json.dumps(r) for r in rows]
            (target / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (root / "docs").mkdir(exist_ok=True)
    shutil.copy(REPO / report.PAPER_NUMBERS, root / report.PAPER_NUMBERS)


def test_the_committed_tables_are_what_the_logs_give():
    """What CI checks: every marked table in the repository's documents equals what common.report writes."""
    update(REPO, check=True)


def test_check_fails_on_a_hand_edited_number_and_names_it(tmp_path, monkeypatch, capsys):
    _copy_groups(tmp_path, [CPU, PAPER])
    (tmp_path / "README.md").write_text("Prose.\n\n<!-- report grokking_nc_rf.onsets -->\nold\n<!-- /report -->\nEnd.\n")
    assert update(tmp_path) == [tmp_path / "README.md"]
    written = (tmp_path / "README.md").read_text()
    assert written.startswith("Prose.\n\n<!-- report grokking_nc_rf.onsets -->\n| event |") and written.endswith(
        "<!-- /report -->\nEnd.\n")
    update(tmp_path, check=True)
    line = next(line for line in written.splitlines() if line.startswith("| val_acc >= 90% |"))
    edited = line.replace("±", "+-")
    (tmp_path / "README.md").write_text(written.replace(line, edited))
    with pytest.raises(Differs) as err:
        update(tmp_path, check=True)
    assert f"committed: {edited}" in str(err.value) and f"from logs: {line}" in str(err.value)
    monkeypatch.setattr(report, "REPO_ROOT", tmp_path)
    with pytest.raises(SystemExit) as exit_:
        report.main(["--check"])
    assert exit_.value.code == 1 and "README.md differs from what the logs give" in capsys.readouterr().err


def test_verify_reruns_the_first_rows_of_each_data_free_group():
    """What CI runs instead of `--verify` over every group: the groups that need no downloaded data (grokking)
    rerun their first rows at today's code in their recorded environment and match the committed rows."""
    groups = [g for g in report.committed_groups(REPO) if g.experiment == "grokking_nc_rf"]
    assert {str(g.path) for g in groups} >= {CPU, PAPER}
    for group in groups:
        result = verify_group(group, rows=3)
        assert result["status"] == "identical" or result["status"].startswith("within tolerance"), (group.path, result)


def test_verify_marks_a_group_whose_rows_moved_as_stale(tmp_path):
    def tamper(rows):
        rows[1]["train_loss"] *= 1.01
    _copy_groups(tmp_path, [CPU], tamper)
    result = verify_group(Group(Path(CPU), tmp_path), rows=3)
    assert result["status"].startswith("stale: row 1 (step 10), train_loss is"), result


def test_compare_says_whether_a_rerun_lies_within_the_measured_spread(tmp_path):
    from grokking_nc_rf import report as grokking

    _copy_groups(tmp_path, [CPU])
    table = report.compare(tmp_path / CPU, Report(REPO))
    assert "| val_acc >= 90% | 1 |" in table and "**no**" not in table
    counts = table.splitlines()[-1].split(" of ")
    assert counts[0] == counts[1].split(" ")[0]  # all of them

    def late(rows):  # validation accuracy held at its initial value until step 3,000
        for r in rows:
            if r["step"] < 3000:
                r["val_acc"] = rows[0]["val_acc"]
    moved = tmp_path / "moved"
    _copy_groups(moved, [CPU], late)
    table = report.compare(moved / CPU, Report(REPO))
    width = grokking.spread(Report(REPO))["val_acc >= 90%"]
    assert width < 1000  # our settings move this onset by less than the tampering does (>= 1,000 steps)
    rows = [line for line in table.splitlines() if line.startswith("| val_acc >= 90% |")]
    assert len(rows) == 3 and all(line.endswith("| **no** |") for line in rows)


def test_a_rerun_finds_a_committed_group_that_predates_a_config_key(tmp_path):
    """The committed paper-preset group was logged before --grokfast_* existed: a rerun of the same preset, whose
    config holds those keys at their defaults, is still compared with it; at another value it is not."""
    from grokking_nc_rf.train import KEYS

    defaults = {k: key.default for k, key in KEYS.items()}
    old = json.loads((REPO / PAPER / "seed_42" / "config.json").read_text())["config"]
    assert "grokfast_lamb" not in old
    assert report.same_config(old, {**old, "grokfast_lamb": 0.0, "grokfast_alpha": 0.98, "seed": 1}, defaults)
    assert not report.same_config(old, {**old, "grokfast_lamb": 2.0}, defaults)
    assert not report.same_config(old, {**old, "no_such_key": 1}, defaults)
    _copy_groups(tmp_path, [PAPER])
    for config_path in (tmp_path / PAPER).glob("seed_*/config.json"):
        record = json.loads(config_path.read_text())
        record["config"].update(grokfast_lamb=0.0, grokfast_alpha=0.98)
        config_path.write_text(json.dumps(record))
    ours, _, rows = report.comparison(tmp_path / PAPER, Report(REPO))
    assert str(ours.path) == PAPER and all(row[5] for row in rows)


def test_the_verifying_commit_is_dirty_only_for_changed_code(tmp_path, monkeypatch):
    """A rerun records the commit of the code it ran: a changed document or log (docs/verified.json, written by
    the previous --verify) leaves it clean, a changed .py file marks it -dirty."""
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "verified.json").write_text("{}\n")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(report, "CODE", tmp_path)
    head = report.head_commit()
    assert len(head) == 40
    (tmp_path / "docs" / "verified.json").write_text('{"a": 1}\n')
    assert report.head_commit() == head
    (tmp_path / "train.py").write_text("x = 2\n")
    assert report.head_commit() == head + "-dirty"


def test_grokfast_table_says_each_seeds_validation_accuracy(tmp_path):
    """The plain-against-Grokfast table of the CPU preset: until both groups are committed it names their
    commands; then its accuracy line gives each seed's last and highest val_acc, read here from the rows."""
    from grokking_nc_rf import report as grokking

    plain, fast = grokking.GROKFAST["cpu"]
    _copy_groups(tmp_path, [plain])
    assert grokking.grokfast(Report(tmp_path), "cpu").startswith(f"Not run yet: `{grokking.COMMANDS[fast]}`")
    _copy_groups(tmp_path, [fast])
    table = grokking.grokfast(Report(tmp_path), "cpu")
    for label, path in (("plain", plain), ("Grokfast", fast)):
        last, best = [], []
        for seed in (1, 42, 15213):
            rows = [json.loads(line) for line in (REPO / path / f"seed_{seed}" / "metrics.jsonl").open()]
            accuracy = [r["val_acc"] for r in sorted(rows, key=lambda r: r["step"]) if r.get("val_acc") is not None]
            last.append(100 * accuracy[-1])
            best.append(100 * max(accuracy))
        assert f"{label} {per_seed(last)}% at the end (highest {per_seed(best)}%)" in table
        # the fall line, by hand: curves as common.analysis reads them (running median of 3, the ends kept); the
        # first evaluation after the bound's peak at or below 10% of it, and the first at val_acc >= 90%
        fall, ninety = [], []
        for seed in (1, 42, 15213):
            rows = sorted((json.loads(line) for line in (REPO / path / f"seed_{seed}" / "metrics.jsonl").open()),
                          key=lambda r: r["step"])
            step = [r["step"] for r in rows]
            bound, acc = ([rows[0][k]] + [sorted(r[k] for r in rows[i - 1:i + 2])[1] for i in range(1, len(rows) - 1)]
                          + [rows[-1][k]] for k in ("train_rf_bound", "val_acc"))
            top = bound.index(max(bound))
            fall.append(next(f"{step[i]:,}" for i in range(top + 1, len(step)) if bound[i] <= 0.1 * bound[top]))
            ninety.append(next(f"{s:,}" for s, a in zip(step, acc) if a >= 0.9))
        assert f"{label} {' / '.join(fall)} against {' / '.join(ninety)}" in table
