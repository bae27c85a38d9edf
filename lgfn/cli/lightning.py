"""LightningCLI wiring: the model, the sampling data modules and trainer defaults."""

from __future__ import annotations

import warnings
from typing import Sequence

from lightning.pytorch.cli import LightningCLI

from lgfn.data.modules import OfflineData, OnlineData, SamplingDataModule  # noqa: F401 (subclasses by name)
from lgfn.module import GFlowNet

# Lightning flags our deliberate choices: sampling inside training_step, no dataloader workers.
for _pattern in (".*dataloader_iter.*", ".*does not have many workers.*", ".*LeafSpec.*", ".*litlogger.*",
                 ".*litmodels.*"):
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
