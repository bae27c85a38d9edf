"""LightningCLI wiring: the model, the sampling data modules, trainer defaults, and the checks that run
before any work (settings, checkpoints given to ``--ckpt_path``)."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from lgfn import checkpoints
from lgfn.training.callbacks import RunProgress, run_callbacks
from lgfn.training.datamodules import OfflineData, OnlineData, SamplingDataModule  # noqa: F401 (subclasses by name)
from lgfn.errors import CheckpointError, ConfigError
from lgfn.gflownet import GFlowNet
from lgfn.settings import RENAMED, model_settings, renamed

# Lightning flags our deliberate choices: sampling inside training_step, no dataloader workers, and
# args passed alongside sys.argv (lgfn takes --plugins out, but leaves it in sys.argv for ddp's ranks).
for _pattern in (".*dataloader_iter.*", ".*does not have many workers.*", ".*LeafSpec.*", ".*litlogger.*",
                 ".*litmodels.*", ".*args parameter is intended to run from within Python.*",
                 ".*`training_step` returned `None`.*"):  # a skipped step (nothing scored, non-finite loss)
    warnings.filterwarnings("ignore", message=_pattern)

TRAINER_DEFAULTS = {
    "max_epochs": 1,  # one epoch is the whole of Algorithm 1 (the data module's rounds)
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 50,
    "val_check_interval": 2000,  # evaluate every 2000 steps (and always after the last one)
    "enable_model_summary": False,  # lgfn reports at the end instead
}
PARSER_KWARGS: dict[str, Any] = {"parser_mode": "yaml", "exit_on_error": False, "allow_abbrev": False}


class SaveRunConfig(SaveConfigCallback):
    """Saves the run's full config next to its logs. A run without a logger writes into the root folder
    itself, so an earlier run's config there is refused rather than overwritten."""

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if trainer.logger is None:
            path = Path(trainer.default_root_dir) / self.config_filename
            if path.exists() and not self.already_saved:
                raise ConfigError(f"{path} holds the config of an earlier run without a logger; use another "
                                  "--trainer.default_root_dir (or keep the logger: each run gets its own version_N)")
            self.overwrite = False
        super().setup(trainer, pl_module, stage)


class LgfnCLI(LightningCLI):
    """LightningCLI with lgfn's defaults (online Algorithm 1 data) and checks before any work."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """fit, validate and test: lgfn samples with ``lgfn sample`` rather than ``predict``."""
        return {name: keys for name, keys in LightningCLI.subcommands().items() if name != "predict"}

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.set_defaults({"data": {"class_path": "lgfn.training.datamodules.OnlineData"}})
        parser.add_argument("--plugins", type=list[str] | None, default=None,
                            help="modules or .py files that register components, imported first "
                                 "(taken out of the command line before parsing; in a config file: a list)")

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """A checkpoint given to ``--ckpt_path`` is read as data and checked before its settings are used.

        Its components must be registered; its task must be the config's (a checkpoint of another task is
        refused); every other setting it holds replaces the config's, and each replaced one is named. The path
        is then held back until the classes are built, so Lightning does not read the checkpoint's settings
        a second time, unchecked (``after_instantiate_classes`` gives it back for the run).
        """
        super().parse_arguments(parser, args)
        self._ckpt_path = None
        sub = self.config.get("subcommand")
        if not sub:
            return
        cfg = self.config[sub]
        for old, new in RENAMED.items():  # an old setting name: said once, then read as the new one from here on
            if cfg.model.get(old) is not None:
                cfg.model[new], cfg.model[old] = renamed(cfg.model.as_dict())[new], None
        path = cfg.get("ckpt_path")
        if not path:
            return
        if "://" in str(path):
            raise CheckpointError(f"--ckpt_path {path}: give a local file (download it first); lgfn reads "
                                  "checkpoints as data from disk only")
        self._ckpt_path, cfg.ckpt_path = path, None
        if str(path) in ("last", "best", "hpc"):
            return  # Lightning's own names for checkpoints of this run
        ckpt = checkpoints.read(path, f"--ckpt_path {path}")
        saved = checkpoints.model_hparams(ckpt, GFlowNet, f"--ckpt_path {path}")
        config_model = cfg.model.as_dict()
        specs = model_settings(config_model)
        saved_specs = model_settings({**config_model, **saved})
        if saved_specs["task"] != specs["task"]:
            raise ConfigError(f"--ckpt_path {path} was trained on task {_describe(saved_specs['task'])}, but the "
                              f"config names {_describe(specs['task'])}; use a checkpoint of this task or the "
                              "checkpoint's config")
        changed = [key for key in saved if key != "task" and saved_specs[key] != specs[key]]
        if changed:
            logging.getLogger("lgfn").info("the checkpoint's settings replace the config's model.%s",
                                           ", model.".join(sorted(changed)))
        self.config = self.parser.parse_object({sub: {"model": saved}}, self.config)
        self.config[sub].weights_only = True  # resuming reads optimiser and sampler state as data too

    def after_instantiate_classes(self) -> None:
        """The checked ``--ckpt_path`` goes back into the config: the run resumes from it, and the saved
        config names it."""
        if self._ckpt_path is not None:
            self.config[self.subcommand].ckpt_path = self._ckpt_path
            self.config_init[self.subcommand].ckpt_path = self._ckpt_path

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The trainer, with lgfn's run progress unless the progress bar is turned off."""
        config = self.config_init[self.subcommand].trainer
        if config.get("enable_progress_bar", True) is not False and "callbacks" not in kwargs:
            callbacks = config.get("callbacks") or []
            kwargs["callbacks"] = [*(callbacks if isinstance(callbacks, list) else [callbacks]), RunProgress()]
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        """Every setting is checked before anything is built, so no data is loaded for a run that cannot start."""
        from lgfn.plugins import load_plugins

        cfg = self.config[self.subcommand]
        load_plugins(cfg.get("plugins") or [])
        model_settings(cfg.model.as_dict())
        data = cfg.data.as_dict()
        cls = _import_data_class(data["class_path"])
        cls(**data.get("init_args", {}))  # cheap: a data module reads no data until setup


def check_config_files(argv: Sequence[str]) -> None:
    """Each ``--config FILE`` exists and holds a YAML mapping, or a one-line error with the file and line."""
    import yaml

    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--config="):
            name = arg.split("=", 1)[1]
        else:
            continue
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"--config {name}: " + ("is a folder" if path.is_dir() else "file not found"))
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise ConfigError(f"--config {name}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                              f"{err.start}); save it as UTF-8") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ConfigError(f"--config {name}: YAML syntax error{where}: {getattr(err, 'problem', None) or err}") from None
        if not isinstance(data, dict):
            got = "an empty file" if data is None else f"{type(data).__name__} {data!r}"[:80]
            raise ConfigError(f"--config {name}: must be a YAML mapping of settings (trainer:, model:, data:), got {got}")


def _describe(spec: Any) -> str:
    init = spec.get("init_args", {}) if isinstance(spec, dict) else {}
    return f"{spec['class_path'].rpartition('.')[2]}({', '.join(f'{k}={v!r}' for k, v in init.items())})"


def _import_data_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    import importlib

    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, SamplingDataModule)):
        raise ConfigError(f"data.class_path = {path!r}: must be OnlineData or OfflineData")
    return cls


_KEY = re.compile(r'(?:Parser key|Key) "([^"]+)"')


def condense_parser_error(err: BaseException) -> str:
    """One line from jsonargparse's nested report: the full key of the setting and the innermost reason."""
    chain: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__
    keys: list[str] = []
    for e in chain:
        for key in _KEY.findall(str(e)):
            if key not in keys and not any(k.endswith("." + key) for k in keys):
                keys.append(key if not keys or key.startswith(keys[-1].split(".")[0] + ".") else f"{keys[-1]}.{key}")
    lines = [line.strip() for line in str(chain[-1]).splitlines() if line.strip()]
    reason = next((line for line in lines if not _KEY.fullmatch(line.rstrip(":"))), lines[0] if lines else "")
    reason = reason.removeprefix("- ")
    if "dot import path" in reason or "Import path" in reason:
        reason += " (data.class_path must be OnlineData or OfflineData)"
    key = keys[-1] if keys else ""
    line = f"{key}: {reason}" if key and key not in reason else reason or "invalid command line or config"
    return line[:400]


def run_lightning_cli(argv: Sequence[str] | None) -> LgfnCLI:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banners or tips
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    return LgfnCLI(
        GFlowNet,
        SamplingDataModule,
        subclass_mode_data=True,
        args=None if argv is None else list(argv),
        seed_everything_default=0,
        trainer_defaults={**TRAINER_DEFAULTS, "callbacks": run_callbacks()},
        save_config_callback=SaveRunConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={**PARSER_KWARGS, **{name: dict(PARSER_KWARGS) for name in ("fit", "validate", "test")}},
    )
