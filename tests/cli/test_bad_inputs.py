"""Bad inputs through the real command line: each is refused in one line naming the setting, with exit 2,
before any data is loaded or training starts; no traceback, no usage dump. Checkpoints are data: a checkpoint
that names code outside the registry is refused for every kind of component, and nothing is run."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from lgfn.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
GRID = str(ROOT / "configs" / "gridworld.yaml")
OLD_CKPT = ROOT / "tests" / "fixtures" / "grid_v0_1_0.ckpt"  # written by lgfn 0.1 (4x4 grid, width 16)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def assert_refused(code: int, err: str, *names: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err and "usage:" not in err, err
    assert lines and lines[-1].startswith("lgfn: error: "), err
    for name in names:
        assert name in lines[-1], (name, lines[-1])


FIT = ["fit", "--config", GRID, "--trainer.max_steps", "1", "--trainer.logger", "false"]

# (case, extra fit arguments, words the one error line must contain)
FIT_CASES = [
    ("beta low > high", ["--data.init_args.train_beta", "{name: uniform, low: 3, high: 1}"], ["data.train_beta", "low"]),
    ("beta range reaches 0", ["--data.init_args.explore_beta", "{name: uniform, low: 0, high: 2}"], ["data.explore_beta", "positive"]),
    ("beta negative constant", ["--data.init_args.train_beta", "{name: constant, value: -1}"], ["data.train_beta", "positive"]),
    ("log_uniform low 0", ["--data.init_args.train_beta", "{name: log_uniform, low: 0, high: 2}"], ["data.train_beta"]),
    ("clipped normal mu outside", ["--data.init_args.train_beta", "{name: clipped_normal, mu: 9, low: 1, high: 3}"], ["data.train_beta", "mu"]),
    ("unknown sampler", ["--data.init_args.train_beta", "unifrom"], ["data.train_beta", "uniform"]),
    ("unknown replay", ["--data.init_args.replay", "priority"], ["data.replay", "prioritized"]),
    ("batch_size 0", ["--data.init_args.batch_size", "0"], ["data.batch_size", ">= 1"]),
    ("steps_per_batch 0", ["--data.init_args.steps_per_batch", "0"], ["data.steps_per_batch"]),
    ("rounds 0", ["--data.init_args.rounds", "0"], ["data.rounds", ">= 1"]),
    ("rounds negative", ["--data.init_args.rounds", "-5"], ["data.rounds"]),
    ("samples_per_round 0", ["--data.init_args.samples_per_round", "0"], ["data.samples_per_round"]),
    ("samples_per_round negative", ["--data.init_args.samples_per_round", "-3"], ["data.samples_per_round"]),
    ("epsilon above 1", ["--data.init_args.epsilon", "1.5"], ["data.epsilon", "[0, 1]"]),
    ("epsilon negative", ["--data.init_args.epsilon", "-0.1"], ["data.epsilon"]),
    ("batch_size not a number", ["--data.init_args.batch_size", "abc"], ["data.batch_size"]),
    ("unknown data class", ["--data.class_path", "Nope"], ["data.class_path"]),
    ("data option of the other class", ["--data.init_args.objects", "x.csv"], ["objects"]),
    ("hidden_dim 0", ["--model.hidden_dim", "0"], ["model.hidden_dim", ">= 1"]),
    ("n_layers 0", ["--model.n_layers", "0"], ["model.n_layers"]),
    ("hidden_dim not a number", ["--model.hidden_dim", "abc"], ["model.hidden_dim"]),
    ("negative lr_policy", ["--model.lr_policy", "-1"], ["model.lr_policy", "positive"]),
    ("zero lr_z", ["--model.lr_z", "0"], ["model.lr_z"]),
    ("negative lr_scale", ["--model.lr_scale", "-0.1"], ["model.lr_scale"]),
    ("negative grad_clip", ["--model.grad_clip", "-1"], ["model.grad_clip"]),
    ("zero logit_clip", ["--model.logit_clip", "0"], ["model.logit_clip"]),
    ("eval_samples 0", ["--model.eval_samples", "0"], ["model.eval_samples"]),
    ("negative eval beta", ["--model.eval_betas", "[-1]"], ["model.eval_betas", "positive"]),
    ("empty eval betas", ["--model.eval_betas", "[]"], ["model.eval_betas"]),
    ("bad backward policy", ["--model.backward_policy", "random"], ["backward_policy"]),
    ("nonfinite_patience 0", ["--model.nonfinite_patience", "0"], ["model.nonfinite_patience"]),
    ("unknown task", ["--model.task", "gridwrld"], ["model.task", "gridworld"]),
    ("unknown conditioner", ["--model.conditioner", "logits"], ["model.conditioner", "logit"]),
    ("unknown loss", ["--model.loss", "tbb"], ["model.loss", "tb"]),
    ("unknown network", ["--model.network", "ssrr"], ["model.network", "ssr"]),
    ("bad ssr size", ["--model.network", "{name: ssr, embed_dim: 0}"], ["model.network", "embed_dim"]),
    ("unknown network by its old name", ["--model.policy", "ssrr"], ["model.network", "ssr"]),
    ("negative weight_decay", ["--model.weight_decay", "-1"], ["model.weight_decay"]),
    ("ensemble 0", ["--model.ensemble", "0"], ["model.ensemble", ">= 1"]),
    ("bad ensemble_data", ["--model.ensemble_data", "bagged"], ["ensemble_data", "split"]),
    ("scale_with_beta and multiply", ["--model.conditioner", "{name: logit_official, scale_with_beta: true}"],
     ["model.conditioner", "scale_with_beta"]),
    ("unknown task argument", ["--model.task", "{name: gridworld, hieght: 4}"], ["model.task", "hieght"]),
    ("bad conditioner size", ["--model.conditioner", "{name: logit, hidden_dim: 0}"], ["model.conditioner", "hidden_dim"]),
    ("bad subtb lambda", ["--model.loss", "{name: subtb, lamda: -1}"], ["model.loss", "lamda"]),
    ("unregistered class_path", ["--model.conditioner", "{class_path: os.system}"], ["model.conditioner", "os.system"]),
    ("misspelled key", ["--model.hiden_dim", "3"], ["hiden_dim"]),
    ("unknown trainer key", ["--trainer.max_epoch", "3"], ["max_epoch"]),
    # numbers at the extremes: each beyond what a float32 policy holds
    ("train beta overflows float32", ["--data.init_args.train_beta", "{name: constant, value: 1e308}"],
     ["data.train_beta", "float32"]),
    ("explore beta high overflows", ["--data.init_args.explore_beta", "{name: uniform, low: 1, high: 1e39}"],
     ["data.explore_beta", "float32"]),
    ("eval beta overflows", ["--model.eval_betas", "[1e308]"], ["model.eval_betas", "float32"]),
    ("eval beta underflows", ["--model.eval_betas", "[1e-320]"], ["model.eval_betas", "float32"]),
    # unusable folders
    ("root folder under a file", ["--trainer.default_root_dir", "{tmp}/file.txt/run"], ["file.txt", "not a folder"]),
    ("root folder under /proc", ["--trainer.default_root_dir", "/proc/lgfn-test/run"], ["/proc/lgfn-test",
                                                                                        "cannot be created"]),
    ("root folder name too long", ["--trainer.default_root_dir", "{tmp}/" + "r" * 300], ["too long"]),
]


@pytest.mark.parametrize("argv,names", [c[1:] for c in FIT_CASES], ids=[c[0] for c in FIT_CASES])
def test_fit_refuses_bad_settings_in_one_line(argv: list[str], names: list[str], capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a file where a folder should be")
    code, err = run(FIT + [a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert_refused(code, err, *names)
    assert not list(tmp_path.rglob("*.ckpt")), "nothing may be trained"


CONFIG_FILES = [
    ("empty", "", ["config.yaml", "empty"]),
    ("scalar", "3\n", ["config.yaml", "mapping"]),
    ("list", "- a\n- b\n", ["config.yaml", "mapping"]),
    ("syntax error", "model:\n  task: [gridworld\n", ["config.yaml", "line"]),
    ("misspelled key", "model:\n  hiden_dim: 3\n", ["hiden_dim"]),
    ("wrong type", "model:\n  hidden_dim: many\n", ["model.hidden_dim"]),
    ("not UTF-8", "model:\n  hidden_dim: 16  # caf\xe9 in Latin-1\n", ["config.yaml", "not UTF-8", "0xe9"]),
]


@pytest.mark.parametrize("text,names", [c[1:] for c in CONFIG_FILES], ids=[c[0] for c in CONFIG_FILES])
def test_fit_refuses_bad_config_files(text: str, names: list[str], capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_bytes(text.encode("latin-1"))
    code, err = run(["fit", "--config", str(path)], capsys)
    assert_refused(code, err, *names)


def test_missing_config_file(capsys, tmp_path) -> None:
    assert_refused(*run(["fit", "--config", str(tmp_path / "nope.yaml")], capsys), "nope.yaml", "not found")


@pytest.fixture(scope="module")
def evil_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The lgfn 0.1 grid checkpoint with one hyper-parameter replaced by code, for every component kind."""
    base = torch.load(OLD_CKPT, weights_only=True)
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "PWNED"
    run_code = {"class_path": "subprocess.getoutput", "init_args": {"cmd": f"touch {marker}"}}
    edits = {
        "task": lambda h: h.update(task=run_code),
        "conditioner": lambda h: h.update(conditioner=run_code),
        "policy": lambda h: h.update(policy=run_code),  # the old name of model.network (lgfn < 0.3)
        "network": lambda h: h.update(network=run_code),
        "loss": lambda h: h.update(loss={"class_path": "os.system", "init_args": {"command": f"touch {marker}"}}),
        "oracle": lambda h: h.update(task={"name": "sequence", "alphabet": "AB", "length": 2, "oracle": run_code}),
        "nested": lambda h: h.update(task={"name": "gridworld", "ndim": 2, "height": 4, "transform": run_code}),
        "instantiator": lambda h: h.update(_instantiator="subprocess.getoutput"),
        "model_class": lambda h: h.update(_class_path="subprocess.Popen"),
        "unknown_key": lambda h: h.update(cmd=f"touch {marker}"),
        "unknown_name": lambda h: h.update(conditioner="not_registered_here"),
    }
    paths = {"marker": marker}
    for name, edit in edits.items():
        ckpt = copy.deepcopy(base)
        edit(ckpt["hyper_parameters"])
        paths[name] = folder / f"{name}.ckpt"
        torch.save(ckpt, paths[name])
    (folder / "text.ckpt").write_text("not a checkpoint")
    paths["text"] = folder / "text.ckpt"
    torch.save({"weights": torch.zeros(2)}, folder / "foreign.ckpt")
    paths["foreign"] = folder / "foreign.ckpt"

    class Payload:  # a pickle that would run code if unpickled
        def __reduce__(self) -> tuple:
            return (print, ("PWNED",))

    ckpt = copy.deepcopy(base)
    ckpt["hyper_parameters"]["task"] = Payload()
    torch.save(ckpt, folder / "pickle.ckpt")
    paths["pickle"] = folder / "pickle.ckpt"
    return paths


EVIL = [("task", "model.task.class_path"), ("conditioner", "model.conditioner.class_path"),
        ("policy", "model.policy.class_path"), ("network", "model.network.class_path"),
        ("loss", "model.loss.class_path"), ("oracle", "model.task.oracle.class_path"),
        ("nested", "model.task.transform.class_path"), ("instantiator", "_instantiator"),
        ("model_class", "_class_path"), ("unknown_key", "cmd"), ("unknown_name", "not_registered_here"),
        ("text", "cannot be read"), ("foreign", "not an lgfn checkpoint"), ("pickle", "cannot be read")]


@pytest.mark.parametrize("name,words", EVIL, ids=[e[0] for e in EVIL])
def test_sample_refuses_checkpoints_that_name_code(name, words, evil_checkpoints, capsys, tmp_path) -> None:
    code, err = run(["sample", "--ckpt", str(evil_checkpoints[name]), "--beta", "1", "--out",
                     str(tmp_path / "x.csv")], capsys)
    assert_refused(code, err, words)
    assert not evil_checkpoints["marker"].exists() and not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
@pytest.mark.parametrize("name", ["task", "oracle", "instantiator", "pickle"])
def test_ckpt_path_refuses_checkpoints_that_name_code(command, name, evil_checkpoints, capsys, tmp_path,
                                                      monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = run([command, "--config", GRID, "--ckpt_path", str(evil_checkpoints[name])], capsys)
    assert_refused(code, err, "--ckpt_path")
    assert not evil_checkpoints["marker"].exists()


def test_load_from_checkpoint_refuses_code(evil_checkpoints) -> None:
    from lgfn.errors import CheckpointError
    from lgfn.gflownet import GFlowNet

    for name in ("task", "conditioner", "policy", "network", "loss", "oracle", "nested", "instantiator"):
        with pytest.raises(CheckpointError):
            GFlowNet.load_from_checkpoint(evil_checkpoints[name])
    assert not evil_checkpoints["marker"].exists()


def test_ckpt_path_of_another_task_is_refused(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = run(["fit", "--config", GRID, "--ckpt_path", str(OLD_CKPT)], capsys)  # 8x8 config, 4x4 checkpoint
    assert_refused(code, err, "--ckpt_path", "height=4", "height=8")


SAMPLE_CASES = [
    ("beta nan", ["--beta", "nan"], ["--beta", "positive"]),
    ("beta inf", ["--beta", "inf"], ["--beta"]),
    ("beta negative", ["--beta", "-1"], ["--beta"]),
    ("beta zero", ["--beta", "0"], ["--beta"]),
    ("beta not a number", ["--beta", "hot"], ["--beta"]),
    ("n zero", ["--beta", "1", "--n", "0"], ["--n"]),
    ("out is a folder", ["--beta", "1", "--out", "{tmp}"], ["--out", "folder"]),
    ("out under a file", ["--beta", "1", "--out", "{tmp}/file.txt/x.csv"], ["--out"]),
    ("sdf for a grid", ["--beta", "1", "--out", "{tmp}/x.sdf"], ["SDF"]),
    ("missing checkpoint", ["--beta", "1", "--ckpt", "{tmp}/nope.ckpt"], ["nope.ckpt", "not found"]),
    ("empty run folder", ["--beta", "1", "--ckpt", "{tmp}"], ["no .ckpt"]),
    ("missing --beta", [], ["--beta"]),
    ("beta overflows float32", ["--beta", "1e308"], ["--beta", "float32"]),
    ("beta underflows float32", ["--beta", "1e-320"], ["--beta", "float32"]),
    ("seed too large", ["--beta", "1", "--seed", str(2**70)], ["--seed"]),
    ("out name too long", ["--beta", "1", "--out", "{tmp}/" + "o" * 300 + ".csv"], ["too long"]),
    ("out under /proc", ["--beta", "1", "--out", "/proc/lgfn-test/x.csv"], ["--out", "/proc/lgfn-test"]),
    ("out deeper under a file", ["--beta", "1", "--out", "{tmp}/file.txt/deeper/x.csv"], ["--out", "file.txt"]),
]


@pytest.mark.parametrize("argv,names", [c[1:] for c in SAMPLE_CASES], ids=[c[0] for c in SAMPLE_CASES])
def test_sample_refuses_bad_arguments(argv, names, capsys, tmp_path) -> None:
    (tmp_path / "file.txt").write_text("x")
    base = {"--ckpt": str(OLD_CKPT), "--out": str(tmp_path / "out.csv")}
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    for flag, value in base.items():
        if flag not in args:
            args += [flag, value]
    code, err = run(["sample", *args], capsys)
    assert_refused(code, err, *names)
    assert not (tmp_path / "out.csv").exists()


def test_unknown_command_and_bare_lgfn(capsys) -> None:
    assert_refused(*run(["predict"], capsys), "predict")
    code = main([])
    out = capsys.readouterr().out
    assert code == 2
    for command in ("fit", "validate", "test", "sample", "registry", "data", "experiment"):
        assert f"\n    {command}" in out


@pytest.mark.parametrize("device,words", [("gpu0", ["--device", "cpu, cuda or cuda:N"]), ("mps", ["--device", "cpu or cuda"]),
                                          ("cuda:99", ["--device cuda:99"])])
def test_sample_refuses_a_device_it_cannot_use(device, words, capsys, tmp_path) -> None:
    code, err = run(["sample", "--ckpt", str(OLD_CKPT), "--beta", "1", "--out", str(tmp_path / "x.csv"),
                     "--device", device], capsys)
    assert_refused(code, err, *words)
    assert not (tmp_path / "x.csv").exists()
