import pytest
import torch

from lgfn import registry
from lgfn.envs.hypergrid import HyperGrid
from lgfn.models.policy import Policy

ENV = HyperGrid(2, 5)
STATES = torch.tensor([[0, 0], [1, 2], [4, 3], [4, 4]])


def policy(name: str, **kw) -> Policy:
    torch.manual_seed(0)
    return Policy(ENV, registry.build("conditioner", name, **kw), hidden_dim=16)


def probs(p: Policy, beta: float) -> torch.Tensor:
    return p.forward_log_probs(STATES, torch.full((len(STATES),), beta)).exp()


def test_none_ignores_beta():
    p = policy("none")
    assert torch.equal(probs(p, 0.5), probs(p, 50.0))
    assert torch.equal(p.log_z(torch.tensor([1.0])), p.log_z(torch.tensor([9.0])))


def test_logit_is_exactly_softmax_of_alpha_over_f_beta():
    p = policy("logit")
    for beta in (0.5, 1.0, 3.0, 100.0):
        b = torch.full((len(STATES),), beta)
        alpha = p.forward_alpha(STATES)  # β-free α_θ
        f = p.conditioner.logit_scale(b)
        assert (f > 0).all()
        expected = (alpha / f).masked_fill(~ENV.forward_mask(STATES), float("-inf")).softmax(1)
        torch.testing.assert_close(probs(p, beta), expected, rtol=0, atol=1e-7)


def test_logit_temperature_changes_with_beta_but_alpha_does_not():
    p = policy("logit")
    f = p.conditioner.logit_scale(torch.tensor([1.0, 10.0]))
    assert f[0] != f[1]
    assert p.conditioner.embedding(torch.tensor([1.0])) is None


@pytest.mark.parametrize("name", ["layer", "thermometer", "logit_layer"])
def test_layer_variants_change_with_beta(name):
    p = policy(name, low=1.0, high=3.0)
    assert p.conditioner.embedding(torch.tensor([1.0])) is not None
    assert not torch.allclose(probs(p, 1.2), probs(p, 2.8))


def test_thermometer_code_is_clamped():
    from lgfn.models.conditioners import thermometer

    code = thermometer(torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0]), 3, 1.0, 3.0)
    assert torch.equal(code[0], torch.zeros(3)) and torch.equal(code[-1], torch.ones(3))
    assert torch.equal(code[2], torch.tensor([1.0, 0.0, 0.0])) and torch.equal(code[3], torch.tensor([1.0, 1.0, 0.0]))


def test_masked_actions_have_zero_probability():
    p = policy("logit")
    pr = probs(p, 2.0)
    assert (pr[~ENV.forward_mask(STATES)] == 0).all()
    torch.testing.assert_close(pr.sum(1), torch.ones(len(STATES)))
