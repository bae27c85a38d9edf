"""What a run shows and leaves behind: progress over the whole run, a summary at the end, a final checkpoint
that is known to exist, a resumable one when it is stopped (SIGTERM, Ctrl-C, divergence), checkpoints that are
written crash-safely and verified before use, and an ending that says so when the run did not train."""

from __future__ import annotations

import io
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lgfn import checkpoints
from lgfn.errors import CheckpointError, DiskFullError, TrainingError, describe_os_error
from lgfn.io import write_bytes

log = logging.getLogger("lgfn")

MAX_SKIPPED_SHARE = 0.5
"""A fit in which more than this share of its steps was skipped (non-finite loss or gradient) does not end as done."""


class VerifiedCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files, crash-safe and verified.

    Writes go through :func:`lgfn.io.write_bytes` (temporary file in the destination folder, fsynced, renamed), so
    a kill or a full disk never leaves a torn file under a checkpoint's name; a full disk names the folder, the
    size needed and the last good checkpoint. Reads verify the file (:func:`lgfn.checkpoints.read`) and check its
    state against the model and data being restored (:func:`lgfn.checkpoints.check_state`) before Lightning
    restores any of it.
    """

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.trainer = trainer

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("lgfn's checkpoint writer takes no storage_options")
        path = Path(path)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            write_bytes(path, buffer.getbuffer())
        except DiskFullError as err:
            last, _ = checkpoints.newest(path.parent)
            kept = (f"the last good checkpoint is {last} (resume with --ckpt_path {last})" if last is not None
                    else "no earlier checkpoint of this run exists")
            raise CheckpointError(f"checkpoint {path.name} could not be written: {err}; {kept}") from None
        except OSError as err:
            raise CheckpointError(f"checkpoint {path} could not be written: "
                                  f"{describe_os_error(err) or err}; set --trainer.default_root_dir") from None

    def load_checkpoint(self, path: Any, map_location: Callable | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        where = f"checkpoint {path}"
        ckpt = checkpoints.read(path, where)
        model = self.trainer.lightning_module
        checkpoints.check_state(ckpt, model, self.trainer.datamodule,
                                fitting=self.trainer.state.fn == TrainerFn.FITTING, where=where)
        return ckpt


class SafeCheckpoints(Callback):
    """Puts :class:`VerifiedCheckpointIO` in place before anything is restored or saved (a checkpoint plugin the
    user configured is kept as it is)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = VerifiedCheckpointIO(trainer)


def checkpoint_dir(trainer: Trainer) -> Path | None:
    """Where this run's checkpoints go (None when checkpointing is off)."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    if callback.dirpath:
        return Path(callback.dirpath)
    root = Path(trainer.log_dir or trainer.default_root_dir)
    return root / "checkpoints"


class FinalCheckpoint(Callback):
    """Saves the final weights when no checkpoint holds them yet, and stops loudly when none can be written.

    ModelCheckpoint saves after validations; a run shorter than ``val_check_interval`` (or whose last step is
    not a validation step) would otherwise end with no checkpoint of its final weights.
    """

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        directory = checkpoint_dir(trainer)
        if directory is None or trainer.global_step == 0:
            return
        pattern = f"*step={trainer.global_step}*.ckpt"
        # rank 0 decides: saving is collective under DDP, so every rank must agree
        if trainer.strategy.broadcast(not any(directory.glob(pattern))):
            path = directory / f"epoch={max(trainer.current_epoch - 1, 0)}-step={trainer.global_step}.ckpt"
            try:
                trainer.save_checkpoint(path)
            except OSError as err:
                raise CheckpointError(f"the final checkpoint could not be written to {path} ({err.strerror or err}); "
                                      "make the folder writable or set --trainer.default_root_dir") from None
        if trainer.is_global_zero and not any(directory.glob(pattern)):
            raise CheckpointError(f"no checkpoint of the final weights exists in {directory}; make the folder "
                                  "writable or set --trainer.default_root_dir")


class InterruptCheckpoint(Callback):
    """On SIGTERM, Ctrl-C or divergence: save a resumable checkpoint and say where (the exit is non-zero)."""

    STOPS = (SIGTERMException, KeyboardInterrupt, TrainingError)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        directory = checkpoint_dir(trainer)
        if not isinstance(exception, self.STOPS) or directory is None:
            return
        if trainer.global_step == 0:
            if trainer.state.fn == TrainerFn.FITTING and not trainer.ckpt_path:
                log.warning("stopped before the first training step: nothing was saved")
            return
        if any(directory.glob(f"*step={trainer.global_step}.ckpt")):
            return  # this step's weights are saved already (e.g. a run found untrained once it ended)
        path = directory / f"interrupted-step={trainer.global_step}.ckpt"
        try:
            trainer.save_checkpoint(path)
        except Exception as err:  # noqa: BLE001 (the run is ending anyway: say why nothing was saved)
            log.error("could not save a checkpoint to %s (%s)", path, err)
            return
        log.warning("saved a resumable checkpoint at step %d: %s (resume with --ckpt_path %s)",
                    trainer.global_step, path, path)


class RunProgress(TQDMProgressBar):
    """Training progress over the whole run (its steps are known up front, so the bar has a total and an ETA),
    evaluation progress per β."""

    @property
    def total_train_batches(self) -> int | float:
        total = getattr(self.trainer.datamodule, "total_steps", None)
        return total if total is not None else super().total_train_batches

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class RunSummary(Callback):
    """At the end of ``fit``: wall and CPU time, the last evaluation's key numbers per β, what discovery found,
    and the checkpoint to sample from."""

    KEYS = (("l1", "L1 {:.3f}"), ("mean_reward", "mean reward {:.4g}"), ("top100_reward", "top-100 reward {:.4g}"),
            ("distinct", "{:.0f} distinct"))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._oracle = oracle_seconds(pl_module)
        self.__dict__.pop("_done", None)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # after a resume's optimiser state is restored: the steps before it are not this fit's
        self._steps = optimizer_steps(trainer)
        self._skipped = getattr(pl_module, "nonfinite_steps", 0)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # counted before Lightning tears the optimisers down; judged once the final checkpoint is saved
        self._done = (optimizer_steps(trainer) - self._steps, getattr(pl_module, "nonfinite_steps", 0) - self._skipped)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not hasattr(self, "_wall"):
            return
        if hasattr(self, "_done"):
            check_trained(trainer, pl_module, *self._done)
        if not trainer.is_global_zero:
            return
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        oracle = oracle_seconds(pl_module) - self._oracle
        print("\n".join(summary_lines(trainer, wall, cpu, oracle)), flush=True)


def optimizer_steps(trainer: Trainer) -> int:
    """Optimiser steps that updated the weights: Adam-like optimisers count them per parameter (a skipped step
    leaves no gradient, so no count), others are taken at Lightning's step count."""
    counts = [int(state["step"]) for optimizer in trainer.optimizers for state in optimizer.state.values()
              if isinstance(state.get("step"), (int, float, torch.Tensor))]
    return max(counts) if counts else trainer.global_step


def check_trained(trainer: Trainer, model: LightningModule, taken: int, skipped: int) -> None:
    """An honest ending: a fit that took no optimiser step, or skipped more than ``MAX_SKIPPED_SHARE`` of its steps
    for a non-finite loss or gradient, stops with the cause and the settings to change, not as done."""
    tried = taken + skipped
    if taken > 0 and skipped <= MAX_SKIPPED_SHARE * tried:
        return
    data, hp = trainer.datamodule, getattr(model, "hparams", {})
    betas = ", ".join(f"data.{name} = {getattr(data, name)!r}" for name in ("train_beta", "explore_beta")
                      if getattr(data, name, None) is not None)
    lrs = ", ".join(f"model.{k} = {hp[k]:g}" for k in ("lr_policy", "lr_z", "lr_scale") if k in hp)
    saved = checkpoints.newest(checkpoint_dir(trainer) or Path(trainer.default_root_dir))[0]
    kept = f"; {saved} holds its weights" if saved is not None and taken else ""
    if taken == 0 and skipped == 0 and trainer.ckpt_path:
        log.warning("the run resumed from %s took no step: that checkpoint had already done what this run asks "
                    "(raise data.rounds to train on)", trainer.ckpt_path)
        return
    if taken == 0 and skipped == 0:
        raise TrainingError("the run took no optimiser step: no training batch had objects to learn from; check "
                            "the data settings (data.rounds, data.samples_per_round) and the oracle")
    if taken == 0:
        raise TrainingError(f"the run took no optimiser step: all {skipped} steps had a non-finite loss or gradient "
                            f"from the start, which points at the β range ({betas}): R(x)^β overflows; narrow it")
    raise TrainingError(f"{skipped} of {tried} steps ({skipped / tried:.0%}) were skipped for a non-finite loss or "
                        f"gradient, more than the {MAX_SKIPPED_SHARE:.0%} a finished run may skip; lower the learning "
                        f"rates ({lrs}) or narrow the β range ({betas}){kept}")


def oracle_seconds(module: LightningModule) -> float:
    """Wall time this process has spent in oracle calls (tasks that call an oracle through an executor)."""
    calls = getattr(getattr(module, "task", None), "oracle_calls", None)
    return calls.seconds if calls is not None else 0.0


def summary_lines(trainer: Trainer, wall: float, cpu: float, oracle: float = 0.0) -> list[str]:
    """The lines :class:`RunSummary` prints."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    lines = [f"lgfn: fit done: {trainer.global_step} steps in {_duration(wall)} wall, {_duration(cpu)} CPU"]
    evaluating = getattr(trainer.lightning_module, "eval_seconds", 0.0)
    if evaluating:
        lines[0] += f", {_duration(evaluating)} of it evaluating ({evaluating / max(wall, 1e-9):.0%})"
    if oracle:
        lines[0] += f", {_duration(oracle)} in the oracle ({oracle / max(wall, 1e-9):.0%})"
    betas = sorted({float(m.group(1)) for k in metrics for m in [re.search(r"^val/\w+@(.+)$", k)] if m})
    for beta in betas:
        parts = [fmt.format(metrics[f"val/{key}@{beta:g}"]) for key, fmt in RunSummary.KEYS
                 if f"val/{key}@{beta:g}" in metrics]
        lines.append(f"  β={beta:g}: " + ", ".join(parts))
    found = [f"{k.split('/')[1].replace('_', ' ')} {metrics[k]:.4g}" for k in
             ("discovery/modes_found", "discovery/distinct_objects", "discovery/top100_reward") if k in metrics]
    if found:
        lines.append("  found so far: " + ", ".join(found))
    directory = checkpoint_dir(trainer)
    saved = sorted(directory.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if directory and directory.is_dir() else []
    if saved:
        lines.append(f"  checkpoint: {saved[-1]} (lgfn sample --ckpt {saved[-1].parent.parent} --beta B --n N "
                     "--out samples.csv)")
    return lines


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def run_callbacks() -> list[Callback]:
    """The callbacks every ``lgfn fit|validate|test`` run gets (the progress bar is added apart, as it must not be
    when ``enable_progress_bar`` is off)."""
    return [SafeCheckpoints(), FinalCheckpoint(), InterruptCheckpoint(), RunSummary()]
