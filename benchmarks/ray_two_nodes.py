"""Where the ray executor's calls land on a cluster of two nodes (both on this machine, as `ray start` makes them).

    bash benchmarks/ray_two_nodes.sh          # starts a head and a second node, runs this, stops both

Connects to ``--address``, scores ``--objects`` new objects on ``--workers`` Ray workers of 1 CPU each with an
oracle that notes the node it runs on, and prints the objects each node scored.
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from pathlib import Path

import torch

from lgfn.tasks.sequence import SequenceTask


class WhereOracle:
    """0.05 s per object; notes the Ray node of each call in ``folder`` (the nodes share this machine's disk)."""

    lgfn_inputs = "strings"

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __call__(self, strings: list[str]) -> list[float]:
        import ray

        time.sleep(0.05 * len(strings))
        node = ray.get_runtime_context().get_node_id()
        with open(Path(self.folder) / f"{node}-{os.getpid()}-{time.monotonic_ns()}", "w") as handle:
            handle.write(str(len(strings)))
        return [1.0] * len(strings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--objects", type=int, default=64)
    args = parser.parse_args()
    import ray

    ray.init(address=args.address, log_to_driver=False)
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    print(f"cluster: {len(nodes)} nodes, {ray.cluster_resources().get('CPU', 0):g} CPUs")
    executor = {"name": "ray", "address": args.address, "workers": args.workers, "batch_size": 4}
    task = SequenceTask("ACGT", 10, WhereOracle(args.folder), executor=executor, cache="none")
    x = torch.randint(4, (args.objects, 10), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    raw = task.raw_reward(x)
    seconds = time.perf_counter() - start
    per_node: collections.Counter[str] = collections.Counter()
    for note in Path(args.folder).iterdir():
        per_node[note.name.split("-")[0]] += int(note.read_text())
    print(f"scored {int(raw.isfinite().sum())} of {len(x)} objects in {seconds:.1f} s "
          f"(0.05 s each: {0.05 * len(x):.1f} s on one worker)")
    for node in nodes:
        print(f"  node {node[:12]}: {per_node.get(node, 0)} objects")
    task.oracle_calls.close()


if __name__ == "__main__":
    main()
