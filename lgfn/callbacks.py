"""What a run leaves behind: a final checkpoint that is known to exist, and a resumable one when it is
stopped (SIGTERM, Ctrl-C, divergence)."""

from __future__ import annotations

import logging
from pathlib import Path
from lightning.pytorch import Callback, LightningModule, Trainer
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


def run_callbacks() -> list[Callback]:
    """The callbacks every ``lgfn fit|validate|test`` run gets."""
    return [FinalCheckpoint(), InterruptCheckpoint()]
