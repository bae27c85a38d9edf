"""Settings checked before anything is built, in one place: each check names the setting as a user writes it
(``model.hidden_dim``, ``data.rounds``), its value and what is valid."""

from __future__ import annotations

import math
from typing import Any

import torch

from lgfn import components, registry
from lgfn.errors import ConfigError


def positive(value: Any) -> bool:
    """A positive finite number (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


FLOAT32 = torch.finfo(torch.float32)


def beta_value(value: Any) -> bool:
    """A β the float32 policy can hold: positive, finite, and neither overflowing nor vanishing in float32."""
    return positive(value) and FLOAT32.tiny <= value <= FLOAT32.max


def check_counts(prefix: str, **counts: Any) -> None:
    """Each named setting is an integer >= 1, or a one-line error naming it."""
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{prefix}.{key} = {value!r}: must be an integer >= 1")


def build_component(kind: str, spec: Any, key: str) -> Any:
    """A component built from its spec; an error names the setting it came from."""
    components.load()
    try:
        return registry.build(kind, spec)
    except (ConfigError, registry.RegistryError) as err:
        raise ConfigError(f"{key}: {err}") from None


def check_model_settings(**args: Any) -> dict[str, Any]:
    """Check every setting of :class:`lgfn.gflownet.GFlowNet` before anything is built (no data is loaded).

    Returns the component specs resolved against the registry (``{class_path, init_args}``).
    """
    components.load()
    counts = ("hidden_dim", "n_layers", "eval_samples", "nonfinite_patience", "ensemble")
    check_counts("model", **{k: args[k] for k in counts if k in args})
    for key in ("lr_policy", "lr_z", "lr_scale", "lr_flow", "grad_clip", "logit_clip"):
        value = args.get(key)
        optional = key in ("grad_clip", "logit_clip")
        if key in args and not (value is None and optional) and not positive(value):
            none = " or null (off)" if optional else ""
            raise ConfigError(f"model.{key} = {value!r}: must be a positive finite number{none}")
    decay = args.get("weight_decay", 0.0)
    if not (decay == 0 or positive(decay)) or isinstance(decay, bool):
        raise ConfigError(f"model.weight_decay = {decay!r}: must be 0 (off) or a positive finite number")
    if args.get("backward_policy", "learned") not in ("learned", "uniform"):
        raise ConfigError(f"model.backward_policy = {args['backward_policy']!r}: must be 'learned' or 'uniform'")
    if args.get("compile", "auto") not in ("auto", True, False):
        raise ConfigError(f"model.compile = {args['compile']!r}: must be true, false or auto")
    if args.get("ensemble_data", "shared") not in ("shared", "split"):
        raise ConfigError(f"model.ensemble_data = {args['ensemble_data']!r}: must be 'shared' or 'split'")
    betas = args.get("eval_betas", [1.0])
    if not isinstance(betas, (list, tuple)) or not betas or not all(beta_value(b) for b in betas):
        raise ConfigError(f"model.eval_betas = {betas!r}: must be a non-empty list of positive finite β in "
                          f"[{FLOAT32.tiny:.3g}, {FLOAT32.max:.3g}] (the model computes in float32)")
    specs = {}
    for key in ("task", "conditioner", "policy", "loss"):
        try:
            specs[key] = registry.resolve(key, args.get(key, key))
            if key != "task":  # tiny: built once here so that their values are checked too (a task loads data);
                with torch.random.fork_rng(devices=[]):  # without using up the seeded RNG of the real build
                    registry.build(key, specs[key])
        except (ConfigError, registry.RegistryError) as err:
            raise ConfigError(f"model.{key}: {err}") from None
    return specs
