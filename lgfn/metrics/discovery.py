"""Discovery metrics over canonical object strings: modes found, distinct objects, top-k reward and diversity.

Objects are identified by their canonical string. Metric states hold tensors only, so they
reduce across DDP ranks like any torchmetrics state: a string becomes an int64 id by a stable
hash (:func:`string_ids`), and where the string itself is needed later (diversity) its Unicode
code points are kept as a flat int32 ``cat`` state with a ``lengths`` state beside it. Every
rank gathers every ``cat`` state in the same rank order, so rows stay aligned across states.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable, Literal, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

DistanceName = Literal["auto", "hamming", "levenshtein"]

_PAIR_CHUNK = 65536
"""Pairs per vectorised Levenshtein pass: bounds memory to ``_PAIR_CHUNK * max_len`` ints."""

_COMPACT_EVERY = 64
"""Batches appended before :class:`DistinctObjects` dedupes its id list, so memory grows with
distinct objects rather than with steps, at an amortised cost."""


def string_ids(strings: Iterable[str]) -> Tensor:
    """Stable int64 ids (blake2b, 8 bytes): identical on every rank and run, unlike ``hash()``."""
    ids = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little", signed=True) for s in strings]
    return torch.tensor(ids, dtype=torch.int64)


def encode_strings(strings: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Flat int32 code points of all strings, and each string's length, for tensor states."""
    codes = np.frombuffer("".join(strings).encode("utf-32-le"), dtype="<i4").copy()
    return torch.from_numpy(codes), torch.tensor([len(s) for s in strings], dtype=torch.int64)


def decode_strings(codes: Tensor, lengths: Tensor) -> list[str]:
    """Inverse of :func:`encode_strings`."""
    flat = codes.cpu().numpy().astype("<i4").tobytes().decode("utf-32-le")
    bounds = np.concatenate([[0], np.cumsum(lengths.cpu().numpy())])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _take_rows(codes: Tensor, lengths: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Select whole strings ``rows`` from flat ``codes``/``lengths`` without a Python loop."""
    starts = torch.cumsum(lengths, 0) - lengths
    sel_len = lengths[rows]
    out_starts = torch.cumsum(sel_len, 0) - sel_len
    shift = torch.repeat_interleave(starts[rows] - out_starts, sel_len)
    return codes[torch.arange(len(shift), device=codes.device) + shift], sel_len


def top_k_distinct_rows(ids: Tensor, rewards: Tensor, k: int) -> Tensor:
    """Row indices of the ``k`` best distinct objects, best first.

    Each id counts once, at its highest reward; ties in reward go to the smaller id so the
    choice does not depend on arrival order (what makes compaction and DDP merges exact).
    """
    by_id = torch.sort(ids, stable=True).indices
    order = by_id[torch.sort(rewards[by_id], descending=True, stable=True).indices]
    uniq, inverse = torch.unique(ids[order], return_inverse=True)
    positions = torch.arange(len(order), device=ids.device)
    first = torch.full((len(uniq),), len(order), dtype=torch.long, device=ids.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return order[torch.sort(first).values[:k]]


def _string_array(strings: Sequence[str]) -> np.ndarray:
    """Code points as an int array [n, max_len], padded with -1 (never a code point)."""
    width = max(len(s) for s in strings)
    return np.array([[ord(c) for c in s] + [-1] * (width - len(s)) for s in strings], dtype=np.int64)


def _hamming_total(strings: Sequence[str]) -> float:
    """Sum of Hamming distances over all pairs in O(n·L).

    At each position, the pairs that differ are all pairs minus those sharing a symbol,
    so counting symbols per position replaces the n² pair loop.
    """
    arr = _string_array(strings)
    n, width = arr.shape
    uniq, symbols = np.unique(arr, return_inverse=True)
    keys = np.arange(width)[None, :] * len(uniq) + symbols.reshape(n, width)
    counts = np.bincount(keys.ravel())
    return float(width * n * (n - 1) // 2 - (counts * (counts - 1) // 2).sum())


def _levenshtein_total(strings: Sequence[str]) -> float:
    """Sum of Levenshtein distances over all pairs, one DP row at a time for all pairs at once.

    A row of the DP is ``cur[j] = min(prev[j] + 1, prev[j-1] + sub, cur[j-1] + 1)``; the last
    term unrolls to ``j + cummin(t[j'] - j')``, so each row is a few numpy ops, not a j loop.
    """
    arr = _string_array(strings)
    lengths = np.array([len(s) for s in strings])
    width = arr.shape[1]
    cols = np.arange(width + 1)
    left, right = np.triu_indices(len(strings), k=1)
    total = 0
    for start in range(0, len(left), _PAIR_CHUNK):
        a, b = arr[left[start : start + _PAIR_CHUNK]], arr[right[start : start + _PAIR_CHUNK]]
        la, lb = lengths[left[start : start + _PAIR_CHUNK]], lengths[right[start : start + _PAIR_CHUNK]]
        rows = np.arange(len(a))
        prev = np.broadcast_to(cols, (len(a), width + 1)).copy()
        dist = prev[rows, lb].copy()  # strings of length 0 on the left
        for i in range(1, width + 1):
            sub = a[:, i - 1 : i] != b
            cur = np.empty_like(prev)
            cur[:, 0] = i
            cur[:, 1:] = np.minimum(prev[:, 1:] + 1, prev[:, :-1] + sub)
            cur = cols + np.minimum.accumulate(cur - cols, axis=1)
            done = la == i
            dist[done] = cur[rows[done], lb[done]]
            prev = cur
        total += int(dist.sum())
    return float(total)


def mean_pairwise_distance(strings: Sequence[str], metric: DistanceName = "auto") -> float:
    """Mean distance over unordered pairs: Hamming (equal lengths) or Levenshtein (edit distance).

    ``"auto"`` picks Hamming when all lengths are equal, else Levenshtein. Distances are raw
    counts, not divided by length. Fewer than two strings have no pairs: returns 0.0.
    """
    strings = list(strings)
    n = len(strings)
    if n < 2:
        return 0.0
    same_length = len({len(s) for s in strings}) == 1
    if metric == "auto":
        metric = "hamming" if same_length else "levenshtein"
    if metric == "hamming":
        if not same_length:
            raise ValueError("Hamming distance needs equal-length strings; use metric='levenshtein' or 'auto'")
        total = _hamming_total(strings)
    elif metric == "levenshtein":
        total = _levenshtein_total(strings)
    else:
        raise ValueError(f"unknown distance {metric!r}; expected 'auto', 'hamming' or 'levenshtein'")
    return total / (n * (n - 1) / 2)


class _TypedCatStates(Metric):
    """Keeps the dtype of ``cat`` states through DDP sync.

    torchmetrics stands in an empty float32 tensor for a rank whose list state is empty,
    which breaks the all-gather against int64 ids and promotes them to float32. Filling
    empty lists with an empty tensor of the state's own dtype first avoids that.
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cat_dtypes: dict[str, torch.dtype] = {}

    def _add_cat_state(self, name: str, dtype: torch.dtype) -> None:
        self.add_state(name, default=[], dist_reduce_fx="cat")
        self._cat_dtypes[name] = dtype

    def _cat(self, name: str) -> Tensor:
        """The whole state as one tensor, empty (of the right dtype) before any update."""
        value = getattr(self, name)
        if isinstance(value, list) and not value:
            return torch.empty(0, dtype=self._cat_dtypes[name], device=self.device)
        return dim_zero_cat(value)

    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group: Optional[Any] = None) -> None:
        for name in self._cat_dtypes:
            setattr(self, name, [self._cat(name)])
        super()._sync_dist(dist_sync_fn, process_group)


class ModesFound(Metric):
    """Number of distinct modes among all objects seen: the mode-seeking curve.

    ``update(strings)`` with every object the run has rewarded; ``compute()`` → int64 count.
    The state is one 0/1 flag per mode reduced by ``max``, so memory is fixed by the mode set.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, modes: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_buffer("mode_ids", torch.unique(string_ids(modes)), persistent=False)
        self.add_state("found", default=torch.zeros(len(self.mode_ids), dtype=torch.int64), dist_reduce_fx="max")

    def update(self, strings: Sequence[str]) -> None:
        if not len(self.mode_ids):
            return
        ids = string_ids(strings).to(self.device)
        slot = torch.searchsorted(self.mode_ids, ids).clamp(max=len(self.mode_ids) - 1)
        hit = self.mode_ids[slot] == ids
        self.found[slot[hit]] = 1

    def compute(self) -> Tensor:
        return self.found.sum()


class DistinctObjects(_TypedCatStates):
    """Number of distinct objects seen; ``update(strings)``, ``compute()`` → int64 count."""

    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._add_cat_state("ids", torch.int64)

    def update(self, strings: Sequence[str]) -> None:
        self.ids.append(torch.unique(string_ids(strings).to(self.device)))
        if len(self.ids) >= _COMPACT_EVERY:
            self.ids = [torch.unique(torch.cat(self.ids))]

    def compute(self) -> Tensor:
        return torch.tensor(torch.unique(self._cat("ids")).numel(), device=self.device)


class TopKDistinct(_TypedCatStates):
    """Base for metrics over the ``k`` best distinct objects by raw reward.

    Each object counts once, at its highest reward seen (rewards of a deterministic oracle
    agree anyway). After every update the state is cut back to the current top ``k``: exact,
    because the top ``k`` of a union lies within the union of the parts' top ``k``, and it
    keeps memory at ``k`` rows for cumulative use. With ``store_text`` the metric also keeps
    one string per object (the object string or e.g. its SMILES) for diversity.
    """

    higher_is_better = True

    def __init__(self, k: int = 100, store_text: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self.store_text = store_text
        self._add_cat_state("ids", torch.int64)
        self._add_cat_state("rewards", torch.float64)
        if store_text:
            self._add_cat_state("codes", torch.int32)
            self._add_cat_state("lengths", torch.int64)

    def _add(self, strings: Sequence[str], rewards: Union[Sequence[float], Tensor], texts: Sequence[str] = ()) -> None:
        rewards = torch.as_tensor(rewards, dtype=torch.float64).detach().reshape(-1).to(self.device)
        if len(strings) != len(rewards) or (self.store_text and len(texts) != len(strings)):
            raise ValueError("strings, rewards (and texts) must have the same length")
        self.ids.append(string_ids(strings).to(self.device))
        self.rewards.append(rewards)
        if self.store_text:
            codes, lengths = encode_strings(texts)
            self.codes.append(codes.to(self.device))
            self.lengths.append(lengths.to(self.device))
        ids, rewards = self._cat("ids"), self._cat("rewards")
        rows = top_k_distinct_rows(ids, rewards, self.k)
        self.ids, self.rewards = [ids[rows]], [rewards[rows]]
        if self.store_text:
            codes, lengths = _take_rows(self._cat("codes"), self._cat("lengths"), rows)
            self.codes, self.lengths = [codes], [lengths]

    def best(self) -> tuple[Tensor, list[str]]:
        """Rewards of the top ``k`` distinct objects, best first, and their texts (empty without ``store_text``)."""
        rewards = self._cat("rewards")
        rows = top_k_distinct_rows(self._cat("ids"), rewards, self.k)
        texts = decode_strings(*_take_rows(self._cat("codes"), self._cat("lengths"), rows)) if self.store_text else []
        return rewards[rows], texts


class TopKReward(TopKDistinct):
    """Mean raw reward of the ``k`` best distinct objects seen.

    ``update(strings, rewards)``; ``compute()`` → float64 mean over the top ``min(k, distinct)``
    objects (fewer than ``k`` distinct: mean over those; none: nan). Reset it per evaluation
    for N fresh samples at one β, or keep it for everything found so far.
    """

    def __init__(self, k: int = 100, **kwargs: Any) -> None:
        super().__init__(k=k, store_text=False, **kwargs)

    def update(self, strings: Sequence[str], rewards: Union[Sequence[float], Tensor]) -> None:
        self._add(strings, rewards)

    def compute(self) -> Tensor:
        rewards, _ = self.best()
        return rewards.mean() if len(rewards) else torch.tensor(float("nan"), dtype=torch.float64, device=self.device)


class TopKDiversity(TopKDistinct):
    """Mean pairwise distance among the ``k`` best distinct objects by reward.

    ``update(strings, rewards)``; ``compute()`` → float64 (0.0 with fewer than two objects).
    The strings travel as code-point tensor states, so the value is the same on every DDP
    rank and covers all ranks' objects. With ``metric="auto"`` the distance is chosen on the
    current top-k set; pass ``"levenshtein"`` for variable-length tasks so it never switches.
    """

    def __init__(self, k: int = 100, metric: DistanceName = "auto", **kwargs: Any) -> None:
        super().__init__(k=k, store_text=True, **kwargs)
        self.metric = metric

    def update(self, strings: Sequence[str], rewards: Union[Sequence[float], Tensor]) -> None:
        self._add(strings, rewards, strings)

    def compute(self) -> Tensor:
        _, texts = self.best()
        return torch.tensor(mean_pairwise_distance(texts, self.metric), dtype=torch.float64, device=self.device)
