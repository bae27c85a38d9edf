"""A stand-in for FLEXS's rna.py, so the RNA converter is tested offline with nothing of FLEXS in the repository.

The shared data hold the RNA task file but not the FLEXS source it is built
from. The stand-in has the structure the converter relies on (a ``registry()``
that assigns ``targets`` and ``starts`` literals) with the values read back from
the shipped task file, and module-level code that would leave a marker file if
anything ran it. A converter that parses it correctly rebuilds the shipped task
file byte for byte. ``test_converters.py::test_rna_task_from_flexs_download``
checks the real file (network; ``LGFN_TEST_NETWORK=1``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lgfn.taskdata.files import data_root

FLEXS_RNA = "rna/flexs_rna.py.txt"


def flexs_like_rna_py(task: dict, marker: Path) -> str:
    """Text shaped like FLEXS's rna.py whose registry() holds the targets and starts of ``task``."""
    targets = [task["target"], *task["other_targets_in_flexs_registry"]]
    starts = {14: {int(k): v for k, v in task["starts"].items()}, 50: {1: "GAAC" * 12 + "GA"}}
    return f'''"""Defines RNA binding landscape and problem registry (test stand-in)."""
import pathlib

pathlib.Path({str(marker)!r}).touch()  # must never run


def helper():
    targets = ["AAAA"]  # not in registry(): ignored
    return targets


def registry():
    # RNA target sequences
    targets = {targets!r}

    starts = {starts!r}

    problems = {{}}
    for t in range(len(targets)):
        problems[f"L14_RNA{{t+1}}"] = {{"params": {{"targets": [targets[t]]}}, "starts": starts[14]}}
    return problems
'''


@pytest.fixture
def flexs_rna_py(tmp_path: Path) -> tuple[Path, Path]:
    """(stand-in rna.py written under tmp_path, the marker file it would create if run)."""
    task = json.loads((data_root() / "rna/rna_l14_rna1_task.json").read_text(encoding="utf-8"))
    marker = tmp_path / "flexs_rna_py_was_run"
    path = tmp_path / "flexs_rna.py.txt"
    path.write_text(flexs_like_rna_py(task, marker), encoding="utf-8")
    return path, marker
