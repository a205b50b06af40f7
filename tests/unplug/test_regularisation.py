"""common.unplug.regularisation: the rf_* regulariser, the weight cap and the unplug schedule, against hand
computations, torch's own CosineAnnealingLR, and training runs of rf_resnet18."""

import math

import pytest
import torch

from common import Unplug, cap_weight_, rf_regulariser


def _by_hand(features, weight, logits, temperature, normalise):
    total = 0.0
    for phi, z in zip(features.double(), logits.double()):
        p = torch.softmax(z / temperature, 0)
        sq = (phi / (phi.norm() + 1e-8)).square().sum() if normalise else phi.square().sum()
        total += float(sum(p[k] * (1 - p[k]) for k in range(len(p))) * sq)
    return weight.double().square().sum().item() * total / len(features)


@pytest.mark.parametrize("temperature, normalise", [(1.0, False), (2.0, True), (0.5, True)])
def test_regulariser_is_the_tempered_bound_on_the_chosen_features(temperature, normalise):
    torch.manual_seed(0)
    features, weight, bias = torch.randn(7, 5).double(), torch.randn(4, 5).double(), torch.randn(4).double()
    logits = features @ weight.T + bias  # the model's logits, from the raw features
    value = rf_regulariser(features, weight, logits, temperature, normalise)
    assert value.item() == pytest.approx(_by_hand(features, weight, logits, temperature, normalise), rel=1e-10)


@pytest.mark.parametrize("cap, classes, expected", [(50.0, 10, 2250.0), (150.0, 100, 22275.0), (30.0, 5, 720.0)])
def test_capped_normalised_regulariser_saturates_at_cap_squared_times_one_minus_one_over_k(cap, classes, expected):
    """Uniform probabilities and ||W||_F = cap give cap^2 (1 - 1/K); gradient ascent under the cap gets there
    from a random start and never above (the original's ResNet, ViT-Tiny and BERT values)."""
    torch.manual_seed(1)
    features = torch.randn(32, 16, dtype=torch.float64)
    weight = torch.randn(classes, 16, dtype=torch.float64)
    weight *= cap / weight.norm()
    uniform = torch.zeros(32, classes, dtype=torch.float64)
    assert rf_regulariser(features, weight, uniform, 2.0, normalise=True).item() == pytest.approx(expected, rel=1e-6)
    weight = (0.1 * torch.randn(classes, 16, dtype=torch.float64)).requires_grad_()
    features = features.requires_grad_()
    optimizer = torch.optim.Adam([weight, features], lr=0.05)
    for _ in range(600):
        reg = rf_regulariser(features, weight, features @ weight.T, 2.0, normalise=True)
        optimizer.zero_grad()
        (-reg).backward()
        optimizer.step()
        cap_weight_(weight, cap)
        assert weight.norm().item() <= cap * (1 + 1e-12) and reg.item() <= expected * (1 + 1e-9)
    assert reg.item() == pytest.approx(expected, rel=2e-3)


def test_cap_projects_only_what_is_outside_the_ball():
    torch.manual_seed(2)
    weight = torch.randn(10, 20)
    before = weight.clone()
    norm = cap_weight_(weight, 100.0)
    assert torch.equal(weight, before) and norm.item() == pytest.approx(before.norm().item())
    cap_weight_(weight, 2.0)
    assert weight.norm().item() == pytest.approx(2.0, rel=1e-6) and torch.allclose(weight / 2.0, before / before.norm())
    weight = before.clone()
    cap_weight_(weight, 1.5, kind="spectral")
    assert torch.linalg.svdvals(weight)[0].item() == pytest.approx(1.5, rel=1e-5)
    assert torch.allclose(weight / weight.norm(), before / before.norm(), atol=1e-6)  # a rescaling, nothing else
    with pytest.raises(ValueError, match="frobenius"):
        cap_weight_(weight, 1.0, kind="nuclear")


def _original_lrs(lr, epochs, unplug_epoch, bump, floor, regularised):
    """The released rf_resnet18 loop: at epoch == cancel_epoch (0-based), if still regularising, lr *= bump and
    a CosineAnnealingLR(T_max=max(1, epochs - e - 1), eta_min) stepped once after every later epoch."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler, lrs = None, []
    for epoch in range(epochs):
        if epoch == unplug_epoch and regularised:
            for group in optimizer.param_groups:
                group["lr"] *= bump
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs - epoch - 1),
                                                                   eta_min=floor)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return lrs


@pytest.mark.parametrize("epochs, unplug_epoch", [(12, 4), (6, 5), (5, 0)])
def test_repo_recipe_follows_the_originals_schedule_and_changes_only_at_unplug(epochs, unplug_epoch):
    unplug = Unplug(0.01, 0.0, epochs, unplug_epoch, "repo", bump=10.0, weight_decay_after=2e-4, lr_floor=1e-4)
    states = [unplug.at(e) for e in range(epochs)]
    assert [s.regularise for s in states] == [e < unplug_epoch for e in range(epochs)]
    assert [s.lr for s in states] == pytest.approx(_original_lrs(0.01, epochs, unplug_epoch, 10.0, 1e-4, True),
                                                   rel=1e-9)
    assert [s.weight_decay for s in states] == [0.0 if e < unplug_epoch else 2e-4 for e in range(epochs)]
    assert states[-1].lr == pytest.approx(1e-4) if epochs - unplug_epoch > 1 else True


def test_paper_recipe_only_drops_the_term_and_the_baseline_schedule():
    paper = Unplug(0.01, 0.0, 10, 3, "paper")
    assert [(s.regularise, s.lr, s.weight_decay) for s in map(paper.at, range(10))] == \
        [(e < 3, 0.01, 0.0) for e in range(10)]
    regularised = Unplug(0.01, 0.0, 10, 3, "repo")
    original_baseline = Unplug(0.01, 0.0, 10, 3, "repo", regularised_run=False)
    fair_baseline = Unplug(0.01, 0.0, 10, 3, "repo", regularised_run=False, same_schedule=True)
    assert not any(original_baseline.at(e).regularise or fair_baseline.at(e).regularise for e in range(10))
    assert [original_baseline.at(e).lr for e in range(10)] == [0.01] * 10  # the original's confounded baseline
    assert [fair_baseline.at(e) for e in range(10)] == \
        [regularised.at(e).__class__(False, regularised.at(e).lr, regularised.at(e).weight_decay) for e in range(10)]
    with pytest.raises(ValueError, match="recipe"):
        Unplug(0.01, 0.0, 10, 3, "later")


def test_apply_sets_every_parameter_group():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.01)
    state = Unplug(0.01, 0.0, 10, 2, "repo").apply(optimizer, 2)
    assert state.lr == pytest.approx(0.1) and not state.regularise
    assert [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [(state.lr, 2e-4)] * 2
    assert math.isclose(Unplug(0.01, 0.0, 10, 2, "repo").at(9).lr, 1e-4)
