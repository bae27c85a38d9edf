"""SubTB(λ) (Madan et al. 2023, https://arxiv.org/abs/2209.12782): every sub-trajectory balanced,

    L_SubTB(τ; β) = Σ_{i<j} λ^(j−i) ( log F(s_i, β) + Σ_{t=i}^{j−1} [log P_F(s_t+1 | s_t; β) − log P_B(s_t | s_t+1; β)]
                                      − log F(s_j, β) )²  /  Σ_{i<j} λ^(j−i)

with F(s_0, β) = Z_θ(β) and flow R(x)^β at the node after the stop action.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lgfn.errors import ConfigError
from lgfn.losses.base import FlowTerms, Loss
from lgfn.registry import register


@register("loss", "subtb")
class SubTrajectoryBalance(Loss):
    """Per trajectory Σ_{i<j} λ^{j−i} δ_ij² / Σ_{i<j} λ^{j−i}, averaged over the batch.

    δ_ij = log F(s_i) + Σ_{i<=t<j} (log P_F − log P_B) − log F(s_j) over the nodes
    0..L (node L is the sink after stop, node 0 carries Z(β)); the pair (0, L) is TB
    and the pairs (i, i+1) are DB.
    """

    needs_flow = True

    def __init__(self, lamda: float = 0.9) -> None:
        self.check_args(lamda)
        self.lamda = lamda

    @staticmethod
    def check_args(lamda: float = 0.9) -> None:
        """The argument's value, checked without building (see :func:`lgfn.registry.validate`)."""
        if lamda <= 0:
            raise ConfigError(f"subtb: lamda must be positive, got {lamda}")

    def __call__(self, terms: FlowTerms) -> Tensor:
        B, T = terms.log_pf.shape
        steps = torch.where(terms.valid, terms.log_pf - terms.log_pb, 0.0)
        cum = torch.cat([torch.zeros_like(steps[:, :1]), steps.cumsum(1)], dim=1)  # [B, T+1]
        a = terms.log_flow - cum
        delta = a[:, :, None] - a[:, None, :]  # δ_ij = a_i − a_j
        idx = torch.arange(T + 1, device=steps.device)
        span = idx[None, :] - idx[:, None]  # j − i
        in_traj = idx[None, :] <= terms.lengths[:, None]  # node j exists
        pair = (span > 0)[None] & in_traj[:, None, :] & in_traj[:, :, None]
        weight = torch.where(pair, self.lamda ** span.clamp(min=0).to(steps.dtype)[None], 0.0)
        per_traj = (weight * delta.pow(2)).sum((1, 2)) / weight.sum((1, 2))
        return per_traj.mean()
