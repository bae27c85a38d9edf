"""The spec boundary: one registry for every extensible kind, and the one place a spec is read, resolved,
validated and checked against the allow-list.

Python code registers a class or function under a short name with a decorator; YAML
entries (``registry/``) bind a short name to a ``class_path`` and default ``init_args``.
Configs name components as a bare string (``conditioner: logit``), a mapping with
overrides (``conditioner: {name: logit, hidden_dim: 64}``) or ``{class_path, init_args}``.

Only registered components are ever built: a ``class_path`` is looked up among the
registered ones and refused otherwise, before anything is imported. A config or a
checkpoint is data; the code it may reach is what lgfn, its YAML registry and the
plugins the user loaded registered. This module imports nothing of lgfn: filling it
(built-in modules, YAML folders, plugins) is :func:`lgfn.components.load`'s job.

Every entry point goes through here: :data:`KIND_TABLE` (which kinds exist, what their components implement,
which settings name one), :func:`read_spec` (a name, ``{name, ...}``, ``{class_path, init_args}`` or a
jsonargparse Namespace of either), :func:`resolve`, :func:`validate` (arguments checked without building),
:func:`build` and :func:`check_allowed` (a spec read from a checkpoint names registered code only).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib
import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar, Union

import yaml

log = logging.getLogger("lgfn")



@dataclass(frozen=True)
class Kind:
    """A kind of registered thing: what its entries implement and which settings name one."""

    implements: str
    """The base class or protocol of its entries (a dotted path or a description; never imported here)."""
    settings: tuple[str, ...] = ()
    """The settings, as a user writes them, whose value is a spec of this kind."""
    listed: bool = True
    """Listed by ``lgfn registry`` (a data converter is not: it is named by the file it builds)."""
    resolved: bool = True
    """A spec of it is resolved to ``{class_path, init_args}`` where it is nested in another's arguments (an MDP
    is not: it stays a name, and the task builds it with its own sizes)."""


KIND_TABLE: dict[str, Kind] = {
    "task": Kind("lgfn.tasks.base.Task", ("model.task",)),
    "conditioner": Kind("lgfn.models.conditioners.Conditioner", ("model.conditioner",)),
    "network": Kind("lgfn.models.architectures.Architecture", ("model.network",)),
    "beta_sampler": Kind("lgfn.beta.distributions.BetaSampler", ("data.train_beta", "data.explore_beta")),
    "loss": Kind("lgfn.losses.base.Loss", ("model.loss",)),
    "replay": Kind("lgfn.training.replay.Replay", ("data.replay",)),
    "local_search": Kind("lgfn.sampling.local_search.LocalSearch", ("data.local_search",)),
    "oracle": Kind("a callable: a batch of objects -> raw rewards", ("model.task.oracle",)),
    "mdp": Kind("lgfn.envs.base.Env, built as MDP(n_tokens, length)", ("model.task.mdp",), resolved=False),
    "converter": Kind("a function: paths of a data file's upstream files -> its bytes", (), listed=False),
}
"""Every extensible kind. Adding one is an entry here plus the module that registers its entries."""

KIND_ALIASES: dict[str, str] = {"policy": "network"}
"""Old names of kinds, still accepted (``register("policy", ...)`` registers a network)."""

KINDS: tuple[str, ...] = tuple(kind for kind, k in KIND_TABLE.items() if k.listed)
"""The kinds a config names components of (``lgfn registry`` lists them)."""


def settings_of(prefix: str) -> dict[str, str]:
    """{setting: kind} of the settings under ``prefix`` that name a component: ``settings_of("model")`` is
    ``{"task": "task", "conditioner": "conditioner", "network": "network", "loss": "loss"}``."""
    return {setting.removeprefix(prefix + "."): kind for kind, k in KIND_TABLE.items() for setting in k.settings
            if setting.rpartition(".")[0] == prefix}

ComponentSpec = Union[str, dict[str, Any]]
"""How a config names a component: a registered name, or a mapping (name/class_path + args)."""

T = TypeVar("T")


class RegistryError(ValueError):
    """A config or checkpoint named a component that cannot be resolved; the message says how to fix it."""


@dataclass
class Entry:
    """A registered component: what to build and with which default arguments."""

    kind: str
    name: str
    target: Union[str, Callable[..., Any]]
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = "python"

    @property
    def class_path(self) -> str:
        """The dotted path a resolved spec names this entry's target by."""
        return self.target if isinstance(self.target, str) else class_path_of(self.target)

    def load(self) -> Callable[..., Any]:
        """The class or function; a YAML entry's ``class_path`` is imported on first use (it is registered)."""
        if isinstance(self.target, str):
            self.target = _import(self.target)
        return self.target


_ENTRIES: dict[str, dict[str, Entry]] = {kind: {} for kind in KIND_TABLE}


def class_path_of(obj: Any) -> str:
    """``module.QualifiedName`` of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"


def _check_kind(kind: str) -> str:
    """The kind's current name (an old one is accepted), or a one-line error listing the kinds."""
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in _ENTRIES:
        raise RegistryError(f"unknown component kind {kind!r}; valid kinds: {', '.join(KIND_TABLE)}")
    return kind


def register(kind: str, name: str, *, aliases: tuple[str, ...] = (), **defaults: Any) -> Callable[[T], T]:
    """Decorator: register a class or function as ``name`` (and ``aliases``) of ``kind``: the one way to
    register anything extensible (components, MDPs, data converters), for lgfn and plugins alike.

    Keyword arguments become default init args for that name, so one class can
    stand behind several names (e.g. an official alias with another formula).
    """
    kind = _check_kind(kind)

    def deco(obj: T) -> T:
        builtin = getattr(obj, "__module__", "").startswith("lgfn.")
        for n in (name, *aliases):
            current = _ENTRIES[kind].get(n)
            if builtin and current is not None and current.source != "builtin":
                continue  # a YAML entry or plugin that replaced a built-in name keeps it, whenever lgfn's module loads
            entry = Entry(kind, n, obj, dict(defaults), source="builtin" if builtin else "python")
            if not builtin and current is not None and current.class_path != entry.class_path:
                # a plugin may replace a name on purpose, but never without a word
                was = "the built-in" if current.source == "builtin" else "the earlier"
                log.warning("%s %r: %s replaces %s %s", kind, n, entry.class_path, was, current.class_path)
            _ENTRIES[kind][n] = entry
        return obj

    return deco


def register_task(name: str, *, aliases: tuple[str, ...] = (), **defaults: Any) -> Callable[[T], T]:
    """``@register_task("gridworld")`` is ``@register("task", "gridworld")``."""
    return register("task", name, aliases=aliases, **defaults)


ORACLE_INPUTS: tuple[str, ...] = ("tokens", "strings", "smiles")
"""What an oracle can be given: a LongTensor [N, L] of token indices (the default), the objects' strings, or
(molecular tasks) their canonical SMILES."""


def register_oracle(name: str, *, inputs: str | None = None, aliases: tuple[str, ...] = (),
                    **defaults: Any) -> Callable[[T], T]:
    """``@register_oracle("my_score")``: a function or class mapping a batch of objects to rewards.

    A function is the oracle itself (config arguments are bound to it as keywords); a class is
    built with the config's arguments and its instances are called. ``inputs="strings"`` (or
    ``"smiles"``) hands the oracle the objects' strings instead of token tensors; it is kept on
    the object as ``lgfn_inputs``.
    """
    if inputs is not None and inputs not in ORACLE_INPUTS:
        raise RegistryError(f"oracle {name!r}: inputs must be one of {', '.join(ORACLE_INPUTS)}, got {inputs!r}")
    deco = register("oracle", name, aliases=aliases, **defaults)

    def wrap(obj: T) -> T:
        if inputs is not None:
            obj.lgfn_inputs = inputs  # type: ignore[attr-defined]
        if not inspect.isclass(obj):
            obj.lgfn_bind_args = True  # type: ignore[attr-defined]
        return deco(obj)

    return wrap


def _import(path: str) -> Any:
    """Import a registered ``package.module.Name`` (its module may be nested: ``mod.Class.method``)."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise RegistryError(f"cannot import the registered class_path {path!r} ({err}); "
                            "fix the registry entry or install its module") from err


def declare(kind: str, name: str, class_path: str, defaults: Mapping[str, Any]) -> None:
    """Register a built-in component by path, imported on first use (so listing names imports nothing).
    A component already registered under that name, by its module or by the user, is kept."""
    kind = _check_kind(kind)
    _ENTRIES[kind].setdefault(name, Entry(kind, name, class_path, dict(defaults), source="builtin"))


def load_yaml_entries(directory: Path) -> None:
    """Register every ``*.yaml`` entry under ``directory`` (``kind``/``name``/``class_path``/``init_args``)."""
    for path in sorted(directory.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        missing = {"kind", "name", "class_path"} - set(data)
        if missing:
            raise RegistryError(f"registry entry {path} lacks {', '.join(sorted(missing))}")
        kind = _check_kind(data["kind"])
        for n in (data["name"], *data.get("aliases", [])):
            _ENTRIES[kind][n] = Entry(kind, n, data["class_path"], dict(data.get("init_args") or {}), source=str(path))


def names(kind: str) -> list[str]:
    """Registered names of ``kind``, sorted."""
    kind = _check_kind(kind)
    return sorted(_ENTRIES[kind])


def get(kind: str, name: str) -> Entry:
    """The entry for ``name``; an unknown name fails with the valid names and the closest match."""
    kind = _check_kind(kind)
    if not isinstance(name, str):
        raise RegistryError(f"{kind} name must be a string, got {name!r}")
    try:
        return _ENTRIES[kind][name]
    except KeyError:
        valid = sorted(_ENTRIES[kind])
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise RegistryError(f"unknown {kind} {name!r}; valid names: {', '.join(valid) or '(none registered)'}{hint}") from None


def allowed_class_paths(kind: str) -> set[str]:
    """Every class_path that a spec of ``kind`` may name: the targets of its registered entries."""
    kind = _check_kind(kind)
    return {entry.class_path for entry in _ENTRIES[kind].values()}


def entry_for_class_path(kind: str, path: Any) -> Entry:
    """The registered entry whose target is ``path`` (a full dotted path, or a bare class name that one entry
    ends with); anything else is refused before it is imported."""
    kind = _check_kind(kind)
    if not isinstance(path, str):
        raise RegistryError(f"{kind} class_path must be a string, got {path!r}")
    entries = list(_ENTRIES[kind].values())
    exact = [e for e in entries if e.class_path == path]
    bare = [e for e in entries if e.class_path.rpartition(".")[2] == path] if "." not in path else []
    found = exact or bare
    if not found or len({e.class_path for e in found}) > 1:
        raise RegistryError(f"{kind} class_path {path!r} is not a registered {kind}; only registered components are "
                            f"built (see `lgfn registry`; register yours with a decorator and load it with --plugins)")
    return found[0]


def read_spec(spec: Any) -> Any:
    """A spec as plain data: a jsonargparse Namespace (what LightningCLI hands over for a ``{class_path,
    init_args}`` it parsed, at any depth) becomes a dict, recursively; names and built objects pass through."""
    if isinstance(spec, argparse.Namespace):
        spec = spec.as_dict() if callable(getattr(spec, "as_dict", None)) else vars(spec)
    if isinstance(spec, Mapping):
        return {key: read_spec(value) for key, value in spec.items()}
    if isinstance(spec, (list, tuple)):
        return type(spec)(read_spec(value) for value in spec)
    return spec


def is_spec(spec: Any) -> bool:
    """Whether ``spec`` names a component (a name or a mapping, read by :func:`read_spec`), rather than being one
    already built."""
    return isinstance(spec, (str, Mapping, argparse.Namespace))


def split_spec(kind: str, spec: ComponentSpec | Mapping[str, Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """Turn a config spec into (class or function, keyword arguments) with registry defaults applied."""
    kind, spec = _check_kind(kind), read_spec(spec)
    if isinstance(spec, str):
        entry = get(kind, spec)
        return entry.load(), dict(entry.defaults)
    if not isinstance(spec, Mapping):
        raise RegistryError(f"{kind} must be a name or a mapping with 'name' or 'class_path', got {spec!r}")
    spec = dict(spec)
    init_args = spec.pop("init_args", None) or {}
    if not isinstance(init_args, Mapping):
        raise RegistryError(f"{kind} init_args must be a mapping, got {init_args!r}")
    if "class_path" in spec:
        target, kwargs = entry_for_class_path(kind, spec.pop("class_path")).load(), {}
    elif "name" in spec:
        entry = get(kind, spec.pop("name"))
        target, kwargs = entry.load(), dict(entry.defaults)
    else:
        raise RegistryError(f"{kind} mapping needs 'name' (one of: {', '.join(names(kind))}) or 'class_path', got {spec!r}")
    kwargs.update(init_args)
    kwargs.update(spec)
    objects = _objects_parameter(target)
    if objects is not None and objects in kwargs and kwargs[objects] is None:
        del kwargs[objects]  # a parser that fills in signatures (LightningCLI reading a checkpoint) gives it None
    return target, kwargs


def _objects_parameter(target: Callable[..., Any]) -> str | None:
    """The parameter an oracle function takes its batch of objects by: the first; it is no setting."""
    if not getattr(target, "lgfn_bind_args", False):
        return None
    try:
        return next(iter(inspect.signature(target).parameters), None)
    except (TypeError, ValueError):
        return None


def _parameters(target: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """The named parameters of a target (its settings), or None when it takes ``**kwargs`` (anything goes)."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    objects = _objects_parameter(target)
    return {n: p for n, p in params.items()
            if p.kind is not inspect.Parameter.VAR_POSITIONAL and n != "self" and n != objects}


def check_arguments(kind: str, target: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Fail in one line on arguments the target does not take, listing those it does."""
    params = _parameters(target)
    if params is None:
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        name = getattr(target, "__name__", str(target))
        raise RegistryError(f"{kind} {name} got unknown argument(s) {', '.join(unknown)}; valid: {', '.join(params)}")


def resolve(kind: str, spec: Any) -> Any:
    """The spec as ``{class_path, init_args}`` with every default filled in (nested components too).

    This is what a checkpoint stores: loading it later builds the same component even if a
    name's defaults have changed since. An object that is already built passes through.
    """
    if not is_spec(spec):
        return spec
    target, kwargs = split_spec(kind, spec)
    check_arguments(kind, target, kwargs)
    params = _parameters(target) or {}
    full = {n: p.default for n, p in params.items()
            if p.default is not inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD}
    full.update(kwargs)
    for key, value in full.items():
        if key in KINDS and KIND_TABLE[key].resolved and is_spec(value):
            full[key] = resolve(key, value)
    return {"class_path": class_path_of(target), "init_args": full}


def validate(kind: str, spec: Any) -> Any:
    """The spec resolved (:func:`resolve`: unknown arguments refused) and its argument values checked without
    building anything: a component that declares ``check_args`` (a static or class method taking its
    arguments and raising on bad ones, which its constructor calls too) is asked. Returns the resolved spec."""
    resolved = resolve(kind, spec)
    if not isinstance(resolved, Mapping):
        return resolved
    target = entry_for_class_path(kind, resolved["class_path"]).load()
    check = getattr(target, "check_args", None)
    if callable(check):
        check(**resolved["init_args"])
    return resolved


def build(kind: str, spec: Any, **extra: Any) -> Any:
    """Build a component from its spec; an object that is already built passes through.

    ``extra`` are arguments the caller supplies, which a spec may not override. Unknown
    arguments fail with the valid ones listed. A registered oracle *function* is not called:
    its config arguments are bound to it.
    """
    if not is_spec(spec):
        return spec
    target, kwargs = split_spec(kind, spec)
    kwargs.update(extra)
    check_arguments(kind, target, kwargs)
    if getattr(target, "lgfn_bind_args", False):
        return functools.partial(target, **kwargs) if kwargs else target
    return target(**kwargs)


def check_allowed(kind: str, spec: Any, key: str, hint: str = "") -> None:
    """A spec read as data (from a checkpoint) names only registered code, checked without importing anything:
    its component, the components nested in its arguments, and any ``class_path`` deeper in them. ``key`` names
    the setting in the one-line error; ``hint`` says which plugins to load when a name is not registered now."""
    kind, spec = _check_kind(kind), read_spec(spec)
    if isinstance(spec, str):
        try:
            get(kind, spec)
        except RegistryError as err:
            raise RegistryError(f"{key} = {spec!r}: {err}{hint}") from None
        return
    if not isinstance(spec, Mapping):
        raise RegistryError(f"{key} must be a registered name or a {{class_path, init_args}} mapping, got {spec!r}")
    if "class_path" in spec:
        path = spec["class_path"]
        if not isinstance(path, str) or path not in allowed_class_paths(kind):
            raise RegistryError(f"{key}.class_path = {path!r} is not a registered {kind}; a checkpoint may only name "
                                f"registered components (see `lgfn registry`){hint}")
    elif "name" in spec:
        check_allowed(kind, spec["name"], f"{key}.name", hint)
    else:
        raise RegistryError(f"{key} names no component (needs 'name' or 'class_path'), got {spec!r}")
    args = dict(spec.get("init_args") or {}) if isinstance(spec.get("init_args"), Mapping) else {}
    args.update({k: v for k, v in spec.items() if k not in ("class_path", "name", "init_args")})
    for arg, value in args.items():
        if arg in KINDS:
            check_allowed(arg, value, f"{key}.{arg}", hint)
        else:
            _walk_class_paths(value, f"{key}.{arg}")


def _walk_class_paths(value: Any, key: str) -> None:
    """Refuse any ``class_path`` nested in a component's arguments that no component kind registers."""
    if isinstance(value, Mapping):
        if "class_path" in value:
            path = value["class_path"]
            if not any(isinstance(path, str) and path in allowed_class_paths(k) for k in KINDS):
                raise RegistryError(f"{key}.class_path = {path!r} is not a registered component; a checkpoint may "
                                    "only name registered components (see `lgfn registry`)")
        for k, v in value.items():
            _walk_class_paths(v, f"{key}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _walk_class_paths(v, f"{key}[{i}]")


def describe() -> list[str]:
    """``KIND: name1, name2, ...`` for every kind, as ``lgfn registry`` prints it."""
    return [f"{kind}: {', '.join(names(kind))}" for kind in KINDS]


def show(name: str) -> list[str]:
    """Every kind's entry called ``name``, with its class_path and each argument's default."""
    lines: list[str] = []
    for kind in KINDS:
        entry = _ENTRIES[kind].get(name)
        if entry is None:
            continue
        target = entry.load()
        doc = (inspect.getdoc(target) or "").split("\n\n")[0].replace("\n", " ")
        lines.append(f"{kind} {name}: {entry.class_path}" + (f" — {doc}" if doc else ""))
        spec = resolve(kind, name)
        for arg, value in spec["init_args"].items():
            lines.append(f"  {arg}: {value!r}")
    if not lines:
        every = sorted({n for kind in KINDS for n in _ENTRIES[kind]})
        close = difflib.get_close_matches(name, every, n=1, cutoff=0.0)
        raise RegistryError(f"no component is registered as {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    return lines
