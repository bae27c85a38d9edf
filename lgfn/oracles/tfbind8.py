"""TFBind8 reward: measured binding of every DNA 8-mer to the transcription factor SIX6.

The landscape is a lookup table over all 4^8 sequences (``tfbind8/tfbind8_all.npz``,
identical to upstream ``tfbind8-exact-v0-all.pkl``), so the oracle is exact and
costs one gather.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import Tensor

from lgfn.taskdata.files import data_path
from lgfn.registry import register_oracle

TABLE_FILE = "tfbind8/tfbind8_all.npz"
MODES_FILE = "tfbind8/modes_tfbind8.json"
ALPHABET = "ACGT"
LENGTH = 8
_WEIGHTS = 4 ** np.arange(LENGTH - 1, -1, -1)  # position 0 is the most significant digit


def load_table() -> tuple[np.ndarray, np.ndarray]:
    """(x int64 [65536, 8] in lexicographic order, y float32 [65536]) of the whole landscape."""
    with np.load(data_path(TABLE_FILE), allow_pickle=False) as data:
        x, y = data["x"], data["y"][:, 0]
    if x.shape != (4**LENGTH, LENGTH) or not np.array_equal(x @ _WEIGHTS, np.arange(4**LENGTH)):
        raise ValueError(f"{TABLE_FILE}: x is not every 8-mer in lexicographic order")
    return x, y


def load_modes() -> list[str]:
    """The 328 upstream modes as ACGT strings (the file spells them over '0123')."""
    with open(data_path(MODES_FILE), encoding="utf-8") as handle:
        modes = json.load(handle)
    return ["".join(ALPHABET[int(digit)] for digit in mode) for mode in modes]


def offline_train_set(unique: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The bottom half of the landscape as an offline training set: (x int64 [N, 8], y float32 [N]).

    ``unique=False`` rebuilds upstream ``tfbind8-exact-v0-train.pkl`` in order
    (N = 32,898; upstream stores x as int32). The source table lists each 8-mer
    with its reverse complement as one row keyed by the lexicographically smaller
    strand (32,896 rows; the 256 palindromes are their own complement); the pickle
    keeps the rows with y <= their median (0.43929616, 16,449 rows) and lists the
    first strand of every kept row, then the second, so the 130 kept palindromes
    appear twice.

    ``unique=True`` gives the same sequences once each, in lexicographic order
    (N = 32,768): what Logit-GFN's code trains on, a dict over the full table
    with y <= its median.
    """
    x, y = load_table()
    index = x @ _WEIGHTS
    reverse_complement = (3 - x[:, ::-1]) @ _WEIGHTS
    first = index <= reverse_complement
    kept = first & (y <= np.median(y[first]))
    if unique:
        keep = np.zeros(len(x), dtype=bool)
        keep[index[kept]] = keep[reverse_complement[kept]] = True
        return x[keep], y[keep]
    second = reverse_complement[kept]
    return np.concatenate([x[kept], x[second]]), np.concatenate([y[kept], y[second]])


@register_oracle("tfbind8")
class TFBind8Oracle:
    """Raw reward y in [0, 1] of 8-mers given as tokens 0=A 1=C 2=G 3=T."""

    alphabet = ALPHABET
    length = LENGTH

    def __init__(self) -> None:
        _, y = load_table()
        self.y = torch.from_numpy(y.astype(np.float64))
        self.weights = torch.from_numpy(_WEIGHTS)

    def __call__(self, x: Tensor) -> Tensor:
        """[N, 8] token indices -> [N] float64 rewards, on the device of ``x``."""
        if x.ndim != 2 or x.shape[1] != LENGTH:
            raise ValueError(f"tfbind8 expects tokens of shape [N, {LENGTH}], got {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() >= len(ALPHABET)):
            raise ValueError(f"tfbind8 tokens must lie in 0..{len(ALPHABET) - 1}")
        return self.lookup(x)

    @property
    def table(self) -> Tensor:
        """Every 8-mer's reward, in index order."""
        return self.y

    def lookup(self, x: Tensor) -> Tensor:
        """Rewards of token rows known to be valid (the sampler's own objects): a gather on their device, without
        the checks of a call (each reads values back to the host)."""
        if self.y.device != x.device:
            self.y, self.weights = self.y.to(x.device), self.weights.to(x.device)
        return self.y[(x.long() * self.weights).sum(dim=1)]
