"""Local search (back-and-forth): what the filters keep, the chain's target under Metropolis–Hastings, candidates that
are whole trajectories at their seed's β, and the settings' checks."""

import math

import pytest
import torch

from lgfn.errors import ConfigError
from lgfn.gflownet import GFlowNet
from lgfn.metrics.exact import target_distribution
from lgfn.registry import register_oracle
from lgfn.sampling.local_search import DeterministicSearch, MetropolisSearch, _first_new, acceptance_log_prob
from lgfn.settings import build_component


pytestmark = pytest.mark.usefixtures("one_thread")  # many small network calls (tests/conftest.py)


@register_oracle("test_local_search_count_a")
def count_a(tokens: torch.Tensor) -> torch.Tensor:
    return 0.5 + (tokens == 0).sum(1).double() ** 2


def grid(**kw) -> GFlowNet:
    torch.manual_seed(0)
    return GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 4}, hidden_dim=16, conditioner="logit_layer", **kw)


def sequence(**kw) -> GFlowNet:
    torch.manual_seed(0)
    return GFlowNet(task={"name": "sequence", "alphabet": "ABC", "length": 3, "oracle": "test_local_search_count_a"},
                    hidden_dim=16, conditioner="logit_layer", **kw)


def sharpen(model: GFlowNet, scale: float = 4.0) -> None:
    """Make the untrained policy far from uniform (so that a wrong P_F/P_B ratio would show in the chain)."""
    with torch.no_grad():
        for p in model.policy.parameters():
            p.mul_(scale)


def seeds_of(model: GFlowNet, n: int, beta: float, seed: int = 0):
    model.policy.set_range(1.0, 3.0)
    return model.sampler.forward(torch.full((n,), beta), 0.0, torch.Generator().manual_seed(seed))


def assert_whole_trajectories(model: GFlowNet, traj) -> None:
    """Every row is a trajectory of the MDP from s0 to its object, with its backward actions and its reward."""
    env = model.task.env
    assert env.is_initial(traj.states[:, 0]).all()
    for i in range(len(traj)):
        n, s = int(traj.lengths[i]), traj.states[i]
        for t in range(n - 1):
            a = traj.actions[i, t : t + 1]
            assert torch.equal(env.step(s[t : t + 1], a)[0], s[t + 1])
            assert env.bwd_action_of(s[t : t + 1], a)[0] == traj.bwd_actions[i, t]
        assert traj.actions[i, n - 1] == env.stop_action and (traj.actions[i, n:] == -1).all()
    torch.testing.assert_close(model.task.raw_reward(traj.x), traj.raw_reward)


@pytest.mark.parametrize("make", [grid, sequence, lambda: sequence(ensemble=3, ensemble_data="split")],
                         ids=["grid", "sequence", "split-ensemble"])
@pytest.mark.parametrize("name,proposals", [("deterministic", 1), ("mh", 1), ("deterministic", 3)])
def test_candidates_are_whole_scored_trajectories_at_their_seeds_beta(make, name, proposals):
    model = make()
    search = build_component("local_search", {"name": name, "iterations": 3, "back_steps": 0.5,
                                              "proposals": proposals}, "data.local_search")
    seeds = seeds_of(model, 5, 2.0)
    seeds.beta = torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0])
    found = search.search(model.sampler, seeds, torch.Generator().manual_seed(1))
    assert len(found) == 15
    assert torch.equal(found.beta, seeds.beta.repeat(3))  # iteration by iteration, in seed order
    assert_whole_trajectories(model, found)


@pytest.mark.parametrize("make", [grid, sequence], ids=["grid", "sequence"])
def test_the_deterministic_filter_never_lowers_a_seeds_reward(make):
    model = make()
    sharpen(model, 2.0)
    seen = []

    class Spy(DeterministicSearch):
        def accept(self, log_ratio, log_reward, new_log_reward, u):
            take = super().accept(log_ratio, log_reward, new_log_reward, u)
            seen.append((log_reward, new_log_reward, take))
            return take

    search = Spy(iterations=6, back_steps=2)
    seeds = seeds_of(model, 64, 1.0)
    found = search.search(model.sampler, seeds, torch.Generator().manual_seed(2))
    best = seeds.log_reward  # the chain holds the best reward seen so far, and moves only upwards
    for (held, new, take), cand in zip(seen, found.log_reward.view(6, -1)):
        torch.testing.assert_close(held, best)
        torch.testing.assert_close(new, cand)
        assert torch.equal(take, new > held)
        best = torch.maximum(best, cand)
    torch.testing.assert_close(search.chains[1], best)
    assert (search.chains[1] >= seeds.log_reward).all() and (search.chains[1] > seeds.log_reward).any()
    assert torch.equal(model.task.log_reward(model.task.raw_reward(search.chains[0])).float(), best.float())


def test_metropolis_hastings_chains_sample_r_beta_from_any_policy():
    """Exact MH keeps R^β invariant whatever P_F and P_B are: chains started from a far-from-target (sharpened,
    untrained) policy end distributed as R^β/Z. With the plain reward ratio (no P_F/P_B terms) they do not.
    (A fixed-length MDP: on a grid, exact moves with a fixed k keep an object's depth once it is >= k.)"""
    beta, n = 2.0, 3000
    model = sequence(backward_policy="learned")
    sharpen(model, 2.0)
    task = model.task
    target, _ = target_distribution(task, beta)
    _, objects = task.terminal_objects()
    index = {k: i for i, k in enumerate(task.to_strings(objects))}

    def l1(x: torch.Tensor) -> float:
        counts = torch.zeros(len(target), dtype=torch.float64)
        counts.index_add_(0, torch.tensor([index[k] for k in task.to_strings(x)]), torch.ones(len(x), dtype=torch.float64))
        return float((counts / len(x) - target).abs().sum())

    seeds = seeds_of(model, n, beta)
    chains = MetropolisSearch(iterations=30, back_steps=2)
    chains.search(model.sampler, seeds, torch.Generator().manual_seed(3))
    assert l1(seeds.x) > 1.0 and l1(chains.chains[0]) < 0.08, (l1(seeds.x), l1(chains.chains[0]))

    class RewardOnly(MetropolisSearch):
        def accept(self, log_ratio, log_reward, new_log_reward, u):
            return super().accept(torch.where(log_ratio.isfinite(), 0.0, log_ratio), log_reward, new_log_reward, u)

    biased = RewardOnly(iterations=30, back_steps=2)
    biased.search(model.sampler, seeds, torch.Generator().manual_seed(3))
    assert l1(biased.chains[0]) > 0.3


def test_metropolis_acceptance_frequency_matches_the_formula():
    """On a tiny grid: the share of moves accepted, given the log α the search computed, is min(1, e^{log α})."""
    model = grid(backward_policy="learned")
    sharpen(model)
    seen = []

    class Spy(MetropolisSearch):
        def accept(self, log_ratio, log_reward, new_log_reward, u):
            take = super().accept(log_ratio, log_reward, new_log_reward, u)
            seen.append((acceptance_log_prob(log_reward, new_log_reward, log_ratio).exp(), take))
            return take

    Spy(iterations=4, back_steps=1).search(model.sampler, seeds_of(model, 20000, 2.0), torch.Generator().manual_seed(4))
    prob = torch.cat([p for p, _ in seen])
    take = torch.cat([t for _, t in seen]).double()
    for low, high in [(0.0, 1e-9), (1e-9, 0.3), (0.3, 0.7), (0.7, 1 - 1e-9), (1 - 1e-9, 1.0 + 1e-9)]:
        inside = (prob >= low) & (prob < high)
        if inside.sum() >= 200:
            expected, observed = float(prob[inside].mean()), float(take[inside].mean())
            sd = math.sqrt(max(expected * (1 - expected), 1e-4) / float(inside.sum()))
            assert abs(observed - expected) < 5 * sd + 1e-9, (low, high, observed, expected)
    assert 0.05 < float(take.mean()) < 0.95


def test_acceptance_of_unscored_objects_and_irreversible_moves():
    old = torch.tensor([0.0, -math.inf, 0.0, 0.0, 1.0])
    new = torch.tensor([1.0, 0.5, -math.inf, 2.0, 0.0])
    log_q = torch.tensor([0.0, 0.0, 0.0, -math.inf, 0.5])
    got = acceptance_log_prob(old, new, log_q)
    assert got.tolist() == [0.0, 0.0, -math.inf, -math.inf, -0.5]


def test_the_first_new_proposal_of_each_seed_is_picked():
    objects = torch.tensor([[0, 0], [0, 1], [0, 2],   # seed 0: (0, 0) known, (0, 1) seen: (0, 2)
                            [1, 0], [1, 1], [1, 2],   # seed 1: (1, 0) is new
                            [0, 0], [0, 1], [0, 0]])  # seed 2: none is new: its first
    known = lambda x: (x == torch.tensor([0, 0])).all(1)  # noqa: E731
    rows = _first_new(objects, 3, known, seen=torch.tensor([[0, 1], [5, 5]]))
    assert rows.tolist() == [2, 3, 6]


def test_proposals_spend_the_oracle_calls_on_objects_never_scored():
    """With an untrained policy on a grid, a single rebuild often lands on a known object; with 32 proposals every
    move scores one of the objects not yet known (here: those whose coordinates sum to an odd number)."""
    known = lambda x: x.sum(1) % 2 == 0  # noqa: E731
    new_share = {}
    for p in (1, 32):
        torch.manual_seed(0)
        model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 8}, hidden_dim=16, conditioner="logit_layer")
        seeds = seeds_of(model, 4, 2.0)
        search = DeterministicSearch(iterations=2, back_steps=2, proposals=p)
        found = search.search(model.sampler, seeds, torch.Generator().manual_seed(3), known, seen=seeds.x)
        assert len(found) == 8
        assert_whole_trajectories(model, found)
        new_share[p] = float((~known(found.x)).float().mean())
    assert new_share[32] == 1.0 and new_share[1] < 0.8, new_share


def test_back_steps_and_the_split_of_a_round():
    depth = torch.tensor([0, 1, 3, 8])
    assert DeterministicSearch(back_steps=2).back_steps_of(depth).tolist() == [0, 1, 2, 2]
    assert DeterministicSearch(back_steps=0.5).back_steps_of(depth).tolist() == [0, 1, 2, 4]
    assert DeterministicSearch(iterations=7).split(32) == (4, 4)  # the paper's split: every fresh sample a seed
    assert DeterministicSearch(iterations=3, seeds=2).split(32) == (26, 2)
    with pytest.raises(ConfigError, match=r"5 seed\(s\) x \(iterations 7 \+ 1\) = 40 oracle calls exceed "
                                          r"data.samples_per_round = 32"):
        DeterministicSearch(iterations=7, seeds=5).split(32)


@pytest.mark.parametrize("spec,needle", [
    ({"name": "mh", "iterations": 0}, "data.local_search: iterations = 0: must be an integer >= 1"),
    ({"name": "mh", "back_steps": 1.5}, "back_steps = 1.5: must be an integer >= 1 (actions) or a fraction"),
    ({"name": "mh", "back_steps": 0}, "back_steps = 0"),
    ({"name": "mh", "seeds": 0}, "seeds = 0: must be an integer >= 1"),
    ({"name": "greedy"}, "unknown local_search 'greedy'; valid names: deterministic, mh"),
    ({"name": "deterministic", "proposals": 0}, "proposals = 0: must be an integer >= 1"),
    ({"name": "mh", "proposals": 4}, "proposals = 4 with MetropolisSearch: choosing among rebuilds breaks"),
])
def test_settings_are_checked_in_one_line(spec, needle):
    with pytest.raises(ConfigError) as err:
        build_component("local_search", spec, "data.local_search")
    assert needle in str(err.value) and "\n" not in str(err.value)
