"""KDE representativeness of the training set for the validation set (App. D, Fig. 8).

Petzka et al. (2021) approximate epsilon-representativeness by a kernel density estimate in the
feature space phi: how much larger the loss on unseen points is than the kernel-weighted loss that
the training points' predictions incur on the unseen labels. The original grokking code only kept
the dumps; the computation follows Petzka's reference code (docs/original_code.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["representativeness", "representativeness_terms"]

# Validation rows per chunk: a (chunk, |S|) kernel block of about 1M elements (4 MB in float32).
# Small blocks stay in cache and in the allocator's reused memory: 2-3x faster than 16M-element
# blocks on a 2-core CPU (measured at 4705 x 4704).
_KERNEL_ELEMENTS = 2**20
_WEIGHTS = ("normalised", "as_given")


def representativeness_terms(train_features: Tensor, train_logits: Tensor, val_features: Tensor,
                             val_logits: Tensor, val_labels: Tensor, *, bandwidth: float = 1.0,
                             kernel: str | tuple[str, ...] = "petzka", weights: tuple[str, ...] = ("normalised",),
                             sample_weight: float = 0.02, progress: bool = False) -> dict[str, Tensor]:
    """The two terms of the KDE representativeness, App. D: Rep = val_loss - kde.

    With S the training points, T the validation points, d_ji = ||phi_j - phi_i||_2 and the
    per-sample cross-entropy l(y, f(x)) = -log softmax(f(x))_y:

        val_loss = (1/|T|) sum_{j in T} l(y_j, f(x_j))
        kde      = (1/|T|) sum_{j in T} sum_{i in S} a_ji l(y_j, f(x_i))

    The kernel value is K(r_ji / bw) / bw with K(r) = exp(-r^2/2) / sqrt(2 pi), KDEpy's 1-d Gaussian,
    and r_ji = sqrt(d_ji) for kernel="petzka" (the square root of Petzka et al.'s reference code: a
    Laplace-type kernel exp(-d/2bw^2)) or r_ji = d_ji for kernel="gaussian". The weights a_ji:

    weights="normalised" (kernel="petzka"): Petzka's reference code (KDEpy NaiveKDE):
        a_ji = (1/|S|) w_i K(r_ji / bw) / bw,   w_i = ||phi_i|| / sum_k ||phi_k||
        KDEpy renormalises the weights delta ||phi_i|| to sum to 1, so delta (0.02 in App. D)
        cancels, and the code divides by |S| once more. The KDE term is then at most
        K(0) / (bw |S|) times the largest loss: with |S| in the thousands, Rep ~ val_loss.
    weights="normalised" (kernel="gaussian"): the textbook conditional (Nadaraya-Watson) estimate,
        a_ji = exp(-d_ji^2 / 2bw^2) / sum_{k in S} exp(-d_jk^2 / 2bw^2)
        (the kernel constants cancel, nothing underflows in high dimension).
    weights="as_given": App. D read literally, "each training sample a weight of 0.02", used as
        written (not renormalised, no extra 1/|S|):
        a_ji = sample_weight * K(r_ji / bw) / bw
        (Petzka's getWeights would multiply this by ||phi_i||.)

    Exact (no subsampling), chunked over validation points, O(|T| |S| D) time and O(|S| * chunk)
    memory. The validation points are taken in label order, so a chunk reads the loss columns of
    its few labels only: sum_i a_ji l(y_j, f(x_i)) is entry y_j of a_j @ (-log softmax(train_logits)).
    Several kernels (a tuple) share the distances, and all weightings share each kernel evaluation.

    Args:
        train_features: (S, D); train_logits: (S, C).
        val_features: (T, D); val_logits: (T, C); val_labels: (T,) integer labels in [0, C).
        bandwidth: bw > 0.
        kernel: "petzka", "gaussian", or a tuple of them.
        weights: any of "normalised", "as_given".
        sample_weight: the per-sample weight of weights="as_given" (App. D: 0.02).
        progress: a progress bar over the chunks of validation points (for large sets).
    Returns:
        {"val_loss": 0-dim, "kde_<w>": 0-dim for each w in weights}, differentiable; for a tuple of
        kernels "kde_<kernel>_<w>" for each kernel and w.
    """
    kernels = (kernel,) if isinstance(kernel, str) else tuple(kernel)
    if not kernels or any(k not in ("petzka", "gaussian") for k in kernels):
        raise ValueError(f"kernel must be 'petzka', 'gaussian' or a tuple of them, got {kernel!r}")
    if not weights or any(w not in _WEIGHTS for w in weights):
        raise ValueError(f"weights must be a non-empty tuple of {_WEIGHTS}, got {weights!r}")
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    if train_features.shape[0] != train_logits.shape[0] or val_features.shape[0] != val_logits.shape[0]:
        raise ValueError("features and logits must have the same number of rows")
    num_train = train_features.shape[0]
    train_nll = -torch.log_softmax(train_logits, dim=1)  # (S, C) l(c, f(x_i))
    train_sq = train_features.square().sum(1)  # (S,) ||phi_i||^2
    scale = 1.0 / (2 * bandwidth**2)
    constant = 1.0 / (bandwidth * math.sqrt(2 * math.pi))  # K(r/bw)/bw = constant * exp(-r^2 scale)
    # Validation points in label order; only the columns of labels that occur among them are read.
    order = torch.argsort(val_labels, stable=True)
    val_sorted = val_features[order]
    classes, label_column = torch.unique(val_labels[order], return_inverse=True)
    train_nll = train_nll[:, classes]  # (S, C')
    norms = train_features.norm(dim=1)
    tables = {}  # per kernel, one loss table per weighting: (S, W, C'), a_j @ table in one matmul
    for name in kernels:
        per_weight = []
        for w in weights:
            if w == "as_given":
                per_weight.append(train_nll * (sample_weight * constant))
            elif name == "petzka":  # fold w_i, the kernel constant and the extra 1/|S| into the table
                per_weight.append(train_nll * (norms / norms.sum() * (constant / num_train))[:, None])
            else:  # Nadaraya-Watson: normalised per validation row below
                per_weight.append(train_nll)
        tables[name] = torch.stack(per_weight, dim=1)
    chunk = max(1, _KERNEL_ELEMENTS // max(1, num_train))
    kde_terms = {name: [] for name in kernels}
    starts = range(0, val_sorted.shape[0], chunk)
    if progress:  # a bar over the chunks, for large sets (tqdm is imported only then)
        from tqdm import tqdm
        starts = tqdm(starts, desc="KDE chunks", leave=False)
    # Without a graph to keep, the kernel blocks are worked on in place: the same operations and bits, fewer
    # (t, S) temporaries (the Gaussian kernel first, then the Petzka one in sq_dist's own memory).
    in_place = not (torch.is_grad_enabled() and any(
        t.requires_grad for t in (train_features, train_logits, val_features, val_logits)))
    order_of_kernels = sorted(kernels, key=lambda name: name == "petzka") if in_place else kernels
    for start in starts:
        block = val_sorted[start:start + chunk]  # (t, D)
        columns = label_column[start:start + chunk]  # sorted: the chunk's labels are columns lo..hi
        lo, hi = columns[0].item(), columns[-1].item() + 1
        picks = (columns - lo)[:, None, None].expand(-1, len(weights), 1)
        # d_ji^2 from the Gram expansion; the clamp keeps sqrt's gradient finite at d = 0.
        sq_dist = torch.addcmul(train_sq[None, :], block @ train_features.T, torch.tensor(-2.0, dtype=block.dtype))
        if in_place:
            sq_dist.add_(block.square().sum(1, keepdim=True)).clamp_min_(torch.finfo(block.dtype).tiny)
        else:
            sq_dist = (sq_dist + block.square().sum(1, keepdim=True)).clamp_min(torch.finfo(block.dtype).tiny)
        for name in order_of_kernels:
            if name == "petzka":  # exp(-(sqrt(d) / bw)^2 / 2): no shift (the values are at most 1)
                shift = None
                kernel_values = (sq_dist.sqrt_().mul_(-scale).exp_() if in_place
                                 else torch.exp(sq_dist.sqrt() * -scale))
            else:  # exp(-d^2 / 2bw^2 - shift), shift the row's largest exponent (the Nadaraya-Watson ratio keeps)
                exponent = sq_dist * -scale
                shift = exponent.detach().amax(1, keepdim=True)
                kernel_values = exponent.sub_(shift).exp_() if in_place else torch.exp(exponent - shift)
            table = tables[name][:, :, lo:hi].reshape(num_train, -1)  # (S, W * labels in the chunk)
            expected = (kernel_values @ table).view(len(block), len(weights), hi - lo)
            picked = expected.gather(2, picks).squeeze(2)  # (t, W)
            if name == "petzka":
                kde_terms[name].append(picked)
                continue
            factors = [1.0 / kernel_values.sum(1) if w == "normalised" else torch.exp(shift.squeeze(1)) for w in weights]
            kde_terms[name].append(picked * torch.stack(factors, dim=1))
    terms = {"val_loss": F.cross_entropy(val_logits, val_labels)}
    for name in kernels:
        kde = torch.cat(kde_terms[name]).mean(0)  # (W,)
        prefix = "kde_" if isinstance(kernel, str) else f"kde_{name}_"
        terms.update({prefix + w: kde[k] for k, w in enumerate(weights)})
    return terms


def representativeness(train_features: Tensor, train_logits: Tensor, val_features: Tensor,
                       val_logits: Tensor, val_labels: Tensor, *, bandwidth: float = 1.0,
                       kernel: str = "petzka", weights: str = "normalised", sample_weight: float = 0.02) -> Tensor:
    """KDE representativeness, App. D (Petzka et al. 2021):

        Rep = (1/|T|) sum_{j in T} [ l(y_j, f(x_j)) - sum_{i in S} a_ji l(y_j, f(x_i)) ]

    how much larger the loss on unseen points is than the kernel-weighted loss that the training
    points' predictions incur on the unseen labels; no absolute value is taken. The kernels and the
    weights a_ji are those of `representativeness_terms` (defaults: Petzka's reference code).

    Args:
        train_features: (S, D); train_logits: (S, C).
        val_features: (T, D); val_logits: (T, C); val_labels: (T,) integer labels in [0, C).
        bandwidth: bw > 0. kernel: "petzka" or "gaussian". weights: "normalised" or "as_given".
    Returns:
        0-dim tensor; lower = the training features represent the validation data better
        (App. D: it falls to 0 as validation accuracy reaches 100%). With kernel="petzka" and
        weights="normalised" it equals the validation loss to ~4 digits at |S| ~ 5000.
    """
    terms = representativeness_terms(train_features, train_logits, val_features, val_logits, val_labels,
                                     bandwidth=bandwidth, kernel=kernel, weights=(weights,),
                                     sample_weight=sample_weight)
    return terms["val_loss"] - terms[f"kde_{weights}"]
