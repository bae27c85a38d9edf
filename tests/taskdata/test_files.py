"""Data resolution: found, missing, corrupt, fetched from file:// URLs, converted; the restricted unpickler."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from lgfn import registry
from lgfn.taskdata import converters, files
from lgfn.taskdata.files import DataError, UnsafePickleError, data_path, data_root, safe_load_pickle
from lgfn.taskdata.manifest import MANIFEST, TASK_FILES

SHARED = data_root()
"""The shared data as an absolute path, also when LGFN_DATA_DIR is relative (the README's ``../shared/data``)."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only file:// URLs may be opened, and the cache is a fresh temporary folder."""
    real = urllib.request.urlopen

    def urlopen(url: str, *args, **kwargs):
        if not url.startswith("file:"):
            raise AssertionError(f"test tried the network: {url}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("LGFN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LGFN_DATA_URL", raising=False)
    monkeypatch.delenv("LGFN_OFFLINE", raising=False)


@pytest.fixture
def empty_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No LGFN_DATA_DIR and an empty cache; returns the cache folder."""
    monkeypatch.delenv("LGFN_DATA_DIR")
    return tmp_path / "cache"


def upstream_from_shared(monkeypatch: pytest.MonkeyPatch, relpath: str) -> None:
    """Make the manifest's upstream URL of ``relpath`` a file:// URL into the shared data."""
    entry = dataclasses.replace(MANIFEST[relpath], url=(SHARED / relpath).as_uri())
    monkeypatch.setitem(MANIFEST, relpath, entry)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_found_file_is_verified_once(monkeypatch: pytest.MonkeyPatch) -> None:
    path = data_path("tfbind8/tfbind8_all.npz")
    assert path == SHARED / "tfbind8/tfbind8_all.npz"
    monkeypatch.setattr(files, "file_sha256", lambda p: pytest.fail("verified twice"))
    assert data_path("tfbind8/tfbind8_all.npz") == path


def test_unknown_file() -> None:
    with pytest.raises(DataError, match="not a known data file"):
        data_path("tfbind8/nope.npz")


def test_missing_offline_fails_in_one_line(monkeypatch: pytest.MonkeyPatch, empty_dirs: Path) -> None:
    monkeypatch.setenv("LGFN_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        data_path("tfbind8/modes_tfbind8.json")
    message = one_line(err)
    assert message.startswith("tfbind8/modes_tfbind8.json is missing")
    assert MANIFEST["tfbind8/modes_tfbind8.json"].sha256 in message
    assert "converter: tfbind8/modes_tfbind8.pkl is missing: downloads are off (LGFN_OFFLINE=1)" in message
    assert message.count("lgfn data fetch") == 1 and "lgfn data fetch tfbind8" in message


def test_relative_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LGFN_DATA_DIR", os.path.relpath(SHARED, work))
    assert data_root() == SHARED and ".." not in data_root().parts
    assert data_path("rna/modes_rna1.json") == SHARED / "rna/modes_rna1.json"


def test_corrupt_file_names_expected_checksum(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "tfbind8").mkdir(parents=True)
    (data / "tfbind8/modes_tfbind8.json").write_text('["00000000"]')
    monkeypatch.setenv("LGFN_DATA_DIR", str(data))
    with pytest.raises(DataError) as err:
        data_path("tfbind8/modes_tfbind8.json")
    message = one_line(err)
    assert "corrupt" in message and MANIFEST["tfbind8/modes_tfbind8.json"].sha256 in message
    assert "lgfn data fetch tfbind8" in message


def test_download_from_file_url_into_cache(monkeypatch: pytest.MonkeyPatch, empty_dirs: Path) -> None:
    upstream_from_shared(monkeypatch, "tfbind8/modes_tfbind8.pkl")
    path = data_path("tfbind8/modes_tfbind8.pkl")
    assert path == empty_dirs / "tfbind8/modes_tfbind8.pkl"
    assert path.read_bytes() == (SHARED / "tfbind8/modes_tfbind8.pkl").read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_download_with_wrong_checksum_is_rejected(monkeypatch: pytest.MonkeyPatch, empty_dirs: Path) -> None:
    wrong = dataclasses.replace(MANIFEST["rna/modes_rna1.pkl"], url=(SHARED / "rna/modes_rna1.json").as_uri())
    monkeypatch.setitem(MANIFEST, "rna/modes_rna1.pkl", wrong)
    with pytest.raises(DataError) as err:
        data_path("rna/modes_rna1.pkl")
    assert wrong.sha256 in one_line(err)
    assert not any(p.is_file() for p in empty_dirs.rglob("*"))


def test_mirror_fetch_and_check(monkeypatch: pytest.MonkeyPatch, empty_dirs: Path) -> None:
    monkeypatch.setenv("LGFN_DATA_URL", SHARED.as_uri())
    lines = list(files.fetch("rna"))
    assert len(lines) == len(TASK_FILES["rna"]) and all(line.startswith("fetched") for line in lines)
    assert all(line.startswith("ok") for line in files.fetch("rna"))
    status = dict(files.check())
    assert {status[r] for r in TASK_FILES["rna"]} == {"ok"}
    assert status["tfbind8/tfbind8_all.npz"] == "missing"


def test_check_shared_data_all_ok() -> None:
    status = dict(files.check())
    assert set(status) == set(MANIFEST)
    # the shared data may lack the FLEXS source the RNA task file is built from (an upstream input) and the
    # v2 sEH modes (added after it was made; built from the sEH trees)
    rebuilt = {"rna/flexs_rna.py.txt", "sehstr/modes_sehstr_gbr_v2.json"}
    assert {relpath for relpath, state in status.items() if state != "ok"} <= rebuilt
    assert {status[relpath] for relpath in rebuilt} <= {"ok", "missing"}


def test_task_files_are_in_manifest() -> None:
    assert TASK_FILES["gridworld"] == []
    assert {"tfbind8", "rna", "qm9", "seh"} <= set(TASK_FILES)
    assert all(relpath in MANIFEST for relpaths in TASK_FILES.values() for relpath in relpaths)
    with pytest.raises(DataError, match="unknown task"):
        list(files.fetch("nope"))


def test_tfbind8_table_converted_from_source(monkeypatch: pytest.MonkeyPatch, empty_dirs: Path) -> None:
    upstream_from_shared(monkeypatch, "tfbind8/SIX6_REF_R1_8mers.txt")
    path = data_path("tfbind8/tfbind8_all.npz")
    assert path == empty_dirs / "tfbind8/tfbind8_all.npz"
    with np.load(path, allow_pickle=False) as built, np.load(SHARED / "tfbind8/tfbind8_all.npz") as shipped:
        for name in ("x", "y"):
            assert built[name].dtype == shipped[name].dtype
            np.testing.assert_array_equal(built[name], shipped[name])


def test_modes_json_converted_from_pickle(monkeypatch: pytest.MonkeyPatch, empty_dirs: Path) -> None:
    upstream_from_shared(monkeypatch, "rna/modes_rna1.pkl")
    assert data_path("rna/modes_rna1.json") == empty_dirs / "rna/modes_rna1.json"
    built = json.loads((empty_dirs / "rna/modes_rna1.json").read_text())
    assert built == json.loads((SHARED / "rna/modes_rna1.json").read_text())


def test_repacked_file_accepted_by_content(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "tfbind8").mkdir(parents=True)
    with np.load(SHARED / "tfbind8/tfbind8_all.npz") as shipped:
        np.savez(data / "tfbind8/tfbind8_all.npz", x=shipped["x"], y=shipped["y"])  # uncompressed: other bytes
    monkeypatch.setenv("LGFN_DATA_DIR", str(data))
    assert data_path("tfbind8/tfbind8_all.npz") == data / "tfbind8/tfbind8_all.npz"


def test_converter_output_accepted_by_content(monkeypatch: pytest.MonkeyPatch, empty_dirs: Path) -> None:
    def uncompressed(inputs: list[Path]) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **dict(zip("xy", converters.tfbind8_table_from_source(inputs[0]))))
        return buffer.getvalue()

    upstream_from_shared(monkeypatch, "tfbind8/SIX6_REF_R1_8mers.txt")
    monkeypatch.setattr(registry.get("converter", "tfbind8/tfbind8_all.npz"), "target", uncompressed)
    path = data_path("tfbind8/tfbind8_all.npz")
    assert files.file_sha256(path) != MANIFEST["tfbind8/tfbind8_all.npz"].sha256


def test_read_only_data_dir_fetches_into_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o555)
    monkeypatch.setenv("LGFN_DATA_DIR", str(data))
    monkeypatch.setenv("LGFN_DATA_URL", SHARED.as_uri())
    try:
        assert data_path("rna/modes_rna1.json") == tmp_path / "cache/rna/modes_rna1.json"
    finally:
        data.chmod(0o755)
    assert not any(data.iterdir())


def test_fetch_repairs_corrupt_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "tfbind8").mkdir(parents=True)
    (data / "tfbind8/modes_tfbind8.json").write_text("[]")
    monkeypatch.setenv("LGFN_DATA_DIR", str(data))
    monkeypatch.setenv("LGFN_DATA_URL", SHARED.as_uri())
    lines = list(files.fetch("tfbind8"))
    assert any(line.startswith("repaired tfbind8/modes_tfbind8.json") for line in lines)
    assert data_path("tfbind8/modes_tfbind8.json") == data / "tfbind8/modes_tfbind8.json"


# --------------------------------------------------------------------------- restricted unpickler


def test_safe_load_upstream_table() -> None:
    table = safe_load_pickle(SHARED / "tfbind8/tfbind8-exact-v0-all.pkl")
    with np.load(SHARED / "tfbind8/tfbind8_all.npz") as shipped:
        np.testing.assert_array_equal(table["x"], shipped["x"])
        np.testing.assert_array_equal(table["y"], shipped["y"])


def test_safe_load_upstream_modes() -> None:
    modes = safe_load_pickle(SHARED / "tfbind8/modes_tfbind8.pkl")
    assert modes == json.loads((SHARED / "tfbind8/modes_tfbind8.json").read_text())
    assert len(modes) == 328


def test_safe_load_numpy_scalars_and_old_protocols(tmp_path: Path) -> None:
    value = {"a": np.float32(1.5), "b": np.arange(3), "c": {1, 2}}
    for protocol in (2, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        loaded = safe_load_pickle(path)
        assert loaded["a"] == value["a"] and loaded["c"] == value["c"]
        np.testing.assert_array_equal(loaded["b"], value["b"])


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": _Exploit(marker)}))  # dumping runs nothing
    with pytest.raises(UnsafePickleError, match=r"system"):
        safe_load_pickle(path)
    assert not marker.exists()


def test_stale_partial_downloads_are_reported_and_removed(monkeypatch: pytest.MonkeyPatch, empty_dirs: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A fetch killed mid-download leaves a .part file: `data check` names it, the next fetch removes it; a .part
    that a running fetch is writing (its process lives) is left alone."""
    from lgfn.cli.main import main

    folder = empty_dirs / "rna"
    folder.mkdir(parents=True)
    dead = folder / ".flexs_rna.npz.pid999999999.x1.part"  # no such process
    old = folder / ".flexs_rna.npz.y2.part"  # an older lgfn's, unchanged for two days
    live = folder / f".flexs_rna.npz.pid{os.getpid()}.z3.part"
    for path in (dead, old, live):
        path.write_bytes(b"half a download")
    os.utime(old, (0, os.path.getmtime(old) - 2 * 86400))
    assert main(["data", "check"]) == 0
    stale = [line for line in capsys.readouterr().out.splitlines() if line.startswith("stale")]
    assert sorted(stale) == sorted(f"stale    {p}  (a partial download left by an interrupted fetch; `lgfn data "
                                   "fetch` removes it)" for p in (dead, old))
    monkeypatch.setenv("LGFN_DATA_URL", SHARED.as_uri())
    monkeypatch.setattr(files, "_PROGRESS_AFTER_S", 0)  # show the download bar at once
    assert main(["data", "fetch", "rna"]) == 0
    captured = capsys.readouterr()
    assert sorted(line.split()[1] for line in captured.out.splitlines() if line.startswith("removed")) == \
        sorted(map(str, (dead, old)))
    assert not dead.exists() and not old.exists() and live.exists()
    assert "lgfn: fetching" in captured.err  # the progress bar (shown at once here; after 2 s normally)
