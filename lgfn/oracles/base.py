"""How a task calls its oracle: one batched call, with the objects it cannot score found and left out.

An oracle maps a batch of objects to one raw reward each: a LongTensor [N, L] of token
indices by default, or the objects' strings or SMILES (``inputs``, see
:func:`lgfn.registry.register_oracle`). It may return a tensor, an array or a list; ``None``
or NaN marks an object it cannot score. An object is *invalid* when the oracle raises on
it, times out on it, or gives a value the reward transform cannot take (NaN, ±inf, and
without ``clip_min`` anything <= 0). Invalid objects get NaN as raw reward, are reported
(one warning line per batch) and are left out of training; ``fail_fast`` raises instead.

Where the oracle runs (in this process, on local processes or on Ray) is the task's executor
(:mod:`lgfn.oracles.executors`); what it remembers, its cache (:mod:`lgfn.oracles.cache`).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import signal
import threading
import time
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from lgfn import registry
from lgfn.errors import ConfigError
from lgfn.oracles.cache import MemoryCache, SqliteCache
from lgfn.oracles.calls import OracleError, OracleFactory
from lgfn.oracles.executors import Executor, InlineExecutor
from lgfn.registry import ORACLE_INPUTS, ComponentSpec

__all__ = ["GuardedOracle", "OracleError", "oracle_factory"]

log = logging.getLogger("lgfn.oracles")

MAX_REPORTS = 20  # warning lines per oracle; later invalid objects are only counted (oracle/invalid)


def oracle_factory(spec: ComponentSpec | Callable[..., Any]) -> tuple[OracleFactory, str, str, str]:
    """(what builds the oracle, what it takes, its name, its settings as a cache namespace) from a config spec or
    an already built callable. Nothing is built here: a pool builds the oracle in its workers only."""
    if isinstance(spec, (str, Mapping)):
        target, kwargs = registry.split_spec("oracle", spec)
        registry.check_arguments("oracle", target, kwargs)
        factory = OracleFactory(target, kwargs)
    else:
        target, kwargs = spec, {}
        factory = OracleFactory(spec, built=True)
    if isinstance(spec, str):
        name = spec
    elif isinstance(spec, Mapping) and "class_path" in spec:
        name = registry.entry_for_class_path("oracle", spec["class_path"]).name
    elif isinstance(spec, Mapping):
        name = str(spec.get("name"))
    else:
        name = getattr(spec, "__name__", type(spec).__name__)
    instances_callable = not inspect.isclass(target) or any("__call__" in vars(k) for k in target.__mro__[:-1])
    if not callable(target) or not instances_callable:
        raise OracleError(f"oracle {name} is not callable; it must map a batch of objects to rewards")
    base = target.func if isinstance(target, functools.partial) else target
    inputs = getattr(base, "lgfn_inputs", getattr(type(base), "lgfn_inputs", "tokens"))
    if inputs not in ORACLE_INPUTS:
        raise OracleError(f"oracle {name}: lgfn_inputs must be one of {', '.join(ORACLE_INPUTS)}, got {inputs!r}")
    namespace = f"{name} {json.dumps(kwargs, sort_keys=True, default=str)}"
    return factory, inputs, name, namespace


class GuardedOracle:
    """Calls an oracle on a whole batch through its executor, and finds the objects it cannot score.

    The happy path is one call per part (see :mod:`lgfn.oracles.executors`) and a few vectorised checks.
    When a call raises, its part is split in halves and each half retried (:func:`lgfn.oracles.calls.score_batch`).
    With a cache, known objects are not scored again and each new object is scored once per batch.

    Args:
        oracle: the callable, or what builds it (see :func:`oracle_factory`).
        name: its name, for messages.
        timeout: seconds one call may take (None: no limit). Inline, it needs the main thread of a POSIX process.
        fail_fast: raise :class:`OracleError` naming the first invalid object instead of leaving it out.
        executor: where the oracle runs (default: inline).
        cache: values remembered by object string (default: none).
    """

    def __init__(self, oracle: Callable[..., Any] | OracleFactory, name: str, timeout: float | None = None,
                 fail_fast: bool = False, executor: Executor | None = None,
                 cache: MemoryCache | SqliteCache | None = None) -> None:
        if timeout is not None and (timeout <= 0 or not hasattr(signal, "setitimer")):
            raise ConfigError(f"oracle_timeout must be a positive number of seconds on a POSIX system, got {timeout}")
        self.factory = oracle if isinstance(oracle, OracleFactory) else OracleFactory(oracle, built=True)
        self.name, self.timeout, self.fail_fast = name, timeout, fail_fast
        self.executor = executor or InlineExecutor()
        self.cache = cache
        self.reports = 0
        self.seconds = 0.0  # wall time in oracle calls (the run summary reports its share)
        self.scored = 0  # objects sent to the oracle (cache hits are not)

    @property
    def oracle(self) -> Callable[..., Any]:
        """The oracle built in this process (inline it is the one that scores; a pool builds its own)."""
        if isinstance(self.executor, InlineExecutor):
            return self.executor.oracle(self.factory)
        if not hasattr(self, "_local"):
            self._local = self.factory.build()
        return self._local

    def __call__(self, x: Tensor, inputs: Tensor | Sequence[str], admissible: Callable[[Tensor], Tensor],
                 to_strings: Callable[[Tensor], list[str]]) -> Tensor:
        """Raw rewards float64 [N] of the objects x given to the oracle as ``inputs``, NaN where invalid.

        ``admissible(raw)`` says which raw values the task can use; ``to_strings`` names objects in messages
        and keys the cache.
        """
        inline = isinstance(self.executor, InlineExecutor)
        if inline and self.timeout is not None and threading.current_thread() is not threading.main_thread():
            raise ConfigError("oracle_timeout on the inline executor works on the main thread only (not with "
                              "data.max_pending_rounds > 0); use executor: processes, or unset oracle_timeout")
        n = len(x)
        raw = torch.full((n,), math.nan, dtype=torch.float64)
        errors: dict[int, str] = {}
        if n:
            self._fill(x, inputs, to_strings, raw, errors)
        bad = ~admissible(raw)
        if not bool(bad.any()):
            return raw
        reasons = [errors.get(i) or _value_reason(float(raw[i])) for i in bad.nonzero().squeeze(1).tolist()]
        bad_idx = bad.nonzero().squeeze(1)
        if self.fail_fast:
            first = to_strings(x[bad_idx[:1]])[0]
            raise OracleError(f"oracle {self.name} {reasons[0]} on object {first!r} (fail_fast is set; "
                              "set fail_fast: false to leave such objects out of training)")
        raw[bad] = math.nan
        self._report(n, reasons, bad_idx, to_strings, x)
        return raw

    def _fill(self, x: Tensor, inputs: Tensor | Sequence[str], to_strings: Callable[[Tensor], list[str]],
              raw: Tensor, errors: dict[int, str]) -> None:
        """Fill raw (and errors) from the cache, then from the executor for the objects it does not know."""
        n = len(x)
        if self.cache is None:
            todo = list(range(n))
        else:
            keys = to_strings(x)
            known = self.cache.get(keys)
            first: dict[str, int] = {}
            for i, key in enumerate(keys):
                if key in known:
                    raw[i] = known[key]
                else:
                    first.setdefault(key, i)
            todo = list(first.values())
        if not todo:
            return
        values, found = self._run(_select(inputs, todo) if len(todo) < n else inputs)
        raw[todo] = torch.from_numpy(values)
        errors.update((todo[j], why) for j, why in found.items())
        if self.cache is not None:
            self.cache.put({keys[todo[j]]: float(values[j]) for j in range(len(todo)) if j not in found})
            for i, key in enumerate(keys):  # repeats of a new object within the batch
                if key in first and first[key] != i:
                    raw[i] = raw[first[key]]
                    if first[key] in errors:
                        errors[i] = errors[first[key]]

    def _run(self, inputs: Tensor | Sequence[str]) -> tuple[np.ndarray, dict[int, str]]:
        """Values and errors of the objects ``inputs``, scored in parts by the executor."""
        start = time.perf_counter()
        n = len(inputs)
        size = self.executor.part_size(n)
        bounds = [(lo, min(lo + size, n)) for lo in range(0, n, size)]
        # a part of a tensor is copied, or pickling it to a worker would send the whole batch
        parts = [inputs] if len(bounds) == 1 else [_copy(inputs[lo:hi]) for lo, hi in bounds]
        outcomes = self.executor.run(self.factory, parts, self.name, self.timeout)
        values = np.full(n, math.nan)
        errors: dict[int, str] = {}
        for (lo, hi), outcome in zip(bounds, outcomes):
            if outcome.lost is not None:
                errors.update((i, outcome.lost) for i in range(lo, hi))
                continue
            values[lo:hi] = outcome.values
            errors.update((lo + j, why) for j, why in outcome.errors.items())
        self.seconds += time.perf_counter() - start
        self.scored += n
        return values, errors

    def close(self) -> None:
        """Stop the executor's workers."""
        self.executor.close()

    def _report(self, n: int, reasons: list[str], bad_idx: Tensor, to_strings: Callable[[Tensor], list[str]],
                x: Tensor) -> None:
        """One warning line per batch: how many objects were left out, why, and an example of each reason."""
        self.reports += 1
        if self.reports > MAX_REPORTS:
            return
        counts = Counter(reasons)
        first: dict[str, int] = {}
        for i, reason in enumerate(reasons):
            first.setdefault(reason, i)
        example = dict(zip(first, to_strings(x[bad_idx[list(first.values())]])))
        parts = "; ".join(f"{c} {r} (e.g. {example[r]!r})" for r, c in counts.most_common())
        tail = " (further reports only in the oracle/invalid metric)" if self.reports == MAX_REPORTS else ""
        log.warning("oracle %s: %d of %d objects left out of training: %s%s", self.name, len(reasons), n, parts, tail)


def _copy(part: Tensor | Sequence[str]) -> Tensor | Sequence[str]:
    return part.clone() if isinstance(part, Tensor) else part


def _select(inputs: Tensor | Sequence[str], idx: list[int]) -> Tensor | list[str]:
    return inputs[torch.tensor(idx)] if isinstance(inputs, Tensor) else [inputs[i] for i in idx]


def _value_reason(value: float) -> str:
    if math.isnan(value):
        return "returned NaN or None"
    if math.isinf(value):
        return f"returned {value}"
    return f"returned {value:g} (rewards must be > 0 unless the transform sets clip_min)"
