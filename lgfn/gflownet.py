"""The LightningModule: policy α_θ, logit-scaling net f_θ(β) and Z_θ(β) of one task, trained by a GFlowNet loss."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterator, Literal

import torch
from lightning.pytorch import LightningModule
from torch import Tensor
from torchmetrics import SumMetric

from lgfn import components, registry
from lgfn.sampling.trajectories import Trajectories, rows_of, sample_backward, sample_forward
from lgfn.errors import ConfigError, TrainingError
from lgfn.losses.base import FlowTerms, Loss
from lgfn.metrics.discovery import DistinctObjects, ModesFound, TopKDiversity, TopKReward
from lgfn.metrics.molecular import TopKTanimotoDiversity
from lgfn.models.conditioners import Conditioner
from lgfn.models.policy import Policy
from lgfn.registry import ComponentSpec
from lgfn.tasks.base import Task

log = logging.getLogger("lgfn")


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
        nonfinite_patience: each step whose loss or gradient is not finite is skipped; training stops (with a
            checkpoint) after this many such steps with fewer than this many good steps in a row between them.
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
        nonfinite_patience: int = 20,
    ) -> None:
        super().__init__()
        specs = self.check_args(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        self.save_hyperparameters()
        self.hparams.update(specs)  # checkpoints hold resolved {class_path, init_args}, every default filled in
        self.task: Task = registry.build("task", specs["task"])
        cond: Conditioner = registry.build("conditioner", specs["conditioner"])
        self.loss_fn: Loss = registry.build("loss", specs["loss"])
        self.policy = Policy(
            self.task.env, cond, hidden_dim, n_layers,
            learned_backward=backward_policy == "learned", state_flow=self.loss_fn.needs_flow, logit_clip=logit_clip,
        )
        # the β range of training (kept in checkpoints; sampling outside it warns)
        self.trained_beta: tuple[float, float] | None = None
        if cond.fixed_beta is not None:
            self.hparams.eval_betas = [cond.fixed_beta]
            self.trained_beta = (cond.fixed_beta, cond.fixed_beta)
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
        self._warned_betas: set[float] = set()
        # steps skipped for a non-finite loss or gradient since the last `nonfinite_patience` good ones in a row
        self._nonfinite_run = self._finite_run = 0
        self.nonfinite_steps = 0

    @staticmethod
    def check_args(**args: Any) -> dict[str, Any]:
        """Check every setting before anything is built (no data is loaded), naming the one at fault.

        Returns the component specs resolved against the registry (``{class_path, init_args}``).
        """
        components.load()
        for key in ("hidden_dim", "n_layers", "eval_samples", "nonfinite_patience"):
            value = args.get(key)
            if key in args and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"model.{key} = {value!r}: must be an integer >= 1")
        for key in ("lr_policy", "lr_z", "lr_scale", "lr_flow", "grad_clip", "logit_clip"):
            value = args.get(key)
            optional = key in ("grad_clip", "logit_clip")
            if key in args and not (value is None and optional) and not _positive(value):
                none = " or null (off)" if optional else ""
                raise ConfigError(f"model.{key} = {value!r}: must be a positive finite number{none}")
        if args.get("backward_policy", "learned") not in ("learned", "uniform"):
            raise ConfigError(f"model.backward_policy = {args['backward_policy']!r}: must be 'learned' or 'uniform'")
        betas = args.get("eval_betas", [1.0])
        if not isinstance(betas, (list, tuple)) or not betas or not all(_positive(b) for b in betas):
            raise ConfigError(f"model.eval_betas = {betas!r}: must be a non-empty list of positive finite β")
        specs = {}
        for key in ("task", "conditioner", "loss"):
            try:
                specs[key] = registry.resolve(key, args.get(key, key))
                if key != "task":  # tiny: built once here so that their values are checked too (a task loads data);
                    with torch.random.fork_rng(devices=[]):  # without using up the seeded RNG of the real build
                        registry.build(key, specs[key])
            except (ConfigError, registry.RegistryError) as err:
                raise ConfigError(f"model.{key}: {err}") from None
        return specs

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

    def check_beta(self, beta: float, warn: bool = True) -> None:
        """Refuse a β the model cannot sample at, with a one-line reason; warn (once per β) when β lies
        outside the range the model was trained on: the result still comes out, but is extrapolation."""
        if not _positive(beta):
            raise ConfigError(f"β must be a positive finite number, got {beta}")
        if self.fixed_beta is not None and abs(beta - self.fixed_beta) > 1e-9:
            raise ConfigError(f"this model is unconditional (conditioner 'none'), trained at β={self.fixed_beta}; "
                              f"it samples only at --beta {self.fixed_beta}")
        trained = self.trained_beta
        if warn and trained is not None and not trained[0] <= beta <= trained[1] and beta not in self._warned_betas:
            self._warned_betas.add(beta)
            log.warning("β=%g is outside the range the model was trained on, [%g, %g]: the samples extrapolate",
                        beta, *trained)

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
            return self._skip_step()
        loss = self.loss_fn(self.flow_terms(traj))
        if not bool(torch.isfinite(loss)):
            self._nonfinite(f"loss {float(loss):g}")
            return self._skip_step()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(traj))
        self.log("train/log_reward", traj.log_reward.mean(), batch_size=len(traj))
        return loss

    def _skip_step(self) -> Tensor | None:
        """No update from this step. Under DDP every rank must still join the gradient all-reduce: a zero
        loss over every parameter (no gradient reaches Adam then: see ``on_before_optimizer_step``)."""
        if self.trainer.world_size == 1:
            return None  # Lightning skips the step
        self._skip_update = True
        return sum((p * 0.0).sum() for p in self.parameters() if p.requires_grad)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        max_norm = self.hparams.grad_clip if self.hparams.grad_clip is not None else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)
        skip, self._skip_update = getattr(self, "_skip_update", False), False
        if not bool(torch.isfinite(norm)):
            self._nonfinite(f"gradient norm {float(norm):g}")
            skip = True
        elif not skip:
            self._finite_run += 1
            if self._finite_run >= self.hparams.nonfinite_patience:  # recovered: a streak of good steps
                self._nonfinite_run = 0
            self.log("train/grad_norm", norm, batch_size=1)
        if skip:  # Adam leaves parameters without a gradient untouched (no moment update either)
            for p in self.parameters():
                p.grad = None

    def _nonfinite(self, what: str) -> None:
        """Count a skipped non-finite step; stop after ``nonfinite_patience`` in a row."""
        self.nonfinite_steps += 1
        self._nonfinite_run += 1
        self._finite_run = 0
        self.log("train/nonfinite_steps", float(self.nonfinite_steps), batch_size=1)
        log.warning("step %d skipped: non-finite %s (%d since the last stretch of good steps)", self.global_step, what,
                    self._nonfinite_run)
        if self._nonfinite_run >= self.hparams.nonfinite_patience:
            raise TrainingError(
                f"training diverged: {self._nonfinite_run} steps had a non-finite loss or gradient with no "
                f"{self.hparams.nonfinite_patience} good steps in a row between them "
                f"(last: {what} at step {self.global_step}); lower the learning rates (model.lr_*), narrow the β "
                f"range or set model.grad_clip; model.nonfinite_patience = {self.hparams.nonfinite_patience}")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lrs = {"policy": self.hparams.lr_policy, "z": self.hparams.lr_z,
               "scale": self.hparams.lr_scale, "flow": self.hparams.lr_flow}
        groups = [{"params": ps, "lr": lrs[name], "name": name}
                  for name, ps in self.policy.parameter_groups().items() if ps]
        return torch.optim.Adam(groups)

    # -- evaluation -----------------------------------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """One evaluation β per batch (the data module hands out their indices), so progress shows per β."""
        self._evaluate("val", [self.hparams.eval_betas[int(batch)]])

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate("test", [self.hparams.eval_betas[int(batch)]])

    @torch.no_grad()
    def sample_objects(self, n: int, beta: float, generator: torch.Generator | None = None,
                       drop_invalid: bool = True, warn: bool = True) -> Trajectories:
        """n objects sampled on-policy at one β and scored; those the oracle cannot score (raw reward NaN)
        are left out unless ``drop_invalid`` is False."""
        self.check_beta(beta, warn)
        traj = self.sample(torch.full((n,), float(beta), device=self.device), 0.0, generator)
        return traj.index(traj.raw_reward.isfinite()) if drop_invalid else traj

    def on_train_epoch_end(self) -> None:
        # The sampling stream's length is unknown to Lightning, so it never validates at the end of
        # the epoch by itself: evaluate the final model here unless a validation just ran.
        if self.trainer.val_dataloaders is not None and self._last_eval_step != self.global_step:
            self._evaluate("val")

    def _evaluate(self, stage: str, betas: list[float] | None = None) -> None:
        from lgfn.metrics.evaluation import evaluate

        self._last_eval_step = self.global_step
        for name, value in evaluate(self, stage, betas).items():
            # every rank evaluates the same weights with the same draws: the reduction only states that
            self.log(name, value, batch_size=1, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from lgfn import plugins
        from lgfn.checkpoints import FORMAT

        # named again when a checkpoint's components are missing: `lgfn sample` never imports code by itself
        checkpoint["lgfn_plugins"] = plugins.loaded()
        checkpoint["lgfn_format"] = FORMAT
        if self.trained_beta is not None:
            checkpoint["lgfn_trained_beta"] = list(self.trained_beta)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trained = checkpoint.get("lgfn_trained_beta")
        if trained is None:  # written before lgfn 0.2: the conditioner's range is the training range
            key = "policy.conditioner.beta_range"
            saved = checkpoint.get("state_dict", {}).get(key)
            trained = saved.tolist() if saved is not None and bool(torch.isfinite(saved).all()) else None
        self.trained_beta = (float(trained[0]), float(trained[1])) if trained is not None else None

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: str | Path, map_location: Any = None,  # type: ignore[override]
                             **overrides: Any) -> "GFlowNet":
        """A trained model from a checkpoint, read as data: only registered components are built from it
        (see :mod:`lgfn.checkpoints`). ``overrides`` replace saved settings (e.g. ``eval_samples``)."""
        from lgfn.checkpoints import model_hparams, read
        from lgfn.errors import CheckpointError

        ckpt = read(checkpoint_path)
        components.load()
        hparams = model_hparams(ckpt, cls, f"checkpoint {checkpoint_path}")
        hparams.update(overrides)
        model = cls(**hparams)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint {checkpoint_path}: its weights do not fit the model it describes "
                                  f"({first})") from None
        model.on_load_checkpoint(ckpt)
        if map_location is not None:
            model.to(map_location)
        return model


def _positive(value: Any) -> bool:
    """A positive finite number (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
