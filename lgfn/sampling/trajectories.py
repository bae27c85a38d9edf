"""Batched trajectories and the two ways of drawing them: forward with P_F, backward with P_B."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from lgfn.envs.base import Env
from lgfn.errors import TrainingError
from lgfn.compilation import program
from lgfn.models.policy import BasePolicy, Conditioning


@dataclass
class Trajectories:
    """B trajectories padded to T actions: at most ``env.max_steps``, at least the longest trajectory's.

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

    def padded(self, T: int) -> "Trajectories":
        """The same trajectories with T action slots (T at least the longest): rollouts that stopped early have
        fewer, and batches of different rollouts are joined at one T."""
        pad = T - self.actions.shape[1]
        if pad <= 0:
            return self
        x = self.x[:, None].expand(-1, pad, -1)
        fill = self.actions.new_full((len(self), pad), -1)
        return Trajectories(torch.cat([self.states, x], 1), torch.cat([self.actions, fill], 1),
                            torch.cat([self.bwd_actions, fill], 1), self.lengths, self.beta, self.log_reward,
                            self.raw_reward)

    @staticmethod
    def cat(parts: list["Trajectories"]) -> "Trajectories":
        T = max(p.actions.shape[1] for p in parts)
        parts = [p.padded(T) for p in parts]
        return Trajectories(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Trajectories)})


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard Gumbel noise −log(−log U) for a whole rollout, drawn up front from the seeded generator: the
    steps then draw nothing (a compiled rollout holds no generator call), and a rollout's randomness is one
    call whatever its batch does."""
    u = torch.rand(shape, generator=generator, device=device)
    return u.clamp_(min=torch.finfo(u.dtype).tiny).log_().neg_().log_().neg_()


def _draw(log_probs: Tensor, gumbel: Tensor) -> Tensor:
    """One action per row, drawn exactly from exp(log_probs) by the Gumbel-max trick: argmax(log p + G) with G
    standard Gumbel (−inf log-probabilities are never drawn).

    ``torch.multinomial`` validates its input on the host on every call (a device synchronisation on a GPU);
    here a diverged policy (NaN probabilities) is flagged on the device and raised once per rollout instead.
    """
    return (log_probs + gumbel).argmax(1)


def diverged_error() -> TrainingError:
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


Table = tuple[Tensor | None, int]
"""A β-free policy's α over states that a rollout visits, and which: ``(table, 0)`` every state of a small MDP in
``state_index`` order; ``(table, levels)`` every state of a levelled MDP's first ``levels`` levels in
``prefix_index`` order; ``(None, 0)`` none (the network runs every step)."""


def _alpha_table(env: Env, policy: BasePolicy, n: int, device: torch.device, backward: bool = False) -> Table:
    """A β-free policy's α_θ (P_B's with ``backward``) over the states a rollout of n rows would otherwise run the
    network on repeatedly: one network call for those steps instead of one a step (the per-step calls' fixed
    costs dominate at small batches). Every state where the MDP has at most 2n states; else, over a sequence
    MDP, the first levels, where n rows repeat states (:meth:`Env.prefix_levels`)."""
    if not policy.alpha_is_beta_free or (backward and not policy.learned_backward):
        return None, 0
    net = policy.backward_alpha if backward else policy.forward_alpha
    if env.n_states is not None and env.n_states <= 2 * n:
        return net(env.all_states_on(device)), 0
    levels = env.prefix_levels(n) if env.levelled else 0
    return (net(env.prefix_states(levels, device)), levels) if levels > 1 - backward else (None, 0)


def _tabled(env: Env, table: Table, s: Tensor, level: int) -> Tensor | None:
    """α of states ``s`` (all at ``level`` on a levelled MDP) from the rollout's table, None where it has none."""
    alpha, levels = table
    if alpha is None or (levels and level >= levels):
        return None
    return alpha[..., env.prefix_index(s, levels) if levels else env.state_index(s), :]


DONE_CHECK_EVERY = 4
"""Rollouts over MDPs whose trajectories differ in length (grids) run in chunks of this many steps and test
"all finished?" after each: one read-back a chunk, against running to a horizon that few trajectories reach
(4-D grid: 46 steps, ~5 used by an untrained policy). Fixed-length MDPs (sequences) run all ``max_steps`` as
one chunk and never test."""


def _chunks(env: Env, steps: int) -> list[tuple[int, int]]:
    """(start, stop) of the chunks of a rollout of ``steps`` steps (see :data:`DONE_CHECK_EVERY`)."""
    size = max(steps, 1) if env.fixed_length else DONE_CHECK_EVERY
    return [(a, min(a + size, steps)) for a in range(0, steps, size)]


def _forward_steps(env: Env, policy: BasePolicy, s: Tensor, done: Tensor, beta: Tensor, cond: Conditioning,
                   gumbel: Tensor, epsilon: float, table: Table, start: int, sum_log_p: bool = False
                   ) -> tuple[Tensor, ...]:
    """``len(gumbel)`` steps of every row from step ``start``: (states after each [n, k, D], actions taken (−1 once
    done) [n, k], backward actions [n, k], done, whether a row's probabilities were NaN, and with ``sum_log_p``
    the Σ log-probability of the actions drawn [n] (of the ε-mixed policy: local search's rebuilds, at ε = 0,
    need P_F's), else None).

    Pure fixed-shape tensor code with the noise given: the unit that ``model.compile`` compiles (a chunk as one
    program: a compiled call costs tens of µs, a step of a small batch not much more). The last step of a
    levelled MDP (stop only) runs no network."""
    states, actions, bwd = [], [], []
    nan_any = torch.zeros((), dtype=torch.bool, device=s.device)
    log_p = torch.zeros(len(s), device=s.device) if sum_log_p else None
    for t, noise in enumerate(gumbel, start):
        if env.levelled and t == env.max_steps - 1:
            log_probs = torch.where(env.forward_mask(s), 0.0, float("-inf"))
        else:
            alpha = _tabled(env, table, s, t)
            log_probs = _mix_uniform(policy.forward_log_probs(s, beta, cond, alpha), epsilon)
        nan = log_probs[:, 0].isnan() & ~done  # a NaN logit makes its whole row NaN (log_softmax)
        a = torch.where(nan, env.stop_action, _draw(log_probs, noise))
        if log_p is not None:
            log_p = log_p + torch.where(done | nan, 0.0, log_probs.gather(1, a[:, None]).squeeze(1))
        moves = ~done & (a != env.stop_action)
        safe = torch.where(moves, a, 0)  # a finished or stopping row steps nowhere: any in-range action will do
        bwd.append(torch.where(moves, env.bwd_action_of(s, safe), -1))
        actions.append(torch.where(done, -1, a))
        s = torch.where(moves[:, None], env.step(s, safe), s)
        states.append(s)
        done, nan_any = done | ~moves, nan_any | nan.any()
    return torch.stack(states, 1), torch.stack(actions, 1), torch.stack(bwd, 1), done, nan_any, log_p


@torch.no_grad()
def sample_forward(
    env: Env, policy: BasePolicy, beta: Tensor, epsilon: float = 0.0,
    generator: torch.Generator | None = None, compiled: bool = False,
) -> tuple[Trajectories, Tensor]:
    """Roll out len(beta) trajectories with P_F(·|·; β), mixed with ε-uniform exploration.

    Fixed shape: all rows advance together for the MDP's horizon ``max_steps`` (variable-length MDPs stop early
    once every row has: :data:`DONE_CHECK_EVERY`), and a finished row stays in the batch at its object under a
    ``done`` mask, so a rollout over a fixed-length MDP reads nothing back to the host (no filtering) and every
    step has the same shapes. The noise of the whole rollout is drawn up front, so its steps are pure tensor
    code (:func:`_forward_steps`, compiled with ``compiled``). One batched network call per step (one per
    rollout for a β-free policy over a small MDP, and none for a sequence MDP's first levels: see
    :func:`_alpha_table`). The trajectories' T is the number
    of steps run; rewards are left at zero for the caller to fill in one batched oracle call.

    Returns the trajectories and a 0-dim bool on the device: whether the policy's probabilities were not
    finite for some unfinished row (those rows stop there); the caller raises :func:`diverged_error` on it.
    """
    n, device = len(beta), beta.device
    gumbel = gumbel_noise((env.max_steps, n, env.n_actions), generator, device)
    table = _alpha_table(env, policy, n, device)
    states, actions, bwd, diverged, _ = roll_forward(env, policy, env.initial(n, device), beta, policy.condition(beta),
                                                     gumbel, epsilon, table, 0, compiled)
    lengths = (actions >= 0).sum(1)  # actions are −1 after the stop; every row stops by max_steps
    zeros = torch.zeros(n, device=device)
    return Trajectories(states, actions, bwd, lengths, beta, zeros, zeros.double()), diverged


def roll_forward(env: Env, policy: BasePolicy, s: Tensor, beta: Tensor, cond: Conditioning, gumbel: Tensor,
                 epsilon: float, table: Table, level: int, compiled: bool, sum_log_p: bool = False
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Up to ``len(gumbel)`` forward steps from states ``s`` (at ``level`` of a levelled MDP), chunk by chunk
    (:func:`_chunks`, each chunk :func:`_forward_steps`, compiled with ``compiled``): (states [n, k + 1, D],
    actions [n, k], backward actions [n, k], diverged, Σ log-probability of the draws if ``sum_log_p``). k is
    the steps run: a variable-length MDP's rollout ends early once every row has stopped (one read-back a chunk).
    Rollouts start at s0; local search's rebuilds part-way."""
    n, device, steps = len(s), s.device, len(gumbel)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    diverged = torch.zeros((), dtype=torch.bool, device=device)
    log_p = torch.zeros(n, device=device) if sum_log_p else None
    states, actions, bwd = [s[:, None]], [], []
    run = program(_forward_steps, compiled)
    for start, stop in _chunks(env, steps):
        first = level + start if env.levelled else 0  # what the steps' plan depends on (a compiled chunk specialises)
        chunk, a, b, done, nan, lp = run(env, policy, s, done, beta, cond, gumbel[start:stop], epsilon, table, first,
                                         sum_log_p)
        states.append(chunk), actions.append(a), bwd.append(b)
        s, diverged = chunk[:, -1].contiguous(), diverged | nan  # contiguous: one program for every chunk
        log_p = log_p + lp if log_p is not None else None
        if not env.fixed_length and stop < steps and bool(done.all()):
            break
    return torch.cat(states, 1), torch.cat(actions, 1), torch.cat(bwd, 1), diverged, log_p


def _backward_steps(env: Env, policy: BasePolicy, s: Tensor, done: Tensor, beta: Tensor, cond: Conditioning,
                    gumbel: Tensor, table: Table, start: int) -> tuple[Tensor, ...]:
    """``len(gumbel)`` backward steps of every row from step ``start``: (states after each [n, k, D], forward
    actions [n, k], backward actions [n, k], done, steps taken [n], whether a row's probabilities were NaN)."""
    states, fwd, bwd = [], [], []
    moved = torch.zeros(len(s), dtype=torch.long, device=s.device)
    nan_any = torch.zeros((), dtype=torch.bool, device=s.device)
    for t, noise in enumerate(gumbel, start):
        level = env.max_steps - 1 - t  # of every row, on a levelled MDP (x has max_steps − 1 tokens)
        log_probs = policy.backward_log_probs(s, beta, cond, _tabled(env, table, s, level) if env.levelled else None)
        nan = log_probs[:, 0].isnan() & ~done
        stay = done | nan  # a NaN row's draw could be any action: it steps no further (the caller raises)
        b = _draw(log_probs, noise)  # rows at s0 have no parent: their draw is in range and unused
        parents, a = env.backward_step(s, b)
        s = torch.where(stay[:, None], s, parents)
        states.append(s), fwd.append(torch.where(stay, -1, a)), bwd.append(torch.where(stay, -1, b))
        moved, done, nan_any = moved + (~stay).long(), stay | env.is_initial(s), nan_any | nan.any()
    return torch.stack(states, 1), torch.stack(fwd, 1), torch.stack(bwd, 1), done, moved, nan_any


@torch.no_grad()
def sample_backward(
    env: Env, policy: BasePolicy, x: Tensor, beta: Tensor, generator: torch.Generator | None = None,
    compiled: bool = False,
) -> tuple[Trajectories, Tensor]:
    """Draw a trajectory to each object x backwards with P_B(·|·; β), returned in forward order.

    Fixed shape like :func:`sample_forward`: every row steps back up to ``max_steps − 1`` times, rows that
    reached s0 stay there. Returns the trajectories and the 0-dim "diverged" flag.
    """
    n, device = len(x), x.device
    T = env.max_steps
    gumbel = gumbel_noise((max(T - 1, 0), n, env.n_bwd_actions), generator, device)
    rev_states, rev_fwd, rev_bwd = [x[:, None]], [], []  # x, parent of x, ..., s0, s0, ...
    done = env.is_initial(x)
    steps = torch.zeros(n, dtype=torch.long, device=device)  # non-stop actions to reach x
    diverged = torch.zeros((), dtype=torch.bool, device=device)
    cond = policy.condition(beta) if policy.learned_backward else (None, None)
    s = x
    table = _alpha_table(env, policy, n, device, backward=True) if env.levelled else (None, 0)
    program_steps = program(_backward_steps, compiled)
    for start, stop in _chunks(env, T - 1):
        first = start if env.levelled else 0
        chunk, a, b, done, moved, nan = program_steps(env, policy, s, done, beta, cond, gumbel[start:stop], table,
                                                      first)
        rev_states.append(chunk), rev_fwd.append(a), rev_bwd.append(b)
        s, steps, diverged = chunk[:, -1].contiguous(), steps + moved, diverged | nan
        if not env.fixed_length and stop < T - 1 and bool(done.all()):
            break
    rev = torch.cat(rev_states, 1)
    filler = torch.full((n, 1), -1, dtype=torch.long, device=device)  # the slot of the stop action
    rev_fwd_t, rev_bwd_t = torch.cat(rev_fwd + [filler], 1), torch.cat(rev_bwd + [filler], 1)
    T = rev.shape[1]  # action slots: the longest row's steps and its stop
    t = torch.arange(T + 1, device=device)[None]
    src = (steps[:, None] - t).clamp(min=0)  # forward step t is reverse step (steps - t)
    fwd_states = torch.gather(rev, 1, src.clamp(max=T - 1)[..., None].expand(-1, -1, rev.shape[2]))
    after = t > steps[:, None]
    fwd_states = torch.where(after[..., None], x[:, None], fwd_states)
    ta = t[:, :T]
    src_a = (steps[:, None] - 1 - ta).clamp(min=0)
    actions = torch.gather(rev_fwd_t, 1, src_a)
    bwd_actions = torch.gather(rev_bwd_t, 1, src_a)
    is_stop = ta == steps[:, None]
    actions = torch.where(ta < steps[:, None], actions, torch.where(is_stop, env.stop_action, -1))
    bwd_actions = torch.where(ta < steps[:, None], bwd_actions, -1)
    zeros = torch.zeros(n, device=device)
    return Trajectories(fwd_states, actions, bwd_actions, steps + 1, beta, zeros, zeros.double()), diverged
