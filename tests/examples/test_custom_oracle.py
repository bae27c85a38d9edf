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


def test_parallel_example_runs_a_plugin_oracle_on_processes_by_configuration(tmp_path, capsys):
    import sqlite3

    cache = tmp_path / "scores.sqlite"
    assert main(["fit", "--plugins", str(EXAMPLE / "my_oracles.py"), "--config", str(EXAMPLE / "parallel.yaml"),
                 *SMALL, "--model.task.oracle", "{name: slow_motif, seconds: 0.001, load_seconds: 0.1}",
                 "--model.task.cache", str(cache), "--trainer.default_root_dir", str(tmp_path),
                 "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.init_args.save_dir",
                 str(tmp_path), "--trainer.log_every_n_steps", "2"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "fit done" in ln)
    assert "in the oracle (" in line
    [metrics] = tmp_path.rglob("metrics.csv")
    rates = [float(r["oracle/objects_per_s"]) for r in csv.DictReader(metrics.open()) if r.get("oracle/objects_per_s")]
    assert rates and all(rate > 0 for rate in rates)
    with sqlite3.connect(cache) as db:
        [(rows,)] = db.execute("SELECT count(*) FROM scores WHERE oracle LIKE 'slow_motif %'")
    assert rows >= 32  # at least the first round's distinct objects
