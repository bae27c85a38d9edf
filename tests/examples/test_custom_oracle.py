"""examples/custom_oracle: its configs train with the plugin loaded by --plugins, and the checkpoint samples."""

import csv
from pathlib import Path

import pytest

from lgfn.cli import main

pytestmark = pytest.mark.slow  # end to end: `pytest -m "not slow"` leaves it out

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_oracle"
# 4 rounds = 8 steps; validating at step 8 also writes the checkpoint
SMALL = ["--data.init_args.rounds", "4", "--trainer.val_check_interval", "8", "--model.hidden_dim", "16",
         "--model.eval_betas", "[1.0]",
         "--model.eval_samples", "16", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]


@pytest.mark.parametrize("config,column", [("sequence.yaml", None), ("molecules.yaml", "smiles")])
def test_example_trains_and_samples(tmp_path, config, column):
    plugin = str(EXAMPLE / "my_oracles.py")
    assert main(["fit", "--plugins", plugin, "--config", str(EXAMPLE / config), *SMALL,
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    ckpt = next(tmp_path.rglob("*.ckpt"))
    out = tmp_path / "samples.csv"
    assert main(["sample", "--plugins", plugin, "--ckpt", str(ckpt), "--beta", "2", "--n", "20", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 20 and all(float(r["reward"]) > 0 for r in rows)
    if column:
        assert all(r[column] for r in rows)
