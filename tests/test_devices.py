"""GPU-ready hot path: every tensor that sampling, the flow terms and the losses create is made on the model's
device (the CPU cannot show a misplaced tensor by running, so every tensor factory call on that path is checked
for an explicit device, or for deriving its device from another tensor). Where torch sees a CUDA GPU, the same
step runs there, and ``lgfn fit`` and ``lgfn sample`` run on it end to end."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

import lgfn
from lgfn.cli import main
from lgfn.gflownet import GFlowNet
from lgfn.metrics.exact import terminal_distribution

HOT_PATH = ("envs", "models", "losses", "sampling", "gflownet.py")  # not oracles: they score on the CPU by design
FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.tensor, torch.as_tensor,
             torch.rand, torch.randn, torch.randint, torch.linspace, torch.eye}
PACKAGE = Path(lgfn.__file__).resolve().parent
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


class FactoryDevices(TorchFunctionMode):
    """Records each lgfn hot-path line that creates a tensor without saying on which device."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: set[str] = set()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            frame = sys._getframe(1)
            while frame is not None:
                path = Path(frame.f_code.co_filename).resolve()
                if PACKAGE in path.parents:
                    rel = path.relative_to(PACKAGE).as_posix()
                    if rel.startswith(HOT_PATH):
                        self.sites.add(f"{rel}:{frame.f_lineno}")
                    break
                frame = frame.f_back
        return func(*args, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("task,conditioner,loss,ensemble", [
    ({"name": "gridworld", "ndim": 2, "height": 4}, "logit_layer", "tb", 1),
    ({"name": "gridworld", "ndim": 2, "height": 4}, "thermometer", "subtb", 1),
    ("tfbind8", "logit", "db", 1),
    ("tfbind8", "logit", "tb", 2),  # split ensemble: each member's slice drawn with its own P_B
])
def test_the_training_step_creates_tensors_on_the_models_device(task, conditioner, loss, ensemble, device):
    model = GFlowNet(task=task, conditioner=conditioner, loss=loss, hidden_dim=16, ensemble=ensemble,
                     ensemble_data="split").to(device)
    model.sampler.set_training_range(1.0, 3.0)
    g = torch.Generator().manual_seed(0)  # the data modules' CPU generator: the sampler seeds its own from it
    online = model.sampler.explore(torch.full((16,), 2.0), 0.1, g)
    with FactoryDevices() as check:
        traj = model.sampler.forward(torch.full((16,), 2.0, device=device), 0.1, g)
        model.loss_fn(model.flow_terms(traj)).backward()
        replayed = model.sampler.backward(online.x, torch.full((16,), 1.5), g)
        replayed.log_reward, replayed.raw_reward = online.log_reward, online.raw_reward
        model.loss_fn(model.flow_terms(replayed)).backward()
    assert not check.sites, f"tensors created without a device at {sorted(check.sites)}"
    assert {t.device.type for t in (traj.states, replayed.states, replayed.log_reward)} == {device}
    assert all(p.grad is None or p.grad.device.type == device for p in model.parameters())


@CUDA
def test_on_cuda_sampled_objects_follow_the_policys_terminal_distribution():
    """The draws on the GPU (Gumbel noise from a generator there, seeded from the caller's CPU one) are exact."""
    torch.manual_seed(0)
    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 3}, conditioner="logit_layer")
    model.sampler.set_training_range(1.0, 3.0)
    for p in model.policy.forward_net.parameters():  # far from uniform, so that a wrong draw shows
        p.data.mul_(2.0)
    with torch.no_grad():
        exact = terminal_distribution(model.task, model.policy, 2.0).double()
    model.to("cuda")
    g = torch.Generator().manual_seed(3)
    x = model.sampler.objects(40_000, 2.0, g).x
    assert x.device.type == "cuda"
    freq = torch.bincount(model.task.env.state_index(x.cpu()), minlength=len(exact)).double() / len(x)
    assert (freq - exact).abs().max() < 0.01
    again = model.sampler.objects(40_000, 2.0, torch.Generator().manual_seed(3)).x
    assert torch.equal(x, again)  # seeded by the CPU generator


@CUDA
@pytest.mark.parametrize("config", ["gridworld", "tfbind8"])
def test_fit_and_sample_on_cuda(config, tmp_path, monkeypatch):
    """`lgfn fit --trainer.accelerator gpu` (online replay; TFBind8: objects replayed backwards with P_B) and
    `lgfn sample --device cuda` from its checkpoint."""
    monkeypatch.chdir(tmp_path)
    root = Path(__file__).resolve().parent.parent
    assert main(["fit", "--config", str(root / "configs" / f"{config}.yaml"), "--trainer.accelerator", "gpu",
                 "--trainer.devices", "1", "--data.init_args.rounds", "30", "--trainer.logger", "false",
                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]) == 0
    ckpt = sorted(tmp_path.rglob("*.ckpt"))[-1]
    out = tmp_path / "samples.csv"
    assert main(["sample", "--ckpt", str(ckpt), "--beta", "2", "--n", "300", "--out", str(out),
                 "--device", "cuda"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 300 and all(float(r["reward"]) > 0 for r in rows)
