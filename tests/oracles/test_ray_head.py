"""A Ray head node killed under a running ``lgfn fit`` (as a crashed machine would be: SIGKILL to its daemons,
with a call in flight): the run stops within seconds with one line and a resumable checkpoint, where Ray alone
would end the process a minute later with nothing saved. Resumed on a new head, it ends exactly where a run that
was never interrupted ends (same weights, same replay buffer: no object lost, none scored twice into replay),
with each round scored before training (N = 0) and with a round scored ahead (N = 1)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("ray")

HERE = Path(__file__).resolve().parent
RAY = Path(sys.executable).with_name("ray")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Head:
    """``ray start --head`` in a session of its own, so that one signal takes all its daemons down."""

    def __init__(self, port: int) -> None:
        self.port, self.tmp = port, tempfile.mkdtemp(prefix="lgfn-ray-", dir="/tmp")  # short: Ray's socket paths
        self.proc = subprocess.Popen([str(RAY), "start", "--head", f"--port={port}", "--num-cpus=2", "--block",
                                      "--include-dashboard=false", f"--temp-dir={self.tmp}"],
                                     env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.kill()
        pytest.fail("the Ray head did not start within 60 s")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for pid in _processes_naming(self.tmp):  # any daemon that left the session
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _processes_naming(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def config(tmp_path: Path, pending: int, executor: dict) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "enable_progress_bar": False, "log_every_n_steps": 4, "logger": False,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"every_n_train_steps": 4, "save_top_k": -1}}]},
        "model": {"task": {"name": "sequence", "alphabet": "ACGT", "length": 4, "cache": None,
                           "oracle": {"name": "pool_stall", "folder": str(tmp_path / "calls"), "after": 4},
                           "executor": executor},
                  "conditioner": "logit", "hidden_dim": 16, "eval_betas": [1.0], "eval_samples": 16},
        "data": {"class_path": "OnlineData",
                 "init_args": {"rounds": 10, "samples_per_round": 16, "batch_size": 16, "max_pending_rounds": pending,
                               "replay": {"name": "prioritized", "min_size": 1}}},
    }
    path = tmp_path / f"config-{executor['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def fit(cfg: Path, root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lgfn", "fit", "--plugins", str(HERE / "pool_oracles.py"),
                             "--config", str(cfg), "--trainer.default_root_dir", str(root), *extra],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def final(root: Path) -> dict:
    [path] = [p for p in root.rglob("*step=20.ckpt")]  # 10 rounds of 2 steps
    return torch.load(path, weights_only=False)


@pytest.mark.parametrize("pending", [0, 1])
def test_a_killed_head_stops_the_run_with_a_checkpoint_and_it_resumes_exactly(tmp_path, pending):
    (tmp_path / "calls").mkdir()
    port = free_port()
    ray_cfg = config(tmp_path, pending, {"name": "ray", "address": f"127.0.0.1:{port}", "workers": 1,
                                         "batch_size": 16, "retries": 1})
    head = Head(port)
    try:
        run = fit(ray_cfg, tmp_path / "run")
        deadline = time.monotonic() + 120
        while not (tmp_path / "calls" / "stalled").exists():  # the 4th round's call is in flight
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
            time.sleep(0.2)
        lost = time.monotonic()
        head.kill()
        _, err = run.communicate(timeout=120)
        stopped = time.monotonic() - lost
    finally:
        head.kill()
    assert run.returncode != 0 and stopped < 40, (stopped, err[-3000:])  # Ray alone: killed at 60 s, no checkpoint
    errors = [line for line in err.splitlines() if line.startswith("lgfn: error")]
    assert len(errors) == 1 and f":{port} was lost (its head takes no connection" in errors[0], err[-3000:]
    assert errors[0].endswith("restart it and resume the run from its last checkpoint")
    [saved] = (tmp_path / "run").rglob("interrupted-step=*.ckpt")
    held = torch.load(saved, weights_only=False)["OnlineData"]
    if pending:  # the round in flight, and the one drawn behind it, are held unscored to be scored on resume
        assert [r["scored"] for r in held["pending"]["rounds"]] == [False, False]
    head = Head(port)  # a new cluster at the same address
    try:
        resumed = fit(ray_cfg, tmp_path / "resumed", "--ckpt_path", str(saved))
        _, err = resumed.communicate(timeout=300)
    finally:
        head.kill()
    assert resumed.returncode == 0, err[-3000:]
    inline = fit(config(tmp_path, pending, {"name": "inline"}), tmp_path / "inline")
    _, err = inline.communicate(timeout=300)
    assert inline.returncode == 0, err[-3000:]
    a, b = final(tmp_path / "inline"), final(tmp_path / "resumed")
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=0)
    assert a["OnlineData"]["round"] == b["OnlineData"]["round"] == 10
    assert torch.equal(a["OnlineData"]["replay"]["x"], b["OnlineData"]["replay"]["x"])  # none lost, none twice
