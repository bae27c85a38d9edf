"""Tables (``report.md``), plots (``*.png``) and ``results.csv`` from an experiment's cells.

One builder per experiment kind reads each cell's ``result.json`` and ``metrics.csv``; every
number in a report comes from those files, so a report can be rebuilt at any time, also from
a partly finished experiment (missing cells are listed, not guessed).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from lgfn.errors import ConfigError
from lgfn.experiments.runner import cell_dir, load_result, read_metrics
from lgfn.experiments.spec import Cell, Experiment

Series = list[tuple[int, float]]


# -- small helpers --------------------------------------------------------------------------------
def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± sd`` over seeds (just the mean for one seed, ``—`` for none)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "—"
    mean = statistics.fmean(vals)
    if 1e3 <= abs(mean) < 1e7:  # counts: 26,010 ± 440 rather than 2.601e+04 ± 4.4e+02
        text = f"{mean:,.0f}"
        return text if len(vals) == 1 else f"{text} ± {statistics.stdev(vals):,.0f}"
    if len(vals) == 1:
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {statistics.stdev(vals):.2g}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def beta_label(beta: float) -> str:
    return f"{beta:g}"


def moving_average(values: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve_band(ax, runs: list[Series], label: str, smooth: int = 1, log: bool = False) -> None:  # noqa: ANN001
    """Mean over seeds of step-aligned series, with a min–max band when there are several."""
    runs = [r for r in runs if r]
    if not runs:
        return
    n = min(len(r) for r in runs)
    steps = [p[0] for p in runs[0][:n]]
    ys = [moving_average([p[1] for p in r[:n]], smooth) for r in runs]
    if log:
        ys = [[max(v, 1e-12) for v in y] for y in ys]
    mean = [statistics.fmean(col) for col in zip(*ys)]
    style = ("-", "--", ":", "-.")[len(ax.lines) // 10 % 4]  # past the 10 colours of the cycle, a new line style
    (line,) = ax.plot(steps, mean, label=label, lw=1.3, ls=style)
    if len(ys) > 1:
        ax.fill_between(steps, [min(c) for c in zip(*ys)], [max(c) for c in zip(*ys)], color=line.get_color(), alpha=0.2)
    if log:
        ax.set_yscale("log")


class Collected:
    """Results and metric series of an experiment's cells, grouped for the builders."""

    def __init__(self, exp: Experiment, out: Path) -> None:
        self.exp, self.out = exp, out
        self.results: dict[str, dict[str, Any]] = {}
        self.missing: list[str] = []
        for cell in exp.cells:
            result = load_result(out, cell)
            if result is None:
                self.missing.append(cell.id)
            else:
                self.results[cell.id] = result
        self._series: dict[str, dict[str, Series]] = {}

    def ordered(self, attr: str) -> list[str]:
        return list(dict.fromkeys(getattr(c, attr) for c in self.exp.cells))

    def cells(self, **where: Any) -> list[Cell]:
        """Finished cells matching e.g. ``task="qm9", method="logit"``."""
        return [c for c in self.exp.cells if c.id in self.results and all(getattr(c, k) == v for k, v in where.items())]

    def final(self, cell: Cell, key: str) -> float | None:
        value = self.results[cell.id]["final"].get(key)
        return None if value is None else float(value)

    def series(self, cell: Cell, key: str) -> Series:
        if cell.id not in self._series:
            self._series[cell.id] = read_metrics(cell_dir(self.out, cell) / "metrics.csv")
        return self._series[cell.id].get(key, [])

    def betas(self, cell: Cell, prefix: str = "val/mean_reward@") -> list[float]:
        """The β values a cell was evaluated at, ascending."""
        found = {float(k[len(prefix):]) for k in self.results[cell.id]["final"] if k.startswith(prefix)}
        return sorted(found)

    def write_results_csv(self) -> Path:
        """One row per finished cell: its identity, status, wall time and every final metric."""
        keys = sorted({k for r in self.results.values() for k in r["final"]})
        path = self.out / "results.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["cell", "task", "method", "setting", "seed", "status", "wall_s", *keys])
            for r in self.results.values():
                writer.writerow([r["cell"], r["task"], r["method"], r["setting"], r["seed"], r["status"], r["wall_s"],
                                 *(r["final"].get(k, "") for k in keys)])
        return path

    def header(self) -> list[str]:
        walls = [r["wall_s"] for r in self.results.values()]
        failed = [r["cell"] for r in self.results.values() if r["status"] != "ok"]
        lines = [f"# {self.exp.title}", "",
                 f"Experiment `{self.exp.name}`, profile `{self.exp.profile}`, {self.exp.seeds} seed(s): "
                 f"{len(self.results)}/{len(self.exp.cells)} cells finished, "
                 f"{sum(walls) / 60:.1f} min of cell time (sum over cells; wall time is less with parallel processes).",
                 "Rerun a cell by hand: `lgfn fit --config cells/<cell>/config.yaml` in the experiment's folder; "
                 "`results.csv` has every cell's final metrics.", ""]
        if failed:
            lines += [f"Failed cells ({len(failed)}): " + ", ".join(f"`{c}`" for c in failed), ""]
        if self.missing:
            lines += [f"Not run yet ({len(self.missing)}): " + ", ".join(f"`{c}`" for c in self.missing[:20])
                      + (" …" if len(self.missing) > 20 else ""), ""]
        return lines


# -- builders -------------------------------------------------------------------------------------
def _stability(col: Collected, plt) -> list[str]:  # noqa: ANN001
    """Loss and L1 curves per method and β range; divergences and gradient-norm spikes."""
    spike_factor = float(col.exp.options.get("spike_factor", 10.0))
    blowup = float(col.exp.options.get("diverged_loss_factor", 10.0))
    lines = [f"A run **diverged** if it failed, its loss or gradient norm became non-finite, or its loss over the last "
             f"10% of steps exceeds {blowup:g}× its lowest 10%-window mean. A **spike** is a step whose gradient norm "
             f"(before clipping) exceeds {spike_factor:g}× the run's median. L1 is the exact total-variation×2 "
             "distance between p_θ(x|β) and R(x)^β/Z(β), averaged over the evaluated β.", ""]
    for task in col.ordered("task"):
        settings = [s for s in col.ordered("setting") if col.cells(task=task, setting=s)]
        if not settings:
            continue
        rows = []
        fig, axes = plt.subplots(2, len(settings), figsize=(4.2 * len(settings), 6.4), squeeze=False)
        for j, setting in enumerate(settings):
            for method in col.ordered("method"):
                cells = col.cells(task=task, setting=setting, method=method)
                if not cells:
                    continue
                diverged, spikes, max_grad, l1s, losses = 0, [], [], [], []
                loss_runs, l1_runs = [], []
                for c in cells:
                    loss, grad = col.series(c, "train/loss"), col.series(c, "train/grad_norm")
                    l1 = _mean_l1_series(col, c)
                    loss_runs.append(loss)
                    l1_runs.append(l1)
                    values = [v for _, v in loss] + [v for _, v in grad]
                    finite = [v for _, v in loss if math.isfinite(v)]
                    window = max(1, len(finite) // 10)
                    smoothed = moving_average(finite, window)[window - 1:] if finite else []
                    blew_up = bool(smoothed) and smoothed[-1] > blowup * max(min(smoothed), 1e-12)
                    if col.results[c.id]["status"] != "ok" or not all(math.isfinite(v) for v in values) or blew_up:
                        diverged += 1
                    norms = [v for _, v in grad if math.isfinite(v)]
                    if norms:
                        median = statistics.median(norms)
                        spikes.append(sum(v > spike_factor * median for v in norms))
                        max_grad.append(max(norms))
                    if l1:
                        l1s.append(l1[-1][1])
                    if finite:
                        losses.append(statistics.fmean(finite[-window:]))
                rows.append([setting, method, mean_sd(l1s), mean_sd(losses), f"{diverged}/{len(cells)}",
                             mean_sd(spikes), mean_sd(max_grad)])
                _curve_band(axes[0][j], loss_runs, method, smooth=50, log=True)
                _curve_band(axes[1][j], l1_runs, method)
            axes[0][j].set_title(f"{task}, β ~ {setting}")
            axes[0][j].set_ylabel("TB loss (moving average)")
            axes[1][j].set_ylabel("exact L1 (mean over β)")
            axes[1][j].set_xlabel("training step")
            axes[0][j].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(col.out / f"stability_{task}.png", dpi=110)
        plt.close(fig)
        lines += [f"## {task}", "", markdown_table(
            ["β range", "method", "final L1", "final loss", "diverged", "grad spikes", "max grad norm"], rows), "",
            f"![loss and L1 against steps on {task}](stability_{task}.png)", ""]
    return lines


def _mean_l1_series(col: Collected, cell: Cell) -> Series:
    """L1 averaged over the evaluated β, at each evaluation step."""
    per_beta = [col.series(cell, f"val/l1@{beta_label(b)}") for b in col.betas(cell, "val/l1@")]
    if not per_beta or not all(per_beta):
        return []
    n = min(len(s) for s in per_beta)
    return [(per_beta[0][i][0], statistics.fmean(s[i][1] for s in per_beta)) for i in range(n)]


def _offline(col: Collected, plt) -> list[str]:  # noqa: ANN001
    """Mean and top-100 raw reward (and exact L1) per query β and method."""
    lines = ["Each conditional model is trained once on the offline set with β ~ U[10, 50] and queried at every β; "
             "an unconditional model is trained at one fixed β and can be queried only there (its column). "
             "Values are mean ± sd over seeds of the raw reward of fresh samples. The distinct-sample count tells "
             "the two readings of a high-β column apart: a faithful sampler of R^β concentrates on a few objects "
             "(the mean is the measure there), while thousands of distinct samples at β = 1000 mean the policy "
             "has stopped following R^β (e.g. uniform over logits saturated at the clamp).", ""]
    for task in col.ordered("task"):
        cells = col.cells(task=task)
        if not cells:
            continue
        betas = sorted({b for c in cells for b in col.betas(c)})
        methods = [m for m in col.ordered("method") if col.cells(task=task, method=m)]
        fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
        lines += [f"## {task}", ""]
        for metric, title, axis in (("mean_reward", "mean reward", ax[0]),
                                    ("top100_reward", "top-100 reward over distinct samples", ax[1]),
                                    ("distinct", "distinct samples", ax[2]), ("l1", "exact L1", None)):
            if not any(col.final(c, f"val/{metric}@{beta_label(b)}") is not None for c in cells for b in betas):
                continue
            rows = []
            for method in methods:
                row = [method]
                xs, ys = [], []
                for b in betas:
                    vals = [col.final(c, f"val/{metric}@{beta_label(b)}") for c in col.cells(task=task, method=method)]
                    vals = [v for v in vals if v is not None]
                    row.append(mean_sd(vals))
                    if vals:
                        xs.append(b)
                        ys.append(statistics.fmean(vals))
                rows.append(row)
                if axis is not None and xs:
                    axis.plot(xs, ys, marker="o", ms=4, label=method, lw=1.3 if len(xs) > 1 else 0)
            lines += [f"**{title}**", "", markdown_table(["method", *(f"β={beta_label(b)}" for b in betas)], rows), ""]
            if axis is not None:
                axis.set_xscale("log")
                if metric == "distinct":
                    axis.set_yscale("log")
                axis.set_xlabel("query β")
                axis.set_title(f"{task}: {title}")
        ax[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(col.out / f"offline_{task}.png", dpi=110)
        plt.close(fig)
        lines += [f"![reward against query β on {task}](offline_{task}.png)", ""]
    return lines


OFFICIAL_BUDGET = 16_000
"""Objects the official Logit-GFN code samples in its mode-seeking runs (500 rounds of 32): reported separately."""


def _value_at(series: Series, sampled: Series, budget: int) -> float | None:
    """The series' value at the first logged step by which ``budget`` objects were sampled (None: never)."""
    objects = dict(sampled)
    for step, value in series:
        if objects.get(step, 0) >= budget:
            return value
    return None


def _modes(col: Collected, plt) -> list[str]:  # noqa: ANN001
    """Discovery curves against objects sampled; final modes, top-100 reward and diversity."""
    curves = [("discovery/modes_found", "modes found"), ("discovery/top100_reward", "top-100 reward (all found)"),
              ("discovery/top100_diversity", "top-100 diversity (string distance)"),
              ("discovery/top100_tanimoto_diversity", "top-100 Tanimoto diversity")]
    lines = ["Algorithm 1 online; every object the run has rewarded counts. Values after the last round, "
             "mean ± sd over seeds; curves show the mean with a min–max band.", ""]
    for task in col.ordered("task"):
        cells = col.cells(task=task)
        if not cells:
            continue
        present = [(k, t) for k, t in curves if any(col.series(c, k) for c in cells)]
        rows = []
        fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6), squeeze=False)
        for method in col.ordered("method"):
            mcells = col.cells(task=task, method=method)
            if not mcells:
                continue
            row = [method]
            for j, (key, _) in enumerate(present):
                runs = [col.series(c, key) for c in mcells]
                sampled = [dict(col.series(c, "discovery/objects_sampled")) for c in mcells]
                aligned = [[(int(s.get(step, step)), v) for step, v in run] for run, s in zip(runs, sampled)]
                _curve_band(axes[0][j], aligned, method)
                row.append(mean_sd([run[-1][1] for run in runs if run]))
            row.append(mean_sd([col.final(c, "discovery/distinct_objects") or float("nan") for c in mcells]))
            at_budget = [_value_at(col.series(c, "discovery/modes_found"), col.series(c, "discovery/objects_sampled"),
                                   OFFICIAL_BUDGET) for c in mcells]
            row.append(mean_sd([v for v in at_budget if v is not None]))
            rows.append(row)
        for j, (_, title) in enumerate(present):
            axes[0][j].set_title(f"{task}: {title}", fontsize=9)
            axes[0][j].set_xlabel("objects sampled")
            axes[0][j].xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k" if x else "0")  # 150k, not 150000
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(col.out / f"modes_{task}.png", dpi=110)
        plt.close(fig)
        budget = f"modes at {OFFICIAL_BUDGET // 1000}k objects"
        lines += [f"## {task}", "", markdown_table(["method", *(t for _, t in present), "distinct objects", budget],
                                                   rows), "",
                  f"![discovery curves on {task}](modes_{task}.png)", ""]
    return lines


def _grid(col: Collected, plt) -> list[str]:  # noqa: ANN001
    """Heatmaps of the learned p(x|β) next to the target, and the exact L1, per method and β."""
    import torch

    from lgfn.gflownet import GFlowNet
    from lgfn.metrics.exact import target_distribution, terminal_distribution

    betas = [float(b) for b in col.exp.options.get("betas", [1, 2, 3, 4, 5])]
    conditional = [m for m in col.ordered("method") if not m.startswith("unconditional")]
    rows_of_maps: dict[str, dict[float, Any]] = defaultdict(dict)
    l1_rows = []
    task = None
    for method in conditional + ["unconditional"]:
        row = [method]
        for b in betas:
            name = method if method != "unconditional" else f"unconditional_b{beta_label(b)}"
            cells = col.cells(method=name)
            vals = [col.final(c, f"val/l1@{beta_label(b)}") for c in cells]
            row.append(mean_sd([v for v in vals if v is not None]))
            ckpts = sorted(cell_dir(col.out, cells[0]).rglob("*.ckpt")) if cells else []
            if ckpts:
                model = GFlowNet.load_from_checkpoint(ckpts[-1], map_location="cpu").eval()
                task = model.task
                with torch.no_grad():
                    rows_of_maps[method][b] = terminal_distribution(model.task, model.policy, b)
        if len(row) > 1 and any(v != "—" for v in row[1:]):
            l1_rows.append(row)
    lines = ["Exact L1 between the learned p(x|β) and R(x)^β/Z(β) (seed 0 in the heatmaps; mean ± sd over seeds "
             "in the table). Conditional models are trained on the config's β range; the unconditional row is "
             "one model per β.", "", markdown_table(["method", *(f"β={beta_label(b)}" for b in betas)], l1_rows), ""]
    if task is None:
        return lines
    from lgfn.metrics.evaluation import grid_image

    panels: dict[str, Any] = {}
    for b in betas:
        panels[f"target β={beta_label(b)}"] = target_distribution(task, b)[0]
        for method, maps in rows_of_maps.items():
            if b in maps:
                panels[f"{method} β={beta_label(b)}"] = maps[b]
    methods = ["target", *rows_of_maps]
    fig, axes = plt.subplots(len(methods), len(betas), figsize=(2.2 * len(betas), 2.2 * len(methods)), squeeze=False)
    for j, b in enumerate(betas):
        vmax = max(float(p.max()) for k, p in panels.items() if k.endswith(f" β={beta_label(b)}"))
        for i, m in enumerate(methods):
            ax = axes[i][j]
            p = panels.get(f"{m} β={beta_label(b)}")
            ax.set_xticks([])
            ax.set_yticks([])
            if p is not None:  # one colour scale per β column, so rows compare directly
                ax.imshow(grid_image(task, p).numpy(), cmap="viridis", origin="lower", vmin=0.0, vmax=vmax)
            if i == 0:
                ax.set_title(f"β = {beta_label(b)}")
            if j == 0:
                ax.set_ylabel(m)
    fig.tight_layout()
    fig.savefig(col.out / "grid_heatmaps.png", dpi=110)
    plt.close(fig)
    return lines + ["![learned vs target p(x|β) on the grid world](grid_heatmaps.png)", ""]


BUILDERS: dict[str, Callable[[Collected, Any], list[str]]] = {
    "stability": _stability, "offline": _offline, "modes": _modes, "grid": _grid,
}


def write_report(exp: Experiment, out: Path) -> Path:
    """Write ``report.md``, the plots and ``results.csv`` for whatever cells have finished."""
    if exp.report not in BUILDERS:
        raise ConfigError(f"unknown report kind {exp.report!r}; use one of {', '.join(BUILDERS)}")
    col = Collected(exp, out)
    col.write_results_csv()
    lines = col.header()
    if col.results:
        lines += BUILDERS[exp.report](col, _plt())
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
