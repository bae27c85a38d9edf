from pathlib import Path

import pytest

from lgfn import registry
from lgfn.models.conditioners import Conditioner
from lgfn.registry import RegistryError


def test_short_name_mapping_and_class_path():
    c = registry.build("conditioner", "logit")
    assert isinstance(c, Conditioner) and c.logit_scaling and not c.layer
    c = registry.build("conditioner", {"name": "logit", "hidden_dim": 64})
    assert c.scale_net[0].out_features == 64
    c = registry.build("conditioner", {"class_path": "lgfn.models.conditioners.Conditioner", "init_args": {"layer": True}})
    assert c.layer and not c.logit_scaling


def test_unknown_name_lists_valid_names_and_closest_match():
    with pytest.raises(RegistryError) as err:
        registry.build("conditioner", "logits")
    msg = str(err.value)
    assert "\n" not in msg
    assert "layer, logit, logit_layer, logit_official, none, thermometer" in msg and "did you mean 'logit'" in msg


def test_unknown_argument_lists_valid_arguments():
    with pytest.raises(RegistryError, match="unknown argument.*hiden_dim.*valid:.*hidden_dim"):
        registry.build("conditioner", {"name": "logit", "hiden_dim": 3})


def test_only_registered_class_paths_are_built():
    with pytest.raises(RegistryError, match="not a registered loss"):
        registry.build("loss", {"class_path": "lgfn.losses.Nope"})
    with pytest.raises(RegistryError, match="not a registered conditioner"):
        registry.build("conditioner", {"class_path": "os.system", "init_args": {"command": "true"}})
    assert registry.build("loss", {"class_path": "SubTrajectoryBalance"}).lamda == 0.9  # a bare registered name


def test_resolve_fills_every_default_and_rebuilds_the_same_component():
    spec = registry.resolve("conditioner", {"name": "logit", "hidden_dim": 64})
    assert spec["class_path"] == "lgfn.models.conditioners.Conditioner"
    assert spec["init_args"]["logit_scaling"] is True and spec["init_args"]["hidden_dim"] == 64
    assert spec["init_args"]["n_layers"] == 2  # a default, filled in
    assert registry.resolve("conditioner", spec) == spec
    task = registry.resolve("task", {"name": "sequence", "alphabet": "AB", "length": 2, "oracle": "tfbind8"})
    assert task["init_args"]["oracle"]["class_path"] == "lgfn.oracles.tfbind8.TFBind8Oracle"  # nested, resolved


def test_decorator_registers_and_yaml_entries_load(tmp_path, monkeypatch):
    @registry.register("loss", "my_test_loss")
    class MyLoss:
        def __init__(self, scale: float = 1.0) -> None:
            self.scale = scale

    assert registry.build("loss", {"name": "my_test_loss", "scale": 2.0}).scale == 2.0
    (tmp_path / "x.yaml").write_text("kind: loss\nname: my_yaml_loss\nclass_path: lgfn.losses.subtb.SubTrajectoryBalance\n"
                                     "init_args: {lamda: 0.5}\n")
    registry.load_yaml_entries(tmp_path)
    assert registry.build("loss", "my_yaml_loss").lamda == 0.5


def test_describe_has_one_line_per_kind():
    lines = registry.describe()
    assert [line.split(":")[0] for line in lines] == list(registry.KINDS)
    assert any(line.startswith("beta_sampler: ") and "log_uniform" in line for line in lines)


def test_registry_imports_nothing_of_lgfn():
    """The registry is a leaf: every module may use it, it uses none (lgfn.components fills it)."""
    import ast

    tree = ast.parse(Path(registry.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m == "lgfn" or m.startswith("lgfn.")]


def test_the_builtin_index_lists_what_the_modules_register():
    """lgfn._builtin declares built-in components without importing them; regenerate it with
    lgfn.components.write_index() after adding one."""
    from lgfn import _builtin, components

    assert [tuple(e) for e in _builtin.ENTRIES] == components.builtin_entries()


def test_a_user_entry_keeps_a_builtin_name_when_lgfn_loads_its_module_later(tmp_path):
    (tmp_path / "x.yaml").write_text("kind: loss\nname: db\nclass_path: lgfn.losses.tb.TrajectoryBalance\n")
    saved = dict(registry._ENTRIES["loss"])
    try:
        registry.load_yaml_entries(tmp_path)
        import importlib

        import lgfn.losses.db

        importlib.reload(lgfn.losses.db)  # the built-in registration runs again
        assert registry.get("loss", "db").class_path == "lgfn.losses.tb.TrajectoryBalance"
    finally:
        registry._ENTRIES["loss"] = saved


def test_a_plugin_that_replaces_a_name_says_which_it_replaces(monkeypatch, caplog) -> None:
    from lgfn import registry as reg
    from lgfn.registry import register_task

    monkeypatch.setattr(reg, "_ENTRIES", {kind: dict(e) for kind, e in reg._ENTRIES.items()})  # restored after

    class PluginGrid:  # a plugin's class (its module is not lgfn's)
        pass

    class LaterGrid:
        pass

    PluginGrid.__module__ = LaterGrid.__module__ = "my_plugin"
    with caplog.at_level("WARNING", logger="lgfn"):
        register_task("gridworld")(PluginGrid)
        register_task("test_override_twice")(PluginGrid)
        register_task("test_override_twice")(LaterGrid)
        register_task("test_override_twice")(LaterGrid)  # the same class again: nothing to say
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "task 'gridworld': my_plugin.test_a_plugin_that_replaces_a_name_says_which_it_replaces.<locals>.PluginGrid "
        "replaces the built-in lgfn.tasks.gridworld.GridWorld",
        "task 'test_override_twice': my_plugin.test_a_plugin_that_replaces_a_name_says_which_it_replaces.<locals>."
        "LaterGrid replaces the earlier my_plugin.test_a_plugin_that_replaces_a_name_says_which_it_replaces.<locals>."
        "PluginGrid",
    ]


@registry.register_oracle("test_registry_objects_first", inputs="strings")
def _objects_first(strings: list[str], motif: str = "ab") -> list[float]:
    return [1.0 + s.count(motif) for s in strings]


def test_a_function_oracles_objects_parameter_is_no_setting():
    # LightningCLI fills in a checkpoint's class_path spec from the signature: the objects come back as None
    spec = {"class_path": f"{__name__}._objects_first", "init_args": {"strings": None, "motif": "ba"}}
    assert registry.build("oracle", spec)(["bab", "aa"]) == [2.0, 1.0]
    assert registry.resolve("oracle", spec)["init_args"] == {"motif": "ba"}
    with pytest.raises(RegistryError, match="unknown argument.s. strings; valid: motif"):
        registry.build("oracle", {"name": "test_registry_objects_first", "strings": ["ab"]})
