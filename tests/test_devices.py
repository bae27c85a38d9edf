"""GPU-ready hot path: every tensor that sampling, the flow terms and the losses create is made on the model's
device (the CPU cannot show a misplaced tensor by running, so every tensor factory call on that path is checked
for an explicit device, or for deriving its device from another tensor)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

import lgfn
from lgfn.gflownet import GFlowNet

HOT_PATH = ("envs", "models", "losses", "sampling", "gflownet.py")  # not oracles: they score on the CPU by design
FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.tensor, torch.as_tensor,
             torch.rand, torch.randn, torch.randint, torch.linspace, torch.eye}
PACKAGE = Path(lgfn.__file__).resolve().parent


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


@pytest.mark.parametrize("task,conditioner,loss", [
    ({"name": "gridworld", "ndim": 2, "height": 4}, "logit_layer", "tb"),
    ({"name": "gridworld", "ndim": 2, "height": 4}, "thermometer", "subtb"),
    ("tfbind8", "logit", "db"),
])
def test_the_training_step_creates_tensors_on_the_models_device(task, conditioner, loss):
    model = GFlowNet(task=task, conditioner=conditioner, loss=loss, hidden_dim=16)
    model.sampler.set_training_range(1.0, 3.0)
    g = torch.Generator().manual_seed(0)
    online = model.sampler.forward(torch.full((16,), 2.0), 0.1, g)
    with FactoryDevices() as check:
        traj = model.sampler.forward(torch.full((16,), 2.0), 0.1, g)
        model.loss_fn(model.flow_terms(traj)).backward()
        replayed = model.sampler.backward(online.x, torch.full((16,), 1.5), g)
        replayed.log_reward, replayed.raw_reward = online.log_reward, online.raw_reward
        model.loss_fn(model.flow_terms(replayed)).backward()
    assert not check.sites, f"tensors created without a device at {sorted(check.sites)}"
