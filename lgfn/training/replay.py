"""Replay buffers D of Algorithm 1: over objects (prioritised or uniform) or over whole trajectories."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lgfn.sampling.trajectories import Trajectories
from lgfn.registry import register

_HASH = torch.randint(1, 2**62, (4096,), generator=torch.Generator().manual_seed(20240229)) | 1


def row_keys(x: Tensor) -> Tensor:
    """An int64 key per row (random linear hash mod 2^64) for de-duplicating objects in tensors."""
    return (x.long() * _HASH[: x.shape[1]].to(x.device)).sum(1)


class Replay:
    """A buffer that Algorithm 1 fills with sampled trajectories and draws training data from.

    ``holds_trajectories`` tells the data module whether draws are whole trajectories
    (re-used as they are) or objects (given fresh trajectories sampled with P_B).
    """

    holds_trajectories = False

    def __init__(self, min_size: int = 10) -> None:
        self.min_size = min_size

    def add(self, traj: Trajectories) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the buffer holds enough to draw from (the official code waits for 10 objects)."""
        return len(self) >= max(self.min_size, 1)

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


@register("replay", "uniform")
class ObjectReplay(Replay):
    """Every distinct object sampled so far with its reward; draws uniformly with replacement."""

    def __init__(self, min_size: int = 10) -> None:
        super().__init__(min_size)
        self.x = torch.empty(0, 0, dtype=torch.long)
        self.keys = torch.empty(0, dtype=torch.long)
        self.log_reward = torch.empty(0)
        self.raw_reward = torch.empty(0, dtype=torch.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, traj: Trajectories) -> None:
        x = traj.x.cpu()
        keys = row_keys(x)
        first = torch.zeros(len(keys), dtype=torch.bool)
        first[_first_occurrence(keys)] = True
        new = first & ~torch.isin(keys, self.keys[: self._n])
        self._append(x[new], keys[new], traj.log_reward.cpu()[new], traj.raw_reward.cpu()[new])

    def _append(self, x: Tensor, keys: Tensor, log_reward: Tensor, raw: Tensor) -> None:
        n, m = self._n, len(keys)
        if n + m > len(self.keys):  # grow geometrically so adds stay amortised O(batch)
            cap = max(2 * (n + m), 256)
            self.x = _grow(self.x, cap, x.shape[1])
            self.keys, self.log_reward, self.raw_reward = (
                _grow(t, cap) for t in (self.keys, self.log_reward, self.raw_reward)
            )
        self.x[n : n + m], self.keys[n : n + m] = x, keys
        self.log_reward[n : n + m], self.raw_reward[n : n + m] = log_reward, raw
        self._n = n + m

    def _indices(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.randint(self._n, (n,), generator=generator)

    def draw(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(objects, log rewards, raw rewards) of n draws."""
        idx = self._indices(n, generator)
        return self.x[idx], self.log_reward[idx], self.raw_reward[idx]

    def state_dict(self) -> dict[str, Any]:
        n = self._n
        return {"x": self.x[:n].clone(), "log_reward": self.log_reward[:n].clone(), "raw_reward": self.raw_reward[:n].clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._n = 0
        self.x = torch.empty(0, state["x"].shape[1], dtype=torch.long)
        self.keys = torch.empty(0, dtype=torch.long)
        self.log_reward, self.raw_reward = torch.empty(0), torch.empty(0, dtype=torch.float64)
        self._append(state["x"], row_keys(state["x"]), state["log_reward"], state["raw_reward"])


@register("replay", "prioritized")
class PrioritizedReplay(ObjectReplay):
    """Reward-prioritised as in the official code: half the batch from objects at or above the
    90th percentile of the buffer's rewards, half from those at or below it, with replacement."""

    def __init__(self, min_size: int = 10, quantile: float = 0.9) -> None:
        super().__init__(min_size)
        self.quantile = quantile

    def _indices(self, n: int, generator: torch.Generator | None) -> Tensor:
        r = self.log_reward[: self._n].double()
        threshold = torch.quantile(r, self.quantile)
        top = (r >= threshold).nonzero().squeeze(1)
        bottom = (r <= threshold).nonzero().squeeze(1)
        n_top = n // 2
        pick_top = top[torch.randint(len(top), (n_top,), generator=generator)]
        pick_bottom = bottom[torch.randint(len(bottom), (n - n_top,), generator=generator)]
        return torch.cat([pick_top, pick_bottom])


@register("replay", "fifo")
class TrajectoryReplay(Replay):
    """The last ``capacity`` sampled trajectories, drawn uniformly and replayed at a fresh β."""

    holds_trajectories = True

    def __init__(self, capacity: int = 10000, min_size: int = 10) -> None:
        super().__init__(min_size)
        self.capacity = capacity
        self.store: Trajectories | None = None

    def __len__(self) -> int:
        return 0 if self.store is None else len(self.store)

    def add(self, traj: Trajectories) -> None:
        traj = traj.to(torch.device("cpu"))
        self.store = traj if self.store is None else Trajectories.cat([self.store, traj])
        if len(self.store) > self.capacity:
            self.store = self.store.index(torch.arange(len(self.store) - self.capacity, len(self.store)))

    def draw(self, n: int, generator: torch.Generator | None = None) -> Trajectories:
        assert self.store is not None
        return self.store.index(torch.randint(len(self.store), (n,), generator=generator))

    def state_dict(self) -> dict[str, Any]:
        return {} if self.store is None else {k: v.clone() for k, v in vars(self.store).items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store = Trajectories(**state) if state else None


def _first_occurrence(keys: Tensor) -> Tensor:
    """Indices of the first occurrence of each distinct key."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((len(uniq),), len(keys), dtype=torch.long)
    return first.scatter_reduce(0, inverse, torch.arange(len(keys)), reduce="amin")


def _grow(t: Tensor, cap: int, width: int | None = None) -> Tensor:
    shape = (cap,) if width is None else (cap, width)
    out = torch.zeros(shape, dtype=t.dtype)
    if len(t):
        out[: len(t)] = t
    return out
