"""Detailed balance (Bengio et al. 2023, https://arxiv.org/abs/2111.09266) with a β-conditional state flow:

    L_DB(s → s'; β) = ( log F(s, β) + log P_F(s' | s; β) − log F(s', β) − log P_B(s | s'; β) )²

for every transition (the stop action included), where F(s_0, β) = Z_θ(β) and the node after the stop action
has flow R(x)^β; averaged over transitions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lgfn.losses.base import FlowTerms, Loss
from lgfn.registry import register


@register("loss", "db")
class DetailedBalance(Loss):
    """Mean over all transitions of (log F(s) + log P_F(s'|s) − log F(s') − log P_B(s|s'))².

    F(s0) = Z(β) and the flow after the stop action is R(x)^β, so the stop
    transition enforces F(x)·P_F(stop|x) = R(x)^β.
    """

    needs_flow = True

    def __call__(self, terms: FlowTerms) -> Tensor:
        delta = terms.log_flow[:, :-1] + terms.log_pf - terms.log_flow[:, 1:] - terms.log_pb
        delta = torch.where(terms.valid, delta, 0.0)
        return delta.pow(2).sum() / terms.valid.sum()
