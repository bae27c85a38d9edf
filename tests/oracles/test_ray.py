"""The ray executor on a local Ray cluster (2 CPUs, one session for the module): scores as inline does, with a
plugin file's oracle shipped to the workers; a killed worker is retried; a call past the timeout is given up; a
lost cluster stops with one line."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import ray
import torch

from lgfn.oracles.executors import ClusterLost
from lgfn.plugins import load_plugins
from lgfn.tasks.sequence import SequenceTask

load_plugins([str(Path(__file__).with_name("pool_oracles.py"))])
RAY = {"name": "ray", "workers": 2, "batch_size": 4, "retries": 1}


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def task(oracle, executor=RAY, **kw) -> SequenceTask:
    return SequenceTask("ACGT", 4, oracle, executor=executor, cache=None, **kw)


def every(n: int = 24) -> torch.Tensor:
    x = torch.randint(4, (n, 4), generator=torch.Generator().manual_seed(0))
    return torch.cat([x, task("pool_score", "inline").from_strings(["AAAA", "CCCC", "GGTT"])])


def test_ray_scores_as_inline_does(caplog):
    spec = {"name": "pool_score", "bad": "GGT", "missing": "TTT"}
    x = every()
    with caplog.at_level(logging.WARNING, logger="lgfn.oracles"):
        raw = task(spec).raw_reward(x)
    torch.testing.assert_close(raw, task(spec, "inline").raw_reward(x), equal_nan=True, rtol=0, atol=0)
    assert "raised ValueError: cannot score GGT" in caplog.text


def test_a_killed_ray_worker_is_retried(tmp_path):
    x = every()
    raw = task({"name": "pool_crash", "marker": str(tmp_path)}).raw_reward(x)
    torch.testing.assert_close(raw, task("pool_score", "inline").raw_reward(x), rtol=0, atol=0)
    assert len(list(tmp_path.glob("death-*"))) == 1


def test_a_ray_call_past_the_timeout_is_given_up(caplog):
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="lgfn.oracles"):
        raw = task("pool_hang", oracle_timeout=1.0).raw_reward(every(8))
    assert time.monotonic() - start < 30
    assert raw[-2].isnan() and 1 <= int(raw.isnan().sum()) <= RAY["batch_size"]
    assert "timed out after 1 s, 2 tries" in caplog.text


def test_a_lost_cluster_stops_with_one_line():
    t = task("pool_score")
    x = every(4)
    t.raw_reward(x)
    ray.shutdown()  # the cluster goes away under a running task
    with pytest.raises(ClusterLost) as err:
        t.raw_reward(x)
    assert "\n" not in str(err.value) and "resume the run from its last checkpoint" in str(err.value)
