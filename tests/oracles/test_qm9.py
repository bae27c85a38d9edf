"""qm9str oracle: an exact lookup in the published table, indexed by the string's base-11 value."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lgfn.chem import canonical_smiles
from lgfn.taskdata import data_path
from lgfn.taskdata.block_sets import block_set
from lgfn.oracles.qm9 import QM9Oracle

CHARS = "0123456789a"  # block i is character CHARS[i]


def tokens(strings: list[str]) -> torch.Tensor:
    return torch.tensor([[CHARS.index(c) for c in s] for s in strings], dtype=torch.long).reshape(-1, 5)


@pytest.fixture(scope="module")
def oracle() -> QM9Oracle:
    return QM9Oracle()


@pytest.fixture(scope="module")
def table() -> dict[str, np.ndarray]:
    with np.load(data_path("qm9str/qm9str_s5.npz"), allow_pickle=False) as data:
        return {k: data[k] for k in ("x", "r")}


def test_table_is_lexicographic(oracle: QM9Oracle, table: dict[str, np.ndarray]) -> None:
    every = ["".join(p) for p in itertools.product(oracle.chars, repeat=5)]
    assert table["x"].tolist() == every


def test_every_string_matches_table(oracle: QM9Oracle, table: dict[str, np.ndarray]) -> None:
    rows = tokens(table["x"].tolist())
    reward = oracle(rows)
    assert reward.dtype == torch.float64 and reward.shape == (161_051,)
    assert torch.equal(reward, torch.from_numpy(table["r"].astype(np.float64)))
    assert torch.equal(oracle.index(rows), torch.arange(161_051))


def test_known_values(oracle: QM9Oracle) -> None:
    reward = oracle(tokens(["11111", "00000"]))
    assert reward[0].item() == pytest.approx(17.37, abs=0.01)  # the README's maximum
    assert reward[0].item() == float(np.float32(reward[0].item()))  # float32 table, widened exactly
    assert reward[1].item() == pytest.approx(8.5926, abs=1e-4)


def test_modes(oracle: QM9Oracle) -> None:
    modes = oracle.modes()
    assert len(modes) == 364 and len(set(modes)) == 364
    rows = tokens(modes)
    reward = oracle(rows)
    assert 9.13 <= reward.min().item() and reward.max().item() <= 12.58
    table = np.load(data_path("qm9str/qm9str_s5.npz"), allow_pickle=False)
    smiles = table["smiles"][oracle.index(rows).numpy()].tolist()  # the table's SMILES = lgfn's one SMILES path
    assert len(set(smiles)) == 198
    assert smiles == canonical_smiles(modes, blocks=block_set("qm9"))


def test_rejects_bad_tokens(oracle: QM9Oracle) -> None:
    with pytest.raises(ValueError):
        oracle(torch.zeros(3, 6, dtype=torch.long))
    with pytest.raises(ValueError):
        oracle(torch.full((3, 5), 11, dtype=torch.long))
    with pytest.raises(ValueError):
        oracle(torch.zeros(3, 5))
    assert oracle(torch.zeros(0, 5, dtype=torch.long)).shape == (0,)


def test_registered() -> None:
    registry = pytest.importorskip("lgfn.registry")
    pytest.importorskip("lgfn.components")  # the registry imports the built-ins from here
    assert isinstance(registry.build("oracle", "qm9"), QM9Oracle)
