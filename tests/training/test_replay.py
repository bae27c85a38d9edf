import pytest
import torch

from lgfn.training.replay import ObjectReplay, PrioritizedReplay, TrajectoryReplay, row_keys
from lgfn.sampling.trajectories import Trajectories


def _traj(x: torch.Tensor, log_r: torch.Tensor) -> Trajectories:
    n, d = x.shape
    states = x[:, None].expand(n, 2, d).clone()
    return Trajectories(states, torch.zeros(n, 1, dtype=torch.long), torch.full((n, 1), -1), torch.ones(n, dtype=torch.long),
                        torch.ones(n), log_r, log_r.double().exp())


def test_object_replay_deduplicates():
    r = ObjectReplay()
    x = torch.tensor([[1, 2], [1, 2], [3, 4]])
    r.add(_traj(x, torch.tensor([0.1, 0.1, 0.2])))
    r.add(_traj(torch.tensor([[3, 4], [5, 6]]), torch.tensor([0.2, 0.3])))
    assert len(r) == 3
    assert set(map(tuple, r.state_dict()["x"].tolist())) == {(1, 2), (3, 4), (5, 6)}


@pytest.mark.parametrize("kind", [ObjectReplay, PrioritizedReplay])
def test_object_buffers_know_every_object_added_before(kind):
    r = kind()
    assert not r.holds(torch.tensor([[1, 2]])).any()  # empty
    for batch in ([[1, 2], [3, 4]], [[3, 4], [5, 6], [0, 9]]):
        r.add(_traj(torch.tensor(batch), torch.zeros(len(batch))))
    asked = torch.tensor([[5, 6], [2, 1], [1, 2], [0, 9], [7, 7], [3, 4]])
    assert r.holds(asked).tolist() == [True, False, True, True, False, True]
    assert not TrajectoryReplay().holds(asked).any()  # a fifo buffer keeps no memory of every object


def test_prioritized_draws_half_from_the_top_decile():
    r = PrioritizedReplay()
    x = torch.arange(100)[:, None]
    r.add(_traj(x, torch.arange(100).float()))
    drawn, log_r, _ = r.draw(10_000, torch.Generator().manual_seed(0))
    threshold = torch.quantile(torch.arange(100).double(), 0.9)
    top = log_r.double() >= threshold
    assert abs(float(top.double().mean()) - 0.5 - 0.5 * 1 / 91) < 0.02  # bottom half may hit the threshold value too
    assert torch.equal(drawn.squeeze(1).float(), log_r)


def test_replay_state_round_trip():
    r = PrioritizedReplay()
    r.add(_traj(torch.arange(20)[:, None], torch.rand(20)))
    r2 = PrioritizedReplay()
    r2.load_state_dict(r.state_dict())
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(r.draw(64, g1), r2.draw(64, g2)))
    r2.add(_traj(torch.tensor([[0], [99]]), torch.tensor([0.0, 1.0])))
    assert len(r2) == 21


@pytest.mark.parametrize("kind", [ObjectReplay, PrioritizedReplay])
def test_a_buffer_built_over_many_batches_draws_the_same_after_a_round_trip(kind):
    """A checkpointed buffer, loaded again, holds its objects in the same places: resumed runs draw exactly what
    an uninterrupted run draws (reward ties included)."""
    g, r = torch.Generator().manual_seed(5), kind()
    for _ in range(12):
        x = torch.randint(0, 4, (20, 3), generator=g)
        r.add(_traj(x, torch.randint(0, 4, (20,), generator=g).float()))
    r2 = kind()
    r2.load_state_dict(r.state_dict())
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(r.draw(256, g1), r2.draw(256, g2)))


def test_fifo_keeps_the_last_trajectories():
    r = TrajectoryReplay(capacity=5)
    r.add(_traj(torch.arange(4)[:, None], torch.zeros(4)))
    r.add(_traj(torch.arange(4, 8)[:, None], torch.zeros(4)))
    assert len(r) == 5 and r.store.x.squeeze(1).tolist() == [3, 4, 5, 6, 7]


def test_row_keys_distinguish_rows():
    x = torch.tensor([[0, 1], [1, 0], [0, 1]])
    k = row_keys(x)
    assert k[0] == k[2] and k[0] != k[1]


def test_object_replay_matches_a_dict_of_first_occurrences():
    """Merging batches into the key-sorted buffer keeps each object once, with its first reward, across many
    batches with repeats inside and between them (and capacity growth)."""
    g = torch.Generator().manual_seed(0)
    r, reference = ObjectReplay(), {}
    for _ in range(30):
        x = torch.randint(0, 6, (int(torch.randint(1, 80, (1,), generator=g)), 3), generator=g)
        log_r = torch.rand(len(x), generator=g)
        r.add(_traj(x, log_r))
        for row, value in zip(map(tuple, x.tolist()), log_r.tolist()):
            reference.setdefault(row, value)
    n = len(r)
    assert n == len(reference) and bool((r.keys[:n][1:] > r.keys[:n][:-1]).all())  # distinct and sorted
    assert torch.equal(row_keys(r.x[r.key_slot[:n]]), r.keys[:n])  # the index points at its objects
    held = {tuple(row): value for row, value in zip(r.x[:n].tolist(), r.log_reward[:n].tolist())}
    assert held == pytest.approx(reference)
    drawn, log_r, _ = r.draw(2000, torch.Generator().manual_seed(1))
    assert all(reference[tuple(row)] == pytest.approx(v) for row, v in zip(drawn.tolist(), log_r.tolist()))


def test_prioritized_draws_from_many_batches_follow_the_top_and_bottom_sets():
    """Built up over many batches with repeats and ties, the reward index stays sorted and points at the held
    rewards, and each half of a draw is uniform over its set (as the official code draws: top decile, rest)."""
    g = torch.Generator().manual_seed(0)
    r, reference = PrioritizedReplay(), {}
    for _ in range(40):
        x = torch.randint(0, 5, (int(torch.randint(1, 60, (1,), generator=g)), 4), generator=g)
        log_r = torch.randint(0, 30, (len(x),), generator=g).float()  # many ties
        r.add(_traj(x, log_r))
        for row, value in zip(map(tuple, x.tolist()), log_r.tolist()):
            reference.setdefault(row, value)
    n = len(r)
    assert n == len(reference)
    assert bool((r.rewards_sorted[:n].diff() >= 0).all()) and bool(r.rewards_sorted[n:].isinf().all())
    assert torch.equal(r.log_reward[r.reward_slot[:n]].double(), r.rewards_sorted[:n])
    values = torch.tensor(list(reference.values()), dtype=torch.float64)
    threshold = torch.quantile(values, 0.9)
    drawn, log_r, _ = r.draw(40_000, torch.Generator().manual_seed(1))
    top, bottom = log_r[:20_000].double(), log_r[20_000:].double()
    assert bool((top >= threshold).all()) and bool((bottom <= threshold).all())
    for half, members in ((top, values[values >= threshold]), (bottom, values[values <= threshold])):
        expected = torch.stack([(members == v).double().mean() for v in members.unique()])
        observed = torch.stack([(half == v).double().mean() for v in members.unique()])
        assert float((expected - observed).abs().max()) < 0.02
