"""The LightningModule: policy α_θ, logit-scaling net f_θ(β) and Z_θ(β) of one task, trained by a GFlowNet loss."""

from __future__ import annotations

from typing import Any, Iterator, Literal

import torch
from lightning.pytorch import LightningModule
from torch import Tensor
from torchmetrics import SumMetric

from lgfn import registry
from lgfn.data.trajectories import Trajectories, rows_of, sample_backward, sample_forward
from lgfn.losses.base import FlowTerms, Loss
from lgfn.metrics.discovery import DistinctObjects, ModesFound, TopKDiversity, TopKReward
from lgfn.metrics.molecular import TopKTanimotoDiversity
from lgfn.models.conditioners import Conditioner
from lgfn.models.policy import Policy
from lgfn.registry import ComponentSpec
from lgfn.tasks.base import Task


class GFlowNet(LightningModule):
    """A temperature-conditional GFlowNet: p(x|β) ∝ R(x)^β for a range of β at once.

    Args:
        task: the task (name, ``{name: ..., **args}`` or class_path spec).
        conditioner: how β enters: ``none``, ``layer``, ``thermometer``, ``logit``, ``logit_layer``.
        loss: ``tb``, ``db`` or ``subtb``; MaxEnt is ``tb`` with ``backward_policy: uniform``.
        hidden_dim, n_layers: size of the policy MLPs.
        backward_policy: ``learned`` (conditioned like P_F) or ``uniform``.
        lr_policy, lr_z, lr_scale, lr_flow: learning rates of α_θ (and P_B), Z_θ, f_θ and F.
        grad_clip: max gradient norm (None: no clipping); the norm is logged either way.
        logit_clip: clamp α_θ to [−c, c] (None: no clamp).
        eval_betas: β values evaluated at validation/test, including ones outside training.
        eval_samples: objects sampled per β at evaluation.
    """

    def __init__(
        self,
        task: ComponentSpec = "gridworld",
        conditioner: ComponentSpec = "logit",
        loss: ComponentSpec = "tb",
        hidden_dim: int = 128,
        n_layers: int = 2,
        backward_policy: Literal["learned", "uniform"] = "learned",
        lr_policy: float = 1e-4,
        lr_z: float = 1e-2,
        lr_scale: float = 1e-4,
        lr_flow: float = 1e-4,
        grad_clip: float | None = 10.0,
        logit_clip: float | None = None,
        eval_betas: list[float] = [1.0, 2.0, 3.0],  # noqa: B006 (jsonargparse needs a literal default)
        eval_samples: int = 1000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if backward_policy not in ("learned", "uniform"):
            raise ValueError(f"backward_policy must be 'learned' or 'uniform', got {backward_policy!r}")
        self.task: Task = registry.build("task", task)
        cond: Conditioner = registry.build("conditioner", conditioner)
        self.loss_fn: Loss = registry.build("loss", loss)
        self.policy = Policy(
            self.task.env, cond, hidden_dim, n_layers,
            learned_backward=backward_policy == "learned", state_flow=self.loss_fn.needs_flow, logit_clip=logit_clip,
        )
        if cond.fixed_beta is not None:
            self.hparams.eval_betas = [cond.fixed_beta]
        # discovery over every object the run has rewarded (the mode-seeking curve); reduced across ranks
        modes = self.task.modes()
        self.modes_found = ModesFound(modes) if modes else None
        self.distinct_found = DistinctObjects()
        self.top_found = TopKReward(k=100)
        self.diversity_found = TopKDiversity(k=100)
        self.objects_sampled = SumMetric()  # the x axis of discovery curves: oracle calls, all ranks
        if self.task.molecular:  # SMILES are canonical already, so distinct strings = distinct molecules
            self.molecules_found = DistinctObjects()
            self.tanimoto_found = TopKTanimotoDiversity(k=100)
        self.oracle_invalid = SumMetric()  # sampled objects the oracle could not score, all ranks
        self._last_eval_step = -1

    def keep_scored(self, traj: Trajectories) -> Trajectories:
        """The trajectories whose objects the oracle scored; the others are counted (``oracle/invalid``,
        summed over ranks; every rank calls this once a round) and left out of training."""
        scored = traj.raw_reward.isfinite()
        self.oracle_invalid.update(float((~scored).sum()))
        if self._trainer is not None:
            self.log("oracle/invalid", self.oracle_invalid.compute().float(), batch_size=len(traj))
        return traj if bool(scored.all()) else traj.index(scored)

    def observe(self, traj: Trajectories) -> None:
        """Record newly rewarded objects in the discovery metrics and log them."""
        strings = self.task.to_strings(traj.x)
        self.distinct_found.update(strings)
        self.top_found.update(strings, traj.raw_reward.cpu())
        self.diversity_found.update(strings, traj.raw_reward.cpu())
        self.objects_sampled.update(float(len(traj)))
        log_now = self._trainer is None or self.global_step % self.trainer.log_every_n_steps == 0
        found = {"discovery/distinct_objects": self.distinct_found.compute().float(),
                 "discovery/top100_reward": self.top_found.compute().float(),
                 "discovery/objects_sampled": self.objects_sampled.compute().float()}
        if log_now:  # pairwise distances (and fingerprints) of the top 100: only when the value is logged
            found["discovery/top100_diversity"] = self.diversity_found.compute().float()
        if self.modes_found is not None:
            self.modes_found.update(strings)
            found["discovery/modes_found"] = self.modes_found.compute().float()
        if self.task.molecular:
            smiles = self.task.smiles(traj.x)
            self.molecules_found.update(smiles)
            self.tanimoto_found.update(smiles, traj.raw_reward.cpu(), smiles)  # top-k distinct molecules
            found["discovery/distinct_molecules"] = self.molecules_found.compute().float()
            if log_now:
                found["discovery/top100_tanimoto_diversity"] = self.tanimoto_found.compute().float()
        if self._trainer is not None:
            self.log_dict(found, batch_size=len(traj))

    # -- sampling ------------------------------------------------------------------------------
    @property
    def fixed_beta(self) -> float | None:
        """The one β of an unconditional model, else None."""
        return self.policy.conditioner.fixed_beta

    def check_beta(self, beta: float) -> None:
        """Refuse a β the model cannot sample at, with a one-line reason."""
        if beta <= 0:
            raise ValueError(f"β must be positive, got {beta}")
        if self.fixed_beta is not None and abs(beta - self.fixed_beta) > 1e-9:
            raise ValueError(f"this model is unconditional (conditioner 'none'), trained at β={self.fixed_beta}; "
                             f"it samples only at --beta {self.fixed_beta}")

    def score(self, traj: Trajectories) -> Trajectories:
        """Fill in the rewards of sampled trajectories in one batched oracle call."""
        x = traj.x
        raw = self.task.raw_reward(x.cpu()).to(x.device)
        traj.raw_reward, traj.log_reward = raw, self.task.log_reward(raw).to(x.device)
        return traj

    def sample(self, beta: Tensor, epsilon: float = 0.0, generator: torch.Generator | None = None) -> Trajectories:
        """Scored trajectories sampled forward at the given β (ε-uniform exploration when ε > 0)."""
        return self.score(sample_forward(self.task.env, self.policy, beta, epsilon, generator))

    def sample_backward(self, x: Tensor, beta: Tensor, generator: torch.Generator | None = None) -> Trajectories:
        """Trajectories to the objects x drawn backwards with P_B(·|β) (rewards left for the caller)."""
        return sample_backward(self.task.env, self.policy, x, beta, generator)

    # -- training ------------------------------------------------------------------------------
    def flow_terms(self, traj: Trajectories) -> FlowTerms:
        """Log-probabilities and log-flows of a batch: one network call per network over its states."""
        B, T = traj.actions.shape
        env, policy = self.task.env, self.policy
        valid = traj.valid
        beta_bt = traj.beta[:, None].expand(B, T)
        states_bt = traj.states[:, :-1]
        rows = torch.arange(B, device=self.device)[:, None].expand(B, T)
        cond = policy.condition(traj.beta)  # once per trajectory, not per state
        log_pf = torch.zeros(B, T, device=self.device)
        log_p = policy.forward_log_probs(states_bt[valid], beta_bt[valid], rows_of(cond, rows[valid]))
        log_pf[valid] = log_p.gather(1, traj.actions[valid][:, None]).squeeze(1)
        move = valid & (traj.actions != env.stop_action)
        log_pb = torch.zeros(B, T, device=self.device)
        children = traj.states[:, 1:][move]
        log_b = policy.backward_log_probs(children, beta_bt[move], rows_of(cond, rows[move]))
        log_pb[move] = log_b.gather(1, traj.bwd_actions[move][:, None]).squeeze(1)
        log_z = policy.log_z(traj.beta)
        log_reward_beta = traj.beta * traj.log_reward
        log_flow = torch.zeros(B, T + 1, device=self.device)
        log_flow[:, 0] = log_z
        if self.loss_fn.needs_flow:
            inner = valid.clone()
            inner[:, 0] = False  # node 0 is Z(β); nodes 1..L−1 get F(s, β)
            log_flow[:, :-1][inner] = policy.log_flow(states_bt[inner], beta_bt[inner])
        log_flow = log_flow.scatter(1, traj.lengths[:, None], log_reward_beta[:, None])
        return FlowTerms(log_pf, log_pb, valid, traj.lengths, log_z, log_reward_beta, log_flow)

    def training_step(self, dataloader_iter: Iterator[Any]) -> Tensor | None:
        traj, _, _ = next(dataloader_iter)
        traj = traj.to(self.device)
        if not len(traj):  # the oracle scored none of this batch's objects
            if self.trainer.world_size == 1:
                return None  # Lightning skips the step
            # under DDP every rank must join the gradient all-reduce: a zero loss over every parameter
            return sum((p * 0.0).sum() for p in self.parameters() if p.requires_grad)
        loss = self.loss_fn(self.flow_terms(traj))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(traj))
        self.log("train/log_reward", traj.log_reward.mean(), batch_size=len(traj))
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        max_norm = self.hparams.grad_clip if self.hparams.grad_clip is not None else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)
        self.log("train/grad_norm", norm, batch_size=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lrs = {"policy": self.hparams.lr_policy, "z": self.hparams.lr_z,
               "scale": self.hparams.lr_scale, "flow": self.hparams.lr_flow}
        groups = [{"params": ps, "lr": lrs[name], "name": name}
                  for name, ps in self.policy.parameter_groups().items() if ps]
        return torch.optim.Adam(groups)

    # -- evaluation -----------------------------------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate("val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate("test")

    @torch.no_grad()
    def sample_objects(self, n: int, beta: float, generator: torch.Generator | None = None,
                       drop_invalid: bool = True) -> Trajectories:
        """n objects sampled on-policy at one β and scored; those the oracle cannot score (raw reward NaN)
        are left out unless ``drop_invalid`` is False."""
        self.check_beta(beta)
        traj = self.sample(torch.full((n,), float(beta), device=self.device), 0.0, generator)
        return traj.index(traj.raw_reward.isfinite()) if drop_invalid else traj

    def on_train_epoch_end(self) -> None:
        # The sampling stream's length is unknown to Lightning, so it never validates at the end of
        # the epoch by itself: evaluate the final model here unless a validation just ran.
        if self.trainer.val_dataloaders is not None and self._last_eval_step != self.global_step:
            self._evaluate("val")

    def _evaluate(self, stage: str) -> None:
        from lgfn.metrics.evaluation import evaluate

        self._last_eval_step = self.global_step
        for name, value in evaluate(self, stage).items():
            # every rank evaluates the same weights with the same draws: the reduction only states that
            self.log(name, value, batch_size=1, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from lgfn import plugins

        # named again when a checkpoint's components are missing: `lgfn sample` never imports code by itself
        checkpoint["lgfn_plugins"] = plugins.loaded()
