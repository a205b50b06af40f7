"""common.distributed with 2 CPU processes (gloo), against one process on the same data: the batch
regularisers over the global batch (value and gradient, through DistributedDataParallel) and the epoch
metrics from all ranks' features."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from common import ncc, rf_regulariser
from common.distributed import gather_rows, rank_rows
from common.images import split_metrics

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
    finally:
        dist.destroy_process_group()


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


def test_rank_rows_split_a_batch_in_order_without_overlap():
    for n in (1, 7, 12, 64):
        for world in (1, 2, 3, 8):
            rows = [rank_rows(n, r, world) for r in range(world)]
            assert [i for s in rows for i in range(n)[s]] == list(range(n))
            assert max(s.stop - s.start for s in rows) - min(s.stop - s.start for s in rows) <= 1


def test_without_torchrun_gather_is_the_identity():
    x = torch.randn(4, 3, requires_grad=True)
    assert gather_rows(x) is x and gather_rows(x, differentiable=True) is x
