"""The hypergrid task of Bengio et al. (2021), as in torchgfn's HyperGrid."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from lgfn.envs.hypergrid import HyperGrid
from lgfn.registry import register_task
from lgfn.tasks.base import RewardTransform, Task, make_transform


@register_task("gridworld")
class GridWorld(Task):
    """R(x) = R0 + R1·∏ᵢ 1[0.25 < |xᵢ/(H−1) − 0.5|] + R2·∏ᵢ 1[0.3 < |xᵢ/(H−1) − 0.5| < 0.4].

    Args:
        ndim, height: the grid (d dimensions of side H).
        r0, r1, r2: reward levels; the 2^d corner regions are the modes.
        transform: reward transform (default: none).
    """

    name = "gridworld"

    def __init__(
        self,
        ndim: int = 2,
        height: int = 8,
        r0: float = 0.1,
        r1: float = 0.5,
        r2: float = 2.0,
        transform: RewardTransform | Mapping[str, Any] | None = None,
    ) -> None:
        self.env = HyperGrid(ndim, height)
        self.r0, self.r1, self.r2 = r0, r1, r2
        self.transform = make_transform(transform, {})
        levels = torch.tensor([r0, r0 + r1, r0 + r1 + r2], dtype=torch.float64)  # the ring lies inside the outer band
        self.on_device = bool(self.transform.admissible(levels).all())  # a formula: scored where it is sampled

    def raw_reward(self, x: Tensor) -> Tensor:
        ax = (x.double() / (self.env.height - 1) - 0.5).abs()
        outer = (ax > 0.25).all(1).double()
        ring = ((ax > 0.3) & (ax < 0.4)).all(1).double()
        return self.r0 + self.r1 * outer + self.r2 * ring

    def to_strings(self, x: Tensor) -> list[str]:
        return self.env.to_strings(x)

    def from_strings(self, strings: list[str]) -> Tensor:
        return self.env.from_strings(strings)

    def modes(self) -> list[str]:
        """Every point of the highest reward level."""
        _, objects = self.terminal_objects()
        raw = self.raw_reward(objects)
        return self.to_strings(objects[raw >= raw.max() - 1e-12])

    def offline_objects(self) -> Tensor:
        """Every grid point: the whole (small) grid is the offline set."""
        return self.terminal_objects()[1]
