"""Relative flatness of the last layer (Petzka et al. 2021; Def. 3.2, Lemma A.2, Prop. 5.2).

The model is f(x) = softmax(W phi(x) + b) with W (C, D) the last layer and the mean cross-entropy
over the sample set. Per sample the Hessian blocks w.r.t. the rows w_s of W are

    H_{s,s'} = (p_s delta_{ss'} - p_s p_s') phi phi^T,   Tr H_{s,s'} = (p_s delta_{ss'} - p_s p_s') ||phi||^2,

which gives both closed forms below without building a Hessian.
Precision: both values are differences or products of probabilities; when the predictions are
almost one-hot (p_max > 1 - 1e-6) float32 loses the relative accuracy, so log them in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["relative_flatness_bound", "relative_flatness_exact", "prop52_bound"]


def _logits(features: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    if features.dim() != 2 or weight.dim() != 2 or features.shape[1] != weight.shape[1]:
        raise ValueError(f"expected features (N, D) and weight (C, D), got {tuple(features.shape)} "
                         f"and {tuple(weight.shape)}")
    return F.linear(features, weight, bias)  # (N, C)


def relative_flatness_bound(features: Tensor, weight: Tensor, bias: Tensor | None = None,
                            temperature: float = 1.0) -> Tensor:
    """Upper bound of relative flatness, Lemma A.2: the quantity the paper plots and regularises.

        kappa_bound = ||W||_F^2 * Tr H = ||W||_F^2 * mean_i sum_k p_ik (1 - p_ik) ||phi_i||^2,
        p_i = softmax((W phi_i + b) / temperature)

    This is `sharpness2` of the original code (spec §1.1): the Frobenius norm is squared, the bias
    is not part of W. temperature != 1 reproduces the tempered regulariser of the rf_* experiments
    (the Hessian is then not that of the loss). kappa_bound >= relative_flatness_exact.

    Args:
        features: (N, D) penultimate representations phi(x_i).
        weight: (C, D) last-layer weight W.
        bias: optional (C,) bias b.
        temperature: softmax temperature tau > 0.
    Returns:
        0-dim tensor, differentiable w.r.t. features, weight and bias; lower = flatter.
    """
    probs = torch.softmax(_logits(features, weight, bias) / temperature, dim=1)  # (N, C) p
    trace_per_sample = (probs * (1 - probs)).sum(1) * features.pow(2).sum(1)  # (N,) Tr H_i
    return weight.pow(2).sum() * trace_per_sample.mean()


def relative_flatness_exact(features: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Relative flatness kappa^phi_Tr(W) exactly, Def. 3.2, for softmax cross-entropy.

        kappa = sum_{s,s'} <w_s, w_s'> Tr H_{s,s'}
              = mean_i ||phi_i||^2 ( sum_s p_is ||w_s||^2 - ||W^T p_i||^2 )

    i.e. ||phi_i||^2 times the trace of the covariance of the class-weight rows under p_i, averaged
    over samples (H is the Hessian of the mean loss). No Hessian and no C x C matrix are formed.
    Invariant to the reparametrisation (W a, phi / a) for a > 0, and to adding one vector to every
    row of W (softmax shift invariance). kappa <= relative_flatness_bound (Lemma A.2).

    Args:
        features: (N, D) penultimate representations phi(x_i).
        weight: (C, D) last-layer weight W, rows w_s.
        bias: optional (C,) bias (enters only through p).
    Returns:
        0-dim tensor, differentiable w.r.t. features, weight and bias; lower = flatter.
    """
    probs = torch.softmax(_logits(features, weight, bias), dim=1)  # (N, C) p
    second_moment = probs @ weight.pow(2).sum(1)  # (N,) sum_s p_is ||w_s||^2
    mean_row = probs @ weight  # (N, D) W^T p_i
    covariance_trace = second_moment - mean_row.pow(2).sum(1)  # (N,)
    return (features.pow(2).sum(1) * covariance_trace).mean()


def prop52_bound(scale: float, num_classes: int, feature_norm: float) -> float:
    """Right-hand side of Prop. 5.2: relative flatness under neural collapse with W = scale * M.

        kappa <= lambda^2 k^3 M^4 exp(-lambda M^2 k/(k-1)) / (1 + (k-1) exp(-lambda M^2 k/(k-1)))^2

    with lambda = `scale` (NC3: w_j = lambda (mu_j - mu_G)), k = `num_classes`, M = `feature_norm`
    (NC2: ||mu_c - mu_G|| = M). Decays exponentially in lambda. The proof uses ||phi(x_c)||^2 = M^2,
    which needs mu_G = 0 (spec §10.1 item 11).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    k, lam, m = num_classes, scale, feature_norm
    decay = math.exp(-lam * m**2 * k / (k - 1))
    return lam**2 * k**3 * m**4 * decay / (1 + (k - 1) * decay) ** 2
