"""How a task calls its oracle: one batched call, with the objects it cannot score found and left out.

An oracle maps a batch of objects to one raw reward each: a LongTensor [N, L] of token
indices by default, or the objects' strings or SMILES (``inputs``, see
:func:`lgfn.registry.register_oracle`). It may return a tensor, an array or a list; ``None``
or NaN marks an object it cannot score. An object is *invalid* when the oracle raises on
it, times out on it, or gives a value the reward transform cannot take (NaN, ±inf, and
without ``clip_min`` anything <= 0). Invalid objects get NaN as raw reward, are reported
(one warning line per batch) and are left out of training; ``fail_fast`` raises instead.
"""

from __future__ import annotations

import functools
import logging
import math
import signal
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from lgfn import registry
from lgfn.errors import ConfigError, LgfnError
from lgfn.registry import ORACLE_INPUTS, ComponentSpec

log = logging.getLogger("lgfn.oracles")

MAX_REPORTS = 20  # warning lines per oracle; later invalid objects are only counted (oracle/invalid)


class OracleError(LgfnError):
    """An oracle is unusable, or could not score an object and the task is set to fail fast."""


class OracleTimeout(Exception):
    """An oracle call ran past the task's ``oracle_timeout``."""


def build_oracle(spec: ComponentSpec | Callable[..., Any]) -> tuple[Callable[..., Any], str, str]:
    """(the oracle, what it takes, its name) from a config spec or an already built callable."""
    oracle = registry.build("oracle", spec)
    if isinstance(spec, str):
        name = spec
    elif isinstance(spec, Mapping) and "class_path" in spec:
        name = registry.entry_for_class_path("oracle", spec["class_path"]).name
    elif isinstance(spec, Mapping):
        name = str(spec.get("name"))
    else:
        name = getattr(spec, "__name__", type(spec).__name__)
    if not callable(oracle):
        raise OracleError(f"oracle {name} is not callable; it must map a batch of objects to rewards")
    target = oracle.func if isinstance(oracle, functools.partial) else oracle
    inputs = getattr(target, "lgfn_inputs", getattr(type(target), "lgfn_inputs", "tokens"))
    if inputs not in ORACLE_INPUTS:
        raise OracleError(f"oracle {name}: lgfn_inputs must be one of {', '.join(ORACLE_INPUTS)}, got {inputs!r}")
    return oracle, inputs, name


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise OracleTimeout in the running code after ``seconds`` (SIGALRM: interrupts Python code and
    blocking I/O; a long call inside a C extension is interrupted when it returns to Python)."""
    if seconds is None:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise OracleTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(err: BaseException) -> str:
    if isinstance(err, OracleTimeout):
        return str(err)
    text = str(err).strip().splitlines()
    return f"raised {type(err).__name__}: {text[0][:200]}" if text else f"raised {type(err).__name__}"


class GuardedOracle:
    """Calls an oracle on a whole batch and finds the objects it cannot score.

    The happy path is one call and a few vectorised checks. When a call raises (or times
    out), the batch is split in halves and each half retried, so k bad objects among N cost
    about 2k·log2(N) extra calls and every good object is still scored.

    Args:
        oracle: the callable (see :func:`build_oracle`).
        name: its name, for messages.
        timeout: seconds one call may take (None: no limit). Needs the main thread of a POSIX process.
        fail_fast: raise :class:`OracleError` naming the first invalid object instead of leaving it out.
    """

    def __init__(self, oracle: Callable[..., Any], name: str, timeout: float | None = None,
                 fail_fast: bool = False) -> None:
        if timeout is not None and (timeout <= 0 or not hasattr(signal, "setitimer")):
            raise ConfigError(f"oracle_timeout must be a positive number of seconds on a POSIX system, got {timeout}")
        self.oracle, self.name, self.timeout, self.fail_fast = oracle, name, timeout, fail_fast
        self.reports = 0

    def __call__(self, x: Tensor, inputs: Tensor | Sequence[str], admissible: Callable[[Tensor], Tensor],
                 to_strings: Callable[[Tensor], list[str]]) -> Tensor:
        """Raw rewards float64 [N] of the objects x given to the oracle as ``inputs``, NaN where invalid.

        ``admissible(raw)`` says which raw values the task can use; ``to_strings`` names objects in messages.
        """
        if self.timeout is not None and threading.current_thread() is not threading.main_thread():
            raise ConfigError("oracle_timeout works on the main thread only; unset it to call the oracle from a thread")
        n = len(x)
        raw = torch.full((n,), math.nan, dtype=torch.float64)
        errors: dict[int, str] = {}
        if n:
            self._score(torch.arange(n), inputs, raw, errors)
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

    def _score(self, idx: Tensor, inputs: Tensor | Sequence[str], raw: Tensor, errors: dict[int, str]) -> None:
        """Fill raw[idx]; on an exception, split the batch to find the objects that cause it."""
        part = inputs[idx] if isinstance(inputs, Tensor) else [inputs[i] for i in idx.tolist()]
        try:
            with _deadline(self.timeout):
                out = self.oracle(part)
        except (Exception, SystemExit) as err:  # noqa: BLE001 (any failure of user code marks objects, never the run;
            # sys.exit() in an oracle is a failure too, not a request to end lgfn)
            if len(idx) == 1:
                errors[int(idx[0])] = _one_line(err)
                return
            half = len(idx) // 2
            self._score(idx[:half], inputs, raw, errors)
            self._score(idx[half:], inputs, raw, errors)
            return
        raw[idx] = self._values(out, len(idx))

    def _values(self, out: Any, n: int) -> Tensor:
        """The oracle's output as float64 [n] (None -> NaN); a wrong count is a bug in the oracle, not an object."""
        if isinstance(out, (list, tuple)):
            out = [math.nan if v is None else v for v in out]
        try:
            values = torch.as_tensor(out, dtype=torch.float64).detach().cpu().reshape(-1)
        except (TypeError, ValueError, RuntimeError) as err:
            raise OracleError(f"oracle {self.name} returned {type(out).__name__} that is not a list of numbers "
                             f"({err})") from None
        if len(values) != n:
            raise OracleError(f"oracle {self.name} returned {len(values)} values for {n} objects; "
                             "it must return one reward per object")
        return values

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


def _value_reason(value: float) -> str:
    if math.isnan(value):
        return "returned NaN or None"
    if math.isinf(value):
        return f"returned {value}"
    return f"returned {value:g} (rewards must be > 0 unless the transform sets clip_min)"
