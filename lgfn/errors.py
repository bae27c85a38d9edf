"""Errors a user can cause and fix. The command line prints their message as one line and exits 2;
anything else is a bug, reported as such (``LGFN_DEBUG=1`` shows the traceback)."""

from __future__ import annotations


class LgfnError(Exception):
    """A user error: a bad setting, a missing file, an unusable checkpoint, a failing oracle."""


class ConfigError(LgfnError, ValueError):
    """A setting is out of range or inconsistent; the message names it, its value and what is valid."""


class CheckpointError(LgfnError):
    """A checkpoint is missing, unreadable, or names something lgfn will not build from it."""


class TrainingError(LgfnError):
    """Training cannot go on (e.g. the loss diverged); the checkpoint saved before stopping is named."""
