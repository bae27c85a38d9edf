"""Reading checkpoints as data: nothing in a checkpoint can make lgfn import or call code.

Every path that reads a checkpoint (``lgfn sample``, ``--ckpt_path``, ``GFlowNet.load_from_checkpoint``)
comes here. The file is read with ``torch.load(weights_only=True)`` (no pickled objects), and its
hyper-parameters are checked before anything is built: every key must be an argument of the
model, every component (task, conditioner, loss and the components nested in them) must be a
registered name or a registered ``class_path``. Anything else is refused in one line naming the key.

Checkpoints written since lgfn 0.2 store each component as ``{class_path, init_args}`` with every
default filled in; older ones store the names as configured, which are resolved against today's
registry when loaded (see :func:`model_hparams`).
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from lgfn import components, registry
from lgfn.errors import CheckpointError

FORMAT = 2
"""``lgfn_format`` of checkpoints whose components are resolved specs (absent before: format 1)."""

LIGHTNING_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"
COMPONENT_KINDS = {"task": "task", "conditioner": "conditioner", "policy": "policy", "loss": "loss"}


def read(path: str | Path, where: str | None = None) -> dict[str, Any]:
    """The checkpoint's contents, with a one-line error for a missing, unreadable or foreign file
    (``where`` names it in messages, e.g. ``--ckpt_path X``)."""
    path = Path(path)
    where = where or f"checkpoint {path}"
    if not path.is_file():
        what = "is a folder; give a .ckpt file" if path.is_dir() else "is not found"
        raise CheckpointError(f"{where} {what} (`lgfn fit` writes them under "
                              "<root>/lightning_logs/version_N/checkpoints/)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{where} cannot be read as data: it holds pickled objects, which lgfn never loads "
                              "(they could run code); give a checkpoint written by `lgfn fit`") from None
    except Exception as err:  # noqa: BLE001 (any failure means the file is not a checkpoint lgfn can read as data)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{where} cannot be read as data ({type(err).__name__}: {reason[:200]}); "
                              "give a checkpoint written by `lgfn fit`") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("hyper_parameters"), dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{where} is not an lgfn checkpoint (no hyper_parameters/state_dict); "
                              "give a checkpoint written by `lgfn fit`")
    return ckpt


def _walk_class_paths(value: Any, key: str) -> None:
    """Refuse any ``class_path`` nested in a component's arguments that no component kind registers."""
    if isinstance(value, Mapping):
        if "class_path" in value:
            path = value["class_path"]
            if not any(isinstance(path, str) and path in registry.allowed_class_paths(k) for k in registry.KINDS):
                raise CheckpointError(f"{key}.class_path = {path!r} is not a registered component; a checkpoint may "
                                      "only name registered components (see `lgfn registry`)")
        for k, v in value.items():
            _walk_class_paths(v, f"{key}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _walk_class_paths(v, f"{key}[{i}]")


def check_component(kind: str, spec: Any, key: str, hint: str = "") -> None:
    """A component spec from a checkpoint names only registered code (checked without importing anything);
    ``hint`` says which plugins to load when it names one that is not registered now."""
    if isinstance(spec, str):
        try:
            registry.get(kind, spec)
        except registry.RegistryError as err:
            raise CheckpointError(f"{key} = {spec!r}: {err}{hint}") from None
        return
    if not isinstance(spec, Mapping):
        raise CheckpointError(f"{key} must be a registered name or a {{class_path, init_args}} mapping, got {spec!r}")
    if "class_path" in spec:
        path = spec["class_path"]
        if not isinstance(path, str) or path not in registry.allowed_class_paths(kind):
            raise CheckpointError(f"{key}.class_path = {path!r} is not a registered {kind}; a checkpoint may only name "
                                  f"registered components (see `lgfn registry`){hint}")
    elif "name" in spec:
        check_component(kind, spec["name"], f"{key}.name", hint)
    else:
        raise CheckpointError(f"{key} names no component (needs 'name' or 'class_path'), got {spec!r}")
    args = dict(spec.get("init_args") or {}) if isinstance(spec.get("init_args"), Mapping) else {}
    args.update({k: v for k, v in spec.items() if k not in ("class_path", "name", "init_args")})
    for arg, value in args.items():
        if arg in registry.KINDS:
            check_component(arg, value, f"{key}.{arg}", hint)
        else:
            _walk_class_paths(value, f"{key}.{arg}")


def model_hparams(ckpt: Mapping[str, Any], model_cls: type, where: str = "checkpoint") -> dict[str, Any]:
    """The model's constructor arguments from a checkpoint, checked against the allow-list.

    Lightning's own bookkeeping (``_instantiator``) is dropped when it is Lightning's; any other
    key must be an argument of ``model_cls``.
    """
    hparams = dict(ckpt["hyper_parameters"])
    instantiator = hparams.pop("_instantiator", LIGHTNING_INSTANTIATOR)
    if instantiator != LIGHTNING_INSTANTIATOR:
        raise CheckpointError(f"{where}: hyper_parameters._instantiator = {instantiator!r} is refused; "
                              "a checkpoint may not name code to run")
    if "_class_path" in hparams:
        raise CheckpointError(f"{where}: hyper_parameters._class_path = {hparams['_class_path']!r} is refused; "
                              f"lgfn builds {model_cls.__name__} only")
    valid = set(inspect.signature(model_cls.__init__).parameters) - {"self"}
    unknown = sorted(set(hparams) - valid)
    if unknown:
        raise CheckpointError(f"{where}: unknown hyper-parameter(s) {', '.join(unknown)}; "
                              f"a {model_cls.__name__} takes {', '.join(sorted(valid))}")
    used = ckpt.get("lgfn_plugins") or []
    hint = (f"; it was trained with --plugins {' '.join(map(str, used))}" if used
            else "; if a plugin registers it, load that with --plugins")
    for key, kind in COMPONENT_KINDS.items():
        if key in hparams:
            check_component(kind, hparams[key], f"{where}: model.{key}", hint)
    return hparams


def load_model(cls: type, path: str | Path, map_location: Any = None, **overrides: Any) -> Any:
    """A model of class ``cls`` (a GFlowNet) built from a checkpoint's checked settings, with its weights."""
    ckpt = read(path)
    components.load()
    hparams = model_hparams(ckpt, cls, f"checkpoint {path}")
    hparams.update(overrides)
    model = cls(**hparams)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the model it describes ({first})") from None
    model.on_load_checkpoint(ckpt)
    if map_location is not None:
        model.to(map_location)
    return model
