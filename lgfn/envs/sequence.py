"""Fixed-length sequence MDPs over an alphabet of V tokens.

A state is a row of L token slots, left-aligned, with the pad value V after the
last token; the object x is a full row (length L).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lgfn.envs.base import Env
from lgfn.errors import ConfigError

ENUMERABLE_MAX_STATES = 250_000


class _Sequence(Env):
    """Shared state layout, encoding and enumeration of the two sequence MDPs."""

    def __init__(self, vocab_size: int, length: int) -> None:
        if vocab_size < 2 or length < 1:
            raise ConfigError(f"sequence MDP needs vocab_size >= 2 and length >= 1, got {vocab_size}, {length}")
        self.vocab_size, self.length = vocab_size, length
        self.pad = vocab_size
        self.state_dim = length
        self.slot_values = vocab_size + 1  # tokens and the pad
        self.max_steps = length + 1
        self.fixed_length = True  # L tokens, then stop
        self.obs_dim = length * vocab_size
        self.levelled = True  # every position t of a trajectory holds t tokens; the last one only stops
        total = sum(vocab_size**k for k in range(length + 1))
        self.n_states = total if total <= ENUMERABLE_MAX_STATES else None

    def initial(self, n: int, device: torch.device | None = None) -> Tensor:
        return torch.full((n, self.length), self.pad, dtype=torch.long, device=device)

    def lengths(self, states: Tensor) -> Tensor:
        return (states != self.pad).sum(1)

    def depth(self, states: Tensor) -> Tensor:
        return self.lengths(states)

    def encode_slots(self, states: Tensor) -> Tensor:
        """One-hot per position; the pad has no code."""
        slots = states + self.vocab_size * torch.arange(self.length, device=states.device)
        return torch.where(states == self.pad, self.obs_dim, slots)

    def _append(self, states: Tensor, tokens: Tensor) -> Tensor:
        out = states.clone()
        n = self.lengths(states).clamp(max=self.length - 1)
        out[torch.arange(len(states), device=states.device), n] = tokens
        return out

    def _delete_last(self, states: Tensor) -> tuple[Tensor, Tensor]:
        out = states.clone()
        rows = torch.arange(len(states), device=states.device)
        last = (self.lengths(states) - 1).clamp(min=0)
        removed = states[rows, last]
        out[rows, last] = self.pad
        return out, removed

    def _stop_only_when_full(self, states: Tensor) -> Tensor:
        """Every token action until the sequence is full, then only stop: one comparison against the stop
        column (a cat of bool tensors costs ~3x as much, and this runs every sampling step)."""
        is_stop = torch.arange(self.n_actions, device=states.device) == self.stop_action
        return is_stop == (self.lengths(states) == self.length)[:, None]

    def _check_enumerable(self) -> None:
        if self.n_states is None:
            raise NotImplementedError(f"{self.vocab_size}^{self.length} sequences are too many to enumerate")

    def all_states(self) -> Tensor:
        self._check_enumerable()
        return self._enumerate(self.length + 1, torch.device("cpu"))

    def state_index(self, states: Tensor) -> Tensor:
        self._check_enumerable()
        return self.prefix_index(states, self.length + 1)

    def prefix_levels(self, n: int) -> int:
        """Levels 0, 1, ... whose every state (V^t of them) is fewer than n: a batch of n rows at such a level
        repeats states, so a table of the level costs fewer network rows than the batch."""
        levels = 0
        while levels <= self.length and self.vocab_size**levels < n:
            levels += 1
        return levels

    def prefix_states(self, levels: int, device: torch.device) -> Tensor:
        """Every state with fewer than ``levels`` tokens, by length, then lexicographically (:meth:`prefix_index`
        order); made once per (levels, device)."""
        cache = self.__dict__.setdefault("_prefix_states", {})
        if (levels, device) not in cache:
            cache[levels, device] = self._enumerate(levels, device)
        return cache[levels, device]

    def _enumerate(self, levels: int, device: torch.device) -> Tensor:
        rows = [self.initial(1, device)]
        for k in range(1, levels):
            idx = torch.arange(self.vocab_size**k, device=device)
            digits = (idx[:, None] // self.vocab_size ** torch.arange(k - 1, -1, -1, device=device)) % self.vocab_size
            rows.append(torch.cat([digits, torch.full((len(idx), self.length - k), self.pad, device=device)], 1))
        return torch.cat(rows)

    def prefix_index(self, states: Tensor, levels: int) -> Tensor:
        """Index in ``prefix_states(levels)`` of states with fewer than ``levels`` tokens: the count of shorter
        states plus the tokens read as a base-V number (only the first ``levels − 1`` slots can hold one)."""
        width = levels - 1
        radix, offsets, shift = self._prefix_constants(levels, states.device)
        n = self.lengths(states)
        tokens = torch.where(states[:, :width] == self.pad, 0, states[:, :width])
        return offsets[n] + (tokens * radix).sum(1) // shift[n]

    def _prefix_constants(self, levels: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """The radix of the first ``levels − 1`` slots, the count of states shorter than each length, and the
        shift that right-aligns a length-k state's digits; made once per (levels, device)."""
        cache = self.__dict__.setdefault("_prefix_cache", {})
        key = (levels, device)
        if key not in cache:
            v, width = self.vocab_size, levels - 1
            cache[key] = (torch.tensor([v**j for j in range(width - 1, -1, -1)], dtype=torch.long, device=device),
                          torch.tensor([sum(v**j for j in range(k)) for k in range(levels)], device=device),
                          torch.tensor([v ** (width - k) for k in range(levels)], device=device))
        return cache[key]


class PrependAppend(_Sequence):
    """Prepend or append a token; stop only at full length (the official Logit-GFN MDP).

    Forward actions: prepend t (t < V), append t (V <= a < 2V), stop (2V).
    Backward actions: delete the first token (0) or the last (1).
    """

    def __init__(self, vocab_size: int, length: int) -> None:
        super().__init__(vocab_size, length)
        self.n_actions = 2 * vocab_size + 1
        self.n_bwd_actions = 2
        self.stop_action = 2 * vocab_size

    def forward_mask(self, states: Tensor) -> Tensor:
        return self._stop_only_when_full(states)

    def step(self, states: Tensor, actions: Tensor) -> Tensor:
        prepend = actions < self.vocab_size
        tokens = actions % self.vocab_size
        prepended = torch.cat([tokens[:, None], states[:, :-1]], dim=1)
        return torch.where(prepend[:, None], prepended, self._append(states, tokens))

    def backward_mask(self, states: Tensor) -> Tensor:
        return (self.lengths(states) > 0)[:, None].expand(-1, 2)

    def backward_step(self, states: Tensor, bwd_actions: Tensor) -> tuple[Tensor, Tensor]:
        first = bwd_actions == 0
        without_first = torch.cat([states[:, 1:], torch.full_like(states[:, :1], self.pad)], dim=1)
        without_last, last = self._delete_last(states)
        parents = torch.where(first[:, None], without_first, without_last)
        actions = torch.where(first, states[:, 0], last + self.vocab_size)
        return parents, actions

    def bwd_action_of(self, states: Tensor, actions: Tensor) -> Tensor:
        return (actions >= self.vocab_size).long()


class AppendOnly(_Sequence):
    """Autoregressive: append a token; stop only at full length.

    Forward actions: append t (t < V), stop (V). Backward: delete the last token (0).
    """

    def __init__(self, vocab_size: int, length: int) -> None:
        super().__init__(vocab_size, length)
        self.n_actions = vocab_size + 1
        self.n_bwd_actions = 1
        self.stop_action = vocab_size

    def forward_mask(self, states: Tensor) -> Tensor:
        return self._stop_only_when_full(states)

    def step(self, states: Tensor, actions: Tensor) -> Tensor:
        return self._append(states, actions)

    def backward_mask(self, states: Tensor) -> Tensor:
        return (self.lengths(states) > 0)[:, None]

    def backward_step(self, states: Tensor, bwd_actions: Tensor) -> tuple[Tensor, Tensor]:
        return self._delete_last(states)

    def bwd_action_of(self, states: Tensor, actions: Tensor) -> Tensor:
        return torch.zeros_like(actions)
