"""The LightningModule: policy α_θ, logit-scaling net f_θ(β) and Z_θ(β) of one task, trained by a GFlowNet loss."""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from lightning.pytorch import Callback, LightningModule
from torch import Tensor
from torch.utils.data import DataLoader

from lgfn import plugins, registry, settings
from lgfn.checkpoints import FORMAT, load_model
from lgfn.errors import TrainingError
from lgfn.compilation import choose, is_cached, program, programs_key, remember
from lgfn.losses.base import FlowTerms, Loss, flow_terms, loss_of, transition_rows
from lgfn.metrics.evaluation import evaluate, log_heatmap
from lgfn.models.policy import BasePolicy, Policy, PolicyEnsemble
from lgfn.sampling.sampler import Sampler
from lgfn.sampling.trajectories import Trajectories
from lgfn.settings import model_settings
from lgfn.tasks.base import Task
from lgfn.training.discovery import DiscoveryTracker, logging_step
from lgfn.training.nonfinite import NonFiniteGuard

log = logging.getLogger("lgfn")


class GFlowNet(LightningModule):
    """A temperature-conditional GFlowNet: p(x|β) ∝ R(x)^β for a range of β at once.

    {args}

    Every setting is declared once, in :data:`lgfn.settings.MODEL` (this signature and this list come from it).
    """

    def __init__(self, **given: Any) -> None:
        super().__init__()
        specs = model_settings(given)
        self._save_settings(specs)  # checkpoints hold resolved {class_path, init_args}, every default filled in
        hidden_dim, n_layers, ensemble = specs["hidden_dim"], specs["n_layers"], specs["ensemble"]
        self.task: Task = registry.build("task", specs["task"])
        self.loss_fn: Loss = registry.build("loss", specs["loss"])
        members = [
            Policy(self.task.env, registry.build("conditioner", specs["conditioner"]),
                   registry.build("network", specs["network"]), hidden_dim, n_layers,
                   learned_backward=specs["backward_policy"] == "learned", state_flow=self.loss_fn.needs_flow,
                   logit_clip=specs["logit_clip"])
            for _ in range(ensemble)
        ]
        self.policy: BasePolicy = (members[0] if ensemble == 1 else
                                   PolicyEnsemble(members, split=specs["ensemble_data"] == "split"))
        cond = members[0].conditioner
        if cond.fixed_beta is not None:
            self.hparams.eval_betas = [cond.fixed_beta]
        self.sampler = Sampler(self.task, self.policy)  # what data modules, evaluation and `lgfn sample` draw with
        self._last_eval_step = -1
        self.eval_seconds = 0.0  # wall time spent evaluating in this process (the run summary reports its share)
        self.nonfinite = NonFiniteGuard(specs["nonfinite_patience"])  # steps skipped for a non-finite loss or gradient
        self._loss_finite: Tensor | None = None  # the current step's, set by training_step
        self.compiled_loss = False  # the loss with its backward as a compiled program (see on_fit_start)
        self._programs = ""  # what this fit compiles, as a cache key (see on_fit_start)

    def _save_settings(self, settings: dict[str, Any]) -> None:
        """The checked settings as the model's hyper-parameters. They are given whole, with the outermost frame
        of the call stack, so that Lightning looks for no constructor locals (``__init__`` takes ``**given``; its
        signature is :func:`lgfn.settings.signature`)."""
        frame = inspect.currentframe()
        while frame is not None and frame.f_back is not None:
            frame = frame.f_back
        self.save_hyperparameters(settings, frame=frame)

    # -- training ------------------------------------------------------------------------------
    def loss(self, traj: Trajectories) -> Tensor:
        """The loss of a batch: the mean of the members' losses for an ensemble (their parameters are disjoint, so
        each member's gradient is its own loss's), each on the whole batch or on its own slice (``ensemble_data``)."""
        loss = program(loss_of, self.compiled_loss)
        parts = [(member, traj.index(rows)) for member, rows in self.policy.training_parts(len(traj))
                 if rows.stop > rows.start]
        losses = [loss(self.loss_fn, member, part, transition_rows(member, part)) for member, part in parts]
        return losses[0] if len(losses) == 1 else torch.stack(losses).mean()

    def flow_terms(self, traj: Trajectories, policy: BasePolicy | None = None) -> FlowTerms:
        """Log-probabilities and log-flows of a batch under ``policy`` (default: the model's; an ensemble's is its
        mean policy): see :func:`lgfn.losses.base.flow_terms`."""
        policy = policy if policy is not None else self.policy
        return flow_terms(policy, traj, self.loss_fn.needs_flow, transition_rows(policy, traj))

    def training_step(self, dataloader_iter: Iterator[Any]) -> Tensor | None:
        traj, _, _ = next(dataloader_iter)
        traj = traj.to(self.device)
        if not len(traj):  # the oracle scored none of this batch's objects
            return self._skip_step()
        loss = self.loss(traj)
        self._loss_finite = torch.isfinite(loss)  # judged with the gradient's in on_before_optimizer_step
        if logging_step(self.trainer):  # a log call costs more than a small step's arithmetic: only when written
            self.log("train/loss", loss, prog_bar=True, batch_size=len(traj))
            self.log("train/log_reward", traj.log_reward.mean(), batch_size=len(traj))
        return loss

    def _skip_step(self) -> Tensor | None:
        """No update from this step. Under DDP every rank must still join the gradient all-reduce: a zero
        loss over every parameter (the optimiser then skips its update: see ``on_before_optimizer_step``)."""
        if self.trainer.world_size == 1:
            return None  # Lightning skips the step
        self._skip_update = True
        return sum((p * 0.0).sum() for p in self.parameters() if p.requires_grad)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        max_norm = self.hparams.grad_clip if self.hparams.grad_clip is not None else float("inf")
        # each ensemble member clipped on its own, as if trained alone (one joint norm would scale every member's
        # step by the largest member's gradient); the logged norm is the whole model's
        norms = [torch.nn.utils.clip_grad_norm_(params, max_norm) for params in self._clip_groups]
        norm = norms[0] if len(norms) == 1 else torch.stack(norms).norm()
        skip_update, self._skip_update = getattr(self, "_skip_update", False), False
        finite = torch.isfinite(norm) if self._loss_finite is None else torch.isfinite(norm) & self._loss_finite
        bad = ~finite
        if not skip_update:
            self.nonfinite.update(bad)
        # the fused optimiser skips the whole update on the device where found_inf is 1 (its GradScaler protocol):
        # weights and moments untouched, its step count too
        optimizer.found_inf = torch.ones_like(norm) if skip_update else bad.to(norm.dtype)
        if logging_step(self.trainer):
            self.log("train/grad_norm", norm, batch_size=1)
            self.check_health()

    def check_health(self) -> None:
        """Read the deferred flags (non-finite steps, a diverged rollout): warn of skipped steps and stop a run
        that diverged. Called on logging steps and at the end of the epoch: a step reads nothing back."""
        self.sampler.raise_if_diverged()
        total, new, tripped = self.nonfinite.read()
        if not new:
            return
        patience = self.hparams.nonfinite_patience
        self.log("train/nonfinite_steps", float(total), batch_size=1)
        log.warning("%d step(s) skipped by step %d: non-finite loss or gradient (%d in the run so far)", new,
                    self.global_step, total)
        if tripped:
            raise TrainingError(
                f"training diverged: {patience} steps had a non-finite loss or gradient with no {patience} good "
                f"steps in a row between them (by step {self.global_step}); lower the learning rates (model.lr_*), "
                f"narrow the β range or set model.grad_clip; model.nonfinite_patience = {patience}")

    @property
    def nonfinite_steps(self) -> int:
        """Steps skipped so far for a non-finite loss or gradient (a read-back: for summaries)."""
        return self.nonfinite.total()

    def on_fit_start(self) -> None:
        self.sampler.defer_checks = True  # rollouts flag divergence on the device; check_health reads it
        total = getattr(self.trainer.datamodule, "total_steps", None)
        if self.trainer.max_steps is not None and self.trainer.max_steps >= 0:
            total = min(total, self.trainer.max_steps) if total is not None else self.trainer.max_steps
        self._programs = programs_key(self.hparams, self.trainer.datamodule, self.device,
                                      str(self.trainer.precision))
        self.sampler.compiled, why = choose(self.hparams.compile, self.device, total, is_cached(self._programs))
        self.compiled_loss = self.sampler.compiled
        log.info("model.compile %s: %s", self.hparams.compile, why)

    def on_fit_end(self) -> None:
        self.sampler.defer_checks = False
        if self.sampler.compiled and self.trainer.is_global_zero:
            remember(self._programs)  # a later run of the same programs finds them compiled (compile: auto)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lrs = {"policy": self.hparams.lr_policy, "z": self.hparams.lr_z,
               "scale": self.hparams.lr_scale, "flow": self.hparams.lr_flow}
        self._trainable = [p for p in self.parameters() if p.requires_grad]  # walked once, not every step
        members = self.policy.members
        self._clip_groups = [self._trainable] if len(members) == 1 else [
            [p for p in m.parameters() if p.requires_grad] for m in members]
        groups = [{"params": ps, "lr": lrs[name], "name": name,
                   "weight_decay": self.hparams.weight_decay if name == "policy" else 0.0}
                  for name, ps in self.policy.parameter_groups().items() if ps]
        # fused: one kernel per tensor for the whole update (foreach runs ~10 small ops per tensor on a CPU: ~3x the
        # time); decoupled decay is a no-op at weight_decay 0 (the same update as Adam)
        return torch.optim.Adam(groups, fused=True, decoupled_weight_decay=True)

    # -- evaluation -----------------------------------------------------------------------------
    def val_dataloader(self) -> DataLoader:
        """One batch per evaluation β (its index): the model evaluates itself, and progress shows per β."""
        return DataLoader(list(range(len(self.hparams.eval_betas))), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """One evaluation β per batch (``val_dataloader`` hands out their indices), so progress shows per β."""
        self._evaluate("val", [self.hparams.eval_betas[int(batch)]])

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate("test", [self.hparams.eval_betas[int(batch)]])

    def configure_callbacks(self) -> list[Callback]:
        """Discovery metrics over everything the run rewards, for any Trainer this model is fit with."""
        return [DiscoveryTracker()]

    def on_train_epoch_end(self) -> None:
        self.check_health()  # the last steps since a logging step
        # The sampling stream's length is unknown to Lightning, so it never validates at the end of
        # the epoch by itself: evaluate the final model here unless a validation just ran.
        if self.trainer.val_dataloaders is not None and self._last_eval_step != self.global_step:
            self._evaluate("val")

    def _evaluate(self, stage: str, betas: list[float] | None = None) -> None:
        self._last_eval_step = self.global_step
        betas = self.hparams.eval_betas if betas is None else betas
        start = time.perf_counter()
        metrics, exact = evaluate(self.sampler, betas, self.hparams.eval_samples, stage)
        self.eval_seconds += time.perf_counter() - start
        for name, value in metrics.items():
            # every rank evaluates the same weights with the same draws: the reduction only states that
            self.log(name, value, batch_size=1, sync_dist=True)
        for ev in exact:
            log_heatmap(self.logger, self.task, stage, ev, self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # named again when a checkpoint's components are missing: `lgfn sample` never imports code by itself
        checkpoint["lgfn_plugins"] = plugins.loaded()
        checkpoint["lgfn_format"] = FORMAT
        if self.sampler.trained_beta is not None:
            checkpoint["lgfn_trained_beta"] = list(self.sampler.trained_beta)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trained = checkpoint.get("lgfn_trained_beta")
        if trained is None:  # written before lgfn 0.2: the conditioner's range is the training range
            key = "policy.conditioner.beta_range"
            saved = checkpoint.get("state_dict", {}).get(key)
            trained = saved.tolist() if saved is not None and bool(torch.isfinite(saved).all()) else None
        self.sampler.trained_beta = (float(trained[0]), float(trained[1])) if trained is not None else None

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: str | Path, map_location: Any = None,  # type: ignore[override]
                             **overrides: Any) -> "GFlowNet":
        """A trained model from a checkpoint, read as data: only registered components are built from it
        (see :mod:`lgfn.checkpoints`). ``overrides`` replace saved settings (e.g. ``eval_samples``)."""
        return load_model(cls, checkpoint_path, map_location, **overrides)


GFlowNet.__init__.__signature__ = settings.signature()  # type: ignore[attr-defined]
GFlowNet.__doc__ = (GFlowNet.__doc__ or "").replace("{args}", settings.docstring().replace("\n", "\n    "))
