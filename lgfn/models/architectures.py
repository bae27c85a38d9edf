"""Policy architectures: how a network turns a batch of states into one logit per action (registry kind ``network``, setting ``model.network``).

- ``mlp``: one MLP maps the state's encoding (and β's embedding) to a logit per action.
- ``ssr``: a state–state scorer (the official Logit-GFN code's ``ssr`` policy). A shared encoder embeds a state
  and each of its children (parents, for P_B); an MLP scores every [state, child] pair. Its logits are a
  function of where an action leads, not of the action's index, so what it learns about one child carries
  over to similar children: it extrapolates the learned ranking more smoothly away from the data.

Both are batched end to end: the children of a batch of states are one ``Env.step`` call over every
(state, action) pair, not a Python loop over states.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor, nn

from lgfn.envs.base import Env
from lgfn.errors import ConfigError
from lgfn.models.nets import mlp
from lgfn.registry import register

Direction = Literal["forward", "backward"]


class Architecture(ABC):
    """A policy architecture: builds the forward and backward logit networks of an environment."""

    @abstractmethod
    def build(self, env: Env, direction: Direction, extra_dim: int, hidden_dim: int, n_layers: int) -> nn.Module:
        """A module ``(states [N, D], mask [N, A], embedding [N, extra_dim] | None) -> logits [N, A]``; ``A`` is
        the number of forward or backward actions. Logits of masked-out actions may be anything."""


class ActionMLP(nn.Sequential):
    """The ``mlp`` network. A Sequential, so that checkpoints of every lgfn version keep their parameter names."""

    def __init__(self, env: Env, in_dim: int, hidden_dim: int, n_layers: int, out_dim: int) -> None:
        super().__init__(*mlp(in_dim, hidden_dim, n_layers, out_dim))
        self.env = env

    def forward(self, states: Tensor, mask: Tensor | None = None,  # type: ignore[override]
                emb: Tensor | None = None) -> Tensor:
        """Logits from the state encoding (and β embedding); the mask is not needed: one output per action."""
        x = self.env.encode(states)
        if emb is not None:
            x = torch.cat([x, emb], dim=1)
        for layer in self:
            x = layer(x)
        return x


@register("network", "mlp")
class MLPPolicy(Architecture):
    """One MLP from the state encoding (and β embedding) to a logit per action."""

    def build(self, env: Env, direction: Direction, extra_dim: int, hidden_dim: int, n_layers: int) -> nn.Module:
        out = env.n_actions if direction == "forward" else env.n_bwd_actions
        return ActionMLP(env, env.obs_dim + extra_dim, hidden_dim, n_layers, out)


class StateScorer(nn.Module):
    """Scores each (state, neighbour) pair: logit(s → s') = scorer([enc(s), enc(s'), is_stop, emb(β)])."""

    def __init__(self, env: Env, direction: Direction, extra_dim: int, hidden_dim: int, n_layers: int,
                 embed_dim: int) -> None:
        super().__init__()
        self.env, self.direction = env, direction
        self.encoder = mlp(env.obs_dim, hidden_dim, n_layers, embed_dim)
        self.scorer = mlp(2 * embed_dim + 1 + extra_dim, hidden_dim, n_layers, 1)

    def neighbours(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Every (state, action) pair's child (or parent) ``[N·A, D]``, and which pairs are the stop action.
        Stop and invalid actions keep the state itself: the stop flag tells them apart, the mask drops the rest."""
        n, a = mask.shape
        actions = torch.arange(a, device=states.device).repeat(n)
        flat = states.repeat_interleave(a, dim=0)
        if self.direction == "forward":
            stop = actions == self.env.stop_action
            move = mask.reshape(-1) & ~stop
            # every pair steps (fixed shapes, nothing read back); the pairs that may not keep their state
            moved = self.env.step(flat, torch.where(move, actions, 0))
        else:  # no stop among backward actions
            stop = torch.zeros_like(actions, dtype=torch.bool)
            move = mask.reshape(-1)
            moved = self.env.backward_step(flat, torch.where(move, actions, 0))[0]
        return torch.where(move[:, None], moved, flat), stop

    def forward(self, states: Tensor, mask: Tensor, emb: Tensor | None = None) -> Tensor:
        n, a = mask.shape
        others, stop = self.neighbours(states, mask)
        z = self.encoder(self.env.encode(torch.cat([states, others])))
        z_state, z_other = z[:n], z[n:].view(n, a, -1)
        pieces = [z_state[:, None].expand(n, a, -1), z_other, stop.view(n, a, 1).to(z.dtype)]
        if emb is not None:
            pieces.append(emb[:, None].expand(n, a, -1))
        return self.scorer(torch.cat(pieces, dim=2)).squeeze(2)


@register("network", "ssr")
class SSRPolicy(Architecture):
    """State–state scorer: a shared state encoder and an MLP over [state, child] pairs (official ``ssr``).

    Args:
        embed_dim: size of the state embedding the scorer compares.
    """

    def __init__(self, embed_dim: int = 64) -> None:
        self.check_args(embed_dim)
        self.embed_dim = embed_dim

    @staticmethod
    def check_args(embed_dim: int = 64) -> None:
        """The arguments' values, checked without building (see :func:`lgfn.registry.validate`)."""
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
            raise ConfigError(f"network ssr: embed_dim must be an integer >= 1, got {embed_dim!r}")

    def build(self, env: Env, direction: Direction, extra_dim: int, hidden_dim: int, n_layers: int) -> nn.Module:
        return StateScorer(env, direction, extra_dim, hidden_dim, n_layers, self.embed_dim)
