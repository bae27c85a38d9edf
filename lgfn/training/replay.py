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

    def holds(self, x: Tensor) -> Tensor:
        """Bool per row of ``x``: whether that object was added before (a buffer without a memory of every
        object, such as ``fifo``, says False). Local search uses it to spend oracle calls on new objects."""
        return torch.zeros(len(x), dtype=torch.bool, device=x.device)

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


_EMPTY = torch.iinfo(torch.long).max  # the key of an empty slot: sorts after every object's


def _merge(held: Tensor, held_payload: Tensor, new: Tensor, new_payload: Tensor, keep: Tensor,
           empty: float | int) -> tuple[Tensor, Tensor]:
    """Merge sorted new values (those in ``keep``) into a sorted array whose unused tail holds ``empty`` (which
    sorts last), each value carrying a payload: binary searches and one scatter, no sort of the held array.
    Ties put the held value first. Returns the merged values and payloads, ``len(held) + len(new)`` long, the
    values not kept among the empty tail."""
    taken = keep.long().cumsum(0)  # kept new values up to and including each
    # a held value moves right by the kept new values below it; a kept new value lands after the held values
    # at or below it and the kept new values before it; the rest go to the last slot, as empty
    kept_below = torch.cat([taken.new_zeros(1), taken])[torch.searchsorted(new, held)]
    slot_old = torch.arange(len(held), device=held.device) + kept_below
    slot_new = torch.where(keep, torch.searchsorted(held, new, right=True) + taken - 1, len(held) + len(new) - 1)
    slots = torch.cat([slot_old, slot_new])
    values = held.new_full((len(slots),), empty).scatter_(0, slots, torch.cat([held, torch.where(keep, new, empty)]))
    payload = held_payload.new_zeros(len(slots)).scatter_(0, slots, torch.cat([held_payload, new_payload]))
    return values, payload


def _padded(t: Tensor, extra: int, fill: float | int) -> Tensor:
    """``t`` with ``extra`` more rows of ``fill``."""
    return torch.cat([t, t.new_full((extra, *t.shape[1:]), fill)])


@register("replay", "uniform")
class ObjectReplay(Replay):
    """Every distinct object sampled so far with its reward; draws uniformly with replacement.

    Lives on the device of what is added to it, as fixed-shape tensors: the distinct objects and their rewards
    in the order they were first added (the first ``count`` slots of a capacity grown on the host from the
    number of objects ever added, which bounds the distinct ones), and an index of their keys, sorted, to
    de-duplicate by binary search. Adding writes the batch's new objects after the held ones and merges their
    keys into the index (work on the keys only, not on the objects); drawing is a gather. Nothing is read back
    to the host in a training round.
    """

    def __init__(self, min_size: int = 10) -> None:
        super().__init__(min_size)
        self._empty(0, torch.device("cpu"))

    def _empty(self, width: int, device: torch.device) -> None:
        self.x = torch.empty(0, width, dtype=torch.long, device=device)
        self.log_reward = torch.empty(0, device=device)
        self.raw_reward = torch.empty(0, dtype=torch.float64, device=device)
        self.keys = torch.empty(0, dtype=torch.long, device=device)  # sorted; _EMPTY after the held ones
        self.key_slot = torch.empty(0, dtype=torch.long, device=device)  # where each key's object is held
        self.count = torch.zeros((), dtype=torch.long, device=device)  # distinct objects held (on the device)
        self._added = 0  # objects ever added: bounds ``count`` without asking the device

    def __len__(self) -> int:
        return int(self.count)  # a read-back: ``ready`` asks it only until the buffer is ready

    def add(self, traj: Trajectories) -> None:
        x = traj.x
        self._insert(x, row_keys(x), traj.log_reward, traj.raw_reward)

    def holds(self, x: Tensor) -> Tensor:
        if not len(self.keys):
            return super().holds(x)
        return self._held(row_keys(x).to(self.keys.device)).to(x.device)

    def _held(self, keys: Tensor) -> Tensor:
        """Which keys the index holds: a binary search of the sorted keys (on the device, no read-back)."""
        at = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return self.keys[at] == keys

    def _grow(self, capacity: int) -> None:
        """Room for ``capacity`` objects (and a spare slot that takes the writes of repeated ones)."""
        extra = capacity + 1 - len(self.x)
        self.x, self.log_reward, self.raw_reward, self.key_slot = (
            _padded(t, extra, 0) for t in (self.x, self.log_reward, self.raw_reward, self.key_slot))
        self.keys = _padded(self.keys, extra, _EMPTY)
        self._grew(extra)

    def _grew(self, extra: int) -> None:
        """Hook: the arrays grew by ``extra`` slots."""

    def _insert(self, x: Tensor, keys: Tensor, log_reward: Tensor, raw: Tensor) -> None:
        """Add a batch: its objects whose key is new (first copy in the batch) go after the held ones, and their
        keys are merged into the sorted index. An object already held keeps its first reward."""
        if not self._added:  # an empty buffer takes the first batch's width and device
            self._empty(x.shape[1], x.device)
        elif self.keys.device != x.device:  # restored from a checkpoint (CPU): follow the samples to their device
            for name in self._tensors():
                setattr(self, name, getattr(self, name).to(x.device))
        self._added += len(keys)
        if self._added >= len(self.x):  # geometric growth, so adds stay amortised O(batch) in copies
            self._grow(max(self._added, 2 * len(self.x), 256))
        new_keys, order = torch.sort(keys, stable=True)
        repeat = torch.cat([new_keys.new_zeros(1, dtype=torch.bool), new_keys[1:] == new_keys[:-1]])
        keep_sorted = ~self._held(new_keys) & ~repeat
        keep = torch.empty_like(keep_sorted).scatter_(0, order, keep_sorted)  # in the batch's order
        # new objects are held in the order they came (so a checkpoint's objects, added again, land where they were)
        slot = torch.where(keep, self.count + keep.long().cumsum(0) - 1, len(self.x) - 1)
        self.x.index_copy_(0, slot, x)  # in place: O(batch); repeated objects all land on the spare last slot
        self.log_reward.index_copy_(0, slot, log_reward.to(self.log_reward.dtype))
        self.raw_reward.index_copy_(0, slot, raw.to(self.raw_reward.dtype))
        keys_merged, slots_merged = _merge(self.keys, self.key_slot, new_keys, slot[order], keep_sorted, _EMPTY)
        self.keys, self.key_slot = keys_merged[: len(self.x)], slots_merged[: len(self.x)]
        self._merged(slot, keep)
        self.count = self.count + keep.sum()

    def _merged(self, slot: Tensor, keep: Tensor) -> None:
        """Hook: the objects at ``slot`` (those in ``keep``) were just added."""

    def _tensors(self) -> tuple[str, ...]:
        return ("x", "log_reward", "raw_reward", "keys", "key_slot", "count")

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
        if len(x):
            self._insert(x, row_keys(x), state["log_reward"], state["raw_reward"])


@register("replay", "prioritized")
class PrioritizedReplay(ObjectReplay):
    """Reward-prioritised as in the official code: half the batch from objects at or above the
    90th percentile of the buffer's rewards, half from those at or below it, with replacement.

    The percentile is torch.quantile's (linear between order statistics). The buffer keeps a second index, of
    its rewards in ascending order (merged like the keys' on each add), so the order statistics are gathers and
    each half is a uniform draw from a contiguous range of it: fixed shapes, no sort, no selection.
    """

    def __init__(self, min_size: int = 10, quantile: float = 0.9) -> None:
        super().__init__(min_size)
        self.quantile = quantile

    def _empty(self, width: int, device: torch.device) -> None:
        super()._empty(width, device)
        self.rewards_sorted = torch.empty(0, dtype=torch.float64, device=device)  # +inf after the held ones
        self.reward_slot = torch.empty(0, dtype=torch.long, device=device)

    def _tensors(self) -> tuple[str, ...]:
        return (*super()._tensors(), "rewards_sorted", "reward_slot")

    def _grew(self, extra: int) -> None:
        self.rewards_sorted = _padded(self.rewards_sorted, extra, torch.inf)
        self.reward_slot = _padded(self.reward_slot, extra, 0)

    def _merged(self, slot: Tensor, keep: Tensor) -> None:
        new, order = torch.sort(torch.where(keep, self.log_reward[slot].double(), torch.inf), stable=True)
        values, slots = _merge(self.rewards_sorted, self.reward_slot, new, slot[order], keep[order], torch.inf)
        self.rewards_sorted, self.reward_slot = values[: len(self.x)], slots[: len(self.x)]

    def _indices(self, n: int, generator: torch.Generator | None) -> Tensor:
        r, count = self.rewards_sorted, self.count
        pos = self.quantile * (count - 1).double()
        lo, hi = pos.floor().long(), pos.ceil().long()
        threshold = r[lo] + (pos - lo) * (r[hi] - r[lo])
        first_top = torch.searchsorted(r, threshold[None])  # the top set: [first_top, count)
        end_bottom = torch.searchsorted(r, threshold[None], right=True)  # the bottom set: [0, end_bottom)
        u = self._uniform(n, generator)
        half = n // 2
        top = first_top + (u[:half] * (count - first_top)).long()
        bottom = (u[half:] * end_bottom).long()
        return self.reward_slot[torch.cat([top, bottom])]


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
