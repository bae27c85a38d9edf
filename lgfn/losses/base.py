"""What every loss sees: per-transition log-probabilities and per-node log-flows."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class FlowTerms:
    """The quantities of a batch of B trajectories with up to T transitions.

    Node t (0 <= t <= L) is the state before action t; node L (after stop) is the
    sink, whose log-flow is β·log R(x). ``log_flow[:, 0]`` is log Z_θ(β); the inner
    nodes' flows are F(s, β) when the loss asks for them (else zeros).
    """

    log_pf: Tensor  # [B, T], 0 where invalid
    log_pb: Tensor  # [B, T], 0 on the stop transition and where invalid
    valid: Tensor  # [B, T] bool
    lengths: Tensor  # [B] = L
    log_z: Tensor  # [B]
    log_reward_beta: Tensor  # [B] β·log R(x)
    log_flow: Tensor  # [B, T+1] node log-flows, sink included at index L


class Loss:
    """A GFlowNet objective; ``needs_flow`` asks the model for a state-flow network."""

    needs_flow: bool = False

    def __call__(self, terms: FlowTerms) -> Tensor:
        raise NotImplementedError
