"""Point lgfn at the repository's shared task data unless LGFN_DATA_DIR is already set; shared fixtures."""

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("LGFN_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

from lgfn import components  # noqa: E402 (after the data folder is set)

components.load()  # tests use the registry directly, as the CLI and GFlowNet do after loading it


@pytest.fixture
def one_thread():
    """Many small network calls: one thread, as ``lgfn fit`` runs (threads only contend on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
