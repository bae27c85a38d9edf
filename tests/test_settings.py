"""The model's settings are declared once (lgfn.settings.MODEL): the signature, the help, the checks and the
checkpoint schema come from that table; checking a spec builds nothing; model.policy is model.network's old name."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest
import torch

from lgfn import registry, settings
from lgfn.checkpoints import model_hparams
from lgfn.errors import ConfigError
from lgfn.gflownet import GFlowNet

GRID = {"name": "gridworld", "ndim": 2, "height": 3}


def test_the_signature_and_the_help_come_from_the_table() -> None:
    params = inspect.signature(GFlowNet).parameters
    assert list(params) == [*settings.MODEL, *settings.RENAMED]
    for name, setting in settings.MODEL.items():
        assert params[name].default == setting.default and params[name].annotation == setting.type
        assert f"{name}: {setting.help}" in " ".join((GFlowNet.__doc__ or "").split())


def test_the_component_settings_are_the_kind_tables() -> None:
    assert settings.COMPONENTS == {"task": "task", "conditioner": "conditioner", "network": "network", "loss": "loss"}
    assert all(f"model.{name}" in registry.KIND_TABLE[kind].settings for name, kind in settings.COMPONENTS.items())


@pytest.mark.parametrize("name", [n for n, s in settings.MODEL.items() if s.valid or s.type in (int, float)])
def test_every_checked_setting_refuses_a_bad_value_in_one_line(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^model\.{name} = "):
        settings.model_settings({name: -1 if name != "eval_betas" else []})


def test_checking_the_settings_builds_no_component_and_draws_no_random_number(monkeypatch) -> None:
    from lgfn.models import architectures, conditioners

    def no_build(*args, **kwargs):
        raise AssertionError("built while checking")

    monkeypatch.setattr(conditioners, "mlp", no_build)  # the default conditioner (logit) builds its scaling net
    monkeypatch.setattr(architectures.SSRPolicy, "build", no_build)
    state = torch.random.get_rng_state()
    resolved = settings.model_settings({"task": GRID, "network": {"name": "ssr", "embed_dim": 8}, "loss": "subtb"})
    assert torch.equal(state, torch.random.get_rng_state())
    assert resolved["network"] == {"class_path": "lgfn.models.architectures.SSRPolicy", "init_args": {"embed_dim": 8}}
    with pytest.raises(ConfigError, match="model.conditioner: conditioner: scale_with_beta"):
        settings.model_settings({"conditioner": {"name": "logit_official", "scale_with_beta": True}})
    with pytest.raises(ConfigError, match="model.loss: subtb: lamda"):
        settings.model_settings({"loss": {"name": "subtb", "lamda": 0}})


def test_the_old_name_policy_is_network_with_one_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lgfn"):
        model = GFlowNet(task=GRID, policy="ssr", hidden_dim=8)
    assert [r.getMessage() for r in caplog.records] == [
        "model.policy is deprecated: it is now model.network (model.network: ssr)"]
    assert model.hparams.network["class_path"] == "lgfn.models.architectures.SSRPolicy"
    assert "policy" not in model.hparams


def test_a_checkpoint_with_the_old_name_reads_as_network() -> None:
    spec = registry.resolve("network", "ssr")
    hparams = model_hparams({"hyper_parameters": {"task": GRID, "policy": spec}}, GFlowNet)
    assert hparams == {"task": GRID, "network": spec}


def test_the_readme_settings_table_is_the_declaration() -> None:
    """The README's table of model settings is generated from MODEL: regenerate it with
    ``settings.markdown_table()`` after changing a setting."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = settings.markdown_table()
    assert table in readme
    assert all(f"`model.{name}`" in table for name in settings.MODEL)
