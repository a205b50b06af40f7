"""The text benchmark runs in-process on a tiny shape and its projections follow from what it timed."""

import pytest
import torch

from benchmarks.bench_text import main


def test_bench_text_runs_and_projects_from_its_timings(capsys):
    threads = torch.get_num_threads()
    rows = main(["--models", "tiny", "--tokens", "12", "--repeats", "2", "--threads", "1"])
    assert torch.get_num_threads() == threads
    (row,) = rows
    assert row["parameters"] == 100 * 16 + 256 * 16 + 2 * 16 + 2 * 16 + (4 * (16 * 16 + 16) + 2 * 16) + \
        (16 * 32 + 32 + 32 * 16 + 16 + 2 * 16) + (16 * 16 + 16) + (5 * 16 + 5)  # embeddings, one layer, pooler, head
    paper = 1068 * row["step_s"] + (8544 + 1101) * row["eval_text_s"]  # 8544 texts in batches of 8
    assert row["paper_epoch_s"] == pytest.approx(paper) and row["paper_run_h"] == pytest.approx(paper * 300 / 3600)
    assert "| tiny |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--models", "gpt5"])
    assert exc.value.code == 2
