"""Settings checked before anything is built, in one place: each check names the setting as a user writes it
(``model.hidden_dim``, ``data.rounds``), its value and what is valid.

The model's settings are declared once, in :data:`MODEL`: type, default, valid values and help. From that table
come :class:`lgfn.gflownet.GFlowNet`'s signature (what LightningCLI parses and ``lgfn fit --help`` shows), its
docstring, the one-line checks (:func:`model_settings`) and the keys a checkpoint may hold
(:mod:`lgfn.checkpoints`). Adding a model setting is a row here plus the code that uses it.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Mapping, get_args, get_origin

import torch

from lgfn import components, registry
from lgfn.errors import ConfigError
from lgfn.registry import ComponentSpec

log = logging.getLogger("lgfn")


def positive(value: Any) -> bool:
    """A positive finite number (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


FLOAT32 = torch.finfo(torch.float32)


def beta_value(value: Any) -> bool:
    """A β the float32 policy can hold: positive, finite, and neither overflowing nor vanishing in float32."""
    return positive(value) and FLOAT32.tiny <= value <= FLOAT32.max


def count(value: Any) -> bool:
    """An integer >= 1 (booleans are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_counts(prefix: str, **counts: Any) -> None:
    """Each named setting is an integer >= 1, or a one-line error naming it."""
    for key, value in counts.items():
        if not count(value):
            raise ConfigError(f"{prefix}.{key} = {value!r}: {COUNT}")


def build_component(kind: str, spec: Any, key: str) -> Any:
    """A component built from its spec; an error names the setting it came from."""
    components.load()
    with setting_errors(key):
        return registry.build(kind, spec)


@contextmanager
def setting_errors(key: str) -> Iterator[None]:
    """A bad spec's error, as one line naming the setting it came from (``key``)."""
    try:
        yield
    except (ConfigError, registry.RegistryError) as err:
        raise ConfigError(f"{key}: {err}") from None


# --------------------------------------------------------------------------- the model's settings

COUNT = "must be an integer >= 1"
POSITIVE = "must be a positive finite number"


@dataclass(frozen=True)
class Setting:
    """One model setting: what LightningCLI parses, its default, what is valid and what it means."""

    type: Any
    default: Any
    help: str
    valid: Callable[[Any], bool] | None = None
    """Whether a value is valid; a ``Literal`` type's choices are checked without it."""
    rule: str = ""
    """What is valid, as the one-line error says it (``model.X = V: <rule>``)."""

    def check(self, name: str, value: Any) -> None:
        choices = _choices(self.type)
        valid = self.valid or (lambda v: v in choices)
        if choices is not None or self.valid is not None:
            if not valid(value):
                rule = self.rule or "must be " + " or ".join(repr(c) for c in choices)  # type: ignore[union-attr]
                raise ConfigError(f"model.{name} = {value!r}: {rule}")


def _choices(annotation: Any) -> tuple[Any, ...] | None:
    return get_args(annotation) if get_origin(annotation) is Literal else None


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _beta_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(beta_value(b) for b in value)


MODEL: dict[str, Setting] = {
    "task": Setting(ComponentSpec, "gridworld", "the task (name, ``{name: ..., **args}`` or class_path spec)."),
    "conditioner": Setting(ComponentSpec, "logit", "how β enters: ``none``, ``layer``, ``thermometer``, ``logit``, "
                           "``logit_layer``, ``logit_official``."),
    "network": Setting(ComponentSpec, "mlp", "the P_F/P_B network architecture: ``mlp`` (a logit per action) or "
                       "``ssr`` (a scorer of (state, child) pairs)."),
    "loss": Setting(ComponentSpec, "tb", "``tb``, ``db`` or ``subtb``; MaxEnt is ``tb`` with "
                    "``backward_policy: uniform``."),
    "hidden_dim": Setting(int, 128, "width of the policy MLPs.", count, COUNT),
    "n_layers": Setting(int, 2, "hidden layers of the policy MLPs.", count, COUNT),
    "backward_policy": Setting(Literal["learned", "uniform"], "learned",
                               "``learned`` (conditioned like P_F) or ``uniform``."),
    "lr_policy": Setting(float, 1e-4, "learning rate of α_θ (and P_B).", positive, POSITIVE),
    "lr_z": Setting(float, 1e-2, "learning rate of Z_θ.", positive, POSITIVE),
    "lr_scale": Setting(float, 1e-4, "learning rate of the logit-scaling net f_θ.", positive, POSITIVE),
    "lr_flow": Setting(float, 1e-4, "learning rate of the state flow F (db, subtb).", positive, POSITIVE),
    "weight_decay": Setting(float, 0.0, "decoupled weight decay of α_θ and P_B (AdamW-style; 0: plain Adam).",
                            lambda v: not isinstance(v, bool) and (v == 0 or positive(v)),
                            "must be 0 (off) or a positive finite number"),
    "ensemble": Setting(int, 1, "train this many policies side by side (each its own α_θ, f_θ, Z_θ, P_B and loss) "
                        "and sample with the mean of their scaled logits (see :class:`PolicyEnsemble`).", count, COUNT),
    "ensemble_data": Setting(Literal["shared", "split"], "shared",
                             "``shared``: every member trains on the whole batch; ``split``: member k on the k-th of "
                             "``ensemble`` equal slices of it (set ``data.batch_size`` to ``ensemble`` × the "
                             "per-member batch), drawn backwards (offline) with its own P_B: the members see "
                             "different trajectories, as separately trained policies would."),
    "grad_clip": Setting(float | None, 10.0, "max gradient norm (None: no clipping), each ensemble member's own; the "
                         "norm is logged either way.", _optional(positive), POSITIVE + " or null (off)"),
    "logit_clip": Setting(float | None, 20.0, "clamp α_θ to [−c, c] before scaling (None: no clamp; the official "
                          "code clamps at 20).", _optional(positive), POSITIVE + " or null (off)"),
    "eval_betas": Setting(list[float], [1.0, 2.0, 3.0, 10.0], "β values evaluated at validation/test, including "
                          "ones outside training.", _beta_list,
                          f"must be a non-empty list of positive finite β in [{FLOAT32.tiny:.3g}, {FLOAT32.max:.3g}] "
                          "(the model computes in float32)"),
    "eval_samples": Setting(int, 1000, "objects sampled per β at evaluation.", count, COUNT),
    "nonfinite_patience": Setting(int, 20, "each step whose loss or gradient is not finite is skipped; training stops "
                                  "(with a checkpoint) after this many such steps with fewer than this many good "
                                  "steps in a row between them.", count, COUNT),
    "compile": Setting(bool | Literal["auto"], "auto", "run the training rollouts and the loss (with its backward) as "
                       "compiled programs (``torch.compile``, inductor): ``true``, ``false``, or ``auto``: on a GPU "
                       "always, on a CPU when the run is long enough to win back the compile time (see "
                       ":func:`lgfn.compilation.choose`).", lambda v: v in ("auto", True, False),
                       "must be true, false or auto"),
}
"""Every setting of :class:`lgfn.gflownet.GFlowNet`, in the order of its signature."""

RENAMED: dict[str, str] = {"policy": "network"}
"""Old names of model settings, still accepted (with a one-line deprecation warning) and read from checkpoints."""

COMPONENTS: dict[str, str] = registry.settings_of("model")
"""{model setting: registry kind} of the settings that name a component (from the registry's kind table)."""


def signature() -> inspect.Signature:
    """``GFlowNet.__init__``'s signature: every setting with its type and default, then the old names."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=s.default, annotation=s.type)
               for name, s in MODEL.items()]
    params += [inspect.Parameter(old, inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation=MODEL[new].type | None) for old, new in RENAMED.items()]
    return inspect.Signature(params, return_annotation=None)


def docstring() -> str:
    """The ``Args:`` section of ``GFlowNet``'s docstring (LightningCLI's ``--help`` reads it)."""
    lines = ["Args:"]
    lines += [f"    {name}: {s.help}" for name, s in MODEL.items()]
    lines += [f"    {old}: deprecated: the old name of ``{new}``." for old, new in RENAMED.items()]
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's table of model settings (``tests/test_settings.py`` checks that the README holds it as
    written here): the same declaration as ``--help``."""
    def text(value: str) -> str:
        return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", value).replace("``", "`").replace("|", "\\|")

    def valid(name: str, s: Setting) -> str:
        if name in COMPONENTS:
            return f"a registered {COMPONENTS[name]} (`lgfn registry`) or its spec"
        choices = _choices(s.type)
        return s.rule.removeprefix("must be ") if s.rule else " or ".join(f"`{c}`" for c in choices or ())

    lines = ["| setting | default | valid | what it is |", "| --- | --- | --- | --- |"]
    lines += [f"| `model.{name}` | `{s.default}` | {text(valid(name, s))} | {text(s.help)} |" for name, s in MODEL.items()]
    return "\n".join(lines)


def renamed(args: Mapping[str, Any], warn: bool = True) -> dict[str, Any]:
    """``args`` with each old setting name replaced by its new one (a one-line deprecation warning when ``warn``);
    an old name left at None (its default in the signature) is dropped."""
    out = dict(args)
    for old, new in RENAMED.items():
        value = out.pop(old, None)
        if value is not None:
            if warn:
                log.warning("model.%s is deprecated: it is now model.%s (model.%s: %s)", old, new, new,
                            value if isinstance(value, str) else "{...}")
            out[new] = value
    return out


def model_settings(args: Mapping[str, Any], warn: bool = True) -> dict[str, Any]:
    """Every setting of :class:`lgfn.gflownet.GFlowNet` from ``args`` (old names accepted, defaults filled in),
    checked before anything is built (no data is loaded, no component is built), with the component specs
    resolved against the registry (``{class_path, init_args}``, every default filled in)."""
    args = renamed(args, warn)
    unknown = sorted(set(args) - set(MODEL))
    if unknown:
        raise TypeError(f"GFlowNet got unknown setting(s) {', '.join(unknown)}; valid: {', '.join(MODEL)}")
    settings = {name: args[name] if name in args else copy.deepcopy(s.default) for name, s in MODEL.items()}
    for name, s in MODEL.items():
        s.check(name, settings[name])
    components.load()
    for name, kind in COMPONENTS.items():
        with setting_errors(f"model.{name}"):
            settings[name] = registry.validate(kind, settings[name])
    return settings
