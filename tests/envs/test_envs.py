import pytest
import torch

from lgfn.envs import AppendOnly, HyperGrid, PrependAppend

ENVS = [HyperGrid(2, 4), HyperGrid(3, 3), PrependAppend(4, 3), AppendOnly(3, 4)]


@pytest.mark.parametrize("env", ENVS, ids=lambda e: type(e).__name__)
def test_enumeration_and_index_agree(env):
    states = env.all_states()
    assert len(states) == env.n_states
    assert torch.equal(env.state_index(states), torch.arange(len(states)))
    assert (env.depth(states)[1:] >= env.depth(states)[:-1]).all()  # sorted by depth


@pytest.mark.parametrize("env", ENVS, ids=lambda e: type(e).__name__)
def test_state_keys_are_distinct_exactly_when_states_are(env):
    states = env.all_states()
    assert len(torch.unique(env.state_key(states))) == len(states)
    assert torch.equal(env.state_key(states[[3, 3, 0]]), env.state_key(states)[[3, 3, 0]])


def test_no_state_key_when_it_would_overflow():
    env = PrependAppend(15, 16)  # 16^16 > 2^63
    assert env.state_key(env.initial(2)) is None


@pytest.mark.parametrize("env", ENVS, ids=lambda e: type(e).__name__)
def test_backward_step_undoes_every_forward_step(env):
    states = env.all_states()
    mask = env.forward_mask(states)
    for a in range(env.n_actions):
        if a == env.stop_action:
            continue
        s = states[mask[:, a]]
        acts = torch.full((len(s),), a)
        child = env.step(s, acts)
        b = env.bwd_action_of(s, acts)
        assert env.backward_mask(child)[torch.arange(len(s)), b].all()
        parent, fwd = env.backward_step(child, b)
        assert torch.equal(parent, s) and torch.equal(fwd, acts)


def test_sequence_stop_only_at_full_length():
    env = PrependAppend(4, 3)
    states = env.all_states()
    can_stop = env.forward_mask(states)[:, env.stop_action]
    assert torch.equal(can_stop, env.lengths(states) == 3)
    assert not env.forward_mask(states)[can_stop, : env.stop_action].any()


def test_prepend_and_append():
    env = PrependAppend(4, 3)
    s = env.step(env.initial(1), torch.tensor([1]))  # prepend 1
    s = env.step(s, torch.tensor([4 + 2]))  # append 2
    s = env.step(s, torch.tensor([3]))  # prepend 3
    assert s.tolist() == [[3, 1, 2]]
