"""The decoder-only transformer of the original grokking code (openai/grok, docs/original_code.md §2.2).

2 blocks, d_model 128, 4 heads, FFN 128 -> 512 -> 128 with ReLU, post-LayerNorm
(x = LN(x + MHA(x)); x = LN(x + FFN(x))), causal attention scaled by 1/sqrt(d_head), no bias in
any Linear, token embedding with N(0, 1) init (not scaled), fixed sinusoidal positions, and a
bias-free unembedding to the whole vocabulary. PyTorch default initialisation elsewhere. The
original keeps separate (128 -> 32) Q/K/V projections per head; a fused (128 -> 3 * 128) projection
has the same function class and the same default-init distribution (fan-in 128 in both).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sinusoidal_positions(max_len: int, d_model: int) -> Tensor:
    """Even i: sin(pos / 10000^(i/d)); odd i: cos(pos / 10000^((i-1)/d)), as the original."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    i = torch.arange(d_model)
    rate = torch.pow(10000.0, -(i - i % 2).float() / d_model)
    return torch.where(i % 2 == 0, torch.sin(pos * rate), torch.cos(pos * rate))  # (max_len, d)


def _attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d_head), masked) v for (B, H, T, d_head) inputs with tiny T.

    Written as broadcast products: with 6 tokens this is faster on a CPU than the batched matmuls
    and the fused kernel of F.scaled_dot_product_attention (same values; tests/test_grokking.py).
    """
    scores = (q[..., :, None, :] * k[..., None, :, :]).sum(-1) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    probs = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return (probs[..., None] * v[..., None, :, :]).sum(-2)  # (B, H, Tq, d_head)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.ln1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff, bias=False), nn.ReLU(), nn.Linear(d_ff, d_model, bias=False))
        self.ln2 = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, queries: slice = slice(None)) -> Tensor:
        """Block output at the positions `queries` (all by default). Positions outside it are only
        attended to, so their output projection and FFN are skipped: the same numbers, less work."""
        batch, length, width = x.shape
        heads = lambda t: t.view(batch, -1, self.n_heads, width // self.n_heads).transpose(1, 2)  # noqa: E731
        w_q, w_kv = self.qkv.weight.split([width, 2 * width])
        x_q = x[:, queries]
        k, v = F.linear(x, w_kv).chunk(2, dim=-1)
        positions = torch.arange(length, device=x.device)
        causal = positions[None, :] <= positions[queries, None]  # (queries, keys)
        att = _attention(heads(F.linear(x_q, w_q)), heads(k), heads(v), causal)
        x_q = self.ln1(x_q + self.proj(att.transpose(1, 2).reshape(batch, -1, width)))
        return self.ln2(x_q + self.ff(x_q))


class Transformer(nn.Module):
    """forward(tokens) returns the hidden states of the last block, (B, T, d_model), post-LN;
    `unembed` maps them to vocabulary logits. Splitting the two lets the training step apply the
    unembedding only at the positions the loss uses."""

    def __init__(self, vocab_size: int, d_model: int = 128, n_layers: int = 2, n_heads: int = 4,
                 d_ff: int = 512, max_len: int = 50) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)  # N(0, 1) init, as the original
        self.register_buffer("positions", sinusoidal_positions(max_len, d_model), persistent=False)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.unembed = nn.Linear(d_model, vocab_size, bias=False)  # W_U: the layer relative flatness is measured on

    def forward(self, tokens: Tensor, positions: slice = slice(None)) -> Tensor:
        """Hidden states of the last block at `positions` (all by default): (B, len(positions), d)."""
        x = self.embed(tokens) + self.positions[: tokens.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, positions if i == len(self.blocks) - 1 else slice(None))
        return x


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

