"""The MDP interface every task's environment implements, on batches of states."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor


class Env(ABC):
    """A DAG-structured MDP whose states are rows of a long tensor ``[N, state_dim]``.

    Forward action ``stop_action`` ends a trajectory and makes the current state the
    object x; every other forward action has a backward action that undoes it.
    Trajectories have at most ``max_steps`` forward actions, ``stop`` included.
    """

    state_dim: int
    n_actions: int
    n_bwd_actions: int
    stop_action: int
    max_steps: int
    obs_dim: int
    fixed_length: bool = False
    """Whether every trajectory takes exactly ``max_steps`` actions (rollouts then never test for early ends)."""
    levelled: bool = False
    """Whether position t of every trajectory holds a state t actions from s0 and its last position
    (``max_steps − 1``) allows only stop (the sequence MDPs): then the states of a level can be tabled
    (:meth:`prefix_states`) and the last position needs no network."""
    slot_values: int
    """How many values one slot of a state row takes (0 .. slot_values − 1): sizes :meth:`state_key`."""

    @abstractmethod
    def initial(self, n: int, device: torch.device | None = None) -> Tensor:
        """``n`` copies of the initial state s0."""

    @abstractmethod
    def forward_mask(self, states: Tensor) -> Tensor:
        """Bool ``[N, n_actions]``: the actions valid in each state."""

    @abstractmethod
    def step(self, states: Tensor, actions: Tensor) -> Tensor:
        """Children of ``states`` under non-stop forward ``actions``."""

    @abstractmethod
    def backward_mask(self, states: Tensor) -> Tensor:
        """Bool ``[N, n_bwd_actions]``: the parents reachable from each state (none at s0)."""

    @abstractmethod
    def backward_step(self, states: Tensor, bwd_actions: Tensor) -> tuple[Tensor, Tensor]:
        """Parents of ``states`` and the forward actions that lead back to them."""

    @abstractmethod
    def bwd_action_of(self, states: Tensor, actions: Tensor) -> Tensor:
        """The backward action that undoes forward ``actions`` taken from ``states``."""

    def encode(self, states: Tensor) -> Tensor:
        """Float features ``[N, obs_dim]`` for the networks: by default the one-hot code of
        :meth:`encode_slots`."""
        slots = self.encode_slots(states)
        if slots is None:
            raise NotImplementedError(f"{type(self).__name__} implements neither encode nor encode_slots")
        out = torch.zeros(len(states), self.obs_dim + 1, device=states.device).scatter_(1, slots, 1.0)
        return out[:, : self.obs_dim]

    def encode_slots(self, states: Tensor) -> Tensor | None:
        """Where the encoding is a sum of one-hot codes (both built-in MDPs): the column of each code ``[N, K]``,
        ``obs_dim`` for none. Written as a scatter, not ``F.one_hot``, whose range check reads the values back
        to the host on every call."""
        return None

    def state_key(self, states: Tensor) -> Tensor | None:
        """One int64 per state, equal exactly when the states are (the row read as a base-``slot_values``
        number); None when such a number does not fit in 63 bits. Lets the policy run its network once per
        distinct state of a batch."""
        if self.slot_values**self.state_dim >= 2**63:
            return None
        radix = self.__dict__.get("_key_radix")
        if radix is None or radix.device != states.device:
            powers = torch.arange(self.state_dim - 1, -1, -1, device=states.device)
            radix = self.__dict__["_key_radix"] = self.slot_values**powers
        return (states * radix).sum(1)

    def is_initial(self, states: Tensor) -> Tensor:
        """Bool ``[N]``: which states are s0."""
        return ~self.backward_mask(states).any(dim=1)

    # Exact evaluation needs an enumeration of the whole DAG; small MDPs provide it.
    n_states: int | None = None

    def all_states(self) -> Tensor:
        """Every state, sorted by depth (steps from s0); only for enumerable MDPs."""
        raise NotImplementedError(f"{type(self).__name__} is too large to enumerate")

    def all_states_on(self, device: torch.device) -> Tensor:
        """``all_states()`` on ``device``, enumerated once per device: sampling tables (every rollout) and exact
        evaluation reuse it."""
        states = self.__dict__.get("_all_states")
        if states is None or states.device != device:
            states = self.__dict__["_all_states"] = self.all_states().to(device)
        return states

    def state_index(self, states: Tensor) -> Tensor:
        """Index of each state in ``all_states()``."""
        raise NotImplementedError(f"{type(self).__name__} is too large to enumerate")

    def prefix_levels(self, n: int) -> int:
        """How many levels from s0 on a levelled MDP are worth tabling for a batch of n rows (0: none)."""
        return 0

    def prefix_states(self, levels: int, device: torch.device) -> Tensor:
        """Every state of the first ``levels`` levels of a levelled MDP, in :meth:`prefix_index` order."""
        raise NotImplementedError(f"{type(self).__name__} is not levelled")

    def prefix_index(self, states: Tensor, levels: int) -> Tensor:
        """Index in ``prefix_states(levels)`` of states on its levels."""
        raise NotImplementedError(f"{type(self).__name__} is not levelled")

    def depth(self, states: Tensor) -> Tensor:
        """Number of forward steps from s0 to each state."""
        raise NotImplementedError
