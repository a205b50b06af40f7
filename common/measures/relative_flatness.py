"""Relative flatness of the last layer (Petzka et al. 2021; Def. 3.2, Lemma A.2, Prop. 5.2).

The model is f(x) = softmax(W phi(x) + b) with W (C, D) the last layer and the mean cross-entropy
over the sample set. Per sample the Hessian blocks w.r.t. the rows w_s of W are

    H_{s,s'} = (p_s delta_{ss'} - p_s p_s') phi phi^T,   Tr H_{s,s'} = (p_s delta_{ss'} - p_s p_s') ||phi||^2,

which gives both closed forms below without building a Hessian.
Precision: late in training the predictions are almost one-hot and both values are tiny
differences of O(1) terms. Both closed forms are evaluated relative to the top class k* of each
sample (1 - p_k* as the sum of the other probabilities, weight rows as offsets from w_k*), so the
relative error stays at rounding level instead of growing like eps / (1 - p_max).
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


def _sq_norms(rows: Tensor) -> Tensor:
    """(N,) squared row norms without an (N, D) temporary."""
    return torch.linalg.vector_norm(rows, dim=1).square()


def _top_class_split(probs: Tensor):
    """Top class k* per row, the probabilities with k* zeroed, and their sum 1 - p_k* (accurate)."""
    top = probs.argmax(1, keepdim=True)  # (N, 1) k*
    rest = probs.scatter(1, top, 0.0)  # (N, C) p with p_k* = 0
    return top, rest, rest.sum(1)


def relative_flatness_bound(features: Tensor, weight: Tensor, bias: Tensor | None = None,
                            temperature: float = 1.0, *, logits: Tensor | None = None) -> Tensor:
    """Upper bound of relative flatness, Lemma A.2: the quantity the paper plots and regularises.

        kappa_bound = ||W||_F^2 * Tr H = ||W||_F^2 * mean_i sum_k p_ik (1 - p_ik) ||phi_i||^2,
        p_i = softmax((W phi_i + b) / temperature)

    This is `sharpness2` of the original code (docs/original_code.md §1.1): the Frobenius norm is squared, the bias
    is not part of W. temperature != 1 reproduces the tempered regulariser of the rf_* experiments
    (the Hessian is then not that of the loss). kappa_bound >= relative_flatness_exact.

    `logits` (N, C'), when given, replaces W phi + b inside the softmax. The original grokking code
    uses this form with the element-wise product of the two right-hand-side logit vectors and the
    concatenated features of both positions (docs/original_code.md §2.4); it is not a Hessian of the training loss.

    Args:
        features: (N, D) penultimate representations phi(x_i).
        weight: (C, D) last-layer weight W.
        bias: optional (C,) bias b.
        temperature: softmax temperature tau > 0.
        logits: optional (N, C') scores to take the softmax of instead of W phi + b.
    Returns:
        0-dim tensor, differentiable w.r.t. features, weight and bias; lower = flatter.
    """
    if logits is None:
        logits = _logits(features, weight, bias)
    probs = torch.softmax(logits / temperature, dim=1)  # (N, C) p
    top, _, rest_mass = _top_class_split(probs)
    # 1 - p_k, with 1 - p_k* taken as the sum of the others (no cancellation when p_k* ~ 1).
    one_minus = torch.where(torch.zeros_like(probs, dtype=torch.bool).scatter(1, top, True),
                            rest_mass[:, None], 1 - probs)
    trace_per_sample = (probs * one_minus).sum(1) * _sq_norms(features)  # (N,) Tr H_i
    return torch.linalg.vector_norm(weight).square() * trace_per_sample.mean()


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
    top, rest, rest_mass = _top_class_split(probs)
    # The covariance trace is shift invariant: measure the rows from r_i = w_{k*_i}. With q = p without
    # k* (|q| = 1 - p_k*, accurate) and m = q W:
    #   sum_s p_s ||w_s - r||^2 = q.||w||^2 - 2 m.r + |q| ||r||^2,   ||W^T p - r||^2 = ||m - |q| r||^2,
    # and m.r = (m W^T)_{k*}: one (N, D) temporary, no C x C matrix, no cancellation in 1 - p_k*.
    row_sq = _sq_norms(weight)  # (C,) ||w_s||^2
    anchor_sq = row_sq[top.squeeze(1)]  # (N,) ||r_i||^2
    rest_mean = rest @ weight  # (N, D) m_i
    cross = (rest_mean @ weight.T).gather(1, top).squeeze(1)  # (N,) m_i . r_i
    spread = rest @ row_sq - 2 * cross + rest_mass * anchor_sq
    offset_sq = _sq_norms(rest_mean) - 2 * rest_mass * cross + rest_mass.square() * anchor_sq
    covariance_trace = spread - offset_sq  # (N,) sum_s p_s ||w_s||^2 - ||W^T p_i||^2
    return (_sq_norms(features) * covariance_trace).mean()


def prop52_bound(scale: float, num_classes: int, feature_norm: float) -> float:
    """Right-hand side of Prop. 5.2: relative flatness under neural collapse with W = scale * M.

        kappa <= lambda^2 k^3 M^4 exp(-lambda M^2 k/(k-1)) / (1 + (k-1) exp(-lambda M^2 k/(k-1)))^2

    with lambda = `scale` (NC3: w_j = lambda (mu_j - mu_G)), k = `num_classes`, M = `feature_norm`
    (NC2: ||mu_c - mu_G|| = M). Decays exponentially in lambda. The proof uses ||phi(x_c)||^2 = M^2,
    which needs mu_G = 0 (docs/original_code.md §4).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    k, lam, m = num_classes, scale, feature_norm
    decay = math.exp(-lam * m**2 * k / (k - 1))
    return lam**2 * k**3 * m**4 * decay / (1 + (k - 1) * decay) ** 2
