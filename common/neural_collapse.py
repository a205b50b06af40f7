"""Neural-collapse measurements: NCC (Def. 3.1), NC1-NC4 (Papyan et al. 2020), class-mean angles.

All functions take features (N, D) and integer labels (N,), work on any device and dtype,
contain no Python loop over samples, and are differentiable with respect to the features
(and, where one is passed, the classifier weight).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["class_statistics", "ncc", "neural_collapse", "class_mean_angles", "simplex_angle"]

# Row chunk for pairwise class-mean differences: keeps a (chunk, C, D) block under ~128 MB (float32).
_PAIRWISE_ELEMENTS = 32 * 2**20


def _check(features: Tensor, labels: Tensor) -> None:
    if features.dim() != 2:
        raise ValueError(f"features must have shape (N, D), got {tuple(features.shape)}")
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")


def class_statistics(features: Tensor, labels: Tensor):
    """Class means and within-class spread of the classes present, vectorised with index_add.

    Args:
        features: (N, D).
        labels: (N,) integer labels.
    Returns:
        classes (C,) the labels present (ascending), counts (C,), means (C, D) = mu_c,
        sq_dev (C,) = sum_{i in D_c} ||phi_i - mu_c||^2, and index (N,) mapping each sample
        to its row in `classes`.
    """
    _check(features, labels)
    classes, index = torch.unique(labels, sorted=True, return_inverse=True)
    num = classes.numel()
    counts = torch.zeros(num, dtype=features.dtype, device=features.device)
    counts.index_add_(0, index, torch.ones_like(labels, dtype=features.dtype))
    sums = torch.zeros(num, features.shape[1], dtype=features.dtype, device=features.device)
    sums = sums.index_add(0, index, features)
    means = sums / counts[:, None]  # (C, D) mu_c
    deviations = features - means[index]  # (N, D) phi_i - mu_{y_i}
    sq_dev = torch.zeros(num, dtype=features.dtype, device=features.device)
    sq_dev = sq_dev.index_add(0, index, deviations.pow(2).sum(1))  # (C,)
    return classes, counts, means, sq_dev, index


def _pairwise_sq_dists(points: Tensor) -> Tensor:
    """(C, C) squared Euclidean distances, from exact differences (no |a|^2+|b|^2-2ab cancellation)."""
    num, dim = points.shape
    chunk = max(1, _PAIRWISE_ELEMENTS // max(1, num * dim))
    rows = [(points[i:i + chunk, None, :] - points[None, :, :]).pow(2).sum(-1) for i in range(0, num, chunk)]
    return torch.cat(rows, 0)


def ncc(features: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """Neural-collapse clustering, Def. 3.1 (Galanti et al. 2021, class-distance normalised variance).

        NCC = agg_{c != c'} (V_c + V_c') / (2 ||mu_c - mu_c'||^2),   mu_c = mean_{i in D_c} phi_i

    reduction="mean": V_c = mean_{i in D_c} ||phi_i - mu_c||^2 and the ordered pairs are averaged
    (Galanti's average CDNV; what the original code computes and the paper plots).
    reduction="sum": V_c = sum_{i in D_c} ||phi_i - mu_c||^2 and the pairs are summed over c != c'
    (Def. 3.1 as printed); this equals |D|-weighted sums, larger by about K (K - 1) |D_c|.

    Only the classes present in `labels` enter (a mini-batch may miss some); a class with a single
    sample has V_c = 0. Fewer than two classes give NaN.

    Args:
        features: (N, D) penultimate representations phi(x_i).
        labels: (N,) integer class labels (true labels).
        reduction: "mean" or "sum".
    Returns:
        0-dim tensor, differentiable w.r.t. the features; lower = more collapsed. Invariant to
        translating and rotating the features, and (reduction "mean") to scaling them.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    _, counts, means, sq_dev, _ = class_statistics(features, labels)
    var = sq_dev / counts if reduction == "mean" else sq_dev  # (C,) V_c
    dist = _pairwise_sq_dists(means)  # (C, C) ||mu_c - mu_c'||^2
    off_diag = ~torch.eye(len(var), dtype=torch.bool, device=features.device)
    # Replace the diagonal denominator before dividing, so no inf/NaN reaches the backward pass.
    ratio = (var[:, None] + var[None, :]) / (2 * torch.where(off_diag, dist, torch.ones_like(dist)))
    total = (ratio * off_diag).sum()
    if reduction == "sum":
        return total
    return total / off_diag.sum()


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
    max(C, D) * eps * s_max count as zero (M has rank <= C - 1 because its rows sum to 0).

    Args:
        features: (N, D); labels: (N,) integer labels.
        weight: optional (K, D) classifier weight, rows indexed by label; enables nc3 and nc4.
        bias: optional (K,) classifier bias (nc4 only).
    Returns:
        dict of 0-dim tensors: nc1, nc2_norms, nc2_angles, and with a weight nc3, nc4.
    """
    classes, counts, means, _, index = class_statistics(features, labels)
    num = len(classes)
    centred = means - means.mean(0)  # (C, D) M, rows mu_c - mu_G
    deviations = features - means[index]  # (N, D)

    # NC1: pinv(Sigma_B) = C * V diag(s^-2) V^T with M = U diag(s) V^T, so
    # Tr(Sigma_W pinv(Sigma_B)) / C = sum_j s_j^-2 v_j^T Sigma_W v_j.
    _, sing, vh = torch.linalg.svd(centred, full_matrices=False)  # (r,), (r, D)
    tol = max(centred.shape) * torch.finfo(centred.dtype).eps * sing.max()
    keep = sing > tol
    inv_sq = torch.where(keep, 1.0 / torch.where(keep, sing, torch.ones_like(sing)).pow(2), torch.zeros_like(sing))
    proj_var = (deviations @ vh.T).pow(2).mean(0)  # (r,) v_j^T Sigma_W v_j
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
    with torch.no_grad():
        return torch.cdist(features, means).argmin(1)


def class_mean_angles(features: Tensor, labels: Tensor) -> Tensor:
    """Angles in degrees between the centred class means, Fig. 3.

        angle_{c,c'} = arccos( <mu_c - mu_G, mu_c' - mu_G> / (||mu_c - mu_G|| ||mu_c' - mu_G||) )

    with mu_G the mean of the class means. Under NC2 every off-diagonal angle equals
    `simplex_angle(C)`; the diagonal is 0.

    Returns:
        (C, C) tensor over the classes present (ascending label order).
    """
    _, _, means, _, _ = class_statistics(features, labels)
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
