"""The decoder-only transformer of the original grokking code (openai/grok, docs/original_code.md §2.2).

2 blocks, d_model 128, 4 heads, FFN 128 -> 512 -> 128 with ReLU, post-LayerNorm
(x = LN(x + MHA(x)); x = LN(x + FFN(x))), causal attention scaled by 1/sqrt(d_head), no bias in
any Linear, token embedding with N(0, 1) init (not scaled), fixed sinusoidal positions, and a
bias-free unembedding to the whole vocabulary. PyTorch default initialisation elsewhere. The
original keeps separate (128 -> 32) Q/K/V projections per head; a fused (128 -> 3 * 128) projection
has the same function class and the same default-init distribution (fan-in 128 in both).

Computed for speed, with the same values (tests/experiments/test_grokking.py checks them against the plain
transformer written out): the row-wise work (projections, LayerNorm, FFN) is done once per distinct
prefix of the batch (`shared_prefixes`), attention per sequence with batched matmuls, and the last
block only at the positions asked for.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=64)
def _hidden_keys(group: int, length: int, queries: tuple[int, int, int], device: torch.device) -> Tensor:
    """The attention mask of `group` sequences side by side: (group * Tq, group * T), True where a query
    position does not see a key (another sequence's, or a later position)."""
    positions = torch.arange(length, device=device)
    at = positions[slice(*queries)]
    owner_q = torch.arange(group, device=device).repeat_interleave(len(at))
    owner_k = torch.arange(group, device=device).repeat_interleave(length)
    return (owner_q[:, None] != owner_k[None, :]) | (positions.repeat(group)[None, :] > at.repeat(group)[:, None])


def causal_attention(q: Tensor, k: Tensor, v: Tensor, queries: slice | None, n_heads: int) -> Tensor:
    """softmax(q k^T / sqrt(d_head), causal) v for every head: q (B, Tq, d) at positions range(T)[queries] (all: None),
    k and v (B, T, d) at positions 0..T-1, heads side by side in d as the projections give them; returns
    (B * Tq, d).

    Written for a handful of tokens on a CPU (same values as F.scaled_dot_product_attention up to float
    rounding, tests/experiments/test_grokking.py): batched matmuls over (sequence, head), two sequences per
    matmul where the batch is even. A (2, 32) @ (32, 6) product per head is below the size at which torch's CPU
    bmm leaves its scalar loop for BLAS; two sequences side by side, with the other's keys masked out, are above
    it: the last block's attention (2 query positions) runs about 2x faster, forward and backward. The
    softmax is written out (max, exp, sum): over 6 keys faster than torch's softmax kernel."""
    batch, length, width = k.shape
    group = 2 if batch % 2 == 0 else 1
    hidden = _hidden_keys(group, length, (queries or slice(None)).indices(length), k.device)
    heads = lambda t: t.reshape(batch // group, -1, n_heads, width // n_heads).transpose(1, 2)  # noqa: E731
    scores = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(width // n_heads)  # (B/g, H, g Tq, g T)
    scores = scores.masked_fill(hidden, float("-inf"))
    weights = (scores - scores.amax(-1, keepdim=True)).exp()
    out = (weights / weights.sum(-1, keepdim=True)) @ heads(v)  # (B/g, H, g Tq, d_head)
    return out.transpose(1, 2).reshape(-1, width)


def every_prefix(tokens: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`shared_prefixes`' packing without merging: one packed row per (sequence, position), position by
    position. Fixed shapes, nothing read on the host: on a GPU, where the merge's torch.unique would make every
    step wait for the host and the rows it saves cost little, this is the packing."""
    batch, length = tokens.shape
    packed = torch.arange(batch * length, device=tokens.device)  # packed row r = p * B + b
    rows = packed.view(length, batch).T  # rows[b, p] = p * B + b
    first = packed % batch * length + packed // batch  # r -> b * T + p
    position = torch.arange(length, device=tokens.device).repeat_interleave(batch)
    return tokens.T.flatten(), position, rows, first


def shared_prefixes(tokens: Tensor, groups: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The distinct prefixes tokens[b, :p+1] of a batch, one packed row each; with `groups`, the batch is
    consecutive groups of that many sequences (one per seed of a `SeedStack`) and prefixes of different
    groups stay apart (within each position the rows come group by group).

    Under causal attention a position's state depends only on the prefix that ends there, so a
    prefix that many sequences share (in a + b = c: '<|eos|>', '<|eos|> a' and '<|eos|> a +' take
    at most 1 + 2p values in a batch) needs its row-wise work (projections, LayerNorm, FFN) done once.
    Returns, with R the number of distinct prefixes:
        token (R,) and position (R,): each packed row's last token and its position;
        rows (B, T): the packed row of each sequence's prefix ending at each position;
        first (R,): one flat index b * T + p of each packed row in `rows`.
    """
    batch, length = tokens.shape
    width = int(tokens.max()) + 1
    token, position, rows = [], [], []
    parent, offset = tokens.new_zeros(batch), 0  # parent: the sequence's prefix among those of position p - 1
    if groups is not None:  # a group's index leads the key: its prefixes never merge with another group's
        parent = torch.arange(batch, device=tokens.device) // groups
    for p in range(length):
        distinct, parent = torch.unique(parent * width + tokens[:, p], return_inverse=True)
        token.append(distinct % width)
        position.append(torch.full_like(distinct, p))
        rows.append(offset + parent)
        offset += len(distinct)
    rows = torch.stack(rows, 1)
    first = torch.empty(offset, dtype=torch.long, device=tokens.device)
    first[rows.flatten()] = torch.arange(rows.numel(), device=tokens.device)  # any occurrence will do
    return torch.cat(token), torch.cat(position), rows, first


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.ln1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff, bias=False), nn.ReLU(), nn.Linear(d_ff, d_model, bias=False))
        self.ln2 = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, rows: Tensor, first: Tensor, queries: slice | None = None) -> Tensor:
        """x (R, d): one row per distinct prefix, packed as `shared_prefixes` says. Returns the packed
        output (R, d), or with `queries` the output at those positions of every sequence (B * Tq, d):
        positions outside it are only attended to, so their query, output projection and FFN are
        skipped (the same numbers, less work). Attention runs per sequence (`causal_attention`)."""
        batch, width = rows.shape[0], x.shape[1]
        by_sequence = lambda t, at: t.index_select(0, at.flatten()).view(batch, -1, t.shape[1])  # noqa: E731
        w_q, w_kv = self.qkv.weight.split([width, 2 * width])
        if queries is None:
            q, k, v = by_sequence(F.linear(x, self.qkv.weight), rows).chunk(3, dim=-1)  # (B, T, d) each
        else:
            k, v = by_sequence(F.linear(x, w_kv), rows).chunk(2, dim=-1)
            x = x.index_select(0, rows[:, queries].flatten())  # (B * Tq, d)
            q = F.linear(x, w_q)
        att = causal_attention(q.view(batch, -1, width), k, v, queries, self.n_heads)  # (B * Tq, d)
        if queries is None:  # back to one row per prefix: every occurrence of a prefix holds the same values
            att = att.index_select(0, first)
        x = self.ln1(x + self.proj(att))
        return self.ln2(x + self.ff(x))


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

    def forward(self, tokens: Tensor, positions: slice = slice(None), merge: bool | None = None) -> Tensor:
        """Hidden states of the last block at `positions` (all by default): (B, len(positions), d).
        With `merge` (the default on the CPU) row-wise work is done once per distinct prefix (`shared_prefixes`):
        in a training batch of a + b = c equations that is 56% of the rows; without it (the default elsewhere)
        once per position (`every_prefix`: nothing read on the host). The same function."""
        merge = tokens.device.type == "cpu" if merge is None else merge
        token, position, rows, first = (shared_prefixes if merge else every_prefix)(tokens)
        x = self.embed(token) + self.positions[position]
        for block in self.blocks[:-1]:
            x = block(x, rows, first)
        return self.blocks[-1](x, rows, first, positions).view(len(tokens), -1, x.shape[1])


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())



class SeedStack(nn.Module):
    """S copies of a `Transformer`, one per seed, as one model: every parameter stacked along a leading seed
    axis (one optimizer over the stacked tensors; AdamW updates each element on its own, so seed s takes the
    step it takes alone), each seed on its own batch.

    `SeedStack(models)` takes the models built one per seed (each initialised as a single-seed run builds
    it); `unstack(s)` gives seed s back as a `Transformer` state dict, `load_seed` puts one in.

    forward(tokens (S, B, T), positions) -> hidden states (S, B, len(positions), d); `unembed(hidden)` ->
    logits. Two ways, the same function (tests/experiments/test_grokking.py):
    - per seed (the default off CUDA): `Transformer.forward` with seed s's parameters, one seed after
      another. Each seed's numbers are those of the seed alone, to the last bit, and on a CPU the matmuls
      stay the BLAS calls of one model (batched matmuls over seeds measured slower here, mostly backward).
    - batched (the default on CUDA, `batched=True`): the row-wise work as batched matmuls over the seeds,
      each seed's distinct prefixes padded to the seed with the most: one kernel for all seeds where a GPU
      would otherwise launch S small ones. Equal to the per-seed way up to float rounding.
    """

    def __init__(self, models: list[Transformer]) -> None:
        super().__init__()
        first = models[0]
        self.n_seeds, self.n_heads, self.n_layers = len(models), first.blocks[0].n_heads, len(first.blocks)
        self.register_buffer("positions", first.positions.clone(), persistent=False)
        self.names = [name for name, _ in first.named_parameters()]
        self.params = nn.ParameterDict({name.replace(".", "__"): nn.Parameter(torch.stack(
            [dict(m.named_parameters())[name].detach() for m in models]).clone()) for name in self.names})
        self._template = [first]  # the module whose forward runs with each seed's parameters (not registered)

    def p(self, name: str) -> Tensor:
        return self.params[name.replace(".", "__")]

    def unstack(self, seed: int) -> dict[str, Tensor]:
        """Seed `seed`'s parameters as the state dict of a `Transformer`."""
        return {name: self.p(name)[seed].detach().clone() for name in self.names}

    def load_seed(self, seed: int, state: dict[str, Tensor]) -> None:
        """Put a `Transformer` state dict into slot `seed` of the stack."""
        with torch.no_grad():
            for name in self.names:
                self.p(name)[seed].copy_(state[name])

    def seed(self, s: int) -> dict[str, Tensor]:
        """Seed s's parameters (views into the stack, with their graph) and buffers, by `Transformer` name."""
        return {**{name: self.p(name)[s] for name in self.names}, "positions": self.positions}

    def unembed(self, hidden: Tensor, batched: bool | None = None) -> Tensor:
        """(S, B, T, d) -> (S, B, T, V): each seed's W_U."""
        s, b, t, d = hidden.shape
        if not (hidden.is_cuda if batched is None else batched):
            return torch.stack([F.linear(hidden[i], self.p("unembed.weight")[i]) for i in range(s)])
        return torch.bmm(hidden.reshape(s, b * t, d), self.p("unembed.weight").transpose(1, 2)).view(s, b, t, -1)

    def forward(self, tokens: Tensor, positions: slice = slice(None), batched: bool | None = None,
                merge: bool | None = None) -> Tensor:
        merge = tokens.device.type == "cpu" if merge is None else merge  # see Transformer.forward
        if not (tokens.is_cuda if batched is None else batched):
            from torch.func import functional_call

            return torch.stack([functional_call(self._template[0], self.seed(s), (tokens[s], positions, merge))
                                for s in range(len(tokens))])
        seeds, batch, length = tokens.shape
        flat = tokens.reshape(seeds * batch, length)
        token, position, rows, first = shared_prefixes(flat, groups=batch) if merge else every_prefix(flat)
        # rows of the packed prefixes, grouped by seed and padded: slot[r] = seed * R + (rank within its seed)
        owner = torch.arange(seeds, device=tokens.device).repeat_interleave(batch)[first // length]
        order = torch.argsort(owner, stable=True)
        if merge:
            counts = torch.bincount(owner, minlength=seeds)
            width_r = int(counts.max())
        else:  # every seed has B * T rows (bincount would read the largest owner on the host)
            counts = torch.full((seeds,), batch * length, device=tokens.device)
            width_r = batch * length
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order), device=tokens.device)
        slot = owner * width_r + rank - starts[owner]
        padded_rows = slot[rows]  # (S * B, T): each sequence's prefix rows in the padded layout
        padded_first = torch.zeros(seeds * width_r, dtype=torch.long, device=tokens.device)
        padded_first[slot] = first
        used = torch.zeros(seeds * width_r, dtype=torch.bool, device=tokens.device)
        used[slot] = True
        tok = torch.zeros(seeds * width_r, dtype=torch.long, device=tokens.device)
        pos = torch.zeros_like(tok)
        tok[slot], pos[slot] = token, position
        embed = self.p("embed.weight")  # (S, V, d)
        seed_of = torch.arange(seeds, device=tokens.device).repeat_interleave(width_r)
        x = (embed[seed_of, tok] + self.positions[pos]).view(seeds, width_r, -1)
        for i in range(self.n_layers):
            last = i == self.n_layers - 1
            x = self._block(i, x, padded_rows, padded_first, used, batch, positions if last else None)
        return x.view(seeds, batch, -1, x.shape[-1])

    def _linear(self, x: Tensor, name: str) -> Tensor:
        return torch.bmm(x, self.p(name).transpose(1, 2))

    def _norm(self, x: Tensor, name: str) -> Tensor:
        normed = F.layer_norm(x, x.shape[-1:])
        return torch.addcmul(self.p(f"{name}.bias")[:, None], normed, self.p(f"{name}.weight")[:, None])

    def _block(self, i: int, x: Tensor, rows: Tensor, first: Tensor, used: Tensor, batch: int,
               queries: slice | None) -> Tensor:
        """`Block.forward` for every seed at once: x (S, R, d) padded rows; returns (S, R, d), or with
        `queries` (S, B * Tq, d)."""
        seeds, width_r, width = x.shape
        b = f"blocks.{i}."
        by_sequence = lambda t, at: t.reshape(seeds * width_r, -1).index_select(0, at.flatten()).view(  # noqa: E731
            seeds * batch, -1, t.shape[-1])
        w_q, w_kv = self.p(b + "qkv.weight").split([width, 2 * width], dim=1)
        if queries is None:
            q, k, v = by_sequence(self._linear(x, b + "qkv.weight"), rows).chunk(3, dim=-1)
        else:
            k, v = by_sequence(torch.bmm(x, w_kv.transpose(1, 2)), rows).chunk(2, dim=-1)
            x = x.reshape(seeds * width_r, width).index_select(0, rows[:, queries].flatten()).view(seeds, -1, width)
            q = torch.bmm(x, w_q.transpose(1, 2))
        att = causal_attention(q.reshape(seeds * batch, -1, width), k, v, queries, self.n_heads)  # (S B Tq, d)
        if queries is None:  # back to the padded rows: one occurrence of each prefix; padding rows stay 0
            att = torch.where(used[:, None], att.index_select(0, first), att.new_zeros(())).view(seeds, width_r, width)
        else:
            att = att.reshape(seeds, -1, width)
        x = self._norm(x + self._linear(att, b + "proj.weight"), b + "ln1")
        return self._norm(x + self._linear(F.relu(self._linear(x, b + "ff.0.weight")), b + "ff.2.weight"), b + "ln2")
