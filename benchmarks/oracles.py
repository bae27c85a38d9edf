"""Throughput of each oracle in objects per second, on random objects, outside any task.

    python benchmarks/oracles.py [--batch 100000] [--rna-batch 2000] [--repeats 3]

sEH, QM9 and TFBind8 score one batch of ``--batch`` objects on one thread (best of
``--repeats``, as is everything here). RNA folds ``--rna-batch`` new 14-mers (cache
emptied before each call) in-process (workers 1) and on a process pool over every
available core (started before timing), then scores the same batch from the cache.
Prints one row per measurement. On a shared machine the RNA pool gains only what the
other processes leave free.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from lgfn.oracles.qm9 import QM9Oracle
from lgfn.oracles.rna import RNAOracle, available_cores
from lgfn.oracles.seh import SEHOracle
from lgfn.oracles.tfbind8 import TFBind8Oracle


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--rna-batch", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: list[tuple[str, str, int, float]] = []
    for name, oracle, vocab, length in [("seh", SEHOracle(), 18, 6), ("qm9", QM9Oracle(), 11, 5),
                                        ("tfbind8", TFBind8Oracle(), 4, 8)]:
        x = tokens(args.batch, vocab, length, seed=0)
        rows.append((name, "1 thread", args.batch, per_second(lambda: oracle(x), args.batch, args.repeats)))

    x = tokens(args.rna_batch, 4, 14, seed=0)
    for workers in (1, available_cores()):
        rna = RNAOracle(workers=workers)
        rna(tokens(4 * rna.pool_min_batch, 4, 14, seed=1))  # start the pool (if any) before timing
        uncached = per_second(lambda: rna(x), args.rna_batch, args.repeats, setup=rna.cache.clear)
        rows.append(("rna", f"workers {workers}, new sequences", args.rna_batch, uncached))
        rows.append(("rna", f"workers {workers}, cached", args.rna_batch,
                     per_second(lambda: rna(x), args.rna_batch, args.repeats)))
        rna.close()

    print(f"{'oracle':8s} {'setting':28s} {'batch':>8s} {'objects/s':>12s}")
    for name, setting, n, rate in rows:
        print(f"{name:8s} {setting:28s} {n:8d} {rate:12,.0f}")


if __name__ == "__main__":
    main()
