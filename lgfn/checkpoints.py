"""Reading checkpoints as data: nothing in a checkpoint can make lgfn import or call code.

Every path that reads a checkpoint (``lgfn sample``, ``--ckpt_path``, ``GFlowNet.load_from_checkpoint``)
comes here. The file is read with ``torch.load(weights_only=True)`` (no pickled objects), and its
hyper-parameters are checked before anything is built: every key must be an argument of the
model, every component (task, conditioner, loss and the components nested in them) must be a
registered name or a registered ``class_path``. Anything else is refused in one line naming the key.

Checkpoints written since lgfn 0.2 store each component as ``{class_path, init_args}`` with every
default filled in; older ones store the names as configured, which are resolved against today's
registry when loaded (see :func:`model_hparams`).

Nothing in a checkpoint is used before it is verified: the zip container's CRC-32 of every member (flipped or
missing bytes), then every piece of state lgfn restores against the model and task it is restored into (shapes,
dtypes, finite values, token ranges, generator state sizes; :func:`check_state`). A failure is one line naming the
file and what is wrong, never a crash after training has started.
"""

from __future__ import annotations

import inspect
import math
import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from lgfn import components, registry, settings
from lgfn.errors import CheckpointError

FORMAT = 2
"""``lgfn_format`` of checkpoints whose components are resolved specs (absent before: format 1)."""

LIGHTNING_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"


def read(path: str | Path, where: str | None = None) -> dict[str, Any]:
    """The checkpoint's contents, with a one-line error for a missing, unreadable or foreign file
    (``where`` names it in messages, e.g. ``--ckpt_path X``)."""
    path = Path(path)
    where = where or f"checkpoint {path}"
    if not path.is_file():
        what = "is a folder; give a .ckpt file" if path.is_dir() else "is not found"
        raise CheckpointError(f"{where} {what} (`lgfn fit` writes them under "
                              "<root>/lightning_logs/version_N/checkpoints/)")
    verify(path, where)
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


def newest(folder: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint under ``folder`` that verifies and reads (highest step; a final or interrupted one wins
    over a periodic one of the same step), and each newer one skipped with the reason."""
    found = sorted(Path(folder).rglob("*.ckpt"), key=lambda p: (_step(p), _mtime(p)), reverse=True)
    skipped: list[tuple[Path, str]] = []
    for path in found:
        try:
            read(path)
        except CheckpointError as err:
            skipped.append((path, str(err)))
            continue
        return path, skipped
    return None, skipped


def _step(path: Path) -> int:
    match = re.search(r"step=(\d+)", path.name)
    return int(match.group(1)) if match else -1


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile (e.g. by a running fit's ModelCheckpoint): sorts oldest, then fails to read
        return 0.0


def verify(path: Path, where: str) -> None:
    """Every member of the checkpoint's zip container matches its CRC-32, so flipped, lost or torn bytes are caught
    before anything in the file is used (``torch.load`` checks neither)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:  # reading a member to its end checks its CRC-32
                    while member.read(1 << 20):
                        pass
    except zipfile.BadZipFile as err:
        if "CRC" in str(err):
            member = str(err).rpartition(" ")[2].strip("'")
            raise CheckpointError(f"{where} is corrupt: {_member_kind(member)} {member} fails its CRC-32 check "
                                  "(its bytes changed on disk); use another checkpoint, e.g. an earlier one of the "
                                  "same run") from None
        raise CheckpointError(f"{where} cannot be read as data: it is not a whole checkpoint (truncated, or not "
                              "written by `lgfn fit`); give a checkpoint written by `lgfn fit`") from None
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise CheckpointError(f"{where} cannot be read as data ({type(err).__name__}: {err}); give a checkpoint "
                              "written by `lgfn fit`") from None


def _member_kind(member: str) -> str:
    """What a member of torch's zip format holds, for the corrupt-file message."""
    if "/data/" in member:
        return "tensor data"
    return "the record of its contents" if member.endswith(".pkl") else "member"


def model_hparams(ckpt: Mapping[str, Any], model_cls: type, where: str = "checkpoint") -> dict[str, Any]:
    """The model's constructor arguments from a checkpoint, checked against the allow-list.

    Lightning's own bookkeeping (``_instantiator``) is dropped when it is Lightning's; any other
    key must be an argument of ``model_cls``, and every component it names must be registered
    (:func:`lgfn.registry.check_allowed`). A setting saved under its old name comes back under its new one.
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
    for key, value in hparams.items():
        kind = settings.COMPONENTS.get(settings.RENAMED.get(key, key))
        if kind is not None:
            try:
                registry.check_allowed(kind, value, f"{where}: model.{key}", hint)
            except registry.RegistryError as err:
                raise CheckpointError(str(err)) from None
    return settings.renamed(hparams, warn=False)  # written before model.policy was model.network: read as it


# --------------------------------------------------------------------------- state checks

_FIX = "the file was damaged or edited, or written by another model; use another checkpoint"


def check_state(ckpt: Mapping[str, Any], model: torch.nn.Module, datamodule: Any = None, fitting: bool = False,
                where: str = "checkpoint") -> None:
    """Every piece of state lgfn restores from ``ckpt`` fits ``model`` (and ``datamodule``): weights, the trained β
    range, the sampling state, and when ``fitting`` the optimiser state and counters. Checked before any of it is
    used, so a bad file stops in one line instead of failing (or training on garbage) later."""
    check_weights(ckpt["state_dict"], model, where)
    _check_trained_beta(ckpt.get("lgfn_trained_beta"), where)
    if fitting:
        for key in ("global_step", "epoch"):
            value = ckpt.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CheckpointError(f"{where}: {key} = {value!r} is not a count; {_FIX}")
        _check_optimizers(ckpt.get("optimizer_states"), model, where)
    if datamodule is not None and type(datamodule).__qualname__ in ckpt:
        _check_data_state(ckpt[type(datamodule).__qualname__], datamodule, getattr(model, "task", None), where)


def check_weights(state: Any, model: torch.nn.Module, where: str) -> None:
    """Saved weights have the model's names, shapes and dtypes, and its parameters are finite (buffers may hold
    ±inf by design, e.g. an unset β range)."""
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{where}: state_dict is not a mapping of tensors; {_FIX}")
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"lacks {', '.join(missing[:3])}" if missing else f"has unknown {', '.join(unexpected[:3])}"
        raise CheckpointError(f"{where}: its weights do not fit the model it describes (it {what}); {_FIX}")
    parameters = {name for name, _ in model.named_parameters()}
    for name, want in expected.items():
        got = state[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(f"{where}: weight {name} is {_describe(got)}, the model needs {_describe(want)}; "
                                  f"{_FIX}")
        if name in parameters and got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise CheckpointError(f"{where}: weight {name} holds non-finite values; {_FIX}")


def _check_trained_beta(value: Any, where: str) -> None:
    if value is None:
        return
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                       for v in value) or value[0] > value[1]):
        raise CheckpointError(f"{where}: lgfn_trained_beta = {value!r} is not a β range [low, high]; {_FIX}")


def _optimizers(model: Any) -> list[torch.optim.Optimizer]:
    """The optimisers the model trains with (built afresh: resuming restores their state into new ones)."""
    found: list[torch.optim.Optimizer] = []

    def collect(value: Any) -> None:
        if isinstance(value, torch.optim.Optimizer):
            found.append(value)
        elif isinstance(value, Mapping) and "optimizer" in value:
            collect(value["optimizer"])
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    collect(model.configure_optimizers())
    return found


def _check_optimizers(saved: Any, model: Any, where: str) -> None:
    """Optimiser states match the optimisers' groups and parameters: shapes, dtypes, finite values, learning rates."""
    if saved is None:
        return
    optimizers = _optimizers(model)
    if not isinstance(saved, list) or len(saved) != len(optimizers):
        raise CheckpointError(f"{where}: optimizer_states holds {len(saved) if isinstance(saved, list) else saved!r} "
                              f"optimiser state(s), the model trains with {len(optimizers)}; {_FIX}")
    for i, (state, optimizer) in enumerate(zip(saved, optimizers)):
        key = f"optimizer_states[{i}]"
        groups, per_param = (state.get("param_groups"), state.get("state")) if isinstance(state, Mapping) else (0, 0)
        live = optimizer.param_groups
        fits = isinstance(groups, list) and isinstance(per_param, Mapping) and len(groups) == len(live) and all(
            isinstance(g, Mapping) and isinstance(g.get("params"), list) and len(g["params"]) == len(h["params"])
            for g, h in zip(groups, live))
        if not fits:
            raise CheckpointError(f"{where}: {key} does not match the optimiser's parameter groups; {_FIX}")
        params = {index: p for g, h in zip(groups, live) for index, p in zip(g["params"], h["params"])}
        for g in groups:
            lr = g.get("lr", 0.0)
            if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
                raise CheckpointError(f"{where}: {key} has learning rate {lr!r}; {_FIX}")
        for index, values in per_param.items():
            if index not in params or not isinstance(values, Mapping):
                raise CheckpointError(f"{where}: {key} holds state for parameter {index!r}, which the optimiser "
                                      f"does not have; {_FIX}")
            for name, value in values.items():
                if not isinstance(value, Tensor):
                    continue
                want = params[index]
                if value.dim() and (value.shape != want.shape or value.dtype != want.dtype):
                    raise CheckpointError(f"{where}: {key} {name} of parameter {index} is {_describe(value)}, the "
                                          f"parameter is {_describe(want)}; {_FIX}")
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    raise CheckpointError(f"{where}: {key} {name} of parameter {index} holds non-finite values; "
                                          f"{_FIX}")


def _check_data_state(saved: Any, datamodule: Any, task: Any, where: str) -> None:
    """The sampling state (round, generator, replay buffer) has the structure of a fresh one, and the objects and
    trajectories it holds are the task's: width, token ranges, one length per buffer."""
    fresh = datamodule.rank_state() if hasattr(datamodule, "rank_state") else datamodule.state_dict()
    ranks = saved.get("ranks") if isinstance(saved, Mapping) and "ranks" in saved else [saved]
    if not isinstance(ranks, list):
        raise CheckpointError(f"{where}: the sampling state's ranks are not a list; {_FIX}")
    env = getattr(task, "env", None)
    for state in ranks:
        _same_structure(state, fresh, "sampling state", where)
        _check_buffers(state, env, "sampling state", where)


def _same_structure(saved: Any, fresh: Any, key: str, where: str) -> None:
    """``saved`` holds every key of ``fresh``, with tensors of its dtype and rank (generators: of its size)."""
    if isinstance(fresh, Mapping):
        if not isinstance(saved, Mapping):
            raise CheckpointError(f"{where}: {key} is {type(saved).__name__}, not a mapping; {_FIX}")
        for name, value in fresh.items():
            if name not in saved:
                raise CheckpointError(f"{where}: {key} has no {name}; {_FIX}")
            _same_structure(saved[name], value, f"{key}.{name}", where)
    elif isinstance(fresh, Tensor):
        if not isinstance(saved, Tensor) or saved.dtype != fresh.dtype or saved.dim() != fresh.dim():
            got = _describe(saved) if isinstance(saved, Tensor) else type(saved).__name__
            raise CheckpointError(f"{where}: {key} is {got}, needs a {fresh.dim()}-d {fresh.dtype} tensor; {_FIX}")
        if fresh.dtype == torch.uint8 and saved.numel() != fresh.numel():  # a random generator's state
            raise CheckpointError(f"{where}: {key} is a generator state of {saved.numel()} bytes, this generator's "
                                  f"has {fresh.numel()}; {_FIX}")
    elif isinstance(fresh, (bool, int)):
        if type(saved) is not type(fresh) or (not isinstance(fresh, bool) and saved < 0):
            raise CheckpointError(f"{where}: {key} = {saved!r} is not a {type(fresh).__name__} >= 0; {_FIX}")


_TOKENS = {"x": ("state_dim", "slot_values", 0), "states": ("state_dim", "slot_values", 0),
           "actions": (None, "n_actions", -1), "bwd_actions": (None, "n_bwd_actions", -1)}
"""Integer tensors of saved trajectories and objects: (the env attribute their last dimension must equal, the one
that bounds their values, the smallest value: -1 pads a trajectory's unused steps)."""


def _check_buffers(state: Any, env: Any, key: str, where: str) -> None:
    """Objects and trajectories in the saved state are the task's, and each buffer's tensors have one length."""
    if not isinstance(state, Mapping):
        return
    tensors = {name: value for name, value in state.items() if isinstance(value, Tensor) and value.dim()}
    if len(tensors) > 1 and len({value.shape[0] for value in tensors.values()}) > 1:
        sizes = ", ".join(f"{name} {value.shape[0]}" for name, value in tensors.items())
        raise CheckpointError(f"{where}: {key} holds buffers of different lengths ({sizes}); {_FIX}")
    for name, value in state.items():
        if isinstance(value, Mapping):
            _check_buffers(value, env, f"{key}.{name}", where)
        elif isinstance(value, Tensor) and value.numel():
            _check_values(name, value, env, f"{key}.{name}", where)


def _check_values(name: str, value: Tensor, env: Any, key: str, where: str) -> None:
    if value.is_floating_point():
        bad = ~torch.isfinite(value) | (value <= 0) if name == "beta" else torch.isnan(value)
        if bool(bad.any()):
            raise CheckpointError(f"{where}: {key} holds {'β <= 0 or non-finite' if name == 'beta' else 'NaN'} "
                                  f"values; {_FIX}")
        return
    width, bound, low = _TOKENS.get(name, (None, None, 0))
    high = getattr(env, bound, None) if bound else None
    if width and getattr(env, width, None) is not None and value.shape[-1] != getattr(env, width):
        raise CheckpointError(f"{where}: {key} holds objects of {value.shape[-1]} slots, the task's have "
                              f"{getattr(env, width)}; {_FIX}")
    if high is not None and (int(value.min()) < low or int(value.max()) >= high):
        raise CheckpointError(f"{where}: {key} holds values in [{int(value.min())}, {int(value.max())}], the task's "
                              f"are in [{low}, {high - 1}]; {_FIX}")


def _describe(t: Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def load_model(cls: type, path: str | Path, map_location: Any = None, **overrides: Any) -> Any:
    """A model of class ``cls`` (a GFlowNet) built from a checkpoint's checked settings, with its weights (checked
    against the model before they are loaded)."""
    ckpt = read(path)
    components.load()
    hparams = model_hparams(ckpt, cls, f"checkpoint {path}")
    hparams.update(overrides)
    model = cls(**hparams)
    check_state(ckpt, model, where=f"checkpoint {path}")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the model it describes ({first})") from None
    model.on_load_checkpoint(ckpt)
    if map_location is not None:
        model.to(map_location)
    return model
