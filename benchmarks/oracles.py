"""Throughput of each oracle in objects per second, and of an expensive oracle on each executor.

    python benchmarks/oracles.py [--batch 100000] [--rna-batch 2000] [--rna-round 32] [--repeats 3]
                                 [--slow-seconds 0.2] [--slow-round 64] [--slow-rounds 2] [--busy] [--only slow]

sEH, QM9 and TFBind8 score one batch of ``--batch`` objects on one thread (best of ``--repeats``). RNA folds
``--rna-batch`` new 14-mers, and 50 training rounds of ``--rna-round``, through its task with the cache off, inline
and on a pool of processes over every available core (started before timing), then scores the same batch from
the task's cache.

The slow oracle takes ``--slow-seconds`` an object, asleep (an external program or service: the core stays free)
or with ``--busy`` computing on its core (then 2 workers need 2 free cores): ``--slow-rounds`` rounds of
``--slow-round`` new objects each are scored inline, on 2 local processes and on a local Ray cluster of 2
workers (workers started before timing). Prints one row per measurement; the speedup column is over inline.
On a shared machine a pool gains only what other processes leave free.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch

from lgfn.oracles.executors import available_cores
from lgfn.oracles.qm9 import QM9Oracle
from lgfn.oracles.seh import SEHOracle
from lgfn.oracles.tfbind8 import TFBind8Oracle
from lgfn.tasks.sequence import RNABinding, SequenceTask


class SlowOracle:
    """``seconds`` per object, asleep (an external program or service) or ``busy`` (computing on this core);
    the value is a deterministic function of the string."""

    lgfn_inputs = "strings"

    def __init__(self, seconds: float, busy: bool = False) -> None:
        self.seconds, self.busy = seconds, busy

    def __call__(self, strings: list[str]) -> list[float]:
        if self.busy:
            end = time.process_time() + self.seconds * len(strings)  # CPU seconds: a shared core makes it slower
            while time.process_time() < end:
                pass
        else:
            time.sleep(self.seconds * len(strings))
        return [1.0 + sum(map(ord, s)) % 97 for s in strings]


ROUND_CALLS = 50
"""Rounds timed together (a round of RNA folds takes ~20 ms)."""


def per_second(call: Callable[[], object], n: int, repeats: int, setup: Callable[[], None] = lambda: None) -> float:
    """Objects per second of the fastest of ``repeats`` calls, each after ``setup`` (untimed)."""
    best = float("inf")
    for _ in range(repeats):
        setup()
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return n / best


def tokens(n: int, vocab: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(seed))


def fast_oracles(args: argparse.Namespace) -> list[tuple[str, str, int, float]]:
    rows = []
    for name, oracle, vocab, length in [("seh", SEHOracle(), 18, 6), ("qm9", QM9Oracle(), 11, 5),
                                        ("tfbind8", TFBind8Oracle(), 4, 8)]:
        x = tokens(args.batch, vocab, length, seed=0)
        rows.append((name, "1 thread", args.batch, per_second(lambda: oracle(x), args.batch, args.repeats)))
    x = tokens(args.rna_batch, 4, 14, seed=0)
    rounds = [tokens(args.rna_round, 4, 14, seed=2 + i) for i in range(ROUND_CALLS)]
    cores = available_cores()
    for label, executor in (("inline", "inline"), (f"{cores} processes", {"name": "processes", "workers": cores})):
        task = RNABinding(executor=executor, cache="none")
        task.raw_reward(tokens(2 * args.rna_batch, 4, 14, seed=1))  # start the pool (if any) before timing
        rows.append(("rna", f"{label}, new sequences", args.rna_batch,
                     per_second(lambda: task.raw_reward(x), args.rna_batch, args.repeats)))
        rows.append(("rna", f"{label}, rounds of {args.rna_round}", args.rna_round * ROUND_CALLS,
                     per_second(lambda: [task.raw_reward(r) for r in rounds], args.rna_round * ROUND_CALLS,
                                args.repeats)))
        task.oracle_calls.close()
    cached = RNABinding(executor="inline")
    cached.raw_reward(x)
    rate = per_second(lambda: cached.raw_reward(x), args.rna_batch, args.repeats)
    rows.append(("rna", "cached", args.rna_batch, rate))
    return rows


def slow_oracle(args: argparse.Namespace) -> list[tuple[str, str, int, float]]:
    executors: list[tuple[str, Any]] = [("inline", "inline"),
                                        ("2 processes", {"name": "processes", "workers": 2}),
                                        ("ray, 2 workers", {"name": "ray", "workers": 2})]
    rows = []
    for label, executor in executors:
        if label.startswith("ray"):
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        task = SequenceTask("ACGT", 12, SlowOracle(args.slow_seconds, args.busy), executor=executor, cache="none")
        task.raw_reward(tokens(2, 4, 12, seed=99))  # start the workers
        n = args.slow_round * args.slow_rounds
        start = time.perf_counter()
        for r in range(args.slow_rounds):
            task.raw_reward(tokens(args.slow_round, 4, 12, seed=r))
        setting = f"{args.slow_seconds:g} s/object{', busy' if args.busy else ''}, {label}"
        rows.append(("slow", setting, n, n / (time.perf_counter() - start)))
        task.oracle_calls.close()
        if label.startswith("ray"):
            ray.shutdown()
    return rows


def overlap(args: argparse.Namespace) -> None:
    """Wall time a round of ``lgfn fit`` (32 objects, 2 steps) takes with the slow oracle at N = 0 and N = 1
    (``data.max_pending_rounds``), against training alone (an oracle of no cost) and the oracle alone."""
    import contextlib
    import io
    import re
    import tempfile

    from lgfn.cli import main as lgfn
    from lgfn.registry import register_oracle

    register_oracle("bench_slow", inputs="strings")(SlowOracle)
    rounds, per_object = args.overlap_rounds, args.overlap_seconds

    def seconds_per_round(seconds: float, pending: int) -> float:
        out = io.StringIO()
        with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(out):
            assert lgfn(["fit", "--config", "examples/custom_oracle/sequence.yaml", "--model.task",
                         f"{{name: sequence, alphabet: ACGT, length: 12, oracle: {{name: bench_slow, seconds: {seconds}}}, "
                         "cache: none}", "--data.init_args.rounds", str(rounds), "--data.init_args.max_pending_rounds",
                         str(pending), "--trainer.val_check_interval", str(10 * rounds), "--model.eval_samples", "16",
                         "--model.eval_betas", "[1.0]", "--trainer.logger", "false",
                         "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", root]) == 0
        found = re.search(r"fit done: \d+ steps in ([\d.]+)(m?)", out.getvalue())
        wall = float(found[1]) * (60 if found[2] else 1)
        return wall / rounds

    train = seconds_per_round(0.0, 0)
    oracle = 32 * per_object
    serial, overlapped = seconds_per_round(per_object, 0), seconds_per_round(per_object, 1)
    print(f"a round of 32 objects at {per_object:g} s/object: training alone {train * 1000:.0f} ms, the oracle alone "
          f"{oracle * 1000:.0f} ms; N = 0: {serial * 1000:.0f} ms; N = 1: {overlapped * 1000:.0f} ms "
          f"({overlapped / max(train, oracle):.2f}x max(training, oracle))")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--rna-batch", type=int, default=2000)
    parser.add_argument("--rna-round", type=int, default=32, help="objects of an RNA training round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-seconds", type=float, default=0.2)
    parser.add_argument("--slow-round", type=int, default=64)
    parser.add_argument("--slow-rounds", type=int, default=2)
    parser.add_argument("--busy", action="store_true", help="the slow oracle computes instead of sleeping")
    parser.add_argument("--overlap-seconds", type=float, default=0.004)
    parser.add_argument("--overlap-rounds", type=int, default=150)
    parser.add_argument("--only", choices=("fast", "slow", "overlap"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.only == "overlap":
        overlap(args)
        return
    rows = ([] if args.only == "slow" else fast_oracles(args)) + ([] if args.only == "fast" else slow_oracle(args))
    inline = {name: rate for name, setting, _, rate in rows if "inline" in setting}
    print(f"{'oracle':8s} {'setting':36s} {'objects':>8s} {'objects/s':>12s} {'speedup':>8s}")
    for name, setting, n, rate in rows:
        speedup = f"{rate / inline[name]:7.2f}x" if name in inline and "cached" not in setting else ""
        print(f"{name:8s} {setting:36s} {n:8d} {rate:12,.1f} {speedup:>8s}")


if __name__ == "__main__":
    main()
