"""One oracle call on a batch, with the objects it cannot score found by bisection: the part of
:mod:`lgfn.oracles.base` that runs wherever the oracle runs (in the training process, a pool process or a
Ray actor). It imports only numpy, so a spawned worker starts fast; torch comes in with tensor inputs.
"""

from __future__ import annotations

import functools
import math
import signal
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from lgfn.errors import LgfnError


class OracleError(LgfnError):
    """An oracle is unusable, or could not score an object and the task is set to fail fast."""


class OracleTimeout(Exception):
    """An oracle call ran past the task's ``oracle_timeout``."""


class OracleFactory:
    """What builds an oracle, picklable by reference: a registered class and its arguments, a registered function
    and the arguments bound to it, or an oracle already built. Sent to each worker, which builds the oracle once
    (a stateful oracle loads its model once per worker, not once per call)."""

    def __init__(self, target: Any, kwargs: Mapping[str, Any] | None = None, built: bool = False) -> None:
        self.target, self.kwargs, self.built = target, dict(kwargs or {}), built

    def build(self) -> Callable[..., Any]:
        if self.built:
            return self.target
        if getattr(self.target, "lgfn_bind_args", False):
            return functools.partial(self.target, **self.kwargs) if self.kwargs else self.target
        return self.target(**self.kwargs)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
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


def one_line(err: BaseException) -> str:
    if isinstance(err, OracleTimeout):
        return str(err)
    text = str(err).strip().splitlines()
    return f"raised {type(err).__name__}: {text[0][:200]}" if text else f"raised {type(err).__name__}"


def score_batch(oracle: Callable[..., Any], inputs: Any, name: str,
                timeout: float | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """(raw values float64 [N], {index: why} for the objects whose call raised) of one batch.

    The happy path is one call. When a call raises (or times out), the batch is split in halves and each half
    retried, so k bad objects among N cost about 2k·log2(N) extra calls and every good object is still scored.
    """
    n = len(inputs)
    raw = np.full(n, math.nan)
    errors: dict[int, str] = {}
    if n:
        _score(oracle, inputs, list(range(n)), raw, errors, name, timeout)
    return raw, errors


def _score(oracle: Callable[..., Any], inputs: Any, idx: list[int], raw: np.ndarray, errors: dict[int, str],
           name: str, timeout: float | None) -> None:
    part = inputs[idx] if hasattr(inputs, "shape") else [inputs[i] for i in idx]
    try:
        with deadline(timeout):
            out = oracle(part)
    except (Exception, SystemExit) as err:  # noqa: BLE001 (any failure of user code marks objects, never the run;
        # sys.exit() in an oracle is a failure too, not a request to end lgfn)
        if len(idx) == 1:
            errors[idx[0]] = one_line(err)
            return
        half = len(idx) // 2
        _score(oracle, inputs, idx[:half], raw, errors, name, timeout)
        _score(oracle, inputs, idx[half:], raw, errors, name, timeout)
        return
    raw[idx] = values_of(out, len(idx), name)


def values_of(out: Any, n: int, name: str) -> np.ndarray:
    """The oracle's output as float64 [n] (None -> NaN); a wrong count is a bug in the oracle, not an object."""
    if hasattr(out, "detach"):  # a torch tensor, on any device
        out = out.detach().cpu().numpy()
    if isinstance(out, (list, tuple)):
        out = [math.nan if v is None else v for v in out]
    try:
        values = np.asarray(out, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise OracleError(f"oracle {name} returned {type(out).__name__} that is not a list of numbers "
                          f"({err})") from None
    if len(values) != n:
        raise OracleError(f"oracle {name} returned {len(values)} values for {n} objects; "
                          "it must return one reward per object")
    return values
