"""sehstr reward: upstream's gradient-boosted tree proxy of sEH binding, evaluated without scikit-learn.

The trees come as plain arrays (``sehstr/sehstr_gbr_trees.npz``), exported from
scikit-learn 1.0.2's HistGradientBoostingRegressor. All samples descend all 100
trees together, one level per step, so a batch costs ``max depth`` tensor steps
and no Python loop over samples; it runs on the device of the input.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import Tensor

from lgfn.chem.blocks import BlockSet, block_set
from lgfn.datasets import data_path
from lgfn.registry import register_oracle

TREES_FILE = "sehstr/sehstr_gbr_trees.npz"
MODES_FILE = "sehstr/modes_sehstr_gbr.json"


class TreeEnsemble:
    """A fitted HistGradientBoostingRegressor (numeric splits only) as flat tensors.

    Decision rule at an internal node: NaN goes left iff ``missing_go_to_left``;
    otherwise ``x[feature] <= threshold`` goes left. Prediction is the baseline
    plus each tree's leaf value, added one tree at a time in tree order (float64),
    exactly as scikit-learn accumulates it, so results match it bit for bit.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        if np.any(arrays["is_categorical"]):
            raise ValueError("categorical splits are not supported")
        is_leaf = torch.from_numpy(arrays["is_leaf"].astype(bool))
        self.n_trees, self.n_nodes = is_leaf.shape
        nodes = torch.arange(self.n_nodes).expand(self.n_trees, -1)
        # leaves point to themselves, so every sample can take the same number of steps
        left = torch.where(is_leaf, nodes, torch.from_numpy(arrays["left"].astype(np.int64)))
        right = torch.where(is_leaf, nodes, torch.from_numpy(arrays["right"].astype(np.int64)))
        offsets = (torch.arange(self.n_trees) * self.n_nodes)[:, None]
        self.left = (left + offsets).flatten()  # flat node ids: tree * n_nodes + node
        self.right = (right + offsets).flatten()
        self.feature = torch.from_numpy(arrays["feature_idx"].astype(np.int64)).flatten()
        self.threshold = torch.from_numpy(arrays["num_threshold"].astype(np.float64)).flatten()
        self.missing_left = torch.from_numpy(arrays["missing_go_to_left"].astype(bool)).flatten()
        self.value = torch.from_numpy(arrays["value"].astype(np.float64)).flatten()
        self.roots = offsets.flatten()
        self.baseline = float(arrays["baseline_prediction"])
        self.depth = int(arrays["depth"].max())

    def to(self, device: torch.device) -> "TreeEnsemble":
        """Move the arrays to ``device`` (in place) and return self."""
        for name in ("left", "right", "feature", "threshold", "missing_left", "value", "roots"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def leaves(self, features: Tensor) -> Tensor:
        """Flat leaf id [N, n_trees] reached by each sample in each tree."""
        node = self.roots.expand(features.shape[0], -1)
        has_nan = bool(torch.isnan(features).any())  # without NaN the missing-value branch is skipped (2x faster)
        for _ in range(self.depth):
            v = features.gather(1, self.feature[node])
            go_left = v <= self.threshold[node]
            if has_nan:
                go_left = torch.where(torch.isnan(v), self.missing_left[node], go_left)
            node = torch.where(go_left, self.left[node], self.right[node])
        return node

    def predict(self, features: Tensor) -> Tensor:
        """Prediction [N] float64 for a float64 feature matrix [N, n_features]."""
        leaf_values = self.value[self.leaves(features)]
        out = torch.full((features.shape[0],), self.baseline, dtype=torch.float64, device=features.device)
        for t in range(self.n_trees):
            out = out + leaf_values[:, t]
        return out


@register_oracle("seh")
class SEHOracle:
    """Raw sehstr reward: the tree proxy on length-6 strings over the 18 sEH fragments.

    Features are the one-hot encoding of the string, feature index = position * 18 + block.
    Proxy range over all 18^6 strings: -2.61 to 7.0333 (``ag550c``).
    """

    length = 6

    def __init__(self) -> None:
        self.blocks: BlockSet = block_set("seh")
        self.chars = self.blocks.chars
        self.vocab_size = len(self.blocks)
        with np.load(data_path(TREES_FILE), allow_pickle=False) as data:
            self.trees = TreeEnsemble({k: data[k] for k in data.files})
        self._device = torch.device("cpu")

    def features(self, x: Tensor) -> Tensor:
        """One-hot float64 features [N, 108] of token rows, after checking shape and range."""
        if x.dim() != 2 or x.shape[1] != self.length or x.dtype != torch.long:
            raise ValueError(f"seh oracle expects a LongTensor [N, {self.length}], got {x.dtype} {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ValueError(f"seh tokens must lie in [0, {self.vocab_size}); got {x.min().item()}..{x.max().item()}")
        return torch.nn.functional.one_hot(x, self.vocab_size).flatten(1).to(torch.float64)

    def __call__(self, x: Tensor) -> Tensor:
        """Raw proxy value [N] float64 of token rows [N, 6], on the device of ``x``."""
        if x.device != self._device:
            self.trees.to(x.device)
            self._device = x.device
        return self.trees.predict(self.features(x))

    def encode(self, strings: list[str]) -> Tensor:
        """Token rows of block strings such as ``"ag550c"``."""
        return torch.tensor([self.blocks.indices(s) for s in strings], dtype=torch.long).reshape(-1, self.length)

    def modes(self) -> list[str]:
        """The proxy's 159 modes (greedy, Hamming distance >= 2), best first; values 6.852-7.0333."""
        with open(data_path(MODES_FILE)) as f:
            return list(json.load(f))
