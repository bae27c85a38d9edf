"""`lgfn fit --ckpt_path` resumes a run whose components are a plugin's: the checkpoint's resolved specs, which
LightningCLI hands back as jsonargparse Namespaces at any depth (and with a function oracle's objects parameter
filled in as None), are read as specs again, and the resumed run's oracle scores what it samples."""

from pathlib import Path

import torch
import yaml
from jsonargparse import Namespace

from lgfn import registry
from lgfn.cli import main

PLUGIN = '''
from lgfn.registry import register_oracle


@register_oracle("test_resume_motif", inputs="strings")
def motif(strings, motif="ab"):
    return [1.0 + s.count(motif) for s in strings]
'''


def test_a_sequence_run_with_a_function_oracle_resumes(tmp_path: Path, capsys) -> None:
    plugin = tmp_path / "resume_plugin.py"
    plugin.write_text(PLUGIN)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "enable_progress_bar": False, "logger": False,
                    "default_root_dir": str(tmp_path / "run"),
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"every_n_train_steps": 4, "save_top_k": -1}}]},
        "model": {"task": {"name": "sequence", "alphabet": "ab", "length": 3,
                           "oracle": {"name": "test_resume_motif", "motif": "ba"}},
                  "hidden_dim": 8, "eval_betas": [1.0], "eval_samples": 16},
        "data": {"class_path": "OnlineData", "init_args": {"rounds": 6, "samples_per_round": 4, "batch_size": 4,
                                                           "replay": {"name": "prioritized", "min_size": 1}}},
    }))
    assert main(["fit", "--plugins", str(plugin), "--config", str(config)]) == 0
    [mid] = (tmp_path / "run").rglob("*step=4.ckpt")
    args = ["fit", "--plugins", str(plugin), "--config", str(config),
            "--trainer.default_root_dir", str(tmp_path / "resumed"), "--ckpt_path", str(mid)]
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "lgfn: error" not in err and "left out of training" not in err, err  # the oracle scores every object
    [full] = (tmp_path / "run").rglob("*step=12.ckpt")
    [resumed] = (tmp_path / "resumed").rglob("*step=12.ckpt")
    a, b = (torch.load(path, weights_only=False)["OnlineData"]["replay"] for path in (full, resumed))
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["raw_reward"], b["raw_reward"])  # as if never stopped

def test_a_namespace_spec_reads_as_the_mapping_it_holds() -> None:
    nested = Namespace(class_path="lgfn.losses.subtb.SubTrajectoryBalance", init_args=Namespace(lamda=0.5))
    assert registry.read_spec({"name": "x", "inner": nested}) == {
        "name": "x", "inner": {"class_path": "lgfn.losses.subtb.SubTrajectoryBalance", "init_args": {"lamda": 0.5}}}
    assert registry.build("loss", nested).lamda == 0.5
    assert registry.resolve("loss", nested) == registry.resolve("loss", {"name": "subtb", "lamda": 0.5})
