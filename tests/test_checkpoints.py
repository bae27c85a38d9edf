"""Checkpoints: resolved specs in new ones, and one written by lgfn 0.1 still loads and samples its policy."""

from pathlib import Path

import torch

from lgfn.cli.main import main
from lgfn.gflownet import GFlowNet
from lgfn.metrics.exact import terminal_distribution

OLD_CKPT = Path(__file__).resolve().parent / "fixtures" / "grid_v0_1_0.ckpt"


def test_a_checkpoint_of_lgfn_0_1_samples_its_policy(tmp_path):
    """A checkpoint from before checkpoints held resolved specs loads and samples its policy's distribution (the
    exact draws differ from lgfn 0.1's since actions are drawn by the Gumbel-max trick: another use of the random
    stream)."""
    out = tmp_path / "samples.csv"
    assert main(["sample", "--ckpt", str(OLD_CKPT), "--beta", "2", "--n", "4000", "--out", str(out), "--seed", "0"]) == 0
    model = GFlowNet.load_from_checkpoint(OLD_CKPT)
    assert model.sampler.trained_beta == (1.0, 3.0)  # from the conditioner's range: 0.1 did not store it
    env = model.task.env
    drawn = env.from_strings([line.split(",")[0] for line in out.read_text().splitlines()[1:]])
    freq = torch.bincount(env.state_index(drawn), minlength=env.n_states).double() / len(drawn)
    with torch.no_grad():
        exact = terminal_distribution(model.task, model.policy, 2.0).double()
    assert (freq - exact).abs().max() < 0.03  # ~4 standard errors at p = 0.3


def test_new_checkpoints_hold_resolved_specs(tmp_path):
    cfg = ["--model.task", "{name: gridworld, ndim: 2, height: 4}", "--model.hidden_dim", "16",
           "--model.eval_samples", "16", "--data.init_args.rounds", "3", "--trainer.logger", "false",
           "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    assert main(["fit", *cfg]) == 0
    ckpt = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["task"] == {"class_path": "lgfn.tasks.gridworld.GridWorld",
                          "init_args": {"ndim": 2, "height": 4, "r0": 0.1, "r1": 0.5, "r2": 2.0, "transform": None}}
    assert hp["conditioner"]["class_path"] == "lgfn.models.conditioners.Conditioner"
    assert hp["conditioner"]["init_args"]["logit_scaling"] is True and "hidden_dim" in hp["conditioner"]["init_args"]
    assert hp["loss"] == {"class_path": "lgfn.losses.tb.TrajectoryBalance", "init_args": {}}
    assert ckpt["lgfn_format"] == 2 and ckpt["lgfn_trained_beta"] == [1.0, 3.0]


# --------------------------------------------------------------------------- the fault table: checkpoints
# Each fault is refused in one `lgfn: error:` line with exit 2 before anything is sampled or trained, or (a run
# folder) skipped with a warning that names the file; a full disk or a kill never leaves a torn checkpoint.

import errno
import shutil
import signal
import subprocess
import sys
import time

import pytest

from lgfn import checkpoints, io as lgfn_io

TINY = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--model.hidden_dim", "16",
        "--model.eval_samples", "16", "--model.eval_betas", "[1.0]", "--model.task",
        "{name: gridworld, ndim: 2, height: 4}", "--data.init_args.rounds", "3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a tiny finished run, with weights, Adam moments, a replay buffer and a generator state."""
    root = tmp_path_factory.mktemp("trained")
    assert main(["fit", *TINY, "--trainer.default_root_dir", str(root)]) == 0
    return next(root.rglob("*.ckpt"))


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def assert_refused(code: int, lines: list[str], *words: str) -> None:
    assert code == 2, lines
    assert lines and lines[-1].startswith("lgfn: error: ") and "Traceback" not in "\n".join(lines), lines
    for word in words:
        assert word in lines[-1], (word, lines[-1])


def _tensors(value, prefix=""):
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{prefix}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{prefix}/{i}")


# each kind of tensor in a checkpoint: (its name, how to find one in the loaded checkpoint)
KINDS = {
    "weight": lambda ck: next(t for _, t in _tensors(ck["state_dict"]) if t.is_floating_point() and t.numel() >= 16),
    "adam moment": lambda ck: next(t for k, t in _tensors(ck["optimizer_states"])
                                   if "exp_avg" in k and t.numel() >= 16),
    "replay objects": lambda ck: next(t for k, t in _tensors(ck["OnlineData"]) if k.endswith("/x")),
    "generator state": lambda ck: ck["OnlineData"]["generator"],
}


def corrupt(src: Path, dest: Path, kind: str) -> Path:
    """A copy of ``src`` with 8 bytes flipped inside the data of one tensor of ``kind``."""
    tensor = KINDS[kind](torch.load(src, weights_only=True))
    data = bytearray(src.read_bytes())
    pattern = tensor.contiguous().numpy().tobytes()
    at = data.find(pattern)
    assert at >= 0 and data.find(pattern, at + 1) < 0  # found, and only once
    data[at:at + 8] = bytes(b ^ 0xFF for b in data[at:at + 8])
    dest.write_bytes(data)
    return dest


@pytest.mark.parametrize("kind", list(KINDS))
def test_corrupted_bytes_in_each_kind_of_tensor_are_refused(kind, trained, tmp_path, capsys) -> None:
    bad = corrupt(trained, tmp_path / "bad.ckpt", kind)
    out = tmp_path / "x.csv"
    code = main(["sample", "--ckpt", str(bad), "--beta", "1", "--n", "5", "--out", str(out)])
    assert_refused(code, errors(capsys), str(bad), "is corrupt", "CRC-32")
    assert not out.exists()
    root = tmp_path / "resumed"
    code = main(["fit", *TINY, "--trainer.default_root_dir", str(root), "--ckpt_path", str(bad)])
    assert_refused(code, errors(capsys), "--ckpt_path", "is corrupt")
    assert not list(root.rglob("*.ckpt"))  # nothing trained


def test_a_torn_checkpoint_is_refused(trained, tmp_path, capsys) -> None:
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    code = main(["sample", "--ckpt", str(torn), "--beta", "1", "--out", str(tmp_path / "x.csv")])
    assert_refused(code, errors(capsys), str(torn), "not a whole checkpoint")


def _set(path: tuple, value_of):
    """A tampering: replace the value at ``path`` by ``value_of(old value)``."""
    def apply(ck: dict) -> None:
        holder = ck
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value_of(holder[path[-1]])
    return apply


def _first_weight(ck: dict) -> str:
    return next(k for k, t in ck["state_dict"].items() if t.is_floating_point() and t.dim() == 2)


def _tamper_weight(change):
    return lambda ck: ck["state_dict"].__setitem__(_first_weight(ck), change(ck["state_dict"][_first_weight(ck)]))


def _nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


def _out_of_range(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0, 0] = 99
    return x


# (case, tampering, words the error line names): state written by torch.save, so every CRC is right
TAMPERED = [
    ("weight shape", _tamper_weight(lambda t: torch.zeros(t.shape[0] + 1, t.shape[1])), ["weight", "the model needs"]),
    ("weight dtype", _tamper_weight(lambda t: t.double()), ["weight", "float64"]),
    ("weight nan", _tamper_weight(_nan), ["non-finite"]),
    ("adam moment shape", _set(("optimizer_states", 0, "state", 0, "exp_avg"), lambda t: torch.zeros(7, 7)),
     ["optimizer_states[0]", "exp_avg"]),
    ("adam moment inf", _set(("optimizer_states", 0, "state", 0, "exp_avg_sq"), lambda t: t * float("inf")),
     ["exp_avg_sq", "non-finite"]),
    ("learning rate nan", _set(("optimizer_states", 0, "param_groups", 0, "lr"), lambda v: float("nan")),
     ["learning rate"]),
    ("tokens out of range", _set(("OnlineData", "replay", "x"), _out_of_range), ["replay.x", "[0, 3]"]),
    ("objects of another width", _set(("OnlineData", "replay", "x"), lambda x: torch.zeros(len(x), 5,
                                                                                             dtype=x.dtype)),
     ["replay.x", "5 slots", "have 2"]),
    ("buffers of different lengths", _set(("OnlineData", "replay", "log_reward"), lambda t: t[:3]),
     ["different lengths"]),
    ("generator state size", _set(("OnlineData", "generator"), lambda g: g[:100]), ["generator", "100 bytes"]),
    ("generator state dtype", _set(("OnlineData", "generator"), lambda g: g.long()), ["generator"]),
    ("round not a count", _set(("OnlineData", "round"), lambda r: -3), ["round"]),
    ("trained β range", _set(("lgfn_trained_beta",), lambda r: [3.0, float("nan")]), ["lgfn_trained_beta"]),
    ("global step", _set(("global_step",), lambda s: "many"), ["global_step"]),
]


@pytest.mark.parametrize("tamper,words", [c[1:] for c in TAMPERED], ids=[c[0] for c in TAMPERED])
def test_tampered_state_is_refused_before_training(tamper, words, trained, tmp_path, capsys) -> None:
    ckpt = torch.load(trained, weights_only=True)
    tamper(ckpt)
    bad = tmp_path / "tampered.ckpt"
    torch.save(ckpt, bad)
    root = tmp_path / "resumed"
    code = main(["fit", *TINY, "--data.init_args.rounds", "6", "--trainer.default_root_dir", str(root),
                 "--ckpt_path", str(bad)])
    assert_refused(code, errors(capsys), str(bad), "use another checkpoint", *words)
    assert not list(root.rglob("*.ckpt"))


@pytest.mark.parametrize("case", ["weight shape", "weight dtype", "weight nan"])
def test_sample_refuses_tampered_weights(case, trained, tmp_path, capsys) -> None:
    tamper, words = next(c[1:] for c in TAMPERED if c[0] == case)
    ckpt = torch.load(trained, weights_only=True)
    tamper(ckpt)
    torch.save(ckpt, tmp_path / "tampered.ckpt")
    out = tmp_path / "x.csv"
    code = main(["sample", "--ckpt", str(tmp_path / "tampered.ckpt"), "--beta", "1", "--out", str(out)])
    assert_refused(code, errors(capsys), *words)
    assert not out.exists()


def test_a_run_folder_gives_its_newest_checkpoint_that_verifies(trained, tmp_path, capsys) -> None:
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    good = folder / "epoch=0-step=6.ckpt"
    shutil.copy(trained, good)
    corrupt(trained, folder / "epoch=0-step=9.ckpt", "weight")
    (folder / "interrupted-step=12.ckpt").write_bytes(trained.read_bytes()[:1000])
    out = tmp_path / "x.csv"
    assert main(["sample", "--ckpt", str(tmp_path / "run"), "--beta", "1", "--n", "5", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert str(good) in captured.out and out.exists()
    warnings = [line for line in captured.err.splitlines() if line.startswith("lgfn: warning: skipped")]
    assert len(warnings) == 2 and "step=12" in warnings[0] and "step=9" in warnings[1] and "corrupt" in warnings[1]
    for path in folder.glob("*step=[19]*.ckpt"):
        path.unlink()
    (folder / "epoch=0-step=6.ckpt").write_bytes(b"torn")
    code = main(["sample", "--ckpt", str(tmp_path / "run"), "--beta", "1", "--out", str(out)])
    assert_refused(code, errors(capsys), "none of them usable")


def test_a_full_disk_names_the_folder_the_size_and_the_last_good_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    """ModelCheckpoint saves at steps 4 and 8; the disk fills during the second save (simulated ENOSPC after half
    the bytes): the run stops in one line, the first checkpoint is kept whole and named, and no torn file is left."""
    write_all, calls = lgfn_io._write_all, []

    def fills_up(fd: int, data: memoryview) -> None:
        calls.append(len(data))
        if len(calls) < 2:
            return write_all(fd, data)
        write_all(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lgfn_io, "_write_all", fills_up)
    code = main(["fit", *TINY, "--data.init_args.rounds", "5", "--trainer.val_check_interval", "4",
                 "--trainer.default_root_dir", str(tmp_path)])
    lines = errors(capsys)
    folder = tmp_path / "checkpoints"
    kept = folder / "epoch=0-step=4.ckpt"
    assert_refused(code, lines, f"no space left in {folder}", "needs", f"the last good checkpoint is {kept}")
    assert sorted(p.name for p in folder.iterdir()) == [kept.name]  # whole; no torn or temporary file
    checkpoints.read(kept)


KILLED_WRITER = '''
import itertools, sys, torch
from lgfn.io import write_bytes
import io
buffer = io.BytesIO()
torch.save({"hyper_parameters": {}, "state_dict": {"w": torch.randn(2_000_000)}}, buffer)
print("ready", flush=True)
for i in itertools.count():
    write_bytes(sys.argv[1] + f"/step={i % 3}.ckpt", buffer.getbuffer())
'''


def test_kill_9_during_writes_leaves_only_whole_checkpoints(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # several 8 MB writes; the kill lands in one of them
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    names = list(tmp_path.glob("*.ckpt"))
    assert names
    for path in names:
        checkpoints.verify(path, str(path))  # every file under a checkpoint's name is whole


def test_every_step_skipped_is_not_a_finished_run(tmp_path, capsys, monkeypatch) -> None:
    from lgfn.gflownet import GFlowNet

    loss = GFlowNet.loss

    def poisoned(self, traj):  # every loss infinite, as with a β range whose R(x)^β overflows
        return loss(self, traj) * float("inf")

    monkeypatch.setattr(GFlowNet, "loss", poisoned)
    code = main(["fit", *TINY, "--model.nonfinite_patience", "100", "--trainer.default_root_dir", str(tmp_path)])
    lines = errors(capsys)
    assert_refused(code, lines, "took no optimiser step", "all 5 steps", "data.train_beta", "narrow")
    assert "fit done" not in capsys.readouterr().out


def test_mostly_skipped_steps_name_the_learning_rates(tmp_path, capsys, monkeypatch) -> None:
    from lgfn.gflownet import GFlowNet

    loss = GFlowNet.loss

    def poisoned(self, traj):  # steps 1, 2 and 4 of 0..4
        value = loss(self, traj)
        return value * float("inf") if self.global_step % 3 else value

    monkeypatch.setattr(GFlowNet, "loss", poisoned)
    code = main(["fit", *TINY, "--model.nonfinite_patience", "100", "--trainer.default_root_dir", str(tmp_path)])
    assert_refused(code, errors(capsys), "3 of 5 steps (60%) were skipped", "model.lr_policy", "data.train_beta",
                   "holds its weights")


def test_ctrl_c_before_the_first_step_says_nothing_was_saved(tmp_path, capsys, monkeypatch) -> None:
    from lgfn.gflownet import GFlowNet

    def interrupted(self, dataloader_iter):
        raise KeyboardInterrupt

    monkeypatch.setattr(GFlowNet, "training_step", interrupted)
    code = main(["fit", *TINY, "--trainer.default_root_dir", str(tmp_path)])
    lines = errors(capsys)
    assert code == 130 and "lgfn: warning: stopped before the first training step: nothing was saved" in lines
    assert lines[-1] == "lgfn: interrupted" and not list(tmp_path.rglob("*.ckpt"))
