"""HTSR alpha (common/measures/htsr.py) against brute force, samples of known exponent and the `powerlaw` package."""

import math
import warnings

import numpy as np
import powerlaw
import pytest
import torch
from torch import nn

from common.measures.htsr import layer_alphas, powerlaw_fit, spectrum


def pareto(alpha, n, seed):
    """n samples of p(x) ~ x^-alpha, x >= 1 (inverse CDF)."""
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return u ** (-1 / (alpha - 1))


def brute_force(values):
    """Clauset et al.'s recipe written out: every candidate xmin in a loop."""
    x = sorted(v for v in values.tolist() if v > 0)
    best = None
    for xmin in sorted(set(x))[:-1]:
        tail = [v for v in x if v >= xmin]
        alpha = 1 + len(tail) / sum(math.log(v / xmin) for v in tail)
        d = max(abs(sum(w < v for w in tail) / len(tail) - (1 - (v / xmin) ** (1 - alpha))) for v in tail)
        if best is None or d < best[2]:
            best = (alpha, xmin, d, len(tail))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(60, generator=g, dtype=torch.float64).exp() ** 3
    values[:5] = values[5:10]  # ties
    fit = powerlaw_fit(values)
    alpha, xmin, d, n_tail = brute_force(values)
    assert fit["alpha"].item() == pytest.approx(alpha, rel=1e-10)
    assert fit["xmin"].item() == xmin and fit["n_tail"].item() == n_tail
    assert fit["D"].item() == pytest.approx(d, rel=1e-10)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.0, 4.5])
def test_known_exponent(alpha):
    fit = powerlaw_fit(pareto(alpha, 4000, seed=int(alpha * 10)), chunk=300)
    stderr = (alpha - 1) / math.sqrt(fit["n_tail"].item())  # the MLE's standard error (Clauset et al. Eq. 3.2)
    assert abs(fit["alpha"].item() - alpha) < 4 * stderr


def spectra():
    g = torch.Generator().manual_seed(0)
    heavy = torch.distributions.StudentT(torch.tensor(2.5)).sample((200, 300))
    low_rank = torch.randn(128, 8, generator=g) @ torch.randn(8, 512, generator=g) + torch.randn(128, 512, generator=g)
    return {"gaussian 128x512": torch.randn(128, 512, generator=g), "student-t 200x300": heavy,
            "low rank + noise": low_rank, "pareto samples": pareto(2.2, 3000, seed=5)}


@pytest.mark.parametrize("name", list(spectra()))
def test_matches_powerlaw_package(name):
    data = spectra()[name]
    values = data if data.ndim == 1 else spectrum(data)
    ours = powerlaw_fit(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # powerlaw 2 keeps alpha in [0, 3] unless told otherwise; Clauset's method has no such bound.
        ref = powerlaw.Fit(values.numpy(), verbose=False, parameter_ranges={"alpha": [1, 1000]})
    assert ours["xmin"].item() == pytest.approx(ref.xmin, rel=1e-12)
    assert ours["alpha"].item() == pytest.approx(ref.alpha, rel=1e-9)
    assert ours["D"].item() == pytest.approx(ref.D, rel=1e-6)


def test_spectrum_is_the_eigenvalues_of_wtw():
    w = torch.randn(30, 50, generator=torch.Generator().manual_seed(3))
    reference = torch.linalg.eigvalsh(w.double() @ w.double().T)  # the nonzero eigenvalues of W^T W
    assert torch.allclose(spectrum(w), reference, rtol=1e-10)


def test_layer_alphas_keys_and_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(40, 16), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8), nn.LayerNorm(8))
    alphas = layer_alphas(model)
    assert set(alphas) == {"alpha_0", "alpha_1", "alpha_3", "alpha_mean"}
    reference = powerlaw_fit(torch.linalg.eigvalsh(model[1].weight.double().T @ model[1].weight.double()))
    assert alphas["alpha_1"].item() == pytest.approx(reference["alpha"].item(), rel=1e-9)
    assert alphas["alpha_mean"].item() == pytest.approx(np.mean([alphas[k].item() for k in ("alpha_0", "alpha_1", "alpha_3")]))


def test_degenerate_input_is_nan():
    for values in (torch.ones(10), torch.tensor([0.0, -1.0, 2.0]), torch.tensor([3.0])):
        assert all(torch.isnan(v) for v in powerlaw_fit(values).values())
