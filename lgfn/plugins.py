"""User code that registers components: modules or files named by ``--plugins``, and installed packages.

A plugin is any module whose import registers components (``@register_oracle("my_score")``,
``@register_task(...)``). The command line imports the modules and ``.py`` files given to
``--plugins``; installed packages announce theirs under the entry-point group ``lgfn.plugins``
(``[project.entry-points."lgfn.plugins"] my_plugin = "my_package.oracles"``), which the registry
imports before its first use, so they need no flag. ``LGFN_DISABLE_PLUGIN_AUTOLOAD=1`` skips
entry points (the escape hatch when an installed plugin is broken).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Sequence

from lgfn.registry import RegistryError

ENTRY_POINT_GROUP = "lgfn.plugins"
FLAG = "--plugins"

_LOADED: list[str] = []  # what was imported, as arguments that `--plugins` accepts again


class PluginError(RegistryError):
    """A plugin could not be found or failed while being imported; the message names it."""


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def split_plugin_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(argv without ``--plugins``, the plugin specs): ``--plugins A B`` (up to the next option) or ``--plugins=A``.

    The flag is lgfn's, not Lightning's, so it is taken out before LightningCLI parses.
    """
    rest: list[str] = []
    specs: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith(FLAG + "="):
            specs += [s for s in arg[len(FLAG) + 1 :].split(",") if s]
        elif arg == FLAG:
            start = i + 1
            while i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
            if i + 1 == start:
                raise PluginError(f"{FLAG} needs at least one module name or .py file")
            specs += args[start : i + 1]
        else:
            rest.append(arg)
        i += 1
    return rest, specs


def load_plugins(specs: Sequence[str]) -> list[ModuleType]:
    """Import each spec: the path of a ``.py`` file, or a dotted module name."""
    return [_load_one(spec) for spec in specs]


def _load_one(spec: str) -> ModuleType:
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        module = _import_file(spec, path)
        record = str(path.resolve())
    else:
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as err:
            if err.name and spec.split(".")[0] == err.name.split(".")[0]:
                raise PluginError(f"plugin {spec!r} is neither a .py file nor an importable module ({_reason(err)}); "
                                  "give a file's path or install the module") from None
            raise PluginError(f"plugin {spec!r} failed to import ({_reason(err)})") from None
        except Exception as err:  # noqa: BLE001 (any error in user code is reported in one line)
            raise PluginError(f"plugin {spec!r} failed to import ({_reason(err)})") from None
        record = spec
    if record not in _LOADED:
        _LOADED.append(record)
    return module


def _import_file(spec: str, path: Path) -> ModuleType:
    """Import a file as the module named by its stem, importable again under that name (pickling, spawn)."""
    if not path.is_file():
        raise PluginError(f"plugin file {spec} not found")
    if path.suffix != ".py":
        raise PluginError(f"plugin file {spec} is not a .py file")
    path = path.resolve()
    name = path.stem
    if not name.isidentifier():
        raise PluginError(f"plugin file {spec}: {name!r} is not a valid module name; rename the file")
    existing = sys.modules.get(name)
    if existing is not None:
        if getattr(existing, "__file__", None) and Path(existing.__file__).resolve() == path:
            return existing
        raise PluginError(f"plugin file {spec}: a module named {name!r} is already imported "
                          f"(from {getattr(existing, '__file__', 'built-in')}); rename the file")
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))  # spawned processes unpickle the plugin's objects by module name
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException as err:
        del sys.modules[name]
        if isinstance(err, Exception):
            raise PluginError(f"plugin file {spec} failed to import ({_reason(err)})") from None
        raise
    return module


def load_entry_points() -> None:
    """Import every module announced under the ``lgfn.plugins`` entry-point group."""
    if os.environ.get("LGFN_DISABLE_PLUGIN_AUTOLOAD"):
        return
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001 (a broken installed plugin is named, not a traceback)
            raise PluginError(f"plugin {ep.name!r} (entry point {ep.value} of {ep.dist.name if ep.dist else '?'}) "
                              f"failed to load ({_reason(err)}); fix or uninstall it, or set "
                              "LGFN_DISABLE_PLUGIN_AUTOLOAD=1") from None
        module = ep.value.split(":")[0].strip()
        if module not in _LOADED:
            _LOADED.append(module)


def loaded() -> list[str]:
    """The plugins imported so far, as ``--plugins`` arguments (files as absolute paths)."""
    return list(_LOADED)
