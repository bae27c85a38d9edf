"""Point lgfn at the repository's shared task data unless LGFN_DATA_DIR is already set."""

import os
from pathlib import Path

os.environ.setdefault("LGFN_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

from lgfn import components  # noqa: E402 (after the data folder is set)

components.load()  # tests use the registry directly, as the CLI and GFlowNet do after loading it
