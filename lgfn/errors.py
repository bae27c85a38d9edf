"""Errors a user can cause and fix. The command line prints their message as one line and exits 2;
anything else is a bug, reported as such (``LGFN_DEBUG=1`` shows the traceback).

Errors of the file system (permissions, a full disk, a read-only or missing folder, a name too long) are the
user's or the disk's, never lgfn's: :func:`describe_os_error` words them as one line naming the path and the fix.
"""

from __future__ import annotations

import errno
import os


class LgfnError(Exception):
    """A user error: a bad setting, a missing file, an unusable checkpoint, a failing oracle."""


class ConfigError(LgfnError, ValueError):
    """A setting is out of range or inconsistent; the message names it, its value and what is valid."""


class CheckpointError(LgfnError):
    """A checkpoint is missing, unreadable, or names something lgfn will not build from it."""


class TrainingError(LgfnError):
    """Training cannot go on (e.g. the loss diverged); the checkpoint saved before stopping is named."""


class StorageError(LgfnError):
    """A file or folder cannot be read or written: permissions, a full disk, a read-only file system, a bad path."""


class DiskFullError(StorageError):
    """A write ran out of space; ``folder`` and ``needed`` (bytes) say where and how much, so a caller can add what
    was kept (e.g. the last good checkpoint)."""

    def __init__(self, folder: os.PathLike[str] | str, needed: int | None, free: int | None) -> None:
        self.folder, self.needed, self.free = folder, needed, free
        need = f"needs {size(needed)}" if needed is not None else "needs more"
        have = f", {size(free)} free" if free is not None else ""
        super().__init__(f"no space left in {folder}: the write {need}{have}; free some space there or write "
                         "elsewhere")


FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Error numbers of a write that ran out of room (a full disk, a quota, a file-size limit)."""

_HINTS = {
    errno.EACCES: "permission denied; change its permissions or choose another path",
    errno.EPERM: "operation not permitted; change its permissions or choose another path",
    errno.ENOTDIR: "part of this path is a file, not a folder; choose another path",
    errno.EISDIR: "is a folder; give a file path",
    errno.EROFS: "the file system is read-only; choose a folder on a writable one",
    errno.ENAMETOOLONG: "the name is too long for the file system; choose a shorter path",
    errno.ENOENT: "no such file or folder, and it cannot be created here; check the path",
    errno.EEXIST: "already exists; remove it or choose another path",
    errno.ELOOP: "too many levels of symbolic links; check the path",
    errno.ENOTEMPTY: "the folder is not empty; choose another path",
    errno.EBUSY: "the file or folder is busy; try again or choose another path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
    **{number: "no space left on the device; free some space or write elsewhere" for number in FULL},
}


def describe_os_error(err: OSError) -> str | None:
    """One line for a file-system error a user or a disk causes (the path, what is wrong, the fix), or None for
    one that only a bug in lgfn could cause."""
    hint = _HINTS.get(err.errno) if err.errno is not None else None
    if hint is None:
        return None
    paths = " -> ".join(str(p) for p in (err.filename, err.filename2) if p is not None)
    return f"{paths}: {hint}" if paths else f"{err.strerror or err}: {hint}"


def size(n: int) -> str:
    """Bytes as a short human size (for messages)."""
    if n < 1024:
        return f"{n} B"
    value, unit = float(n), "B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"
