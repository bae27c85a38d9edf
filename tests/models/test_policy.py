"""The policy's distributions: normalised over the allowed actions, logits scaled by f_θ(β), P_B uniform or
learned, Z(β) and F(s, β) per row."""

import pytest
import torch

from lgfn import registry
from lgfn.envs import HyperGrid
from lgfn.models.policy import Policy

ENV = HyperGrid(ndim=2, height=4)


def policy(conditioner: str, **kw) -> Policy:
    torch.manual_seed(0)
    return Policy(ENV, registry.build("conditioner", conditioner), hidden_dim=16, **kw)


@pytest.mark.parametrize("conditioner", ["none", "layer", "logit", "logit_layer", "thermometer"])
def test_forward_probabilities_are_normalised_over_allowed_actions(conditioner):
    p = policy(conditioner)
    p.conditioner.set_range(1.0, 3.0)
    states = ENV.all_states()
    beta = torch.full((len(states),), 2.0)
    log_p = p.forward_log_probs(states, beta)
    mask = ENV.forward_mask(states)
    assert torch.isneginf(log_p[~mask]).all() and torch.isfinite(log_p[mask]).all()
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(len(states)))


def test_logit_scaling_divides_the_logits_by_the_temperature():
    p = policy("logit")
    states = ENV.all_states()[:5]
    for b in (1.0, 7.0):
        beta = torch.full((5,), b)
        temp = p.conditioner.logit_scale(beta)
        alpha = p.forward_alpha(states)
        expected = (alpha / temp).masked_fill(~ENV.forward_mask(states), float("-inf")).log_softmax(1)
        torch.testing.assert_close(p.forward_log_probs(states, beta), expected)


def test_logit_clip_bounds_alpha_before_scaling():
    p = policy("none", logit_clip=0.01)
    states = ENV.all_states()
    log_p = p.forward_log_probs(states, torch.ones(len(states)))
    n_allowed = ENV.forward_mask(states).sum(1)
    torch.testing.assert_close(log_p.max(1).values, -n_allowed.float().log(), atol=0.03, rtol=0)  # near uniform


def test_uniform_backward_policy_and_learned_one():
    states = ENV.all_states()[1:]  # every state but s0 has a parent
    uniform = policy("logit", learned_backward=False).backward_log_probs(states, torch.ones(len(states)))
    n_parents = ENV.backward_mask(states).sum(1, keepdim=True).float()
    torch.testing.assert_close(uniform.exp(), ENV.backward_mask(states) / n_parents)
    learned = policy("logit").backward_log_probs(states, torch.ones(len(states)))
    torch.testing.assert_close(learned.exp().sum(1), torch.ones(len(states)))
    assert torch.isneginf(learned[~ENV.backward_mask(states)]).all()


def test_log_z_and_state_flow_have_one_value_per_row():
    p = policy("layer", state_flow=True)
    beta = torch.tensor([1.0, 2.0, 50.0])
    assert p.log_z(beta).shape == (3,) and p.log_flow(ENV.all_states()[:3], beta).shape == (3,)
    with pytest.raises(RuntimeError, match="no state flow"):
        policy("layer").log_flow(ENV.all_states()[:3], beta)


def test_parameter_groups_split_every_parameter_once():
    p = policy("logit_layer", state_flow=True)
    groups = p.parameter_groups()
    ids = [id(q) for qs in groups.values() for q in qs]
    assert len(ids) == len(set(ids)) == len(list(p.parameters()))
    assert groups["scale"] and groups["z"] and groups["flow"] and groups["policy"]


@pytest.mark.parametrize("conditioner", ["none", "logit", "layer"])
def test_a_beta_free_network_runs_once_per_state_of_a_small_mdp_with_the_same_numbers(conditioner):
    """A β-free α_θ over a batch with more rows than the MDP has states runs over every state once and gathers
    (fixed-shape: no search for the batch's distinct states); β-aware ones, and smaller batches, see every row."""
    p = policy(conditioner)
    states = ENV.all_states()[[0, 3, 0, 5, 3, 0] * 16]
    beta = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 5.0] * 16)
    seen: list[int] = []
    hook = p.forward_net.register_forward_hook(lambda net, inputs, out: seen.append(len(inputs[0])))
    log_p = p.forward_log_probs(states, beta, alpha=p.alpha_by_table(states))
    small = states[: ENV.n_states - 1]
    assert p.alpha_by_table(small) is None
    hook.remove()
    assert seen == ([96] if conditioner == "layer" else [ENV.n_states])
    row_by_row = torch.cat([p.forward_log_probs(states[i:i + 1], beta[i:i + 1]) for i in range(len(states))])
    assert torch.allclose(log_p, row_by_row, atol=1e-6)
