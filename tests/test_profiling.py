"""A training step reads nothing back to the host outside Lightning's logging steps (the path a user takes:
``lgfn fit``), counted with :mod:`lgfn.profiling`."""

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from lgfn.cli.main import main
from lgfn.gflownet import GFlowNet
from lgfn.profiling import ReadbackCounter, count_readbacks

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lgfn"


class QuietStepCounter(ReadbackCounter):
    """Read-backs during training batches whose logs Lightning does not write, by the lgfn function they
    come from."""

    def __init__(self) -> None:
        super().__init__()
        self.quiet = False
        self.sites: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        before = self.total
        out = super().__torch_function__(func, types, args, kwargs)
        if self.quiet and self.total > before:
            frame = sys._getframe(1)
            while frame is not None and PACKAGE not in Path(frame.f_code.co_filename).resolve().parents:
                frame = frame.f_back
            self.sites[frame.f_code.co_name if frame is not None else "outside lgfn"] += 1
        return out


def quiet_readbacks(monkeypatch, tmp_path, config: str, *args: str) -> Counter[str]:
    counter = QuietStepCounter()
    epoch_end = GFlowNet.on_train_epoch_end

    def batch_start(self, batch, batch_idx):
        counter.quiet = (self.global_step + 1) % self.trainer.log_every_n_steps != 0

    def batch_end(self, *args):
        counter.quiet = False

    def train_epoch_end(self):
        counter.quiet = False  # the stream ended inside the last batch: evaluation follows
        epoch_end(self)

    monkeypatch.setattr(GFlowNet, "on_train_batch_start", batch_start, raising=False)
    monkeypatch.setattr(GFlowNet, "on_train_batch_end", batch_end, raising=False)
    monkeypatch.setattr(GFlowNet, "on_train_epoch_end", train_epoch_end)
    with counter:
        code = main(["fit", "--config", str(ROOT / "configs" / config), "--trainer.default_root_dir", str(tmp_path),
                     "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                     "--trainer.log_every_n_steps", "10", "--model.eval_samples", "16",
                     "--data.init_args.rounds", "12", *args])
    assert code == 0
    return counter.sites


@pytest.mark.parametrize("config", ["tfbind8.yaml", "qm9.yaml"])
def test_a_table_task_reads_nothing_back_between_logging_steps(monkeypatch, tmp_path, config):
    """TFBind8 and QM9 (fixed-length MDPs, table oracles): rollouts, on-device scoring, replay, loss, backward,
    clipping and Adam, 24 steps."""
    sites = quiet_readbacks(monkeypatch, tmp_path, config, "--model.eval_betas", "[1.0]")
    assert sites == {"__len__": 1}  # the buffer's size is asked once, until it first has enough to draw from


def test_a_grid_reads_back_only_where_its_trajectories_end(monkeypatch, tmp_path):
    """Grid trajectories differ in length: a rollout asks "all finished?" every few steps instead of running
    to the horizon, and the loss finds the batch's transitions instead of running the networks on its padding;
    nothing else reads back."""
    sites = quiet_readbacks(monkeypatch, tmp_path, "gridworld.yaml", "--model.task",
                            "{name: gridworld, ndim: 2, height: 4}")
    assert set(sites) <= {"roll_forward", "sample_backward", "transition_rows", "__len__"}, sites
    assert sites["roll_forward"] > 0 and sites["sample_backward"] > 0 and sites["__len__"] <= 2
    assert 0 < sites["transition_rows"] <= 22  # at most once a step, in the 22 steps that do not log


def test_the_counter_sees_each_kind_of_readback():
    t = torch.tensor([1.0, -1.0])
    with count_readbacks() as counter:
        bool(t[0] > 0), t.sum().item(), t.nonzero(), t[t > 0], t.unique(), t.tolist(), int(t[0]), t.cpu()
    assert counter.counts == {"bool": 1, "item": 1, "nonzero": 1, "mask": 1, "unique": 1, "tolist": 1, "int": 1,
                              "cpu": 1}
