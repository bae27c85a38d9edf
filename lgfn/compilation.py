"""``model.compile``: the hot functions of a step as compiled programs (``torch.compile``, inductor).

Rollout steps, flow terms with the loss, are pure fixed-shape tensor code (see :mod:`lgfn.sampling.trajectories`
and :func:`lgfn.losses.base.flow_terms`), so each compiles to one graph (``fullgraph=True``: a graph break is
an error, not a silent slowdown). The eager and compiled paths run the same functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("lgfn")

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
"""``compile: auto`` compiles on a CPU from this many training steps, whatever the cache holds. A cold compile
costs ~1–2 min of CPU (the rollout steps, the loss and its backward, local search's walk) and saves a few ms a
step at the default widths (``benchmarks/step_time.py --compile`` measures both)."""

AUTO_MIN_CACHED_CPU_STEPS = 1_000
"""``compile: auto`` compiles a shorter CPU run from this many steps when the same programs were compiled before
(:func:`remember`): inductor's on-disk cache then turns the compile into seconds of tracing. The default
TFBind8 run (2,000 steps) takes 33–36 s against 49–62 s eager; the grid's (3,000 small steps) 24 s against
25 s (README "Performance")."""

_KEY_IGNORES = frozenset({"round", "rounds", "seed", "compile"})
"""Settings that change neither a compiled program nor its input shapes: the run's length, its seeds, its state."""


def _scalars(obj: object, prefix: str = "") -> dict[str, object]:
    """The public scalar settings of ``obj`` and, one level down, of the lgfn components it holds (local search:
    its iterations and walk lengths set the programs' shapes)."""
    out: dict[str, object] = {}
    for name, value in sorted(vars(obj).items()):
        if name.startswith("_") or name in _KEY_IGNORES or name.startswith("lr_"):
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            out[prefix + name] = value
        elif not prefix and type(value).__module__.startswith("lgfn.") and hasattr(value, "__dict__"):
            out.update(_scalars(value, f"{name}."))
    return out


def _source_digest() -> str:
    """lgfn's own code: a changed function traces to a different program."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def programs_key(hparams: Mapping[str, Any], data: object | None, device: torch.device, precision: str) -> str:
    """What a run compiles, as a name: lgfn's code, torch's version, the device and precision, and every model
    and data setting that is not a learning rate, a seed or the run's length (a key too narrow only misses the
    cache)."""
    model = {k: v for k, v in hparams.items() if k not in _KEY_IGNORES and not k.startswith("lr_")}
    parts = {"lgfn": _source_digest(), "torch": torch.__version__, "device": device.type, "precision": precision,
             "model": model,
             "data": [type(data).__qualname__, _scalars(data)] if data is not None else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:24]


def _marker(key: str) -> Path:
    from lgfn.taskdata.files import cache_dir

    return cache_dir() / "compiled" / f"{key}.json"


def _inductor_cache() -> str | None:
    """inductor's on-disk cache folder, or None when its FX graph cache is off (nothing would be kept)."""
    from torch._inductor import config
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return cache_dir() if config.fx_graph_cache else None


def is_cached(key: str) -> bool:
    """Whether a run with these programs compiled before (:func:`remember`), into the cache inductor uses now."""
    folder = _inductor_cache()
    try:
        kept = json.loads(_marker(key).read_text()).get("inductor_cache")
    except (OSError, ValueError, AttributeError):  # none yet, or unreadable: a cache miss, never an error
        return False
    return folder is not None and kept == folder and Path(folder).is_dir()


def remember(key: str) -> None:
    """Note that this run's programs are now in inductor's cache, for ``compile: auto`` in later runs. A cache
    that cannot be written costs later runs the compile, not this one its result: a warning, no error."""
    from lgfn.io import write_bytes

    folder = _inductor_cache()
    if folder is None:
        return
    try:
        write_bytes(_marker(key), json.dumps({"inductor_cache": folder, "torch": torch.__version__}).encode())
    except OSError as err:
        log.warning("could not note the compiled programs in %s (%s): later runs with model.compile: auto stay eager",
                    _marker(key).parent, err)


def choose(setting: bool | str, device: torch.device, total_steps: int | None,
           cached: bool = False) -> tuple[bool, str]:
    """Whether to compile this run, and why (one line for the log). ``cached``: :func:`is_cached` for its key."""
    if setting is True or setting is False:
        return setting, "as set"
    if device.type == "cuda":
        return True, "a GPU: compiled programs launch far fewer kernels"
    if total_steps is not None and total_steps >= AUTO_MIN_CPU_STEPS:
        return True, f"{total_steps} steps on a CPU win back the compile time (from {AUTO_MIN_CPU_STEPS})"
    if cached and total_steps is not None and total_steps >= AUTO_MIN_CACHED_CPU_STEPS:
        return True, (f"these programs were compiled before and inductor's cache holds them: {total_steps} steps "
                      f"on a CPU win back the tracing (from {AUTO_MIN_CACHED_CPU_STEPS} when cached)")
    hint = ("" if cached else f"; from {AUTO_MIN_CACHED_CPU_STEPS} once a run with model.compile: true has "
            "cached these programs")
    return False, (f"{total_steps} steps on a CPU are too few to win back the compile time "
                   f"(compiles from {AUTO_MIN_CPU_STEPS}{hint}; model.compile: true forces it)")
