"""Trajectory balance (Malkin et al. 2022), Eq. 2 of Logit-GFN with log R_β = β·log R."""

from __future__ import annotations

from torch import Tensor

from lgfn.losses.base import FlowTerms, Loss
from lgfn.registry import register


@register("loss", "tb")
class TrajectoryBalance(Loss):
    """mean_b (log Z(β) + Σ log P_F − β log R(x) − Σ log P_B)²."""

    def __call__(self, terms: FlowTerms) -> Tensor:
        delta = terms.log_z + terms.log_pf.sum(1) - terms.log_reward_beta - terms.log_pb.sum(1)
        return delta.pow(2).mean()
