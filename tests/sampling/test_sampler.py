"""The sampler: β checks, the trained range, scoring, and what its subscribers hear of each round."""

import logging

import pytest
import torch

from lgfn.errors import ConfigError
from lgfn.gflownet import GFlowNet
from lgfn.registry import register_oracle


@register_oracle("test_sampler_no_b", inputs="strings")
def no_b(strings: list[str]) -> list[float | None]:
    return [None if "B" in s else 1.0 + s.count("A") for s in strings]


def model() -> GFlowNet:
    torch.manual_seed(0)
    return GFlowNet(task={"name": "sequence", "alphabet": "AB", "length": 2, "oracle": "test_sampler_no_b"},
                    hidden_dim=16, eval_betas=[1.0])


def test_explore_leaves_out_what_the_oracle_cannot_score_and_tells_subscribers():
    m = model()
    heard: list[tuple[int, int]] = []
    m.sampler.subscribe(lambda traj, invalid: heard.append((len(traj), invalid)))
    traj = m.sampler.explore(torch.ones(64), 0.5, torch.Generator().manual_seed(0))
    assert torch.isfinite(traj.raw_reward).all() and all("B" not in s for s in m.task.to_strings(traj.x))
    assert heard == [(len(traj), 64 - len(traj))] and 0 < len(traj) < 64


def test_objects_keep_or_drop_the_unscored():
    m = model()
    kept = m.sampler.objects(64, 1.0, torch.Generator().manual_seed(0), drop_invalid=False)
    dropped = m.sampler.objects(64, 1.0, torch.Generator().manual_seed(0))
    assert len(kept) == 64 and int(kept.raw_reward.isnan().sum()) == 64 - len(dropped)


def test_beta_checks_and_the_trained_range(caplog):
    m = model()
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="positive finite"):
            m.sampler.check_beta(bad)
    m.sampler.set_training_range(1.0, 3.0)
    assert m.sampler.trained_beta == (1.0, 3.0)
    with caplog.at_level(logging.WARNING, logger="lgfn"):
        m.sampler.check_beta(2.0)
        m.sampler.check_beta(50.0)
        m.sampler.check_beta(50.0)  # once per β
    assert [r.getMessage() for r in caplog.records] == [
        "β=50 is outside the range the model was trained on, [1, 3]: the samples extrapolate"]


def test_an_unconditional_model_samples_at_its_beta_only():
    m = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 4}, conditioner={"name": "none", "fixed_beta": 2.0})
    assert m.sampler.trained_beta == (2.0, 2.0) and m.hparams.eval_betas == [2.0]
    m.sampler.check_beta(2.0)
    with pytest.raises(ConfigError, match="unconditional"):
        m.sampler.check_beta(3.0)
