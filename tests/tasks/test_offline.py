"""Offline sets of the tasks, and offline training on one built from oracle-scored samples (RNA)."""

from pathlib import Path

import pytest
import torch
import yaml

from lgfn.cli import main
from lgfn.cli.sample import load_checkpoint
from lgfn.gflownet import GFlowNet
from lgfn.tasks.sequence import RNABinding, SequenceTask

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_rna_offline_set_is_bottom_half_of_scored_random_sequences():
    task = RNABinding(offline_pool=64, executor="inline")
    x = task.offline_objects()
    assert x.shape == (32, 14)
    g = torch.Generator().manual_seed(0)  # the documented construction: seed-0 uniform 14-mers
    pool = torch.randint(4, (64, 14), generator=g)
    r = task.raw_reward(pool)
    kept = r <= r.median()
    assert torch.equal(x, pool[kept])
    assert float(r[kept].max()) <= float(r[~kept].min())
    assert torch.equal(task.offline_objects(), x)  # deterministic


def test_unlistable_task_without_pool_says_what_to_do():
    task = SequenceTask("ACGU", 14, "rna")  # 4^14 objects: too many to list
    with pytest.raises(ValueError, match="set offline_pool or pass an object file"):
        task.offline_objects()


def test_rna_offline_training_raises_high_beta_reward(tmp_path):
    args = ["fit", "--config", str(CONFIGS / "rna.yaml"), "--config", str(CONFIGS / "offline.yaml"),
            "--model.task", "{name: rna, offline_pool: 512, executor: inline}",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", "--trainer.val_check_interval", "null", "--model.hidden_dim", "128",
            "--model.eval_samples", "64", "--model.eval_betas", "[50.0]", "--model.lr_policy", "1e-3",
            "--model.lr_scale", "1e-3", "--data.init_args.rounds", "150"]
    assert main(args) == 0
    trained = load_checkpoint(sorted(tmp_path.rglob("*.ckpt"))[-1])
    torch.manual_seed(0)
    untrained = GFlowNet(**dict(trained.hparams))
    g = torch.Generator
    before = float(untrained.sampler.objects(256, 50.0, g().manual_seed(1)).raw_reward.mean())
    after = float(trained.sampler.objects(256, 50.0, g().manual_seed(1)).raw_reward.mean())
    print("RNA offline mean fitness at β=50: untrained", before, "trained", after)
    assert after > before + 0.05


def test_tfbind8_offline_config_trains_the_generalising_setting(tmp_path):
    """configs/tfbind8.yaml + configs/tfbind8_offline.yaml: an ensemble of ssr policies with a 1/β temperature,
    trained offline; beyond the training range (β = 1000 against U[10, 50]) it concentrates as R^β does and its
    mean reward is above that at β = 10."""
    args = ["fit", "--config", str(CONFIGS / "tfbind8.yaml"), "--config", str(CONFIGS / "tfbind8_offline.yaml"),
            "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", "--trainer.val_check_interval", "null", "--model.eval_samples", "32",
            "--model.eval_betas", "[10.0]", "--data.init_args.rounds", "300",
            "--model.ensemble", "2"]  # the config's 5 members cost 5× one's; the suite trains 2
    assert yaml.safe_load((CONFIGS / "tfbind8_offline.yaml").read_text())["model"]["ensemble"] == 5
    assert main(args) == 0
    model = load_checkpoint(sorted(tmp_path.rglob("*.ckpt"))[-1])
    assert len(model.policy.members) == 2
    assert model.hparams.network["class_path"].endswith("SSRPolicy")
    assert model.hparams.conditioner["init_args"]["scale_with_beta"] is True
    samples = {b: model.sampler.objects(512, b, torch.Generator().manual_seed(1), warn=False) for b in (10.0, 1000.0)}
    distinct = {b: len(set(model.task.to_strings(t.x))) for b, t in samples.items()}
    mean = {b: float(t.raw_reward.mean()) for b, t in samples.items()}
    print("TFBind8 offline (300 rounds): distinct", distinct, "mean", mean)
    assert distinct[1000.0] <= 32 < distinct[10.0]
    assert mean[1000.0] > mean[10.0] + 0.02
