"""The rf benchmark runs in-process on the CPU-preset shapes and reports consistent numbers."""

import torch

from benchmarks.bench_rf import main


def test_bench_rf_runs_on_the_cpu_preset_shapes(capsys):
    threads = torch.get_num_threads()
    rows = main(["--shapes", "cpu", "--repeats", "2", "--threads", "1"])
    assert torch.get_num_threads() == threads  # restored
    assert len(rows) == 1 and rows[0]["shape"].startswith("cpu preset")
    row = rows[0]
    assert row["step_s"] > 0 and row["step_reg_s"] > 0 and row["epoch_s"] == 16 * row["step_reg_s"]
    assert row["metric_share"] == row["metric_s"] / row["epoch_s"] and row["metric_s"] > 0
    assert "| cpu preset" in capsys.readouterr().out
