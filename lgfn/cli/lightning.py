"""LightningCLI wiring: the model, the sampling data modules and trainer defaults."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from lightning.pytorch.cli import LightningCLI

from lgfn.data.modules import OfflineData, OnlineData, SamplingDataModule  # noqa: F401 (subclasses by name)
from lgfn.module import GFlowNet

# Lightning flags our deliberate choices: sampling inside training_step, no dataloader workers, and
# args passed alongside sys.argv (lgfn takes --plugins out, but leaves it in sys.argv for ddp's ranks).
for _pattern in (".*dataloader_iter.*", ".*does not have many workers.*", ".*LeafSpec.*", ".*litlogger.*",
                 ".*litmodels.*", ".*args parameter is intended to run from within Python.*",
                 ".*`training_step` returned `None`.*"):  # a batch the oracle scored none of
    warnings.filterwarnings("ignore", message=_pattern)

TRAINER_DEFAULTS = {
    "max_epochs": 1,  # one epoch is the whole of Algorithm 1 (the data module's rounds)
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 25,
}


class LgfnCLI(LightningCLI):
    """LightningCLI with lgfn's defaults: online Algorithm 1 data unless the config says otherwise."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        parser.set_defaults({"data": {"class_path": "lgfn.data.modules.OnlineData"}})

    def after_fit(self) -> None:
        """Checkpoint the final model when no checkpoint holds it yet.

        ModelCheckpoint saves after validations when ``val_check_interval`` is set; a run shorter
        than that interval (or whose last step is not a validation step) would otherwise end with
        no checkpoint of its final weights.
        """
        trainer, callback = self.trainer, self.trainer.checkpoint_callback
        if callback is None or not callback.dirpath or trainer.global_step == 0:
            return
        directory = Path(callback.dirpath)
        # rank 0 decides: saving is collective under DDP, so every rank must agree
        if trainer.strategy.broadcast(not any(directory.glob(f"*step={trainer.global_step}*.ckpt"))):
            trainer.save_checkpoint(directory / f"epoch={trainer.current_epoch - 1}-step={trainer.global_step}.ckpt")


def run_lightning_cli(argv: Sequence[str] | None) -> LgfnCLI:
    return LgfnCLI(
        GFlowNet,
        SamplingDataModule,
        subclass_mode_data=True,
        args=None if argv is None else list(argv),
        seed_everything_default=0,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "yaml"},
    )
