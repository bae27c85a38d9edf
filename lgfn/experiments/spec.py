"""An experiment file: tasks × methods × settings × seeds, each cell a complete ``lgfn fit`` config.

The YAML (see ``configs/experiments/``) names base config files per task (paths relative to the
experiment file), override blocks per method and per setting, and profiles (``quick``, ``full``)
that change budgets. Overrides use dotted keys (``data.init_args.rounds: 20``); a value replaces
the whole entry at that key. Layering, later wins: task config files, ``common``, the task's
``task_overrides``, the setting, the method, then the profile's ``common`` and ``task_overrides``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from lgfn.errors import LgfnError

# where bundled experiments are looked for: the current folder's configs (an installed package,
# e.g. the Docker image, runs from a checkout of the configs) and the source tree's
EXPERIMENT_DIRS = (Path("configs") / "experiments", Path(__file__).resolve().parents[2] / "configs" / "experiments")
PROFILES = ("quick", "full")


class ExperimentError(LgfnError, ValueError):
    """A bad experiment file or request; the message says what to fix."""


@dataclass(frozen=True)
class Cell:
    """One run of the grid: an ordinary ``lgfn fit`` configuration."""

    task: str
    method: str
    setting: str
    seed: int
    config: dict[str, Any] = field(compare=False, repr=False)

    @property
    def id(self) -> str:
        return f"{self.task}-{self.method}-{self.setting}-s{self.seed}"


@dataclass
class Experiment:
    name: str
    title: str
    report: str
    profile: str
    seeds: int
    cells: list[Cell]
    options: dict[str, Any]  # free-form settings the report reads (e.g. divergence thresholds)


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """``config["a"]["b"]["c"] = value`` for ``key = "a.b.c"``, creating levels as needed."""
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {}
        node = child
    node[leaf] = copy.deepcopy(value)


def _merge(base: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of nested config dicts, as ``lgfn fit --config a --config b`` does: a new
    ``class_path`` replaces the whole entry, since the old ``init_args`` belong to the old class."""
    if "class_path" in other and other.get("class_path") != base.get("class_path"):
        return copy.deepcopy(dict(other))
    out = copy.deepcopy(base)
    for k, v in other.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ExperimentError(f"config file {path} not found; check the path in the experiment file")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ExperimentError(f"{path} must hold a YAML mapping")
    return data


def _mapping(raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ExperimentError(f"{where}: '{key}' must be a mapping")
    return dict(value)


def find_experiment(name: str) -> Path:
    """A bundled experiment by name, or a path to a YAML file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ExperimentError(f"experiment file {path} not found")
        return path
    for folder in EXPERIMENT_DIRS:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    known = sorted({p.stem for folder in EXPERIMENT_DIRS for p in folder.glob("*.yaml")})
    if not known:
        raise ExperimentError("no configs/experiments folder here; run from a checkout of lgfn or pass a YAML file")
    raise ExperimentError(f"unknown experiment {name!r}; choose one of {', '.join(known)} or pass a YAML file")


def load_experiment(name: str, profile: str = "quick", seeds: int | None = None) -> Experiment:
    """Expand an experiment file into its cells for one profile."""
    path = find_experiment(name)
    raw = _read_yaml(path)
    where = str(path)
    if profile not in PROFILES:
        raise ExperimentError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    prof = _mapping(_mapping(raw, "profiles", where), profile, f"{where} profiles")
    tasks = _mapping(raw, "tasks", where)
    methods = _mapping(raw, "methods", where)
    settings = _mapping(raw, "settings", where) or {"default": {}}
    if not tasks or not methods:
        raise ExperimentError(f"{where}: needs 'tasks' and 'methods'")
    task_names = prof.get("tasks", list(tasks))
    method_names = prof.get("methods", list(methods))
    setting_names = prof.get("settings", list(settings))
    for kind, chosen, known in (("task", task_names, tasks), ("method", method_names, methods),
                                ("setting", setting_names, settings)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ExperimentError(f"{where}: profile {profile} names unknown {kind} {unknown[0]!r}")
    n_seeds = int(seeds if seeds is not None else prof.get("seeds", raw.get("seeds", 1)))
    if n_seeds < 1:
        raise ExperimentError(f"--seeds must be at least 1, got {n_seeds}")
    skip = {tuple(s) for s in raw.get("skip", [])}  # (task, method) pairs that make no sense

    cells = []
    for task in task_names:
        files = tasks[task] if isinstance(tasks[task], list) else [tasks[task]]
        base: dict[str, Any] = {}
        for f in files:
            base = _merge(base, _read_yaml(path.parent / f))
        layers = [raw.get("common") or {}, _mapping(_mapping(raw, "task_overrides", where), task, where)]
        for setting in setting_names:
            for method in method_names:
                if (task, method) in skip:
                    continue
                stack = layers + [settings[setting] or {}, methods[method] or {}, prof.get("common") or {},
                                  _mapping(_mapping(prof, "task_overrides", where), task, where)]
                for seed in range(n_seeds):
                    config = copy.deepcopy(base)
                    for layer in stack:
                        for key, value in layer.items():
                            set_dotted(config, key, value)
                    config["seed_everything"] = seed
                    set_dotted(config, "data.init_args.seed", seed)
                    cells.append(Cell(task, method, setting, seed, config))
    return Experiment(name=raw.get("name", path.stem), title=raw.get("title", path.stem), report=raw.get("report", path.stem),
                      profile=profile, seeds=n_seeds, cells=cells, options=_mapping(raw, "options", where))
