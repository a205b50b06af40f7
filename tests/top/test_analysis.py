"""common.analysis: events found on hand-made curves, a spike that is not a peak, the bootstrap, the CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from common import RunLog
from common.analysis import REFERENCE, Event, bootstrap_interval, main, onset_table, onsets, smoothed

STEPS = [0, 10, 20, 30, 40, 50, 60, 70, 80]


def run(**curves):
    return pd.DataFrame({"step": STEPS, **curves})


def test_events_by_hand():
    frame = run(val_acc=[0.0, 0.0, 0.1, 0.3, 0.6, 0.9, 1.0, 1.0, 1.0],
                rf=[1, 2, 5, 9, 7, 4, 2, 1, 1],
                ncc=[10, 9, 8, 5, 2, 0.9, 0.5, 0.4, 0.4])
    events = [Event("rf peak", "rf", "max"), Event("rf < 30% of peak after it", "rf", "below", 0.3, "peak", after="rf peak"),
              Event("ncc < 10% of initial", "ncc", "below", 0.1, relative="initial"),
              Event("ncc low before rf peak", "ncc", "min", before="rf peak"),
              Event("missing", "no_such_metric", "max")]
    found = onsets(frame, events, smooth=1)
    # val_acc goes 0 -> 1: half-way (0.5) first reached at step 40; rf peaks at 30; below 0.3 * 9 = 2.7 after 30:
    # 2 at step 60; ncc below 1.0 at 50; the lowest ncc up to step 30 is at 30.
    assert found == {REFERENCE.name: 40, "rf peak": 30, "rf < 30% of peak after it": 60, "ncc < 10% of initial": 50,
                     "ncc low before rf peak": 30, "missing": found["missing"]} and np.isnan(found["missing"])


def test_a_one_evaluation_spike_is_not_a_peak_nor_a_crossing():
    loss = [2.0, 2.1, 2.2, 2.3, 9.0, 2.2, 1.0, 0.5, 0.1]  # the true hump is at 30; step 40 spikes once
    acc = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]  # one evaluation at 1.0, then the real rise at 70
    frame = run(val_acc=acc, val_loss=loss)
    events = [Event("loss peak", "val_loss", "max"), Event("acc >= 0.9", "val_acc", "above", 0.9)]
    raw, median = onsets(frame, events, smooth=1), onsets(frame, events, smooth=3)
    assert raw["loss peak"] == 40 and raw["acc >= 0.9"] == 40
    assert median["loss peak"] == 30 and median["acc >= 0.9"] == 70
    assert smoothed(np.array(loss), 3)[3] == pytest.approx(2.3)  # median of 2.2, 2.3, 9.0
    assert smoothed(np.array(loss), 3)[[0, -1]].tolist() == [2.0, 0.1]  # the ends keep their values
    assert smoothed(np.array(loss), 5)[2] == pytest.approx(2.2)  # median of 2.0, 2.1, 2.2, 2.3, 9.0


def test_bootstrap_interval_matches_a_direct_resampling():
    values = np.array([100.0, 140.0, 180.0, 400.0])
    low, high = bootstrap_interval(values, resamples=20_000)
    rng = np.random.default_rng(1)  # an independent resampling, another seed: the same interval to sampling error
    means = np.array([rng.choice(values, 4).mean() for _ in range(20_000)])
    assert low == pytest.approx(np.percentile(means, 2.5), abs=8) and high == pytest.approx(np.percentile(means, 97.5), abs=8)
    assert values.min() <= low < values.mean() < high <= values.max()


def write_run(root, group, seed, rows):
    log = RunLog(root / group / f"seed_{seed}", {"seed": seed})
    for row in rows:
        log.append(row)
    log.close()


def test_cli_table_per_seed_and_summary(tmp_path, capsys):
    for seed, shift in ((1, 0), (2, 10), (3, 20)):
        rows = [{"step": s, "val_acc": float(s >= 40 + shift), "rf": float(-abs(s - 30 - shift))} for s in STEPS]
        write_run(tmp_path, "cpu", seed, rows)
    write_run(tmp_path, "other", 1, [{"step": s, "val_acc": 0.0, "rf": 0.0} for s in STEPS])
    table = main([str(tmp_path), "--events", "generic", "--smooth", "1"])
    assert table.loc[("cpu", 1), "rf max"] == 30 and table.loc[("cpu", 3), "rf max"] == 50
    assert table.loc[("cpu", 2), REFERENCE.name] == 50 and np.isnan(table.loc[("other", 1), REFERENCE.name])
    markdown = (tmp_path / "onsets.md").read_text()
    # the reference, val_acc max and min, rf max and min, each with its lag; no lag where there is no rise
    assert "| cpu | 2 | 50 (+0) | 50 (+0) | 0 (-50) | 40 (-10) | 0 (-50) |" in markdown
    assert "| other | 1 | not reached | 0 | 0 | 0 | 0 |" in markdown
    assert "| cpu | rf max | 3/3 | 40 ± 10 | [30, 50] | -10 |" in markdown
    assert "| other | rf max | 1/1 | 0 ± 0 | [0, 0] | no val_acc rise |" in markdown
    csv = pd.read_csv(tmp_path / "onsets.csv")
    assert set(csv.columns) == {"group", "seed", "event", "step", "lag"} and len(csv) == 4 * 5  # 4 runs, 5 events


def test_cli_bad_input(tmp_path, capsys):
    for argv, message in (([str(tmp_path / "none")], "is not a folder"), ([str(tmp_path)], "no metrics.jsonl"),
                          ([str(tmp_path), "--smooth", "0"], "--smooth must be >= 1")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and message in err
