"""lgfn against torchgfn on the same work, and what Lightning adds to an lgfn step. One thread, one process.

    pip install --no-deps torchgfn==2.4.1   # the "bench" extra; see pyproject.toml on its numpy<2 pin
    python benchmarks/compare_torchgfn.py [--parts compare overhead] [--recompute] [--profile] [--device cuda]

About 40 s on 2 cores (compare ~17 s, overhead ~22 s; --profile alone ~45 s).

1. ``compare``: ms per training step (sample B trajectories on-policy + trajectory-balance loss + backward +
   Adam step) of lgfn and torchgfn on the hypergrid, 2-D H=8 and 4-D H=16, B = 32 and 128, in alternating
   blocks after a warm-up; medians over every timed step. Both sides: reward R0=0.1, R1=0.5, R2=2 (lgfn's
   gridworld r0, r1, r2 and torchgfn's "original" reward), K-hot state input, P_F an MLP of 2 hidden layers of
   256 (LeakyReLU), uniform P_B, no exploration (ε = 0), no gradient clipping, Adam (policy 1e-3, log Z 0.1).
   lgfn: ``GFlowNet(conditioner="none")`` (unconditional, β = 1; its log Z is a small MLP of a constant
   input), trajectories sampled without gradient and re-scored in one batched pass (``flow_terms``); its β-free
   network runs once per distinct state of a batch (and of a sampling step).
   torchgfn: ``DiscretePolicyEstimator`` + ``TBGFlowNet``, its on-policy path (log-probabilities kept while
   sampling: ``save_logprobs=True``, ``recalculate_all_logprobs=False``); ``--recompute`` adds a column for
   torchgfn sampling without gradient and re-scoring like lgfn. "len" is the mean number of actions per
   trajectory (stop included) over the timed steps: the two sides train, so the lengths drift apart a little.
2. ``overhead``: ms per step of ``lgfn fit`` on configs/gridworld.yaml (width 256; no progress bar, logger or
   validation; run in this process through lgfn.cli.main.main), as the difference between a short and a long
   run (start-up, the final checkpoint and anything else once per run cancel; a clock in the training loop
   checks it), against the same steps in a plain loop: the same model, the same OnlineData stream (sampling,
   replay, discovery metrics at fit's logging cadence) and the same update (finite checks, gradient
   clipping) without Lightning. Both end with the same weights (printed). Runs alternate; medians.
3. ``--profile`` (instead of 1 and 2): cProfile of the plain loop and of ``lgfn fit`` on that config (training
   loop only), and torch.profiler counts of the ops per step that wait for a value (item, nonzero).

Each line also gives the process CPU time per step: on a shared machine, wall time includes the time the
process waited for a core; the load average before and after is printed.

``--device cuda`` runs both libraries' steps, and fit (``--trainer.accelerator gpu``) and the plain loop, on the
GPU; every timed step ends with a device synchronisation.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import yaml

import lgfn

REPO = Path(__file__).resolve().parent.parent
GRID_CONFIG = REPO / "configs" / "gridworld.yaml"
WORKS = {"2-D H=8": (2, 8), "4-D H=16": (4, 16)}
R0, R1, R2 = 0.1, 0.5, 2.0
LR_POLICY, LR_Z = 1e-3, 1e-1


def sync(device: str) -> None:
    """Wait for the device's queued work, so that a host clock read after it counts that work."""
    if device != "cpu":
        torch.cuda.synchronize()


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


# -- 1. lgfn vs torchgfn ---------------------------------------------------------------------------
class LgfnStep:
    """One lgfn training step on its own classes: sample (no grad), TB over flow_terms, Adam."""

    name = "lgfn"

    def __init__(self, ndim: int, height: int, batch: int, hidden: int, device: str = "cpu") -> None:
        from lgfn.gflownet import GFlowNet

        torch.manual_seed(0)
        self.model = GFlowNet(task={"name": "gridworld", "ndim": ndim, "height": height, "r0": R0, "r1": R1, "r2": R2},
                              conditioner="none", loss="tb", hidden_dim=hidden, n_layers=2, backward_policy="uniform",
                              lr_policy=LR_POLICY, lr_z=LR_Z, grad_clip=None).to(device)
        self.opt = self.model.configure_optimizers()
        self.generator = torch.Generator().manual_seed(0)  # as the data modules: the sampler seeds one on the device
        self.beta = torch.ones(batch, device=device)

    def __call__(self) -> Any:
        traj = self.model.sampler.forward(self.beta, 0.0, self.generator)
        loss = self.model.loss_fn(self.model.flow_terms(traj))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return traj

    @staticmethod
    def length(traj: Any) -> float:
        return float(traj.lengths.float().mean())


class TorchgfnStep:
    """The same step in torchgfn 2.x: HyperGrid, K-hot preprocessor, MLP P_F, uniform P_B, TBGFlowNet."""

    name = "torchgfn"

    def __init__(self, ndim: int, height: int, batch: int, hidden: int, recompute: bool = False,
                 device: str = "cpu") -> None:
        from gfn.estimators import DiscretePolicyEstimator
        from gfn.gflownet import TBGFlowNet
        from gfn.gym import HyperGrid
        from gfn.preprocessors import KHotPreprocessor
        from gfn.samplers import Sampler
        from gfn.utils.modules import MLP, DiscreteUniform

        torch.manual_seed(0)
        self.env = HyperGrid(ndim=ndim, height=height, reward_fn_str="original",
                             reward_fn_kwargs={"R0": R0, "R1": R1, "R2": R2}, device=device)
        pre = KHotPreprocessor(height=height, ndim=ndim)
        n = self.env.n_actions
        pf = DiscretePolicyEstimator(MLP(pre.output_dim, n, hidden_dim=hidden, n_hidden_layers=2,
                                         activation_fn="leaky_relu"), n, preprocessor=pre)
        pb = DiscretePolicyEstimator(DiscreteUniform(n - 1), n, preprocessor=pre, is_backward=True)
        self.gfn = TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0).to(device)
        self.sampler = Sampler(estimator=pf)
        self.opt = torch.optim.Adam(self.gfn.pf_pb_parameters(), lr=LR_POLICY)
        self.opt.add_param_group({"params": self.gfn.logz_parameters(), "lr": LR_Z})
        self.batch, self.recompute = batch, recompute
        if recompute:
            self.name = "torchgfn (recompute)"

    def __call__(self) -> Any:
        if self.recompute:  # like lgfn: roll out without a graph, re-score every transition in one pass
            with torch.no_grad():
                traj = self.sampler.sample_trajectories(self.env, n=self.batch)
            loss = self.gfn.loss(self.env, traj, recalculate_all_logprobs=True)
        else:  # torchgfn's on-policy path: the log-probabilities of the rollout carry the graph
            traj = self.sampler.sample_trajectories(self.env, n=self.batch, save_logprobs=True)
            loss = self.gfn.loss(self.env, traj, recalculate_all_logprobs=False)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return traj

    @staticmethod
    def length(traj: Any) -> float:
        return float(traj.terminating_idx.float().mean())


def compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for work, (ndim, height) in WORKS.items():
        if args.works and work not in args.works:
            continue
        for batch in args.batches:
            steppers: list[Any] = [LgfnStep(ndim, height, batch, args.hidden, args.device),
                                   TorchgfnStep(ndim, height, batch, args.hidden, device=args.device)]
            if args.recompute:
                steppers.append(TorchgfnStep(ndim, height, batch, args.hidden, recompute=True, device=args.device))
            wall: dict[str, list[float]] = {s.name: [] for s in steppers}
            cpu: dict[str, list[float]] = {s.name: [] for s in steppers}
            lengths: dict[str, list[float]] = {s.name: [] for s in steppers}
            for s in steppers:
                for _ in range(args.warmup):
                    s()
            for block in range(args.blocks):
                order = steppers if block % 2 == 0 else steppers[::-1]  # alternate who goes first
                for s in order:
                    for _ in range(args.steps):
                        w, c = time.perf_counter(), time.process_time()
                        traj = s()
                        sync(args.device)
                        wall[s.name].append((time.perf_counter() - w) * 1e3)
                        cpu[s.name].append((time.process_time() - c) * 1e3)
                        lengths[s.name].append(s.length(traj))
            row = {"work": work, "batch": batch}
            for s in steppers:
                row[s.name] = (statistics.median(wall[s.name]), statistics.median(cpu[s.name]),
                               statistics.fmean(lengths[s.name]))
            rows.append(row)
            print(_compare_line(row, [s.name for s in steppers]), flush=True)
    return rows


def _compare_line(row: dict[str, Any], names: list[str]) -> str:
    lg = row["lgfn"]
    parts = [f"{row['work']:9s} {row['batch']:5d}  {lg[0]:8.2f} {lg[2]:5.1f}"]
    for name in names[1:]:
        t = row[name]
        ratio = t[0] / lg[0]
        parts.append(f"{t[0]:8.2f} {t[2]:5.1f} {ratio:6.2f}x {t[1] / lg[1]:6.2f}x {ratio * lg[2] / t[2]:6.2f}x")
    return " | ".join(parts)


def compare_header(recompute: bool) -> str:
    tail = f"{'ms':>8s} {'len':>5s} {'ratio':>7s} {'cpu':>7s} {'/len':>7s}"
    head = f"{'work':9s} {'batch':>5s}  {'lgfn ms':>8s} {'len':>5s} | torchgfn " + tail[9:]
    if recompute:
        head += " | t-recomp " + tail[9:]
    return head


# -- 2. Lightning overhead ---------------------------------------------------------------------------
def _grid_config(hidden: int, rounds: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    cfg = yaml.safe_load(GRID_CONFIG.read_text())
    model = {**cfg["model"], "hidden_dim": hidden}
    data = {**cfg.get("data", {}).get("init_args", {}), "rounds": rounds}
    return cfg, model, data


def fit_run(rounds: int, hidden: int, profiler: Any = None, marks: tuple[int, ...] = (),
            device: str = "cpu") -> dict[str, Any]:
    """``lgfn fit`` in this process (lgfn.cli.main.main): wall and CPU seconds, steps, evaluations, the trained
    model, and ``times``: (wall, CPU) seconds since the first step began after each step in ``marks``."""
    import lgfn.cli.lightning as cli_lightning
    from lgfn.cli.main import main
    from lgfn.gflownet import GFlowNet

    captured: list[Any] = []
    evaluations = [0]
    run_cli, evaluate = cli_lightning.run_lightning_cli, GFlowNet._evaluate

    def capture(argv: Any) -> Any:
        captured.append(run_cli(argv))
        return captured[-1]

    def count(self: Any, *a: Any, **k: Any) -> Any:
        evaluations[0] += 1
        return evaluate(self, *a, **k)

    cli_lightning.run_lightning_cli, GFlowNet._evaluate = capture, count  # type: ignore[method-assign]
    times: dict[int, tuple[float, float]] = {}
    start = [0.0, 0.0]

    def train_start(self: Any) -> None:
        if profiler is not None:  # the training loop only: from the first step to the end of training
            profiler.enable()
        sync(device)
        start[:] = time.perf_counter(), time.process_time()

    def train_end(self: Any) -> None:
        if profiler is not None:
            profiler.disable()

    def batch_end(self: Any, *args: Any) -> None:  # a clock in the loop itself, as a check on the difference
        if self.global_step in marks:
            sync(device)
            times[self.global_step] = (time.perf_counter() - start[0], time.process_time() - start[1])

    GFlowNet.on_train_start, GFlowNet.on_train_end = train_start, train_end  # type: ignore[method-assign]
    GFlowNet.on_train_batch_end = batch_end  # type: ignore[method-assign]
    out, err = io.StringIO(), io.StringIO()
    try:
        with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            wall, cpu = time.perf_counter(), time.process_time()
            code = main(["fit", "--config", str(GRID_CONFIG), "--model.hidden_dim", str(hidden),
                         "--data.init_args.rounds", str(rounds), "--trainer.enable_progress_bar", "false",
                         "--trainer.logger", "false", "--trainer.limit_val_batches", "0",
                         "--trainer.default_root_dir", root,
                         "--trainer.accelerator", "gpu" if device != "cpu" else "cpu", "--trainer.devices", "1"])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        cli_lightning.run_lightning_cli, GFlowNet._evaluate = run_cli, evaluate  # type: ignore[method-assign]
        del GFlowNet.on_train_start, GFlowNet.on_train_end, GFlowNet.on_train_batch_end
    if code != 0:
        raise RuntimeError(f"lgfn fit exited {code}: {err.getvalue()[-2000:]}")
    return {"wall": wall, "cpu": cpu, "steps": captured[-1].trainer.global_step, "evaluations": evaluations[0],
            "model": captured[-1].model, "times": times}


def plain_run(rounds: int, hidden: int, marks: list[int], profiler: Any = None, device: str = "cpu") -> dict[str, Any]:
    """The fit's steps without Lightning: ``times``, the (wall, CPU) seconds since the start of the loop after
    each step in ``marks`` (steps counted from 1); ``steps``; the trained ``model``."""
    from lightning.pytorch import seed_everything

    from lgfn.cli.lightning import TRAINER_DEFAULTS
    from lgfn.gflownet import GFlowNet
    from lgfn.training.datamodules import OnlineData
    from lgfn.training.discovery import DiscoveryTracker

    cfg, model_args, data_args = _grid_config(hidden, rounds)
    seed_everything(cfg.get("seed_everything", 0), verbose=False)  # as lgfn fit: the same weights and stream
    model = GFlowNet(**model_args).to(device)
    data = OnlineData(**data_args)
    log_every = cfg.get("trainer", {}).get("log_every_n_steps", TRAINER_DEFAULTS["log_every_n_steps"])
    # What the data module asks of a trainer: the model, and the (one-rank) strategy's vote on the replay.
    one_rank = SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision)
    data.trainer = SimpleNamespace(lightning_module=model, global_rank=0, world_size=1, strategy=one_rank)
    data.setup("fit")
    step = [0]
    tracker = DiscoveryTracker()  # as under fit: metrics updated every round, computed on logging steps
    tracker.track(model)
    opt = model.configure_optimizers()
    clip = model.hparams.grad_clip if model.hparams.grad_clip is not None else float("inf")
    times: dict[int, tuple[float, float]] = {}
    batches = data.batches()
    if profiler is not None:
        profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    while True:  # GFlowNet.training_step + Lightning's automatic optimisation + on_before_optimizer_step
        traj = next(batches, None)
        if traj is None:
            break
        traj = traj.to(model.device)
        if len(traj):
            loss = model.loss_fn(model.flow_terms(traj))
            if bool(torch.isfinite(loss)):
                opt.zero_grad()
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(model._trainable, clip)
                if bool(torch.isfinite(norm)):
                    opt.step()
        step[0] += 1
        if step[0] % log_every == 0:
            tracker.values()
        if step[0] in marks:
            sync(device)
            times[step[0]] = (time.perf_counter() - wall, time.process_time() - cpu)
    if profiler is not None:
        profiler.disable()
    return {"times": times, "steps": step[0], "model": model}


def overhead(args: argparse.Namespace) -> dict[str, float]:
    """ms/step of lgfn fit (long run minus short run; and the loop's own clock) and of the plain loop."""
    got: dict[str, list[float]] = {k: [] for k in ("fit", "fit_cpu", "fit_loop", "fit_loop_cpu", "plain", "plain_cpu")}
    # warm-up (imports, first-call costs), which also counts the steps at which the two runs end: 2 a round once
    # the replay buffer is ready, 1 before (the same seed: the same count every time, checked below)
    dev = args.device
    marks = (fit_run(args.short_rounds, args.hidden, device=dev)["steps"],
             fit_run(args.long_rounds, args.hidden, device=dev)["steps"])
    for rep in range(args.repeats):
        if rep % 2:  # alternate the order of the three runs
            plain = plain_run(args.long_rounds, args.hidden, list(marks), device=dev)
        long = fit_run(args.long_rounds, args.hidden, marks=marks, device=dev)
        short = fit_run(args.short_rounds, args.hidden, device=dev)
        if not rep % 2:
            plain = plain_run(args.long_rounds, args.hidden, list(marks), device=dev)
        if short["evaluations"] or long["evaluations"]:
            raise RuntimeError("an evaluation ran during the timed fit runs")
        if (short["steps"], long["steps"]) != marks or plain["steps"] != long["steps"]:
            raise RuntimeError(f"step counts differ: fit {short['steps']}, {long['steps']}, plain {plain['steps']}")
        n = marks[1] - marks[0]
        got["fit"].append((long["wall"] - short["wall"]) / n * 1e3)
        got["fit_cpu"].append((long["cpu"] - short["cpu"]) / n * 1e3)
        for key, times in (("fit_loop", long["times"]), ("plain", plain["times"])):
            (w0, c0), (w1, c1) = times[marks[0]], times[marks[1]]
            got[key].append((w1 - w0) / n * 1e3)
            got[key + "_cpu"].append((c1 - c0) / n * 1e3)
        with torch.no_grad():  # the same seed, stream and updates: the same weights at the end
            pairs = zip(long["model"].parameters(), plain["model"].parameters())
            same = max(float((a.cpu() - b.cpu()).abs().max()) for a, b in pairs)
        print(f"  run {rep + 1}: steps {marks[0]}..{marks[1]}: lgfn fit {got['fit'][-1]:.2f} ms/step "
              f"(cpu {got['fit_cpu'][-1]:.2f}; in-loop clock {got['fit_loop'][-1]:.2f}), plain loop "
              f"{got['plain'][-1]:.2f} (cpu {got['plain_cpu'][-1]:.2f}); short fit run {short['wall']:.2f} s; "
              f"max |weight difference| fit vs plain {same:.1e}", flush=True)
    res = {k: statistics.median(v) for k, v in got.items()}
    print(f"medians: lgfn fit {res['fit']:.2f} ms/step (cpu {res['fit_cpu']:.2f}; in-loop clock {res['fit_loop']:.2f}, "
          f"cpu {res['fit_loop_cpu']:.2f}), plain loop {res['plain']:.2f} ms/step (cpu {res['plain_cpu']:.2f})")
    print(f"Lightning overhead (fit/plain - 1): {res['fit'] / res['plain'] - 1:+.1%} wall, "
          f"{res['fit_cpu'] / res['plain_cpu'] - 1:+.1%} cpu; by the in-loop clock "
          f"{res['fit_loop'] / res['plain'] - 1:+.1%} wall, {res['fit_loop_cpu'] / res['plain_cpu'] - 1:+.1%} cpu",
          flush=True)
    return res


# -- 3. profiles ----------------------------------------------------------------------------------------
PROFILE_KEYS = [  # (label, function name in cProfile, file fragment) : what an lgfn step spends its time on
    ("data: next batch (OnlineData.batches)", "batches", "datamodules.py"),
    ("  sample_forward", "sample_forward", "trajectories.py"),
    ("  sample_backward (replay steps)", "sample_backward", "trajectories.py"),
    ("  score (oracle)", "score", "sampler.py"),
    ("  observe (discovery metrics)", "observe", "discovery.py"),
    ("  replay.add", "add", "replay.py"),
    ("  replay.draw", "draw", "replay.py"),
    ("flow_terms", "flow_terms", "gflownet.py"),
    ("loss (tb)", "__call__", "tb.py"),
    ("backward", "backward", "torch/_tensor.py"),
    ("clip_grad_norm_", "clip_grad_norm_", "clip_grad.py"),
    ("Adam update (functional adam)", "adam", "optim/adam.py"),
    ("LightningModule.log / log_dict", "log", "core/module.py"),
    ("", "log_dict", "core/module.py"),
    ("  _ResultMetric.to (in every log call)", "to", "logger_connector/result.py"),
    ("Tensor.item", "item", ""),
    ("Tensor.__bool__ / __float__", "__bool__", ""),
]


def _profile_table(prof: cProfile.Profile, steps: int, label: str) -> None:
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n{label}: {total / steps * 1e3:.2f} ms/step under cProfile ({steps} steps); cumulative share of a step:")
    for name, func, frag in PROFILE_KEYS:
        hits = [v for k, v in stats.stats.items()  # type: ignore[attr-defined]
                if ((k[2] == func and frag in k[0]) if frag else (f"'{func}'" in k[2] and "Tensor" in k[2]))]
        if not hits:
            continue
        calls, cum = sum(v[1] for v in hits), sum(v[3] for v in hits)
        print(f"  {name or '  ' + func:40s} {cum / total:6.1%} {cum / steps * 1e3:7.3f} ms "
              f"{calls / steps:6.1f} calls/step")
    print("  top 20 by own time (tottime):")
    stats.sort_stats("tottime").print_stats(20)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    for ln in lines[start:start + 21]:
        print("   " + ln[:160])


def profile(args: argparse.Namespace) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    rounds = args.profile_rounds
    plain_run(args.short_rounds, args.hidden, [], device=args.device)  # warm-up
    prof = cProfile.Profile()
    steps = plain_run(rounds, args.hidden, [], prof, args.device)["steps"]
    _profile_table(prof, steps, "plain loop")
    fit_run(args.short_rounds, args.hidden, device=args.device)  # warm-up
    prof = cProfile.Profile()
    res = fit_run(rounds, args.hidden, prof, device=args.device)
    _profile_table(prof, res["steps"], "lgfn fit (training loop only)")
    # ops that make the host wait for a value: free on a CPU, a device synchronisation each on a GPU
    print(f"\nops per step (torch.profiler over the training loop, {args.short_rounds} rounds):")
    short, hidden, dev = args.short_rounds, args.hidden, args.device
    for label, run in (("plain loop", lambda tp: plain_run(short, hidden, [], tp, dev)["steps"]),
                       ("lgfn fit", lambda tp: fit_run(short, hidden, tp, device=dev)["steps"])):
        tp = torch_profile(activities=[ProfilerActivity.CPU])
        steps = run(SimpleNamespace(enable=tp.start, disable=tp.stop))
        ops = {e.key: e.count for e in tp.key_averages()}
        print(f"  {label:10s} " + ", ".join(f"{k.split('::')[1]} {ops.get(k, 0) / steps:.1f}" for k in (
            "aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::nonzero", "aten::multinomial",
            "aten::linear", "aten::index", "aten::index_put_")) + f"; all ops {sum(ops.values()) / steps:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["compare", "overhead"], choices=["compare", "overhead"])
    parser.add_argument("--works", nargs="+", choices=list(WORKS), help="default: both grids")
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps of each library first")
    parser.add_argument("--blocks", type=int, default=5, help="alternating timed blocks per library")
    parser.add_argument("--steps", type=int, default=15, help="steps per block")
    parser.add_argument("--recompute", action="store_true", help="also torchgfn re-scoring like lgfn")
    parser.add_argument("--short_rounds", type=int, default=30, help="rounds of the short fit run (2 steps each)")
    parser.add_argument("--long_rounds", type=int, default=130, help="rounds of the long fit run")
    parser.add_argument("--repeats", type=int, default=4, help="fit short/long + plain loop repeats")
    parser.add_argument("--profile", action="store_true", help="profile the plain loop and lgfn fit instead")
    parser.add_argument("--profile_rounds", type=int, default=100)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both libraries run")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU here")
    torch.set_num_threads(1)
    os.environ["LGFN_NUM_THREADS"] = "1"
    start = time.perf_counter()
    on = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"torch {torch.__version__}, 1 thread, device {on}; load average {load()} (nproc {os.cpu_count()})",
          flush=True)
    if args.profile:
        profile(args)
    else:
        if "compare" in args.parts:
            if importlib.util.find_spec("gfn") is None:
                raise SystemExit("torchgfn is missing: pip install --no-deps torchgfn==2.4.1 (see pyproject.toml)")
            print(f"\nms per training step (median wall), lgfn {lgfn.__version__} vs torchgfn {_version('torchgfn')}, "
                  f"{args.blocks} alternating blocks x {args.steps} steps each after {args.warmup} warm-up, width "
                  f"{args.hidden}; len: mean actions per trajectory; ratio: torchgfn / lgfn (wall, process CPU, "
                  "and wall per action: divided by the ratio of the lengths):", flush=True)
            print(compare_header(args.recompute), flush=True)
            compare(args)
        if "overhead" in args.parts:
            print(f"\nLightning overhead on {GRID_CONFIG.relative_to(REPO)} (width {args.hidden}), "
                  f"fit runs of {args.short_rounds} and {args.long_rounds} rounds:", flush=True)
            overhead(args)
    print(f"\ndone in {time.perf_counter() - start:.1f} s; load average {load()}", flush=True)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
