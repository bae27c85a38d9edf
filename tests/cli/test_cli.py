"""The command line end to end: fit -> checkpoint -> sample, resume, errors."""

import csv
from pathlib import Path

import pytest
import torch
import yaml

from lgfn.cli import main

CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 1, "enable_progress_bar": False, "logger": False},
    "model": {"task": {"name": "gridworld", "ndim": 2, "height": 4}, "conditioner": "logit_layer",
              "hidden_dim": 32, "lr_policy": 1e-3, "eval_betas": [1.0, 4.0], "eval_samples": 64},
    "data": {"class_path": "OnlineData",
             "init_args": {"rounds": 20, "samples_per_round": 16, "batch_size": 16,
                           "train_beta": {"name": "uniform", "low": 1.0, "high": 3.0}, "explore_beta": "uniform",
                           "replay": {"name": "prioritized", "min_size": 1}}},
}


def write_config(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = tmp_path / "run.yaml"  # not config.yaml: a run without a logger saves its full config under that name
    path.write_text(yaml.safe_dump(cfg))
    return path


def checkpoints(root: Path) -> list[Path]:
    return sorted(root.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


def test_fit_checkpoint_sample_round_trip(tmp_path):
    cfg = write_config(tmp_path)
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path)]) == 0
    ckpt = checkpoints(tmp_path)[-1]
    out = tmp_path / "samples.csv"
    assert main(["sample", "--ckpt", str(ckpt), "--beta", "7.5", "--n", "50", "--out", str(out), "--seed", "1"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 50 and list(rows[0]) == ["x", "reward", "log_reward", "beta"]
    for row in rows:
        i, j = map(int, row["x"].split(":"))
        assert 0 <= i < 4 and 0 <= j < 4 and row["beta"] == "7.5"
        assert abs(float(row["log_reward"]) - torch.tensor(float(row["reward"])).log().item()) < 1e-5
    again = tmp_path / "again.csv"
    main(["sample", "--ckpt", str(ckpt), "--beta", "7.5", "--n", "50", "--out", str(again), "--seed", "1"])
    assert out.read_text() == again.read_text()  # seeded


@pytest.mark.parametrize("interval", [1000, 15])
def test_fit_always_checkpoints_the_final_model(tmp_path, interval):
    """With a validation interval longer than the run, or not dividing its steps, the last step is still saved."""
    cfg = write_config(tmp_path)
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path),
                 "--trainer.val_check_interval", str(interval)]) == 0
    final = checkpoints(tmp_path)[-1]
    assert "step=40" in final.name  # 20 rounds, 2 steps each
    assert torch.load(final, weights_only=False)["global_step"] == 40
    assert len(list(tmp_path.rglob("*step=40*.ckpt"))) == 1


def test_fit_reports_the_share_of_its_time_spent_evaluating(tmp_path, capsys, monkeypatch):
    import re
    import time

    import lgfn.gflownet

    calls = []
    evaluate = lgfn.gflownet.evaluate

    def slow(*args, **kwargs):  # each evaluation call takes at least 0.2 s
        calls.append(args[1])
        time.sleep(0.2)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(lgfn.gflownet, "evaluate", slow)
    cfg = write_config(tmp_path)
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path),
                 "--trainer.val_check_interval", "20"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "fit done" in ln)
    found = re.search(r"40 steps in ([\d.]+)s wall, .* ([\d.]+)s of it evaluating \((\d+)%\)", line)
    assert found, line
    wall, evaluating, share = float(found[1]), float(found[2]), int(found[3])
    assert len(calls) == 2 * 2  # at steps 20 and 40, one call per β each
    assert 0.2 * len(calls) <= evaluating + 0.05 < wall  # shown to 0.1 s
    # both times are shown to 0.1 s: the share from them is off by up to the rounding of each
    assert abs(share - 100 * evaluating / wall) <= 100 * (0.05 / wall + 0.05 * evaluating / wall**2) + 1


def test_unconditional_model_refuses_other_beta(tmp_path, capsys):
    cfg = write_config(tmp_path, **{"model.conditioner": {"name": "none", "fixed_beta": 2.0}, "data.init_args.rounds": 5})
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path)]) == 0
    ckpt = checkpoints(tmp_path)[-1]
    capsys.readouterr()
    assert main(["sample", "--ckpt", str(ckpt), "--beta", "3", "--n", "5", "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unconditional" in err[0] and "--beta 2.0" in err[0]
    assert main(["sample", "--ckpt", str(ckpt), "--beta", "2", "--n", "5", "--out", str(tmp_path / "o.csv")]) == 0


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    callbacks = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"every_n_train_steps": 10, "save_top_k": -1, "filename": "{step}"}}]
    cfg = write_config(tmp_path, **{"trainer.callbacks": callbacks})
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(full)]) == 0
    mid = next(p for p in full.rglob("step=10.ckpt"))
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(resumed), "--ckpt_path", str(mid)]) == 0
    a = torch.load(next(full.rglob("step=40.ckpt")), weights_only=False)
    b = torch.load(next(resumed.rglob("step=40.ckpt")), weights_only=False)
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=0)
    dm_a, dm_b = a["OnlineData"], b["OnlineData"]
    assert dm_a["round"] == dm_b["round"] == 20
    assert torch.equal(dm_a["replay"]["x"], dm_b["replay"]["x"])


@pytest.mark.parametrize("spec,needle", [
    ({"name": "logits"}, "unknown conditioner 'logits'; valid names: layer, logit, logit_layer, logit_official, none, thermometer; did you mean 'logit'?"),
    ({"name": "logit", "hiden_dim": 3}, "unknown argument(s) hiden_dim"),
])
def test_config_errors_are_one_line(tmp_path, capsys, spec, needle):
    cfg = write_config(tmp_path, **{"model.conditioner": spec})
    assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path)]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("lgfn: error")]
    assert len(err) == 1 and needle in err[0]


def test_bad_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["sample", "--ckpt", str(bad), "--beta", "1", "--out", str(tmp_path / "o.csv")]) == 2
    assert main(["sample", "--ckpt", str(tmp_path / "missing.ckpt"), "--beta", "1", "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "cannot be read as data" in err[0] and "not found" in err[1]


def test_registry_command(capsys):
    assert main(["registry"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1] == "conditioner: layer, logit, logit_layer, logit_official, none, thermometer"


def test_fit_remembers_its_compiled_programs_for_auto_runs_of_the_same_config(tmp_path, monkeypatch, caplog):
    """``lgfn fit`` with ``model.compile: true`` notes its programs; a later ``auto`` run of the same model and
    data (another length and seed) compiles from the cache, another width does not."""
    from lgfn import compilation

    monkeypatch.setenv("LGFN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compilation, "AUTO_MIN_CACHED_CPU_STEPS", 10)  # the tiny runs below count as long
    cfg = write_config(tmp_path, **{"model.eval_betas": [1.0]})

    def fit(run: str, *changes: str) -> str:
        caplog.clear()
        assert main(["fit", "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path / run), *changes]) == 0
        return next(r.getMessage() for r in caplog.records if r.getMessage().startswith("model.compile"))

    assert fit("first", "--model.compile", "true") == "model.compile True: as set"
    assert len(list((tmp_path / "cache" / "compiled").glob("*.json"))) == 1
    assert fit("again", "--data.init_args.rounds", "10", "--seed_everything", "3").startswith(
        "model.compile auto: these programs were compiled before")
    assert fit("wider", "--model.hidden_dim", "8", "--trainer.max_steps", "10").startswith(
        "model.compile auto: 10 steps on a CPU are too few")
    assert len(list((tmp_path / "cache" / "compiled").glob("*.json"))) == 1  # an eager run notes nothing
