"""Run an experiment's cells as ``lgfn fit`` subprocesses, one per core, resumably.

Each cell lives in ``OUT/cells/<cell id>/``: ``config.yaml`` (rerun it by hand with
``lgfn fit --config``), ``metrics.csv`` (Lightning's CSVLogger, written as training goes),
``log.txt`` and, once finished, ``result.json``. A cell with a ``result.json`` is never run
again, so an interrupted experiment loses at most the cells in progress.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

import yaml

from lgfn.errors import ConfigError
from lgfn.experiments.spec import Cell, Experiment

RESULT = "result.json"


def cell_dir(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.id


def cell_config(cell: Cell, directory: Path) -> dict[str, Any]:
    """The cell's config with its outputs pointed at its folder (CSV metrics, checkpoints)."""
    config = dict(cell.config)
    trainer = dict(config.get("trainer") or {})
    trainer.update({
        "default_root_dir": str(directory),
        "enable_progress_bar": False,
        "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                   "init_args": {"save_dir": str(directory), "name": "", "version": ""}},
    })
    config["trainer"] = trainer
    return config


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``metrics.csv`` as {metric: [(step, value), ...]}, blanks skipped."""
    series: dict[str, list[tuple[int, float]]] = {}
    if not path.is_file():
        return series
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def summarize(series: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """The last value of every metric (the final evaluation for ``val/*``)."""
    return {key: points[-1][1] for key, points in series.items() if points}


def run_cell(cell: Cell, out: Path, python: str = sys.executable) -> dict[str, Any]:
    """Run one cell to completion and write its ``result.json``; returns the result."""
    directory = cell_dir(out, cell)
    if directory.exists():  # a cell interrupted earlier starts again from scratch
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    config_path = directory / "config.yaml"
    with open(config_path, "w") as f:
        yaml.safe_dump(cell_config(cell, directory), f, sort_keys=False)
    env = {**os.environ, "LGFN_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    with open(directory / "log.txt", "w") as log:
        rc = subprocess.call([python, "-m", "lgfn", "fit", "--config", str(config_path)],
                             stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    final = summarize(read_metrics(directory / "metrics.csv"))
    error = "" if rc == 0 else _last_line(directory / "log.txt")
    result = {"cell": cell.id, "task": cell.task, "method": cell.method, "setting": cell.setting, "seed": cell.seed,
              "status": "ok" if rc == 0 else "failed", "returncode": rc, "error": error, "wall_s": round(wall, 2),
              "final": {k: v for k, v in final.items() if math.isfinite(v)},
              "nonfinite": sorted(k for k, v in final.items() if not math.isfinite(v))}
    tmp = directory / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(directory / RESULT)  # atomic: a result file is always complete
    return result


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def load_result(out: Path, cell: Cell) -> dict[str, Any] | None:
    path = cell_dir(out, cell) / RESULT
    return json.loads(path.read_text()) if path.is_file() else None


def run_experiment(exp: Experiment, out: Path, workers: int | None = None, rerun_failed: bool = False,
                   tasks: set[str] | None = None, echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run the cells that have no result yet (and failed ones with ``rerun_failed``), in parallel,
    optionally only those of some ``tasks``. Returns the results of every finished cell, in order.
    """
    unknown = sorted((tasks or set()) - {c.task for c in exp.cells})
    if unknown:
        raise ConfigError(f"experiment {exp.name} has no task {unknown[0]!r}; its tasks: "
                         + ", ".join(dict.fromkeys(c.task for c in exp.cells)))
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, os.cpu_count() or 1)
    todo = []
    for cell in exp.cells:
        if tasks is not None and cell.task not in tasks:
            continue
        done = load_result(out, cell)
        if done is None or (rerun_failed and done["status"] != "ok"):
            todo.append(cell)
    n_done = sum(load_result(out, c) is not None for c in exp.cells)
    echo(f"{exp.name} ({exp.profile}): {len(exp.cells)} cells, {n_done} done, "
         f"{len(todo)} to run on {workers} processes -> {out}")
    lock, start, finished = threading.Lock(), time.perf_counter(), 0
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(run_cell, cell, out): cell for cell in todo}
        for future in as_completed(futures):
            result = future.result()
            with lock:
                finished += 1
                elapsed = time.perf_counter() - start
                eta = elapsed / finished * (len(todo) - finished)
                status = "ok" if result["status"] == "ok" else f"FAILED ({result['error'][:120]})"
                echo(f"[{finished}/{len(todo)}] {result['cell']}: {status} in {result['wall_s']:.0f} s; "
                     f"elapsed {elapsed / 60:.1f} min, about {eta / 60:.1f} min left")
    return [r for r in (load_result(out, c) for c in exp.cells) if r is not None]
