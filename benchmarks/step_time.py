"""Profile of one Algorithm-1 round outside Lightning, eager and compiled: ms, read-backs and aten calls.

    python benchmarks/step_time.py [--tasks tfbind8 tfbind8_ls grid2 grid4] [--batch 32] [--compile both|eager|compiled]
                                   [--rounds 100] [--threads 1] [--device cpu]

A round is what ``lgfn fit`` does for each of its rounds (two gradient steps): roll out B trajectories with
ε = 0.01 at β ~ U[1, 3], score them, add them to the prioritised replay buffer, a TB step on them; draw B
objects from the buffer, roll out trajectories to them with P_B at fresh β, a TB step on those (Adam,
gradient clipping at 10, the model's own ``loss`` and optimiser; Logit-GFN, width 128, learned P_B).
``tfbind8_ls`` is configs/tfbind8.yaml's round: its B oracle calls are B − S·I fresh samples and S·I local-search
candidates (deterministic, I = 7 moves of k = 4 back-steps from S = B // 8 seeds, 8 rebuilds a move).

For each task and mode it prints: ms per round (median of 5 blocks), host read-backs per round (counted by
:mod:`lgfn.profiling`), aten calls per round (torch.profiler), and for compiled programs the time of the
first round (compiling; inductor's on-disk cache makes a second process faster). About 1–3 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from lgfn.beta.distributions import Uniform
from lgfn.errors import LgfnError
from lgfn.gflownet import GFlowNet
from lgfn.profiling import count_readbacks
from lgfn.registry import build
from lgfn.training.replay import PrioritizedReplay

TFBIND8_SEARCH = {"name": "deterministic", "iterations": 7, "back_steps": 4, "proposals": 8}
TASKS = {
    "tfbind8": ("tfbind8", "logit", None),
    "tfbind8_ls": ("tfbind8", "logit", TFBIND8_SEARCH),
    "grid2": ({"name": "gridworld", "ndim": 2, "height": 8}, "logit_layer", None),
    "grid4": ({"name": "gridworld", "ndim": 4, "height": 16}, "logit", None),
}


class Round:
    """One round of Algorithm 1 on a model, with its own replay buffer and generator."""

    def __init__(self, task: object, conditioner: str, search: dict | None, batch: int, compiled: bool,
                 device: str) -> None:
        torch.manual_seed(0)
        self.model = GFlowNet(task=task, conditioner=conditioner, hidden_dim=128).to(device)
        self.model.sampler.set_training_range(1.0, 3.0)
        self.model.sampler.compiled = compiled
        self.model.compiled_loss = compiled
        self.opt = self.model.configure_optimizers()
        self.g, self.betas, self.batch = torch.Generator().manual_seed(0), Uniform(1.0, 3.0), batch
        self.replay = PrioritizedReplay()
        self.device = torch.device(device)
        self.search = build("local_search", search) if search is not None else None
        self.split = self.search.split(batch) if self.search is not None else (batch, 0)

    def _update(self, traj: object) -> None:
        loss = self.model.loss(traj)
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.opt.step()

    def __call__(self) -> None:
        sampler = self.model.sampler
        beta = self.betas.sample(self.split[0], self.g).to(self.device)
        if self.search is None:
            online = sampler.explore(beta, 0.01, self.g)
        else:  # as OnlineData does: fresh samples and the candidates refined from them, B oracle calls
            online = sampler.admit(self.search.round(sampler, beta, 0.01, self.split[1], self.g, self.replay.holds))
        self.replay.add(online)
        self._update(online)
        x, log_r, raw = self.replay.draw(self.batch, self.g)
        replayed = sampler.backward(x, self.betas.sample(self.batch, self.g), self.g)
        replayed.log_reward, replayed.raw_reward = log_r, raw
        self._update(replayed)
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def measure(name: str, batch: int, compiled: bool, rounds: int, device: str) -> dict[str, float]:
    run = Round(*TASKS[name], batch, compiled, device)
    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    for _ in range(5):
        run()
    with count_readbacks() as counter:
        for _ in range(10):
            run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            run()
    aten = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")) / 3
    blocks = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(max(rounds // 5, 1)):
            run()
        blocks.append((time.perf_counter() - t) / max(rounds // 5, 1) * 1e3)
    return {"ms": statistics.median(blocks), "readbacks": counter.total / 10, "aten": aten, "first_s": first}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--batch", type=int, nargs="+", default=[32])
    parser.add_argument("--compile", choices=["both", "eager", "compiled"], default="both")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    modes = {"both": [False, True], "eager": [False], "compiled": [True]}[args.compile]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.device}")
    for name in args.tasks:
        for batch in args.batch:
            for compiled in modes:
                try:
                    r = measure(name, batch, compiled, args.rounds, args.device)
                except LgfnError as err:  # e.g. a task whose data files are not here (lgfn data fetch TASK)
                    print(f"{name:8s} skipped: {err}")
                    break
                mode = "compiled" if compiled else "eager"
                print(f"{name:8s} B={batch:<5d} {mode:9s} {r['ms']:7.2f} ms/round  {r['readbacks']:5.1f} read-backs  "
                      f"{r['aten']:6.0f} aten calls  first round {r['first_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
