"""Calling oracles: batched on the happy path, faulty objects found, reported and left out, or fail fast."""

import logging
import math
import time

import pytest
import torch

from lgfn.oracles.base import GuardedOracle, OracleError, oracle_factory
from lgfn.registry import RegistryError, register_oracle
from lgfn.tasks.base import RewardTransform

STRICT = RewardTransform()  # no clip_min: rewards must be > 0
CLIPPED = RewardTransform(clip_min=1e-3)


def names(x: torch.Tensor) -> list[str]:
    return [f"obj{int(v)}" for v in x[:, 0]]


class Recorder:
    """Tokens [N, 1] -> reward 1 + token; raises on tokens in ``bad``; records every batch it gets."""

    def __init__(self, bad: set[int] = frozenset(), values: dict[int, float] | None = None) -> None:
        self.bad, self.values, self.calls = bad, values or {}, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x[:, 0].tolist()
        self.calls.append(tokens)
        if self.bad & set(tokens):
            raise ValueError(f"cannot score {sorted(self.bad & set(tokens))}\nsecond line")
        return torch.tensor([self.values.get(t, 1.0 + t) for t in tokens], dtype=torch.float64)


def run(oracle, n=32, transform=STRICT, **kw) -> torch.Tensor:
    x = torch.arange(n)[:, None]
    return GuardedOracle(oracle, "rec", **kw)(x, x, transform.admissible, names)


def test_happy_path_is_one_batched_call():
    rec = Recorder()
    raw = run(rec)
    assert rec.calls == [list(range(32))]
    torch.testing.assert_close(raw, 1.0 + torch.arange(32, dtype=torch.float64))


def test_raising_objects_are_found_by_bisection_and_left_out(caplog):
    rec = Recorder(bad={5, 20})
    with caplog.at_level(logging.WARNING, logger="lgfn.oracles"):
        raw = run(rec)
    assert torch.isnan(raw[[5, 20]]).all()
    keep = torch.ones(32, dtype=torch.bool)
    keep[[5, 20]] = False
    torch.testing.assert_close(raw[keep], 1.0 + torch.arange(32, dtype=torch.float64)[keep])
    assert len(rec.calls) <= 1 + 2 * 2 * math.ceil(math.log2(32))  # O(k log N) calls, not one per object
    assert sum(len(c) for c in rec.calls if len(c) == 1) <= 4
    [line] = [r.getMessage() for r in caplog.records]
    assert "2 of 32 objects left out" in line and "raised ValueError: cannot score" in line and "obj5" in line
    assert "second line" not in line


def test_nan_none_inf_and_nonpositive_values_are_invalid_unless_clipped():
    values = {1: math.nan, 2: math.inf, 3: -0.5, 4: 0.0}
    raw = run(Recorder(values=values), n=8)
    assert torch.isnan(raw[1:5]).all() and torch.isfinite(raw[[0, 5, 6, 7]]).all()
    raw = run(Recorder(values=values), n=8, transform=CLIPPED)  # clip_min clips -0.5 and 0 (as seh does)
    assert torch.isnan(raw[1:3]).all() and raw[3] == -0.5 and raw[4] == 0.0
    raw = run(lambda x: [None if int(t) == 2 else 1.0 for t in x[:, 0]], n=4)
    assert torch.isnan(raw[2]) and int(torch.isfinite(raw).sum()) == 3


def test_fail_fast_names_the_object_in_one_line():
    with pytest.raises(OracleError) as err:
        run(Recorder(bad={7}), fail_fast=True)
    msg = str(err.value)
    assert "\n" not in msg and "'obj7'" in msg and "raised ValueError" in msg and "fail_fast" in msg
    with pytest.raises(OracleError, match="returned -0.5 .*'obj3'"):
        run(Recorder(values={3: -0.5}), fail_fast=True)


def test_timeout_leaves_out_the_slow_object():
    def slow(x):
        if 3 in x[:, 0].tolist():
            time.sleep(5)
        return torch.ones(len(x))

    start = time.perf_counter()
    raw = run(slow, n=4, timeout=0.2)
    assert time.perf_counter() - start < 2.0
    assert torch.isnan(raw[3]) and torch.isfinite(raw[:3]).all()
    with pytest.raises(OracleError, match=r"timed out after 0.2 s on object 'obj3'"):
        run(slow, n=4, timeout=0.2, fail_fast=True)


def test_a_wrong_number_of_values_is_a_bug_not_an_invalid_object():
    with pytest.raises(OracleError, match="returned 3 values for 4 objects"):
        run(lambda x: [1.0, 2.0, 3.0], n=4)


def test_functions_and_classes_are_oracles_with_config_arguments():
    @register_oracle("test_base_scaled", inputs="strings")
    def scaled(strings, factor=1.0):
        return [factor * len(s) for s in strings]

    factory, inputs, name, _ = oracle_factory({"name": "test_base_scaled", "factor": 2.0})
    assert inputs == "strings" and name == "test_base_scaled" and factory.build()(["ab", "abc"]) == [4.0, 6.0]
    with pytest.raises(RegistryError, match="unknown argument.*factr"):
        oracle_factory({"name": "test_base_scaled", "factr": 2.0})

    @register_oracle("test_base_class")
    class Offset:
        def __init__(self, offset: float = 0.0) -> None:
            self.offset = offset

        def __call__(self, x):
            return x.sum(1).double() + self.offset

    factory, inputs, _, settings = oracle_factory({"name": "test_base_class", "offset": 1.0})
    assert settings == 'test_base_class {"offset": 1.0}'
    assert inputs == "tokens" and factory.build()(torch.ones(2, 3, dtype=torch.long)).tolist() == [4.0, 4.0]
    with pytest.raises(RegistryError, match="inputs must be one of tokens, strings, smiles"):
        register_oracle("test_base_bad", inputs="string")
