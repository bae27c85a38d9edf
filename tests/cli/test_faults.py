"""Faults during a run never end in silence, through the real command line: an oracle that scores nothing,
one that calls sys.exit, divergence, SIGTERM, unwritable checkpoints, runs that would overwrite each other,
and sampling outside the trained β range."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lgfn.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
GRID = str(ROOT / "configs" / "gridworld.yaml")
OLD_CKPT = ROOT / "tests" / "fixtures" / "grid_v0_1_0.ckpt"
SMALL = ["--trainer.enable_progress_bar", "false", "--model.hidden_dim", "16", "--model.eval_samples", "32",
         "--model.task", "{name: gridworld, ndim: 2, height: 4}", "--model.eval_betas", "[1.0]"]

ORACLES = '''
import sys
from lgfn.registry import register_oracle

CALLS = {"n": 0}

@register_oracle("test_faults_none", inputs="strings")
def nothing(xs):
    return [None] * len(xs)

@register_oracle("test_faults_exit", inputs="strings")
def leave(xs):
    sys.exit(3)

@register_oracle("test_faults_late", inputs="strings")
def late(xs):  # the first two calls are the first two rounds' (up to 8 new objects each: the cache dedupes)
    CALLS["n"] += 1
    return [None] * len(xs) if CALLS["n"] <= 2 else [1.0 + x.count("A") for x in xs]
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The oracles above as a plugin file, imported once per test process."""
    path = tmp_path_factory.mktemp("plugin") / "test_faults_oracles.py"
    path.write_text(ORACLES)
    return str(path)


def sequence_config(tmp_path: Path, oracle: str, rounds: int = 30) -> Path:
    cfg = {"trainer": {"enable_progress_bar": False, "logger": False, "default_root_dir": str(tmp_path)},
           "model": {"task": {"name": "sequence", "alphabet": "AB", "length": 3, "oracle": oracle},
                     "conditioner": "logit", "hidden_dim": 16, "eval_betas": [1.0], "eval_samples": 16},
           "data": {"class_path": "OnlineData", "init_args": {"rounds": rounds, "samples_per_round": 8,
                                                              "batch_size": 8}}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def last_line(err: str) -> str:
    return [line for line in err.splitlines() if line.strip()][-1]


@pytest.mark.parametrize("oracle", ["test_faults_none", "test_faults_exit"])
def test_an_oracle_that_scores_nothing_stops_the_run_with_its_name(oracle, plugin, tmp_path, capsys) -> None:
    cfg = sequence_config(tmp_path, oracle)
    code = main(["fit", "--config", str(cfg), "--plugins", plugin])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "scored none" in last_line(err) and "first 10 rounds" in last_line(err)


def test_empty_first_batches_skip_their_steps(plugin, tmp_path, capsys) -> None:
    cfg = sequence_config(tmp_path, "test_faults_late", rounds=12)
    code = main(["fit", "--config", str(cfg), "--plugins", plugin])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "left out of training" in err  # the two unscored batches were reported
    ckpt = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    assert 0 < ckpt["global_step"] < 2 * 12 - 2  # the first two rounds took no step (nothing to train on)


def test_divergence_stops_with_a_checkpoint(tmp_path, capsys) -> None:
    code = main(["fit", "--config", GRID, *SMALL, "--trainer.default_root_dir", str(tmp_path),
                 "--trainer.logger", "false", "--model.lr_policy", "1e4", "--model.lr_z", "1e4",
                 "--model.lr_scale", "1e4", "--model.grad_clip", "null", "--model.nonfinite_patience", "3",
                 "--data.init_args.train_beta", "{name: uniform, low: 1, high: 1000}",
                 "--data.init_args.explore_beta", "{name: uniform, low: 1, high: 1000}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "training diverged" in last_line(err) and "learning rates" in last_line(err)
    saved = list(tmp_path.rglob("interrupted-step=*.ckpt"))
    assert len(saved) == 1 and str(saved[0]) in err


def test_nonfinite_steps_are_skipped_and_stop_the_run(tmp_path, capsys, monkeypatch) -> None:
    """Steps whose gradient is not finite leave the weights untouched, and too many stop the run: decided on the
    device, read (and reported) on the next logging step."""
    from lgfn.gflownet import GFlowNet

    loss = GFlowNet.loss

    def poisoned(self, traj):  # every other step's loss is infinite, as with a β range far too wide
        value = loss(self, traj)
        return value * float("inf") if self.global_step % 2 else value

    monkeypatch.setattr(GFlowNet, "loss", poisoned)
    code = main(["fit", "--config", GRID, *SMALL, "--trainer.default_root_dir", str(tmp_path), "--trainer.logger",
                 "false", "--model.nonfinite_patience", "4", "--data.init_args.rounds", "50",
                 "--trainer.log_every_n_steps", "10"])
    err = capsys.readouterr().err
    assert code == 2 and "nonfinite_patience = 4" in last_line(err) and "4 steps had a non-finite" in last_line(err)
    # the 4th bad step is step 7; the flags are read on the logging step after it (step 9): 5 skipped by then
    assert "5 step(s) skipped by step 9" in err and err.count("skipped by step") == 1
    saved = list(tmp_path.rglob("interrupted-step=*.ckpt"))
    state = torch.load(saved[0], weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())  # skipped steps left the weights finite


@pytest.mark.slow
def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(tmp_path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "lgfn", "fit", "--config", GRID, *SMALL, "--trainer.logger", "false",
           "--trainer.default_root_dir", str(tmp_path), "--data.init_args.rounds", "100000"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    time.sleep(8)  # start-up, then training
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    saved = list(tmp_path.rglob("interrupted-step=*.ckpt"))
    assert len(saved) == 1 and "--ckpt_path" in err and "Traceback" not in err
    resumed = main(["fit", "--config", GRID, *SMALL, "--trainer.logger", "false", "--trainer.default_root_dir",
                    str(tmp_path / "resumed"), "--data.init_args.rounds", "10", "--ckpt_path", str(saved[0])])
    assert resumed == 0


def test_unwritable_checkpoints_fail_loudly(tmp_path, capsys) -> None:
    (tmp_path / "checkpoints").write_text("a file where the checkpoint folder should be")
    code = main(["fit", "--config", GRID, *SMALL, "--trainer.logger", "false", "--trainer.default_root_dir",
                 str(tmp_path), "--data.init_args.rounds", "5"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "checkpoint" in last_line(err)


def test_runs_without_a_logger_do_not_overwrite_each_other(tmp_path, capsys) -> None:
    args = ["fit", "--config", GRID, *SMALL, "--trainer.logger", "false", "--trainer.default_root_dir",
            str(tmp_path), "--data.init_args.rounds", "3"]
    assert main(args) == 0
    first = (tmp_path / "config.yaml").read_text()
    capsys.readouterr()
    assert main([*args, "--seed_everything", "1"]) == 2
    assert "config.yaml" in last_line(capsys.readouterr().err)
    assert (tmp_path / "config.yaml").read_text() == first


def test_sampling_outside_the_trained_range_warns(tmp_path, capsys) -> None:
    out = tmp_path / "x.csv"
    assert main(["sample", "--ckpt", str(OLD_CKPT), "--beta", "1e9", "--n", "5", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "lgfn: warning: β=1e+09 is outside the range the model was trained on, [1, 3]" in err
    assert len(out.read_text().splitlines()) == 6  # the samples still come out
    assert main(["sample", "--ckpt", str(OLD_CKPT), "--beta", "2", "--n", "5", "--out", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_long_sampling_shows_progress(tmp_path, capsys, monkeypatch) -> None:
    import lgfn.cli.sample as sample

    monkeypatch.setattr(sample, "PROGRESS_AFTER_S", 0)  # the bar appears at once (after 2 s normally)
    out = tmp_path / "x.csv"
    assert main(["sample", "--ckpt", str(OLD_CKPT), "--beta", "2", "--n", "5", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "lgfn: sampling" in err and "/5 " in err and len(out.read_text().splitlines()) == 6
