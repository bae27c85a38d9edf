"""Oracle executors: a pool of processes scores as inline does, builds the oracle once per worker, retries a part
whose worker died, gives up on a part past oracle_timeout (its objects invalid, reported and counted), and fails
in one line on an oracle that cannot be built; the cache keeps known objects from being scored again."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pytest
import torch

from lgfn.errors import ConfigError
from lgfn.oracles.base import OracleError
from lgfn.oracles.executors import make_executor
from lgfn.plugins import load_plugins
from lgfn.tasks.sequence import SequenceTask

load_plugins([str(Path(__file__).with_name("pool_oracles.py"))])
POOL = {"name": "processes", "workers": 2, "batch_size": 4}


def task(oracle, executor="inline", cache=None, **kw) -> SequenceTask:
    return SequenceTask("ACGT", 4, oracle, executor=executor, cache=cache, **kw)


def objects(strings: list[str]) -> torch.Tensor:
    return task("pool_score").from_strings(strings)


def every(n: int = 40, seed: int = 0) -> torch.Tensor:
    x = torch.randint(4, (n, 4), generator=torch.Generator().manual_seed(seed))
    return torch.cat([x, objects(["AAAA", "CCCC", "GGTT"])])


def test_processes_score_as_inline_does_and_build_the_oracle_once_per_worker(tmp_path, caplog):
    spec = {"name": "pool_score", "bad": "GGT", "missing": "TTT"}
    x = every()
    inline = task(spec).raw_reward(x)
    pooled = task(spec, POOL)
    with caplog.at_level(logging.WARNING, logger="lgfn.oracles"):
        raw = pooled.raw_reward(x)
    torch.testing.assert_close(raw, inline, equal_nan=True, rtol=0, atol=0)
    assert raw.isnan().any() and "raised ValueError: cannot score GGT" in caplog.text  # bisected in the workers
    counted = task({"name": "pool_counted", "folder": str(tmp_path)}, POOL)
    for seed in range(3):
        counted.raw_reward(every(seed=seed))
    assert len(list(tmp_path.glob("build-*"))) == 2  # one per worker, not one per call
    assert counted.oracle_calls.scored == 3 * len(every()) and counted.oracle_calls.seconds > 0
    pooled.oracle_calls.close()
    counted.oracle_calls.close()


def test_a_killed_worker_is_retried_then_its_objects_are_invalid(tmp_path, caplog):
    x = every()
    expected = task("pool_score").raw_reward(x)
    retried = task({"name": "pool_crash", "marker": str(tmp_path)}, {**POOL, "retries": 1})
    torch.testing.assert_close(retried.raw_reward(x), expected, rtol=0, atol=0)
    assert len(list(tmp_path.glob("death-*"))) == 1
    for process, _ in retried.oracle_calls.executor._procs:  # workers that die while idle are replaced
        process.kill()
    y = every(seed=1)
    torch.testing.assert_close(retried.raw_reward(y), task("pool_score").raw_reward(y), rtol=0, atol=0)
    (tmp_path / "again").mkdir()
    given_up = task({"name": "pool_crash", "marker": str(tmp_path / "again"), "deaths": 5}, {**POOL, "retries": 1})
    with caplog.at_level(logging.WARNING, logger="lgfn.oracles"):
        raw = given_up.raw_reward(x)
    lost = raw.isnan()
    assert 1 <= int(lost.sum()) <= POOL["batch_size"] and lost[-3]  # AAAA's part, no more
    torch.testing.assert_close(raw[~lost], expected[~lost], rtol=0, atol=0)
    assert "lost: its worker died" in caplog.text and "2 tries" in caplog.text
    retried.oracle_calls.close()
    given_up.oracle_calls.close()


def test_a_call_past_the_timeout_is_killed_retried_and_given_up(caplog):
    x = every(8)
    hanging = task("pool_hang", {**POOL, "retries": 1}, oracle_timeout=1.0)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="lgfn.oracles"):
        raw = hanging.raw_reward(x)
    assert time.monotonic() - start < 20  # 2 tries of 1 s plus restarting the worker, not an hour
    lost = raw.isnan()
    assert lost[-2] and 1 <= int(lost.sum()) <= POOL["batch_size"] and raw[~lost].isfinite().all()
    assert "timed out after 1 s, 2 tries" in caplog.text
    torch.testing.assert_close(hanging.raw_reward(objects(["ACGT"])), task("pool_score").raw_reward(objects(["ACGT"])))
    hanging.oracle_calls.close()
    with pytest.raises(OracleError, match="timed out after 1 s, 2 tries.*'CCCC'"):
        task("pool_hang", {**POOL, "retries": 1}, oracle_timeout=1.0, fail_fast=True).raw_reward(objects(["CCCC"]))


def test_an_oracle_that_cannot_be_built_fails_in_one_line():
    with pytest.raises(OracleError) as err:
        task("pool_unbuildable", POOL).raw_reward(objects(["ACGT"]))
    message = str(err.value)
    assert "\n" not in message and "could not be built" in message and "model file missing" in message


def test_executor_settings_are_checked_in_one_line(monkeypatch):
    with pytest.raises(ConfigError, match="unknown setting.*wokers.*valid: workers"):
        make_executor({"name": "processes", "wokers": 2})
    with pytest.raises(ConfigError, match="must be one of inline, processes, ray"):
        make_executor("threads")
    with pytest.raises(ConfigError, match="retries must be >= 0"):
        make_executor({"name": "ray", "retries": -1})
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install 'lgfn\[ray\]'"):
        task("pool_score", "ray").raw_reward(objects(["ACGT"]))


def test_the_sqlite_cache_keeps_scores_across_runs_per_oracle_and_settings(tmp_path):
    cache = str(tmp_path / "scores.sqlite")
    folder = tmp_path / "calls"
    folder.mkdir()
    spec = {"name": "pool_counted", "folder": str(folder)}
    x = every()
    first = task(spec, cache=cache).raw_reward(x)
    scored = len(list(folder.glob("scored-*")))
    assert scored == len(set(task("pool_score").to_strings(x)))  # each distinct object once
    new = next(s for s in ("TTTT", "TTTG", "TTGT", "TGTT") if s not in task("pool_score").to_strings(x))
    resumed = task(spec, POOL, cache=cache).raw_reward(torch.cat([x, objects([new])]))  # a resumed run
    torch.testing.assert_close(resumed[:-1], first, rtol=0, atol=0)
    assert len(list(folder.glob("scored-*"))) == scored + 1  # only the new object
    other = task({"name": "pool_score", "missing": "A"}, cache=cache).raw_reward(objects(["AAAA"]))
    assert math.isnan(other[0])  # other settings: scored again, not read from the first oracle's values


def test_the_memory_cache_is_the_default():
    t = SequenceTask("ACGT", 4, "pool_score")
    x = every()
    t.raw_reward(x)
    t.raw_reward(x)
    assert t.oracle_calls.scored == len(set(t.to_strings(x)))


def test_a_lost_cluster_stops_the_run_with_one_line_and_a_checkpoint(tmp_path, capsys, monkeypatch):
    from lgfn.cli import main
    from lgfn.oracles.executors import ClusterLost, InlineExecutor

    run, calls = InlineExecutor.run, []

    def losing(self, *args):  # noqa: ANN001, ANN202 (the cluster goes away in the 6th round)
        calls.append(1)
        if len(calls) == 6:
            raise ClusterLost("the Ray cluster was lost (test); restart it and resume the run from its last checkpoint")
        return run(self, *args)

    monkeypatch.setattr(InlineExecutor, "run", losing)
    example = Path(__file__).resolve().parents[2] / "examples" / "custom_oracle"
    code = main(["fit", "--plugins", str(example / "my_oracles.py"), "--config", str(example / "sequence.yaml"),
                 "--data.init_args.rounds", "20", "--model.hidden_dim", "16", "--trainer.logger", "false",
                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and "the Ray cluster was lost (test)" in err
    [saved] = tmp_path.rglob("interrupted-step=*.ckpt")
    assert saved.name == "interrupted-step=10.ckpt"  # 5 rounds of 2 steps each were trained
