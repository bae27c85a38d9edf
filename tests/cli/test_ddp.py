"""Two CPU processes (DDP, gloo) train the grid world as well as one process with the same total batch."""

import pytest
import csv
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from lgfn.cli import main
from lgfn.cli.sample import load_checkpoint
from lgfn.metrics.exact import evaluate_exact

pytestmark = pytest.mark.slow  # end to end: `pytest -m "not slow"` leaves it out

ROUNDS = 300
BETAS = (1.0, 2.0, 3.0)
CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 1, "enable_progress_bar": False, "accelerator": "cpu", "log_every_n_steps": 50},
    "model": {"task": {"name": "gridworld", "ndim": 2, "height": 8}, "conditioner": "logit_layer", "hidden_dim": 64,
              "backward_policy": "uniform", "lr_policy": 1e-3, "lr_z": 0.1, "lr_scale": 1e-3,
              "eval_betas": list(BETAS), "eval_samples": 64},
    "data": {"class_path": "OnlineData",
             "init_args": {"train_beta": {"name": "uniform", "low": 1.0, "high": 3.0},
                           "explore_beta": {"name": "uniform", "low": 1.0, "high": 3.0},
                           "rounds": ROUNDS, "samples_per_round": 32, "batch_size": 32, "epsilon": 0.05}},
}


def mean_l1(root: Path) -> float:
    model = load_checkpoint(next(root.rglob("*.ckpt")))
    return sum(evaluate_exact(model.task, model.policy, b).l1 for b in BETAS) / len(BETAS)


def test_two_process_ddp_is_as_good_as_one_process_with_the_same_total_batch(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["fit", "--config", str(cfg), "--trainer.logger", "false", "--trainer.default_root_dir", str(one)]) == 0

    # each rank samples 16 trajectories a round and replays 16: 32 a step in all, as above (on CPU, ddp uses gloo)
    cmd = [sys.executable, "-m", "lgfn", "fit", "--config", str(cfg), "--trainer.default_root_dir", str(two),
           "--trainer.strategy", "ddp", "--trainer.devices", "2",
           "--data.init_args.samples_per_round", "16", "--data.init_args.batch_size", "16",
           "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(two)]
    env = {**os.environ, "LGFN_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    # each rank kept its own generator and buffer, and the checkpoint holds both
    ckpt = torch.load(next(two.rglob("*.ckpt")), weights_only=False)
    ranks = ckpt["OnlineData"]["ranks"]
    assert len(ranks) == 2 and [r["round"] for r in ranks] == [ROUNDS, ROUNDS]
    assert not torch.equal(ranks[0]["generator"], ranks[1]["generator"])

    # discovery metrics are reduced over ranks: 2 x 16 objects a round were rewarded
    rows = list(csv.DictReader(next(two.rglob("metrics.csv")).open()))
    sampled = [(int(r["step"]), float(r["discovery/objects_sampled"])) for r in rows if r.get("discovery/objects_sampled")]
    step, count = sampled[-1]
    # steps alternate online / replay once the replay buffer holds enough objects (the first round may not)
    assert count > 16 * ROUNDS and count % 32 == 0 and 32 * ((step + 2) // 2) <= count <= 32 * ((step + 4) // 2)

    l1_one, l1_two = mean_l1(one), mean_l1(two)
    print(f"mean exact L1 over β={BETAS}: 1 process {l1_one:.4f}, 2 processes {l1_two:.4f}")
    assert l1_one < 0.3  # both learned (untrained: about 1.6)
    assert l1_two <= 1.5 * l1_one + 0.03


def test_ssr_policy_trains_under_ddp(tmp_path):
    """The state–child scorer under two DDP processes: every parameter gets a gradient on every rank (DDP
    fails otherwise) and the checkpoint samples."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    cmd = [sys.executable, "-m", "lgfn", "fit", "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path / "out"),
           "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.logger", "false",
           "--model.network", "ssr", "--model.backward_policy", "learned", "--data.init_args.rounds", "20"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "LGFN_NUM_THREADS": "1"}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    path = next(tmp_path.rglob("*.ckpt"))
    # 20 rounds: an online and a replay step each, once the replay buffer holds enough objects (round 1 may not)
    assert torch.load(path, weights_only=True)["global_step"] in (39, 40)
    model = load_checkpoint(path)
    assert model.hparams.network["class_path"].endswith("SSRPolicy")
    traj = model.sampler.objects(16, 2.0, torch.Generator().manual_seed(0), warn=False)
    assert len(traj.x) == 16
