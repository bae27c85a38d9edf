"""Exact evaluation of p_θ(x|β) by dynamic programming over an enumerable MDP's DAG."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lgfn.models.policy import BasePolicy
from lgfn.tasks.base import Task


_ALPHA: dict[str, object] = {}  # the last β-free policy's α over every state, with the weights it was computed at


def _alpha(policy: BasePolicy, states: Tensor, start: int, stop: int) -> Tensor:
    """α_θ of states[start:stop] for a β-free policy, computed once per set of weights (an evaluation asks for
    several β in a row, and on QM9 the 177k-state pass is most of an evaluation's time)."""
    params = list(policy.parameters())
    version = (id(policy), tuple(p._version for p in params), tuple(p.data_ptr() for p in params), len(states))
    if _ALPHA.get("version") != version:
        _ALPHA.clear()
        _ALPHA["version"] = version
    key = (start, stop)
    if key not in _ALPHA:
        _ALPHA[key] = policy.forward_alpha(states[start:stop])
    return _ALPHA[key]  # type: ignore[return-value]


@torch.no_grad()
def terminal_distribution(task: Task, policy: BasePolicy, beta: float, chunk: int = 65536) -> Tensor:
    """p_θ(x|β) of every object (``task.terminal_objects()`` order), float64.

    The probability of reaching each state is pushed level by level (states sorted by
    depth) to its children with one batched policy call per chunk; an object's
    probability is that of reaching it times P_F(stop). A β-free policy's logits are
    computed once for every β asked for with the same weights.
    """
    env = task.env
    device = next(policy.parameters()).device
    states = env.all_states_on(device)
    depth = env.depth(states)
    reach = torch.zeros(len(states), dtype=torch.float64, device=device)
    reach[0] = 1.0
    stop_prob = torch.zeros_like(reach)
    bounds = torch.searchsorted(depth, torch.arange(int(depth.max()) + 2, device=device))
    for d in range(len(bounds) - 1):
        for start in range(int(bounds[d]), int(bounds[d + 1]), chunk):
            idx = torch.arange(start, min(start + chunk, int(bounds[d + 1])), device=device)
            s = states[idx]
            betas = torch.full((len(idx),), float(beta), device=device)
            if policy.alpha_is_beta_free:
                alpha = _alpha(policy, states, int(idx[0]), int(idx[-1]) + 1)
                probs = policy.forward_log_probs_from(alpha, s, betas).exp().double()
            else:
                probs = policy.forward_log_probs(s, betas).exp().double()
            stop_prob[idx] = probs[:, env.stop_action]
            for a in range(env.n_actions):
                if a == env.stop_action:
                    continue
                ok = probs[:, a] > 0
                if ok.any():
                    child = env.state_index(env.step(s[ok], torch.full((int(ok.sum()),), a, device=device)))
                    reach.index_add_(0, child, reach[idx[ok]] * probs[ok, a])
    term_idx, _ = task.terminal_objects()
    return (reach * stop_prob)[term_idx.to(device)].cpu()


def target_distribution(task: Task, beta: float) -> tuple[Tensor, float]:
    """R(x)^β / Z(β) over every object, and log Z(β)."""
    logits = beta * task.terminal_log_rewards().double()
    log_z = torch.logsumexp(logits, 0)
    return (logits - log_z).exp(), float(log_z)


@dataclass
class ExactEvaluation:
    """How far the learned sampler is from R^β/Z at one β."""

    beta: float
    l1: float
    log_z_error: float
    learned: Tensor
    target: Tensor


def evaluate_exact(task: Task, policy: BasePolicy, beta: float) -> ExactEvaluation:
    """L1 distance Σ|p_θ − R^β/Z| and |log Z_θ(β) − log Z(β)| at β."""
    learned = terminal_distribution(task, policy, beta)
    target, log_z = target_distribution(task, beta)
    device = next(policy.parameters()).device
    with torch.no_grad():
        log_z_model = float(policy.log_z(torch.tensor([float(beta)], device=device))[0])
    return ExactEvaluation(beta, float((learned - target).abs().sum()), abs(log_z_model - log_z), learned, target)
