"""Modular-addition equations and the train/validation split of the original code (docs/original_code.md §2.1).

Vocabulary as the original (239 tokens for p = 97): <|eos|> = 0, '=' = 1, 20 operator tokens
(ids 2-21, '+' = 6), the numbers 0..p-1 (ids 22..21+p), then 120 permutation tokens. Each equation
is `<|eos|> a + b = c <|eos|>`; the model reads x = tokens[:-1] and predicts y = tokens[1:], and the
loss uses the two right-hand-side positions: '=' (predicts c) and c (predicts <|eos|>).
"""

from __future__ import annotations

import numpy as np
import torch

EOS, EQ, PLUS = 0, 1, 6
NUM_OFFSET = 22  # id of the number 0
NUM_PERMUTATIONS = 120
ANSWER_POS, EOS_POS = 4, 5  # positions in x whose outputs are trained


def vocab_size(modulus: int) -> int:
    return NUM_OFFSET + modulus + NUM_PERMUTATIONS


def equations(modulus: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All p^2 equations a + b = (a + b) mod p, a-major order.

    Returns:
        inputs (p^2, 6) token ids [eos, a, +, b, =, c]; targets (p^2, 2) the right-hand-side
        targets [c, eos] at positions 4 and 5.
    """
    a, b = torch.meshgrid(torch.arange(modulus), torch.arange(modulus), indexing="ij")
    a, b = a.flatten(), b.flatten()
    c = (a + b) % modulus
    n = a.numel()
    full = lambda v: torch.full((n,), v)  # noqa: E731
    inputs = torch.stack([full(EOS), a + NUM_OFFSET, full(PLUS), b + NUM_OFFSET, full(EQ), c + NUM_OFFSET], 1)
    targets = torch.stack([c + NUM_OFFSET, full(EOS)], 1)
    return inputs, targets


def split_indices(modulus: int, train_fraction: float, data_seed: int = 0,
                  split: str = "ordered") -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation equations; depends only on `data_seed`.

    split="ordered" (the original): shuffle all p^2 ordered pairs with RandomState(data_seed) and
    take the first round(p^2 * train_fraction) (Python rounding: 4704 of 9409 for 0.5) for training.
    Then for about half of the validation pairs (a, b) the twin (b, a) is a training pair, and
    addition is commutative: validation accuracy sits near 50% before grokking.
    split="unordered": shuffle the unordered pairs {a, b} instead and keep both orders on the same
    side, so no validation equation has its commuted twin in training (the training set size may
    exceed the target by one equation).
    """
    n = modulus * modulus
    n_train = round(n * train_fraction)
    rng = np.random.RandomState(data_seed)
    if split == "ordered":
        order = rng.permutation(n)
        return np.sort(order[:n_train]), np.sort(order[n_train:])
    a, b = np.divmod(np.arange(n), modulus)
    group = np.minimum(a, b) * modulus + np.maximum(a, b)  # id of the unordered pair {a, b}
    groups = np.unique(group)
    rank = np.empty(groups.max() + 1, dtype=np.int64)
    rank[rng.permutation(groups)] = np.arange(len(groups))
    order = np.argsort(rank[group], kind="stable")  # equations by shuffled group, twins adjacent
    sizes = np.bincount(rank[group])
    n_groups = int(np.searchsorted(np.cumsum(sizes), n_train))  # groups until the target is reached
    cut = int(np.cumsum(sizes)[n_groups]) if n_groups < len(sizes) else n
    return np.sort(order[:cut]), np.sort(order[cut:])
