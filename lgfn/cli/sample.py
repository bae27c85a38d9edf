"""``lgfn sample``: objects at any β from a checkpoint (or a run folder's last checkpoint)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from lgfn.errors import CheckpointError, ConfigError
from lgfn.io import write_csv
from lgfn.gflownet import GFlowNet
from lgfn.settings import positive


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's newest checkpoint (highest step; a final or interrupted one
    wins over a periodic one of the same step)."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = sorted(path.rglob("*.ckpt"), key=lambda p: (_step(p), p.stat().st_mtime))
    if not found:
        raise CheckpointError(f"run folder {path} holds no .ckpt file; give a checkpoint or a folder that "
                              "`lgfn fit` wrote (e.g. lightning_logs/version_0)")
    return found[-1]


def _step(path: Path) -> int:
    match = re.search(r"step=(\d+)", path.name)
    return int(match.group(1)) if match else -1


def load_checkpoint(path: str | Path) -> GFlowNet:
    """A trained model from a checkpoint, read as data (see :mod:`lgfn.checkpoints`)."""
    model = GFlowNet.load_from_checkpoint(find_checkpoint(path), map_location="cpu")
    model.eval()
    return model


def check_output(out: str | Path) -> Path:
    """``--out`` is a file path whose folder can be written, checked before any work."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file path such as {out / 'samples.csv'}")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot create the folder {parent} ({err.strerror or err})") from None
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {out}: the folder {parent} is not writable; choose another path")
    return out


def sampling_device(name: str) -> torch.device:
    """``--device``: a torch device this machine has, checked before any work."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device; give cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: this machine has no CUDA GPU that torch can use; give --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: lgfn samples on cpu or cuda")
    return device


def sample_to_file(ckpt: str | Path, beta: float, n: int, out: str | Path, seed: int = 0,
                   batch: int = 4096, device: str = "cpu") -> tuple[Path, int]:
    """Sample n objects at β and write them to ``out`` (CSV, or SDF with 2-D coordinates for molecules);
    returns (the checkpoint used, n).

    Objects the oracle cannot score are kept, with reward and log_reward ``nan``: they are the model's samples.
    """
    if not positive(beta):  # checked before the checkpoint is read
        raise ConfigError(f"--beta = {beta}: must be a positive finite number")
    if n < 1:
        raise ConfigError(f"--n = {n}: must be an integer >= 1")
    out = check_output(out)
    on = sampling_device(device)
    path = find_checkpoint(ckpt)
    model = load_checkpoint(path).to(on)
    model.sampler.check_beta(beta)
    sdf = out.suffix.lower() == ".sdf"
    if sdf and not model.task.molecular:
        raise ConfigError(f"--out {out}: SDF needs a molecular task (qm9, seh, blocks), this model's task is "
                          f"{model.task.name}; write a .csv")
    generator = torch.Generator().manual_seed(seed)
    xs, raws, logs = [], [], []
    for start in range(0, n, batch):
        traj = model.sampler.objects(min(batch, n - start), beta, generator, drop_invalid=False, warn=False)
        xs.append(traj.x)
        raws.append(traj.raw_reward)
        logs.append(traj.log_reward)
    x, raw, log_r = torch.cat(xs).cpu(), torch.cat(raws).cpu(), torch.cat(logs).cpu()
    columns = {
        "x": model.task.to_strings(x),
        "reward": [f"{v:.10g}" for v in raw.tolist()],
        "log_reward": [f"{v:.8g}" for v in log_r.tolist()],
        "beta": [f"{beta:g}"] * len(x),
        **model.task.extra_columns(x),
    }
    if sdf:
        from lgfn.chem import write_sdf

        props = {"reward": raw.tolist(), "log_reward": log_r.tolist(), "beta": [beta] * len(x)}
        write_sdf(out, columns["x"], props, blocks=model.task.blocks)
    else:
        write_csv(out, columns)
    return path, len(x)
