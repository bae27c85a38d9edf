"""Lightning data modules that generate trajectories with the model being trained.

The training "dataloader" is a stream of :class:`Trajectories` produced on demand in
the main process, so every batch is sampled with the current weights (the model
pulls batches itself in ``training_step(dataloader_iter)``; nothing is prefetched).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields
from typing import Any, Iterator

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset

from lgfn.beta.distributions import BetaSampler, Constant
from lgfn.errors import ConfigError
from lgfn.oracles.base import OracleError
from lgfn.registry import ComponentSpec
from lgfn.sampling.local_search import LocalSearch
from lgfn.sampling.sampler import Sampler
from lgfn.sampling.trajectories import Trajectories
from lgfn.settings import build_component, check_counts
from lgfn.training.replay import Replay


UNSCORED_ROUNDS = 10
"""Rounds from the start in which the oracle scored nothing before training stops (see ``_check_scored``)."""


class _Stream(IterableDataset):
    """Wraps a data module's batch generator as an IterableDataset."""

    def __init__(self, source: "SamplingDataModule") -> None:
        self.source = source

    def __iter__(self) -> Iterator[Trajectories]:
        return self.source.batches()


class SamplingDataModule(LightningDataModule):
    """Shared machinery: β samplers, a seeded generator, and resumable state.

    Under DDP (``--trainer.strategy ddp``) every rank runs this module on its own: its own
    generator (seed + global rank), its own samples and replay buffer, and the same number of
    steps, so N ranks see N times the trajectories per round. A checkpoint keeps every rank's
    state (``ranks``), and resumes on the same number of ranks.

    Args:
        train_beta: P_train(β), the β of every gradient step on replayed/offline data.
        batch_size: trajectories per gradient step on replayed/offline data.
        steps_per_batch: K, gradient steps taken on each sampled batch.
        seed: seed of this module's generator (per rank: seed + global rank).
    """

    def __init__(self, train_beta: ComponentSpec = "uniform", batch_size: int = 32, steps_per_batch: int = 1,
                 seed: int = 0) -> None:
        super().__init__()
        check_counts("data", batch_size=batch_size, steps_per_batch=steps_per_batch)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"data.seed = {seed!r}: must be an integer")
        self.train_beta: BetaSampler = build_component("beta_sampler", train_beta, "data.train_beta")
        self.batch_size = batch_size
        self.steps_per_batch = steps_per_batch
        self.seed = seed
        self.round = 0
        self.generator = torch.Generator()
        self._seeded = False

    # -- wiring -------------------------------------------------------------------------
    def samplers(self) -> list[BetaSampler]:
        return [self.train_beta]

    def setup(self, stage: str) -> None:
        if not self._seeded:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            self.generator.manual_seed(self.seed + rank)
            self._seeded = True
        # the model's sampler: all this module draws with (it never reaches into the networks)
        self.sampler: Sampler = self.trainer.lightning_module.sampler
        if stage == "fit":
            fixed = self.sampler.fixed_beta
            if fixed is not None:  # an unconditional model is trained at its own β only
                self.train_beta = Constant(fixed)
                self._fix_beta(fixed)
            samplers = self.samplers()
            self.sampler.set_training_range(min(s.low for s in samplers), max(s.high for s in samplers))

    def _fix_beta(self, beta: float) -> None:
        """Subclasses with further samplers replace them too."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(self), batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        """Evaluation is the model's (one batch per β): Lightning asks the data module, which passes it on."""
        return self.trainer.lightning_module.val_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.trainer.lightning_module.test_dataloader()

    # -- data -----------------------------------------------------------------------------
    def batches(self) -> Iterator[Trajectories]:
        raise NotImplementedError

    def _repeat(self, traj: Trajectories) -> Iterator[Trajectories]:
        for _ in range(self.steps_per_batch):
            yield traj

    def _replay_objects(self, x: torch.Tensor, log_reward: torch.Tensor, raw: torch.Tensor,
                        progress: float) -> Trajectories:
        """Fresh β from P_train for each object, and a trajectory to it drawn with P_B(·|β)."""
        beta = self.train_beta.sample(len(x), self.generator, progress)
        traj = self.sampler.backward(x, beta, self.generator)
        traj.log_reward, traj.raw_reward = log_reward.to(traj.beta.device), raw.to(traj.beta.device)
        return traj

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """This rank's state; under DDP every rank's, gathered (all ranks save a checkpoint together)."""
        state = self.rank_state()
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return state
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, state)
        return {"ranks": states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        world = self.trainer.world_size if self.trainer is not None else 1
        saved = len(state["ranks"]) if "ranks" in state else 1
        if saved != world:
            raise ConfigError(f"the checkpoint holds the sampling state of {saved} process(es); resume it on as many "
                             f"(devices x num_nodes), not {world}")
        self.load_rank_state(state["ranks"][self.trainer.global_rank] if "ranks" in state else state)

    def rank_state(self) -> dict[str, Any]:
        return {"round": self.round, "generator": self.generator.get_state(), "seeded": self._seeded}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self.round = state["round"]
        self.generator.set_state(state["generator"])
        self._seeded = state["seeded"]


class OnlineData(SamplingDataModule):
    """Algorithm 1, as the official code runs it. Each of ``rounds`` rounds:

    1. draw M = ``samples_per_round`` β from P_exp and roll out M trajectories with
       ε-uniform exploration, scored in one batched oracle call;
    2. take K gradient steps on them at their β;
    3. add them to the replay buffer D;
    4. draw ``batch_size`` objects (or trajectories) from D, give each a fresh β from
       P_train (and a trajectory drawn backwards with P_B(·|β)), and take K steps.

    Args:
        explore_beta: P_exp(β).
        rounds: T, the number of rounds (the epoch ends after them).
        samples_per_round: M.
        epsilon: ε of the ε-uniform exploration.
        replay: the buffer D (``prioritized``, ``uniform`` or ``fifo``).
        max_pending_rounds: N. With N = 0 (the default) each round is scored before training on it: Algorithm 1
            exactly. With N > 0 the next N rounds are drawn and scored (on a thread, through the task's oracle
            executor) while the model trains on the oldest scored one: steps (2)-(4) of a round use the samples
            of N rounds before, so replay lags by up to N rounds. A checkpoint waits for the pending rounds'
            scores and holds them (a round whose scoring failed, e.g. on a lost cluster, unscored: it is
            scored on resume), so a resumed run neither loses nor repeats an object.
        local_search: null (off), or a local search (``deterministic`` or ``mh``, with ``iterations``, ``back_steps``
            and ``seeds``: see :mod:`lgfn.sampling.local_search`) that refines each round's first fresh samples.
            The round still scores M objects: M − seeds·iterations fresh ones and seeds·iterations candidates, all
            trained on at their seed's β, added to D and counted by the discovery metrics.
    """

    def __init__(self, train_beta: ComponentSpec = "uniform", explore_beta: ComponentSpec = "uniform",
                 rounds: int = 2000, samples_per_round: int = 32, batch_size: int = 32, steps_per_batch: int = 1,
                 epsilon: float = 0.01, replay: ComponentSpec = "prioritized", seed: int = 0,
                 max_pending_rounds: int = 0, local_search: ComponentSpec | None = None) -> None:
        super().__init__(train_beta, batch_size, steps_per_batch, seed)
        check_counts("data", rounds=rounds, samples_per_round=samples_per_round)
        if isinstance(max_pending_rounds, bool) or not isinstance(max_pending_rounds, int) or max_pending_rounds < 0:
            raise ConfigError(f"data.max_pending_rounds = {max_pending_rounds!r}: must be an integer >= 0 "
                              "(0: score each round before training on it)")
        self.max_pending_rounds = max_pending_rounds
        self._sampled = 0  # rounds drawn (with N > 0, up to N ahead of ``round``)
        self._pending: deque[tuple[Trajectories, Future[Trajectories] | None]] = deque()  # drawn, being scored
        self._scoring: ThreadPoolExecutor | None = None
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"data.epsilon = {epsilon!r}: must be a number in [0, 1]")
        self.explore_beta: BetaSampler = build_component("beta_sampler", explore_beta, "data.explore_beta")
        self.rounds = rounds
        self.samples_per_round = samples_per_round
        self.epsilon = epsilon
        self.replay: Replay = build_component("replay", replay, "data.replay")
        self.local_search: LocalSearch | None = None
        self._fresh, self._seeds = samples_per_round, 0
        if local_search is not None:
            self.local_search = build_component("local_search", local_search, "data.local_search")
            self._fresh, self._seeds = self.local_search.split(samples_per_round)
            if max_pending_rounds:
                raise ConfigError(f"data.local_search with data.max_pending_rounds = {max_pending_rounds}: local "
                                  "search scores inside the round; set max_pending_rounds: 0 or local_search: null")
        self._scored_any = False
        self._unscored_rounds = 0
        self._ready = False

    def samplers(self) -> list[BetaSampler]:
        return [self.train_beta, self.explore_beta]

    @property
    def total_steps(self) -> int:
        """K steps on each round's samples and K on replayed ones (rounds whose buffer was not yet ready to
        draw from skip the second)."""
        return 2 * self.rounds * self.steps_per_batch

    def _fix_beta(self, beta: float) -> None:
        self.explore_beta = Constant(beta)

    def batches(self) -> Iterator[Trajectories]:
        # ``round`` counts rounds whose every batch has been handed out, and is advanced just
        # before a round's last batch, so a checkpoint taken after that step resumes exactly.
        while self.round < self.rounds:
            progress = self.round / self.rounds
            if self.max_pending_rounds:
                online = self.sampler.admit(self._oldest_scored())
            else:
                online = self._drawn_round(progress)
            self._check_scored(len(online))
            if len(online):  # an empty batch (nothing scored) skips its step
                self.replay.add(online)  # (3) before (2) changes nothing: a step does not touch the data
            replay_step = self._replay_ready()
            self.round += not replay_step
            yield from self._repeat(online)
            if replay_step:  # (4) after (2), so that P_B(·|β) samples with the updated weights
                if self.replay.holds_trajectories:
                    replayed = self.replay.draw(self.batch_size, self.generator).to(self.sampler.device)
                    replayed.beta = self.train_beta.sample(len(replayed), self.generator, progress).to(self.sampler.device)
                else:
                    replayed = self._replay_objects(*self.replay.draw(self.batch_size, self.generator), progress)
                self.round += 1
                yield from self._repeat(replayed)

    @property
    def pending_rounds(self) -> int:
        """Rounds drawn and being scored, not yet trained on (the progress bar shows them when N > 0)."""
        return len(self._pending)

    def _drawn_round(self, progress: float) -> Trajectories:
        """A round's scored samples (N = 0). If scoring fails (a lost cluster, Ctrl-C), the generator goes back to
        where the round began: the round never happened, and a run resumed from the checkpoint saved now draws
        exactly it again."""
        start = self.generator.get_state()
        try:
            if self.local_search is not None:  # M objects: fresh samples and the candidates refined from them
                beta = self.explore_beta.sample(self._fresh, self.generator, progress)
                return self.sampler.admit(self.local_search.round(self.sampler, beta, self.epsilon, self._seeds,
                                                                  self.generator, self.replay.holds))
            beta = self.explore_beta.sample(self.samples_per_round, self.generator, progress)
            return self.sampler.explore(beta, self.epsilon, self.generator)  # scored objects only
        except BaseException:
            self.generator.set_state(start)
            raise

    def _oldest_scored(self) -> Trajectories:
        """The oldest pending round once scored; first, rounds are drawn until N more are being scored. If its
        scoring failed (a lost cluster), it stays pending, so the checkpoint saved now holds it to score again."""
        while self._sampled < self.rounds and len(self._pending) <= self.max_pending_rounds:
            beta = self.explore_beta.sample(self.samples_per_round, self.generator, self._sampled / self.rounds)
            self._pending.append((self.sampler.draw(beta, self.epsilon, self.generator), None))
            self._sampled += 1
        self._send()
        scored = self._pending[0][1].result()
        self._pending.popleft()
        return scored.to(self.sampler.device)

    def _send(self) -> None:
        """Send every pending round not yet being scored (drawn just now, or held unscored by a checkpoint)."""
        if self._scoring is None:
            self._scoring = ThreadPoolExecutor(1, thread_name_prefix="lgfn-scoring")
        for i, (traj, future) in enumerate(self._pending):
            if future is None:
                self._pending[i] = (traj, self._scoring.submit(self.sampler.score, traj))

    def _check_scored(self, n_scored: int) -> None:
        """An oracle that scores nothing at all for ``UNSCORED_ROUNDS`` rounds from the start is broken: stop
        with its name instead of training on nothing. Later empty batches only skip their step."""
        self._scored_any = self._scored_any or n_scored > 0
        self._unscored_rounds = 0 if self._scored_any else self._unscored_rounds + 1
        if self._unscored_rounds >= UNSCORED_ROUNDS:
            raise OracleError(f"oracle of task {self.sampler.task.name} scored none of the "
                              f"{UNSCORED_ROUNDS * self.samples_per_round} objects of the first {UNSCORED_ROUNDS} "
                              "rounds (the warnings above give the reasons); fix the oracle or its settings")

    def _replay_ready(self) -> bool:
        """Whether every rank's buffer can be drawn from: ranks must take the same number of steps (DDP),
        so they wait for the slowest. A buffer never shrinks below its minimum, so the answer is kept."""
        if not self._ready:
            self._ready = self.trainer.strategy.reduce_boolean_decision(self.replay.ready(), all=True)
        return self._ready

    def rank_state(self) -> dict[str, Any]:
        state = {**super().rank_state(), "replay": self.replay.state_dict()}
        if self.max_pending_rounds:  # waits for the rounds being scored, and holds them (unscored if it failed)
            rounds = []
            for traj, future in self._pending:
                scored = future is not None and future.exception() is None
                held = future.result() if scored else traj
                rounds.append({"scored": scored, **{f.name: getattr(held, f.name).cpu() for f in fields(held)}})
            state["pending"] = {"sampled": self._sampled, "rounds": rounds}
        return state

    def load_rank_state(self, state: dict[str, Any]) -> None:
        super().load_rank_state(state)
        self.replay.load_state_dict(state["replay"])
        self._ready = False
        pending = state.get("pending", {"sampled": self.round, "rounds": []})
        if pending["rounds"] and not self.max_pending_rounds:
            raise ConfigError(f"the checkpoint holds {len(pending['rounds'])} rounds scored ahead of training; resume "
                              "it with data.max_pending_rounds > 0")
        self._sampled = pending["sampled"]
        self._pending = deque()
        for held in pending["rounds"]:
            traj = Trajectories(**{k: v for k, v in held.items() if k != "scored"})
            self._pending.append((traj, _done(traj) if held.get("scored", True) else None))  # unscored: sent again


def _done(traj: Trajectories) -> Future[Trajectories]:
    """A round that a checkpoint holds scored, as the pending work it was."""
    future: Future[Trajectories] = Future()
    future.set_result(traj)
    return future


class OfflineData(SamplingDataModule):
    """Training on a fixed set of objects: each step draws ``batch_size`` objects uniformly,
    a β for each from P_train, and a trajectory to each drawn backwards with P_B(·|β).

    Args:
        rounds: number of batches (K steps each) before the epoch ends.
        objects: the task's offline set (``task``), or a CSV/text file of object strings.
    """

    def __init__(self, train_beta: ComponentSpec = "uniform", rounds: int = 2000, batch_size: int = 32,
                 steps_per_batch: int = 1, objects: str = "task", seed: int = 0) -> None:
        super().__init__(train_beta, batch_size, steps_per_batch, seed)
        check_counts("data", rounds=rounds)
        self.rounds = rounds
        self.objects = objects
        self._data: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._data is None:
            task = self.sampler.task
            if self.objects == "task":
                x = task.offline_objects()
            else:
                from lgfn.io import read_object_strings

                x = task.from_strings(read_object_strings(self.objects))
            raw = task.raw_reward(x)
            scored = raw.isfinite()  # objects the oracle cannot score are left out (and reported by it)
            if not bool(scored.any()):
                raise OracleError(f"the oracle of task {task.name} could score none of the {len(x)} offline objects")
            x, raw = x[scored], raw[scored]
            self._data = (x, task.log_reward(raw), raw)
        return self._data

    @property
    def total_steps(self) -> int:
        """Gradient steps in the whole run, known up front (the progress bar's total)."""
        return self.rounds * self.steps_per_batch

    def batches(self) -> Iterator[Trajectories]:
        x, log_r, raw = self._load()
        while self.round < self.rounds:
            idx = torch.randint(len(x), (self.batch_size,), generator=self.generator)
            traj = self._replay_objects(x[idx], log_r[idx], raw[idx], self.round / self.rounds)
            self.round += 1
            yield from self._repeat(traj)
