"""How β enters the GFlowNet. Logit-GFN (Kim et al. 2024, https://arxiv.org/abs/2310.02823) scales the
forward policy's logits with a learned temperature:

    P_F(s' | s; β) = softmax_{s' ∈ Ch(s)}( α_θ(s, s') / f_θ(β) ),   f_θ(β) > 0,

while layer conditioning (Zhang et al. 2023, https://arxiv.org/abs/2302.05446) feeds an embedding of β to α_θ.

One class covers every conditioning type; the registry's YAML entries
(``registry/conditioners/*.yaml``) name the presets:

- ``none``: unconditional, trained and sampled at one fixed β.
- ``layer``: an MLP embedding of β concatenated to the policy input.
- ``thermometer``: ``layer`` on a clamped thermometer encoding of β.
- ``logit``: Logit-GFN, P_F = softmax(α_θ(s, ·) / f_θ(β)) with a β-free α_θ.
- ``logit_layer``: both: a β-aware α_θ whose logits are also scaled by f_θ(β).
- ``logit_official``: the official Logit-GFN code's scaling, for comparisons with it: α_θ · g_θ(β) of raw β,
  clamped *after* scaling. g_θ is unconstrained and, fed raw β, grows about linearly beyond the training
  range, so at large β the scaled logits of many children hit the clamp together and P_F becomes uniform
  over them: a flat top-100 there is clamp saturation, not R^β (the distinct-sample count shows it).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lgfn.errors import ConfigError
from lgfn.models.nets import mlp

BetaTransform = Literal["raw", "log"]
ScaleForm = Literal["temperature", "multiply"]


def thermometer(beta: Tensor, n_bins: int, low: float, high: float) -> Tensor:
    """Clamped thermometer code: bin i is the fraction of [b_i, b_i + gap] that β has passed."""
    bins = torch.linspace(low, high, n_bins, device=beta.device)
    gap = (high - low) / max(n_bins - 1, 1)
    return ((beta[:, None] - bins) / gap).clamp(0.0, 1.0)


def _transform(beta: Tensor, how: BetaTransform) -> Tensor:
    return (beta.log() if how == "log" else beta)[:, None]


class Conditioner(nn.Module):
    """β-conditioning of the policy: an optional embedding, an optional logit temperature f_θ(β).

    Args:
        fixed_beta: unconditional model: the one β it is trained and sampled at.
        layer: concatenate an embedding of β to the policy input.
        thermometer_bins: > 0 encodes β as a clamped thermometer code of this many bins
            (for the embedding and for Z(β)); its range is ``low``..``high``, taken from
            the training β distributions when left unset.
        logit_scaling: divide the policy logits by f_θ(β) > 0.
        beta_transform: input of the embedding and of Z(β): β itself or log β.
        scale_transform: input of f_θ: β or log β (log extrapolates f ≈ 1/β linearly).
        scale_form: ``temperature``: α clamped, then divided by f_θ(β) = exp(net) > 0 (Logit-GFN as published);
            ``multiply``: α multiplied by g_θ(β) = net, then clamped (the official code).
        scale_with_beta: temperature form with f_θ(β) = exp(net) / β: the logits grow linearly in β, as log-flows
            of R^β do at large β, and the net learns only the correction. Far beyond the training range the
            policy keeps sharpening at the rate R^β asks for, instead of at whatever slope the net extrapolates.
        hidden_dim, n_layers: size of the embedding and scaling nets.
        embed_dim: size of the β embedding appended to the policy input.
    """

    def __init__(
        self,
        fixed_beta: float | None = None,
        layer: bool = False,
        thermometer_bins: int = 0,
        logit_scaling: bool = False,
        beta_transform: BetaTransform = "raw",
        scale_transform: BetaTransform = "log",
        scale_form: ScaleForm = "temperature",
        scale_with_beta: bool = False,
        hidden_dim: int = 32,
        n_layers: int = 2,
        embed_dim: int = 32,
        low: float | None = None,
        high: float | None = None,
    ) -> None:
        self.check_args(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        super().__init__()
        self.fixed_beta = fixed_beta
        self.layer = layer
        self.thermometer_bins = thermometer_bins
        self.logit_scaling = logit_scaling
        self.beta_transform: BetaTransform = beta_transform
        self.scale_transform: BetaTransform = scale_transform
        self.scale_form: ScaleForm = scale_form
        self.scale_with_beta = scale_with_beta
        self.register_buffer("beta_range", torch.tensor([low if low is not None else float("nan"),
                                                         high if high is not None else float("nan")]))
        self.feature_dim = thermometer_bins if thermometer_bins else 1
        self.embed_dim = embed_dim if layer else 0
        self.embed_net = mlp(self.feature_dim, hidden_dim, n_layers, embed_dim) if layer else None
        self.scale_net = mlp(1, hidden_dim, n_layers, 1) if logit_scaling else None

    @staticmethod
    def check_args(*, fixed_beta: float | None, layer: bool, thermometer_bins: int, logit_scaling: bool,
                   beta_transform: str, scale_transform: str, scale_form: str, scale_with_beta: bool,
                   hidden_dim: int, n_layers: int, embed_dim: int, **_: Any) -> None:
        """The arguments' values, checked without building (see :func:`lgfn.registry.validate`)."""
        if fixed_beta is not None and (layer or logit_scaling or thermometer_bins):
            raise ConfigError("conditioner: fixed_beta (unconditional) cannot be combined with layer/logit/thermometer")
        if fixed_beta is not None and fixed_beta <= 0:
            raise ConfigError(f"conditioner: fixed_beta must be positive, got {fixed_beta}")
        for name, size in (("hidden_dim", hidden_dim), ("n_layers", n_layers), ("embed_dim", embed_dim),
                           ("thermometer_bins", thermometer_bins + 1)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigError(f"conditioner: {name} must be an integer >= {0 if name == 'thermometer_bins' else 1}, "
                                  f"got {size - 1 if name == 'thermometer_bins' else size!r}")
        for name, how in (("beta_transform", beta_transform), ("scale_transform", scale_transform)):
            if how not in ("raw", "log"):
                raise ConfigError(f"conditioner: {name} must be 'raw' or 'log', got {how!r}")
        if scale_form not in ("temperature", "multiply"):
            raise ConfigError(f"conditioner: scale_form must be 'temperature' or 'multiply', got {scale_form!r}")
        if scale_with_beta and scale_form != "temperature":
            raise ConfigError("conditioner: scale_with_beta needs scale_form 'temperature'")

    @property
    def conditional(self) -> bool:
        return self.fixed_beta is None

    def set_range(self, low: float, high: float) -> None:
        """Fix the thermometer range from the training β distributions, unless configured."""
        if torch.isnan(self.beta_range).any():
            if high <= low:  # a constant β: give the code a non-empty range around it
                low, high = low - 0.5, high + 0.5
            self.beta_range.copy_(torch.tensor([low, high]))
        self._range = None

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._range = None  # a checkpoint's range: read again

    def _thermometer_range(self) -> tuple[float, float]:
        """The range as numbers, read from the buffer once (not on every call: a read-back a step)."""
        if self.__dict__.get("_range") is None:
            low, high = self.beta_range.tolist()
            if math.isnan(low) or math.isnan(high):
                raise RuntimeError("thermometer conditioner has no β range: set low/high or train it first")
            self._range = (low, high)
        return self._range

    def features(self, beta: Tensor) -> Tensor:
        """The β input of Z(β), F(s, β) and the embedding: [N, feature_dim]."""
        if self.fixed_beta is not None:
            return torch.ones_like(beta)[:, None]
        if self.thermometer_bins:
            return thermometer(beta, self.thermometer_bins, *self._thermometer_range())
        return _transform(beta, self.beta_transform)

    def embedding(self, beta: Tensor) -> Tensor | None:
        """The β embedding appended to the policy input, or None."""
        return self.embed_net(self.features(beta)) if self.embed_net is not None else None

    def logit_scale(self, beta: Tensor) -> Tensor | None:
        """f_θ(β) > 0 (temperature form) or g_θ(β) (multiply form) as [N, 1]; None without logit scaling."""
        if self.scale_net is None:
            return None
        out = self.scale_net(_transform(beta, self.scale_transform))
        if self.scale_form == "multiply":
            return out
        temperature = out.clamp(-30.0, 30.0).exp()
        return temperature / beta[:, None] if self.scale_with_beta else temperature

    def scale_logits(self, alpha: Tensor, scale: Tensor | None, clip: float | None) -> Tensor:
        """α_θ / f_θ(β) with α clamped to [−clip, clip] first, or (multiply form) α_θ · g_θ(β) clamped after."""
        if scale is not None and self.scale_form == "multiply":
            alpha = alpha * scale
            return alpha.clamp(-clip, clip) if clip is not None else alpha
        if clip is not None:
            alpha = alpha.clamp(-clip, clip)
        return alpha / scale if scale is not None else alpha
