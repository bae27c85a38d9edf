"""Skipping steps whose loss or gradient is not finite, decided on the device and read on logging steps.

A skipped step leaves the weights and Adam's moments untouched: the fused optimiser is handed a ``found_inf``
flag (as a GradScaler hands it), and skips its update on the device. The streak arithmetic of
``nonfinite_patience`` runs on the device too, so a training step reads nothing back; the model reads the
counters when Lightning writes its logs (and at the end of the epoch) and stops there if the run diverged,
within ``log_every_n_steps`` steps of it.
"""

from __future__ import annotations

import torch
from torch import Tensor


class NonFiniteGuard:
    """Counts skipped steps and tracks the ``patience`` rule: the run has diverged once ``patience`` skipped
    steps occur with fewer than ``patience`` good steps in a row between any two of them."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self._state: Tensor | None = None  # [total skipped, skipped in the current run, good in a row, tripped]
        self.seen = 0  # skipped steps already reported

    def update(self, bad: Tensor) -> None:
        """Add one step's verdict (a 0-dim bool on the device)."""
        if self._state is None:
            self._state = torch.zeros(4, dtype=torch.long, device=bad.device)
        total, run, good, tripped = self._state.unbind()
        b = bad.long()
        good = (good + 1) * (1 - b)
        run = (run + b) * (good < self.patience).long()  # a stretch of `patience` good steps forgives the past
        self._state = torch.stack([total + b, run, good, tripped | (run >= self.patience).long()])

    def total(self) -> int:
        """Skipped steps in all (a read-back: for summaries)."""
        return self.seen if self._state is None else int(self._state[0])

    def read(self) -> tuple[int, int, bool]:
        """(skipped steps in all, skipped since the last read, whether the run diverged): one read-back."""
        if self._state is None:
            return self.seen, 0, False
        total, _, _, tripped = self._state.tolist()
        new, self.seen = total - self.seen, total
        return total, new, bool(tripped)
