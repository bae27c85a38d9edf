"""``lgfn sample``: objects at any β from a checkpoint (or a run folder's last checkpoint)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from lgfn import checkpoints
from lgfn.errors import CheckpointError, ConfigError
from lgfn.io import replacing, write_csv
from lgfn.gflownet import GFlowNet
from lgfn.settings import FLOAT32, beta_value, positive

log = logging.getLogger("lgfn")
PROGRESS_AFTER_S = 2.0
"""``lgfn sample`` shows a progress bar (count, rate, ETA) once it has run this long."""


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's newest checkpoint that verifies (highest step; a final or
    interrupted one wins over a periodic one of the same step); each newer one skipped is named with why."""
    path = Path(path)
    if not path.is_dir():
        return path
    found, skipped = checkpoints.newest(path)
    for bad, reason in skipped:
        log.warning("skipped %s: %s", bad, reason)
    if found is None:
        held = f"holds {len(skipped)} .ckpt file(s), none of them usable" if skipped else "holds no .ckpt file"
        raise CheckpointError(f"run folder {path} {held}; give a checkpoint or a folder that `lgfn fit` wrote "
                              "(e.g. lightning_logs/version_0)")
    return found


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
    if not beta_value(beta):
        raise ConfigError(f"--beta = {beta:g}: outside what the model's float32 holds "
                          f"[{FLOAT32.tiny:.3g}, {FLOAT32.max:.3g}]; give a β in that range")
    if n < 1:
        raise ConfigError(f"--n = {n}: must be an integer >= 1")
    if not 0 <= seed < 2**63:
        raise ConfigError(f"--seed = {seed}: must be an integer in [0, 2**63)")
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
    # a bar on a terminal once sampling has taken a couple of seconds; logs get a line every 30 s instead
    with tqdm(total=n, unit="obj", desc="lgfn: sampling", delay=PROGRESS_AFTER_S, file=sys.stderr,
              mininterval=0.5 if sys.stderr.isatty() else 30.0, dynamic_ncols=True, leave=False) as bar:
        for start in range(0, n, batch):
            traj = model.sampler.objects(min(batch, n - start), beta, generator, drop_invalid=False, warn=False)
            xs.append(traj.x)
            raws.append(traj.raw_reward)
            logs.append(traj.log_reward)
            bar.update(len(traj.x))
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
        with replacing(out) as tmp:  # crash-safe like the CSV: the writer fills a temporary file
            write_sdf(tmp, columns["x"], props, blocks=model.task.blocks)
    else:
        write_csv(out, columns)
    return path, len(x)
