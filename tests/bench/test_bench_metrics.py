"""The metric benchmark runs (quick mode, in-process) and its loop references agree with `common`."""

import torch

from benchmarks.bench_metrics import main


def test_quick_benchmark_runs_and_loops_agree_with_common(capsys):
    threads = torch.get_num_threads()
    rows = main(["--quick"])
    assert torch.get_num_threads() == threads  # the benchmark restores the thread count

    assert len(rows) == 7
    for row in rows:
        assert row["vectorised_s"] > 0, row["metric"]
        if row["loop_s"] is not None:
            assert row["loop_s"] > 0 and row["speedup"] == row["loop_s"] / row["vectorised_s"], row["metric"]
        if row["rel_diff"] is not None:  # every row but the full metric set has a loop to check against
            assert row["rel_diff"] < 1e-3, (row["metric"], row["rel_diff"])
    assert sum(row["rel_diff"] is not None for row in rows) == 6

    out = capsys.readouterr().out
    assert "| metric |" in out and "extrapolated" in out and "threads: 1" in out
