"""Oracle values remembered by object, so a known object is never scored again: in memory (LRU, the default),
or in an SQLite file that outlives the run (``cache: scores.sqlite``), so resumed runs and repeated experiments
skip the objects they have scored before.

Keys are the object's canonical string (the task's ``to_strings``) within a namespace naming the oracle and its
settings: two oracles, or one with other settings, never share a value. Only what the oracle returned is kept
(NaN for None); an object it raised on, or that was lost to a timeout or a dead worker, is tried again next time.
"""

from __future__ import annotations

import math
import sqlite3
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

from lgfn.errors import ConfigError

MEMORY_SIZE = 1 << 20
"""Objects the in-memory cache keeps (~150 MB for 20-character strings at most)."""
SQL_VARS = 500
"""Keys per SELECT (SQLite's limit on parameters is 999 on old builds)."""


class MemoryCache:
    """The ``size`` most recently used values (None: all)."""

    def __init__(self, size: int | None = MEMORY_SIZE) -> None:
        if size is not None and size < 0:
            raise ConfigError(f"cache_size must be >= 0 or null (unbounded), got {size}")
        self.size = size
        self.values: OrderedDict[str, float] = OrderedDict()

    def get(self, keys: list[str]) -> dict[str, float]:
        found = {k: self.values[k] for k in dict.fromkeys(keys) if k in self.values}
        for key in found:  # most recently used last
            self.values.move_to_end(key)
        return found

    def put(self, values: Mapping[str, float]) -> None:
        self.values.update(values)
        if self.size is not None:
            while len(self.values) > self.size:
                self.values.popitem(last=False)


class SqliteCache:
    """Values in an SQLite file, under ``namespace``; several runs (and DDP ranks) may share the file."""

    def __init__(self, path: str | Path, namespace: str) -> None:
        self.path, self.namespace = Path(path), namespace
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=60)
                self._db.execute("CREATE TABLE IF NOT EXISTS scores (oracle TEXT NOT NULL, object TEXT NOT NULL, "
                                 "value REAL, PRIMARY KEY (oracle, object)) WITHOUT ROWID")
                self._db.commit()
            except (OSError, sqlite3.Error) as err:
                self._db = None
                raise ConfigError(f"oracle cache {self.path} cannot be opened ({err}); choose a writable path or "
                                  "set cache: memory") from None
        return self._db

    def get(self, keys: list[str]) -> dict[str, float]:
        distinct = list(dict.fromkeys(keys))
        found: dict[str, float] = {}
        for start in range(0, len(distinct), SQL_VARS):
            chunk = distinct[start : start + SQL_VARS]
            rows = self.db.execute(f"SELECT object, value FROM scores WHERE oracle = ? AND object IN "
                                   f"({', '.join('?' * len(chunk))})", [self.namespace, *chunk])
            found.update((k, math.nan if v is None else v) for k, v in rows)
        return found

    def put(self, values: Mapping[str, float]) -> None:
        rows = [(self.namespace, k, None if math.isnan(v) else v) for k, v in values.items()]
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)", rows)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_db": None}  # reopened where it is unpickled


def make_cache(spec: str | None, namespace: str, size: int | None = MEMORY_SIZE) -> MemoryCache | SqliteCache | None:
    """``memory`` (LRU of ``size`` objects), ``none`` (every call scores), or the path of an SQLite file."""
    if spec is None or str(spec).lower() in ("none", "false", "off"):
        return None
    if spec == "memory":
        return MemoryCache(size)
    if not str(spec).endswith((".sqlite", ".sqlite3", ".db")):
        raise ConfigError(f"cache must be memory, none or the path of an SQLite file (*.sqlite), got {spec!r}")
    return SqliteCache(spec, namespace)
