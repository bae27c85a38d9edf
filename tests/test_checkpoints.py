"""Checkpoints: resolved specs in new ones, and one written by lgfn 0.1 still loads and samples the same."""

from pathlib import Path

import torch

from lgfn.cli.main import main
from lgfn.gflownet import GFlowNet

OLD_CKPT = Path(__file__).resolve().parent / "fixtures" / "grid_v0_1_0.ckpt"
# `lgfn sample --ckpt OLD_CKPT --beta 2 --n 12 --seed 0` with lgfn 0.1, before checkpoints held resolved specs
OLD_SAMPLES = ["0:0", "0:3", "1:0", "0:0", "2:3", "0:0", "0:0", "0:1", "1:2", "0:0", "0:0", "1:1"]


def test_a_checkpoint_of_lgfn_0_1_samples_as_it_did(tmp_path):
    out = tmp_path / "samples.csv"
    assert main(["sample", "--ckpt", str(OLD_CKPT), "--beta", "2", "--n", "12", "--out", str(out), "--seed", "0"]) == 0
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == OLD_SAMPLES
    model = GFlowNet.load_from_checkpoint(OLD_CKPT)
    assert model.sampler.trained_beta == (1.0, 3.0)  # from the conditioner's range: 0.1 did not store it


def test_new_checkpoints_hold_resolved_specs(tmp_path):
    cfg = ["--model.task", "{name: gridworld, ndim: 2, height: 4}", "--model.hidden_dim", "16",
           "--model.eval_samples", "16", "--data.init_args.rounds", "3", "--trainer.logger", "false",
           "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    assert main(["fit", *cfg]) == 0
    ckpt = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["task"] == {"class_path": "lgfn.tasks.gridworld.GridWorld",
                          "init_args": {"ndim": 2, "height": 4, "r0": 0.1, "r1": 0.5, "r2": 2.0, "transform": None}}
    assert hp["conditioner"]["class_path"] == "lgfn.models.conditioners.Conditioner"
    assert hp["conditioner"]["init_args"]["logit_scaling"] is True and "hidden_dim" in hp["conditioner"]["init_args"]
    assert hp["loss"] == {"class_path": "lgfn.losses.tb.TrajectoryBalance", "init_args": {}}
    assert ckpt["lgfn_format"] == 2 and ckpt["lgfn_trained_beta"] == [1.0, 3.0]
