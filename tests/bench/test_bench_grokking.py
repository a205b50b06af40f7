import pytest
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


def test_main_command_floor_and_our_time():
    """The floor counts 3 seeds x (steps x step FLOPs + evaluations x evaluation FLOPs) at the 1-thread matmul rate
    on up to 3 cores; the main command's parts are timed on fresh folders (a short run here), and the table adds
    the install and plotting to the floor at our own time."""
    short = ("--steps", "20", "--eval_points", "2", "--modulus", "11")
    floor = bench_grokking.compute_floor(2e9, 30e9, short)
    assert floor["steps"] == 20 and floor["evaluations"] == 3  # steps 0, 10 (the end of the warm-up) and 20
    assert floor["tflop"] == pytest.approx(3 * (20 * 2e9 + 3 * 30e9) / 1e12)
    assert floor["seconds"] == pytest.approx(floor["tflop"] * 1e3 / floor["gflops_per_core"] / floor["cores"])
    assert 1 <= floor["cores"] <= 3
    ours = bench_grokking.main_command(install=False, overrides=short)
    assert set(ours) == {"training", "plotting"} and min(ours.values()) > 0
    assert "not timed" in bench_grokking.floor_table(floor, ours)  # no install timed: no whole-command row
    table = bench_grokking.floor_table(floor, {**ours, "install": 10.0})
    total = 10.0 + ours["training"] + ours["plotting"]
    assert f"{total:.0f} s" in table and f"{10.0 + ours['plotting'] + floor['seconds']:.0f} s" in table


def test_the_benchmark_starts_again_under_the_main_commands_kernels(monkeypatch):
    """`python -m benchmarks.bench_grokking` measures with the kernels run_script.sh exports (portable unless
    KERNELS=native): missing variables are set and the process starts again; set ones are kept."""
    import os
    import platform

    from common.plumbing.seeding import PORTABLE_KERNELS

    calls = []
    monkeypatch.setattr(os, "execve", lambda path, args, env: calls.append((args, env)))
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    for key in PORTABLE_KERNELS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")  # one already set wins
    monkeypatch.delenv("KERNELS", raising=False)
    bench_grokking.with_main_command_kernels(["--threads", "1"])
    (args, env), = calls
    assert args[1:] == ["-m", "benchmarks.bench_grokking", "--threads", "1"]
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["MKL_CBWR"] == "COMPATIBLE"
    monkeypatch.setenv("KERNELS", "native")
    bench_grokking.with_main_command_kernels([])
    assert len(calls) == 1
    monkeypatch.setenv("KERNELS", "fast")
    with pytest.raises(SystemExit) as exit_:
        bench_grokking.with_main_command_kernels([])
    assert exit_.value.code == 2
