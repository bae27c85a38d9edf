"""Wall time at which a run had found N modes, read from its TensorBoard log (``discovery/modes_found``).

    python benchmarks/modes_time.py RUN_ROOT [N]     (RUN_ROOT: a --trainer.default_root_dir; N: 250)

Prints the first logged step with at least N modes and the wall time since the run's first logged event.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> None:
    root, target = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 250
    logs = sorted(root.rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    if not logs:
        sys.exit(f"no TensorBoard log under {root}")
    events = EventAccumulator(str(logs[-1].parent)).Reload()
    if "discovery/modes_found" not in events.Tags()["scalars"]:
        sys.exit(f"{logs[-1].parent}: no discovery/modes_found (a task without a mode list?)")
    scalars = events.Scalars("discovery/modes_found")
    start = min(s.wall_time for tag in events.Tags()["scalars"] for s in events.Scalars(tag))
    hit = next((s for s in scalars if s.value >= target), None)
    if hit is None:
        print(f"{target} modes not reached: {scalars[-1].value:.0f} at step {scalars[-1].step}")
    else:
        print(f"{target} modes at step {hit.step}, {hit.wall_time - start:.1f} s after the first logged value")


if __name__ == "__main__":
    main()
