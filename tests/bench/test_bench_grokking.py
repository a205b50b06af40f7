import torch

from benchmarks import bench_grokking
from grokking_nc_rf import train
from grokking_nc_rf.data import equations, vocab_size
from grokking_nc_rf.model import Transformer


def test_plain_transformer_is_the_same_model():
    """The benchmark's plain baseline computes train.py's function: same logits at the loss positions."""
    torch.manual_seed(0)
    ours = Transformer(vocab_size(13))
    plain = bench_grokking.PlainTransformer(vocab_size(13)).load_from(ours)
    tokens = equations(13)[0][:40]
    with torch.no_grad():
        assert torch.allclose(plain(tokens)[:, train.RHS], ours.unembed(ours(tokens, train.RHS)), atol=1e-5)


def test_bench_grokking_runs_and_prints_its_table(capsys):
    threads = torch.get_num_threads()
    rows = bench_grokking.main(["--threads", "1", "--repeats", "1", "--evals", "1", "--seeds", "1", "2", "--whole_run", "8"])
    assert torch.get_num_threads() == threads  # restored
    out = capsys.readouterr().out
    assert "speed-up" in out and "paper preset" in out and len(rows) == 1
    row = rows[0]
    assert row["step_s"] > 0 and row["plain_s"] > 0 and row["eval_s"] > 0
    assert row["plain_gflop"] > row["gflop"] > 1  # the shared prefixes and the shortcut do less work
    assert 0 < row["cpu"][2] < 1 and row["paper"][1] == 622
    assert "Seeds as one model" in out and set(row["per_seed"]) == {(1, False), (1, True), (2, False), (2, True)}
    assert min(row["per_seed"].values()) > 0 and "one process / three" in out
