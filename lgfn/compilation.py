"""``model.compile``: the hot functions of a step as compiled programs (``torch.compile``, inductor).

Rollout steps, flow terms with the loss, are pure fixed-shape tensor code (see :mod:`lgfn.sampling.trajectories`
and :func:`lgfn.losses.base.flow_terms`), so each compiles to one graph (``fullgraph=True``: a graph break is
an error, not a silent slowdown). The eager and compiled paths run the same functions.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

_PROGRAMS: dict[Callable[..., Any], Callable[..., Any]] = {}
RECOMPILE_LIMIT = 64


def program(fn: F, compiled: bool) -> F:
    """``fn`` itself, or its compiled program (built once per process; inductor's FX graph cache keeps the
    kernels on disk, so a second run skips most of the compile)."""
    if not compiled:
        return fn
    if fn not in _PROGRAMS:
        # dynamo keeps one program per input shape, module and chunk length, and 8 per function by default: an
        # ensemble's members, a grid's last short chunk, or several models in one process (experiments, tests)
        # need more, and under fullgraph running out is an error, not a fallback
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        _PROGRAMS[fn] = torch.compile(fn, fullgraph=True, dynamic=None)
    return _PROGRAMS[fn]  # type: ignore[return-value]


AUTO_MIN_CPU_STEPS = 20_000
"""``compile: auto`` compiles on a CPU from this many training steps. The compile costs ~30–60 s on one core
(the rollout steps, the loss and its backward; less from inductor's cache) and saves a few ms a step at the
default widths (``benchmarks/step_time.py --compile`` measures both)."""


def choose(setting: bool | str, device: torch.device, total_steps: int | None) -> tuple[bool, str]:
    """Whether to compile this run, and why (one line for the log)."""
    if setting is True or setting is False:
        return setting, "as set"
    if device.type == "cuda":
        return True, "a GPU: compiled programs launch far fewer kernels"
    if total_steps is not None and total_steps >= AUTO_MIN_CPU_STEPS:
        return True, f"{total_steps} steps on a CPU win back the compile time (from {AUTO_MIN_CPU_STEPS})"
    return False, (f"{total_steps} steps on a CPU are too few to win back the compile time "
                   f"(compiles from {AUTO_MIN_CPU_STEPS}; model.compile: true forces it)")
