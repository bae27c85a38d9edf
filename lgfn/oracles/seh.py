"""sehstr reward: upstream's gradient-boosted tree proxy of sEH binding, evaluated without scikit-learn.

The trees come as plain arrays (``sehstr/sehstr_gbr_trees.npz``), exported from
scikit-learn 1.0.2's HistGradientBoostingRegressor. The input is the one-hot
encoding of 6 tokens over 18 blocks, so a split on feature ``f`` only asks
"is the token at position f // 18 block f % 18". Each tree is therefore a
small table over, per position, the blocks it tests plus "any other block"
(here at most 24,000 cells a tree, 525k in all), and a batch is scored with a
few numpy gathers: 2-3M strings/s on one core at batch 100k, against 12k/s for
the depth-by-depth walk of all trees it replaces (bit-identical over all 18^6).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import Tensor

from lgfn.chem.blocks import BlockSet
from lgfn.taskdata.block_sets import block_set
from lgfn.taskdata.files import data_path
from lgfn.registry import register_oracle

TREES_FILE = "sehstr/sehstr_gbr_trees.npz"
MODES_FILE = "sehstr/modes_sehstr_gbr_v2.json"
"""The greedy modes with ties in string order, rebuilt from the trees (lgfn 0.1's v1 list could not be)."""
CHUNK = 2048
"""Strings scored at a time: keeps the [trees, chunk] intermediates in cache (measured fastest)."""


class TreeEnsemble:
    """A fitted HistGradientBoostingRegressor (numeric splits) on one-hot token features, as lookup tables.

    Feature ``position * vocab_size + block`` is 1 where the string has ``block`` at
    ``position`` and 0 elsewhere; an internal node sends value v left iff
    ``v <= threshold`` (one-hot features are never missing). Tree t's table has one
    axis per position, indexed by the token's class: the blocks the tree tests at that
    position get a class each and all other blocks share one. The positions are split
    into two halves whose flat table offsets are precomputed for every token
    combination (``head``, ``tail``: [trees, vocab_size ** half]), so one string costs
    two gathers and one table read per tree. Prediction is the baseline plus each
    tree's leaf value, added one tree at a time in tree order (float64), exactly as
    scikit-learn accumulates it, so results match it bit for bit.
    """

    def __init__(self, arrays: dict[str, np.ndarray], length: int = 6, vocab_size: int = 18) -> None:
        if np.any(arrays["is_categorical"]):
            raise ValueError("categorical splits are not supported")
        if np.any(arrays["feature_idx"][arrays["is_leaf"] == 0] >= length * vocab_size):
            raise ValueError(f"a split uses a feature beyond the {length} x {vocab_size} one-hot input")
        self.length, self.vocab_size = length, vocab_size
        self.baseline = float(arrays["baseline_prediction"])
        self.n_trees = len(arrays["is_leaf"])
        classes, tables = zip(*(_tree_table(arrays, t, length, vocab_size) for t in range(self.n_trees)))
        self.values = np.concatenate([table.ravel() for table in tables])  # every tree's leaf value per cell
        if self.values.size >= 2**31:
            raise ValueError("the trees' tables do not fit int32 offsets")
        starts = np.cumsum([0] + [table.size for table in tables[:-1]])
        # [trees, length, vocab_size]: where block b at position p moves tree t's flat table index
        offsets = np.stack([cls * (np.array(table.strides) // table.itemsize)[:, None]
                            for cls, table in zip(classes, tables)])
        self.half = length // 2
        self.head = (_combinations(offsets[:, : self.half]) + starts[:, None]).astype(np.int32)
        self.tail = _combinations(offsets[:, self.half :]).astype(np.int32)

    def predict(self, tokens: np.ndarray) -> np.ndarray:
        """Prediction float64 [N] of token rows [N, length] (values in [0, vocab_size), not checked here)."""
        out = np.full(len(tokens), self.baseline)
        head = _base(tokens[:, : self.half], self.vocab_size)
        tail = _base(tokens[:, self.half :], self.vocab_size)
        for lo in range(0, len(tokens), CHUNK):
            cell = np.take(self.head, head[lo : lo + CHUNK], axis=1)
            cell += np.take(self.tail, tail[lo : lo + CHUNK], axis=1)
            leaf_values = np.take(self.values, cell)  # [trees, chunk]
            part = out[lo : lo + CHUNK]
            for tree_values in leaf_values:  # tree order, one add at a time: the bits of scikit-learn
                part += tree_values
        return out


def _tree_table(arrays: dict[str, np.ndarray], t: int, length: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(class of each block at each position [length, vocab_size], leaf value per class combination) of tree t."""
    is_leaf, feature = arrays["is_leaf"][t], arrays["feature_idx"][t].astype(np.int64)
    position, block = np.divmod(feature[is_leaf == 0], vocab_size)
    classes = np.empty((length, vocab_size), dtype=np.int64)
    for p in range(length):
        tested = np.unique(block[position == p])
        classes[p] = len(tested)  # the untested blocks share the last class
        classes[p, tested] = np.arange(len(tested))
    table = np.full(classes.max(1) + 1, np.nan)

    def fill(node: int, allowed: list[np.ndarray]) -> None:
        """Write the leaf value under ``node`` into the cells whose classes are ``allowed`` per position."""
        if is_leaf[node]:
            table[np.ix_(*allowed)] = arrays["value"][t, node]
            return
        p, b = divmod(int(feature[node]), vocab_size)
        threshold, hit = arrays["num_threshold"][t, node], allowed[p] == classes[p, b]
        for mask, v in ((hit, 1.0), (~hit, 0.0)):  # one-hot value 1 for the tested block, 0 for the others
            if mask.any():
                child = arrays["left"][t, node] if v <= threshold else arrays["right"][t, node]
                fill(int(child), [*allowed[:p], allowed[p][mask], *allowed[p + 1 :]])

    fill(0, [np.arange(n) for n in table.shape])
    if np.isnan(table).any():
        raise ValueError(f"tree {t} leaves some token combinations without a leaf")
    return classes, table


def _base(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Each row's base-``vocab_size`` number, position 0 most significant (its index in ``_combinations``)."""
    return tokens @ vocab_size ** np.arange(tokens.shape[1] - 1, -1, -1)


def _combinations(offsets: np.ndarray) -> np.ndarray:
    """[trees, V ** k] summed offsets of every token combination of k positions ([trees, k, V]), position 0 first."""
    total = np.zeros((offsets.shape[0], 1), dtype=np.int64)
    for p in range(offsets.shape[1]):
        total = (total[:, :, None] + offsets[:, p, None, :]).reshape(len(offsets), -1)
    return total


@register_oracle("seh")
class SEHOracle:
    """Raw sehstr reward: the tree proxy on length-6 strings over the 18 sEH fragments.

    Features are the one-hot encoding of the string, feature index = position * 18 + block.
    Proxy range over all 18^6 strings: -2.61 to 7.0333 (``ag550c``). Scored on the CPU
    (faster than a device for any batch: a few gathers), returned on the device of the input.
    """

    length = 6

    def __init__(self) -> None:
        self.blocks: BlockSet = block_set("seh")
        self.chars = self.blocks.chars
        self.vocab_size = len(self.blocks)
        with np.load(data_path(TREES_FILE), allow_pickle=False) as data:
            self.trees = TreeEnsemble({k: data[k] for k in data.files}, self.length, self.vocab_size)

    def __call__(self, x: Tensor) -> Tensor:
        """Raw proxy value [N] float64 of token rows [N, 6], on the device of ``x``."""
        if x.dim() != 2 or x.shape[1] != self.length or x.dtype != torch.long:
            raise ValueError(f"seh oracle expects a LongTensor [N, {self.length}], got {x.dtype} {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ValueError(f"seh tokens must lie in [0, {self.vocab_size}); got {x.min().item()}..{x.max().item()}")
        return torch.from_numpy(self.trees.predict(x.detach().cpu().numpy())).to(x.device)

    def modes(self) -> list[str]:
        """The proxy's 159 modes (greedy, Hamming distance >= 2, ties in string order), best first; 6.852-7.0333."""
        with open(data_path(MODES_FILE)) as f:
            return list(json.load(f))
