"""lgfn against gfnx (JAX) on the same on-policy trajectory-balance step. One thread each, one process.

    pip install jax jaxlib chex jaxtyping flashbax jax-tqdm optax equinox networkx omegaconf
    pip install --no-deps gfnx==0.0.1     # the "bench" extra; see pyproject.toml on its numpy==1.26.4 pin
    LGFN_DATA_DIR=... python benchmarks/compare_gfnx.py [--quick] [--works TFBind8 "2-D H=8"] [--fuse 10]

About 1.5 min on 2 shared cores, up to 2.5 under load (--quick, B = 32 only: ~40 s); about 40 s of it is XLA
compiling (two programs a row, 2-5 s each).

The work, the same on both sides: sample B trajectories on-policy (β = 1, no exploration), the trajectory-balance
loss, backward, an Adam step (policy 1e-3, log Z 0.1; no gradient clipping). P_F an MLP of 2 hidden layers of
256 (LeakyReLU), uniform P_B. On
  - TFBind8 with the append-only MDP, B = 16, 32, 128 (lgfn: ``task: {name: tfbind8, mdp: append_only}``,
    9 actions a trajectory, the stop included; gfnx: ``TFBind8Environment``, 8 actions, no stop), and
  - the hypergrid 2-D H=8 and 4-D H=16, B = 32, 128, reward R0=0.1, R1=0.5, R2=2 (lgfn's gridworld r0, r1,
    r2; gfnx's ``GeneralHypergridRewardModule``), K-hot state input on both sides.

lgfn: ``GFlowNet(conditioner="none")`` (β-free; its log Z a small MLP of a constant input): ``model.sampler.forward``
without gradient (fixed-shape rollouts), then ``model.loss(traj)``, ``backward``, Adam; ``--lgfn-compile`` runs
the rollouts and the loss with its backward as compiled programs (``model.compile``; "first s" then includes
compiling, from inductor's on-disk cache when it has the kernels).
gfnx 0.0.1: its environment, reward and rollout (``gfnx.utils.forward_rollout``: a ``lax.scan`` of the MDP's
fixed horizon + 1 over all B rows, padded) and the loss of its TB baselines (baselines/tb_hypergrid.py,
tb_tfbind.py at github.com/d-tiapkin/gfnx: the network re-run over the whole padded [B, T+1] batch, masked
log-softmax, optax Adam via ``multi_transform``), in one ``jax.jit`` step with the train state donated. Left out
of the baselines' step: the metrics modules, the logging callback and ε-exploration (ε = 0 here); the policy is
the hypergrid baseline's ``MLPPolicy`` (``eqx.nn.MLP``, depth 2, no learned P_B), on TFBind8 with the TFBind8
baseline's input (one-hot of the 8 tokens, 5 classes); its TFBind8 baseline adds a third 256×256 layer (an
encoder MLP with out_size 256, then a linear head), left out here to keep the networks the same size.
``gfnx scan×K`` (the moonshot): K of those steps fused into one jitted ``lax.scan`` (one dispatch per K steps;
its ms are per step).

gfnx's TFBind8 reward opens ``proxy/weights/tfbind/tfbind8-exact-v0-all.pkl`` relative to the working directory
and its wheel lacks the file: the script writes it, in a temporary directory that it removes again, from lgfn's
``tfbind8/tfbind8_all.npz`` (the same table as the upstream pickle: {"x": int64 [65536, 8], "y": float32
[65536, 1]}), and runs gfnx's reward set-up there. The two rewards differ in one detail that does not change
the work: gfnx clips at 1e-3 after scaling to max 10, lgfn clips y at 1e-3 before.

Timing: a warm-up first (gfnx: ``lower().compile()``, timed and reported as "compile s", then a few steps;
lgfn: a few steps, the first reported as "first s"), then alternating blocks (the order reversed every block),
medians over every timed step; wall and process CPU time per step (on a shared machine the wall time includes
time spent waiting for a core; a process CPU time well above the wall time would mean more than one thread).
One thread each: ``torch.set_num_threads(1)``; for XLA, ``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` is set before jax is imported, but jax 0.10's CPU client does not heed it (it
sizes its thread pool by the CPUs the process may use), so the script starts jax's client while the process may
run on one CPU only, then gives every thread all CPUs back (``import_jax_one_thread``). Checks: the sgemm line
says how many threads did the peak measurements' work (from /proc/self/task), and "c/w" is a side's process CPU
time over its wall time, summed over its timed steps: above 1 only if threads ran at once. (A jitted gfnx step
still shows two busy threads: jax's CPU client dispatches asynchronously, so the step runs on a worker thread
while the Python thread waits; they take turns.) The load average is printed before and after.

Arithmetic share ("arith"): the matmul FLOPs of a step over its process CPU time (not its wall time, which
includes waiting for a core), as a share of this core's sgemm peak (a 1024³ ``torch.mm`` on one thread, best of
several, also on CPU time). lgfn's FLOPs are counted with forward hooks on its ``nn.Linear``
layers over a few untimed steps (2·rows·in·out forward; backward 2·rows·in·out for the weight gradient, twice
that where the layer's input needs a gradient); gfnx's from its shapes: the MLP over B·(T+1) rows in the rollout
and again, forward and backward, in the loss. "rows" is the number of states a step runs the policy MLP on
(sampling + loss). Only the matmuls are counted: the softmaxes, the environment and the optimizer are not.
"""

from __future__ import annotations

import os

# One thread for XLA: these must be set before jax is imported (it is imported lazily, below).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                           "intra_op_parallelism_threads=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["LGFN_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import pickle  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

import lgfn  # noqa: E402

# work -> (lgfn task spec, gfnx builder args)
WORKS: dict[str, dict[str, Any]] = {
    "TFBind8": {"task": {"name": "tfbind8", "mdp": "append_only"}, "batches": [16, 32, 128]},
    "2-D H=8": {"task": {"name": "gridworld", "ndim": 2, "height": 8}, "batches": [32, 128]},
    "4-D H=16": {"task": {"name": "gridworld", "ndim": 4, "height": 16}, "batches": [32, 128]},
}
R0, R1, R2 = 0.1, 0.5, 2.0
LR_POLICY, LR_Z = 1e-3, 1e-1
GFNX_TFBIND_FILE = "proxy/weights/tfbind/tfbind8-exact-v0-all.pkl"


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


# -- lgfn --------------------------------------------------------------------------------------------------------
class LgfnStep:
    """One lgfn training step on its own classes: sample (no grad), TB over flow_terms, Adam."""

    name = "lgfn"

    def __init__(self, work: str, batch: int, hidden: int, compiled: bool = False) -> None:
        from lgfn.gflownet import GFlowNet

        task = dict(WORKS[work]["task"])
        if task["name"] == "gridworld":
            task.update(r0=R0, r1=R1, r2=R2)
        torch.manual_seed(0)
        self.model = GFlowNet(task=task, conditioner="none", loss="tb", hidden_dim=hidden, n_layers=2,
                              backward_policy="uniform", lr_policy=LR_POLICY, lr_z=LR_Z, grad_clip=None)
        self.opt = self.model.configure_optimizers()
        self.generator = torch.Generator().manual_seed(0)
        self.beta = torch.ones(batch)
        self.hidden = hidden
        self.compiled = compiled  # model.compile: rollouts and the loss with its backward as compiled programs
        self.model.compiled_loss = compiled

    def __call__(self) -> Any:
        traj = self.model.sampler.forward(self.beta, 0.0, self.generator, self.compiled)
        loss = self.model.loss(traj)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return traj

    def length(self, traj: Any) -> float:
        lengths = getattr(traj, "lengths", None)
        return float(lengths.float().mean()) if lengths is not None else float("nan")

    def count(self, steps: int) -> tuple[float, float]:
        """(matmul FLOPs, policy-MLP rows) per step, counted with forward hooks over ``steps`` untimed steps."""
        flops, rows = [0.0], [0.0]

        def hook(mod: torch.nn.Linear, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            n = inputs[0].numel() / mod.in_features
            f = 2.0 * n * mod.in_features * mod.out_features
            flops[0] += f
            if out.requires_grad:  # weight gradient, and the input's where it needs one
                flops[0] += f * (2 if inputs[0].requires_grad else 1)
            if mod.in_features == mod.out_features == self.hidden:  # the policy MLP's middle layer: one per row
                rows[0] += n

        handles = [m.register_forward_hook(hook) for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
        compiled, self.compiled = self.compiled, False  # hooks see eager modules only: the same work
        self.model.compiled_loss = False
        try:
            for _ in range(steps):
                self()
        finally:
            for h in handles:
                h.remove()
            self.compiled = self.model.compiled_loss = compiled
        return flops[0] / steps, rows[0] / steps


# -- gfnx --------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _gfnx_tfbind_dir() -> Iterator[None]:
    """A temporary working directory holding the file gfnx's TFBind8 reward opens, written from lgfn's data."""
    from lgfn.oracles.tfbind8 import load_table

    x, y = load_table()  # x int64 [65536, 8], y float32 [65536]: the upstream pickle's table
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="gfnx-tfbind8-") as root:
        path = Path(root) / GFNX_TFBIND_FILE
        path.parent.mkdir(parents=True)
        with open(path, "wb") as f:  # our own file, from lgfn's portable .npz; gfnx pickle.loads it
            pickle.dump({"x": x, "y": y[:, None].astype("float32")}, f)
        os.chdir(root)
        try:
            yield
        finally:
            os.chdir(old)


def _mlp_flops(rows: float, dims: list[int], train: bool) -> float:
    """Matmul FLOPs of an MLP with layer sizes ``dims`` over ``rows`` inputs (no input gradient)."""
    total = 0.0
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        f = 2.0 * rows * a * b
        total += f + (f * (1 if i == 0 else 2) if train else 0.0)
    return total


_GFNX_ENVS: dict[str, Any] = {}  # work -> (gfnx environment, its params)


class GfnxStep:
    """gfnx 0.0.1's TB step (its baselines' rollout + loss + optax Adam) jitted; ``fuse`` > 1: K of them in one
    ``lax.scan``. Each call advances ``fuse`` steps; ``compile_s`` is the time of ``lower().compile()``."""

    def __init__(self, work: str, batch: int, hidden: int, fuse: int = 1) -> None:
        import equinox as eqx
        import gfnx
        import jax
        import jax.numpy as jnp
        import optax

        self.name = "gfnx" if fuse == 1 else f"gfnx scan×{fuse}"
        self.fuse = fuse
        task = WORKS[work]["task"]
        if work not in _GFNX_ENVS:  # TFBind8's reward set-up reads the table in a Python loop: once a work
            if task["name"] == "tfbind8":
                with _gfnx_tfbind_dir():
                    env = gfnx.TFBind8Environment(gfnx.TFBind8RewardModule())
                    _GFNX_ENVS[work] = env, env.init(jax.random.PRNGKey(1))
            else:
                env = gfnx.HypergridEnvironment(gfnx.GeneralHypergridRewardModule(R0=R0, R1=R1, R2=R2),
                                                dim=task["ndim"], side=task["height"])
                _GFNX_ENVS[work] = env, env.init(jax.random.PRNGKey(1))
        env, env_params = _GFNX_ENVS[work]
        if task["name"] == "tfbind8":
            n_in = 5 * env.max_length

            def encode(obs: Any) -> Any:  # tb_tfbind.py: one-hot of the tokens after [BOS], 5 classes
                return jax.nn.one_hot(obs[1:], 5).reshape(-1)
        else:
            n_in = env.observation_space.shape[0]  # K-hot: dim * side

            def encode(obs: Any) -> Any:
                return obs

        n_fwd, n_bwd = env.action_space.n, env.backward_action_space.n
        self.horizon = env.max_steps_in_episode + 1  # forward_rollout's scan length (one padding step)
        self.dims = [n_in, hidden, hidden, n_fwd]

        class MLPPolicy(eqx.Module):  # tb_hypergrid.py's, train_backward_policy=False (uniform P_B)
            network: eqx.nn.MLP

            def __call__(self, obs: Any) -> dict[str, Any]:
                return {"forward_logits": self.network(encode(obs)),
                        "backward_logits": jnp.zeros((n_bwd,), dtype=jnp.float32)}

        key, net_key = jax.random.split(jax.random.PRNGKey(0))
        model = MLPPolicy(eqx.nn.MLP(n_in, n_fwd, hidden, 2, activation=jax.nn.leaky_relu, key=net_key))
        params, static = eqx.partition(model, eqx.is_array)
        all_params = {"model_params": params, "logZ": jnp.array(0.0)}
        labels = {"model_params": jax.tree.map(lambda _: "network_lr", params), "logZ": "logZ_lr"}
        optimizer = optax.multi_transform({"network_lr": optax.adam(LR_POLICY), "logZ_lr": optax.adam(LR_Z)},
                                          labels)
        state = {"key": key, "params": all_params, "opt": optimizer.init(all_params)}

        def fwd_policy_fn(rng_key: Any, env_obs: Any, policy_params: Any) -> Any:
            out = jax.vmap(eqx.combine(policy_params, static))(env_obs)
            return out["forward_logits"], out

        def loss_fn(current: dict[str, Any], traj: Any) -> Any:  # the baselines' loss_fn, as written there
            model_to_call = eqx.combine(current["model_params"], static)
            outs = jax.vmap(jax.vmap(model_to_call))(traj.obs)
            invalid_fwd = jax.vmap(env.get_invalid_mask, in_axes=(1, None), out_axes=1)(traj.state, env_params)
            fwd_lp = jax.nn.log_softmax(gfnx.utils.mask_logits(outs["forward_logits"], invalid_fwd), axis=-1)
            fwd_lp = jnp.take_along_axis(fwd_lp, traj.action[..., None], axis=-1).squeeze(-1)
            fwd_lp = jnp.where(traj.pad, 0.0, fwd_lp)
            log_pf = current["logZ"] + fwd_lp.sum(axis=1)
            prev = jax.tree.map(lambda x: x[:, :-1], traj.state)
            curr = jax.tree.map(lambda x: x[:, 1:], traj.state)
            bwd_actions = jax.vmap(env.get_backward_action, in_axes=(1, 1, 1, None), out_axes=1)(
                prev, traj.action[:, :-1], curr, env_params)
            invalid_bwd = jax.vmap(env.get_invalid_backward_mask, in_axes=(1, None), out_axes=1)(curr, env_params)
            bwd_lp = jax.nn.log_softmax(gfnx.utils.mask_logits(outs["backward_logits"][:, 1:], invalid_bwd),
                                        axis=-1)
            bwd_lp = jnp.take_along_axis(bwd_lp, bwd_actions[..., None], axis=-1).squeeze(-1)
            pad = traj.pad[:, :-1]
            target = jnp.sum(jnp.where(pad, 0.0, bwd_lp) + jnp.where(pad, 0.0, traj.log_gfn_reward[:, :-1]), axis=1)
            return optax.losses.squared_error(log_pf, target).mean()

        def step(s: dict[str, Any]) -> tuple[dict[str, Any], Any]:
            key, traj_key = jax.random.split(s["key"])
            traj, aux = gfnx.utils.forward_rollout(traj_key, batch, fwd_policy_fn, s["params"]["model_params"],
                                                   env, env_params)
            loss, grads = jax.value_and_grad(loss_fn)(s["params"], traj)
            updates, opt = optimizer.update(grads, s["opt"], s["params"])
            new = {"key": key, "params": optax.apply_updates(s["params"], updates), "opt": opt}
            return new, (loss, aux["trajectory_length"].astype(jnp.float32).mean())

        def fused(s: dict[str, Any]) -> tuple[dict[str, Any], Any]:
            return jax.lax.scan(lambda c, _: step(c), s, None, length=fuse)

        fn = jax.jit(step if fuse == 1 else fused, donate_argnums=0)
        t = time.perf_counter()
        self._compiled = fn.lower(state).compile()
        self.compile_s = time.perf_counter() - t
        self._state, self._jax = state, jax
        self.rows = 2.0 * batch * self.horizon  # rollout + loss, every padded position
        self.flops = _mlp_flops(batch * self.horizon, self.dims, False) + _mlp_flops(batch * self.horizon,
                                                                                    self.dims, True)

    def __call__(self) -> Any:
        self._state, out = self._compiled(self._state)
        self._jax.block_until_ready((self._state, out))
        return out

    def length(self, out: Any) -> float:
        return float(self._jax.numpy.mean(out[1]))


# -- the comparison ---------------------------------------------------------------------------------------------
def import_jax_one_thread() -> Any:
    """Import jax and start its CPU client with one intra-op thread.

    jax 0.10's CPU client ignores the XLA flags above: it sizes its intra-op thread pool by the CPUs this
    process may run on (sched_getaffinity) and spreads a jitted computation over them (on this 2-core machine a
    2048³ matmul ran on 2 threads at once with the flags set). So the client is started while the process may
    run on one CPU only, and every thread is then given back all of them: the pool keeps its one thread, and
    nothing is pinned while timing. ``thread_ticks`` checks it (see main)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if len(cpus) > 1:
        os.sched_setaffinity(0, {min(cpus)})
    try:
        import jax

        jax.block_until_ready(jax.jit(lambda x: x @ x)(jax.numpy.ones((8, 8))))
    finally:
        if len(cpus) > 1:
            for tid in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), cpus)
    return jax


def thread_ticks() -> dict[str, int]:
    """CPU time (clock ticks, user + system) of each thread of this process; {} where /proc is absent."""
    ticks = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
                ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


def busy_threads(before: dict[str, int], after: dict[str, int]) -> str:
    """How many threads did at least 10% of the CPU work between two ``thread_ticks``."""
    used = [v - before.get(k, 0) for k, v in after.items()]
    total = sum(used)
    return str(sum(u >= 0.1 * total for u in used)) if total > 0 else "?"


def sgemm_peak(n: int = 1024, reps: int = 8) -> tuple[float, str]:
    """GFLOP/s of a single-thread n³ float32 torch.mm (best of ``reps``, on process CPU time, which a shared
    machine's waiting does not inflate), and how many threads did the work."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, before = float("inf"), thread_ticks()
    for _ in range(reps):
        t = time.process_time()
        torch.mm(a, b)
        best = min(best, time.process_time() - t)
    return 2.0 * n**3 / best / 1e9, busy_threads(before, thread_ticks())


def xla_peak(n: int = 1024, reps: int = 8) -> tuple[float, str]:
    """The same for XLA's dot (jax.jit of a @ b), for reference, and how many threads did the work."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype=jnp.float32)
    mm = jax.jit(lambda x, y: x @ y)
    mm(a, a).block_until_ready()
    best, before = float("inf"), thread_ticks()
    for _ in range(reps):
        t = time.process_time()
        mm(a, a).block_until_ready()
        best = min(best, time.process_time() - t)
    return 2.0 * n**3 / best / 1e9, busy_threads(before, thread_ticks())


def timed(steppers: list[Any], blocks: int, steps: int) -> dict[str, dict[str, float]]:
    """Alternating blocks; per stepper the median wall and CPU ms per step and the mean length."""
    wall: dict[str, list[float]] = {s.name: [] for s in steppers}
    cpu: dict[str, list[float]] = {s.name: [] for s in steppers}
    lengths: dict[str, list[float]] = {s.name: [] for s in steppers}
    for block in range(blocks):
        for s in (steppers if block % 2 == 0 else steppers[::-1]):
            k = getattr(s, "fuse", 1)
            for _ in range(max(1, round(steps / k))):
                w, c = time.perf_counter(), time.process_time()
                out = s()
                wall[s.name].append((time.perf_counter() - w) * 1e3 / k)
                cpu[s.name].append((time.process_time() - c) * 1e3 / k)
                lengths[s.name].append(s.length(out))
    return {s.name: {"ms": statistics.median(wall[s.name]), "cpu": statistics.median(cpu[s.name]),
                     "len": statistics.fmean(lengths[s.name]), "n": len(wall[s.name]),
                     "c/w": sum(cpu[s.name]) / sum(wall[s.name])} for s in steppers}


def compare(args: argparse.Namespace, peak: float) -> list[dict[str, Any]]:
    rows = []
    for work, spec in WORKS.items():
        if args.works and work not in args.works:
            continue
        for batch in spec["batches"]:
            if args.batches and batch not in args.batches:
                continue
            lg = LgfnStep(work, batch, args.hidden, args.lgfn_compile)
            t = time.perf_counter()
            lg()
            first = time.perf_counter() - t
            steppers: list[Any] = [lg, GfnxStep(work, batch, args.hidden)]
            if args.fuse > 1:
                steppers.append(GfnxStep(work, batch, args.hidden, fuse=args.fuse))
            for s in steppers:  # warm-up: caches, allocator, the first steps of training
                for _ in range(max(1, round(args.warmup / getattr(s, "fuse", 1)))):
                    s()
            res = timed(steppers, args.blocks, args.steps)
            lg_flops, lg_rows = lg.count(args.count_steps)
            row: dict[str, Any] = {"work": work, "batch": batch, "first_s": first}
            for s in steppers:
                r = res[s.name]
                if s is lg:
                    r.update(flops=lg_flops, rows=lg_rows)
                else:
                    r.update(flops=s.flops, rows=s.rows, compile_s=s.compile_s)
                r["share"] = r["flops"] / (r["cpu"] * 1e-3) / 1e9 / peak
                row[s.name] = r
            rows.append(row)
            print(_line(row, [s.name for s in steppers]), flush=True)
    return rows


def _line(row: dict[str, Any], names: list[str]) -> str:
    lg = row["lgfn"]
    parts = [f"{row['work']:9s} {row['batch']:4d}  {lg['ms']:7.2f} {lg['cpu']:7.2f} {lg['c/w']:4.2f} "
             f"{lg['len']:5.1f} {lg['rows']:6.0f} {lg['share']:6.1%} {row['first_s']:5.2f}"]
    for name in names[1:]:
        g = row[name]
        parts.append(f"{g['ms']:7.2f} {g['cpu']:7.2f} {g['c/w']:4.2f} {g['len']:5.1f} {g['rows']:6.0f} "
                     f"{g['share']:6.1%} "
                     f"{g['compile_s']:5.2f} {lg['ms'] / g['ms']:6.2f} {lg['cpu'] / g['cpu']:6.2f}")
    return " | ".join(parts)


def header(fuse: int) -> str:
    side = f"{'ms':>7s} {'cpu ms':>7s} {'c/w':>4s} {'len':>5s} {'rows':>6s} {'arith':>6s}"
    head = f"{'work':9s} {'B':>4s}  {side} {'first':>5s}"
    title = f"{'':9s} {'':4s}  {'lgfn':<{len(side) + 6}s}"
    for name in ["gfnx"] + ([f"gfnx scan×{fuse}"] if fuse > 1 else []):
        head += f" | {side} {'comp.':>5s} {'lg/gx':>6s} {'cpu':>6s}"
        title += f" | {name:<{len(side) + 20}s}"
    return title + "\n" + head


def summary(rows: list[dict[str, Any]], fuse: int) -> None:
    """The issue's table: lgfn ms / gfnx ms per (work, B), wall (process CPU); > 1: gfnx faster."""
    batches = sorted({r["batch"] for r in rows})
    names = ["gfnx"] + ([f"gfnx scan×{fuse}"] if fuse > 1 else [])
    for name in names:
        print(f"\nlgfn / {name}, ms per step, wall (process CPU) (> 1: {name} faster, < 1: lgfn faster):")
        print("| work | " + " | ".join(f"B = {b}" for b in batches) + " |")
        print("|---|" + "---|" * len(batches))
        for work in dict.fromkeys(r["work"] for r in rows):
            cells = {r["batch"]: f"{r['lgfn']['ms'] / r[name]['ms']:.2f} ({r['lgfn']['cpu'] / r[name]['cpu']:.2f})"
                     for r in rows if r["work"] == work}
            print(f"| {work} | " + " | ".join(cells.get(b, "—") for b in batches) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--works", nargs="+", choices=list(WORKS), help="default: all three")
    parser.add_argument("--batches", nargs="+", type=int, help="default: 16, 32, 128 (TFBind8), 32, 128 (grids)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lgfn-compile", action="store_true",
                        help="lgfn with model.compile (its rollouts and loss compiled, as gfnx's step is jitted)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps of each side after compiling")
    parser.add_argument("--blocks", type=int, default=4, help="alternating timed blocks per side")
    parser.add_argument("--steps", type=int, default=10, help="steps per block")
    parser.add_argument("--fuse", type=int, default=10, help="K of gfnx's fused lax.scan column; 1: no column")
    parser.add_argument("--count_steps", type=int, default=3, help="untimed lgfn steps to count its FLOPs")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: B = 32 only, --warmup 2 --blocks 2 --steps 5 --fuse 5")
    args = parser.parse_args()
    if args.quick:
        args.batches = args.batches or [32]
        args.warmup, args.blocks, args.steps, args.fuse = 2, 2, 5, min(args.fuse, 5)
    missing = [m for m in ("jax", "gfnx", "equinox", "optax") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}: pip install jax jaxlib chex jaxtyping flashbax jax-tqdm "
                         "optax equinox networkx omegaconf && pip install --no-deps gfnx==0.0.1 (see pyproject.toml)")
    torch.set_num_threads(1)
    jax = import_jax_one_thread()
    start = time.perf_counter()
    print(f"lgfn {lgfn.__version__}, torch {torch.__version__} ({torch.get_num_threads()} thread); gfnx "
          f"{_version('gfnx')}, jax {jax.__version__}, equinox {_version('equinox')}, optax {_version('optax')} "
          f"(XLA_FLAGS={os.environ['XLA_FLAGS']!r}); {jax.devices()[0].platform}; load average {load()} "
          f"(nproc {os.cpu_count()})", flush=True)
    (peak, t_threads), (xpeak, x_threads) = sgemm_peak(), xla_peak()
    print(f"sgemm peak (1024³, best of 8 on process CPU time): torch {peak:.1f} GFLOP/s ({t_threads} thread(s) "
          f"busy), XLA {xpeak:.1f} GFLOP/s ({x_threads} thread(s) busy); arith: a step's matmul GFLOP/s (on its "
          "process CPU time) over the torch figure", flush=True)
    print(f"\nms per training step (median wall; cpu: median process CPU), {args.blocks} alternating blocks x "
          f"{args.steps} steps after {args.warmup} warm-up, width {args.hidden}; len: mean actions per "
          "trajectory; c/w: CPU over wall time; rows: states the policy MLP ran on per step (sampling + loss); "
          "arith: arithmetic share; first: lgfn's first step (s); comp.: gfnx's compile (s); lg/gx: lgfn ms / "
          "gfnx ms (> 1: gfnx faster), cpu: the same on process CPU time:", flush=True)
    print(header(args.fuse), flush=True)
    rows = compare(args, peak)
    if rows:
        summary(rows, args.fuse)
    print(f"\ndone in {time.perf_counter() - start:.1f} s; load average {load()}", flush=True)


if __name__ == "__main__":
    main()
