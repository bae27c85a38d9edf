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
    """Logs ``discovery/*`` and ``oracle/invalid``: updated with every round's objects, computed on the steps
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
        module.sampler.subscribe(self.observe)

    def observe(self, traj: Trajectories, invalid: int) -> None:
        """Record a round's newly rewarded objects and log what has been found."""
        m, task = self.metrics, self.module.task
        m["invalid"].update(float(invalid))
        m["objects_sampled"].update(float(len(traj)))
        if len(traj):
            strings = task.to_strings(traj.x)
            raw = traj.raw_reward.cpu()
            m["distinct_objects"].update(strings)
            m["top100_reward"].update(strings, raw)
            m["top100_diversity"].update(strings, raw)
            if "modes_found" in m:
                m["modes_found"].update(strings)
            if "distinct_molecules" in m:
                smiles = task.smiles(traj.x)
                m["distinct_molecules"].update(smiles)
                m["top100_tanimoto_diversity"].update(smiles, raw, smiles)  # top-k distinct molecules

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        """Computed (and reduced across ranks) only on the steps whose logs Lightning writes."""
        if logging_step(trainer):
            pl_module.log_dict(self.values(), batch_size=1)

    def values(self) -> dict[str, Tensor]:
        """What has been found so far, by logged name."""
        return {"oracle/invalid" if name == "invalid" else f"discovery/{name}": metric.compute().float()
                for name, metric in self.metrics.items() if metric.update_called}


def logging_step(trainer: Trainer) -> bool:
    """Whether Lightning writes this step's logged values (every ``log_every_n_steps``): logging only then keeps
    the step fast and loses nothing, as values logged at other steps are not written."""
    return trainer._logger_connector.should_update_logs
