"""Trajectories drawn forward with P_F and backward with P_B are valid paths of the MDP, drawn with the policy's
probabilities."""

import pytest
import torch

from lgfn.errors import TrainingError
from lgfn.gflownet import GFlowNet
from lgfn.metrics.exact import terminal_distribution
from lgfn.sampling.trajectories import _alpha_table, sample_backward, sample_forward


def test_forward_trajectories_follow_the_mdp_and_stop_once():
    torch.manual_seed(0)
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 5}, conditioner="logit_layer")
    model.sampler.set_training_range(1.0, 3.0)
    env = model.task.env
    traj, diverged = sample_forward(env, model.policy, torch.full((128,), 2.0), 0.2, torch.Generator().manual_seed(1))
    assert not diverged
    assert traj.lengths.max() <= traj.actions.shape[1] <= env.max_steps  # the rollout ran as long as it had to
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
    traj, diverged = sample_backward(env, model.policy, x, torch.full((64,), 2.0), torch.Generator().manual_seed(0))
    assert not diverged
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


@pytest.mark.parametrize("conditioner", ["logit", "logit_layer"])  # α over a table of every state / per step
def test_sampled_objects_follow_the_policys_terminal_distribution(conditioner):
    torch.manual_seed(0)
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 3}, conditioner=conditioner)
    model.sampler.set_training_range(1.0, 3.0)
    for p in model.policy.forward_net.parameters():  # far from uniform, so that a wrong draw shows
        p.data.mul_(2.0)
    env, n = model.task.env, 40_000
    with torch.no_grad():
        exact = terminal_distribution(model.task, model.policy, 2.0)
    assert (exact > 0.05).sum() >= 5  # spread over several objects
    traj, _ = sample_forward(env, model.policy, torch.full((n,), 2.0), 0.0, torch.Generator().manual_seed(3))
    freq = torch.bincount(env.state_index(traj.x), minlength=env.n_states).double() / n
    assert (freq - exact.double()).abs().max() < 0.01  # ~4 standard errors at p = 0.3


def test_a_policy_with_nan_probabilities_is_reported_as_diverged():
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 4}, conditioner="logit_layer")
    model.sampler.set_training_range(1.0, 3.0)
    model.policy.forward_net.apply(lambda m: m.bias.data.fill_(float("nan")) if isinstance(m, torch.nn.Linear) else None)
    model.policy.backward_net.apply(lambda m: m.bias.data.fill_(float("nan")) if isinstance(m, torch.nn.Linear) else None)
    env = model.task.env
    x = env.all_states()[-8:]
    assert bool(sample_forward(env, model.policy, torch.full((8,), 2.0))[1])  # flagged on the device
    assert bool(sample_backward(env, model.policy, x, torch.full((8,), 2.0))[1])
    with pytest.raises(TrainingError, match="training diverged"):  # outside training: raised at once
        model.sampler.objects(8, 2.0)
    with pytest.raises(TrainingError, match="training diverged"):
        model.sampler.backward(x, torch.full((8,), 2.0))
    model.sampler.defer_checks = True  # training: read later, on a logging step
    model.sampler.backward(x, torch.full((8,), 2.0))
    with pytest.raises(TrainingError, match="training diverged"):
        model.sampler.raise_if_diverged()
    model.sampler.raise_if_diverged()  # read and cleared


@pytest.mark.parametrize("ensemble", [1, 3])
def test_a_small_mdps_state_table_gives_the_networks_numbers(ensemble):
    """A β-free policy over an MDP of at most 2n states samples from one table of α over every state."""
    torch.manual_seed(0)
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 4}, conditioner="logit", ensemble=ensemble)
    model.sampler.set_training_range(1.0, 3.0)
    env, policy = model.task.env, model.policy
    states = env.all_states()[torch.randint(16, (40,))]
    beta = torch.rand(40) * 2 + 1
    with torch.no_grad():
        table, levels = _alpha_table(env, policy, 8, states.device)
        assert levels == 0 and table.shape[-2:] == (16, env.n_actions)
        from_table = policy.forward_log_probs(states, beta, policy.condition(beta), table[..., env.state_index(states), :])
        torch.testing.assert_close(from_table, policy.forward_log_probs(states, beta))
    assert _alpha_table(env, policy, 7, states.device)[0] is None  # 16 states > 2 × 7: per step
    aware = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 4}, conditioner="logit_layer")
    assert _alpha_table(env, aware.policy, 1000, states.device)[0] is None  # α depends on β


@pytest.mark.parametrize("ensemble,mdp", [(1, "prepend_append"), (2, "prepend_append"), (1, "append_only")])
def test_sequence_rollouts_table_their_first_levels_and_skip_the_stop(ensemble, mdp, monkeypatch):
    """Over a sequence MDP a β-free policy runs its networks once on the first levels' states (fewer than the
    batch) and not at all on the stop-only last step, and draws exactly what per-step network calls draw."""
    from lgfn.sampling import trajectories

    task = {"name": "tfbind8", "mdp": mdp} if mdp != "prepend_append" else "tfbind8"
    torch.manual_seed(0)
    model = GFlowNet(task=task, conditioner="logit", ensemble=ensemble, hidden_dim=16)
    model.sampler.set_training_range(1.0, 3.0)
    env, policy = model.task.env, model.policy
    beta = torch.rand(32) * 2 + 1
    rows = []
    for member in policy.members:
        for net in (member.forward_net, member.backward_net):
            net.register_forward_hook(lambda mod, args, out: rows.append(len(out)))
    traj, _ = sample_forward(env, policy, beta, 0.1, torch.Generator().manual_seed(3))
    back, _ = sample_backward(env, policy, traj.x, beta, torch.Generator().manual_seed(4))
    # forward: one table of levels 0-2 (1 + 4 + 16 states < 32) and 5 network steps (levels 3-7); no stop step
    assert rows[:ensemble] == [21] * ensemble and len(rows) == ensemble * (1 + 5) + ensemble * (1 + 6)
    # backward: 6 steps from levels 8-3 by the network, levels 2-1 from the table
    monkeypatch.setattr(trajectories, "_alpha_table", lambda *a, **k: (None, 0))
    monkeypatch.setattr(env, "levelled", False)
    traj2, _ = sample_forward(env, policy, beta, 0.1, torch.Generator().manual_seed(3))
    back2, _ = sample_backward(env, policy, traj2.x, beta, torch.Generator().manual_seed(4))
    assert torch.equal(traj.actions, traj2.actions) and torch.equal(back.actions, back2.actions)


def test_rollouts_over_a_fixed_length_mdp_read_nothing_back():
    """TFBind8's trajectories all take 9 actions: forward and backward rollouts run exactly that many steps with
    the whole batch, and no value reaches the host (a compiled or GPU rollout never waits)."""
    from lgfn.profiling import count_readbacks

    model = GFlowNet(task="tfbind8", conditioner="logit_layer")
    model.sampler.set_training_range(1.0, 3.0)
    env, g = model.task.env, torch.Generator().manual_seed(0)
    with count_readbacks() as counter:
        traj, diverged = sample_forward(env, model.policy, torch.full((16,), 2.0), 0.1, g)
        back, _ = sample_backward(env, model.policy, traj.x, torch.full((16,), 2.0), g)
    assert counter.total == 0, counter.counts
    assert traj.actions.shape == (16, 9) and torch.equal(traj.lengths, torch.full((16,), 9))
    assert torch.equal(back.x, traj.x) and back.actions.shape == (16, 9)
    assert not bool(diverged)


def test_trajectories_of_different_horizons_join_padded():
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 6}, conditioner="logit")
    model.sampler.set_training_range(1.0, 3.0)
    env = model.task.env
    short, _ = sample_backward(env, model.policy, env.initial(3), torch.full((3,), 1.0))  # s0: stop at once
    long, _ = sample_backward(env, model.policy, env.all_states()[-3:], torch.full((3,), 1.0))
    assert short.actions.shape[1] < long.actions.shape[1] == env.max_steps
    both = type(short).cat([short, long])
    assert both.actions.shape == (6, env.max_steps) and torch.equal(both.x[:3], env.initial(3))
    assert torch.equal(both.lengths, torch.cat([short.lengths, long.lengths]))
    terms = model.flow_terms(both)  # padding is no transition: the same terms as each part's
    k = short.actions.shape[1]
    torch.testing.assert_close(terms.log_pf[:3, :k], model.flow_terms(short).log_pf)
    assert (terms.log_pf[:3, k:] == 0).all() and (terms.log_pf[:3, 1:] == 0).all()
