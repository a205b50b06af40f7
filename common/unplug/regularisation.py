"""Relative-flatness regularisation and "unplug" (§6, App. C; docs/original_code.md §5).

The paper trains with L = CE - lambda * kappa (Eq. 1), maximising relative flatness, and removes the
term at an epoch ("unplug"). Two protocols exist:

- paper (App. C): kappa is the Lemma A.2 bound at temperature 1 on the raw features; at unplug the
  term is dropped and nothing else changes.
- repo (the released rf_* scripts): kappa at temperature tau = 2 on unit-normalised features, the
  classifier weight projected into a Frobenius ball after every optimiser step (so the term saturates
  at cap^2 (1 - 1/K)), and at unplug weight decay, a learning-rate bump and cosine annealing to a
  floor, which the original's baseline never gets. `same_schedule=True` gives the baseline the same
  schedule change at the same epoch, so the two runs differ only in the regulariser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..plumbing.config import NON_NEGATIVE, POSITIVE, Key
from ..measures.relative_flatness import relative_flatness_bound

__all__ = ["rf_regulariser", "cap_weight_", "Unplug", "RF_KEYS", "RF_RULES", "unplug_from_config", "rf_terms"]


def rf_regulariser(features: Tensor, weight: Tensor, logits: Tensor, temperature: float = 1.0,
                   normalise: bool = False) -> Tensor:
    """The relative-flatness term as the rf_* experiments apply it (docs/original_code.md §5.1):

        reg = ||W||_F^2 * mean_i sum_k p_ik (1 - p_ik) ||phi_i'||^2,   p_i = softmax(z_i / tau),
        phi_i' = phi_i / (||phi_i|| + 1e-8) if normalise else phi_i

    with z the model's logits (from the raw features). temperature 1 and normalise False give the
    Lemma A.2 bound of Eq. (1) (App. C). With normalised features and a Frobenius cap c on W the term is
    at most c^2 (1 - 1/K), reached with uniform probabilities.

    Args:
        features: (N, D) the classifier's input, with its autograd graph.
        weight: (K, D) the classifier weight.
        logits: (N, K) the model's logits for the same batch.
    Returns:
        0-dim tensor, differentiable w.r.t. features, weight and logits.
    """
    if normalise:
        features = features / (torch.linalg.vector_norm(features, dim=1, keepdim=True) + 1e-8)
    return relative_flatness_bound(features, weight, temperature=temperature, logits=logits)


@torch.no_grad()
def cap_weight_(weight: Tensor, max_norm: float, kind: str = "frobenius") -> Tensor:
    """Project `weight` in place so that its norm is at most `max_norm`: W <- W * max_norm / ||W|| when
    ||W|| > max_norm. kind "frobenius" (the original's `frobenius_cap`) or "spectral" (the largest
    singular value, computed exactly; the original estimated it with one power iteration from a random
    vector and a fixed bound of 5.0). Returns the norm before the projection (0-dim)."""
    if kind == "frobenius":
        norm = torch.linalg.matrix_norm(weight, ord="fro")
    elif kind == "spectral":
        norm = torch.linalg.matrix_norm(weight, ord=2)
    else:
        raise ValueError(f"kind must be 'frobenius' or 'spectral', got {kind!r}")
    weight.mul_(torch.clamp(max_norm / norm, max=1.0))
    return norm


@dataclass(frozen=True)
class UnplugState:
    regularise: bool  # apply the regulariser in this epoch
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class Unplug:
    """The unplug schedule, as a function of the 0-based epoch (so a resumed run needs no state).

    The regulariser is applied in epochs e < unplug_epoch (App. C's "removed after epoch 100" is
    unplug_epoch=100). recipe "paper": nothing else changes. recipe "repo" (docs/original_code.md §5.2):
    from epoch unplug_epoch on, weight decay `weight_decay_after`, and the learning rate bumped to
    lr * bump then annealed by a cosine to `lr_floor` over the remaining epochs, once per epoch:

        lr_e = lr_floor + (lr * bump - lr_floor) (1 + cos(pi (e - u) / T)) / 2,   T = max(1, epochs - u - 1)

    which is torch's CosineAnnealingLR(T_max=T, eta_min=lr_floor) stepped after each epoch, as the
    original. The schedule change applies to a regularised run, and to the baseline only with
    same_schedule (the original's baseline keeps the constant lr).
    """

    lr: float
    weight_decay: float
    epochs: int
    unplug_epoch: int
    recipe: str = "paper"
    regularised_run: bool = True
    same_schedule: bool = False
    bump: float = 10.0
    weight_decay_after: float = 2e-4
    lr_floor: float = 1e-4

    def __post_init__(self):
        if self.recipe not in ("paper", "repo"):
            raise ValueError(f"recipe must be 'paper' or 'repo', got {self.recipe!r}")

    def at(self, epoch: int) -> UnplugState:
        unplugged = epoch >= self.unplug_epoch
        regularise = self.regularised_run and not unplugged
        schedule_change = (self.recipe == "repo" and unplugged
                           and (self.regularised_run or self.same_schedule))
        if not schedule_change:
            return UnplugState(regularise, self.lr, self.weight_decay)
        span = max(1, self.epochs - self.unplug_epoch - 1)
        peak = self.lr * self.bump
        lr = self.lr_floor + (peak - self.lr_floor) * (1 + math.cos(math.pi * (epoch - self.unplug_epoch) / span)) / 2
        return UnplugState(regularise, lr, self.weight_decay_after)

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int) -> UnplugState:
        """Set the epoch's learning rate and weight decay in every parameter group; returns the state."""
        state = self.at(epoch)
        for group in optimizer.param_groups:
            group["lr"], group["weight_decay"] = state.lr, state.weight_decay
        return state


# The flags every rf_* experiment shares (one name per knob); each train.py spreads them into its KEYS
# and overrides the defaults that differ (the lr bump, weight decay and floor at unplug are per folder).
RF_KEYS = {
    "regularizer": Key("rf", "rf: L = CE - lam * kappa until unplug; none: the baseline", choices=("none", "rf")),
    "lam": Key(1e-4, "lambda, the regulariser's weight"),
    "temperature": Key(1.0, "softmax temperature tau of the regulariser"),
    "normalise_features": Key(False, "the regulariser on unit-normalised features (the repo recipe)"),
    "cap": Key("none", "after every step, project the classifier weight into this norm ball",
               choices=("none", "frobenius", "spectral")),
    "max_norm": Key(50.0, "radius of --cap"),
    "unplug_epoch": Key(100, "0-based epoch from which the regulariser is off (App. C: after epoch 100)"),
    "unplug_recipe": Key("paper", "paper: only the term goes; repo: also weight decay, lr bump and cosine",
                         choices=("paper", "repo")),
    "baseline_same_schedule": Key(False, "the baseline gets the repo recipe's schedule change too (a fair baseline)"),
    "lr_bump": Key(10.0, "repo recipe: the learning rate is multiplied by this at unplug"),
    "weight_decay_after": Key(2e-4, "repo recipe: weight decay from unplug on"),
    "lr_floor": Key(1e-4, "repo recipe: the cosine anneals the learning rate to this at the last epoch"),
}
RF_RULES = [
    ("lam", NON_NEGATIVE),
    ("temperature", POSITIVE),
    ("max_norm", POSITIVE),
    ("unplug_epoch", lambda v: v >= 0, ">= 0 (0: never regularised)"),
    ("lr_bump", POSITIVE),
    ("weight_decay_after", NON_NEGATIVE),
    ("lr_floor", NON_NEGATIVE),
]


def unplug_from_config(config: dict) -> Unplug:
    """The Unplug schedule of a run whose config holds RF_KEYS, lr, weight_decay and epochs."""
    return Unplug(config["lr"], config["weight_decay"], config["epochs"], config["unplug_epoch"],
                  config["unplug_recipe"], config["regularizer"] == "rf", config["baseline_same_schedule"],
                  config["lr_bump"], config["weight_decay_after"], config["lr_floor"])


def rf_terms(ce: Tensor, features: Tensor, weight: Tensor, logits: Tensor, config: dict,
             regularise: bool) -> tuple[Tensor, Tensor, Tensor]:
    """One training step's loss and what is logged of it, for a config holding RF_KEYS:

        loss = CE - lam * reg while `regularise` (Eq. 1: kappa is maximised), CE otherwise;
        reg  = rf_regulariser with the run's temperature and feature normalisation (computed either way,
               with a graph only while it is applied);
        rf   = the Lemma A.2 bound at temperature 1 on the raw features with this step's W (float64, no
               graph): one definition for the whole run, whatever the regulariser's.
    """
    with torch.set_grad_enabled(regularise and torch.is_grad_enabled()):
        reg = rf_regulariser(features, weight, logits, config["temperature"], config["normalise_features"])
    loss = ce - config["lam"] * reg if regularise else ce
    with torch.no_grad():
        rf = relative_flatness_bound(features.double(), weight.double(), logits=logits.double())
    return loss, reg, rf
