"""Trajectory balance (Malkin et al. 2022, https://arxiv.org/abs/2201.13259), Eq. 2 of Logit-GFN:

    L_TB(τ; β) = ( log Z_θ(β) + Σ_t log P_F(s_t+1 | s_t; β) − β·log R(x) − Σ_t log P_B(s_t | s_t+1; β) )²

with the reward at inverse temperature β, log R_β(x) = β·log R(x), averaged over the batch.
"""

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
