"""--tracker and `python -m common.export`: what the trackers wrote, read back, against metrics.jsonl, value by
value (TensorBoard through its own event reader, W&B offline through its run files), a kill and resume
included; bad or missing trackers are one line before anything is written."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.util import tensor_util

from common import UsageError, read_metrics
from common.plumbing import trackers

REPO = Path(__file__).resolve().parents[2]
GROK = ["--preset", "cpu", "--modulus", "11", "--steps", "40", "--eval_points", "6", "--batch_size", "16",
        "--threads", "1", "--no_progress"]


def tensorboard_values(folder):
    """{key: [(x, value), ...]} of the scalars, {key: [(x, count), ...]} of the histograms, as TensorBoard shows
    them (its plugin event accumulator: a restarted writer's purge of later steps applied)."""
    acc = plugin_event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    scalars, histograms = {}, {}
    for tag in acc.Tags()["tensors"]:
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        arrays = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
        if plugin == "scalars":
            scalars[tag] = [(step, float(a)) for step, a in arrays]
        elif plugin == "histograms":
            histograms[tag] = [(step, int(round(a[:, 2].sum()))) for step, a in arrays]
    return scalars, histograms


def assert_mirrors(folder, rows, x_key):
    """Every number of every row at its x, exactly (float64), once; every list as a histogram of its length."""
    scalars, histograms = tensorboard_values(folder)
    expected, lists = {}, {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (bool, int, float)):
                expected.setdefault(key, []).append((row[x_key], float(value)))
            elif isinstance(value, list):
                lists.setdefault(key, []).append((row[x_key], len(value)))
    assert set(scalars) == set(expected)
    for key, pairs in expected.items():
        got = sorted(scalars[key])
        assert len(got) == len(pairs), key  # no point twice
        for (x, value), (gx, gvalue) in zip(pairs, got):
            assert gx == x and (gvalue == value or (math.isnan(value) and math.isnan(gvalue))), (key, x)
    assert {k: sorted(v) for k, v in histograms.items()} == lists


def test_both_trackers_mirror_every_row_of_a_killed_and_resumed_run(tiny_fashion_mnist, tmp_path):
    """nc_experiments (x: the epoch; lists: the class-mean angles) with --tracker tensorboard,wandb (offline),
    SIGKILLed mid-run and resumed: the event files and the W&B history hold each row of metrics.jsonl once,
    those written before the kill included."""
    flags = ["--preset", "cpu", "--data_dir", str(tiny_fashion_mnist[0]), "--train_size", "30", "--val_size", "20",
             "--epochs", "12", "--batch_size", "8", "--width", "2", "--running_metrics", "--threads", "1",
             "--no_progress", "--tracker", "tensorboard,wandb", "--out_dir", str(tmp_path)]
    cmd = [sys.executable, "-m", "nc_experiments.train", *flags]
    env = dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="offline", WANDB_DIR=str(tmp_path))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = None
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list(tmp_path.rglob("metrics.jsonl"))
        if found and len(read_metrics(found[0])) >= 4:
            run = found[0].parent
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run is not None and not (run / "finished.json").exists()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    rows = read_metrics(run / "metrics.jsonl")
    assert len(rows) == 12
    assert_mirrors(run / "tensorboard", rows, "epoch")
    # W&B offline cannot resume a run: the resumed process wrote a second offline run folder (same id), with
    # the rows from the resume on; together they hold every row once
    history, _ = wandb_history(run)
    assert len(list((run / "wandb").glob("offline-run-*"))) == 2
    assert sorted(h["_step"] for h in history) == [row["epoch"] for row in rows]
    for got in history:
        row = rows[got["_step"] - 1]
        assert got["val_acc"] == row["val_acc"] and got["train_ncc"] == row["train_ncc"]


def test_a_row_sent_but_not_recorded_before_a_kill_is_shown_once(tmp_path):
    """The one instant a kill can leave a row sent but not recorded as sent (trackers_sent.json behind the event
    file): the resumed run sends it again and TensorBoard's purge keeps one copy."""
    import torch

    from common import RunLog

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    config = {"seed": 0, "epochs": 5}
    log = RunLog(tmp_path, config, argv=["x"], trackers=("tensorboard",))
    for epoch in (1, 2, 3):
        log.append({"epoch": epoch, "loss": epoch / 7, "angles": [1.0, 2.0]})
        log.save_checkpoint(epoch, model, optimizer)
    log.close()
    (tmp_path / "trackers_sent.json").write_text('{"tensorboard": 2}')  # row 3 sent, the record not yet written
    log = RunLog(tmp_path, config, argv=["x"], trackers=("tensorboard",))
    assert log.resume(model, optimizer)["step"] == 3
    log.append({"epoch": 4, "loss": 4 / 7, "angles": [3.0]})
    log.save_checkpoint(4, model, optimizer)
    log.mark_finished()
    log.close()
    assert json.loads((tmp_path / "trackers_sent.json").read_text()) == {"tensorboard": 4}
    assert_mirrors(tmp_path / "tensorboard", read_metrics(tmp_path / "metrics.jsonl"), "epoch")


def test_export_writes_the_committed_runs_as_tensorboard_logs(tmp_path):
    """python -m common.export on a committed group: each seed's log mirrors its metrics.jsonl (x: the step)."""
    group = REPO / "grokking_nc_rf" / "figures" / "cpu"
    proc = subprocess.run([sys.executable, "-m", "common.export", "--tensorboard", str(group), str(tmp_path / "tb")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "3 runs written" in proc.stdout
    assert_mirrors(tmp_path / "tb" / "seed_42" / "tensorboard", read_metrics(group / "seed_42" / "metrics.jsonl"), "step")
    proc = subprocess.run([sys.executable, "-m", "common.export", "--tensorboard", str(tmp_path / "none"),
                           str(tmp_path / "tb2")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def wandb_records(path):
    """The records of a W&B run file (.wandb): after a 7-byte header (':W&B', magic, version), LevelDB's log
    format: 32 KiB blocks of chunks, each a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle,
    4 last) and its bytes, a block's tail under 7 bytes left as padding."""
    import struct

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, record = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):
            pos += left
            continue
        record += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            yield record
            record = b""


def wandb_history(run_dir):
    """The history rows and the summary of every offline W&B run folder under run_dir/wandb."""
    from wandb.proto import wandb_internal_pb2

    key = lambda item: item.key or "/".join(item.nested_key)  # noqa: E731
    rows, summary = [], {}
    for file in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        for data in wandb_records(file):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "history":
                rows.append({key(item): json.loads(item.value_json) for item in record.history.item})
            elif kind == "summary":
                summary.update({key(item): json.loads(item.value_json) for item in record.summary.update})
    return rows, summary


def test_wandb_offline_logs_every_row_once_with_the_run_id_kept(tmp_path, monkeypatch):
    """grokking_nc_rf (x: the step) with WANDB_MODE=offline: the history holds each row's numbers at its step,
    once, the id sits in the run folder, and a rerun of the finished run sends nothing."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from grokking_nc_rf import train

    train.main(GROK + ["--tracker", "wandb", "--out_dir", str(tmp_path)])
    run = train.parse_args(GROK + ["--out_dir", str(tmp_path)]).run_dir
    rows = read_metrics(run / "metrics.jsonl")
    history, summary = wandb_history(run)
    assert [h["_step"] for h in history] == [row["step"] for row in rows]
    for got, row in zip(history, rows):
        for key, value in row.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                assert got[key] == pytest.approx(value, rel=1e-12, abs=0), key
    assert summary["val_acc"] == pytest.approx(rows[-1]["val_acc"])
    assert len((run / "wandb_id.txt").read_text().strip()) > 4
    train.main(GROK + ["--tracker", "wandb", "--out_dir", str(tmp_path)])  # finished: nothing more
    assert len(wandb_history(run)[0]) == len(rows)


def test_bad_or_missing_tracker_is_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from grokking_nc_rf import train

    with pytest.raises(SystemExit) as exit_info:
        train.main(GROK + ["--tracker", "mlflow", "--out_dir", str(tmp_path)])
    assert exit_info.value.code == 2 and "--tracker 'mlflow'" in capsys.readouterr().err
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match="pip install -r requirements-trackers.txt"):
        trackers.parse_trackers("tensorboard,wandb")
    with pytest.raises(SystemExit):
        train.main(GROK + ["--tracker", "wandb", "--out_dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())
    assert trackers.parse_trackers("none") == ()
    monkeypatch.undo()
    monkeypatch.setenv("WANDB_MODE", "online")  # online without a login: one line, never a prompt
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    with pytest.raises(UsageError, match="WANDB_MODE=offline"):
        trackers.parse_trackers("wandb")
