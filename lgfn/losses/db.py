"""Detailed balance (Bengio et al. 2023) with a β-conditional state flow F(s, β)."""

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
