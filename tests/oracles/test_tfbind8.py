"""TFBind8: the table, the oracle's lookup, modes and the offline set match the data README and upstream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgfn.taskdata import data_path, safe_load_pickle
from lgfn.oracles.tfbind8 import TFBind8Oracle, load_modes, load_table, offline_train_set
from lgfn.registry import _ENTRIES


@pytest.fixture(scope="module")
def oracle() -> TFBind8Oracle:
    return TFBind8Oracle()


def test_table_matches_readme() -> None:
    x, y = load_table()
    assert x.shape == (65536, 8) and y.shape == (65536,)
    assert x[1].tolist() == [0, 0, 0, 0, 0, 0, 0, 1] and x[-1].tolist() == [3] * 8
    assert y.min() == 0 and y.max() == 1
    p50, p90, p99 = np.quantile(y, [0.5, 0.9, 0.99])
    assert p50 == pytest.approx(0.439, abs=5e-4)
    assert p90 == pytest.approx(0.717, abs=5e-4)
    assert p99 == pytest.approx(0.920, abs=5e-4)


def test_oracle_is_the_table(oracle: TFBind8Oracle) -> None:
    x, y = load_table()
    rewards = oracle(torch.from_numpy(x))
    assert rewards.dtype == torch.float64 and rewards.shape == (65536,)
    np.testing.assert_array_equal(rewards.numpy(), y.astype(np.float64))
    # position 0 is the most significant digit: AAAAAAAC is row 1, CAAAAAAA row 4^7
    tokens = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0]])
    assert oracle(tokens).tolist() == [float(y[1]), float(y[4**7])]


def test_oracle_rejects_bad_input(oracle: TFBind8Oracle) -> None:
    with pytest.raises(ValueError, match="shape"):
        oracle(torch.zeros(3, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="0..3"):
        oracle(torch.full((1, 8), 4))


def test_alphabet_and_registration() -> None:
    assert TFBind8Oracle.alphabet == "ACGT" and TFBind8Oracle.length == 8
    assert _ENTRIES["oracle"]["tfbind8"].load() is TFBind8Oracle


def test_modes_match_readme(oracle: TFBind8Oracle) -> None:
    modes = load_modes()
    assert len(modes) == 328 and len(set(modes)) == 328
    assert all(len(m) == 8 and set(m) <= set("ACGT") for m in modes)
    tokens = torch.tensor([["ACGT".index(c) for c in m] for m in modes])
    assert oracle(tokens).min().item() == pytest.approx(0.88920, abs=1e-5)
    distances = (tokens[:, None, :] != tokens[None, :, :]).sum(-1)
    assert (distances + 8 * torch.eye(len(modes), dtype=torch.long)).min() >= 2


def test_offline_set_reproduces_upstream_train_split() -> None:
    x, y = offline_train_set()
    upstream = safe_load_pickle(data_path("tfbind8/tfbind8-exact-v0-train.pkl"))
    np.testing.assert_array_equal(x, upstream["x"])
    np.testing.assert_array_equal(y, upstream["y"][:, 0])
    assert x.shape == (32898, 8) and y.max() == np.float32(0.43929616)
    palindromes = (x == 3 - x[:, ::-1]).all(axis=1)
    assert palindromes.sum() == 2 * 130


def test_unique_offline_set_is_bottom_half_of_table() -> None:
    x, y = offline_train_set(unique=True)
    table_x, table_y = load_table()
    keep = table_y <= np.median(table_y)
    assert x.shape == (32768, 8)
    np.testing.assert_array_equal(x, table_x[keep])
    np.testing.assert_array_equal(y, table_y[keep])
