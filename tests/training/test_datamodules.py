"""Data modules under several ranks, and steps on batches the oracle scored none of."""

from types import SimpleNamespace

import pytest
import torch

from lgfn.training.datamodules import OnlineData
from lgfn.gflownet import GFlowNet


def _rank_state(round_: int) -> dict:
    dm = OnlineData(replay={"name": "uniform", "min_size": 1})
    dm.round = round_
    dm.generator.manual_seed(round_)
    return dm.rank_state()


def test_each_rank_resumes_its_own_sampling_state():
    states = {"ranks": [_rank_state(3), _rank_state(7)]}
    dm = OnlineData()
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)
    dm.load_state_dict(states)
    assert dm.round == 7
    assert torch.equal(dm.generator.get_state(), torch.Generator().manual_seed(7).get_state())
    with pytest.raises(ValueError, match=r"sampling state of 2 process\(es\); resume it on as many .*not 3"):
        _load(states, 3)
    with pytest.raises(ValueError, match=r"sampling state of 1 process\(es\)"):
        _load(_rank_state(1), 2)
    single = OnlineData()
    single.load_state_dict(_rank_state(5))  # one process, flat state, as before
    assert single.round == 5


def _load(state: dict, world: int) -> None:
    dm = OnlineData()
    dm.trainer = SimpleNamespace(world_size=world, global_rank=0)
    dm.load_state_dict(state)


@pytest.mark.parametrize("world", [1, 2])
def test_a_batch_the_oracle_scored_none_of_skips_the_step(world):
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 3}, hidden_dim=8)
    model._trainer = SimpleNamespace(world_size=world)
    traj = model.sampler.forward(torch.ones(4))
    empty = traj.index(torch.zeros(4, dtype=torch.bool))
    out = model.training_step(iter([(empty, 0, 0)]))
    if world == 1:
        assert out is None  # Lightning skips the optimizer step
    else:  # every rank must still join DDP's gradient all-reduce: a zero loss reaching every parameter
        out.backward()
        assert float(out.detach()) == 0.0
        assert all(p.grad is not None and not p.grad.any() for p in model.parameters() if p.requires_grad)
