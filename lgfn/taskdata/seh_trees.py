"""The sEH tree proxy as plain arrays, from upstream's scikit-learn pickle, without scikit-learn.

``sehstr_gbtr.pkl`` is a scikit-learn 1.0.2 ``HistGradientBoostingRegressor``,
which current scikit-learn cannot load. Its pickle names four scikit-learn
classes; ``SklearnTreesUnpickler`` maps each to an inert stand-in that only
records the state the pickle hands to ``__setstate__`` (nothing of scikit-learn
is imported or run), and everything else goes through the restricted
unpickler's allow-list. The trees are then read off the recorded state: each
``TreePredictor`` holds a structured ``nodes`` array, one field per column.

``all_values`` evaluates the proxy on all 18^6 strings in about 10 s (numpy,
one core); one such pass gives both files derived from it, the statistics and
the greedy modes (``modes_sehstr_gbr_v2.json``, see ``greedy_modes``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lgfn.taskdata.converters import npz_bytes
from lgfn.taskdata.files import RestrictedUnpickler, content_sha256, converter, safe_load_pickle

N_POSITIONS, N_BLOCKS = 6, 18
N_MODES = 159
"""Modes listed in ``modes_sehstr_gbr_v2.json`` and counted down to by the stats: as many as upstream's
``modes_sehstr.pkl``."""
STATS_FILE, MODES_FILE = "sehstr/sehstr_gbr_stats.json", "sehstr/modes_sehstr_gbr_v2.json"
JSON_NODE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")
"""The node columns the JSON copy keeps: what the decision rule reads."""

_HGB = "sklearn.ensemble._hist_gradient_boosting"


class SklearnStandIn:
    """Takes the place of a scikit-learn class named by the pickle: keeps the state, has no behaviour."""

    state: dict[str, Any]

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = state


_STAND_INS: dict[tuple[str, str], type[SklearnStandIn]] = {
    (f"{_HGB}.{module}", name): type(name, (SklearnStandIn,), {"__module__": __name__})
    for module, name in (
        ("gradient_boosting", "HistGradientBoostingRegressor"),
        ("loss", "LeastSquares"),
        ("binning", "_BinMapper"),
        ("predictor", "TreePredictor"),
    )
}


class SklearnTreesUnpickler(RestrictedUnpickler):
    """The restricted unpickler plus inert stand-ins for the four classes of a pickled HistGradientBoostingRegressor."""

    def find_class(self, module: str, name: str) -> Any:
        return _STAND_INS.get((module, name)) or super().find_class(module, name)


def _model_state(path: Path) -> dict[str, Any]:
    model = safe_load_pickle(path, SklearnTreesUnpickler)
    if type(model).__name__ != "HistGradientBoostingRegressor" or not isinstance(model, SklearnStandIn):
        raise ValueError(f"{path}: expected a HistGradientBoostingRegressor, got {type(model).__name__}")
    state = model.state
    if state.get("loss") != "squared_error" or state.get("n_trees_per_iteration_") != 1:
        raise ValueError(f"{path}: expected a squared-error regressor with one tree per iteration")
    if state.get("is_categorical_") is not None:
        raise ValueError(f"{path}: categorical features are not supported")
    return state


def _nodes(state: dict[str, Any]) -> list[np.ndarray]:
    """The structured ``nodes`` array of each tree, in prediction order."""
    return [predictor.state["nodes"] for iteration in state["_predictors"] for predictor in iteration]


@converter("sehstr/sehstr_gbr_trees.npz")
def _trees_npz(inputs: list[Path]) -> bytes:
    """One [n_trees, n_nodes] array per node column, the baseline, and the bin thresholds of each feature."""
    state = _model_state(inputs[0])
    nodes = _nodes(state)
    arrays = {field: np.stack([tree[field] for tree in nodes]) for field in nodes[0].dtype.names}
    arrays["baseline_prediction"] = np.asarray(state["_baseline_prediction"], dtype=np.float64)
    arrays["bin_thresholds"] = np.stack(state["_bin_mapper"].state["bin_thresholds_"])
    return npz_bytes(False, **arrays)


@converter("sehstr/sehstr_gbr_trees.json")
def _trees_json(inputs: list[Path]) -> bytes:
    """A readable copy: what the model is, its decision rule, and the columns the rule reads."""
    state = _model_state(inputs[0])
    model = {
        "sklearn_version_trained": state["_sklearn_version"],
        "model": "HistGradientBoostingRegressor",
        "loss": "squared_error (identity link)",
        "n_features": state["n_features_in_"],
        "feature_layout": f"one-hot: feature index = position*{N_BLOCKS} + block_index, "
        f"positions 0..{N_POSITIONS - 1}, {N_BLOCKS} blocks",
        "baseline_prediction": float(state["_baseline_prediction"]),
        "decision_rule": "at internal node: if x[feature_idx] is NaN -> go left iff missing_go_to_left; "
        "elif x[feature_idx] <= num_threshold -> left else right; "
        "prediction = baseline + sum of tree leaf values in tree order (float64)",
        "trees": [{field: tree[field].tolist() for field in JSON_NODE_FIELDS} for tree in _nodes(state)],
    }
    return json.dumps(model).encode()


# --------------------------------------------------------------------------- all strings


def _leaf_masks(arrays: dict[str, np.ndarray], tree: int) -> tuple[np.ndarray, np.ndarray]:
    """(masks uint32 [positions, blocks], leaf values): bit k of ``masks[p, b]`` is set iff block ``b`` at
    position ``p`` is allowed on the path to leaf k.

    With one-hot input every split tests one position, so the strings reaching a
    leaf are a product of one allowed set per position, and a string's leaf is
    the single bit left in the AND of its six masks.
    """
    masks = np.zeros((N_POSITIONS, N_BLOCKS), dtype=np.uint32)
    leaves: list[int] = []
    stack = [(0, np.ones((N_POSITIONS, N_BLOCKS), dtype=bool))]
    while stack:
        node, allowed = stack.pop()
        if arrays["is_leaf"][tree, node]:
            if len(leaves) == 32:
                raise ValueError(f"tree {tree} has more than 32 leaves")
            masks[allowed] |= np.uint32(1 << len(leaves))
            leaves.append(node)
            continue
        position, block = divmod(int(arrays["feature_idx"][tree, node]), N_BLOCKS)
        go_left = np.where(np.arange(N_BLOCKS) == block, 1.0, 0.0) <= arrays["num_threshold"][tree, node]
        left, right = allowed.copy(), allowed.copy()
        left[position] &= go_left
        right[position] &= ~go_left
        stack += [(int(arrays["right"][tree, node]), right), (int(arrays["left"][tree, node]), left)]
    return masks, arrays["value"][tree, leaves].astype(np.float64)


def all_values(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The proxy of all 18^6 strings, float64, in lexicographic order (position 0 most significant).

    Bit-identical to ``lgfn.oracles.seh`` (baseline, then each tree's leaf value
    added in tree order), in about 10 s on one core: strings sharing a first
    block are done together, and a leaf is found by ANDing per-position bit
    masks (``_leaf_masks``) and reading the one set bit off the float32
    exponent (a power of two converts exactly).
    """
    if arrays["feature_idx"][~arrays["is_leaf"].astype(bool)].max() >= N_POSITIONS * N_BLOCKS:
        raise ValueError(f"the trees read features beyond the {N_POSITIONS * N_BLOCKS} of one-hot strings")
    trees = [_leaf_masks(arrays, t) for t in range(arrays["value"].shape[0])]
    block = N_BLOCKS ** (N_POSITIONS - 1)
    out = np.empty(N_BLOCKS**N_POSITIONS, dtype=np.float64)
    for first in range(N_BLOCKS):
        chunk = np.full(block, float(arrays["baseline_prediction"]))
        for masks, values in trees:
            head = (masks[0, first] & masks[1][:, None] & masks[2][None, :]).ravel()
            tail = (masks[3][:, None, None] & masks[4][None, :, None] & masks[5][None, None, :]).ravel()
            leaf = (head[:, None] & tail[None, :]).ravel()
            chunk += values[(leaf.astype(np.float32).view(np.int32) >> 23) - 127]
        out[first * block : (first + 1) * block] = chunk
    return out


def greedy_modes(values: np.ndarray, n: int, min_distance: int = 2) -> np.ndarray:
    """Indices of ``n`` modes: best value first, accept a string at Hamming distance >= ``min_distance``
    from every accepted one. Equal values are taken in ascending string order (the index order: the
    symbols ``0``-``9``, ``a``-``h`` ascend), so the list is fully specified; the proxy's values are exact
    (a fixed float64 sum), and many strings tie (they reach the same leaves).

    This is the rule of ``modes_sehstr_gbr_v2.json``. The earlier ``modes_sehstr_gbr.json`` (v1) broke
    ties in an order that was not recorded; it shares 141 of its 159 strings with v2, and the same
    highest and lowest value.
    """
    k = 1 << 12
    while True:
        threshold = np.partition(values, values.size - k)[values.size - k]
        top = np.flatnonzero(values >= threshold)  # every string above the k-th best: a prefix of the order
        top = top[np.lexsort((top, -values[top]))]
        tokens = (top[:, None] // N_BLOCKS ** np.arange(N_POSITIONS - 1, -1, -1)) % N_BLOCKS
        accepted: list[int] = []
        for i, row in enumerate(tokens):
            if not accepted or ((tokens[accepted] != row).sum(1) >= min_distance).all():
                accepted.append(i)
                if len(accepted) == n:
                    return top[accepted]
        if top.size == values.size:
            raise ValueError(f"only {len(accepted)} strings are {min_distance} substitutions apart")
        k = min(4 * k, values.size)


def _strings(indices: np.ndarray) -> list[str]:
    """Block strings of indices into the lexicographic order of all strings."""
    from lgfn.chem.blocks import SYMBOLS

    digits = (np.asarray(indices)[:, None] // N_BLOCKS ** np.arange(N_POSITIONS - 1, -1, -1)) % N_BLOCKS
    return ["".join(SYMBOLS[d] for d in row) for row in digits]


def _stats(values: np.ndarray, modes: np.ndarray) -> bytes:
    """Range, mean and tail quantiles of the proxy over all strings, and the value of the last mode."""
    argmax = int(values.argmax())
    quantiles = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p99.9": 0.999, "p99.99": 0.9999}
    lowest_mode = float(values[modes[-1]])
    stats = {
        "n": int(values.size),
        "max": float(values[argmax]),
        "argmax": _strings(np.array([argmax]))[0],
        "min": float(values.min()),
        "mean": float(values.mean()),
        "quantiles": dict(zip(quantiles, np.quantile(values, list(quantiles.values())).tolist())),
        "lowest_mode_value": lowest_mode,
        "n_at_least_lowest_mode": int((values >= lowest_mode).sum()),
    }
    return json.dumps(stats, indent=1).encode()


_FROM_ALL_VALUES: dict[str, dict[str, bytes]] = {}
"""Content sha256 of the trees file -> relpath -> bytes, for the last trees file seen: ``fetch seh`` builds
the stats and the modes in one process from one pass over all strings. Only the small outputs are kept,
not the 272 MB of values."""


def _from_all_values(relpath: str, trees: Path) -> bytes:
    """``relpath`` (the stats or the v2 modes) from the proxy over all strings, computed once for both."""
    key = content_sha256(trees, ".npz")
    if key not in _FROM_ALL_VALUES:
        with np.load(trees, allow_pickle=False) as data:
            values = all_values({name: data[name] for name in data.files})
        modes = greedy_modes(values, N_MODES)
        _FROM_ALL_VALUES.clear()
        _FROM_ALL_VALUES[key] = {STATS_FILE: _stats(values, modes), MODES_FILE: json.dumps(_strings(modes)).encode()}
    return _FROM_ALL_VALUES[key][relpath]


@converter(STATS_FILE)
def _stats_json(inputs: list[Path]) -> bytes:
    """The proxy's statistics over all strings (``_stats``)."""
    return _from_all_values(STATS_FILE, inputs[0])


@converter(MODES_FILE)
def _modes_json(inputs: list[Path]) -> bytes:
    """The greedy modes as a JSON list of strings, best first (the v1 file's layout)."""
    return _from_all_values(MODES_FILE, inputs[0])
