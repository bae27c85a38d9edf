"""Trajectories drawn forward with P_F and backward with P_B are valid paths of the MDP."""

import torch

from lgfn.gflownet import GFlowNet
from lgfn.sampling.trajectories import sample_backward, sample_forward


def test_forward_trajectories_follow_the_mdp_and_stop_once():
    torch.manual_seed(0)
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 5}, conditioner="logit_layer")
    model.sampler.set_training_range(1.0, 3.0)
    env = model.task.env
    traj = sample_forward(env, model.policy, torch.full((128,), 2.0), 0.2, torch.Generator().manual_seed(1))
    stops = (traj.actions == env.stop_action).sum(1)
    assert torch.equal(stops, torch.ones(128, dtype=torch.long))  # every trajectory stops exactly once
    assert torch.equal(traj.actions[torch.arange(128), traj.lengths - 1], torch.full((128,), env.stop_action))
    s = env.initial(128)
    for t in range(traj.actions.shape[1]):
        assert torch.equal(traj.states[:, t], s)
        move = traj.valid[:, t] & (traj.actions[:, t] != env.stop_action)
        assert env.forward_mask(s)[traj.valid[:, t], traj.actions[traj.valid[:, t], t]].all()  # allowed actions
        s = s.clone()
        s[move] = env.step(s[move], traj.actions[move, t])
    assert torch.equal(traj.x, s)


def test_backward_trajectories_are_valid_forward_trajectories():
    torch.manual_seed(0)
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 6}, conditioner="logit_layer")
    model.policy.conditioner.set_range(1.0, 3.0)
    env = model.task.env
    x = env.all_states()[torch.randint(36, (64,))]
    traj = sample_backward(env, model.policy, x, torch.full((64,), 2.0), torch.Generator().manual_seed(0))
    assert torch.equal(traj.x, x)
    assert torch.equal(traj.lengths, env.depth(x) + 1)
    # replaying the actions forward from s0 reproduces every state
    s = env.initial(64)
    for t in range(traj.actions.shape[1]):
        assert torch.equal(traj.states[:, t], s)
        move = traj.valid[:, t] & (traj.actions[:, t] != env.stop_action)
        s = s.clone()
        s[move] = env.step(s[move], traj.actions[move, t])
        assert torch.equal(env.bwd_action_of(traj.states[move, t], traj.actions[move, t]), traj.bwd_actions[move, t])
    # and the model's forward log-probs of these trajectories are finite
    terms = model.flow_terms(traj)
    assert torch.isfinite(terms.log_pf).all() and torch.isfinite(terms.log_pb).all()
