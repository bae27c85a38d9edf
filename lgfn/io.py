"""Reading and writing object files (CSV of samples, lists of object strings)."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence


def read_object_strings(path: str | Path) -> list[str]:
    """Object strings from a CSV with an ``x`` column, or a text file with one per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"objects file {path} not found; give a CSV with an 'x' column or one object per line")
    text = path.read_text().splitlines()
    if text and text[0].split(",")[0].strip() == "x":
        with path.open(newline="") as f:
            return [row["x"] for row in csv.DictReader(f)]
    return [line.strip() for line in text if line.strip()]


def write_csv(path: str | Path, columns: dict[str, Sequence[Any]]) -> None:
    """A CSV with one column per key (all of equal length), written atomically: a reader (or a failed run)
    never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(columns)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            writer.writerows(zip(*(columns[n] for n in names)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
