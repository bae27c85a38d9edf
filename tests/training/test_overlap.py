"""Overlap (data.max_pending_rounds = N): rounds are scored while the model trains on older ones; N = 0 is
Algorithm 1 as before, and a checkpoint holds the rounds being scored, so a resumed run neither loses nor repeats
an object."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

from lgfn.cli import main
from lgfn.errors import ConfigError
from lgfn.training.datamodules import OnlineData

CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 1, "enable_progress_bar": False, "log_every_n_steps": 5,
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "."}},
                "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                               "init_args": {"every_n_train_steps": 10, "save_top_k": -1, "filename": "{step}"}}]},
    "model": {"task": {"name": "gridworld", "ndim": 2, "height": 4},
              "conditioner": "logit_layer", "hidden_dim": 32, "lr_policy": 1e-3, "eval_betas": [1.0],
              "eval_samples": 16},
    "data": {"class_path": "OnlineData",
             "init_args": {"rounds": 20, "samples_per_round": 16, "batch_size": 16, "max_pending_rounds": 2,
                           "replay": {"name": "prioritized", "min_size": 1}}},
}


def test_pending_rounds_are_held_by_checkpoints_and_resume_exactly(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(full),
                 "--trainer.logger.init_args.save_dir", str(full)]) == 0
    mid = next(full.rglob("step=10.ckpt"))
    held = torch.load(mid, weights_only=False)["OnlineData"]
    assert held["round"] == 5 and held["pending"]["sampled"] == 7 and len(held["pending"]["rounds"]) == 2
    assert all(r["raw_reward"].isfinite().all() for r in held["pending"]["rounds"])  # scored before saving
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(resumed),
                 "--trainer.logger.init_args.save_dir", str(resumed), "--ckpt_path", str(mid)]) == 0
    a = torch.load(next(full.rglob("step=40.ckpt")), weights_only=False)
    b = torch.load(next(resumed.rglob("step=40.ckpt")), weights_only=False)
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=0)
    dm_a, dm_b = a["OnlineData"], b["OnlineData"]
    assert dm_a["round"] == dm_b["round"] == 20 and dm_a["pending"] == dm_b["pending"] == {"sampled": 20, "rounds": []}
    assert torch.equal(dm_a["replay"]["x"], dm_b["replay"]["x"])  # the same objects: none lost, none twice
    [metrics] = full.rglob("metrics.csv")
    pending = [float(r["oracle/pending_rounds"]) for r in csv.DictReader(metrics.open()) if r["oracle/pending_rounds"]]
    assert pending and set(pending) <= {0.0, 1.0, 2.0} and 2.0 in pending  # shown while rounds are scored ahead


def test_no_overlap_is_the_default_and_checks_its_setting():
    data = OnlineData()
    assert data.max_pending_rounds == 0 and "pending" not in data.rank_state()  # checkpoints as before
    with pytest.raises(ConfigError, match="max_pending_rounds = -1: must be an integer >= 0"):
        OnlineData(max_pending_rounds=-1)
    with pytest.raises(ConfigError, match="resume it with data.max_pending_rounds > 0"):
        data.load_rank_state({**data.rank_state(), "replay": data.replay.state_dict(),
                              "pending": {"sampled": 3, "rounds": [{}]}})
