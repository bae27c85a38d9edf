"""The ``lgfn`` command line."""

from lgfn.cli.main import main

__all__ = ["main"]
