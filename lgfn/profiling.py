"""Counting what makes a step wait for the host: read-backs of tensor values and data-dependent shapes.

A training step that reads a value back (``bool(t)``, ``.item()``, ``nonzero``, a boolean mask, ``unique``)
stalls a GPU until the queue drains and breaks a ``torch.compile`` graph. :func:`count_readbacks` counts them
by name, so tests can assert there are none and benchmarks can report where they come from.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode

_READBACKS = {
    torch.Tensor.__bool__: "bool", torch.Tensor.item: "item", torch.Tensor.tolist: "tolist",
    torch.Tensor.__int__: "int", torch.Tensor.__float__: "float", torch.Tensor.__index__: "index",
    torch.Tensor.nonzero: "nonzero", torch.nonzero: "nonzero", torch.Tensor.unique: "unique",
    torch.unique: "unique", torch.Tensor.cpu: "cpu", torch.Tensor.numpy: "numpy",
    torch.masked_select: "masked_select", torch.Tensor.masked_select: "masked_select",
}


def _has_bool_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class ReadbackCounter(TorchFunctionMode):
    """Counts read-backs by kind (see :data:`_READBACKS`; ``mask``: indexing or assigning by a bool tensor).

    ``.cpu()`` of a tensor already on the CPU counts too: the code would read back on a GPU.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = _READBACKS.get(func)
        if name is None and func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and _has_bool_index(args[1]):
            name = "mask"
        if name is not None:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@contextmanager
def count_readbacks() -> Iterator[ReadbackCounter]:
    """``with count_readbacks() as c: ...; c.total``."""
    with ReadbackCounter() as counter:
        yield counter
