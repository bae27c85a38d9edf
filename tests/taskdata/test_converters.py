"""Each converter, run offline on the upstream files in the shared data, rebuilds the file the manifest lists."""

from __future__ import annotations

import json
import os
import pickle
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from lgfn.taskdata import converters, files, seh_trees
from lgfn.taskdata.files import UnsafePickleError, content_sha256, data_root, file_sha256, registered_converters
from lgfn.taskdata.manifest import MANIFEST

pytestmark = pytest.mark.slow  # rebuilds full data files: `pytest -m "not slow"` leaves it out

SHARED = data_root()
CONVERTERS = registered_converters()  # {relpath: converter}, as the registry holds them
FLEXS_RNA = "rna/flexs_rna.py.txt"
SEH_TREES, SEH_MODES_V1 = "sehstr/sehstr_gbr_trees.npz", "sehstr/modes_sehstr_gbr.json"
# each converter's upstream inputs are in the shared data, except the FLEXS source of the RNA task
FROM_SHARED = sorted(relpath for relpath in CONVERTERS if FLEXS_RNA not in MANIFEST[relpath].derived_from)


def verifies(relpath: str, data: bytes, tmp_path: Path) -> str:
    """How ``data`` matches the manifest entry of ``relpath``: "bytes", "content", or "no"."""
    entry = MANIFEST[relpath]
    path = tmp_path / Path(relpath).name
    path.write_bytes(data)
    if file_sha256(path) == entry.sha256:
        return "bytes"
    return "content" if entry.content_sha256 and content_sha256(path) == entry.content_sha256 else "no"


def test_every_file_has_a_source() -> None:
    """An upstream URL or a converter for each file: everything can be had from public upstream files alone."""
    assert not {relpath for relpath, entry in MANIFEST.items() if not entry.url and relpath not in CONVERTERS}
    assert all(entry.derived_from for relpath, entry in MANIFEST.items() if relpath in CONVERTERS)


@pytest.fixture(scope="module")
def seh_values() -> np.ndarray:
    """The sEH proxy over all 18^6 strings, computed once for the tests of this module (about 10 s)."""
    with np.load(SHARED / SEH_TREES, allow_pickle=False) as data:
        return seh_trees.all_values({name: data[name] for name in data.files})


@pytest.mark.parametrize("relpath", FROM_SHARED)
def test_converter_rebuilds_manifest_file(
    relpath: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Byte-identical, except the trees .npz: the zip headers Python's zipfile writes vary by Python version."""
    inputs = [SHARED / name for name in MANIFEST[relpath].derived_from]
    if MANIFEST[relpath].derived_from == (SEH_TREES,):  # the stats and the v2 modes: the shared values, no cache
        values = request.getfixturevalue("seh_values")
        monkeypatch.setattr(seh_trees, "all_values", lambda arrays: values)
        monkeypatch.setattr(seh_trees, "_FROM_ALL_VALUES", {})
    assert verifies(relpath, CONVERTERS[relpath](inputs), tmp_path) == ("content" if relpath == SEH_TREES else "bytes")


def test_all_values_match_oracle(seh_values: np.ndarray) -> None:
    from lgfn.oracles.seh import SEHOracle

    rng = np.random.default_rng(0)
    index = np.concatenate([rng.integers(0, 18**6, 3000), [0, 18**6 - 1, int(seh_values.argmax())]])
    tokens = torch.from_numpy((index[:, None] // 18 ** np.arange(5, -1, -1)) % 18)
    assert np.array_equal(SEHOracle()(tokens).numpy(), seh_values[index])  # bit for bit


def test_seh_modes_v2_ties_in_string_order(seh_values: np.ndarray) -> None:
    modes = seh_trees.greedy_modes(seh_values, seh_trees.N_MODES)
    values, strings = seh_values[modes], seh_trees._strings(modes)
    assert [int(s, 18) for s in strings] == modes.tolist()  # the symbols are base-18 digits
    assert len(set(values.tolist())) < len(values)  # there are ties to break ...
    assert list(zip(-values, strings)) == sorted(zip(-values, strings))  # ... value descending, then string ascending
    v1 = json.loads((SHARED / SEH_MODES_V1).read_text())
    v1_values = seh_values[[int(s, 18) for s in v1]]
    assert len(set(strings) & set(v1)) == 141  # v1 broke ties in an unrecorded order
    assert (v1_values.max(), v1_values.min()) == (values[0], values[-1]) == (7.033253064721926, 6.852168579560934)


def test_trees_read_without_sklearn(tmp_path: Path) -> None:
    state = seh_trees._model_state(SHARED / "sehstr/sehstr_gbtr.pkl")
    assert type(state["_predictors"][0][0]).__name__ == "TreePredictor"
    assert isinstance(state["_predictors"][0][0], seh_trees.SklearnStandIn)
    assert not any(name == "sklearn" or name.startswith("sklearn.") for name in sys.modules)


class _Gadget:
    def __reduce__(self):
        return (os.system, ("true",))


def test_trees_unpickler_admits_only_the_stand_ins(tmp_path: Path) -> None:
    other = tmp_path / "other.pkl"  # a scikit-learn class that is not one of the four
    other.write_bytes(b"csklearn.ensemble._forest\nRandomForestRegressor\n.")
    with pytest.raises(UnsafePickleError, match="RandomForestRegressor"):
        files.safe_load_pickle(other, seh_trees.SklearnTreesUnpickler)
    gadget = tmp_path / "gadget.pkl"
    gadget.write_bytes(pickle.dumps([_Gadget()]))
    with pytest.raises(UnsafePickleError, match="system"):
        files.safe_load_pickle(gadget, seh_trees.SklearnTreesUnpickler)
    with pytest.raises(ValueError, match="HistGradientBoostingRegressor"):  # a stand-in, but not the model
        seh_trees._model_state(SHARED / "tfbind8/modes_tfbind8.pkl")


def test_greedy_modes_rule() -> None:
    values = -np.random.default_rng(0).random(18**6)
    values[[5, 6, 18 * 5, 18**5]] = [3.0, 2.0, 2.0, 1.0]  # 6 is one substitution from 5; 90 and 18^5 are two
    assert seh_trees.greedy_modes(values, 3).tolist() == [5, 18 * 5, 18**5]
    values[[3 * 18**5 + 1, 2 * 18**5]] = 4.0  # a tie, two substitutions apart: the earlier string first
    assert seh_trees.greedy_modes(values, 2).tolist() == [2 * 18**5, 3 * 18**5 + 1]


def test_rna_task_from_flexs_like_source(flexs_rna_py: tuple[Path, Path], tmp_path: Path) -> None:
    """The stand-in source (conftest) carries the shipped values, so the output must be the shipped bytes."""
    path, marker = flexs_rna_py
    data = CONVERTERS["rna/rna_l14_rna1_task.json"]([path])
    assert verifies("rna/rna_l14_rna1_task.json", data, tmp_path) == "bytes"
    assert not marker.exists()  # parsed, never run


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("def registry(:\n", "does not parse"),
        ("def registry():\n    targets = load()\n    starts = {}\n", "malformed"),
        ("def registry():\n    targets = ['ACGU']\n    starts = {50: {1: 'A'}}\n", "starts of length 14"),
        ("targets = ['ACGU']\n", "no list of RNA targets"),
    ],
)
def test_rna_registry_parser_rejects(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        converters.flexs_rna_registry(text)


@pytest.mark.network
@pytest.mark.skipif(os.environ.get("LGFN_TEST_NETWORK") != "1", reason="downloads rna.py; set LGFN_TEST_NETWORK=1")
def test_rna_task_from_flexs_download(tmp_path: Path) -> None:
    entry = MANIFEST[FLEXS_RNA]
    path = tmp_path / "flexs_rna.py.txt"
    with urllib.request.urlopen(entry.url, timeout=60) as response:
        path.write_bytes(response.read())
    assert file_sha256(path) == entry.sha256
    assert verifies("rna/rna_l14_rna1_task.json", CONVERTERS["rna/rna_l14_rna1_task.json"]([path]), tmp_path) == "bytes"


def test_qm9_table_keys_checked(tmp_path: Path) -> None:
    bad = tmp_path / "s5.pkl"
    bad.write_bytes(pickle.dumps({"00000": np.float32(1.0)}))
    with pytest.raises(ValueError, match="161051"):
        CONVERTERS["qm9str/qm9str_s5.npz"]([bad, SHARED / "qm9str/block_qm9str_v1.json"])
