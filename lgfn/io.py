"""Reading and writing files that a later command reads (CSV of samples, checkpoints, lists of object strings).

Every write is crash-safe: the bytes go to a temporary file in the destination folder (so the final rename never
becomes a copy across file systems), are flushed and fsynced, and the file is renamed into place, the folder
fsynced after. A reader, a kill -9 or a full disk never leaves a torn file under the real name: the name holds
either its old content or all of the new. A write that runs out of space raises :class:`DiskFullError` naming the
folder and the size needed.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from lgfn.errors import FULL, ConfigError, DiskFullError

_CHUNK = 1 << 22


def read_object_strings(path: str | Path) -> list[str]:
    """Object strings from a CSV with an ``x`` column, or a text file with one per line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"objects file {path} not found; give a CSV with an 'x' column or one object per line")
    try:
        text = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ConfigError(f"objects file {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                          f"{err.start}); save it as UTF-8") from None
    if text and text[0].split(",")[0].strip() == "x":
        return [row["x"] for row in csv.DictReader(text)]
    return [line.strip() for line in text if line.strip()]


@contextmanager
def replacing(path: str | Path, needed: int | None = None) -> Iterator[Path]:
    """A temporary path in ``path``'s folder for a writer to fill (one that takes a file name, e.g. an SDF writer);
    when the block ends without error it is fsynced and renamed to ``path``, else removed. ``needed`` (bytes, if
    known) is named when the disk is full."""
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    # a name near the file system's limit stays writable: the temporary name is cut, never the final one
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name[:180]}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # the mode any new file gets (mkstemp's is private)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in FULL:
            raise DiskFullError(folder, needed, _free(folder)) from None
        raise
    _fsync_folder(folder)


def write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """``data`` written to ``path`` crash-safely (see the module docstring)."""
    with replacing(path, len(data)) as tmp:
        fd = os.open(tmp, os.O_WRONLY)
        try:
            _write_all(fd, memoryview(data))
        finally:
            os.close(fd)


def _write_all(fd: int, data: memoryview) -> None:
    """All of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    while len(data):
        written = os.write(fd, data[:_CHUNK])
        data = data[written:]


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; a file system that cannot sync a folder (some network ones) is left as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _free(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def write_csv(path: str | Path, columns: dict[str, Sequence[Any]]) -> None:
    """A CSV with one column per key (all of equal length), written crash-safely."""
    names = list(columns)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(names)
    writer.writerows(zip(*(columns[n] for n in names)))
    write_bytes(path, text.getvalue().encode("utf-8"))
