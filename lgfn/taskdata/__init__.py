"""Task data files: where they are found, how they are fetched and verified."""

from lgfn.taskdata.files import (
    DataError,
    RestrictedUnpickler,
    UnsafePickleError,
    cache_dir,
    check,
    content_sha256,
    data_path,
    data_root,
    fetch,
    file_sha256,
    safe_load_pickle,
)
from lgfn.taskdata.manifest import MANIFEST, TASK_FILES, DataFile, task_of
from lgfn.taskdata import converters, seh_trees  # noqa: F401  (importing them registers the converters)

__all__ = [
    "MANIFEST",
    "TASK_FILES",
    "DataError",
    "DataFile",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "cache_dir",
    "check",
    "content_sha256",
    "data_path",
    "data_root",
    "fetch",
    "file_sha256",
    "safe_load_pickle",
    "task_of",
]
