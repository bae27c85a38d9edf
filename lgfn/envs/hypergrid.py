"""The d-dimensional hypergrid of side H (Bengio et al. 2021)."""

from __future__ import annotations

import torch
from torch import Tensor

from lgfn.envs.base import Env
from lgfn.errors import ConfigError


class HyperGrid(Env):
    """From the origin, action i < d increments coordinate i; action d stops anywhere.

    Backward action i decrements coordinate i. A state is its coordinate vector.
    """

    def __init__(self, ndim: int = 2, height: int = 8) -> None:
        if ndim < 1 or height < 2:
            raise ConfigError(f"hypergrid needs ndim >= 1 and height >= 2, got ndim={ndim}, height={height}")
        self.ndim, self.height = ndim, height
        self.state_dim = ndim
        self.slot_values = height
        self.n_actions = ndim + 1
        self.n_bwd_actions = ndim
        self.stop_action = ndim
        self.max_steps = ndim * (height - 1) + 1
        self.obs_dim = ndim * height
        self.n_states = height**ndim

    def initial(self, n: int, device: torch.device | None = None) -> Tensor:
        return torch.zeros(n, self.ndim, dtype=torch.long, device=device)

    def forward_mask(self, states: Tensor) -> Tensor:
        # a pad, not a write into a slice: compiled programs cannot write through `out=` into a strided view
        return torch.nn.functional.pad(states < self.height - 1, (0, 1), value=True)

    def step(self, states: Tensor, actions: Tensor) -> Tensor:
        return states.scatter_add(1, actions[:, None], torch.ones_like(actions[:, None]))

    def backward_mask(self, states: Tensor) -> Tensor:
        return states > 0

    def backward_step(self, states: Tensor, bwd_actions: Tensor) -> tuple[Tensor, Tensor]:
        return states.scatter_add(1, bwd_actions[:, None], -torch.ones_like(bwd_actions[:, None])), bwd_actions

    def bwd_action_of(self, states: Tensor, actions: Tensor) -> Tensor:
        return actions

    def encode_slots(self, states: Tensor) -> Tensor:
        """K-hot: coordinate i's value set in block i."""
        return states + self.height * torch.arange(self.ndim, device=states.device)

    def all_states(self) -> Tensor:
        grids = torch.meshgrid(*[torch.arange(self.height)] * self.ndim, indexing="ij")
        states = torch.stack([g.flatten() for g in grids], dim=1)
        return states[torch.argsort(states.sum(1), stable=True)]

    def state_index(self, states: Tensor) -> Tensor:
        # position in all_states(): rank by (depth, lexicographic index)
        return self._order().to(states.device)[self.state_key(states)]

    def _order(self) -> Tensor:
        if not hasattr(self, "_order_cache"):
            lex = self.state_key(self.all_states())
            order = torch.empty_like(lex)
            order[lex] = torch.arange(len(lex))
            self._order_cache = order
        return self._order_cache

    def depth(self, states: Tensor) -> Tensor:
        return states.sum(1)

    def to_strings(self, states: Tensor) -> list[str]:
        """Canonical object strings: coordinates joined by ':'."""
        return [":".join(map(str, row)) for row in states.tolist()]

    def from_strings(self, strings: list[str]) -> Tensor:
        return torch.tensor([[int(v) for v in s.split(":")] for s in strings], dtype=torch.long)
