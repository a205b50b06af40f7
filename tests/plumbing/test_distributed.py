"""common.plumbing.distributed with 2 CPU processes (gloo), against one process on the same data: the batch
regularisers over the global batch (value and gradient, through DistributedDataParallel) and the epoch
metrics from all ranks' features."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from common import ncc, rf_regulariser
from common.plumbing.distributed import gather_rows, rank_rows, shutdown
from common.images import split_metrics
from common.plumbing.runlog import read_metrics

REPO = Path(__file__).resolve().parents[2]
WORLD = 2


class Net(torch.nn.Module):
    """A backbone and a classifier; forward returns (features, logits), as capture_features would give."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU()), torch.nn.Linear(8, 5)

    def forward(self, x):
        phi = self.body(x)
        return phi, self.head(phi)


def _data(n=12):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=generator), torch.arange(n) % 5


def _loss(model, head, x, y, kind, differentiable_gather):
    phi, logits = model(x)
    ce = F.cross_entropy(logits, y)
    if differentiable_gather:
        phi, logits, y = gather_rows(phi, True), gather_rows(logits, True), gather_rows(y)
    reg = rf_regulariser(phi, head.weight, logits, 2.0, True) if kind == "rf" else ncc(phi, y)
    return ce - 0.5 * reg, reg


def _single(kind):
    model = Net()
    x, y = _data()
    loss, reg = _loss(model, model.head, x, y, kind, False)
    loss.backward()
    return reg.item(), [p.grad.clone() for p in model.parameters()]


def _worker(rank, path, kind):
    os.environ.update(MASTER_ADDR="127.0.0.1")
    dist.init_process_group("gloo", init_method=f"file://{path}/store", rank=rank, world_size=WORLD)
    try:
        _two_rank_step(rank, path, kind)  # its DDP model is no longer referenced when the group is left
    finally:
        shutdown()


def _two_rank_step(rank, path, kind):
    torch.set_num_threads(1)
    # the regulariser over the global batch, each rank holding its share, gradients averaged by DDP
    model = torch.nn.parallel.DistributedDataParallel(Net())
    x, y = _data()
    rows = rank_rows(len(y), rank, WORLD)
    loss, reg = _loss(model, model.module.head, x[rows], y[rows], kind, True)
    loss.backward()
    # the epoch metrics from unequal shares (17 and 13 rows)
    generator = torch.Generator().manual_seed(2)
    features, labels = torch.randn(30, 8, generator=generator).relu(), torch.arange(30) % 5
    head = torch.nn.Linear(8, 5)
    torch.manual_seed(3)
    head.reset_parameters()
    share = slice(0, 17) if rank == 0 else slice(17, 30)
    phi, y_all = gather_rows(features[share]), gather_rows(labels[share])
    with torch.no_grad():
        metrics = split_metrics("train", phi, head(phi), y_all, head)
    torch.save({"reg": reg.item(), "grads": [p.grad.clone() for p in model.parameters()], "metrics": metrics,
                "gathered": phi}, f"{path}/rank{rank}.pt")


@pytest.mark.parametrize("kind", ["rf", "ncc"])
def test_two_processes_give_the_single_process_regulariser_gradient_and_metrics(kind, tmp_path):
    mp.spawn(_worker, args=(str(tmp_path), kind), nprocs=WORLD, join=True)
    reg, grads = _single(kind)
    generator = torch.Generator().manual_seed(2)
    features, labels = torch.randn(30, 8, generator=generator).relu(), torch.arange(30) % 5
    head = torch.nn.Linear(8, 5)
    torch.manual_seed(3)
    head.reset_parameters()
    with torch.no_grad():
        expected = split_metrics("train", features, head(features), labels, head)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert got["reg"] == pytest.approx(reg, rel=1e-6)
        for g, e in zip(got["grads"], grads):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
        assert torch.equal(got["gathered"], features)
        assert got["metrics"].keys() == expected.keys()
        for key, value in expected.items():
            assert got["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def _bn_net():
    torch.manual_seed(4)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 4 * 4, 2))


def _bn_data():
    generator = torch.Generator().manual_seed(5)
    return torch.randn(10, 2, 6, 6, generator=generator) * 3 + 1, torch.arange(10) % 2


def _bn_worker(rank, path):
    os.environ.update(MASTER_ADDR="127.0.0.1")
    dist.init_process_group("gloo", init_method=f"file://{path}/store", rank=rank, world_size=WORLD)
    try:
        _two_rank_bn_steps(rank, path)
    finally:
        shutdown()


def _two_rank_bn_steps(rank, path):
    from common.plumbing.distributed import GlobalBatchNorm, convert_batchnorm_

    torch.set_num_threads(1)
    net = _bn_net()
    weight = net[1].weight
    convert_batchnorm_(net, GlobalBatchNorm)
    assert isinstance(net[1], GlobalBatchNorm) and net[1].weight is weight
    model = torch.nn.parallel.DistributedDataParallel(net)
    x, y = _bn_data()
    rows = rank_rows(len(y), rank, WORLD)  # unequal shares are not needed: 5 and 5 rows
    for _ in range(2):  # two steps: the running statistics move twice
        model.zero_grad()
        out = model(x[rows])
        F.cross_entropy(out, y[rows]).backward()  # DDP averages: the global batch's mean CE
    torch.save({"out": out.detach(), "grads": [p.grad.clone() for p in net.parameters()],
                "running": (net[1].running_mean.clone(), net[1].running_var.clone())}, f"{path}/bn{rank}.pt")


def test_global_batchnorm_over_two_processes_is_batchnorm_over_the_global_batch(tmp_path):
    """--sync_bn on the CPU: GlobalBatchNorm under DDP on two ranks' halves gives each rank's rows, the parameter
    gradients and the running statistics of torch's BatchNorm2d on the whole batch in one process."""
    mp.spawn(_bn_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    net = _bn_net()
    x, y = _bn_data()
    for _ in range(2):
        net.zero_grad()
        out = net(x)
        F.cross_entropy(out, y).backward()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"bn{rank}.pt")
        torch.testing.assert_close(got["out"], out.detach()[rank_rows(len(y), rank, WORLD)], rtol=1e-5, atol=1e-6)
        for g, e in zip(got["grads"], [p.grad for p in net.parameters()]):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["running"][0], net[1].running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["running"][1], net[1].running_var, rtol=1e-5, atol=1e-6)


def test_rank_rows_split_a_batch_in_order_without_overlap():
    for n in (1, 7, 12, 64):
        for world in (1, 2, 3, 8):
            rows = [rank_rows(n, r, world) for r in range(world)]
            assert [i for s in rows for i in range(n)[s]] == list(range(n))
            assert max(s.stop - s.start for s in rows) - min(s.stop - s.start for s in rows) <= 1


def test_without_torchrun_gather_is_the_identity():
    x = torch.randn(4, 3, requires_grad=True)
    assert gather_rows(x) is x and gather_rows(x, differentiable=True) is x


def test_shutdown_frees_what_a_reference_cycle_holds_before_it_leaves_the_group(tmp_path):
    """An object kept only by a reference cycle (as DDP's reducer can be) is freed by `shutdown` while the group
    still exists, not after it at interpreter exit, where gloo sometimes aborted a finished process."""
    import gc
    import weakref

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    seen = []
    enabled = gc.isenabled()
    gc.disable()  # no automatic collection between here and shutdown
    try:
        cycle = {"tensor": torch.ones(3)}
        cycle["self"] = cycle
        holder = torch.nn.Linear(2, 2)
        holder.cycle = cycle
        cycle["holder"] = holder
        weakref.finalize(holder, lambda: seen.append(dist.is_initialized()))
        del cycle, holder
        assert seen == []  # only the collector frees it
        shutdown()
    finally:
        if enabled:
            gc.enable()
        if dist.is_initialized():
            dist.destroy_process_group()
    assert seen == [True] and not dist.is_initialized()


def _torchrun(experiment, flags, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", f"{experiment}.train", *flags]


def _strip(rows):
    return [{k: v for k, v in row.items() if k not in ("train_s", "eval_s")} for row in rows]


def _close(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
        elif isinstance(a[key], list):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-4), key
        else:
            assert a[key] == b[key], key


def test_torchrun_rf_bert_logs_the_rows_of_one_process_and_resumes_after_a_kill(tiny_text_models, tiny_sst, tmp_path):
    """rf_bert (no BatchNorm, no dropout) on 2 gloo processes, global batch 8 as 4 + 4: the rows of one
    process to float rounding; rank 0 alone writes (one metrics.jsonl, world_size in config.json); a launch
    SIGKILLed mid-run resumes under torchrun to the rows of an uninterrupted 2-process launch."""
    from rf_bert import train

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    flags = ["--preset", "cpu", "--model_name", str(tiny_text_models["bert"]), "--data_dir", str(tiny_sst[0]),
             "--train_subset", "0", "--freeze_layers", "0", "--max_length", "16", "--epochs", "4", "--unplug_epoch", "2", "--batch_size", "8",
             "--lam", "1", "--threads", "1", "--no_progress"]
    one = train.main(flags + ["--out_dir", str(tmp_path / "one")])
    subprocess.run(_torchrun("rf_bert", flags + ["--out_dir", str(tmp_path / "two")]), env=env, check=True,
                   capture_output=True)
    run_dir = train.parse_args(flags + ["--out_dir", str(tmp_path / "two")]).run_dir
    two = read_metrics(run_dir / "metrics.jsonl")
    assert len(two) == len(one) == 4 and list((tmp_path / "two").rglob("metrics.jsonl")) == [run_dir / "metrics.jsonl"]
    for a, b in zip(_strip(two), _strip(one)):
        _close(a, b)
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == 2
    # kill both ranks (the whole launch) once two epochs are logged, then resume under torchrun
    longer = flags[:flags.index("--epochs")] + ["--epochs", "15"] + flags[flags.index("--epochs") + 2:]
    subprocess.run(_torchrun("rf_bert", longer + ["--out_dir", str(tmp_path / "ref")]), env=env, check=True,
                   capture_output=True)
    reference = read_metrics(train.parse_args(longer + ["--out_dir", str(tmp_path / "ref")]).run_dir / "metrics.jsonl")
    killed = train.parse_args(longer + ["--out_dir", str(tmp_path / "killed")]).run_dir
    proc = subprocess.Popen(_torchrun("rf_bert", longer + ["--out_dir", str(tmp_path / "killed")]), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (killed / "metrics.jsonl").exists() and len(read_metrics(killed / "metrics.jsonl")) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "finished.json").exists() and len(read_metrics(killed / "metrics.jsonl")) < 15
    subprocess.run(_torchrun("rf_bert", longer + ["--out_dir", str(tmp_path / "killed")]), env=env, check=True,
                   capture_output=True)
    resumed = read_metrics(killed / "metrics.jsonl")
    assert len(resumed) == 15 and _strip(resumed) == _strip(reference)  # as an uninterrupted 2-process run


def test_an_experiment_without_ddp_refuses_torchrun(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(_torchrun("grokking_nc_rf", ["--preset", "cpu", "--steps", "10", "--out_dir", str(tmp_path)]),
                          env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "does not run under torchrun" in proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["nc_experiments", "rf_resnet18", "rf_vit", "rf_gpt2"])
def test_torchrun_smoke_run_writes_one_log_with_the_single_process_keys(name, tiny_fashion_mnist, tiny_sst,
                                                                       tiny_text_models, tmp_path):
    """Each DDP experiment's smoke run on 2 gloo processes: one metrics.jsonl (rank 0's), as many rows and the
    same keys as one process, world_size 2 in config.json. (ResNet-18's BatchNorm keeps per-rank statistics,
    so its values are not those of one process; rf_bert's are, in the test above.)"""
    import importlib

    from tests.experiments.test_experiments import EXPERIMENTS, QUIET

    data = {"images": tiny_fashion_mnist[0], "text": tiny_sst[0], **tiny_text_models}
    flags = EXPERIMENTS[name]["smoke"](data) + QUIET
    train = importlib.import_module(f"{name}.train")
    one = train.main(flags + ["--out_dir", str(tmp_path / "one")])
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    subprocess.run(_torchrun(name, flags + ["--out_dir", str(tmp_path / "two")]), env=env, check=True,
                   capture_output=True)
    run_dir = train.parse_args(flags + ["--out_dir", str(tmp_path / "two")]).run_dir
    two = read_metrics(run_dir / "metrics.jsonl")
    assert list((tmp_path / "two").rglob("metrics.jsonl")) == [run_dir / "metrics.jsonl"]
    assert [set(r) for r in two] == [set(r) for r in one] and (run_dir / "finished.json").exists()
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == 2


def test_run_script_with_nproc_trains_every_run_under_torchrun(tiny_text_models, tiny_sst, tmp_path):
    flags = ["--preset", "cpu", "--model_name", str(tiny_text_models["bert"]), "--data_dir", str(tiny_sst[0]),
             "--train_subset", "0", "--freeze_layers", "0", "--max_length", "16", "--epochs", "2", "--unplug_epoch", "1", "--batch_size", "8",
             "--threads", "1", "--no_progress", "--out_dir", str(tmp_path)]
    env = dict(os.environ, PYTHON=sys.executable, NPROC="2", OMP_NUM_THREADS="1")
    subprocess.run(["sh", str(REPO / "rf_bert" / "run_script.sh"), *flags], env=env, check=True, capture_output=True)
    configs = sorted((tmp_path / "rf_bert").rglob("config.json"))
    assert len(configs) == 2 and all(json.loads(c.read_text())["world_size"] == 2 for c in configs)
    assert len(list((tmp_path / "rf_bert" / "figures").rglob("fig16.png"))) == 1
    bad = subprocess.run(["sh", str(REPO / "rf_bert" / "run_script.sh"), *flags], env=dict(env, NPROC="two"),
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "NPROC must be a positive integer" in bad.stderr


def test_the_loops_global_batch_size_is_what_the_ranks_hold_together():
    """`common.unplug.loop` takes the global batch size from the batch plan, min(batch_size, n - step *
    batch_size), instead of gathering it: it must be the sum of the ranks' shares of every batch (images in
    memory and as a Dataset), last short batch included."""
    from common.images import train_batches

    for n, batch_size, world in ((10, 4, 2), (12, 4, 2), (15, 6, 3)):
        images, labels = torch.zeros(n, 1, 2, 2), torch.arange(n)
        dataset = torch.utils.data.TensorDataset(images, labels)
        for source in ((images, labels), dataset):
            shares = [list(train_batches(source, batch_size, torch.Generator().manual_seed(0), torch.device("cpu"),
                                         rank=rank, world_size=world)) for rank in range(world)]
            held = [sum(len(rank_batches[i][1]) for rank_batches in shares) for i in range(len(shares[0]))]
            assert held == [min(batch_size, n - step * batch_size) for step in range(len(held))]
            assert sum(held) == n


def test_the_ddp_step_benchmark_runs(capsys):
    from benchmarks.bench_ddp_step import main

    now, before = main(["--steps", "2", "--batch_size", "8", "--width", "8"])
    assert now > 0 and before > 0 and "before / now" in capsys.readouterr().out
