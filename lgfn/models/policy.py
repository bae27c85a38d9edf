"""The GFlowNet's networks: forward policy α_θ, backward policy, Z_θ(β) and state flow F(s, β)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lgfn.envs.base import Env
from lgfn.models.architectures import Architecture, MLPPolicy
from lgfn.models.conditioners import Conditioner
from lgfn.models.nets import mlp


class Policy(nn.Module):
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

    def condition(self, beta: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The β embedding and logit scale (f_θ(β), or g_θ(β) when multiplicative) of each row, computed once per
        batch of β."""
        return self.conditioner.embedding(beta), self.conditioner.logit_scale(beta)

    def _logits(self, net: nn.Module, states: Tensor, cond: tuple[Tensor | None, Tensor | None], mask: Tensor) -> Tensor:
        emb, scale = cond
        alpha = net(states, mask, emb) if emb is not None else self._alpha_of_distinct(net, states, mask)
        return self._scaled(alpha, scale, mask)

    def _alpha_of_distinct(self, net: nn.Module, states: Tensor, mask: Tensor) -> Tensor:
        """A β-free network's logits, computed once per distinct state and gathered back to every row.

        The trajectories of a batch share states (all start at s0, grids and short prefixes recur), and on a CPU
        the network is most of a step's cost: 2-D grid batches hold ~6% distinct states, 4-D ~70%. Only on the
        CPU: ``torch.unique`` waits for the device, which would cost a GPU more than the arithmetic it saves; and
        only from 64 rows: below, the sort and gathers cost more than the rows they save (4-D grid, B = 32:
        12.2 ms a step against 13.2 with it).
        """
        key = self.env.state_key(states) if states.device.type == "cpu" and len(states) >= 64 else None
        if key is None:
            return net(states, mask)
        distinct, inverse = torch.unique(key, return_inverse=True)
        if len(distinct) == len(key):
            return net(states, mask)
        first = torch.empty_like(distinct).scatter_(0, inverse, torch.arange(len(key), device=key.device))
        return net(states[first], mask[first])[inverse]

    def _scaled(self, alpha: Tensor, scale: Tensor | None, mask: Tensor) -> Tensor:
        """α scaled by the conditioner and clamped, −inf where the action is not allowed."""
        return self.conditioner.scale_logits(alpha, scale, self.logit_clip).masked_fill(~mask, float("-inf"))

    @property
    def alpha_is_beta_free(self) -> bool:
        """Whether α_θ(s, ·) ignores β (no embedding): then one forward pass serves every β (see
        :meth:`forward_log_probs_from`)."""
        return self.conditioner.embed_net is None

    def forward_alpha(self, states: Tensor) -> Tensor:
        """α_θ(s, ·) of a β-free policy, before clamping and scaling."""
        return self.forward_net(states, self.env.forward_mask(states))

    def forward_log_probs_from(self, alpha: Tensor, states: Tensor, beta: Tensor) -> Tensor:
        """log P_F(· | s; β) from a β-free policy's ``forward_alpha(states)``: the same numbers as
        :meth:`forward_log_probs`, without running the network again for each β."""
        return self.forward_log_probs(states, beta, (None, self.conditioner.logit_scale(beta)), alpha)

    def forward_log_probs(self, states: Tensor, beta: Tensor,
                          cond: tuple[Tensor | None, Tensor | None] | None = None, alpha: Tensor | None = None) -> Tensor:
        """log P_F(a | s; β) for every action, −inf where invalid: [N, n_actions].

        ``cond`` is ``condition(beta)`` when the caller already has it (sampling loops); ``alpha`` is a β-free
        policy's ``forward_alpha(states)`` when the caller already has it (a table over every state).
        """
        cond = self.condition(beta) if cond is None else cond
        mask = self.env.forward_mask(states)
        if alpha is None:
            return self._logits(self.forward_net, states, cond, mask).log_softmax(dim=1)
        return self._scaled(alpha, cond[1], mask).log_softmax(dim=1)

    def backward_log_probs(self, states: Tensor, beta: Tensor,
                           cond: tuple[Tensor | None, Tensor | None] | None = None) -> Tensor:
        """log P_B(b | s; β) for every backward action: [N, n_bwd_actions]."""
        mask = self.env.backward_mask(states)
        if self.backward_net is None:
            n = mask.sum(1, keepdim=True).clamp(min=1)
            return torch.where(mask, -n.float().log(), float("-inf"))
        cond = self.condition(beta) if cond is None else cond
        return self._logits(self.backward_net, states, cond, mask).log_softmax(dim=1)

    def log_z(self, beta: Tensor) -> Tensor:
        """log Z_θ(β): [N]."""
        return self.log_z_net(self.conditioner.features(beta)).squeeze(1)

    def log_flow(self, states: Tensor, beta: Tensor) -> Tensor:
        """log F(s, β): [N]; only with ``state_flow``."""
        if self.flow_net is None:
            raise RuntimeError("this policy has no state flow; use a loss that needs one (db, subtb)")
        x = torch.cat([self.env.encode(states), self.conditioner.features(beta)], dim=1)
        return self.flow_net(x).squeeze(1)

    @property
    def members(self) -> list["Policy"]:
        """The policies that are trained, each with its own loss: this one (see :class:`PolicyEnsemble`)."""
        return [self]

    def set_range(self, low: float, high: float) -> None:
        """Fix the β range of the conditioner (a thermometer code's; kept in checkpoints)."""
        self.conditioner.set_range(low, high)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser group: policy, z, scale, flow (each may get its own learning rate)."""
        scale = list(self.conditioner.scale_net.parameters()) if self.conditioner.scale_net is not None else []
        scale_ids = {id(p) for p in scale}
        z = list(self.log_z_net.parameters())
        flow = list(self.flow_net.parameters()) if self.flow_net is not None else []
        taken = scale_ids | {id(p) for p in z} | {id(p) for p in flow}
        policy = [p for p in self.parameters() if id(p) not in taken]
        return {"policy": policy, "z": z, "scale": scale, "flow": flow}


class PolicyEnsemble(nn.Module):
    """K policies trained side by side that sample as one: P_F(· | s; β) = softmax(mean_k α_k(s, ·) / f_k(β)).

    Each member has its own α_θ, f_θ, Z_θ (and P_B), its own loss and its own gradient clipping; with ``split``
    each also trains on its own slice of every batch (offline: drawn with its own P_B), as K separately trained
    policies would; without, on the same trajectories (then they differ by their initialisation only). Far from
    the data their learned rankings err independently; the mean of their scaled logits is, for log-flows, the
    geometric mean of the members' learned rewards, sampled at β, which averages those errors out where a single
    policy follows its own (offline TFBind8: see ``model.ensemble``).
    It offers the sampling side of :class:`Policy` (training goes through :attr:`members`).
    """

    def __init__(self, members: list[Policy], split: bool = False) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.env = members[0].env
        self.split = split

    def slices(self, n: int, device: torch.device | None = None) -> tuple[Tensor, ...]:
        """The rows of a batch of n that each member trains on when ``split`` (its own trajectories)."""
        return torch.arange(n, device=device).tensor_split(len(self.members))

    @property
    def conditioner(self) -> Conditioner:
        """The first member's: the members share the conditioner's settings (fixed β, range)."""
        return self.members[0].conditioner

    @property
    def backward_net(self) -> nn.Module | None:
        return self.members[0].backward_net

    @property
    def alpha_is_beta_free(self) -> bool:
        return all(m.alpha_is_beta_free for m in self.members)

    def forward_alpha(self, states: Tensor) -> Tensor:
        """Every member's β-free α_θ(s, ·): [K, N, n_actions]."""
        return torch.stack([m.forward_alpha(states) for m in self.members])

    def forward_log_probs_from(self, alpha: Tensor, states: Tensor, beta: Tensor) -> Tensor:
        """log P_F from ``forward_alpha(states)``, without running the networks again for each β."""
        mask = self.env.forward_mask(states)
        return self._mean_log_probs([m._scaled(a, m.conditioner.logit_scale(beta), mask)
                                     for m, a in zip(self.members, alpha)])

    def set_range(self, low: float, high: float) -> None:
        for member in self.members:
            member.conditioner.set_range(low, high)

    def condition(self, beta: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Nothing precomputed: each member conditions its own rows (see :meth:`forward_log_probs`)."""
        return None, None

    def _mean_log_probs(self, logits: list[Tensor]) -> Tensor:
        return torch.stack(logits).mean(0).log_softmax(dim=1)

    def forward_log_probs(self, states: Tensor, beta: Tensor, cond: object = None, alpha: Tensor | None = None) -> Tensor:
        """log P_F of the mean policy; ``alpha``: ``forward_alpha(states)`` when the caller already has it."""
        if alpha is not None:
            return self.forward_log_probs_from(alpha, states, beta)
        mask = self.env.forward_mask(states)
        return self._mean_log_probs([m._logits(m.forward_net, states, m.condition(beta), mask) for m in self.members])

    def backward_log_probs(self, states: Tensor, beta: Tensor, cond: object = None) -> Tensor:
        if self.backward_net is None:
            return self.members[0].backward_log_probs(states, beta)
        mask = self.env.backward_mask(states)
        return self._mean_log_probs([m._logits(m.backward_net, states, m.condition(beta), mask)
                                     for m in self.members])

    def log_z(self, beta: Tensor) -> Tensor:
        """The members' mean log Z_θ(β): an estimate, as the ensemble's own normaliser is not trained."""
        return torch.stack([m.log_z(beta) for m in self.members]).mean(0)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {}
        for member in self.members:
            for name, params in member.parameter_groups().items():
                groups.setdefault(name, []).extend(params)
        return groups
