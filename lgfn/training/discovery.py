"""What a run has discovered so far: modes found, distinct objects, the best rewards and their diversity over
every object rewarded in training (the mode-seeking curves), and the objects the oracle could not score.

A callback, so the model stays networks and losses: it subscribes to the model's sampler and updates its
metrics with each round's scored objects. The metrics are torchmetrics, so under DDP the values logged are
over every rank.
"""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor
from torchmetrics import MetricCollection, SumMetric

from lgfn.metrics.discovery import DistinctObjects, ModesFound, TopKDiversity, TopKReward
from lgfn.sampling.trajectories import Trajectories

TOP_K = 100


class DiscoveryTracker(Callback):
    """Logs ``discovery/*``, ``oracle/invalid``, ``oracle/objects_per_s`` (objects scored per second of oracle
    calls) and, with overlap, ``oracle/pending_rounds``: updated with every round's objects, computed on the steps
    whose logs are written."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self.track(pl_module)

    def track(self, module: LightningModule) -> None:
        """Build the metrics for the module's task and hear of every round its sampler draws."""
        task = module.task
        metrics = {"distinct_objects": DistinctObjects(), "top100_reward": TopKReward(k=TOP_K),
                   "top100_diversity": TopKDiversity(k=TOP_K), "objects_sampled": SumMetric(),
                   "invalid": SumMetric()}
        modes = task.modes()
        if modes:
            metrics["modes_found"] = ModesFound(modes)
        if task.molecular:  # SMILES are canonical already, so distinct SMILES = distinct molecules
            from lgfn.metrics.molecular import TopKTanimotoDiversity  # RDKit: imported by molecular tasks only

            metrics["distinct_molecules"] = DistinctObjects()
            metrics["top100_tanimoto_diversity"] = TopKTanimotoDiversity(k=TOP_K)
        self.metrics = MetricCollection(metrics, compute_groups=False).to(module.device)
        self.module = module
        self._pending: list[tuple[Tensor, Tensor, int]] = []
        module.sampler.subscribe(self.observe)

    def observe(self, traj: Trajectories, invalid: int) -> None:
        """Hold a round's rewarded objects where they are: the metrics work on their strings, on the host, so
        they are updated when they are computed (:meth:`values`, on logging steps), not in every round."""
        self._pending.append((traj.x, traj.raw_reward, invalid))

    def _update(self) -> None:
        """Update the metrics with the rounds held since the last update."""
        pending, self._pending = self._pending, []
        for x, raw, invalid in pending:
            self._update_round(x, raw, invalid)

    def _update_round(self, x: Tensor, raw: Tensor, invalid: int) -> None:
        m, task = self.metrics, self.module.task
        m["invalid"].update(float(invalid))
        m["objects_sampled"].update(float(len(x)))
        if len(x):
            strings = task.to_strings(x)
            raw = raw.cpu()
            m["distinct_objects"].update(strings)
            m["top100_reward"].update(strings, raw)
            m["top100_diversity"].update(strings, raw)
            if "modes_found" in m:
                m["modes_found"].update(strings)
            if "distinct_molecules" in m:
                smiles = task.smiles(x)
                m["distinct_molecules"].update(smiles)
                m["top100_tanimoto_diversity"].update(smiles, raw, smiles)  # top-k distinct molecules

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        self._steps_before = trainer.global_step  # the batch's own optimizer step is counted by its end

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        """Computed (and reduced across ranks) only on the steps whose logs Lightning writes."""
        if logging_step(trainer, self._steps_before):
            pl_module.log_dict(self.values(), batch_size=1)
            calls = getattr(pl_module.task, "oracle_calls", None)
            if calls is not None and calls.seconds > 0:  # this rank's throughput, on the progress bar too
                pl_module.log("oracle/objects_per_s", calls.scored / calls.seconds, prog_bar=True, batch_size=1)
            if getattr(trainer.datamodule, "max_pending_rounds", 0):
                pl_module.log("oracle/pending_rounds", float(trainer.datamodule.pending_rounds), prog_bar=True,
                              batch_size=1)

    def values(self) -> dict[str, Tensor]:
        """What has been found so far, by logged name."""
        self._update()
        return {"oracle/invalid" if name == "invalid" else f"discovery/{name}": metric.compute().float()
                for name, metric in self.metrics.items() if metric.update_called}


def logging_step(trainer: Trainer, steps_before: int | None = None) -> bool:
    """Whether Lightning writes this training batch's logged values (every ``log_every_n_steps``, and when training
    stops): logging only then keeps the step fast and loses nothing, as values logged at other steps are
    not written.

    Lightning's own test, from public attributes: the batch's step number is the optimizer steps taken before
    it, plus one. ``steps_before`` is that count; by default ``trainer.global_step``, which holds it until the
    batch's optimizer step (``training_step``, ``on_before_optimizer_step``), so a hook after it passes the
    count it read in ``on_train_batch_start``.
    """
    if trainer.log_every_n_steps == 0:
        return False
    step = (trainer.global_step if steps_before is None else steps_before) + 1
    return step % trainer.log_every_n_steps == 0 or trainer.should_stop
