"""Oracles for the executor tests, loaded as a plugin file (so pool processes import it by name and Ray ships it
by value, as it would a user's). Light on purpose: no torch, so workers start fast."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lgfn.registry import register_oracle


@register_oracle("pool_score", inputs="strings")
def pool_score(strings: list[str], bad: str = "", missing: str = "") -> list[float | None]:
    """A deterministic value per string; raises on strings containing ``bad``, None for those containing
    ``missing`` (so bisection and invalid objects happen inside the workers)."""
    if bad and any(bad in s for s in strings):
        raise ValueError(f"cannot score {bad}")
    return [None if missing and missing in s else 1.0 + sum((i + 1) * ord(c) for i, c in enumerate(s)) / 1000
            for s in strings]


@register_oracle("pool_counted", inputs="strings")
class Counted:
    """Leaves a file in ``folder`` per build and per string scored: how often it was built and what it scored."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        (self.folder / f"build-{os.getpid()}-{time.monotonic_ns()}").touch()

    def __call__(self, strings: list[str]) -> list[float]:
        for s in strings:
            (self.folder / f"scored-{s}-{time.monotonic_ns()}").touch()
        return pool_score(strings)


@register_oracle("pool_crash", inputs="strings")
def pool_crash(strings: list[str], marker: str, deaths: int = 1) -> list[float | None]:
    """Kills its own process (as a segfault would) the first ``deaths`` times a batch holds ``AAAA``."""
    folder = Path(marker)
    if "AAAA" in strings and len(list(folder.glob("death-*"))) < deaths:
        (folder / f"death-{time.monotonic_ns()}").touch()
        os._exit(1)
    return pool_score(strings)


@register_oracle("pool_hang", inputs="strings")
def pool_hang(strings: list[str]) -> list[float | None]:
    """Hangs on ``CCCC`` (as a call stuck in C code would: no signal gets it out)."""
    if "CCCC" in strings:
        time.sleep(3600)
    return pool_score(strings)


@register_oracle("pool_unbuildable", inputs="strings")
class Unbuildable:
    def __init__(self) -> None:
        raise RuntimeError("model file missing")

    def __call__(self, strings: list[str]) -> list[float]:
        return [1.0] * len(strings)


@register_oracle("pool_stall", inputs="strings")
def pool_stall(strings: list[str], folder: str, after: int) -> list[float | None]:
    """Scores as ``pool_score``, but its ``after``-th call (calls are counted by files in ``folder``) stalls, once:
    it leaves ``stalled`` in the folder and waits, a call in flight when the test takes the cluster away."""
    where = Path(folder)
    (where / f"call-{time.monotonic_ns()}").touch()
    if len(list(where.glob("call-*"))) >= after and not (where / "stalled").exists():
        (where / "stalled").touch()
        time.sleep(3600)
    return pool_score(strings)
