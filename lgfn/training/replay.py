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
        """Merge a batch into the key-sorted buffer: a sort of the batch, binary searches and one scatter (no
        sort of the buffer). The first copy of a key stays (an object already held, else its first occurrence
        in the batch); later copies are dropped."""
        if not self._added:  # an empty buffer takes the first batch's width and device
            self._empty(x.shape[1], x.device)
        elif self.keys.device != x.device:  # restored from a checkpoint (CPU): follow the samples to their device
            self.keys, self.x, self.log_reward, self.raw_reward, self.count = (
                t.to(x.device) for t in (self.keys, self.x, self.log_reward, self.raw_reward, self.count))
        old, m = len(self.keys), len(keys)
        self._added += m
        capacity = max(old, min(self._added, 2 * (old + m) + 256))  # >= every object held; geometric growth
        new_keys, order = torch.sort(keys, stable=True)
        at = torch.searchsorted(self.keys, new_keys)  # where each would go among the held keys
        held = self.keys[at.clamp(max=max(old - 1, 0))] == new_keys if old else torch.zeros_like(at, dtype=torch.bool)
        repeat = torch.cat([held.new_zeros(1), new_keys[1:] == new_keys[:-1]])
        valid = ~held & ~repeat
        taken = valid.long().cumsum(0)  # valid new keys up to and including each
        # a held key moves right by the valid new keys before it; a valid new key lands after the held keys before
        # it and the valid new keys before it; the rest go to the spare last slot, as empty
        below = torch.searchsorted(new_keys, self.keys)
        shift = torch.where(below > 0, taken[(below - 1).clamp(min=0)], 0)
        slot_old = torch.arange(old, device=keys.device) + shift
        spare = old + m - 1
        slot_new = torch.where(valid, at + taken - 1, spare)
        slots = torch.cat([slot_old, slot_new])
        merged_keys = torch.cat([self.keys, torch.where(valid, new_keys, _EMPTY)])
        self.keys = torch.full((old + m,), _EMPTY, dtype=torch.long, device=keys.device).scatter_(0, slots, merged_keys)
        self.x = self._scatter(self.x, x[order], slots)
        self.log_reward = self._scatter(self.log_reward, log_reward.to(self.log_reward.dtype)[order], slots)
        self.raw_reward = self._scatter(self.raw_reward, raw.to(self.raw_reward.dtype)[order], slots)
        self.keys, self.x, self.log_reward, self.raw_reward = (
            t[:capacity] for t in (self.keys, self.x, self.log_reward, self.raw_reward))
        self.count = self.count + valid.sum()

    @staticmethod
    def _scatter(held: Tensor, new: Tensor, slots: Tensor) -> Tensor:
        """Held and new rows at their merged slots."""
        rows = torch.cat([held, new])
        index = slots.view(-1, *[1] * (rows.dim() - 1)).expand_as(rows)
        return torch.zeros_like(rows).scatter_(0, index, rows)

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

    The percentile is torch.quantile's (linear between order statistics); each half is drawn from its set by a
    binary search of scaled uniforms in the set's running count: fixed shapes, no selection.
    """

    def __init__(self, min_size: int = 10, quantile: float = 0.9) -> None:
        super().__init__(min_size)
        self.quantile = quantile

    def _indices(self, n: int, generator: torch.Generator | None) -> Tensor:
        held = torch.arange(len(self.keys), device=self.keys.device) < self.count
        r = torch.where(held, self.log_reward.double(), torch.inf)
        pos = self.quantile * (self.count - 1).double()
        lo, hi = pos.floor().long(), pos.ceil().long()
        order_stats = torch.sort(r).values  # the held rewards ascending, then the empty slots' +inf
        threshold = order_stats[lo] + (pos - lo) * (order_stats[hi] - order_stats[lo])
        u = self._uniform(n, generator)
        half = n // 2
        return torch.cat([_pick(held & (r >= threshold), u[:half]), _pick(r <= threshold, u[half:])])


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


def _pick(members: Tensor, u: Tensor) -> Tensor:
    """Indices drawn uniformly (one per uniform in ``u``) from the True positions of ``members``."""
    running = members.long().cumsum(0)
    return torch.searchsorted(running, (u * running[-1]).long() + 1)
