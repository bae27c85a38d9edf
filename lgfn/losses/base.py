"""What every loss sees: per-transition log-probabilities and per-node log-flows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor


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


def loss_of(loss: Loss, policy: "BasePolicy", traj: "Trajectories", rows: Tensor | None = None) -> Tensor:
    """A batch's loss under one policy: flow terms and objective, the unit that ``model.compile`` compiles (with
    its backward). ``rows``: :func:`transition_rows` of the batch."""
    return loss(flow_terms(policy, traj, loss.needs_flow, rows))


def transition_rows(policy: "BasePolicy", traj: "Trajectories") -> Tensor | None:
    """The positions of a batch that hold a transition (row-major over [B, T]) when the MDP's trajectories differ
    in length, else None (every position of a fixed-length MDP's batch is one).

    A grid's batch is padded to its longest trajectory, often several times the mean length (4-D: ~46 against
    ~5 untrained), so the networks run on its transitions only. Finding them reads a count back to the host,
    as the grid's rollouts do anyway to end early; it happens outside the compiled program, which then sees
    one more dynamic size."""
    return None if policy.env.fixed_length else traj.valid.flatten().nonzero().squeeze(1)


def flow_terms(policy: "BasePolicy", traj: "Trajectories", needs_flow: bool, rows: Tensor | None = None) -> FlowTerms:
    """The flow terms of a batch under ``policy``: one network call per network over the batch's positions (those
    in ``rows`` when given: see :func:`transition_rows`), over every state of a small MDP
    (:meth:`BasePolicy.alpha_by_table`), or, over a sequence MDP, over the positions where a batch does not
    repeat states (:meth:`BasePolicy.alpha_by_levels`), put in place with ``where``.

    Without ``rows``: fixed shapes and no boolean selection, so nothing is read back to the host and a compiled
    step sees the same shapes every time (fixed-length MDPs waste no position).
    """
    env = policy.env
    B, T = traj.actions.shape
    valid = traj.valid
    move = valid & (traj.actions != env.stop_action)

    def take(t: Tensor) -> Tensor:  # [B, T, ...] as rows: all positions, or the transitions only
        t = t.reshape(B * T, *t.shape[2:])
        return t if rows is None else t[rows]

    def put(values: Tensor) -> Tensor:  # per-row values back to [B, T], 0 at positions without a transition
        full = values if rows is None else values.new_zeros(B * T).index_copy(0, rows, values)
        return full.view(B, T)

    beta = take(traj.beta[:, None].expand(B, T))
    emb, scale = policy.condition(traj.beta)
    cond = tuple(None if c is None else take(c[:, None].expand(B, T, c.shape[1])) for c in (emb, scale))
    parents, children = take(traj.states[:, :-1]), take(traj.states[:, 1:])
    alpha = policy.alpha_by_levels(traj.states[:, :-1]) if rows is None else None
    alpha = policy.alpha_by_table(parents) if alpha is None else alpha
    log_p = policy.forward_log_probs(parents, beta, cond, alpha)
    log_pf = torch.where(valid, put(log_p.gather(1, take(traj.actions.clamp(min=0))[:, None]).squeeze(1)), 0.0)
    alpha_b = policy.alpha_by_levels(traj.states[:, 1:], backward=True) if rows is None else None
    log_b = policy.backward_log_probs(children, beta, cond, alpha_b)
    log_pb = torch.where(move, put(log_b.gather(1, take(traj.bwd_actions.clamp(min=0))[:, None]).squeeze(1)), 0.0)
    log_z = policy.log_z(traj.beta)
    log_reward_beta = traj.beta * traj.log_reward
    inner = torch.zeros_like(log_pf)  # nodes 1..L−1 get F(s, β); node 0 is Z(β), node L the sink
    if needs_flow:
        inner = torch.where(valid, put(policy.log_flow(parents, beta)), 0.0)
    log_flow = torch.cat([log_z[:, None], inner[:, 1:], torch.zeros_like(log_z)[:, None]], dim=1)
    log_flow = log_flow.scatter(1, traj.lengths[:, None], log_reward_beta[:, None])
    return FlowTerms(log_pf, log_pb, valid, traj.lengths, log_z, log_reward_beta, log_flow)
