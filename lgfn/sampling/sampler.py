"""The sampler: a task and a policy, and everything that draws scored objects from them.

Data modules (Algorithm 1), evaluation and ``lgfn sample`` all draw through one :class:`Sampler`, which the
model builds and hands out; none of them reaches into the model's networks. It also knows the β range the
model was trained on (to warn when sampling outside it) and tells its subscribers about every scored batch
that training sees (discovery metrics, the count of objects the oracle could not score).
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import Tensor

from lgfn.errors import ConfigError
from lgfn.models.policy import BasePolicy
from lgfn.sampling.trajectories import Trajectories, diverged_error, sample_backward, sample_forward
from lgfn.settings import positive
from lgfn.tasks.base import Task

log = logging.getLogger("lgfn")

Subscriber = Callable[[Trajectories, int], None]
"""Called with each training round's scored trajectories and the number the oracle could not score."""


class Sampler:
    """Draws trajectories with a policy over a task's MDP, at any β, and scores their objects."""

    def __init__(self, task: Task, policy: BasePolicy) -> None:
        self.task, self.policy = task, policy
        self.trained_beta: tuple[float, float] | None = None
        fixed = policy.conditioner.fixed_beta
        if fixed is not None:
            self.trained_beta = (fixed, fixed)
        self._warned: set[float] = set()
        self._subscribers: list[Subscriber] = []
        self.defer_checks = False
        self.compiled = False  # training rollouts as compiled programs (``model.compile``; evaluation stays eager)
        self._diverged: Tensor | None = None

    @property
    def fixed_beta(self) -> float | None:
        """The one β of an unconditional model, else None."""
        return self.policy.conditioner.fixed_beta

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def set_training_range(self, low: float, high: float) -> None:
        """The β range of the training distributions: fixes a thermometer code's range and is kept in
        checkpoints (sampling outside it warns)."""
        self.policy.set_range(low, high)
        self.trained_beta = (low, high)

    def subscribe(self, subscriber: Subscriber) -> None:
        """Be told of every training round's scored objects (see :meth:`explore`)."""
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    # -- β -----------------------------------------------------------------------------------------
    def check_beta(self, beta: float, warn: bool = True) -> None:
        """Refuse a β the model cannot sample at, with a one-line reason; warn (once per β) when β lies
        outside the trained range: the result still comes out, but is extrapolation."""
        if not positive(beta):
            raise ConfigError(f"β must be a positive finite number, got {beta}")
        if self.fixed_beta is not None and abs(beta - self.fixed_beta) > 1e-9:
            raise ConfigError(f"this model is unconditional (conditioner 'none'), trained at β={self.fixed_beta}; "
                              f"it samples only at --beta {self.fixed_beta}")
        trained = self.trained_beta
        if warn and trained is not None and not trained[0] <= beta <= trained[1] and beta not in self._warned:
            self._warned.add(beta)
            log.warning("β=%g is outside the range the model was trained on, [%g, %g]: the samples extrapolate",
                        beta, *trained)

    # -- drawing -----------------------------------------------------------------------------------
    def score(self, traj: Trajectories) -> Trajectories:
        """Fill in the rewards of sampled trajectories in one batched oracle call (NaN where it cannot score)."""
        x = traj.x
        raw = self.task.raw_reward(x) if self.task.on_device else self.task.raw_reward(x.cpu()).to(x.device)
        traj.raw_reward, traj.log_reward = raw, self.task.log_reward(raw).to(x.device)
        return traj

    def _on_device(self, generator: torch.Generator | None) -> torch.Generator | None:
        """The generator to draw actions with on the policy's device. Callers keep one CPU generator (β, replay
        indices, checkpointed state); on another device each rollout gets a generator there, seeded from the
        caller's, so draws stay seeded and resumable and no random numbers cross to the device. On the CPU the
        caller's generator is used as it is."""
        device = self.device
        if generator is None or generator.device == device:
            return generator
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        return torch.Generator(device).manual_seed(seed)

    def _checked(self, traj: Trajectories, diverged: Tensor) -> Trajectories:
        """Raise at once if the rollout's policy diverged; under ``defer_checks`` (training) the flag only
        accumulates on the device, to be read by :meth:`raise_if_diverged` on logging steps: no read-back a
        rollout."""
        if not self.defer_checks:
            if bool(diverged):
                raise diverged_error()
        else:
            self._diverged = diverged if self._diverged is None else self._diverged | diverged
        return traj

    def raise_if_diverged(self) -> None:
        """Read the deferred divergence flag (one read-back) and raise if any rollout since the last read
        diverged."""
        flag, self._diverged = self._diverged, None
        if flag is not None and bool(flag):
            raise diverged_error()

    def forward(self, beta: Tensor, epsilon: float = 0.0, generator: torch.Generator | None = None,
                compiled: bool = False) -> Trajectories:
        """Scored trajectories sampled forward at the given β (ε-uniform exploration when ε > 0)."""
        generator = self._on_device(generator)
        traj = sample_forward(self.task.env, self.policy, beta, epsilon, generator, compiled)
        return self.score(self._checked(*traj))

    def backward(self, x: Tensor, beta: Tensor, generator: torch.Generator | None = None) -> Trajectories:
        """Trajectories to the objects x drawn backwards with P_B(·|β) (rewards left for the caller)."""
        x, beta = x.to(self.device), beta.to(self.device)
        generator = self._on_device(generator)
        parts = [sample_backward(self.task.env, policy, x[rows], beta[rows], generator, self.compiled)
                 for policy, rows in self.policy.backward_parts(len(x))]  # a split ensemble: each member its own
        if len(parts) == 1:
            return self._checked(*parts[0])
        return self._checked(Trajectories.cat([p for p, _ in parts]), torch.stack([d for _, d in parts]).any())

    def explore(self, beta: Tensor, epsilon: float, generator: torch.Generator | None = None) -> Trajectories:
        """A training round's samples: drawn forward, scored, those the oracle could not score left out; the
        subscribers hear of them (on every rank, once a round)."""
        return self.admit(self.forward(beta.to(self.device), epsilon, generator, self.compiled))

    def draw(self, beta: Tensor, epsilon: float, generator: torch.Generator | None = None) -> Trajectories:
        """A training round's samples, not yet scored: for rounds scored (:meth:`score`) while training goes on,
        then :meth:`admit`-ted."""
        generator = self._on_device(generator)
        return self._checked(*sample_forward(self.task.env, self.policy, beta.to(self.device), epsilon, generator,
                                             self.compiled))

    def admit(self, traj: Trajectories) -> Trajectories:
        """A scored training round, less the objects the oracle could not score; the subscribers hear of it."""
        invalid = 0
        if not self.task.on_device:  # a host oracle may leave objects unscored (an on-device one scores all)
            scored = traj.raw_reward.isfinite()
            invalid = int((~scored).sum())
            if invalid:
                traj = traj.index(scored)
        for subscriber in self._subscribers:
            subscriber(traj, invalid)
        return traj

    @torch.no_grad()
    def objects(self, n: int, beta: float, generator: torch.Generator | None = None, drop_invalid: bool = True,
                warn: bool = True) -> Trajectories:
        """n objects sampled on-policy at one β and scored; those the oracle cannot score (raw reward NaN) are
        left out unless ``drop_invalid`` is False."""
        self.check_beta(beta, warn)
        traj = self.forward(torch.full((n,), float(beta), device=self.device), 0.0, generator)
        return traj.index(traj.raw_reward.isfinite()) if drop_invalid else traj
