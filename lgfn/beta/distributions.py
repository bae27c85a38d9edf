"""β samplers. Each draws a float32 tensor of β from a torch.Generator, so runs are seeded.

``progress`` in [0, 1] is the fraction of training done; only the annealing
samplers use it. The official Logit-GFN names are aliases with the official
formulas: note that its ``loguniform`` is *not* a log-uniform distribution
(it is :class:`ExpTilted`) and its ``expuniform`` is (it is :class:`LogUniform`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lgfn.errors import ConfigError
from lgfn.registry import register
from lgfn.settings import FLOAT32, beta_value


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


class BetaSampler:
    """Base class: ``low``/``high`` bound the support (used e.g. by thermometer encodings)."""

    low: float
    high: float

    def sample(self, n: int, generator: torch.Generator | None = None, progress: float = 0.0) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _check_range(low: float, high: float) -> None:
    """β is an inverse temperature: every β a sampler can draw is positive and finite."""
    for name, value in (("low", low), ("high", high)):
        if not beta_value(value):
            raise ConfigError(f"β {name} = {value!r}: must be a positive finite number a float32 holds, in "
                              f"[{FLOAT32.tiny:.3g}, {FLOAT32.max:.3g}] (β is an inverse temperature)")
    if not low <= high:
        raise ConfigError(f"β range needs low <= high, got low={low}, high={high}")


@register("beta_sampler", "constant")
class Constant(BetaSampler):
    """β = value."""

    def __init__(self, value: float = 1.0) -> None:
        _check_range(value, value)
        self.value = self.low = self.high = float(value)

    def sample(self, n: int, generator: torch.Generator | None = None, progress: float = 0.0) -> Tensor:
        return torch.full((n,), self.value, dtype=torch.float32)


@register("beta_sampler", "uniform")
class Uniform(BetaSampler):
    """β ~ U[low, high]."""

    def __init__(self, low: float = 1.0, high: float = 3.0) -> None:
        _check_range(low, high)
        self.low, self.high = float(low), float(high)

    def sample(self, n: int, generator: torch.Generator | None = None, progress: float = 0.0) -> Tensor:
        return _uniform(n, self.low, self.high, generator).float()


@register("beta_sampler", "log_uniform", aliases=("expuniform",))
class LogUniform(BetaSampler):
    """β = exp(U[ln low, ln high]): density ∝ 1/β (official name: ``expuniform``)."""

    def __init__(self, low: float = 1.0, high: float = 3.0) -> None:
        _check_range(low, high)
        self.low, self.high = float(low), float(high)

    def sample(self, n: int, generator: torch.Generator | None = None, progress: float = 0.0) -> Tensor:
        return _uniform(n, math.log(self.low), math.log(self.high), generator).exp().float()


@register("beta_sampler", "exp_tilted", aliases=("loguniform",))
class ExpTilted(BetaSampler):
    """β = ln(U[e^low, e^high]): density ∝ e^β, so mass piles up near ``high``.

    This is the official code's ``loguniform``. Computed as
    high + ln U[e^(low−high), 1] so that large β does not overflow.
    """

    def __init__(self, low: float = 1.0, high: float = 3.0) -> None:
        _check_range(low, high)
        self.low, self.high = float(low), float(high)

    def sample(self, n: int, generator: torch.Generator | None = None, progress: float = 0.0) -> Tensor:
        u = _uniform(n, math.exp(self.low - self.high), 1.0, generator)
        return (self.high + u.log()).clamp(self.low, self.high).float()


@register("beta_sampler", "clipped_normal", aliases=("normal",))
class ClippedNormal(BetaSampler):
    """β = clip(N(mu, sigma), low, high) (official name: ``normal``)."""

    def __init__(self, mu: float = 2.0, sigma: float = 0.5, low: float = 1.0, high: float = 3.0) -> None:
        _check_range(low, high)
        if not low <= mu <= high or sigma < 0:
            raise ConfigError(f"clipped_normal needs low <= mu <= high and sigma >= 0, got mu={mu}, sigma={sigma}")
        self.mu, self.sigma, self.low, self.high = float(mu), float(sigma), float(low), float(high)

    def sample(self, n: int, generator: torch.Generator | None = None, progress: float = 0.0) -> Tensor:
        z = torch.randn(n, generator=generator, dtype=torch.float64)
        return (self.mu + self.sigma * z).clamp(self.low, self.high).float()


@register("beta_sampler", "annealing")
class Annealing(BetaSampler):
    """μ = low + (high − low)·progress; β = clip(U[μ − width, μ + width], low, high), width 0.5."""

    def __init__(self, low: float = 1.0, high: float = 3.0, width: float = 0.5) -> None:
        _check_range(low, high)
        self.low, self.high, self.width = float(low), float(high), float(width)

    def _center(self, progress: float) -> float:
        return self.low + (self.high - self.low) * progress

    def sample(self, n: int, generator: torch.Generator | None = None, progress: float = 0.0) -> Tensor:
        mu = self._center(min(max(progress, 0.0), 1.0))
        return _uniform(n, mu - self.width, mu + self.width, generator).clamp(self.low, self.high).float()


@register("beta_sampler", "inverse_annealing", aliases=("annealing-inv",))
class InverseAnnealing(Annealing):
    """As :class:`Annealing` with progress replaced by 1 − progress: β falls from ``high`` to ``low``."""

    def _center(self, progress: float) -> float:
        return self.low + (self.high - self.low) * (1.0 - progress)
