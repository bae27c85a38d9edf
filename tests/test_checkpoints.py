"""Checkpoints: resolved specs in new ones, and one written by lgfn 0.1 still loads and samples its policy."""

from pathlib import Path

import torch

from lgfn.cli.main import main
from lgfn.gflownet import GFlowNet
from lgfn.metrics.exact import terminal_distribution

OLD_CKPT = Path(__file__).resolve().parent / "fixtures" / "grid_v0_1_0.ckpt"


def test_a_checkpoint_of_lgfn_0_1_samples_its_policy(tmp_path):
    """A checkpoint from before checkpoints held resolved specs loads and samples its policy's distribution (the
    exact draws differ from lgfn 0.1's since actions are drawn by the Gumbel-max trick: another use of the random
    stream)."""
    out = tmp_path / "samples.csv"
    assert main(["sample", "--ckpt", str(OLD_CKPT), "--beta", "2", "--n", "4000", "--out", str(out), "--seed", "0"]) == 0
    model = GFlowNet.load_from_checkpoint(OLD_CKPT)
    assert model.sampler.trained_beta == (1.0, 3.0)  # from the conditioner's range: 0.1 did not store it
    env = model.task.env
    drawn = env.from_strings([line.split(",")[0] for line in out.read_text().splitlines()[1:]])
    freq = torch.bincount(env.state_index(drawn), minlength=env.n_states).double() / len(drawn)
    with torch.no_grad():
        exact = terminal_distribution(model.task, model.policy, 2.0).double()
    assert (freq - exact).abs().max() < 0.03  # ~4 standard errors at p = 0.3


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
