"""Neural-collapse measurements: NCC (Def. 3.1), NC1-NC4 (Papyan et al. 2020), class-mean angles.

All functions take features (N, D) and integer labels (N,), work on any device and dtype,
contain no Python loop over samples, and are differentiable with respect to the features
(and, where one is passed, the classifier weight).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["class_statistics", "ncc", "neural_collapse", "class_variances", "class_mean_angles", "simplex_angle"]


def _check(features: Tensor, labels: Tensor) -> None:
    if features.dim() != 2:
        raise ValueError(f"features must have shape (N, D), got {tuple(features.shape)}")
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")


def class_statistics(features: Tensor, labels: Tensor):
    """Class means of the classes present, vectorised with index_add.

    Args:
        features: (N, D).
        labels: (N,) integer labels.
    Returns:
        classes (C,) the labels present (ascending), counts (C,) as the features' dtype,
        means (C, D) = mu_c, and index (N,) mapping each sample to its row in `classes`.
    """
    _check(features, labels)
    classes, index, counts = torch.unique(labels, sorted=True, return_inverse=True, return_counts=True)
    counts = counts.to(features.dtype)
    sums = features.new_zeros(len(classes), features.shape[1]).index_add_(0, index, features)
    return classes, counts, sums / counts[:, None], index


def _deviations(features: Tensor, means: Tensor, index: Tensor) -> Tensor:
    """(N, D) mu_{y_i} - phi_i, with one fresh allocation (the sign does not matter where it is used)."""
    return torch.index_select(means, 0, index).sub_(features)


def ncc(features: Tensor, labels: Tensor, reduction: str = "mean", num_classes: int | None = None) -> Tensor:
    """Neural-collapse clustering, Def. 3.1 (Galanti et al. 2021, class-distance normalised variance).

        NCC = agg_{c != c'} (V_c + V_c') / (2 ||mu_c - mu_c'||^2),   mu_c = mean_{i in D_c} phi_i

    reduction="mean": V_c = mean_{i in D_c} ||phi_i - mu_c||^2 and the ordered pairs are averaged
    (Galanti's average CDNV; what the original code computes and the paper plots).
    reduction="sum": V_c = sum_{i in D_c} ||phi_i - mu_c||^2 and the pairs are summed over c != c'
    (Def. 3.1 as printed); this equals |D|-weighted sums, larger by about K (K - 1) |D_c|.

    Only the classes present in `labels` enter (a mini-batch may miss some); a class with a single
    sample has V_c = 0. Fewer than two classes give NaN. With `num_classes` K (labels in [0, K)) the
    classes present are found without reading the labels on the host (no torch.unique): the value is the
    same up to float rounding, and a training step on a GPU need not wait for it.

    Args:
        features: (N, D) penultimate representations phi(x_i).
        labels: (N,) integer class labels (true labels).
        reduction: "mean" or "sum".
        num_classes: K, for the host-free computation (None: the classes present, by torch.unique).
    Returns:
        0-dim tensor, differentiable w.r.t. the features; lower = more collapsed. Invariant to
        translating and rotating the features, and (reduction "mean") to scaling them.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if num_classes is None:
        _, counts, means, index = class_statistics(features, labels)
        present = None
    else:  # all K classes, the absent ones masked below: fixed shapes, nothing read on the host
        _check(features, labels)
        # (K,) by index_add: bincount would read the largest label on the host
        counts = features.new_zeros(num_classes).index_add_(0, labels, features.new_ones(len(labels)))
        present, counts, index = counts > 0, counts.clamp(min=1), labels
        means = features.new_zeros(num_classes, features.shape[1]).index_add_(0, labels, features) / counts[:, None]
    deviations = _deviations(features, means, index)
    sq_norms = torch.linalg.vector_norm(deviations, dim=1).square()  # (N,) ||phi_i - mu_{y_i}||^2
    sq_dev = means.new_zeros(len(means)).index_add_(0, index, sq_norms)  # (C,) sum over D_c
    var = sq_dev / counts if reduction == "mean" else sq_dev  # (C,) V_c
    # Unordered pairs c < c' in pdist's order; pdist takes exact differences (no Gram cancellation).
    first, second = torch.triu_indices(len(var), len(var), 1, device=features.device)
    dist = F.pdist(means).square()  # (C(C-1)/2,) ||mu_c - mu_c'||^2
    if present is None:
        ratio = (var[first] + var[second]) / (2 * dist)
        # The term is symmetric: the sum over ordered pairs is twice this, the mean the same.
        return 2 * ratio.sum() if reduction == "sum" else ratio.mean()
    # Absent classes have mean 0: their distances are masked before dividing (pdist's gradient at 0 is 0).
    pair = present[first] & present[second]
    one, zero = (torch.ones((), dtype=means.dtype, device=means.device),
                 torch.zeros((), dtype=means.dtype, device=means.device))
    ratio = torch.where(pair, (var[first] + var[second]) / (2 * torch.where(pair, dist, one)), zero)
    return 2 * ratio.sum() if reduction == "sum" else ratio.sum() / pair.sum()


def class_variances(features: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """The within- and between-class variances and their ratio as Sakamoto et al. (2025) compute them (their
    public code, collapse-dynamics, src/neural_collapse.py), over the classes present:

        wcv       = (1/n) sum_i ||phi_i - mu_{y_i}||^2                  (Tr Sigma_W)
        bcv       = sum_c (n_c / n) ||mu_c - mu_G||^2,  mu_G = (1/n) sum_i phi_i   (Tr Sigma_B, class-size weighted)
        nc1_trace = wcv / (bcv + 1e-8)                                  (their "NC1 score")

    Their claim is about the within-class variance of the *population* (held-out data): measure it on a
    validation split. Not Papyan et al.'s NC1, Tr(Sigma_W pinv(Sigma_B)) / C (`neural_collapse`), which
    weighs directions by the between-class covariance's inverse.

    Args:
        features: (N, D) representations phi(x_i).
        labels: (N,) integer class labels.
    Returns:
        {"wcv", "bcv", "nc1_trace"}: 0-dim tensors, differentiable w.r.t. the features.
    """
    _, counts, means, index = class_statistics(features, labels)
    n = features.new_tensor(len(features))
    wcv = torch.linalg.vector_norm(_deviations(features, means, index), dim=1).square().sum() / n
    centre = (counts[:, None] * means).sum(0) / n  # mu_G, the mean of all samples
    bcv = (counts / n * torch.linalg.vector_norm(means - centre, dim=1).square()).sum()
    return {"wcv": wcv, "bcv": bcv, "nc1_trace": wcv / (bcv + 1e-8)}


def neural_collapse(features: Tensor, labels: Tensor, weight: Tensor | None = None,
                    bias: Tensor | None = None) -> dict[str, Tensor]:
    """NC1-NC4 of Papyan, Han & Donoho (2020), over the classes present.

    With mu_c the class means, mu_G = (1/C) sum_c mu_c the mean of the class means and
    M the (C, D) matrix of rows mu_c - mu_G:

        nc1        = Tr(Sigma_W pinv(Sigma_B)) / C,  Sigma_W = (1/N) sum_i (phi_i - mu_{y_i})(phi_i - mu_{y_i})^T,
                     Sigma_B = (1/C) M^T M
        nc2_norms  = std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||    (unbiased std, as torch.std)
        nc2_angles = mean_{c != c'} |cos(mu_c - mu_G, mu_c' - mu_G) + 1/(C - 1)|
        nc3        = || W / ||W||_F - M / ||M||_F ||_F^2                 (rows of W for the classes present)
        nc4        = fraction of samples whose classifier prediction argmax_k (W phi + b)_k differs
                     from the nearest class mean argmin_c ||phi - mu_c||

    All four tend to 0 under neural collapse. NC1 is computed in the span of M (rank <= C - 1)
    through the SVD of M, so no D x D matrix is formed; singular values of M below
    max(C, D) * eps * s_max count as zero, and at most C - 1 are kept (M's rows sum to 0).

    Args:
        features: (N, D); labels: (N,) integer labels.
        weight: optional (K, D) classifier weight, rows indexed by label; enables nc3 and nc4.
        bias: optional (K,) classifier bias (nc4 only).
    Returns:
        dict of 0-dim tensors: nc1, nc2_norms, nc2_angles, and with a weight nc3, nc4.
    """
    classes, counts, means, index = class_statistics(features, labels)
    num = len(classes)
    centred = means - means.mean(0)  # (C, D) M, rows mu_c - mu_G

    # NC1: pinv(Sigma_B) = C * V diag(s^-2) V^T with M = U diag(s) V^T, so
    # Tr(Sigma_W pinv(Sigma_B)) / C = sum_j s_j^-2 v_j^T Sigma_W v_j.
    _, sing, vh = torch.linalg.svd(centred, full_matrices=False)  # (r,), (r, D)
    tol = max(centred.shape) * torch.finfo(centred.dtype).eps * sing.max()
    # M has rank <= C - 1 (its rows sum to 0): a C-th singular value is rounding noise of size
    # ~eps ||mu_G||, which can exceed tol when the features share a large offset (post-ReLU).
    keep = (sing > tol) & (torch.arange(len(sing), device=sing.device) < num - 1)
    inv_sq = torch.where(keep, 1.0 / torch.where(keep, sing, torch.ones_like(sing)).pow(2), torch.zeros_like(sing))
    # Project before subtracting the class means: (N, r) instead of an (N, D) temporary.
    projected = features @ vh.T - (means @ vh.T)[index]  # (N, r) (phi_i - mu_{y_i}) . v_j
    proj_var = projected.square().mean(0)  # (r,) v_j^T Sigma_W v_j
    nc1 = (proj_var * inv_sq).sum()

    norms = centred.norm(dim=1)  # (C,)
    nc2_norms = norms.std() / norms.mean()
    unit = centred / norms[:, None]
    cos = unit @ unit.T
    off_diag = ~torch.eye(num, dtype=torch.bool, device=features.device)
    nc2_angles = ((cos + 1.0 / (num - 1)).abs() * off_diag).sum() / off_diag.sum()
    out = {"nc1": nc1, "nc2_norms": nc2_norms, "nc2_angles": nc2_angles}

    if weight is not None:
        w = weight[classes]  # (C, D)
        out["nc3"] = (w / w.norm() - centred / centred.norm()).pow(2).sum()
        logits = features @ weight.T + (bias if bias is not None else 0)
        predicted = logits.argmax(1)  # labels
        nearest = classes[_nearest_mean(features, means)]
        out["nc4"] = (predicted != nearest).to(features.dtype).mean()
    return out


def _nearest_mean(features: Tensor, means: Tensor) -> Tensor:
    """argmin_c ||phi_i - mu_c|| for each row, (N,) indices into `means`."""
    with torch.no_grad():  # ||phi - mu||^2 = ||phi||^2 - 2 phi.mu + ||mu||^2; the first term is per row
        return (means.pow(2).sum(1) - 2 * features @ means.T).argmin(1)


def class_mean_angles(features: Tensor, labels: Tensor) -> Tensor:
    """Angles in degrees between the centred class means, Fig. 3.

        angle_{c,c'} = arccos( <mu_c - mu_G, mu_c' - mu_G> / (||mu_c - mu_G|| ||mu_c' - mu_G||) )

    with mu_G the mean of the class means. Under NC2 every off-diagonal angle equals
    `simplex_angle(C)`; the diagonal is 0.

    Returns:
        (C, C) tensor over the classes present (ascending label order).
    """
    _, _, means, _ = class_statistics(features, labels)
    centred = means - means.mean(0)
    unit = centred / centred.norm(dim=1, keepdim=True)
    cos = (unit @ unit.T).clamp(-1.0, 1.0)
    angles = torch.rad2deg(torch.arccos(cos))
    return angles * ~torch.eye(len(means), dtype=torch.bool, device=features.device)


def simplex_angle(num_classes: int) -> float:
    """Angle in degrees between any two vertices of a centred regular simplex (ETF) with k classes:
    arccos(-1 / (k - 1)); 96.38 for k = 10."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return math.degrees(math.acos(-1.0 / (num_classes - 1)))
