"""Plugins: --plugins modules and files, and installed packages found through the lgfn.plugins entry points."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lgfn import plugins, registry
from lgfn.plugins import PluginError, load_entry_points, load_plugins, split_plugin_args

REPO = Path(__file__).resolve().parents[1]


def test_split_plugin_args():
    argv = ["fit", "--plugins", "a.py", "pkg.mod", "--config", "c.yaml", "--plugins=b,c", "--trainer.devices", "2"]
    assert split_plugin_args(argv) == (["fit", "--config", "c.yaml", "--trainer.devices", "2"],
                                       ["a.py", "pkg.mod", "b", "c"])
    assert split_plugin_args(["sample", "--ckpt", "x"]) == (["sample", "--ckpt", "x"], [])
    with pytest.raises(PluginError, match="needs at least one"):
        split_plugin_args(["fit", "--plugins", "--config", "c.yaml"])


def test_a_file_plugin_registers_its_oracle_and_is_recorded(tmp_path):
    path = tmp_path / "test_plugins_file_oracle.py"
    path.write_text("from lgfn.registry import register_oracle\n"
                    "@register_oracle('test_plugins_file_oracle', inputs='strings')\n"
                    "def score(strings):\n    return [1.0] * len(strings)\n")
    [module] = load_plugins([str(path)])
    assert registry.get("oracle", "test_plugins_file_oracle").load() is module.score
    assert str(path.resolve()) in plugins.loaded()
    assert load_plugins([str(path)]) == [module]  # loading twice is harmless


@pytest.mark.parametrize("spec,needle", [
    ("no_such_module_xyz", "plugin 'no_such_module_xyz' is neither a .py file nor an importable module"),
    ("missing_file.py", "plugin file missing_file.py not found"),
    ("json", None),  # an importable module is fine
])
def test_plugins_that_cannot_be_found(spec, needle):
    if needle is None:
        load_plugins([spec])
        return
    with pytest.raises(PluginError, match=needle):
        load_plugins([spec])


def test_a_plugin_that_raises_is_named_in_one_line(tmp_path):
    path = tmp_path / "test_plugins_broken.py"
    path.write_text("import math\nraise RuntimeError('no licence for the docking program\\nsee log')\n")
    with pytest.raises(PluginError) as err:
        load_plugins([str(path)])
    assert str(err.value) == (f"plugin file {path} failed to import "
                              "(RuntimeError: no licence for the docking program)")
    assert "test_plugins_broken" not in sys.modules


def _dist_info(root: Path, name: str, entry: str) -> None:
    """A minimal installed distribution: what pip leaves in site-packages, found by importlib.metadata."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[lgfn.plugins]\n{entry}\n")


def test_entry_point_plugin_is_loaded_and_a_broken_one_is_named(tmp_path, monkeypatch):
    (tmp_path / "test_plugins_ep_mod.py").write_text(
        "from lgfn.registry import register_oracle\n"
        "@register_oracle('test_plugins_ep_oracle')\ndef score(x):\n    return x.sum(1).double()\n")
    _dist_info(tmp_path, "lgfn_test_ep", "mine = test_plugins_ep_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_entry_points()
    assert "test_plugins_ep_oracle" in registry.names("oracle") and "test_plugins_ep_mod" in plugins.loaded()

    monkeypatch.setenv("LGFN_DISABLE_PLUGIN_AUTOLOAD", "1")
    _dist_info(tmp_path / "broken", "lgfn_test_broken", "oops = no_such_module_for_lgfn")
    monkeypatch.syspath_prepend(str(tmp_path / "broken"))
    load_entry_points()  # disabled: nothing is imported
    monkeypatch.delenv("LGFN_DISABLE_PLUGIN_AUTOLOAD")
    with pytest.raises(PluginError, match=r"plugin 'oops' \(entry point no_such_module_for_lgfn of lgfn_test_broken\) "
                                          r"failed to load \(ModuleNotFoundError.*LGFN_DISABLE_PLUGIN_AUTOLOAD=1"):
        load_entry_points()


def test_the_example_plugin_is_found_by_entry_point_with_no_flag(tmp_path):
    """As if `pip install examples/custom_oracle` had run: a fresh `lgfn` process lists its oracles."""
    _dist_info(tmp_path, "lgfn_example_oracles", "example_oracles = my_oracles")
    env_path = os.pathsep.join([str(tmp_path), str(REPO / "examples" / "custom_oracle")])
    out = subprocess.run([sys.executable, "-m", "lgfn", "registry"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": env_path}, check=True).stdout
    oracles = next(line for line in out.splitlines() if line.startswith("oracle:"))
    assert "motif_count" in oracles and "qed" in oracles
