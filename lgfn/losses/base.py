"""What every loss sees: per-transition log-probabilities and per-node log-flows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lgfn.models.policy import expand_rows

if TYPE_CHECKING:
    from lgfn.models.policy import BasePolicy
    from lgfn.sampling.trajectories import Trajectories


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


def loss_of(loss: Loss, policy: "BasePolicy", traj: "Trajectories") -> Tensor:
    """A batch's loss under one policy: flow terms and objective, the unit that ``model.compile`` compiles (with
    its backward)."""
    return loss(flow_terms(policy, traj, loss.needs_flow))


def flow_terms(policy: "BasePolicy", traj: "Trajectories", needs_flow: bool) -> FlowTerms:
    """The flow terms of a batch under ``policy``: one network call per network over every position of the padded
    batch (or over every state of a small MDP: :meth:`Policy.alpha_by_table`), selected with ``where``.

    Fixed shapes and no boolean selection: nothing is read back to the host, and a compiled step sees the same
    shapes every time. Positions past a trajectory's stop cost network rows that a selection would skip; on
    the MDPs here that is less than the read-backs and the graph breaks it saves.
    """
    env = policy.env
    B, T = traj.actions.shape
    valid = traj.valid
    move = valid & (traj.actions != env.stop_action)
    beta = traj.beta.repeat_interleave(T)
    cond = expand_rows(policy.condition(traj.beta), T)
    parents = traj.states[:, :-1].reshape(B * T, -1)
    log_p = policy.forward_log_probs(parents, beta, cond, policy.alpha_by_table(parents))
    log_pf = torch.where(valid, log_p.gather(1, traj.actions.clamp(min=0).view(-1, 1)).view(B, T), 0.0)
    log_b = policy.backward_log_probs(traj.states[:, 1:].reshape(B * T, -1), beta, cond)
    log_pb = torch.where(move, log_b.gather(1, traj.bwd_actions.clamp(min=0).view(-1, 1)).view(B, T), 0.0)
    log_z = policy.log_z(traj.beta)
    log_reward_beta = traj.beta * traj.log_reward
    inner = torch.zeros_like(log_pf)  # nodes 1..L−1 get F(s, β); node 0 is Z(β), node L the sink
    if needs_flow:
        inner = torch.where(valid, policy.log_flow(parents, beta).view(B, T), 0.0)
    log_flow = torch.cat([log_z[:, None], inner[:, 1:], torch.zeros_like(log_z)[:, None]], dim=1)
    log_flow = log_flow.scatter(1, traj.lengths[:, None], log_reward_beta[:, None])
    return FlowTerms(log_pf, log_pb, valid, traj.lengths, log_z, log_reward_beta, log_flow)
