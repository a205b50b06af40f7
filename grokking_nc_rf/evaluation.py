"""What grokking_nc_rf measures at every evaluation: one full-batch pass per split and every logged value from it
(grokking_nc_rf/README.md, "Logged keys"), and the packing of the saved features (--save_features).

The measures themselves live in `common` (NCC, relative flatness, NC1-NC4, Sakamoto et al.'s class variances,
representativeness, HTSR alpha) and in fourier.py (Nanda et al.'s progress measures); here they are applied to
the hidden state at '=' of the two-layer transformer, with the answer tokens as classes and W_U as the layer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import (class_variances, layer_alphas, ncc, neural_collapse, relative_flatness_bound, relative_flatness_exact,
                    representativeness_terms)
from grokking_nc_rf.data import ANSWER_POS, EOS_POS, NUM_OFFSET
from grokking_nc_rf.fourier import final_key_rows, key_frequencies, pair_grid, progress_losses

__all__ = ["RHS", "forward_rhs", "evaluate", "seed_metrics", "pack_features"]

RHS = slice(ANSWER_POS, EOS_POS + 1)  # the two right-hand-side positions the loss uses


@torch.no_grad()
def forward_rhs(model, inputs, targets, chunk=512):
    """Every seed's hidden states and logits at the two right-hand-side positions of one whole split, and its
    loss and accuracy as the original: (S, N, 2, d), (S, N, 2, V), (S,), (S,). Computed in chunks of 512 rows
    (2x faster on a CPU than one 4704-row pass)."""
    seeds = model.n_seeds
    hidden = torch.cat([model(inputs[i:i + chunk].expand(seeds, -1, -1), RHS) for i in range(0, len(inputs), chunk)], 1)
    logits = model.unembed(hidden)
    loss = torch.stack([F.cross_entropy(z.flatten(0, 1), targets.flatten()) for z in logits])
    acc = torch.stack([(z.argmax(-1) == targets).all(1).float().mean() for z in logits])  # both RHS tokens right
    return hidden, logits, loss, acc


@torch.no_grad()
def evaluate(model, template, data, config):
    """One row of metrics per seed of the stack from one full-batch forward pass per split, and those passes
    ({split: (hidden (S, N, 2, d), logits (S, N, 2, V))} at the right-hand-side positions). A seed whose
    training loss is not finite (divergence) gets None. `template`: a Transformer that takes each seed's
    weights in turn, for HTSR alpha."""
    passes, rows = {}, [{} for _ in range(model.n_seeds)]
    for split, (inputs, targets) in data.items():
        hidden, logits, loss, acc = forward_rhs(model, inputs, targets)
        passes[split] = hidden, logits
        for row, value, right in zip(rows, loss.tolist(), acc.tolist()):
            row[f"{split}_loss"], row[f"{split}_acc"] = value, right
    for s, row in enumerate(rows):
        if not math.isfinite(row["train_loss"]):
            rows[s] = None
            continue
        template.load_state_dict(model.unstack(s))
        row.update(seed_metrics(template, {split: (h[s], z[s]) for split, (h, z) in passes.items()}, data, config))
    return rows, passes


@torch.no_grad()
def seed_metrics(model, passes, data, config):
    """The metrics of one seed from its passes ({split: (hidden (N, 2, d), logits (N, 2, V))})."""
    row = {}
    # In float32 (the closed forms keep rounding-level relative error) except NC1-NC4: NC1's
    # pseudo-inverse of the between-class covariance needs float64.
    w_u = model.unembed.weight  # (V, d) the unembedding W_U, all vocabulary rows
    # Measured where the answer is predicted: the hidden state at '=' (N, d), its logits (N, V), and the
    # answer tokens (N,) as class labels.
    at_eq = {split: passes[split][0][:, 0] for split in data}
    logits_at_eq = {split: passes[split][1][:, 0] for split in data}
    answers = {split: targets[:, 0] for split, (_, targets) in data.items()}
    for split in data:
        row[f"{split}_ncc"] = ncc(at_eq[split], answers[split]).item()
        row[f"{split}_rf_bound"] = relative_flatness_bound(at_eq[split], w_u).item()
        row[f"{split}_rf_exact"] = relative_flatness_exact(at_eq[split], w_u).item()
    # The original's variant (docs/original_code.md §2.4): softmax of the product of both RHS logits, both features.
    hidden, logits = passes["train"]
    row["train_rf_original"] = relative_flatness_bound(hidden.flatten(1), w_u, logits=logits[:, 0] * logits[:, 1]).item()
    row["w_norm"] = w_u.norm().item()
    # HTSR alpha of every weight matrix (Martin & Mahoney; the signal of Prakash & Martin's anti-grokking).
    row.update({k: v.item() for k, v in layer_alphas(model).items()})
    # Papyan et al.'s NC1-NC4 on the training split; Sakamoto et al.'s within- and between-class variances and
    # their ratio on both splits (their claim is about the held-out, population one).
    nc = neural_collapse(at_eq["train"].double(), answers["train"], w_u.double())
    row.update({f"train_{k}": v.item() for k, v in nc.items()})
    for split in data:
        row.update({f"{split}_{k}": v.item() for k, v in class_variances(at_eq[split].double(), answers[split]).items()})
    # Nanda et al.'s progress measures (fourier.py): the answer logits of all p^2 pairs, the key frequencies of
    # the current embedding of the numbers.
    p = config["modulus"]
    pairs = {split: (inputs[:, 1] - NUM_OFFSET) * p + inputs[:, 3] - NUM_OFFSET for split, (inputs, _) in data.items()}
    grid, grid_answers, masks = pair_grid(pairs, logits_at_eq, answers, p)
    keys = key_frequencies(model.embed.weight[NUM_OFFSET:NUM_OFFSET + p])
    row["n_key_frequencies"], row["key_frequencies"] = len(keys), keys
    row.update({k: v.item() for k, v in progress_losses(grid, grid_answers, masks, keys).items()})
    # App. D: representativeness = validation loss - KDE term, both logged, for each kernel and each
    # reading of the weights (README: with the reference code's weights the KDE term is ~1e-4 of the value).
    terms = representativeness_terms(at_eq["train"], logits_at_eq["train"], at_eq["val"], logits_at_eq["val"],
                                     answers["val"], bandwidth=config["bandwidth"], kernel=("petzka", "gaussian"),
                                     weights=("normalised", "as_given"), sample_weight=config["sample_weight"])
    row["representativeness_val_loss"] = terms["val_loss"].item()
    for kernel, prefix in (("petzka", "representativeness"), ("gaussian", "representativeness_gaussian")):
        for weights, key in (("normalised", prefix), ("as_given", prefix + "_as_given")):
            row[key + "_kde"] = terms[f"kde_{kernel}_{weights}"].item()
            row[key] = row["representativeness_val_loss"] - row[key + "_kde"]
    return row


def pack_features(run_dir: Path) -> None:
    """Merge the per-evaluation feature files into one compressed features.npz."""
    parts = sorted((run_dir / "features").glob("step_*.pt"), key=lambda f: int(f.stem[5:]))
    if not parts:
        return
    saved = [torch.load(f) for f in parts]
    packed = dict(steps=np.array([d["step"] for d in saved]),
                  features=np.stack([d["features"].numpy() for d in saved]),  # (E, N, d) float16
                  unembedding=np.stack([d["unembedding"].numpy() for d in saved]),  # (E, V, d)
                  embedding=np.stack([d["embedding"].numpy() for d in saved]),  # (E, p, d) the numbers' rows
                  labels=saved[0]["labels"].numpy(), is_train=saved[0]["is_train"].numpy(),
                  pairs=saved[0]["pairs"].numpy())  # (N,) each row's pair a * p + b
    np.savez_compressed(run_dir / "features.npz", **packed)
    # Nanda et al.'s way: the progress measures of the whole run with the final key frequencies (fourier.py).
    with open(run_dir / "fourier_final_keys.jsonl", "w") as out:
        out.writelines(json.dumps(row) + "\n" for row in final_key_rows(packed))
    for f in parts:
        f.unlink()
    (run_dir / "features").rmdir()

