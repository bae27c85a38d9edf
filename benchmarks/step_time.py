"""Time one Algorithm-1 gradient step (forward sampling + TB loss + Adam) per task, outside Lightning.

    python benchmarks/step_time.py [--tasks gridworld tfbind8] [--steps 200] [--threads 1]

Prints milliseconds per step: sampling alone, loss + update alone, and both.
"""

from __future__ import annotations

import argparse
import time

import torch

from lgfn.beta.distributions import Uniform
from lgfn.errors import LgfnError
from lgfn.gflownet import GFlowNet


def bench(task: str, conditioner: str, hidden: int, steps: int, batch: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = GFlowNet(task=task, conditioner=conditioner, hidden_dim=hidden)
    model.policy.conditioner.set_range(1.0, 3.0)
    opt = model.configure_optimizers()
    g, betas = torch.Generator().manual_seed(0), Uniform(1.0, 3.0)

    def sample():
        return model.sampler.forward(betas.sample(batch, g), 0.01, g)

    def update(traj):
        loss = model.loss_fn(model.flow_terms(traj))
        opt.zero_grad()
        loss.backward()
        opt.step()

    traj = sample()
    for _ in range(10):
        update(sample())
    out = {}
    t = time.perf_counter()
    for _ in range(steps):
        traj = sample()
    out["sample_ms"] = (time.perf_counter() - t) / steps * 1e3
    t = time.perf_counter()
    for _ in range(steps):
        update(traj)
    out["update_ms"] = (time.perf_counter() - t) / steps * 1e3
    out["step_ms"] = out["sample_ms"] + out["update_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=["gridworld", "tfbind8"])
    parser.add_argument("--conditioner", default="logit")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for task in args.tasks:
        try:
            r = bench(task, args.conditioner, args.hidden, args.steps, args.batch)
        except LgfnError as err:  # e.g. a task whose data files are not here (lgfn data fetch TASK)
            print(f"{task:10s} skipped: {err}")
            continue
        print(f"{task:10s} {args.conditioner} hidden={args.hidden} batch={args.batch} threads={args.threads}: "
              + ", ".join(f"{k} {v:.2f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
