"""Local search: back-and-forth refinement of a round's fresh samples (Kim et al., *Local Search GFlowNets*, ICLR 2024).

From each seed object x, step back k actions with P_B(·|β), rebuild from the state reached with P_F(·|β) to a new
object x', score x', and keep x' in place of x by a filter: ``deterministic`` (the higher reward) or ``mh``
(Metropolis–Hastings on β·log R). Repeat ``iterations`` times per seed. Every object scored is one oracle call of
the round's budget and trains at its seed's β; see :meth:`LocalSearch.round` for the split of a round's M objects.

Everything is batched across seeds with fixed shapes (a loop over moves and rollout steps only): a move walks k
steps back with P_B (a split ensemble's member walks its own rows), rebuilds with P_F from the state reached, and
scores the S candidates in one oracle call; after the last move, one batched P_B rollout draws every candidate's
trajectory (trained on like a replayed object's). On fixed-length MDPs (sequences, block strings) nothing is read
back to the host beyond what scoring does, and the rebuild's last step (the stop) runs no network; on a grid the
rebuild tests "all stopped?" every few steps, as rollouts do. The walk and the rebuild are each one compiled
program under ``model.compile`` (the rebuild runs a rollout's steps, :func:`~lgfn.sampling.trajectories._forward_steps`).

The Metropolis–Hastings ratio is the path-wise one of the paper: with b the walk back x → s and f the rebuild
s → x' (the stop included),

    log α = β·(log R(x') − log R(x)) + log P_F(reverse of b) + log P_B(reverse of f | x') − log P_F(f) − log P_B(b | x),

accepted with probability min(1, e^{log α}). The reverse move (k' back-steps from x') reaches s only when the
rebuild took exactly k' = k(depth(x')) steps; where it does not (a grid's rebuild may stop sooner or later), the
reverse move is impossible and the candidate is rejected, so the chain keeps R^β invariant on every MDP. (The
paper's code accepts with probability sigmoid(log α), Barker's rule, which keeps the same target.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from lgfn.errors import ConfigError
from lgfn.registry import register
from lgfn.compilation import program
from lgfn.sampling.trajectories import Trajectories, gumbel_noise, roll_forward

if TYPE_CHECKING:
    from lgfn.envs.base import Env
    from lgfn.models.policy import BasePolicy, Conditioning
    from lgfn.sampling.sampler import Sampler

class LocalSearch:
    """Back-and-forth local search from a round's fresh samples; subclasses are the acceptance filters.

    Args:
        iterations: I, back-and-forth moves per seed in a round (each one oracle call per seed).
        back_steps: k, actions undone with P_B per move: an integer >= 1 (at most the object's depth), or a
            fraction in (0, 1) of the object's depth (rounded up; the paper's "K as a share of the trajectory").
        seeds: S, fresh samples refined per round; null: M // (I + 1), the paper's split, where every fresh sample
            is a seed. A round scores M − S·I fresh samples and S·I candidates: M objects, as without search.
        proposals: P, rebuilds drawn per seed and move (one batched rollout of S·P rows); the first whose object
            was never scored (not in the replay buffer, not earlier in the round) is the one scored, so oracle
            calls go to new objects. 1: the paper's single rebuild. Only with ``deterministic``: a choice among
            rebuilds is not the proposal that Metropolis–Hastings corrects for.
    """

    uses_proposal = False
    """Whether the filter needs log P_F / log P_B of both paths (the MH ratio)."""

    def __init__(self, iterations: int = 7, back_steps: float = 0.5, seeds: int | None = None,
                 proposals: int = 1) -> None:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"iterations = {iterations!r}: must be an integer >= 1")
        whole = isinstance(back_steps, int) and not isinstance(back_steps, bool)
        fraction = isinstance(back_steps, float) and 0.0 < back_steps < 1.0
        if not ((whole and back_steps >= 1) or fraction):
            raise ConfigError(f"back_steps = {back_steps!r}: must be an integer >= 1 (actions) or "
                              "a fraction in (0, 1) of the object's depth")
        if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
            raise ConfigError(f"seeds = {seeds!r}: must be an integer >= 1, or null "
                              "(samples_per_round // (iterations + 1))")
        if isinstance(proposals, bool) or not isinstance(proposals, int) or proposals < 1:
            raise ConfigError(f"proposals = {proposals!r}: must be an integer >= 1 (1: one rebuild per move)")
        if proposals > 1 and self.uses_proposal:
            raise ConfigError(f"proposals = {proposals} with {type(self).__name__}: choosing among rebuilds breaks the "
                              "Metropolis–Hastings correction; use proposals: 1 or the deterministic filter")
        self.iterations, self.back_steps, self.seeds, self.proposals = iterations, back_steps, seeds, proposals
        self.accept_rate: Tensor | None = None  # the last search's share of moves accepted (on the device)
        self.chains: tuple[Tensor, Tensor] | None = None  # the seeds' objects and log R after its last move

    # -- the budget ------------------------------------------------------------------------------------------
    def split(self, samples_per_round: int) -> tuple[int, int]:
        """(fresh samples, seeds) of a round of M = ``samples_per_round`` oracle calls: M − S·I fresh, S of them
        refined I times; a one-line error when S·(I + 1) > M."""
        m, i = samples_per_round, self.iterations
        seeds = self.seeds if self.seeds is not None else m // (i + 1)
        if seeds < 1 or seeds * (i + 1) > m:
            raise ConfigError(f"data.local_search: {seeds} seed(s) x (iterations {i} + 1) = {seeds * (i + 1)} oracle "
                              f"calls exceed data.samples_per_round = {m}; a round scores M objects: M − seeds·"
                              "iterations fresh samples (at least the seeds) and seeds·iterations candidates")
        return m - seeds * i, seeds

    def back_steps_of(self, depth: Tensor) -> Tensor:
        """k for objects at ``depth`` (non-stop actions from s0): at most the depth, at least 1 where it is >= 1."""
        if isinstance(self.back_steps, float):
            k = torch.ceil(depth.double() * self.back_steps).long()
        else:
            k = torch.full_like(depth, self.back_steps)
        return torch.minimum(k.clamp(min=1), depth)

    def most_back_steps(self, depth: int) -> int:
        """k of :meth:`back_steps_of` for the deepest objects, in Python (no tensor to read back)."""
        k = math.ceil(depth * self.back_steps) if isinstance(self.back_steps, float) else self.back_steps
        return min(max(k, 1), depth)

    # -- the filter --------------------------------------------------------------------------------------------
    def accept(self, log_ratio: Tensor, log_reward: Tensor, new_log_reward: Tensor, u: Tensor) -> Tensor:
        """Bool [S]: which candidates replace their seeds. ``log_ratio``: the MH log α (−inf where the move cannot
        be reversed; only with :attr:`uses_proposal`); ``u``: uniform draws in [0, 1)."""
        raise NotImplementedError

    # -- a round -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def round(self, sampler: "Sampler", beta: Tensor, epsilon: float, seeds: int,
              generator: torch.Generator | None = None, known: Callable[[Tensor], Tensor] | None = None
              ) -> Trajectories:
        """A training round's scored trajectories: len(beta) fresh ones (ε-uniform exploration), then I candidates
        from the first ``seeds`` of them, at their seed's β. Nothing is admitted (the caller does). ``known``: which objects
        were scored before this round (the replay buffer's :meth:`~lgfn.training.replay.Replay.holds`)."""
        fresh = sampler.forward(beta.to(sampler.device), epsilon, generator, sampler.compiled)
        candidates = self.search(sampler, fresh.index(torch.arange(seeds, device=fresh.beta.device)), generator,
                                 known, fresh.x)
        return Trajectories.cat([fresh, candidates])

    @torch.no_grad()
    def search(self, sampler: "Sampler", seeds: Trajectories, generator: torch.Generator | None = None,
               known: Callable[[Tensor], Tensor] | None = None, seen: Tensor | None = None) -> Trajectories:
        """``iterations`` back-and-forth moves from every seed (scored trajectories): the candidates, scored, with
        trajectories drawn back from them with P_B(·|β) (one batched rollout after the last move), iteration by
        iteration in seed order. The seeds' chains move by the filter; their β stays. With P > 1 proposals, the
        first rebuild of each seed that is neither ``known`` nor among ``seen`` (objects [n, D] of this round) nor
        found earlier in the search is scored (the first rebuild when every one is)."""
        env, policy, p = sampler.task.env, sampler.policy, self.proposals
        x, beta, depth = seeds.x, seeds.beta, seeds.lengths - 1
        seen = x[:0] if seen is None else seen
        log_r = _finite_or_low(seeds.log_reward)
        gen = sampler._on_device(generator)
        found_x, found_raw, found_log_r = [], [], []
        accepted = torch.zeros((), device=beta.device)
        diverged = torch.zeros((), dtype=torch.bool, device=beta.device)
        beta_p = beta.repeat_interleave(p)  # each seed's P proposals side by side, under the seed's β
        back, cond = _Backward(env, policy, beta_p), policy.condition(beta_p)
        k_bound = self.most_back_steps(env.max_steps - 1)
        steps = k_bound + 1 if env.fixed_length else env.max_steps  # fixed length: k tokens, then the stop
        for _ in range(self.iterations):
            k = self.back_steps_of(depth)
            path, fwd_actions, log_pb_back, nan_b = back.walk(x.repeat_interleave(p, 0), k.repeat_interleave(p),
                                                              k_bound, gen, sampler.compiled)
            start, t0 = path[:, -1], depth - k
            states, actions, bwd, log_pf_new, nan_f = _forward_from(env, policy, start, beta_p, cond, steps, gen,
                                                                    sampler.compiled)
            if p > 1:
                rows = _first_new(states[:, -1], p, known, seen)
                states, actions, bwd = states[rows], actions[rows], bwd[rows]
                seen = torch.cat([seen, states[:, -1]])
            moves = (actions >= 0).sum(1) - 1  # non-stop actions of the rebuild
            cand = Trajectories(states, actions, bwd, moves + 1, beta, torch.zeros_like(beta),
                                torch.zeros_like(beta, dtype=torch.float64))
            sampler.score(cand)  # one batched oracle call per iteration
            x_new, new_log_r = cand.x, _finite_or_low(cand.log_reward)
            found_x.append(x_new), found_raw.append(cand.raw_reward), found_log_r.append(cand.log_reward)
            log_ratio = None
            if self.uses_proposal:  # log q(x | x') − log q(x' | x) of the paths drawn (the prefix cancels)
                reverse = (_log_pf_of(policy, path, fwd_actions, x, beta, env.stop_action)
                           + back.log_pb_of(states[:, 1:], bwd))
                reversible = t0 + moves - self.back_steps_of(t0 + moves) == t0
                log_ratio = torch.where(reversible, reverse - log_pb_back - log_pf_new, -math.inf)
            u = torch.rand(len(x), generator=gen, device=beta.device)
            take = self.accept(log_ratio, beta * log_r, beta * new_log_r, u)
            x = torch.where(take[:, None], x_new, x)
            log_r, depth = torch.where(take, new_log_r, log_r), torch.where(take, t0 + moves, depth)
            accepted, diverged = accepted + take.float().mean(), diverged | nan_b | nan_f
        self.accept_rate, self.chains = accepted / self.iterations, (x, log_r)
        sampler._checked(seeds, diverged)  # raises now, or flags for the next logging step (training)
        traj = sampler.backward(torch.cat(found_x), beta.repeat(self.iterations), generator)
        traj.raw_reward = torch.cat(found_raw).to(traj.beta.device)
        traj.log_reward = torch.cat(found_log_r).to(traj.beta.device)
        return traj


def _first_new(objects: Tensor, p: int, known: Callable[[Tensor], Tensor] | None, seen: Tensor) -> Tensor:
    """Rows of ``objects`` [S·P, D] (P proposals per seed, side by side): per seed, the first proposal that is
    neither ``known`` nor in ``seen`` [n, D], else its first. Fixed shapes: a comparison and an argmax."""
    old = (objects[:, None] == seen[None]).all(-1).any(1)
    if known is not None:
        old = old | known(objects)
    first = (~old).view(-1, p).float().argmax(1)  # argmax takes the first of equal maxima
    return torch.arange(len(first), device=objects.device) * p + first


class _Backward:
    """P_B(·|β) of a batch of seeds, each row under the policy that draws its backward trajectories (a split
    ensemble's member), with the conditioning computed once."""

    def __init__(self, env: "Env", policy: "BasePolicy", beta: Tensor) -> None:
        self.env = env
        self.parts = [(part, rows, beta[rows], part.condition(beta[rows]) if part.learned_backward else (None, None))
                      for part, rows in policy.backward_parts(len(beta))]

    def log_probs(self, states: Tensor) -> Tensor:
        """log P_B(· | s; β) of states [S, J, D] (J per seed) or [S, D]: [S, (J,) n_bwd_actions]."""
        out = []
        for part, rows, beta, (emb, scale) in self.parts:
            sub = states[rows]
            if sub.dim() == 3:  # J states per seed: repeat the seed's conditioning
                j = sub.shape[1]
                flat = sub.reshape(-1, sub.shape[2])
                rep = lambda c: None if c is None else c.repeat_interleave(j, 0)  # noqa: E731
                lp = part.backward_log_probs(flat, beta.repeat_interleave(j), (rep(emb), rep(scale)))
                out.append(lp.view(len(sub), j, -1))
            else:
                out.append(part.backward_log_probs(sub, beta, (emb, scale)))
        return out[0] if len(out) == 1 else torch.cat(out)

    def walk(self, x: Tensor, k: Tensor, k_bound: int, generator: torch.Generator | None,
             compiled: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """k[i] steps back from x[i] with P_B (k_bound for all, rows past their k staying): (states x, parent, ...,
        [S, k_bound + 1, D], the forward actions undone [S, k_bound] (−1 past k), Σ log P_B [S], diverged). The
        steps are one program with ``compiled`` (:func:`_walk_steps`)."""
        gumbel = gumbel_noise((k_bound, len(x), self.env.n_bwd_actions), generator, x.device)
        return program(_walk_steps, compiled)(self, x, k, gumbel)

    def log_pb_of(self, children: Tensor, bwd_actions: Tensor) -> Tensor:
        """Σ_j log P_B(bwd_actions[:, j] | children[:, j]; β) over the valid (>= 0) actions: [S]."""
        lp = self.log_probs(children).gather(2, bwd_actions.clamp(min=0)[..., None]).squeeze(2)
        return torch.where(bwd_actions >= 0, lp, 0.0).sum(1)


def _walk_steps(back: _Backward, x: Tensor, k: Tensor, gumbel: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The steps of :meth:`_Backward.walk` with its noise given: fixed-shape tensor code, one compiled program."""
    s, path, fwd, log_pb = x, [x], [], torch.zeros(len(x), device=x.device)
    nan_any = torch.zeros((), dtype=torch.bool, device=x.device)
    for j, noise in enumerate(gumbel):
        lp = back.log_probs(s)
        go = j < k
        nan = lp[:, 0].isnan() & go
        b = (lp + noise).argmax(1)
        parents, a = back.env.backward_step(s, b)
        go = go & ~nan
        s = torch.where(go[:, None], parents, s)
        path.append(s), fwd.append(torch.where(go, a, -1))
        log_pb = log_pb + torch.where(go, lp.gather(1, b[:, None]).squeeze(1), 0.0)
        nan_any = nan_any | nan.any()
    return torch.stack(path, 1), torch.stack(fwd, 1), log_pb, nan_any


@register("local_search", "deterministic")
class DeterministicSearch(LocalSearch):
    """Local search that keeps the candidate when its reward is higher than its seed's (the paper's greedy filter)."""

    def accept(self, log_ratio: Tensor | None, log_reward: Tensor, new_log_reward: Tensor, u: Tensor) -> Tensor:
        return new_log_reward > log_reward


@register("local_search", "mh")
class MetropolisSearch(LocalSearch):
    """Local search that accepts by Metropolis–Hastings on β·log R with the path-wise P_F/P_B ratio (keeps R^β)."""

    uses_proposal = True

    def accept(self, log_ratio: Tensor, log_reward: Tensor, new_log_reward: Tensor, u: Tensor) -> Tensor:
        return u.log() < acceptance_log_prob(log_reward, new_log_reward, log_ratio)


def acceptance_log_prob(log_reward_beta: Tensor, new_log_reward_beta: Tensor, log_q: Tensor) -> Tensor:
    """log min(1, R_β(x') q(x|x') / (R_β(x) q(x'|x))): 0 for a scored candidate from an unscored seed, −inf for
    an unscored candidate or an impossible reverse move."""
    log_alpha = (new_log_reward_beta - log_reward_beta + log_q).clamp(max=0.0)
    log_alpha = torch.where(log_reward_beta == -math.inf, 0.0, log_alpha)
    return torch.where((new_log_reward_beta == -math.inf) | (log_q == -math.inf), -math.inf, log_alpha)


def _finite_or_low(log_reward: Tensor) -> Tensor:
    """log R with the objects the oracle could not score (NaN) at −inf: never kept over a scored one."""
    return torch.nan_to_num(log_reward, nan=-math.inf)


def _forward_from(env: "Env", policy: "BasePolicy", s: Tensor, beta: Tensor, cond: "Conditioning", steps: int,
                  generator: torch.Generator | None, compiled: bool = False
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Up to ``steps`` actions of P_F(·|β) from states ``s`` (on-policy, as the paper's rebuild): (states
    [n, steps + 1, D], actions (−1 once stopped) [n, steps], backward actions [n, steps], Σ log P_F of the actions
    taken [n], diverged). The steps are a rollout's (:func:`~lgfn.sampling.trajectories.roll_forward`, compiled
    with ``compiled``): on a levelled MDP every row starts ``steps`` levels before the end (k back-steps from whole
    objects, then the stop, which runs no network); a grid's rebuild tests "all stopped?" after each chunk."""
    n = len(s)
    gumbel = gumbel_noise((steps, n, env.n_actions), generator, s.device)
    level = env.max_steps - steps if env.levelled else 0
    states, actions, bwd, diverged, log_pf = roll_forward(env, policy, s, beta, cond, gumbel, 0.0, (None, 0), level,
                                                          compiled, sum_log_p=True)
    pad = steps - actions.shape[1]  # a grid's rebuild that ended early: pad to the fixed width
    if pad:
        states = torch.cat([states, states[:, -1:].expand(-1, pad, -1)], 1)
        actions, bwd = F.pad(actions, (0, pad), value=-1), F.pad(bwd, (0, pad), value=-1)
    return states, actions, bwd, log_pf, diverged


def _log_pf_of(policy: "BasePolicy", path: Tensor, fwd_actions: Tensor, x: Tensor, beta: Tensor,
               stop: int) -> Tensor:
    """Σ log P_F(·|β) of the way back up a backward walk ``path`` (x, parent, ...) to x, the stop at x included:
    the forward actions ``fwd_actions[:, j]`` from ``path[:, j + 1]`` (−1: none), then the stop. One network call."""
    S, J = fwd_actions.shape
    parents = torch.cat([path[:, 1:], x[:, None]], 1)  # [S, J + 1, D]
    actions = torch.cat([fwd_actions, torch.full_like(fwd_actions[:, :1], stop)], 1)
    lp = policy.forward_log_probs(parents.reshape(S * (J + 1), -1), beta.repeat_interleave(J + 1))
    lp = lp.gather(1, actions.clamp(min=0).reshape(-1, 1)).view(S, J + 1)
    return torch.where(actions >= 0, lp, 0.0).sum(1)
