"""RNA binding: fitness equals ViennaRNA's duplex energy over the FLEXS norm; the task's cache and pool change
nothing."""

from __future__ import annotations

import copy
import os
import random

import pytest
import RNA
import torch

from lgfn.oracles import rna
from lgfn.oracles.executors import ProcessExecutor
from lgfn.oracles.rna import RNAOracle, binding_norm, load_modes, load_task, target_sequence
from lgfn.registry import _ENTRIES
from lgfn.tasks.sequence import RNABinding

BEST_MODE = "GGGGGCCCCGCGCG"


def tokens(sequences: list[str]) -> torch.Tensor:
    return torch.tensor([["UCGA".index(c) for c in s] for s in sequences])


def random_sequences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("UCGA") for _ in range(14)) for _ in range(n)]


@pytest.fixture(scope="module")
def oracle() -> RNAOracle:
    return RNAOracle()


def test_targets_and_norm() -> None:
    task = load_task()
    assert target_sequence(1) == task["target"]
    assert [target_sequence(2), target_sequence(3)] == task["other_targets_in_flexs_registry"][:2]
    assert binding_norm(target_sequence(1)) == pytest.approx(-36.414, abs=1e-9)
    assert binding_norm(target_sequence(1)) == pytest.approx(task["norm_value"], abs=1e-9)
    with pytest.raises(ValueError, match="1, 2 or 3"):
        target_sequence(4)


def test_fitness_equals_vienna(oracle: RNAOracle) -> None:
    sequences = [*load_task()["starts"].values(), BEST_MODE]
    direct = [RNA.duplexfold(oracle.target, s).energy / oracle.norm for s in sequences]
    assert oracle(tokens(sequences)).tolist() == direct


def test_best_mode_and_modes(oracle: RNAOracle) -> None:
    modes = load_modes()
    values = oracle(tokens(modes))
    assert len(modes) == 336 and values.dtype == torch.float64
    assert values.max().item() == pytest.approx(1.0545, abs=1e-4)
    assert modes[int(values.argmax())] == BEST_MODE
    assert values.min().item() == pytest.approx(0.6234, abs=1e-4)


def test_other_targets_differ() -> None:
    rna2 = RNAOracle(target=2)
    assert rna2.norm == pytest.approx(binding_norm(target_sequence(2)))
    assert rna2.fitness([BEST_MODE]) == [RNA.duplexfold(target_sequence(2), BEST_MODE).energy / rna2.norm]


def test_the_task_caches_known_sequences(monkeypatch: pytest.MonkeyPatch) -> None:
    task = RNABinding(executor="inline")
    computed: list[str] = []
    real = rna.duplex_energies

    def counting(target: str, sequences: list[str]) -> list[float]:
        computed.extend(sequences)
        return real(target, sequences)

    monkeypatch.setattr(rna, "duplex_energies", counting)
    a, b = random_sequences(2, seed=1)
    first = task.raw_reward(tokens([a, b, a]))
    assert computed == [a, b] and first[0] == first[2]
    assert task.raw_reward(tokens([b, a])).tolist() == [first[1], first[0]] and computed == [a, b]  # no refolding


def test_the_process_pool_gives_in_process_values(oracle: RNAOracle) -> None:
    """RNA's default executor: a pool over the available cores (2 here), values bit-identical to folding here."""
    pooled = RNABinding(executor={"name": "processes", "workers": 2}, cache="none")
    assert isinstance(pooled.oracle_calls.executor, ProcessExecutor)
    assert RNABinding().oracle_calls.executor.slots() == len(os.sched_getaffinity(0))
    x = tokens(random_sequences(200, seed=2))
    x = torch.cat([x, x[:50]])  # repeats within the batch
    assert pooled.raw_reward(x).tolist() == oracle(x).tolist()
    clone = copy.deepcopy(pooled)  # what pickling keeps: everything but the processes
    assert clone.oracle_calls.executor._procs == [] and clone.raw_reward(x[:8]).tolist() == oracle(x[:8]).tolist()
    pooled.oracle_calls.close()
    clone.oracle_calls.close()


def test_input_checks_and_registration(oracle: RNAOracle) -> None:
    with pytest.raises(ValueError, match="shape"):
        oracle(torch.zeros(2, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="0..3"):
        oracle(torch.full((1, 14), -1))
    assert RNAOracle.alphabet == "UCGA" and RNAOracle.length == 14
    for name, target in [("rna", 1), ("rna1", 1), ("rna2", 2), ("rna3", 3)]:
        entry = _ENTRIES["oracle"][name]
        assert entry.load() is RNAOracle and entry.defaults == {"target": target}
