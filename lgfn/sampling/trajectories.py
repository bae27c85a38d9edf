"""Batched trajectories and the two ways of drawing them: forward with P_F, backward with P_B."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from lgfn.envs.base import Env
from lgfn.errors import TrainingError
from lgfn.models.policy import Policy, PolicyEnsemble


@dataclass
class Trajectories:
    """B trajectories padded to T = env.max_steps actions.

    ``states[:, t]`` is the state before action t; from index ``lengths`` on it holds
    the object x. ``actions`` is −1 after the stop action; ``bwd_actions`` is −1 on the
    stop and after it.
    """

    states: Tensor  # [B, T+1, D] long
    actions: Tensor  # [B, T] long
    bwd_actions: Tensor  # [B, T] long
    lengths: Tensor  # [B] number of actions, stop included
    beta: Tensor  # [B] float
    log_reward: Tensor  # [B] transformed log R(x) at β = 1
    raw_reward: Tensor  # [B] float64 oracle value

    @property
    def x(self) -> Tensor:
        """The objects: the state at which each trajectory stopped."""
        return self.states[torch.arange(len(self.lengths), device=self.lengths.device), self.lengths - 1]

    @property
    def valid(self) -> Tensor:
        """Bool [B, T]: which action slots hold a transition."""
        return self.actions >= 0

    def __len__(self) -> int:
        return len(self.lengths)

    def to(self, device: torch.device) -> "Trajectories":
        return Trajectories(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def index(self, idx: Tensor) -> "Trajectories":
        return Trajectories(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def cat(parts: list["Trajectories"]) -> "Trajectories":
        return Trajectories(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Trajectories)})


def rows_of(cond: tuple[Tensor | None, Tensor | None], idx: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """The rows ``idx`` of a precomputed conditioning (embedding, temperature)."""
    return tuple(None if c is None else c[idx] for c in cond)  # type: ignore[return-value]


def _draw(log_probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One action per row, drawn exactly from exp(log_probs) by the Gumbel-max trick: argmax(log p − log E) with
    E = −log U ~ Exp(1) (U < 1, so E > 0; −inf log-probabilities are never drawn).

    ``torch.multinomial`` validates its input on the host on every call (~100 µs a sampling step on a CPU, a
    device synchronisation on a GPU); here a diverged policy (NaN probabilities) is found by the caller instead.
    """
    e = torch.rand(log_probs.shape, generator=generator, device=log_probs.device).log_().neg_()
    return (log_probs - e.log_()).argmax(1)


def _diverged() -> TrainingError:
    """A policy whose probabilities are no longer numbers (a user can cause it with learning rates or β ranges)."""
    return TrainingError("training diverged: the policy's action probabilities are no longer finite; lower the "
                         "learning rates (model.lr_*), narrow the β range or set model.grad_clip")


def _mix_uniform(log_probs: Tensor, epsilon: float) -> Tensor:
    """log((1 − ε) P + ε · uniform over the allowed actions)."""
    if epsilon <= 0:
        return log_probs
    mask = torch.isfinite(log_probs)
    uniform = mask.float() / mask.sum(1, keepdim=True)
    return ((1 - epsilon) * log_probs.exp() + epsilon * uniform).log()


def _alpha_table(env: Env, policy: Policy | PolicyEnsemble, n: int, device: torch.device) -> Tensor | None:
    """A β-free policy's α_θ over every state of a small MDP, in ``state_index`` order: one network call for the
    whole rollout instead of one a step (the per-step calls' fixed costs dominate at small batches). Only where the
    MDP has at most 2n states, so the table costs no more rows than the rollout would visit."""
    if not policy.alpha_is_beta_free or env.n_states is None or env.n_states > 2 * n:
        return None
    return policy.forward_alpha(env.all_states_on(device))


@torch.no_grad()
def sample_forward(
    env: Env, policy: Policy | PolicyEnsemble, beta: Tensor, epsilon: float = 0.0,
    generator: torch.Generator | None = None,
) -> Trajectories:
    """Roll out len(beta) trajectories with P_F(·|·; β), mixed with ε-uniform exploration.

    One batched network call per time step (one per rollout for a β-free policy over a small MDP: see
    :func:`_alpha_table`); finished trajectories drop out of the batch. Rewards are left at zero for the caller
    to fill in one batched oracle call.
    """
    n, device = len(beta), beta.device
    T = env.max_steps
    states = env.initial(n, device)
    history = [states]
    actions = torch.full((n, T), -1, dtype=torch.long, device=device)
    bwd = torch.full((n, T), -1, dtype=torch.long, device=device)
    active = torch.arange(n, device=device)
    emb, temp = policy.condition(beta)
    table = _alpha_table(env, policy, n, device)
    diverged = torch.zeros((), dtype=torch.bool, device=device)
    for t in range(T):
        if len(active) == 0:
            break
        s = states[active]
        alpha = None if table is None else table[..., env.state_index(s), :]
        log_probs = policy.forward_log_probs(s, beta[active], rows_of((emb, temp), active), alpha)
        log_probs = _mix_uniform(log_probs, epsilon)
        nan = log_probs[:, 0].isnan()  # a NaN logit makes its whole row NaN (log_softmax)
        diverged |= nan.any()
        a = _draw(log_probs, generator).masked_fill_(nan, env.stop_action)  # such rows end here; raised below
        actions[active, t] = a
        go_on = (a != env.stop_action).nonzero().squeeze(1)  # the step's one read-back: who goes on
        s, a, active = s[go_on], a[go_on], active[go_on]
        states = states.clone()
        states[active] = env.step(s, a)
        bwd[active, t] = env.bwd_action_of(s, a)
        history.append(states)
    if bool(diverged):
        raise _diverged()
    if len(active):
        raise RuntimeError(f"{type(env).__name__}: trajectories did not stop within max_steps={T}")
    history += [states] * (T + 1 - len(history))
    lengths = (actions >= 0).sum(1)  # actions are −1 after the stop
    zeros = torch.zeros(n, device=device)
    return Trajectories(torch.stack(history, 1), actions, bwd, lengths, beta, zeros, zeros.double())


@torch.no_grad()
def sample_backward(
    env: Env, policy: Policy | PolicyEnsemble, x: Tensor, beta: Tensor, generator: torch.Generator | None = None
) -> Trajectories:
    """Draw a trajectory to each object x backwards with P_B(·|·; β), returned in forward order."""
    n, device = len(x), x.device
    T = env.max_steps
    rev_states = [x]
    rev_fwd = torch.full((n, T), -1, dtype=torch.long, device=device)
    rev_bwd = torch.full((n, T), -1, dtype=torch.long, device=device)
    steps = torch.zeros(n, dtype=torch.long, device=device)  # non-stop actions to reach x
    states = x
    active = torch.arange(n, device=device)[~env.is_initial(x)]
    emb, temp = policy.condition(beta) if policy.backward_net is not None else (None, None)
    for k in range(T - 1):
        if len(active) == 0:
            break
        s = states[active]
        log_probs = policy.backward_log_probs(s, beta[active], rows_of((emb, temp), active))
        if bool(log_probs[:, 0].isnan().any()):  # off the online hot path: a read-back a step is affordable here
            raise _diverged()
        b = _draw(log_probs, generator)
        parents, a = env.backward_step(s, b)
        states = states.clone()
        states[active] = parents
        rev_fwd[active, k], rev_bwd[active, k] = a, b
        steps[active] += 1
        active = active[~env.is_initial(parents)]
        rev_states.append(states)
    rev_states += [states] * (T - len(rev_states))
    rev = torch.stack(rev_states, 1)  # [n, T, D]: x, parent of x, ..., s0, s0, ...
    t = torch.arange(T + 1, device=device)[None]
    src = (steps[:, None] - t).clamp(min=0)  # forward step t is reverse step (steps - t)
    fwd_states = torch.gather(rev, 1, src.clamp(max=T - 1)[..., None].expand(-1, -1, rev.shape[2]))
    after = t > steps[:, None]
    fwd_states = torch.where(after[..., None], x[:, None], fwd_states)
    ta = t[:, :T]
    src_a = (steps[:, None] - 1 - ta).clamp(min=0)
    actions = torch.gather(rev_fwd, 1, src_a)
    bwd_actions = torch.gather(rev_bwd, 1, src_a)
    is_stop = ta == steps[:, None]
    actions = torch.where(ta < steps[:, None], actions, torch.where(is_stop, env.stop_action, -1))
    bwd_actions = torch.where(ta < steps[:, None], bwd_actions, -1)
    zeros = torch.zeros(n, device=device)
    return Trajectories(fwd_states, actions, bwd_actions, steps + 1, beta, zeros, zeros.double())
