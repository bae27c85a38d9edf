"""``lgfn sample``: objects at any β from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from lgfn.io import write_csv
from lgfn.module import GFlowNet
from lgfn.registry import RegistryError


def load_checkpoint(path: str | Path) -> GFlowNet:
    """A trained model from a checkpoint, with a one-line error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; `lgfn fit` writes them under <root>/lightning_logs/*/checkpoints/")
    try:
        # weights_only: a checkpoint is data; nothing in it may run code when loaded
        model = GFlowNet.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except RegistryError as err:  # a component registered by a plugin that is not loaded now
        used = torch.load(path, map_location="cpu", weights_only=True).get("lgfn_plugins") or []
        hint = f"it was trained with --plugins {' '.join(used)}" if used else "load the plugin that registers it"
        raise RegistryError(f"checkpoint {path} needs a component that is not registered ({err}); {hint}") from None
    except Exception as err:  # noqa: BLE001 (any failure here means the file is not a usable checkpoint)
        raise RuntimeError(f"checkpoint {path} is not a usable lgfn checkpoint ({type(err).__name__}: {err})") from None
    model.eval()
    return model


def sample_to_file(ckpt: str | Path, beta: float, n: int, out: str | Path, seed: int = 0, batch: int = 4096) -> int:
    """Sample n objects at β and write them to ``out`` (CSV, or SDF with 2-D coordinates for molecules); returns n.

    Objects the oracle cannot score are kept, with reward and log_reward ``nan``: they are the model's samples.
    """
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    model = load_checkpoint(ckpt)
    model.check_beta(beta)
    sdf = str(out).lower().endswith(".sdf")
    if sdf and not hasattr(model.task, "blocks"):
        raise ValueError(f"--out {out}: SDF needs a molecular task (qm9, seh), this model's task is {model.task.name}")
    generator = torch.Generator().manual_seed(seed)
    xs, raws, logs = [], [], []
    for start in range(0, n, batch):
        traj = model.sample_objects(min(batch, n - start), beta, generator, drop_invalid=False)
        xs.append(traj.x)
        raws.append(traj.raw_reward)
        logs.append(traj.log_reward)
    x, raw, log_r = torch.cat(xs), torch.cat(raws), torch.cat(logs)
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
    return len(x)
