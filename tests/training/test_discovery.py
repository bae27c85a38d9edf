"""logging_step reproduces Lightning's own choice of the steps whose logs are written, from public attributes."""

from __future__ import annotations

from pathlib import Path

import pytest

import lgfn.gflownet
import lgfn.training.discovery as discovery
from lgfn.cli.main import main

GRID = str(Path(__file__).resolve().parents[2] / "configs" / "gridworld.yaml")


@pytest.mark.parametrize("every", ["3", "1", "0"])
def test_logging_step_agrees_with_lightning_at_every_call(every, tmp_path, monkeypatch) -> None:
    """Checked against the private ``should_update_logs`` it replaces, in the model's hooks before the optimizer
    step and in the discovery callback after it."""
    public, calls = discovery.logging_step, []

    def checked(trainer, steps_before=None):  # noqa: ANN001, ANN202
        calls.append((public(trainer, steps_before), trainer._logger_connector.should_update_logs))
        return calls[-1][0]

    monkeypatch.setattr(discovery, "logging_step", checked)
    monkeypatch.setattr(lgfn.gflownet, "logging_step", checked)
    assert main(["fit", "--config", GRID, "--data.init_args.rounds", "12",
                 "--trainer.log_every_n_steps", every, "--trainer.enable_progress_bar", "false",
                 "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]) == 0
    assert len(calls) >= 3 * 12 and all(mine == lightnings for mine, lightnings in calls)
    assert any(mine for mine, _ in calls) == (every != "0")
