"""Discovery metrics on hand-made sets whose answers are known by hand."""

from __future__ import annotations

import os
import random
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lgfn.metrics import DistinctObjects, ModesFound, TopKDiversity, TopKReward, mean_pairwise_distance, string_ids

pytestmark = pytest.mark.filterwarnings("ignore:The ``compute`` method .* before the ``update``:UserWarning")


def test_string_ids_are_stable_int64() -> None:
    ids = string_ids(["ACGT", "ACGT", "ag550c"])
    assert ids.dtype == torch.int64
    assert ids[0] == ids[1] != ids[2]
    assert ids[0] == string_ids(["ACGT"])[0]


def test_modes_found_counts_distinct_modes_only() -> None:
    metric = ModesFound(["AAAA", "CCCC", "GGGG"])
    metric.update(["AAAA", "TTTT", "AAAA"])
    assert metric.compute() == 1
    metric.update(["GGGG", "ACGT", "CCCC", "GGGG"])
    assert metric.compute() == 3
    metric.reset()
    assert metric.compute() == 0


def test_distinct_objects_and_reset() -> None:
    metric = DistinctObjects()
    metric.update(["3:7", "3:7", "1:2"])
    metric.update(["1:2", "0:0"])
    assert metric.compute() == 3
    for i in range(100):  # past the compaction point
        metric.update([f"{i % 10}:0"])
    assert metric.compute() == 12  # "0:0" was already seen
    metric.reset()
    metric.update(["5:5"])
    assert metric.compute() == 1


def test_top_k_reward_counts_duplicates_once() -> None:
    metric = TopKReward(k=2)
    metric.update(["a", "a", "b"], [5.0, 5.0, 1.0])
    metric.update(["a", "c"], torch.tensor([5.0, 3.0]))
    assert metric.compute().item() == pytest.approx((5.0 + 3.0) / 2)


def test_top_k_reward_with_fewer_than_k_distinct() -> None:
    metric = TopKReward(k=10)
    metric.update(["a", "b", "b"], [1.0, 2.0, 2.0])
    assert metric.compute().item() == pytest.approx(1.5)
    metric.reset()
    assert torch.isnan(metric.compute())


def test_mean_pairwise_distance_by_hand() -> None:
    assert mean_pairwise_distance(["AAAA", "AAAT", "TTTT"]) == pytest.approx((1 + 4 + 3) / 3)
    # ab→abc insert 1, ab→b delete 1, abc→b delete 2
    assert mean_pairwise_distance(["ab", "abc", "b"]) == pytest.approx((1 + 1 + 2) / 3)
    assert mean_pairwise_distance(["kitten", "sitting"], metric="levenshtein") == 3
    assert mean_pairwise_distance(["AAAA", "AATT"], metric="levenshtein") == 2
    assert mean_pairwise_distance(["AAAA"]) == 0.0
    with pytest.raises(ValueError):
        mean_pairwise_distance(["ab", "abc"], metric="hamming")


def test_top_k_diversity_uses_best_distinct_objects() -> None:
    metric = TopKDiversity(k=3)
    metric.update(["AAAA", "AAAT", "AAAA"], [3.0, 2.0, 3.0])
    metric.update(["TTTT", "GGGG"], [1.0, 0.5])
    assert metric.compute().item() == pytest.approx((1 + 4 + 3) / 3)


def test_top_k_in_small_batches_matches_one_batch() -> None:
    rng = random.Random(0)
    strings = ["".join(rng.choice("AT") for _ in range(4)) for _ in range(60)]
    rewards = [float(sum(c == "A" for c in s)) for s in strings]  # many ties
    streamed, whole = TopKDiversity(k=5), TopKDiversity(k=5)
    for i in range(0, 60, 7):
        streamed.update(strings[i : i + 7], rewards[i : i + 7])
    whole.update(strings[::-1], rewards[::-1])
    assert streamed.compute().item() == pytest.approx(whole.compute().item())


def test_merge_state_matches_single_update() -> None:
    batches = [(["AAAA", "AAAT", "CCCC"], [3.0, 2.0, 2.0]), (["AAAA", "TTTT", "GGGG"], [3.0, 2.0, 1.0])]
    for make in (lambda: TopKReward(k=3), lambda: TopKDiversity(k=3)):
        left, right, whole = make(), make(), make()
        left.update(*batches[0])
        right.update(*batches[1])
        whole.update(batches[0][0] + batches[1][0], batches[0][1] + batches[1][1])
        left.merge_state(right)
        assert left.compute().item() == pytest.approx(whole.compute().item())
    left, right = ModesFound(["AAAA", "GGGG", "TTTT"]), ModesFound(["AAAA", "GGGG", "TTTT"])
    left.update(["AAAA"])
    right.update(["GGGG", "AAAA"])
    left.merge_state(right)
    assert left.compute() == 2
    left, right = DistinctObjects(), DistinctObjects()
    left.update(["a", "b"])
    right.update(["b", "c"])
    left.merge_state(right)
    assert left.compute() == 3


def _ddp_worker(rank: int, port: int, results: "mp.Queue[tuple[int, list[float]]]") -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    distinct, top, diversity = DistinctObjects(), TopKReward(k=2), TopKDiversity(k=3)
    if rank == 1:  # rank 0 sees nothing: its empty states must still gather as int64/float64
        distinct.update(["AAAA", "AAAT", "AAAA"])
        top.update(["AAAA", "AAAT", "TTTT"], [3.0, 2.0, 1.0])
        diversity.update(["AAAA", "AAAT", "TTTT"], [3.0, 2.0, 1.0])
    results.put((rank, [distinct.compute().item(), top.compute().item(), diversity.compute().item()]))
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_sync_with_an_empty_rank() -> None:
    results: "mp.Queue[tuple[int, list[float]]]" = mp.get_context("spawn").Queue()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(port, results), nprocs=2, start_method="spawn")
    values = dict(results.get(timeout=60) for _ in range(2))
    for rank in (0, 1):
        assert values[rank] == pytest.approx([2, 2.5, (1 + 4 + 3) / 3])
