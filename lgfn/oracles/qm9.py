"""qm9str reward: the published table over all 11^5 block strings (no model to run)."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import Tensor

from lgfn.chem.blocks import BlockSet
from lgfn.taskdata.block_sets import block_set
from lgfn.taskdata.files import data_path
from lgfn.registry import register_oracle

TABLE_FILE = "qm9str/qm9str_s5.npz"
MODES_FILE = "qm9str/modes_qm9str.json"


@register_oracle("qm9")
class QM9Oracle:
    """Raw qm9str reward (a HOMO-LUMO-gap proxy) of length-5 strings over the 11 qm9 blocks.

    The table lists every string in lexicographic order, so a string's row is its
    base-11 number with position 0 most significant; lookup is exact and O(1).
    """

    length = 5

    def __init__(self) -> None:
        self.blocks: BlockSet = block_set("qm9")
        self.chars = self.blocks.chars
        self.vocab_size = len(self.blocks)
        with np.load(data_path(TABLE_FILE), allow_pickle=False) as data:
            reward = data["r"]
        if reward.shape != (self.vocab_size**self.length,):
            raise ValueError(f"{TABLE_FILE}: expected {self.vocab_size ** self.length} rewards, got {reward.shape}")
        self._reward = torch.from_numpy(reward.astype(np.float64))
        self._radix = self.vocab_size ** torch.arange(self.length - 1, -1, -1)

    def index(self, x: Tensor) -> Tensor:
        """Row of each string in the table (its base-11 value), after checking shape and range."""
        if x.dim() != 2 or x.shape[1] != self.length or x.dtype != torch.long:
            raise ValueError(f"qm9 oracle expects a LongTensor [N, {self.length}], got {x.dtype} {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ValueError(f"qm9 tokens must lie in [0, {self.vocab_size}); got {x.min().item()}..{x.max().item()}")
        return (x * self._radix.to(x.device)).sum(1)

    def __call__(self, x: Tensor) -> Tensor:
        """Raw reward [N] float64 of token rows [N, 5], on the device of ``x``."""
        self.index(x)  # checks shape and range
        return self.lookup(x)

    @property
    def table(self) -> Tensor:
        """Every string's reward, in index order."""
        return self._reward

    def lookup(self, x: Tensor) -> Tensor:
        """Rewards of token rows known to be valid (the sampler's own objects): a gather on their device, without
        the checks of a call (each reads values back to the host)."""
        if self._reward.device != x.device:
            self._reward, self._radix = self._reward.to(x.device), self._radix.to(x.device)
        return self._reward[(x * self._radix).sum(1)]

    def modes(self) -> list[str]:
        """The 364 published mode strings (198 distinct molecules), as given upstream."""
        with open(data_path(MODES_FILE)) as f:
            return list(json.load(f))
