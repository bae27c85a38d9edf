"""sEH tree proxy: the batched evaluator must equal a plain per-sample walk of the json trees, bit for bit."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from lgfn.taskdata import data_path
from lgfn.oracles.seh import SEHOracle, TreeEnsemble

CHARS = "0123456789abcdefgh"  # fragment i is character CHARS[i]


def tokens(strings: list[str]) -> torch.Tensor:
    return torch.tensor([[CHARS.index(c) for c in s] for s in strings], dtype=torch.long).reshape(-1, 6)


@pytest.fixture(scope="module")
def oracle() -> SEHOracle:
    return SEHOracle()


@pytest.fixture(scope="module")
def model() -> dict:
    with open(data_path("sehstr/sehstr_gbr_trees.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def stats() -> dict:
    with open(data_path("sehstr/sehstr_gbr_stats.json")) as f:
        return json.load(f)


def reference(model: dict, features: list[float]) -> float:
    """The json header's rule, one sample and one node at a time."""
    total = model["baseline_prediction"]
    for tree in model["trees"]:
        node = 0
        while not tree["is_leaf"][node]:
            v = features[tree["feature_idx"][node]]
            go_left = tree["missing_go_to_left"][node] if math.isnan(v) else v <= tree["num_threshold"][node]
            node = tree["left"][node] if go_left else tree["right"][node]
        total += tree["value"][node]
    return total


def one_hot(string: str, chars: str) -> list[float]:
    x = [0.0] * (6 * 18)
    for pos, c in enumerate(string):
        x[pos * 18 + chars.index(c)] = 1.0
    return x


def test_matches_reference_exactly(oracle: SEHOracle, model: dict) -> None:
    rng = random.Random(0)
    strings = ["".join(rng.choice(oracle.chars) for _ in range(6)) for _ in range(5000)]  # > 2 chunks
    best = "ag550c"
    strings += [best[:i] + c + best[i + 1 :] for i in range(6) for c in oracle.chars]  # every token at every position
    strings += oracle.modes() + ["000000", "hhhhhh"]
    got = oracle(tokens(strings)).tolist()
    want = [reference(model, one_hot(s, oracle.chars)) for s in strings]
    assert got == want
    # no batch-dependent rounding: one at a time gives the same bits
    assert [oracle(tokens([s])).item() for s in strings[:10]] == got[:10]


def test_tables_are_small(oracle: SEHOracle) -> None:
    """A tree tests at most 30 blocks, so its table has at most 6^6 cells, not 18^6."""
    assert oracle.trees.values.size == 524_886 and oracle.trees.head.shape == (100, 18**3)


def test_maximum_and_argmax(oracle: SEHOracle, stats: dict) -> None:
    best = stats["argmax"]
    assert oracle(tokens([best])).item() == stats["max"] == 7.033253064721926
    neighbours = [best[:i] + c + best[i + 1 :] for i in range(6) for c in oracle.chars if c != best[i]]
    assert len(neighbours) == 102
    assert oracle(tokens(neighbours)).max().item() < stats["max"]


def test_modes(oracle: SEHOracle, stats: dict) -> None:
    modes = oracle.modes()
    assert len(modes) == 159 and modes[0] == stats["argmax"]
    values = oracle(tokens(modes))
    assert bool((values >= 6.852).all()) and bool((values <= 7.0333).all())
    assert values.min().item() == stats["lowest_mode_value"]
    assert bool((values[:-1] >= values[1:]).all())  # accepted best first
    rows = tokens(modes)
    hamming = (rows[:, None, :] != rows[None, :, :]).sum(-1)
    assert int(hamming[~torch.eye(159, dtype=torch.bool)].min()) >= 2


def test_random_batch_in_range(oracle: SEHOracle, stats: dict) -> None:
    x = torch.randint(0, 18, (2000, 6), generator=torch.Generator().manual_seed(1))
    values = oracle(x)
    assert values.dtype == torch.float64 and values.shape == (2000,)
    assert stats["min"] <= values.min().item() and values.max().item() <= stats["max"]
    assert abs(float(np.median(values.numpy())) - stats["quantiles"]["p50"]) < 0.1


def test_rejects_bad_tokens(oracle: SEHOracle) -> None:
    with pytest.raises(ValueError):
        oracle(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError):
        oracle(torch.full((2, 6), 18, dtype=torch.long))
    with pytest.raises(ValueError):
        TreeEnsemble({"is_categorical": np.ones((1, 1), dtype=np.uint8)})
    with pytest.raises(ValueError, match="beyond"):
        TreeEnsemble({"is_categorical": np.zeros((1, 1)), "is_leaf": np.zeros((1, 1)),
                      "feature_idx": np.full((1, 1), 108)})


def test_registered() -> None:
    registry = pytest.importorskip("lgfn.registry")
    pytest.importorskip("lgfn.components")  # the registry imports the built-ins from here
    assert isinstance(registry.build("oracle", "seh"), SEHOracle)
