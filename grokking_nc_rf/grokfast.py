"""Grokfast-EMA (Lee et al. 2024, "Grokfast: Accelerated Grokking by Amplifying Slow Gradients", Algorithm 2;
their `gradfilter_ema`): an intervention on the gradient that is reported to make grokking come sooner.

After the backward pass and before the optimizer step, every gradient g gets the exponential moving average
of its past values added, the slow component amplified:

    mu <- alpha * mu + (1 - alpha) * g      (mu = g at the first step)
    g  <- g + lamb * mu

alpha 0.98 and lamb 2 in that paper. Element by element, so each seed of a `SeedStack` is filtered as it
would be alone. The moving averages are the filter's state: they go into every checkpoint (`seed_state`) and
come back on resume (`load_seed`), so a resumed run takes the steps of an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GrokfastEMA"]


class GrokfastEMA:
    """The filter over `params` ({name: stacked parameter (S, ...)}, the seed axis first)."""

    def __init__(self, params: dict[str, Tensor], alpha: float, lamb: float) -> None:
        self.params, self.alpha, self.lamb = params, alpha, lamb
        self.ema: dict[str, Tensor] = {}

    @torch.no_grad()
    def __call__(self) -> None:
        """Filter the gradients in place (call between backward and the optimizer step)."""
        for name, p in self.params.items():
            if p.grad is None:
                continue
            if name in self.ema:
                self.ema[name].mul_(self.alpha).add_(p.grad, alpha=1 - self.alpha)
            else:
                self.ema[name] = p.grad.clone()
            p.grad.add_(self.ema[name], alpha=self.lamb)

    def seed_state(self, seed: int) -> dict[str, Tensor]:
        """Seed `seed`'s moving averages ({} before the first step), on the CPU."""
        return {name: mu[seed].detach().cpu().clone() for name, mu in self.ema.items()}

    def load_seed(self, seed: int, state: dict[str, Tensor]) -> None:
        """Put a `seed_state` back into slot `seed`."""
        for name, mu in state.items():
            if name not in self.ema:
                self.ema[name] = torch.zeros_like(self.params[name])
            self.ema[name][seed].copy_(mu)
