"""Find, fetch and verify task data files; the whole project reads data only through ``data_path``.

Where a file is looked for, in order: ``LGFN_DATA_DIR`` (if set), then the cache
folder (``LGFN_CACHE_DIR``, default ``~/.cache/lgfn``). The first copy that
matches the manifest wins; a copy is verified once per process (again if its
size or mtime changes), so repeated calls cost one ``stat``.

A file found nowhere is fetched, from the first source that works: the mirror
``$LGFN_DATA_URL/<relpath>`` (if set; any URL urllib opens, ``file://`` too),
the upstream URL of the manifest, then a converter from upstream files (which
are themselves resolved this way). ``LGFN_OFFLINE=1`` turns off every URL
fetch; converters still run on local inputs. The fetched file goes into
``LGFN_DATA_DIR`` when that folder is writable by its permission bits (the user
chose it), else into the cache folder; a shared read-only data copy is thus
never written, even by root. Writes are atomic (temporary file in the target
folder, verified, renamed), so concurrent runs never see a partial file.

A missing file that cannot be fetched, or a corrupt one, fails with a one-line
``DataError`` naming the file, its expected sha256 and ``lgfn data fetch TASK``.
Upstream pickles are read only with ``RestrictedUnpickler``. The converters live
in ``lgfn.taskdata.converters`` and register themselves with ``converter`` (registry kind ``converter``).
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import json
import os
import pickle
import re
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

from lgfn import registry
from lgfn.taskdata.manifest import MANIFEST, TASK_FILES, DataFile, task_of
from lgfn.errors import LgfnError

try:  # numpy >= 2 moved the array internals; old pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

_DOWNLOAD_TIMEOUT_S = 60.0
_PROGRESS_AFTER_S = 2.0  # a download shows a progress bar once it has taken this long
_STALE_PART_S = 24 * 3600.0  # a partial download unchanged this long is stale even if its process may live


class DataError(LgfnError, RuntimeError):
    """A data file is unknown, missing or corrupt; the message is one line that says how to fix it.

    ``reason`` is the short cause, for a caller that nests it in its own message.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle named an object outside the allow-list of ``RestrictedUnpickler``."""


# --------------------------------------------------------------------------- folders


def _absolute(env: str) -> Path:
    """An absolute, normalised path (``..`` folded, symlinks kept), so one folder has one spelling."""
    return Path(os.path.abspath(os.path.expanduser(env)))


def cache_dir() -> Path:
    """The folder lgfn writes fetched files to: ``LGFN_CACHE_DIR`` or ``~/.cache/lgfn``."""
    env = os.environ.get("LGFN_CACHE_DIR")
    return _absolute(env) if env else Path.home() / ".cache" / "lgfn"


def data_root() -> Path:
    """The main data folder: ``LGFN_DATA_DIR`` (relative to the working folder if relative), else the cache."""
    env = os.environ.get("LGFN_DATA_DIR")
    return _absolute(env) if env else cache_dir()


def _search_dirs() -> list[Path]:
    dirs = [data_root(), cache_dir()]
    return dirs[:1] if dirs[0] == dirs[1] else dirs


def _marked_writable(folder: Path) -> bool:
    """Writable by permission bits: root would ignore a read-only mode, we do not."""
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _write_dirs(relpath: str) -> list[Path]:
    """Folders a fetched ``relpath`` may go to, preferred first."""
    root = data_root()
    dirs = [root] if root != cache_dir() and _marked_writable((root / relpath).parent) else []
    return dirs + [cache_dir()]


# --------------------------------------------------------------------------- checksums


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(path: Path, suffix: str | None = None) -> str:
    """sha256 of a file's parsed content, blind to how it is packed.

    ``.npz``: for each array, by name: ``name|dtype.str|shape|`` then its C-order
    bytes. ``.json``: the value re-serialised with sorted keys and no spaces.
    Used to accept a rebuilt file whose zip container or JSON layout differs.
    ``suffix`` overrides the format read from the name (for temporary files).
    """
    suffix = suffix or path.suffix
    digest = hashlib.sha256()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            for name in sorted(arrays.files):
                array = np.ascontiguousarray(arrays[name])
                digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
                digest.update(array.tobytes())
    elif suffix == ".json":
        value = json.loads(path.read_text(encoding="utf-8"))
        digest.update(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
    else:
        raise ValueError(f"no content hash for {suffix or 'extensionless'} files")
    return digest.hexdigest()


def _matches(entry: DataFile, path: Path) -> bool:
    """True when ``path`` holds ``entry``: same bytes, or else the same parsed content."""
    if path.stat().st_size == entry.size and file_sha256(path) == entry.sha256:
        return True
    if entry.content_sha256 is None:
        return False
    try:
        return content_sha256(path, Path(entry.relpath).suffix) == entry.content_sha256
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # unreadable = corrupt
        return False


_VERIFIED: dict[Path, tuple[int, int]] = {}


def _verified(entry: DataFile, path: Path) -> bool:
    stat = path.stat()
    key = (stat.st_size, stat.st_mtime_ns)
    if _VERIFIED.get(path) == key:
        return True
    if _matches(entry, path):
        _VERIFIED[path] = key
        return True
    return False


# --------------------------------------------------------------------------- resolution


def _entry(relpath: str) -> DataFile:
    try:
        return MANIFEST[relpath]
    except KeyError:
        raise DataError(f"{relpath!r} is not a known data file; known: {', '.join(sorted(MANIFEST))}") from None


def _locate(entry: DataFile) -> tuple[Path | None, Path | None]:
    """(first verified copy, first corrupt copy) over the search folders."""
    corrupt = None
    for folder in _search_dirs():
        path = folder / entry.relpath
        if path.is_file():
            if _verified(entry, path):
                return path, corrupt
            corrupt = corrupt or path
    return None, corrupt


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def data_path(relpath: str) -> Path:
    """Absolute path of a verified copy of ``relpath`` (e.g. ``tfbind8/tfbind8_all.npz``).

    Fetches a missing file (see the module docstring); a corrupt copy is never
    replaced silently: it raises, and ``lgfn data fetch`` repairs it.
    """
    entry = _entry(relpath)
    found, corrupt = _locate(entry)
    if found is not None:
        return found
    if corrupt is not None:
        raise DataError(
            f"{relpath} is corrupt: {corrupt} has sha256 {file_sha256(corrupt)}, expected {entry.sha256}; "
            f"run `lgfn data fetch {task_of(relpath)}` to replace it",
            reason=f"{corrupt} is corrupt",
        )
    return _fetch(entry)[0]


def _urls(entry: DataFile) -> list[str]:
    mirror = os.environ.get("LGFN_DATA_URL")
    urls = [f"{mirror.rstrip('/')}/{entry.relpath}"] if mirror else []
    return urls + ([entry.url] if entry.url else [])


def _install(entry: DataFile, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``entry`` to a temporary file, verify it, rename it into place; returns the path."""
    failures = []
    for folder in _write_dirs(entry.relpath):
        dest = folder / entry.relpath
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.pid{os.getpid()}.", suffix=".part")
        except OSError as err:
            failures.append(f"{dest.parent}: {_one_line(err)}")
            continue
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())  # on disk before the rename makes it the file's content
            if not _matches(entry, tmp):
                raise DataError(f"got sha256 {file_sha256(tmp)}, expected {entry.sha256}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        stat = dest.stat()  # verified above, as the temporary file
        _VERIFIED[dest] = (stat.st_size, stat.st_mtime_ns)
        return dest
    raise DataError(f"no writable folder ({'; '.join(failures)})")


def _download(url: str, out: IO[bytes], size: int | None = None) -> None:
    """Copy ``url`` to ``out``, with a progress bar (bytes, rate, ETA) once it has taken a couple of seconds."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        total = int(length) if length and length.isdigit() else size
        name = url.rsplit("/", 1)[-1]
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"lgfn: fetching {name}",
                  delay=_PROGRESS_AFTER_S, file=sys.stderr, leave=False,
                  mininterval=0.5 if sys.stderr.isatty() else 30.0) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def _fetch(entry: DataFile) -> tuple[Path, str]:
    """Fetch ``entry`` from its sources in order; returns (path, source) or raises a one-line DataError."""
    failures: list[str] = []
    urls = _urls(entry)
    if urls and os.environ.get("LGFN_OFFLINE", "") not in ("", "0"):
        failures.append("downloads are off (LGFN_OFFLINE=1)")
        urls = []
    for url in urls:
        try:
            return _install(entry, lambda out, url=url: _download(url, out, entry.size)), url
        except (OSError, ValueError, http.client.HTTPException, DataError) as err:
            failures.append(f"{url}: {_one_line(err)}")
    convert = registered_converters().get(entry.relpath)
    if convert is not None:
        try:
            inputs = [data_path(relpath) for relpath in entry.derived_from]
            source = f"converted from {', '.join(entry.derived_from)}"
            return _install(entry, lambda out: out.write(convert(inputs))), source
        except DataError as err:
            failures.append(f"converter: {err.reason}")
        except (OSError, ValueError, KeyError, pickle.UnpicklingError) as err:
            failures.append(f"converter: {_one_line(err)}")
    reasons = " | ".join(failures)
    raise DataError(
        f"{entry.relpath} is missing (looked in {', '.join(map(str, _search_dirs()))}) and could not be fetched: "
        f"{reasons}; expected sha256 {entry.sha256}; run `lgfn data fetch {task_of(entry.relpath)}`"
        + (f"; origin: {entry.origin}" if entry.origin else ""),
        reason=f"{entry.relpath} is missing: {reasons}",
    )


# --------------------------------------------------------------------------- CLI helpers


def _task_files(task: str) -> list[str]:
    if task == "all":
        return list(MANIFEST)
    try:
        return TASK_FILES[task]
    except KeyError:
        raise DataError(f"unknown task {task!r}; valid: {', '.join([*TASK_FILES, 'all'])}") from None


def stale_parts() -> list[Path]:
    """Partial downloads (``.part`` files) that no running fetch is writing: their process is gone, or (written
    elsewhere, or by an older lgfn) they have not changed for a day."""
    found = []
    for folder in _search_dirs():
        if folder.is_dir():
            found += [p for p in folder.rglob(".*.part") if p.is_file() and _stale(p)]
    return sorted(found)


def _stale(path: Path) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:  # gone meanwhile: its fetch finished
        return False
    match = re.search(r"\.pid(\d+)\.", path.name)
    if age > _STALE_PART_S or match is None:
        return age > _STALE_PART_S
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by someone else
        return False
    return False


def remove_stale_parts() -> Iterator[str]:
    """Remove stale partial downloads, a line for each."""
    for path in stale_parts():
        try:
            path.unlink()
        except OSError as err:
            yield f"stale    {path}: could not remove it ({_one_line(err)})"
            continue
        yield f"removed  {path}  (a partial download left by an interrupted fetch)"


def fetch(task: str) -> Iterator[str]:
    """Make every file of ``task`` (or ``all``) present and verified, yielding one printable line per file.

    Unlike ``data_path`` this repairs corrupt copies: a fresh copy replaces one in
    a writable folder, or goes to the cache, which is searched after a read-only
    ``LGFN_DATA_DIR`` and wins because the first *verified* copy is used. A file
    that cannot be fetched does not stop the others: its line says why, and a
    ``DataError`` naming every such file is raised once all were tried.
    """
    failed = []
    files = _task_files(task)
    yield from remove_stale_parts()
    for relpath in files:
        entry = MANIFEST[relpath]
        found, corrupt = _locate(entry)
        if found is not None:
            yield f"ok       {relpath}  {found}"
            continue
        try:
            path, source = _fetch(entry)
        except DataError as err:
            failed.append(relpath)
            yield f"failed   {err.reason}; expected sha256 {entry.sha256}"
            continue
        yield f"{'repaired' if corrupt else 'fetched'} {relpath}  {path}  (from {source})"
    if failed:
        raise DataError(f"{len(failed)} file(s) could not be fetched: {', '.join(failed)}; the lines above say why")


def check() -> list[tuple[str, str]]:
    """(relpath, "ok" | "missing" | "corrupt") for every file of the manifest, then (path, "stale") for every stale
    partial download (which ``fetch`` removes); fetches nothing."""
    status = []
    for relpath, entry in MANIFEST.items():
        found, corrupt = _locate(entry)
        status.append((relpath, "ok" if found else "corrupt" if corrupt else "missing"))
    return status + [(str(path), "stale") for path in stale_parts()]


# --------------------------------------------------------------------------- safe pickles

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, f.__name__): f for f in (set, frozenset, complex, bytearray) for module in ("builtins", "__builtin__")},
    ("_codecs", "encode"): codecs.encode,  # how protocol <= 2 pickles carry bytes
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(f"{pkg}.multiarray", "_reconstruct"): _multiarray._reconstruct for pkg in ("numpy.core", "numpy._core")},
    **{(f"{pkg}.multiarray", "scalar"): _multiarray.scalar for pkg in ("numpy.core", "numpy._core")},
    **{(f"{pkg}.numeric", "_frombuffer"): _numeric._frombuffer for pkg in ("numpy.core", "numpy._core")},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for untrusted data files: plain containers, scalars and numpy arrays only.

    Lists, dicts, tuples, strings, bytes and numbers come from opcodes; anything
    that names a global (how a pickle runs code) must be in the allow-list above.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name} from a pickle: only plain containers, scalars and numpy arrays "
                "are allowed"
            ) from None


def safe_load_pickle(path: Path | str, unpickler: type[RestrictedUnpickler] = RestrictedUnpickler) -> Any:
    """Load a data pickle with ``RestrictedUnpickler`` (or a subclass that admits inert stand-ins); the error
    names the file."""
    with open(path, "rb") as handle:
        try:
            return unpickler(handle).load()
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{path}: {err}") from None


# --------------------------------------------------------------------------- converters

def converter(relpath: str) -> Callable[[Callable[[list[Path]], bytes]], Callable[[list[Path]], bytes]]:
    """Decorator: register how ``relpath`` is rebuilt from its manifest ``derived_from`` files (a registry entry
    of kind ``converter``, named by the file it builds)."""
    if not MANIFEST[relpath].derived_from:
        raise ValueError(f"{relpath} has no derived_from inputs in the manifest")
    return registry.register("converter", relpath)


def registered_converters() -> dict[str, Callable[[list[Path]], bytes]]:
    """{relpath: function(paths of its ``derived_from`` files) -> the file's bytes}, from the registry."""
    return {relpath: registry.get("converter", relpath).load() for relpath in registry.names("converter")}
