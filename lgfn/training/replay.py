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
    return (x.long() * _hash_on(x.device)[: x.shape[1]]).sum(1)


def _hash_on(device: torch.device) -> Tensor:
    """The hash weights on ``device`` (copied there once, not every call)."""
    weights = _HASH_ON.get(device)
    if weights is None:
        weights = _HASH_ON[device] = _HASH.to(device)
    return weights


_HASH_ON: dict[torch.device, Tensor] = {}


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


_EMPTY = torch.iinfo(torch.long).max  # the key of an empty slot: sorts after every object's


@register("replay", "uniform")
class ObjectReplay(Replay):
    """Every distinct object sampled so far with its reward; draws uniformly with replacement.

    Lives on the device of what is added to it, as fixed-shape tensors: the distinct objects sorted by their key
    in the first ``count`` slots of a capacity grown on the host (from the number of objects ever added, which
    bounds the distinct ones), empty slots after them. Adding and drawing are sorts, gathers and arithmetic on
    a device-side count: nothing is read back to the host in a training round.
    """

    def __init__(self, min_size: int = 10) -> None:
        super().__init__(min_size)
        self._empty(0, torch.device("cpu"))

    def _empty(self, width: int, device: torch.device) -> None:
        self.keys = torch.empty(0, dtype=torch.long, device=device)
        self.x = torch.empty(0, width, dtype=torch.long, device=device)
        self.log_reward = torch.empty(0, device=device)
        self.raw_reward = torch.empty(0, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.long, device=device)  # distinct objects held (on the device)
        self._added = 0  # objects ever added: bounds ``count`` without asking the device

    def __len__(self) -> int:
        return int(self.count)  # a read-back: ``ready`` asks it only until the buffer is ready

    def add(self, traj: Trajectories) -> None:
        x = traj.x
        self._insert(x, row_keys(x), traj.log_reward, traj.raw_reward)

    def _insert(self, x: Tensor, keys: Tensor, log_reward: Tensor, raw: Tensor) -> None:
        """Merge by one stable sort of old and new keys: the first copy of a key (an object already held, else
        its first occurrence in the batch) stays, later copies become empty slots and sort to the end."""
        if not self._added:  # an empty buffer takes the first batch's width and device
            self._empty(x.shape[1], x.device)
        elif self.keys.device != x.device:  # restored from a checkpoint (CPU): follow the samples to their device
            self.keys, self.x, self.log_reward, self.raw_reward, self.count = (
                t.to(x.device) for t in (self.keys, self.x, self.log_reward, self.raw_reward, self.count))
        self._added += len(keys)
        capacity = max(len(self.keys), min(self._added, 2 * len(self.keys) + 256))  # geometric: amortised O(batch)
        all_keys = torch.cat([self.keys, keys])
        order = torch.argsort(all_keys, stable=True)
        sorted_keys = all_keys[order]
        repeat = torch.cat([sorted_keys.new_zeros(1, dtype=torch.bool), sorted_keys[1:] == sorted_keys[:-1]])
        sorted_keys = torch.where(repeat, _EMPTY, sorted_keys)
        keep = torch.argsort(sorted_keys, stable=True)[:capacity]
        rows = order[keep]
        self.keys = sorted_keys[keep]
        self.x = torch.cat([self.x, x])[rows]
        self.log_reward = torch.cat([self.log_reward, log_reward.to(self.log_reward.dtype)])[rows]
        self.raw_reward = torch.cat([self.raw_reward, raw.to(self.raw_reward.dtype)])[rows]
        self.count = (self.keys != _EMPTY).sum()

    def _uniform(self, n: int, generator: torch.Generator | None) -> Tensor:
        """n uniforms in [0, 1), drawn from the caller's generator, on the buffer's device."""
        return torch.rand(n, generator=generator, dtype=torch.float64).to(self.keys.device)

    def _indices(self, n: int, generator: torch.Generator | None) -> Tensor:
        return (self._uniform(n, generator) * self.count).long()

    def draw(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(objects, log rewards, raw rewards) of n draws."""
        idx = self._indices(n, generator)
        return self.x[idx], self.log_reward[idx], self.raw_reward[idx]

    def state_dict(self) -> dict[str, Any]:
        n = len(self)
        return {"x": self.x[:n].cpu(), "log_reward": self.log_reward[:n].cpu(), "raw_reward": self.raw_reward[:n].cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        x = state["x"]
        self._empty(x.shape[1], self.keys.device)
        self._insert(x, row_keys(x), state["log_reward"], state["raw_reward"])


@register("replay", "prioritized")
class PrioritizedReplay(ObjectReplay):
    """Reward-prioritised as in the official code: half the batch from objects at or above the
    90th percentile of the buffer's rewards, half from those at or below it, with replacement.

    The percentile is torch.quantile's (linear between order statistics), taken from one sort of the held
    rewards; the objects at or above it are the last of that order, those at or below it the first, so each
    half is one scaled uniform into the sort: fixed shapes, no selection.
    """

    def __init__(self, min_size: int = 10, quantile: float = 0.9) -> None:
        super().__init__(min_size)
        self.quantile = quantile

    def _indices(self, n: int, generator: torch.Generator | None) -> Tensor:
        held = torch.arange(len(self.keys), device=self.keys.device) < self.count
        r = torch.where(held, self.log_reward.double(), torch.inf)
        ascending, order = torch.sort(r, stable=True)
        pos = self.quantile * (self.count - 1).double()
        lo, hi = pos.floor().long(), pos.ceil().long()
        threshold = ascending[lo] + (pos - lo) * (ascending[hi] - ascending[lo])
        n_top, n_bottom = ((r >= threshold) & held).sum(), (r <= threshold).sum()
        u = self._uniform(n, generator)
        half = n // 2
        top = self.count - n_top + (u[:half] * n_top).long()  # the last n_top held of the ascending order
        bottom = (u[half:] * n_bottom).long()
        return order[torch.cat([top, bottom])]


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
        self.store = traj if self.store is None else Trajectories.cat([self.store, traj])
        if len(self.store) > self.capacity:
            self.store = self.store.index(torch.arange(len(self.store) - self.capacity, len(self.store)))

    def draw(self, n: int, generator: torch.Generator | None = None) -> Trajectories:
        assert self.store is not None
        idx = torch.randint(len(self.store), (n,), generator=generator)
        return self.store.index(idx.to(self.store.lengths.device))

    def state_dict(self) -> dict[str, Any]:
        return {} if self.store is None else {k: v.cpu().clone() for k, v in vars(self.store).items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store = Trajectories(**state) if state else None
