"""Experiment files expand into ordinary fit configs; the runner is resumable; quick profiles produce reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from lgfn.cli import main
from lgfn.experiments.report import write_report
from lgfn.experiments.runner import cell_dir, read_metrics, run_experiment
from lgfn.experiments.spec import ExperimentError, load_experiment

pytestmark = pytest.mark.slow  # end to end: `pytest -m "not slow"` leaves it out

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_cells_layer_overrides_over_the_task_configs():
    exp = load_experiment("stability", "full")
    assert len(exp.cells) == 2 * 4 * 3 * 3  # tasks × methods × β ranges × seeds
    cell = next(c for c in exp.cells if c.id == "tfbind8-layer-U[1,1000]-s2")
    base = yaml.safe_load((CONFIGS / "tfbind8.yaml").read_text())
    assert cell.config["model"]["conditioner"] == "layer"  # method
    assert cell.config["data"]["init_args"]["train_beta"] == {"name": "uniform", "low": 1.0, "high": 1000.0}  # setting
    assert cell.config["trainer"]["log_every_n_steps"] == 1  # common
    assert cell.config["model"]["task"] == base["model"]["task"]  # untouched task config
    assert cell.config["seed_everything"] == 2 and cell.config["data"]["init_args"]["seed"] == 2

    quick = load_experiment("stability", "quick")
    assert {c.method for c in quick.cells} == {"logit", "layer"} and {c.seed for c in quick.cells} == {0}
    assert all(c.config["data"]["init_args"]["rounds"] == 30 for c in quick.cells)  # the profile wins
    assert len(load_experiment("stability", "quick", seeds=2).cells) == 2 * len(quick.cells)


def test_offline_cells_replace_the_online_data_module():
    cell = load_experiment("offline", "full").cells[0]
    data = cell.config["data"]
    assert data["class_path"] == "OfflineData"
    assert "explore_beta" not in data["init_args"] and data["init_args"]["train_beta"]["low"] == 10.0


@pytest.mark.parametrize("name,profile,match", [("nope", "quick", "unknown experiment 'nope'; choose one of"),
                                                ("grid", "huge", "profile must be one of quick, full")])
def test_bad_requests_fail_in_one_line(name, profile, match):
    with pytest.raises(ExperimentError, match=match):
        load_experiment(name, profile)


def _tiny_experiment(tmp_path: Path) -> Path:
    spec = {
        "name": "tiny", "title": "Tiny", "report": "grid", "seeds": 1,
        "tasks": {"gridworld": str(CONFIGS / "gridworld.yaml")},
        "common": {"data.init_args.rounds": 5, "model.hidden_dim": 16, "model.eval_betas": [1.0],
                   "trainer.log_every_n_steps": 1,
                   "model.eval_samples": 16, "trainer.val_check_interval": None,
                   "model.task": {"name": "gridworld", "ndim": 2, "height": 4}},
        "methods": {"logit": {"model.conditioner": "logit"}, "unconditional_b1": {"model.conditioner": "none"}},
        "options": {"betas": [1]},
        "profiles": {"quick": {}, "full": {}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_runner_is_resumable_and_cells_rerun_by_hand(tmp_path):
    exp = load_experiment(str(_tiny_experiment(tmp_path)), "quick")
    out = tmp_path / "out"
    messages: list[str] = []
    results = run_experiment(exp, out, workers=2, echo=messages.append)
    assert [r["status"] for r in results] == ["ok", "ok"]
    logit = exp.cells[0]
    series = read_metrics(cell_dir(out, logit) / "metrics.csv")
    # 5 rounds of 2 steps (a fresh batch, a replayed one), but the first round's replay step only once the buffer
    # is ready; and the final evaluation
    assert len(series["train/loss"]) in (9, 10) and "val/l1@1" in series
    first = json.loads((cell_dir(out, logit) / "result.json").read_text())
    assert first["final"]["val/l1@1"] == series["val/l1@1"][-1][1]

    (cell_dir(out, exp.cells[1]) / "result.json").unlink()  # as if interrupted during the second cell
    messages.clear()
    run_experiment(exp, out, workers=2, echo=messages.append)
    assert "1 done, 1 to run" in messages[0] and len(messages) == 2
    assert json.loads((cell_dir(out, logit) / "result.json").read_text()) == first  # not run again

    # the cell's config is an ordinary fit config
    assert main(["fit", "--config", str(cell_dir(out, logit) / "config.yaml"),
                 "--trainer.default_root_dir", str(tmp_path / "by_hand"), "--trainer.logger", "false"]) == 0

    report = write_report(exp, out).read_text()
    assert "| logit |" in report and (out / "grid_heatmaps.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["cell"] for r in rows} == {c.id for c in exp.cells}


@pytest.mark.parametrize("name,plots", [("stability", ["stability_gridworld.png", "stability_tfbind8.png"]),
                                        ("offline", ["offline_tfbind8.png", "offline_qm9.png"]),
                                        ("generalisation", ["offline_tfbind8.png"]),
                                        ("online_budget", ["modes_tfbind8.png"]),
                                        ("seh_explore", ["modes_seh.png"]),
                                        ("modes", ["modes_tfbind8.png", "modes_qm9.png"]),
                                        ("grid", ["grid_heatmaps.png"])])
def test_quick_profile_writes_report(tmp_path, name, plots):
    out = tmp_path / name
    assert main(["experiment", name, "--profile", "quick", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "Failed cells" not in report and "Not run yet" not in report
    for plot in plots:
        assert (out / plot).stat().st_size > 1000 and f"]({plot})" in report
    exp = load_experiment(name, "quick")
    assert len(list(csv.DictReader(open(out / "results.csv")))) == len(exp.cells)
    assert all((cell_dir(out, c) / "metrics.csv").is_file() for c in exp.cells)


def _fake_cell(out: Path, cell, losses: list[float], grads: list[float], l1: float, status: str = "ok") -> None:
    """A finished stability cell as the runner leaves it: metrics.csv and result.json."""
    d = cell_dir(out, cell)
    d.mkdir(parents=True)
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/grad_norm", "train/loss", "val/l1@1"])
        for step, (loss, grad) in enumerate(zip(losses, grads)):
            w.writerow([0, step, grad, loss, ""])
        w.writerow([0, len(losses) - 1, "", "", l1])
    (d / "result.json").write_text(json.dumps({
        "cell": cell.id, "task": cell.task, "method": cell.method, "setting": cell.setting, "seed": cell.seed,
        "status": status, "returncode": 0, "error": "", "wall_s": 1.0, "final": {"val/l1@1": l1}, "nonfinite": []}))


def test_stability_report_counts_divergences_and_spikes(tmp_path):
    exp = load_experiment("stability", "quick")
    cells = [c for c in exp.cells if c.task == "gridworld" and c.setting == "U[1,3]"]
    logit, layer = (next(c for c in cells if c.method == m) for m in ("logit", "layer"))
    steady = [10.0 - 0.05 * i for i in range(100)]
    _fake_cell(tmp_path, logit, steady, [1.0] * 99 + [50.0], l1=0.2)  # one gradient spike (> 10× median)
    _fake_cell(tmp_path, layer, steady[:50] + [float("nan")] * 50, [1.0] * 100, l1=1.5)  # non-finite loss
    report = write_report(exp, tmp_path).read_text()
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[3:-1]]
            for line in report.splitlines() if line.startswith("| U[1,3] |")}
    assert rows["logit"][0] == "0.2" and rows["logit"][2] == "0/1" and rows["logit"][3] == "1"
    assert rows["layer"][2] == "1/1" and rows["layer"][3] == "0"
    assert "Not run yet (" in report  # the other cells of the quick grid
