import pytest
import torch

from lgfn.envs import PrependAppend
from lgfn.metrics.exact import evaluate_exact, target_distribution, terminal_distribution
from lgfn.gflownet import GFlowNet
from lgfn.registry import register_task
from lgfn.tasks.base import RewardTransform, Task


def _model(task, conditioner="logit_layer", network="mlp", ensemble=1):
    torch.manual_seed(0)
    m = GFlowNet(task=task, conditioner=conditioner, network=network, ensemble=ensemble)
    m.policy.set_range(1.0, 3.0)
    return m


def _mc_frequencies(model, beta, n):
    g = torch.Generator().manual_seed(1)
    traj = model.sampler.forward(torch.full((n,), beta), 0.0, g)
    idx, objects = model.task.terminal_objects()
    pos = torch.searchsorted(idx, model.task.env.state_index(traj.x))
    return torch.bincount(pos, minlength=len(objects)).double() / n


def test_dp_matches_monte_carlo_on_a_grid():
    model = _model({"name": "gridworld", "ndim": 2, "height": 5})
    for beta in (1.0, 4.0):
        p = terminal_distribution(model.task, model.policy, beta)
        assert abs(float(p.sum()) - 1.0) < 1e-6
        freq = _mc_frequencies(model, beta, 200_000)
        assert float((p - freq).abs().sum()) < 0.03  # sampling noise for 25 cells at n = 2e5 is ~0.02


@register_task("test_exact_count_zeros")
class CountZeros(Task):
    """A tiny prepend/append task: R(x) = 1 + number of token-0 positions."""

    def __init__(self) -> None:
        self.env = PrependAppend(3, 3)
        self.transform = RewardTransform()

    def raw_reward(self, x):
        return 1.0 + (x == 0).sum(1).double()


@pytest.mark.parametrize("network", ["mlp", "ssr"])
def test_dp_matches_monte_carlo_on_a_sequence_mdp(network):
    # two edges join "" and each 1-token state (prepend t, append t): the DP must add both
    model = _model("test_exact_count_zeros", network=network)
    p = terminal_distribution(model.task, model.policy, 2.0)
    assert abs(float(p.sum()) - 1.0) < 1e-6
    freq = _mc_frequencies(model, 2.0, 200_000)
    assert float((p - freq).abs().sum()) < 0.04


def test_target_and_l1():
    model = _model({"name": "gridworld", "ndim": 2, "height": 4})
    q, log_z = target_distribution(model.task, 2.0)
    r = model.task.raw_reward(model.task.terminal_objects()[1])
    torch.testing.assert_close(q, r**2 / (r**2).sum(), rtol=1e-6, atol=1e-9)
    assert abs(log_z - float((r**2).sum().log())) < 1e-6  # log R is stored in float32
    ev = evaluate_exact(model.task, model.policy, 2.0)
    assert 0 < ev.l1 <= 2


def test_dp_matches_monte_carlo_on_tfbind8():
    """The exact TFBind8 distribution (87k states) against 100k sampled 8-mers from a peaked policy."""
    model = _model("tfbind8")
    with torch.no_grad():  # sharpen the untrained policy so the test sees a far-from-uniform distribution
        model.policy.forward_net[-1].weight.mul_(20.0)
    beta, n = 2.0, 100_000
    p = terminal_distribution(model.task, model.policy, beta)
    assert abs(float(p.sum()) - 1.0) < 1e-6
    freq = _mc_frequencies(model, beta, n)
    objects = model.task.terminal_objects()[1]
    for i in range(8):  # per-position token marginals: sampling sd ≤ 0.0016
        dp = torch.zeros(4, dtype=torch.float64).index_add_(0, objects[:, i], p.double())
        mc = torch.zeros(4, dtype=torch.float64).index_add_(0, objects[:, i], freq)
        assert float((dp - mc).abs().max()) < 0.008, (i, dp, mc)
    top = p.argsort(descending=True)[:20]  # the most likely objects, one by one: within 5 sd
    assert bool(((p[top] - freq[top]).abs() < 5 * (p[top] / n).sqrt() + 1e-4).all())
    assert float(p.max()) > 10 / 4**8  # the policy is indeed peaked


@pytest.mark.parametrize("ensemble", [1, 2])
def test_a_beta_free_policy_is_run_once_for_every_beta(monkeypatch, ensemble):
    """Logit-GFN's α ignores β: the exact DP reuses one pass over all states for each β, with the same numbers
    (an ensemble: one pass of each member)."""
    import lgfn.metrics.exact as exact
    from lgfn.models.policy import Policy, PolicyEnsemble

    model = _model({"name": "gridworld", "ndim": 2, "height": 5}, conditioner="logit", ensemble=ensemble)
    assert model.policy.alpha_is_beta_free
    depths = len(set(model.task.env.depth(model.task.env.all_states()).tolist()))
    calls = []
    forward = model.policy.forward_alpha
    monkeypatch.setattr(model.policy, "forward_alpha", lambda states: calls.append(len(states)) or forward(states))
    shared = [terminal_distribution(model.task, model.policy, b) for b in (1.0, 2.0, 7.0)]
    assert len(calls) == depths  # one pass per depth level, for all three β
    weight = next(model.policy.members[-1].forward_net.parameters())
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.add_(0.1)  # new weights: computed afresh
    terminal_distribution(model.task, model.policy, 1.0)
    assert len(calls) == 2 * depths
    with torch.no_grad():
        weight.copy_(saved)
    exact._ALPHA.clear()
    monkeypatch.setattr(Policy, "alpha_is_beta_free", property(lambda self: False))
    monkeypatch.setattr(PolicyEnsemble, "alpha_is_beta_free", property(lambda self: False))
    for beta, p in zip((1.0, 2.0, 7.0), shared):
        assert torch.equal(terminal_distribution(model.task, model.policy, beta), p)
