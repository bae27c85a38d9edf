"""What a run shows and leaves behind: progress over the whole run, a summary at the end, a final checkpoint
that is known to exist, and a resumable one when it is stopped (SIGTERM, Ctrl-C, divergence)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lgfn.errors import CheckpointError, TrainingError

log = logging.getLogger("lgfn")


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
        if not isinstance(exception, self.STOPS) or directory is None or trainer.global_step == 0:
            return
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

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or not hasattr(self, "_wall"):
            return
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        print("\n".join(summary_lines(trainer, wall, cpu)), flush=True)


def summary_lines(trainer: Trainer, wall: float, cpu: float) -> list[str]:
    """The lines :class:`RunSummary` prints."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    lines = [f"lgfn: fit done: {trainer.global_step} steps in {_duration(wall)} wall, {_duration(cpu)} CPU"]
    evaluating = getattr(trainer.lightning_module, "eval_seconds", 0.0)
    if evaluating:
        lines[0] += f", {_duration(evaluating)} of it evaluating ({evaluating / max(wall, 1e-9):.0%})"
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
    return [FinalCheckpoint(), InterruptCheckpoint(), RunSummary()]
