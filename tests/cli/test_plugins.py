"""`lgfn fit|sample --plugins`: a user's oracle trains and samples with no change to lgfn; faulty objects."""

import csv
import math
from pathlib import Path

import pytest
import torch
import yaml

from lgfn.cli import main

# Strings over "abc" of length 2; the oracle raises on "a?" and cannot score "cc" (None): 4 of 9 invalid.
PLUGIN = '''
from lgfn.registry import register_oracle


@register_oracle("test_cli_faulty", inputs="strings")
def faulty(strings, bonus=1.0):
    if any(s[0] == "a" for s in strings):
        raise ValueError("no score for " + ",".join(s for s in strings if s[0] == "a"))
    return [None if s == "cc" else bonus + s.count("b") for s in strings]
'''


def fit_config(tmp_path: Path, **task) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "enable_progress_bar": False, "log_every_n_steps": 1,
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": str(tmp_path), "name": "csv"}}},
        "model": {"task": {"name": "sequence", "alphabet": "abc", "length": 2, "oracle": "test_cli_faulty", **task},
                  "hidden_dim": 16, "eval_betas": [1.0], "eval_samples": 32},
        "data": {"class_path": "OnlineData",
                 "init_args": {"rounds": 15, "samples_per_round": 8, "batch_size": 8, "epsilon": 0.5,
                               "replay": {"name": "uniform", "min_size": 1}}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def plugin(tmp_path) -> str:
    path = tmp_path / f"plugin_{tmp_path.name}.py"  # a module name of its own in every test
    path.write_text(PLUGIN)
    return str(path)


def test_faulty_objects_are_counted_logged_and_left_out_of_training(tmp_path, plugin, caplog):
    cfg = fit_config(tmp_path)
    assert main(["fit", "--plugins", plugin, "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path)]) == 0
    ckpt = next(tmp_path.rglob("*.ckpt"))
    state = torch.load(ckpt, weights_only=False)
    buffer = state["OnlineData"]["replay"]
    assert len(buffer["x"]) and torch.isfinite(buffer["raw_reward"]).all()
    assert not bool((buffer["x"][:, 0] == 0).any()) and not bool((buffer["x"] == 2).all(1).any())  # no a?, no cc
    assert str(Path(plugin).resolve()) in state["lgfn_plugins"]
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    invalid = [float(r["oracle/invalid"]) for r in rows if r.get("oracle/invalid")]
    assert invalid and invalid[-1] > 0 and invalid == sorted(invalid)  # a running count
    assert any("objects left out of training" in r.getMessage() and "raised ValueError: no score for a" in r.getMessage()
               for r in caplog.records)
    assert all(math.isfinite(float(r["train/loss"])) for r in rows if r.get("train/loss"))

    # the checkpoint samples with the same plugin; objects it cannot score keep reward nan
    out = tmp_path / "samples.csv"
    assert main(["sample", "--plugins", plugin, "--ckpt", str(ckpt), "--beta", "1", "--n", "64", "--out", str(out)]) == 0
    samples = list(csv.DictReader(out.open()))
    assert len(samples) == 64
    assert all((r["reward"] == "nan") == (r["x"][0] == "a" or r["x"] == "cc") for r in samples)


def test_fail_fast_stops_with_one_line_naming_the_object(tmp_path, plugin, capsys):
    cfg = fit_config(tmp_path, fail_fast=True)
    assert main(["fit", "--plugins", plugin, "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lgfn: error")]
    assert len(err) == 1 and "oracle test_cli_faulty" in err[0] and "on object '" in err[0] and "fail_fast" in err[0]


def test_unknown_plugin_and_missing_plugin_at_sampling_are_one_line(tmp_path, plugin, capsys):
    assert main(["fit", "--plugins", "no_such_plugin_mod", "--config", str(fit_config(tmp_path))]) == 2
    assert main(["registry", "--plugins", str(tmp_path / "absent.py")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lgfn: error: plugin 'no_such_plugin_mod' is neither a .py file nor an importable module "
                   "(ModuleNotFoundError: No module named 'no_such_plugin_mod'); give a file's path or install the module",
                   f"lgfn: error: plugin file {tmp_path / 'absent.py'} not found"]


def test_sampling_a_plugin_checkpoint_without_the_plugin_names_it(tmp_path, plugin, capsys, monkeypatch):
    cfg = fit_config(tmp_path, oracle={"name": "test_cli_faulty", "bonus": 2.0})
    assert main(["fit", "--plugins", plugin, "--config", str(cfg), "--data.init_args.rounds", "2",
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    ckpt = next(tmp_path.rglob("*.ckpt"))
    from lgfn import registry

    monkeypatch.delitem(registry._ENTRIES["oracle"], "test_cli_faulty")  # as in a fresh process without --plugins
    capsys.readouterr()
    assert main(["sample", "--ckpt", str(ckpt), "--beta", "1", "--n", "4", "--out", str(tmp_path / "o.csv")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "model.task.oracle.class_path" in line and "is not a registered oracle" in line  # resolved specs
    assert "it was trained with --plugins " in line
    assert str(Path(plugin).resolve()) in line.split("it was trained with --plugins ")[1].split()
