"""Nanda et al.'s progress measures for modular addition ("Progress measures for grokking via mechanistic
interpretability", ICLR 2023, Sec. 5.1; their code's `get_component_cos_xpy`, `get_component_sin_xpy`,
`test_logits`), on this experiment's model.

A network that has grokked a + b mod p computes its answer logits from a few *key frequencies* w_k = 2 pi k / p:
logit(c | a, b) ~ sum_k alpha_k cos(w_k (a + b - c)). Written over the grid of all p^2 pairs (a, b), each
output's logits then lie in the span of the directions cos(w_k (a + b)) and sin(w_k (a + b)) (cos(w(a+b-c)) =
cos(w(a+b)) cos(wc) + sin(w(a+b)) sin(wc)). With P the orthogonal projection of every output's column of
logits onto those directions for the key frequencies:

    restricted loss = CE(P L + mean_pairs(L - P L))    only the key-frequency terms, plus each output's
                                                         mean over the pairs (their bias correction)
    excluded loss   = CE(L - P L)                      the key-frequency terms removed

each cross-entropy over the pairs of one split. The restricted loss falls as the circuit forms, before the
validation loss does; the excluded loss rises as the circuit takes over from memorisation.

Key frequencies (Nanda et al. read them off the Fourier spectrum of the embedding, their Fig. 3): here the
fewest frequencies, by falling energy, that hold `KEY_SHARE` of the non-constant Fourier energy of the
number tokens' embedding (the squared norm of its projection onto cos(w_k a) and sin(w_k a), summed over
the embedding dimensions). At initialisation (a N(0, 1) embedding, its energy spread evenly) that is about
four in five of the p // 2 frequencies; once a few frequencies carry the embedding, it is those. 0.8 rather than
a half: in this 2-layer model the embedding of a grokked run concentrates on fewer frequencies than its
logits use, and the frequencies that hold half of its energy leave some of those out. Compare the logged
restricted loss at the end of a run with the loss at the answer (`representativeness_val_loss`) to see
how much of the logits the rule's frequencies carry.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["KEY_SHARE", "frequency_energies", "key_frequencies", "key_directions", "progress_losses", "pair_grid",
           "final_key_rows"]

KEY_SHARE = 0.8


def frequency_energies(embedding: Tensor) -> Tensor:
    """The Fourier energy of each frequency k = 1..p // 2 of a (p, d) embedding of the numbers 0..p-1:

        e_k = ||c_k^T E||^2 + ||s_k^T E||^2,   c_k, s_k the unit vectors along cos(2 pi k a / p), sin(2 pi k a / p)

    (for even p, k = p / 2 has the cosine only). Returns (p // 2,) float64; e_k sums with the constant's
    energy to ||E||_F^2."""
    p = embedding.shape[0]
    a = torch.arange(p, dtype=torch.float64, device=embedding.device)
    k = torch.arange(1, p // 2 + 1, dtype=torch.float64, device=embedding.device)
    angle = 2 * math.pi * k[:, None] * a[None, :] / p  # (K, p)
    energy = torch.zeros(len(k), dtype=torch.float64, device=embedding.device)
    for wave in (torch.cos(angle), torch.sin(angle)):
        norm = torch.linalg.vector_norm(wave, dim=1, keepdim=True)
        unit = torch.where(norm > 1e-6, wave / norm.clamp_min(1e-6), torch.zeros_like(wave))  # sin(pi a) = 0
        energy += torch.linalg.vector_norm(unit @ embedding.double(), dim=1).square()
    return energy


def key_frequencies(embedding: Tensor, share: float = KEY_SHARE) -> list[int]:
    """The fewest frequencies k (largest energy first) whose `frequency_energies` hold at least `share` of the
    energy of all k >= 1; sorted."""
    energy = frequency_energies(embedding)
    order = torch.argsort(energy, descending=True, stable=True)
    held = torch.cumsum(energy[order], 0) / energy.sum()
    count = int(torch.searchsorted(held, torch.tensor(share, dtype=held.dtype, device=held.device))) + 1
    return sorted(int(k) + 1 for k in order[:min(count, len(order))])


def key_directions(p: int, frequencies: list[int], device=None) -> Tensor:
    """The orthonormal directions cos(w_k (a + b)), sin(w_k (a + b)) over the a-major grid of pairs, one row each
    (2 per frequency; for k = p / 2 the sine is 0 and left out): (R, p^2) float64."""
    a, b = torch.meshgrid(torch.arange(p, dtype=torch.float64, device=device),
                          torch.arange(p, dtype=torch.float64, device=device), indexing="ij")
    rows = []
    for k in frequencies:
        angle = (2 * math.pi * k / p * (a + b)).flatten()
        for wave in (torch.cos(angle), torch.sin(angle)):
            norm = torch.linalg.vector_norm(wave)
            if norm > 1e-6:
                rows.append(wave / norm)
    return torch.stack(rows) if rows else torch.zeros(0, p * p, dtype=torch.float64, device=device)


def progress_losses(logits: Tensor, targets: Tensor, splits: dict[str, Tensor], frequencies: list[int]) -> dict[str, Tensor]:
    """Nanda et al.'s restricted and excluded losses of answer logits over the whole grid of pairs.

    Args:
        logits: (p^2, V) the answer logits of every pair (a, b), a-major (row a * p + b); V outputs.
        targets: (p^2,) the answer class of every pair.
        splits: {split: (p^2,) bool mask of its pairs}.
        frequencies: the key frequencies k (w_k = 2 pi k / p).
    Returns:
        {"<split>_restricted_loss", "<split>_excluded_loss"}: 0-dim float64 tensors (cross-entropy, mean over
        the split's pairs). With no key frequency the restricted logits are each output's mean over the pairs
        and the excluded logits are the logits themselves.
    """
    p = math.isqrt(len(logits))
    full = logits.double()
    directions = key_directions(p, frequencies, full.device)  # (R, p^2)
    projected = directions.T @ (directions @ full)  # P L
    restricted = projected + (full - projected).mean(0, keepdim=True)
    excluded = full - projected
    out = {}
    for split, mask in splits.items():
        out[f"{split}_restricted_loss"] = F.cross_entropy(restricted[mask], targets[mask])
        out[f"{split}_excluded_loss"] = F.cross_entropy(excluded[mask], targets[mask])
    return out


def pair_grid(pairs: dict[str, Tensor], values: dict[str, Tensor], labels: dict[str, Tensor], p: int):
    """Each split's rows, indexed by their pair a * p + b (`pairs[split]`, (N,)), on the a-major grid of all p^2
    pairs: the values there (p^2, ...), the answers (p^2,) and each split's mask of its pairs (p^2,)."""
    first = next(iter(values.values()))
    grid = first.new_empty((p * p, *first.shape[1:]))
    answers = torch.empty(p * p, dtype=torch.long, device=first.device)
    masks = {}
    for split, index in pairs.items():
        grid[index], answers[index] = values[split], labels[split]
        masks[split] = torch.zeros(p * p, dtype=torch.bool, device=first.device).index_fill_(0, index, True)
    return grid, answers, masks


def final_key_rows(saved: dict) -> list[dict]:
    """Nanda et al.'s reading: the restricted and excluded losses of every saved evaluation with the key
    frequencies of the *last* one (train.py --save_features: the arrays of features.npz). Logits from the saved
    float16 '=' features times W_U, so they carry float16 rounding (~1e-3 relative)."""
    p = saved["embedding"].shape[1]
    keys = key_frequencies(torch.from_numpy(saved["embedding"][-1]))
    is_train = torch.from_numpy(saved["is_train"]).bool()
    rows_of = {"train": is_train, "val": ~is_train}
    pairs, labels = torch.from_numpy(saved["pairs"]).long(), torch.from_numpy(saved["labels"]).long()
    pairs, labels = ({s: x[r] for s, r in rows_of.items()} for x in (pairs, labels))
    rows = []
    for step, features, unembedding in zip(saved["steps"], saved["features"], saved["unembedding"]):
        logits = torch.from_numpy(features).float() @ torch.from_numpy(unembedding).float().T  # (N, V)
        grid, answers, masks = pair_grid(pairs, {s: logits[r] for s, r in rows_of.items()}, labels, p)
        losses = progress_losses(grid, answers, masks, keys)
        rows.append({"step": int(step), "key_frequencies": keys, **{k: v.item() for k, v in losses.items()}})
    return rows
