"""Heavy-tailed self-regularisation (HTSR, Martin & Mahoney 2021): the power-law exponent alpha of a
layer's eigenvalue spectrum, the layer-quality metric that Prakash & Martin (2025) track through grokking
and "anti-grokking" (alpha < 2 heralding a late collapse of test accuracy).

For a weight matrix W (N x M) the empirical spectral density is that of the eigenvalues of W^T W (the
squared singular values of W, min(N, M) of them). Its tail is fitted by a continuous power law
p(x) ~ x^-alpha, x >= xmin, with Clauset, Shalizi & Newman's (2009) method, as WeightWatcher does through
the `powerlaw` package: for each candidate xmin the maximum-likelihood alpha, and the xmin whose fit has
the smallest Kolmogorov-Smirnov distance to the data's tail. Here all candidates at once, (n, n) work.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["powerlaw_fit", "spectrum", "layer_alphas"]


def powerlaw_fit(values: Tensor, chunk: int = 1024) -> dict[str, Tensor]:
    """Clauset et al. (2009) fit of a continuous power law to the positive entries of `values`.

    For a candidate xmin with the n_t values x_i >= xmin in the tail:
        alpha(xmin) = 1 + n_t / sum_i log(x_i / xmin)                     (maximum likelihood, Eq. 3.1)
        D(xmin)     = max_i |S_i - (1 - (x_i / xmin)^(1 - alpha))|       (Kolmogorov-Smirnov)
    with S_i = i / n_t at the tail's i-th smallest value, i = 0 .. n_t - 1 (the convention of Clauset's
    plfit.m). The candidates are the distinct values but the largest (as `powerlaw.Fit`); the fit is the
    candidate with the smallest D.
    Returns 0-dim float64 tensors alpha, xmin, D (the KS distance) and n_tail; all NaN with fewer than
    two distinct positive values. Not differentiable (a selection). Candidates go `chunk` at a time
    ((chunk, n) memory).
    """
    x = values.detach().flatten().double()
    x = x[x > 0].sort().values
    nan = x.new_tensor(float("nan"))
    distinct = torch.unique_consecutive(x)
    if len(distinct) < 2:
        return {"alpha": nan, "xmin": nan, "D": nan, "n_tail": nan}
    n = len(x)
    first = torch.searchsorted(x, distinct[:-1])  # (K,) the first index of each candidate xmin
    n_tail = (n - first).double()
    logs = x.log()
    tail_log_sum = logs.flip(0).cumsum(0).flip(0)[first]  # sum over the tail of log x_i
    alpha = 1 + n_tail / (tail_log_sum - n_tail * logs[first])
    # The tail's empirical CDF at its i-th value (i = 0 .. n_t - 1): i / n_t, as Clauset's plfit.m.
    below = torch.searchsorted(x, x).double()  # (n,) values < x_j overall (ties share the first index)
    index = torch.arange(n, device=x.device)
    distance = torch.cat([_ks_distance(logs, below, index, first[c], alpha[c], n_tail[c])
                          for c in torch.arange(len(first), device=x.device).split(chunk)])
    best = int(distance.argmin())
    return {"alpha": alpha[best], "xmin": x[first[best]], "D": distance[best], "n_tail": n_tail[best]}


def _ks_distance(logs, below, index, first, alpha, n_tail):
    """D for candidates with tails starting at indices `first` (K,), over the sorted log values (n,)."""
    empirical = (below[None, :] - first[:, None].double()) / n_tail[:, None]  # (K, n)
    ratio = (logs[None, :] - logs[first][:, None]).clamp_min(0)  # log(x_j / xmin), 0 outside the tail
    fitted = 1 - torch.exp((1 - alpha)[:, None] * ratio)
    return torch.where(index[None, :] >= first[:, None], (empirical - fitted).abs(), 0).amax(1)


def spectrum(weight: Tensor) -> Tensor:
    """The eigenvalues of W^T W for a 2-D weight (the squared singular values, float64, ascending)."""
    return torch.linalg.svdvals(weight.detach().double()).square().flip(0)


def layer_alphas(model: nn.Module) -> dict[str, Tensor]:
    """HTSR alpha of every nn.Linear and nn.Embedding weight of `model`, keyed 'alpha_<module name>' (dots
    as underscores), plus 'alpha_mean', their mean (WeightWatcher's average alpha)."""
    alphas = {f"alpha_{name.replace('.', '_')}": powerlaw_fit(spectrum(module.weight))["alpha"]
              for name, module in model.named_modules() if isinstance(module, (nn.Linear, nn.Embedding))}
    if alphas:
        alphas["alpha_mean"] = torch.stack(list(alphas.values())).mean()
    return alphas
