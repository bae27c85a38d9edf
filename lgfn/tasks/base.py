"""The task interface the model, data modules and CLI rely on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from lgfn.envs.base import Env
from lgfn.errors import ConfigError


@dataclass
class RewardTransform:
    """log R'(x) = e·log max(R(x), clip_min) + log(max_reward / max(reference, clip_min)^e).

    Everything is computed in log space, so steep exponents do not underflow. With
    ``max_reward`` set, the raw value ``reference`` (default: the task's best known
    reward) maps to ``max_reward``; the official code uses max(r, 1e-3)^e scaled to 10.
    """

    clip_min: float | None = None
    exponent: float = 1.0
    max_reward: float | None = None
    reference: float | None = None

    def __call__(self, raw: Tensor, check: bool = True) -> Tensor:
        """log R' of raw rewards; ``check=False`` skips the test for rewards <= 0 (a read-back) where the caller
        knows them admissible (:attr:`Task.on_device`)."""
        r = raw.double()
        if self.clip_min is not None:
            r = r.clamp(min=self.clip_min)
        elif check and (r <= 0).any():
            raise ConfigError("reward transform: raw rewards must be > 0 unless clip_min is set (e.g. clip_min: 0.001)")
        out = self.exponent * r.log()
        if self.max_reward is not None:
            if self.reference is None:
                raise ConfigError("reward transform: max_reward needs a reference raw value that maps to it")
            ref = max(self.reference, self.clip_min or 0.0)
            out = out + math.log(self.max_reward) - self.exponent * math.log(ref)
        return out.float()

    def admissible(self, raw: Tensor) -> Tensor:
        """Which raw values the transform can take: finite, and > 0 unless ``clip_min`` clips them."""
        ok = torch.isfinite(raw)
        return ok if self.clip_min is not None else ok & (raw > 0)


def make_transform(spec: RewardTransform | Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> RewardTransform:
    """A task's transform: its defaults, overridden by the config's mapping."""
    if isinstance(spec, RewardTransform):
        return spec
    merged = {**defaults, **(spec or {})}
    unknown = set(merged) - {"clip_min", "exponent", "max_reward", "reference"}
    if unknown:
        raise ConfigError(f"reward transform: unknown key(s) {', '.join(sorted(unknown))}; "
                         "valid: clip_min, exponent, max_reward, reference")
    return RewardTransform(**merged)


class Task:
    """An MDP plus the reward of its objects.

    Subclasses set ``env`` and ``transform`` and implement ``raw_reward``,
    ``to_strings`` and ``from_strings``; enumerable ones get exact evaluation free.
    """

    name: str = "task"
    env: Env
    transform: RewardTransform
    on_device: bool = False
    """Whether ``raw_reward`` is tensor arithmetic on the objects' device (a table gather, a formula) that scores
    every object admissibly: then rollouts are scored where they are sampled and every object is kept, with
    nothing read back to the host. Otherwise the objects go to the host oracle in one batched call a round."""

    def raw_reward(self, x: Tensor) -> Tensor:
        """Oracle values R(x) of objects x [N, D] as float64 [N]; NaN for objects the oracle cannot score."""
        raise NotImplementedError

    def log_reward(self, raw: Tensor) -> Tensor:
        """Transformed log R used in training (at β = 1)."""
        return self.transform(raw, check=not self.on_device)

    def to_strings(self, x: Tensor) -> list[str]:
        raise NotImplementedError

    def from_strings(self, strings: list[str]) -> Tensor:
        raise NotImplementedError

    def modes(self) -> list[str] | None:
        """Strings of the task's known modes, when it has a list."""
        return None

    def offline_objects(self) -> Tensor:
        """The fixed object set for offline training."""
        raise NotImplementedError(f"task {self.name} has no offline data set")

    def extra_columns(self, x: Tensor) -> dict[str, list[Any]]:
        """Extra per-object columns for ``lgfn sample`` (e.g. SMILES)."""
        return {}

    @property
    def molecular(self) -> bool:
        """Whether objects are molecules (then ``smiles`` works and molecule metrics apply)."""
        return False

    def smiles(self, x: Tensor) -> list[str]:
        """Canonical SMILES of objects x, for molecular tasks."""
        raise NotImplementedError(f"task {self.name} has no molecules")

    @property
    def enumerable(self) -> bool:
        return self.env.n_states is not None

    def terminal_objects(self) -> tuple[Tensor, Tensor]:
        """(indices into env.all_states(), objects) of every state that can stop; cached."""
        if not hasattr(self, "_terminals"):
            states = self.env.all_states()
            can_stop = self.env.forward_mask(states)[:, self.env.stop_action]
            idx = can_stop.nonzero().squeeze(1)
            self._terminals = (idx, states[idx])
        return self._terminals

    def terminal_log_rewards(self) -> Tensor:
        """Transformed log R of every object, in ``terminal_objects`` order (−inf where the oracle cannot
        score it: such objects have no mass in R^β/Z); cached."""
        if not hasattr(self, "_terminal_log_r"):
            log_r = self.log_reward(self.raw_reward(self.terminal_objects()[1]))
            self._terminal_log_r = log_r.masked_fill(log_r.isnan(), -math.inf)
        return self._terminal_log_r
