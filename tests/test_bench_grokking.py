import torch

from benchmarks import bench_grokking


def test_bench_grokking_runs_and_prints_its_table(capsys):
    threads = torch.get_num_threads()
    rows = bench_grokking.main(["--threads", "1", "--steps", "2", "--evals", "1"])
    assert torch.get_num_threads() == threads  # restored
    out = capsys.readouterr().out
    assert len(rows) == 1 and rows[0]["step_s"] > 0 and rows[0]["eval_s"] > 0 and rows[0]["n_evals"] == 622
    assert "| threads | training step |" in out and "|---|" in out
