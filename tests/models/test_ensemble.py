"""Policy ensembles (``model.ensemble``): members trained by their own losses, sampled as one (the CLI path is in
test_architectures)."""

from types import SimpleNamespace

import pytest
import torch

from lgfn.errors import ConfigError
from lgfn.gflownet import GFlowNet
from lgfn.models.policy import PolicyEnsemble

GRID = {"name": "gridworld", "ndim": 2, "height": 4}


def ensemble(k: int = 3, **kw) -> GFlowNet:
    torch.manual_seed(0)
    model = GFlowNet(task=GRID, conditioner="logit", ensemble=k, hidden_dim=16, **kw)
    model.sampler.set_training_range(1.0, 3.0)
    return model


def test_sampling_policy_is_the_softmax_of_the_members_mean_scaled_logits():
    model = ensemble()
    policy = model.policy
    assert isinstance(policy, PolicyEnsemble) and len(policy.members) == 3
    states = model.task.env.all_states()
    beta = torch.linspace(0.5, 50.0, len(states))
    mask = model.task.env.forward_mask(states)
    scaled = [m.logits(False, states, m.condition(beta), mask) for m in policy.members]
    expected = torch.stack(scaled).mean(0).log_softmax(1)
    torch.testing.assert_close(policy.forward_log_probs(states, beta), expected)
    # the members differ (independent initialisation), so the ensemble is none of them
    single = policy.members[0].forward_log_probs(states, beta)
    assert not torch.allclose(single, expected, atol=1e-3)
    assert torch.isclose(policy.forward_log_probs(states, beta).exp().sum(1), torch.ones(len(states))).all()


@pytest.mark.parametrize("backward_policy", ["learned", "uniform"])
def test_each_member_is_trained_by_its_own_loss(backward_policy):
    """The ensemble's loss is the mean of the members' losses over the same trajectories: member k's gradient is
    its own loss's (over K), untouched by the others."""
    model = ensemble(backward_policy=backward_policy)
    g = torch.Generator().manual_seed(0)
    traj = model.sampler.forward(torch.full((16,), 2.0), 0.1, g)
    model.loss(traj).backward()
    together = [p.grad.clone() for p in model.policy.members[1].parameters()]
    model.zero_grad()
    (model.loss_fn(model.flow_terms(traj, model.policy.members[1])) / 3).backward()
    alone = [p.grad for p in model.policy.members[1].parameters()]
    assert len(together) == len(alone) > 0
    for a, b in zip(together, alone):
        torch.testing.assert_close(a, b)
    assert all(p.grad is None or not p.grad.any() for p in model.policy.members[0].parameters())


def test_optimiser_groups_and_training_range_cover_every_member():
    model = ensemble(k=2)
    groups = {g["name"]: g["params"] for g in model.configure_optimizers().param_groups}
    assert sum(len(ps) for ps in groups.values()) == len(list(model.parameters()))
    assert all(torch.equal(m.conditioner.beta_range, torch.tensor([1.0, 3.0])) for m in model.policy.members)


def test_ensemble_must_be_a_count():
    with pytest.raises(ConfigError, match="model.ensemble = 0: must be an integer >= 1"):
        GFlowNet(task=GRID, ensemble=0)


def test_split_members_train_on_their_own_slices_drawn_with_their_own_backward_policy():
    """``ensemble_data: split``: member k's loss is over the k-th slice of the batch only, and offline batches draw
    that slice backwards with member k's P_B (as K separately trained policies would)."""
    model = ensemble(k=2, ensemble_data="split")
    members = model.policy.members
    for k, member in enumerate(members):  # member 0's P_B always undoes coordinate 0 first, member 1's coordinate 1
        last = [m for m in member.backward_net.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.data.zero_()
        last.bias.data.copy_(torch.tensor([30.0, -30.0]) if k == 0 else torch.tensor([-30.0, 30.0]))
    x = torch.tensor([[3, 3]] * 8)
    traj = model.sampler.backward(x, torch.full((8,), 2.0), torch.Generator().manual_seed(0))
    first_moves = traj.actions[:, :3]  # forward order: the moves P_B undid last come first
    assert (first_moves[:4] == 1).all() and (first_moves[4:] == 0).all()  # slice 0 went down coordinate 0 first
    traj.log_reward = torch.randn(8)
    model.loss(traj).backward()
    together = [p.grad.clone() for p in members[1].parameters()]
    model.zero_grad()
    (model.loss_fn(model.flow_terms(traj.index(torch.arange(4, 8)), members[1])) / 2).backward()
    for a, b in zip(together, [p.grad for p in members[1].parameters()]):
        torch.testing.assert_close(a, b)


def test_each_member_is_clipped_on_its_own():
    model = ensemble(k=2, grad_clip=1.0)
    opt = model.configure_optimizers()
    model._trainer = SimpleNamespace(log_every_n_steps=0)  # no step's logs written
    for k, member in enumerate(model.policy.members):
        for p in member.parameters():
            p.grad = torch.full_like(p, 10.0 if k == 0 else 1e-4)
    small = [p.grad.clone() for p in model.policy.members[1].parameters()]
    model.on_before_optimizer_step(opt)
    grads = [torch.cat([p.grad.flatten() for p in m.parameters()]) for m in model.policy.members]
    assert torch.isclose(grads[0].norm(), torch.tensor(1.0))  # the large one clipped to grad_clip
    for p, before in zip(model.policy.members[1].parameters(), small):  # the small one untouched by it
        torch.testing.assert_close(p.grad, before)
