"""One registry for every pluggable kind of component.

Python code registers a class or function under a short name with a decorator;
the top-level ``registry/`` folder holds YAML entries that bind a short name to a
``class_path`` and default ``init_args``. Configs then name components by these
names, as a bare string (``conditioner: logit``), as a mapping with overrides
(``conditioner: {name: logit, hidden_dim: 64}``) or by ``class_path`` as usual.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar, Union

import yaml

KINDS: tuple[str, ...] = ("task", "conditioner", "beta_sampler", "loss", "replay", "oracle")

ComponentSpec = Union[str, dict[str, Any]]
"""How a config names a component: a registered name, or a mapping (name/class_path + args)."""

T = TypeVar("T")


class RegistryError(ValueError):
    """A config named a component that cannot be resolved; the message says how to fix it."""


@dataclass
class Entry:
    """A registered component: what to build and with which default arguments."""

    kind: str
    name: str
    target: Union[str, Callable[..., Any]]
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = "python"

    def load(self) -> Callable[..., Any]:
        """The class or function; a ``class_path`` string is imported on first use."""
        if isinstance(self.target, str):
            self.target = import_object(self.target)
        return self.target


_ENTRIES: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_YAML_LOADED = False


def _check_kind(kind: str) -> None:
    if kind not in _ENTRIES:
        raise RegistryError(f"unknown component kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def register(kind: str, name: str, *, aliases: tuple[str, ...] = (), **defaults: Any) -> Callable[[T], T]:
    """Decorator: register a class or function as ``name`` (and ``aliases``) of ``kind``.

    Keyword arguments become default init args for that name, so one class can
    stand behind several names (e.g. an official alias with another formula).
    """
    _check_kind(kind)

    def deco(obj: T) -> T:
        for n in (name, *aliases):
            _ENTRIES[kind][n] = Entry(kind, n, obj, dict(defaults))  # type: ignore[arg-type]
        return obj

    return deco


def register_task(name: str, **defaults: Any) -> Callable[[T], T]:
    """``@register_task("gridworld")`` is ``@register("task", "gridworld")``."""
    return register("task", name, **defaults)


ORACLE_INPUTS: tuple[str, ...] = ("tokens", "strings", "smiles")
"""What an oracle can be given: a LongTensor [N, L] of token indices (the default), the objects' strings, or
(molecular tasks) their canonical SMILES."""


def register_oracle(name: str, *, inputs: str | None = None, **defaults: Any) -> Callable[[T], T]:
    """``@register_oracle("my_score")``: a function or class mapping a batch of objects to rewards.

    A function is the oracle itself; a class is built with the config's arguments and its
    instances are called. ``inputs="strings"`` (or ``"smiles"``) hands the oracle the objects'
    strings instead of token tensors; it is kept on the object as ``lgfn_inputs``.
    """
    if inputs is not None and inputs not in ORACLE_INPUTS:
        raise RegistryError(f"oracle {name!r}: inputs must be one of {', '.join(ORACLE_INPUTS)}, got {inputs!r}")
    deco = register("oracle", name, **defaults)

    def wrap(obj: T) -> T:
        if inputs is not None:
            obj.lgfn_inputs = inputs  # type: ignore[attr-defined]
        return deco(obj)

    return wrap


def import_object(path: str) -> Any:
    """Import ``package.module.Name``; a bad path is a config error, not a traceback."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise RegistryError(f"class_path {path!r} must be a dotted path like 'package.module.Class'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise RegistryError(f"cannot import class_path {path!r} ({err}); check the spelling or install the module") from err


def registry_dirs() -> list[Path]:
    """Where YAML entries live: the packaged ``registry/`` folder, then ``LGFN_REGISTRY_PATH`` folders."""
    import os

    dirs: list[Path] = []
    source = Path(__file__).resolve().parent.parent / "registry"  # a source checkout / editable install
    spec = importlib.util.find_spec("lgfn._registry")  # a wheel install maps registry/ to lgfn/_registry
    if source.is_dir():
        dirs.append(source)
    elif spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) for p in spec.submodule_search_locations]
    for extra in filter(None, os.environ.get("LGFN_REGISTRY_PATH", "").split(os.pathsep)):
        dirs.append(Path(extra))
    return dirs


def load_yaml_entries(directory: Path) -> None:
    """Load every ``*.yaml`` entry under ``directory`` (``kind``/``name``/``class_path``/``init_args``)."""
    for path in sorted(directory.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        missing = {"kind", "name", "class_path"} - set(data)
        if missing:
            raise RegistryError(f"registry entry {path} lacks {', '.join(sorted(missing))}")
        _check_kind(data["kind"])
        for n in (data["name"], *data.get("aliases", [])):
            _ENTRIES[data["kind"]][n] = Entry(
                data["kind"], n, data["class_path"], dict(data.get("init_args") or {}), source=str(path)
            )


def ensure_loaded() -> None:
    """Import the built-in components, read the YAML registry and import installed plugins, once."""
    global _YAML_LOADED
    if _YAML_LOADED:
        return
    _YAML_LOADED = True
    importlib.import_module("lgfn.components")
    for directory in registry_dirs():
        load_yaml_entries(directory)
    from lgfn.plugins import load_entry_points

    load_entry_points()


def names(kind: str) -> list[str]:
    """Registered names of ``kind``, sorted."""
    ensure_loaded()
    _check_kind(kind)
    return sorted(_ENTRIES[kind])


def get(kind: str, name: str) -> Entry:
    """The entry for ``name``; an unknown name fails with the valid names and the closest match."""
    ensure_loaded()
    _check_kind(kind)
    try:
        return _ENTRIES[kind][name]
    except KeyError:
        valid = sorted(_ENTRIES[kind])
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise RegistryError(f"unknown {kind} {name!r}; valid names: {', '.join(valid)}{hint}") from None


def split_spec(kind: str, spec: ComponentSpec | Mapping[str, Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """Turn a config spec into (class or function, keyword arguments) with registry defaults applied."""
    if isinstance(spec, str):
        entry = get(kind, spec)
        return entry.load(), dict(entry.defaults)
    if not isinstance(spec, Mapping):
        raise RegistryError(f"{kind} must be a name or a mapping with 'name' or 'class_path', got {spec!r}")
    spec = dict(spec)
    if "class_path" in spec:
        target = import_object(spec.pop("class_path"))
        kwargs = dict(spec.pop("init_args", None) or {})
    elif "name" in spec:
        entry = get(kind, spec.pop("name"))
        target, kwargs = entry.load(), dict(entry.defaults)
        kwargs.update(spec.pop("init_args", None) or {})
    else:
        raise RegistryError(f"{kind} mapping needs 'name' (one of: {', '.join(names(kind))}) or 'class_path', got {spec!r}")
    kwargs.update(spec)
    return target, kwargs


def build(kind: str, spec: Any, **extra: Any) -> Any:
    """Build a component from its spec; an object that is already built passes through.

    ``extra`` are arguments the caller supplies (e.g. the task's alphabet), which a
    spec may not override. Unknown arguments fail with the valid ones listed.
    """
    if not isinstance(spec, (str, Mapping)):
        return spec
    target, kwargs = split_spec(kind, spec)
    kwargs.update(extra)
    check_arguments(kind, target, kwargs)
    return target(**kwargs)


def check_arguments(kind: str, target: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Fail in one line on arguments the target does not take, listing those it does."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL and n != "self"]
        name = getattr(target, "__name__", str(target))
        raise RegistryError(f"{kind} {name} got unknown argument(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def describe() -> list[str]:
    """``KIND: name1, name2, ...`` for every kind, as ``lgfn registry`` prints it."""
    return [f"{kind}: {', '.join(names(kind))}" for kind in KINDS]
