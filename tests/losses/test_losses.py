"""Losses against hand-computed values, and zero at the exact optimum of a small grid."""

import math

import pytest
import torch

from lgfn.losses import DetailedBalance, FlowTerms, SubTrajectoryBalance, TrajectoryBalance
from lgfn.gflownet import GFlowNet

# One trajectory s0 -> s1 -> x -> (stop): three transitions, nodes 0..3 (3 = sink).
PF = torch.tensor([[-0.5, -1.0, -0.2]])
PB = torch.tensor([[-0.1, -0.3, 0.0]])
LOG_Z, LOG_R_BETA = 1.5, 0.4
FLOW = torch.tensor([[LOG_Z, 0.9, 0.7, LOG_R_BETA]])


def terms() -> FlowTerms:
    return FlowTerms(PF, PB, torch.ones(1, 3, dtype=torch.bool), torch.tensor([3]), torch.tensor([LOG_Z]),
                     torch.tensor([LOG_R_BETA]), FLOW)


def test_tb_by_hand():
    delta = 1.5 + (-0.5 - 1.0 - 0.2) - 0.4 - (-0.1 - 0.3)
    assert math.isclose(float(TrajectoryBalance()(terms())), delta**2, rel_tol=1e-6)


def test_db_by_hand():
    d = [1.5 - 0.5 - 0.9 + 0.1, 0.9 - 1.0 - 0.7 + 0.3, 0.7 - 0.2 - 0.4 - 0.0]
    assert math.isclose(float(DetailedBalance()(terms())), sum(x * x for x in d) / 3, rel_tol=1e-6)


def test_subtb_by_hand():
    lam = 0.9
    F = [1.5, 0.9, 0.7, 0.4]
    step = [-0.5 + 0.1, -1.0 + 0.3, -0.2]
    num = den = 0.0
    for i in range(4):
        for j in range(i + 1, 4):
            d = F[i] + sum(step[i:j]) - F[j]
            num += lam ** (j - i) * d * d
            den += lam ** (j - i)
    assert math.isclose(float(SubTrajectoryBalance(lam)(terms())), num / den, rel_tol=1e-6)


def test_subtb_padding_is_ignored():
    t = terms()
    padded = FlowTerms(torch.cat([t.log_pf, torch.zeros(1, 2)], 1), torch.cat([t.log_pb, torch.zeros(1, 2)], 1),
                       torch.tensor([[True, True, True, False, False]]), t.lengths, t.log_z, t.log_reward_beta,
                       torch.cat([t.log_flow, torch.full((1, 2), 7.0)], 1))
    for loss in (SubTrajectoryBalance(0.9), DetailedBalance(), TrajectoryBalance()):
        assert math.isclose(float(loss(padded)), float(loss(terms())), rel_tol=1e-6)


class ExactPolicy(torch.nn.Module):
    """The optimal P_F, F and Z of a small grid at β with uniform P_B, computed by DP."""

    def __init__(self, model: GFlowNet, beta: float) -> None:
        super().__init__()
        task, env = model.task, model.task.env
        states = env.all_states()
        log_r = beta * task.log_reward(task.raw_reward(states)).double()
        flow = torch.zeros(len(states), dtype=torch.float64)
        n_par = env.backward_mask(states).sum(1).double()
        for i in reversed(range(len(states))):  # deepest first
            s = states[i : i + 1]
            f = log_r[i].exp()
            for a in range(env.ndim):
                if env.forward_mask(s)[0, a]:
                    c = env.state_index(env.step(s, torch.tensor([a])))
                    f = f + flow[c] / n_par[c]
            flow[i] = f
        self.env, self.flow, self.log_r, self.n_par = env, flow, log_r, n_par
        self.backward_net, self.flow_net = None, True

    def condition(self, beta):
        return None, None

    def alpha_by_table(self, states):
        return None  # not a network: nothing to tabulate

    def alpha_by_levels(self, states, backward=False):
        return None

    def forward_log_probs(self, states, beta, cond=None, alpha=None):
        idx = self.env.state_index(states)
        out = torch.full((len(states), self.env.n_actions), float("-inf"), dtype=torch.float64)
        mask = self.env.forward_mask(states)
        for a in range(self.env.ndim):
            c = self.env.state_index(self.env.step(states, torch.full((len(states),), a)).clamp(max=self.env.height - 1))
            out[:, a] = torch.where(mask[:, a], (self.flow[c] / self.n_par[c] / self.flow[idx]).log(), float("-inf"))
        out[:, -1] = self.log_r[idx] - self.flow[idx].log()
        return out.float()

    def backward_log_probs(self, states, beta, cond=None, alpha=None):
        mask = self.env.backward_mask(states)
        return torch.where(mask, -mask.sum(1, keepdim=True).float().log(), float("-inf"))

    def log_z(self, beta):
        return self.flow[0].log().float().expand(len(beta))

    def log_flow(self, states, beta):
        return self.flow[self.env.state_index(states)].log().float()


@pytest.mark.parametrize("loss", ["tb", "db", {"name": "subtb", "lamda": 0.9}])
def test_each_loss_is_zero_at_the_exact_optimum(loss):
    beta = 2.0
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 4}, conditioner="logit", loss=loss,
                     backward_policy="uniform")
    model.policy = ExactPolicy(model, beta)
    g = torch.Generator().manual_seed(0)
    traj = model.sampler.forward(torch.full((256,), beta), 0.0, g)
    value = float(model.loss_fn(model.flow_terms(traj)))
    assert value < 1e-8
    # and a perturbed reward makes it clearly positive
    traj.log_reward = traj.log_reward + 0.3
    assert float(model.loss_fn(model.flow_terms(traj))) > 1e-3


@pytest.mark.parametrize("backward_policy", ["learned", "uniform"])
@pytest.mark.parametrize("batch", [3, 32, 200])
def test_sequence_flow_terms_from_level_tables_equal_the_networks(backward_policy, batch, monkeypatch):
    """Over a sequence MDP the loss runs the networks once per state of the first levels and not on the stop
    position (:meth:`BasePolicy.alpha_by_levels`); the flow terms and their gradients are the per-position
    networks' own."""
    from lgfn.losses.base import flow_terms

    torch.manual_seed(0)
    model = GFlowNet(task="tfbind8", conditioner="logit", loss="db", backward_policy=backward_policy, hidden_dim=16)
    model.sampler.set_training_range(1.0, 3.0)
    traj = model.sampler.forward(torch.rand(batch) * 2 + 1, 0.2, torch.Generator().manual_seed(1))
    results = []
    for levelled in (True, False):
        monkeypatch.setattr(model.task.env, "levelled", levelled)
        model.zero_grad()
        terms = flow_terms(model.policy, traj, needs_flow=True)
        (terms.log_pf.sum() + terms.log_pb.sum()).backward()
        results.append((terms, [p.grad.clone() for p in model.policy.parameters() if p.grad is not None]))
    (a, grads_a), (b, grads_b) = results
    for field in ("log_pf", "log_pb", "log_flow"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field))
    assert len(grads_a) == len(grads_b)
    for x, y in zip(grads_a, grads_b):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
