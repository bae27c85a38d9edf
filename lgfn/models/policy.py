"""The GFlowNet's networks: forward policy α_θ, backward policy, Z_θ(β) and state flow F(s, β).

:class:`BasePolicy` is all that sampling, the losses and evaluation use; a single :class:`Policy` and a
:class:`PolicyEnsemble` both implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from lgfn.envs.base import Env
from lgfn.models.architectures import Architecture, MLPPolicy
from lgfn.models.conditioners import Conditioner
from lgfn.models.nets import mlp


def log_softmax_over_parents(logits: Tensor, mask: Tensor) -> Tensor:
    """log P_B over the allowed backward actions. A state without parents (s0, which fixed-shape batches hold
    in rows that take no backward step) gets a finite dummy row instead of NaN, so that the NaN never reaches a
    gradient through the rows the losses leave out."""
    return torch.where(mask.any(1, keepdim=True), logits, 0.0).log_softmax(dim=1)


Conditioning = tuple[Tensor | None, Tensor | None]
"""A batch of β's embedding (β-aware networks) and logit scale (f_θ(β)), computed once per trajectory."""


class BasePolicy(nn.Module, ABC):
    """What the sampler, the losses and evaluation ask of a policy, single or ensemble."""

    env: Env
    conditioner: Conditioner
    """How β enters (an ensemble's members share its settings: fixed β, range)."""

    @property
    @abstractmethod
    def learned_backward(self) -> bool:
        """Whether P_B is learned (and conditioned on β) rather than uniform over parents."""

    @property
    def alpha_is_beta_free(self) -> bool:
        """Whether α_θ(s, ·) ignores β (no embedding): then one forward pass serves every β."""
        return all(m.conditioner.embed_net is None for m in self.members)

    members: list["Policy"]
    """The policies that are trained, each with its own loss and clipping."""

    @abstractmethod
    def condition(self, beta: Tensor) -> Conditioning:
        """The conditioning of a batch of β (see :data:`Conditioning`)."""

    @abstractmethod
    def forward_alpha(self, states: Tensor) -> Tensor:
        """α_θ(s, ·) of a β-free policy before clamping and scaling ([K, N, A] for K members)."""

    @abstractmethod
    def forward_log_probs(self, states: Tensor, beta: Tensor, cond: Conditioning | None = None,
                          alpha: Tensor | None = None) -> Tensor:
        """log P_F(a | s; β) for every action, −inf where invalid: [N, n_actions]. ``cond`` is
        ``condition(beta)`` when the caller has it; ``alpha`` is ``forward_alpha(states)`` when it has that."""

    @abstractmethod
    def backward_alpha(self, states: Tensor) -> Tensor:
        """α of a β-free learned P_B before clamping and scaling ([K, N, n_bwd_actions] for K members)."""

    @abstractmethod
    def backward_log_probs(self, states: Tensor, beta: Tensor, cond: Conditioning | None = None,
                           alpha: Tensor | None = None) -> Tensor:
        """log P_B(b | s; β) for every backward action: [N, n_bwd_actions]; ``alpha``: ``backward_alpha(states)``
        when the caller has it."""

    @abstractmethod
    def log_z(self, beta: Tensor) -> Tensor:
        """log Z_θ(β): [N]."""

    @abstractmethod
    def log_flow(self, states: Tensor, beta: Tensor) -> Tensor:
        """log F(s, β): [N] (losses that need a state flow)."""

    @abstractmethod
    def set_range(self, low: float, high: float) -> None:
        """Fix the β range of the conditioners (a thermometer code's; kept in checkpoints)."""

    @abstractmethod
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser group: policy, z, scale, flow (each may get its own learning rate)."""

    def training_parts(self, n: int) -> list[tuple["Policy", slice]]:
        """Which member trains on which rows of a batch of n: every member on all of them."""
        return [(m, slice(0, n)) for m in self.members]

    def backward_parts(self, n: int) -> list[tuple["BasePolicy", slice]]:
        """Which policy draws the backward trajectories of which rows of a batch of n: this one, all of them."""
        return [(self, slice(0, n))]

    def forward_log_probs_from(self, alpha: Tensor, states: Tensor, beta: Tensor) -> Tensor:
        """log P_F from ``forward_alpha(states)``: the same numbers as :meth:`forward_log_probs`, without running
        the networks again for each β."""
        return self.forward_log_probs(states, beta, alpha=alpha)

    def alpha_by_table(self, states: Tensor) -> Tensor | None:
        """A β-free policy's α_θ for a batch of states, computed over every state of a small MDP and gathered:
        fixed-shape work, which costs fewer network rows than the batch whenever the MDP has fewer states than
        the batch has rows (a padded batch of trajectories over a grid repeats its states many times). None
        where that does not hold: then the network runs on the batch itself."""
        n_states = self.env.n_states
        if not self.alpha_is_beta_free or n_states is None or n_states > len(states):
            return None
        table = self.forward_alpha(self.env.all_states_on(states.device))
        return table[..., self.env.state_index(states), :]

    def alpha_by_levels(self, states: Tensor, backward: bool = False) -> Tensor | None:
        """A β-free policy's α_θ (P_B's with ``backward``) at the positions ``[B, T, D]`` of a batch of
        trajectories over a levelled MDP, as rows ``[B·T, A]`` (``[K, B·T, A]`` for K members): the static-shape
        form of running the network once per distinct state. Position t holds a parent at level t (a child at
        level t + 1 with ``backward``); the first levels, where a batch repeats states, come from a table of
        every state there (:meth:`Env.prefix_levels`), the rest from the network on the batch, and the last
        position (stop only, or the stop's child, which has no P_B term) gets zeros without a network call.
        None where that does not hold: then the network runs on every position."""
        env = self.env
        usable = env.levelled and self.alpha_is_beta_free and (self.learned_backward or not backward)
        if not usable or states.shape[1] != env.max_steps:
            return None
        B, T = states.shape[:2]
        real, first = T - 1, int(backward)
        net = self.backward_alpha if backward else self.forward_alpha
        k = min(max(env.prefix_levels(B) - first, 0), real)  # positions served by the table
        parts = []
        if k:
            table = net(env.prefix_states(first + k, states.device))
            parts.append(_rows_as(table[..., env.prefix_index(states[:, :k].flatten(0, 1), first + k), :], B, k))
        if k < real:
            parts.append(_rows_as(net(states[:, k:real].flatten(0, 1)), B, real - k))
        parts.append(parts[-1].new_zeros(*parts[-1].shape[:-3], B, 1, parts[-1].shape[-1]))
        return torch.cat(parts, -2).flatten(-3, -2)


class Policy(BasePolicy):
    """All learned parts of a temperature-conditional GFlowNet over one environment.

    Args:
        env: the MDP (sizes, masks and state encoding).
        conditioner: how β enters (embedding and/or logit scaling).
        architecture: the P_F and P_B networks (``mlp`` when None; see :mod:`lgfn.models.architectures`).
        hidden_dim, n_layers: size of the policy (and flow) MLPs.
        learned_backward: a learned P_B (conditioned like P_F), else uniform over parents.
        state_flow: build F(s, β) for DB/SubTB.
        logit_clip: clamp α_θ to [−c, c] before scaling (after it, for the official multiplicative scaling;
            None: no clamp).
        z_hidden_dim, z_layers: size of the Z_θ(β) net.
    """

    def __init__(
        self,
        env: Env,
        conditioner: Conditioner,
        architecture: Architecture | None = None,
        hidden_dim: int = 128,
        n_layers: int = 2,
        learned_backward: bool = True,
        state_flow: bool = False,
        logit_clip: float | None = None,
        z_hidden_dim: int = 32,
        z_layers: int = 2,
    ) -> None:
        super().__init__()
        self.env = env
        self.conditioner = conditioner
        self.logit_clip = logit_clip
        arch = architecture if architecture is not None else MLPPolicy()
        self.forward_net = arch.build(env, "forward", conditioner.embed_dim, hidden_dim, n_layers)
        self.backward_net = (arch.build(env, "backward", conditioner.embed_dim, hidden_dim, n_layers)
                             if learned_backward else None)
        self.log_z_net = mlp(conditioner.feature_dim, z_hidden_dim, z_layers, 1)
        self.flow_net = mlp(env.obs_dim + conditioner.feature_dim, hidden_dim, n_layers, 1) if state_flow else None

    def condition(self, beta: Tensor) -> Conditioning:
        """The β embedding and logit scale (f_θ(β), or g_θ(β) when multiplicative) of each row, computed once per
        batch of β."""
        return self.conditioner.embedding(beta), self.conditioner.logit_scale(beta)

    @property
    def learned_backward(self) -> bool:
        return self.backward_net is not None

    def logits(self, backward: bool, states: Tensor, cond: Conditioning, mask: Tensor) -> Tensor:
        """Scaled, clamped logits of P_F (or P_B), −inf where not allowed."""
        net, (emb, scale) = (self.backward_net if backward else self.forward_net), cond
        return self.scaled(net(states, mask, emb) if emb is not None else net(states, mask), scale, mask)

    def scaled(self, alpha: Tensor, scale: Tensor | None, mask: Tensor) -> Tensor:
        """α scaled by the conditioner and clamped, −inf where the action is not allowed."""
        return self.conditioner.scale_logits(alpha, scale, self.logit_clip).masked_fill(~mask, float("-inf"))

    def forward_alpha(self, states: Tensor) -> Tensor:
        return self.forward_net(states, self.env.forward_mask(states))

    def backward_alpha(self, states: Tensor) -> Tensor:
        if self.backward_net is None:
            raise RuntimeError("this policy's P_B is uniform: it has no backward α")
        return self.backward_net(states, self.env.backward_mask(states))

    def scaled_logits(self, backward: bool, states: Tensor, beta: Tensor, cond: Conditioning | None,
                       alpha: Tensor | None, mask: Tensor) -> Tensor:
        """The logits of P_F or P_B: from ``alpha`` when given (only f_θ(β) of the rows is needed), else from
        the network."""
        if alpha is not None:
            return self.scaled(alpha, self.conditioner.logit_scale(beta) if cond is None else cond[1], mask)
        return self.logits(backward, states, self.condition(beta) if cond is None else cond, mask)

    def forward_log_probs(self, states: Tensor, beta: Tensor, cond: Conditioning | None = None,
                          alpha: Tensor | None = None) -> Tensor:
        mask = self.env.forward_mask(states)
        return self.scaled_logits(False, states, beta, cond, alpha, mask).log_softmax(dim=1)

    def backward_log_probs(self, states: Tensor, beta: Tensor, cond: Conditioning | None = None,
                           alpha: Tensor | None = None) -> Tensor:
        mask = self.env.backward_mask(states)
        if self.backward_net is None:
            n = mask.sum(1, keepdim=True).clamp(min=1)
            return torch.where(mask, -n.float().log(), float("-inf"))
        return log_softmax_over_parents(self.scaled_logits(True, states, beta, cond, alpha, mask), mask)

    def log_z(self, beta: Tensor) -> Tensor:
        return self.log_z_net(self.conditioner.features(beta)).squeeze(1)

    def log_flow(self, states: Tensor, beta: Tensor) -> Tensor:
        if self.flow_net is None:
            raise RuntimeError("this policy has no state flow; use a loss that needs one (db, subtb)")
        x = torch.cat([self.env.encode(states), self.conditioner.features(beta)], dim=1)
        return self.flow_net(x).squeeze(1)

    @property
    def members(self) -> list["Policy"]:  # type: ignore[override]
        return [self]

    def set_range(self, low: float, high: float) -> None:
        self.conditioner.set_range(low, high)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        scale = list(self.conditioner.scale_net.parameters()) if self.conditioner.scale_net is not None else []
        scale_ids = {id(p) for p in scale}
        z = list(self.log_z_net.parameters())
        flow = list(self.flow_net.parameters()) if self.flow_net is not None else []
        taken = scale_ids | {id(p) for p in z} | {id(p) for p in flow}
        policy = [p for p in self.parameters() if id(p) not in taken]
        return {"policy": policy, "z": z, "scale": scale, "flow": flow}


class PolicyEnsemble(BasePolicy):
    """K policies trained side by side that sample as one: P_F(· | s; β) = softmax(mean_k α_k(s, ·) / f_k(β)).

    Each member has its own α_θ, f_θ, Z_θ (and P_B), its own loss and its own gradient clipping; with ``split``
    each also trains on its own slice of every batch (offline: drawn with its own P_B), as K separately trained
    policies would; without, on the same trajectories (then they differ by their initialisation only). Far from
    the data their learned rankings err independently; the mean of their scaled logits is, for log-flows, the
    geometric mean of the members' learned rewards, sampled at β, which averages those errors out where a single
    policy follows its own (offline TFBind8: see ``model.ensemble``).
    """

    def __init__(self, members: list[Policy], split: bool = False) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)  # type: ignore[assignment]
        self.env = members[0].env
        self.split = split

    def _slices(self, n: int) -> list[slice]:
        """The contiguous rows of a batch of n that each member owns when ``split``."""
        k = len(self.members)
        bounds = [i * (n // k) + min(i, n % k) for i in range(k + 1)]  # as torch.tensor_split: larger parts first
        return [slice(a, b) for a, b in zip(bounds, bounds[1:])]

    def training_parts(self, n: int) -> list[tuple[Policy, slice]]:
        """With ``split``, member k trains on the k-th of K equal slices of the batch; else every member on all."""
        return list(zip(self.members, self._slices(n))) if self.split else super().training_parts(n)

    def backward_parts(self, n: int) -> list[tuple[BasePolicy, slice]]:
        """With ``split``, member k draws its own slice's trajectories with its own P_B; else the mean P_B."""
        return list(zip(self.members, self._slices(n))) if self.split else super().backward_parts(n)

    @property
    def conditioner(self) -> Conditioner:  # type: ignore[override]
        """The first member's: the members share the conditioner's settings (fixed β, range)."""
        return self.members[0].conditioner

    @property
    def learned_backward(self) -> bool:
        return self.members[0].learned_backward

    def forward_alpha(self, states: Tensor) -> Tensor:
        """Every member's β-free α_θ(s, ·): [K, N, n_actions]."""
        return torch.stack([m.forward_alpha(states) for m in self.members])

    def backward_alpha(self, states: Tensor) -> Tensor:
        """Every member's β-free α of P_B: [K, N, n_bwd_actions]."""
        return torch.stack([m.backward_alpha(states) for m in self.members])

    def set_range(self, low: float, high: float) -> None:
        for member in self.members:
            member.set_range(low, high)

    def condition(self, beta: Tensor) -> Conditioning:
        """Nothing precomputed: each member conditions its own rows (see :meth:`forward_log_probs`)."""
        return None, None

    def forward_log_probs(self, states: Tensor, beta: Tensor, cond: Conditioning | None = None,
                          alpha: Tensor | None = None) -> Tensor:
        """log P_F of the mean policy; ``alpha``: ``forward_alpha(states)`` when the caller already has it."""
        return self._mean_logits(False, states, beta, alpha, self.env.forward_mask(states)).log_softmax(dim=1)

    def backward_log_probs(self, states: Tensor, beta: Tensor, cond: Conditioning | None = None,
                           alpha: Tensor | None = None) -> Tensor:
        if not self.learned_backward:
            return self.members[0].backward_log_probs(states, beta)
        mask = self.env.backward_mask(states)
        return log_softmax_over_parents(self._mean_logits(True, states, beta, alpha, mask), mask)

    def _mean_logits(self, backward: bool, states: Tensor, beta: Tensor, alpha: Tensor | None,
                     mask: Tensor) -> Tensor:
        """The members' mean scaled logits of P_F or P_B, each conditioned on its own f_θ(β); from ``alpha``
        ([K, N, A]) when given."""
        alphas = [None] * len(self.members) if alpha is None else list(alpha)
        return torch.stack([m.scaled_logits(backward, states, beta, None, a, mask)
                            for m, a in zip(self.members, alphas)]).mean(0)

    def log_z(self, beta: Tensor) -> Tensor:
        """The members' mean log Z_θ(β): an estimate, as the ensemble's own normaliser is not trained."""
        return torch.stack([m.log_z(beta) for m in self.members]).mean(0)

    def log_flow(self, states: Tensor, beta: Tensor) -> Tensor:
        """The members' mean log F(s, β) (an estimate, like :meth:`log_z`)."""
        return torch.stack([m.log_flow(states, beta) for m in self.members]).mean(0)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {}
        for member in self.members:
            for name, params in member.parameter_groups().items():
                groups.setdefault(name, []).extend(params)
        return groups


def _rows_as(t: Tensor, b: int, k: int) -> Tensor:
    """[..., B·k, A] as [..., B, k, A]. (``Tensor.unflatten`` would do, but TorchDynamo cannot trace it under a
    TorchFunctionMode, which :mod:`lgfn.profiling` counts read-backs with.)"""
    return t.reshape(*t.shape[:-2], b, k, t.shape[-1])
