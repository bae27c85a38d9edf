"""What validation and ``lgfn test`` report, for any task, at every evaluation β."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from lgfn.metrics.discovery import TopKDiversity, TopKReward
from lgfn.metrics.exact import ExactEvaluation, evaluate_exact
from lgfn.sampling.sampler import Sampler

EXACT_MAX_OBJECTS = 300_000
TOP_K = 100


def evaluate(sampler: Sampler, betas: Sequence[float], n: int, stage: str
             ) -> tuple[dict[str, float], list[ExactEvaluation]]:
    """Sampled reward and diversity of n objects at each β (molecule metrics for molecular tasks) and, for
    enumerable tasks, the exact L1 and log Z error (the exact evaluations are returned too, for plots)."""
    task = sampler.task
    out: dict[str, float] = {}
    exact: list[ExactEvaluation] = []
    for beta in betas:
        generator = torch.Generator().manual_seed(0)  # the same draws at every call and every β
        traj = sampler.objects(n, beta, generator, warn=False)
        out[f"{stage}/mean_reward@{beta:g}"] = float(traj.raw_reward.mean())
        out[f"{stage}/mean_log_reward@{beta:g}"] = float(traj.log_reward.mean())
        strings = task.to_strings(traj.x)
        top, diversity = TopKReward(k=TOP_K), TopKDiversity(k=TOP_K)
        for metric in (top, diversity):
            metric.update(strings, traj.raw_reward.cpu())
        out[f"{stage}/top{TOP_K}_reward@{beta:g}"] = float(top.compute())
        out[f"{stage}/top{TOP_K}_diversity@{beta:g}"] = float(diversity.compute())
        out[f"{stage}/distinct@{beta:g}"] = float(len(set(strings)))  # a flat top-100 from 3 objects is no spread
        if task.molecular:
            from lgfn.metrics.molecular import TopKTanimotoDiversity  # RDKit: imported by molecular tasks only

            smiles = task.smiles(traj.x)
            tanimoto = TopKTanimotoDiversity(k=TOP_K)
            tanimoto.update(smiles, traj.raw_reward.cpu(), smiles)  # top-k distinct molecules
            out[f"{stage}/top{TOP_K}_tanimoto_diversity@{beta:g}"] = float(tanimoto.compute())
            out[f"{stage}/distinct_molecules@{beta:g}"] = float(len(set(smiles)))
        if task.enumerable and task.env.n_states <= EXACT_MAX_OBJECTS:
            ev = evaluate_exact(task, sampler.policy, beta)
            out[f"{stage}/l1@{beta:g}"] = ev.l1
            out[f"{stage}/log_z_error@{beta:g}"] = ev.log_z_error
            exact.append(ev)
    return out, exact


def log_heatmap(logger: Any, task: Any, stage: str, ev: ExactEvaluation, step: int) -> None:
    """Learned vs target p(x|β) as a TensorBoard image, for 2-D grids."""
    if getattr(task.env, "ndim", None) != 2 or logger is None or not hasattr(logger.experiment, "add_figure"):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = grid_heatmaps(task, {"learned": ev.learned, "target": ev.target}, title=f"β = {ev.beta:g}, L1 = {ev.l1:.3f}")
    logger.experiment.add_figure(f"{stage}/p_x@{ev.beta:g}", fig, global_step=step)
    plt.close(fig)


def grid_image(task, p: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    """A distribution over a 2-D grid's objects (``terminal_objects`` order) as an H×H image."""
    _, objects = task.terminal_objects()
    h = task.env.height
    img = torch.zeros(h, h, dtype=torch.float64)
    img[objects[:, 0], objects[:, 1]] = p.double()
    return img


def grid_heatmaps(task, panels: dict[str, torch.Tensor], title: str = ""):  # noqa: ANN001, ANN201
    """A row of H×H heatmaps of distributions over a 2-D grid's objects."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    vmax = max(float(p.max()) for p in panels.values())
    for ax, (name, p) in zip(axes[0], panels.items()):
        ax.imshow(grid_image(task, p).numpy(), cmap="viridis", vmin=0, vmax=vmax, origin="lower")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig
