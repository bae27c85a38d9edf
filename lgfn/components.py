"""Fills the registry, once: built-in components, YAML registry folders, installed plugins.

The one place that knows every component module. The CLI and :class:`lgfn.gflownet.GFlowNet`
call :func:`load` before resolving names; Python users get it through either, or by calling it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from lgfn import registry

BUILT_IN = ("lgfn.training.replay", "lgfn.losses", "lgfn.beta", "lgfn.tasks",
            "lgfn.oracles.qm9", "lgfn.oracles.rna", "lgfn.oracles.seh", "lgfn.oracles.tfbind8")

_LOADED = False


def registry_dirs() -> list[Path]:
    """Where YAML entries live: the packaged ``registry/`` folder, then ``LGFN_REGISTRY_PATH`` folders."""
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


def load() -> None:
    """Register the built-in components, the YAML entries and the installed plugins (entry points), once."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in BUILT_IN:
        importlib.import_module(module)
    for directory in registry_dirs():
        registry.load_yaml_entries(directory)
    from lgfn.plugins import load_entry_points

    load_entry_points()
