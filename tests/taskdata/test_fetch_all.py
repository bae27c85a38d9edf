"""The whole path through the CLI: from a mirror holding only upstream originals, ``lgfn data fetch all`` builds
every file a task needs, and ``lgfn data check`` verifies them (about 30 s: the qm9 SMILES and one pass of the sEH
proxy over all strings, for its statistics and its modes). The v1 sEH modes, which no upstream file rebuilds and no
task reads, come only from a mirror or data copy: ``fetch all`` skips them without one and fetches them with one."""

from __future__ import annotations

import dataclasses
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lgfn.cli.main import main
from lgfn.taskdata import files
from lgfn.taskdata.files import data_root, registered_converters
from lgfn.taskdata.manifest import MANIFEST, TASK_FILES

pytestmark = pytest.mark.slow  # end to end: `pytest -m "not slow"` leaves it out

SHARED = data_root()
FLEXS_RNA = "rna/flexs_rna.py.txt"


@pytest.fixture
def upstream_mirror(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flexs_rna_py: tuple[Path, Path]
) -> tuple[Path, Path]:
    """(mirror folder with the upstream originals only, empty data folder); lgfn pointed at both, offline."""
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    data.mkdir()
    for relpath, entry in MANIFEST.items():
        if entry.url and (SHARED / relpath).is_file():
            (mirror / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SHARED / relpath, mirror / relpath)
    if not (mirror / FLEXS_RNA).is_file():  # not in the shared data: the stand-in, accepted by its own checksum
        stand_in = flexs_rna_py[0]
        shutil.copyfile(stand_in, mirror / FLEXS_RNA)
        size, sha256 = stand_in.stat().st_size, files.file_sha256(stand_in)
        monkeypatch.setitem(MANIFEST, FLEXS_RNA, dataclasses.replace(MANIFEST[FLEXS_RNA], sha256=sha256, size=size))
    real = urllib.request.urlopen

    def urlopen(url: str, *args, **kwargs):
        if not url.startswith("file:"):
            raise urllib.error.URLError(f"test is offline: {url}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("LGFN_DATA_DIR", str(data))
    monkeypatch.setenv("LGFN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LGFN_DATA_URL", mirror.as_uri())
    monkeypatch.delenv("LGFN_OFFLINE", raising=False)
    return mirror, data


def test_fetch_all_from_upstream_originals(
    upstream_mirror: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    mirror, data = upstream_mirror
    assert main(["data", "fetch", "all"]) == 0
    out, err = capsys.readouterr()
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert set(lines) == set(MANIFEST) and not err
    for relpath, line in lines.items():
        if relpath in registered_converters():
            inputs = ", ".join(MANIFEST[relpath].derived_from)
            assert line.startswith("fetched") and line.endswith(f"(from converted from {inputs})")
        else:  # an upstream original: from the mirror, or already there as an input of a converted file
            assert line.endswith(f"(from {(mirror / relpath).as_uri()})") or line.startswith("ok")
    assert main(["data", "check"]) == 0
    out, _ = capsys.readouterr()
    assert out.split() == [word for relpath in MANIFEST for word in ("ok", relpath)]  # every file, verified
    for task, relpaths in TASK_FILES.items():  # every task's files are there and verified
        assert main(["data", "fetch", task]) == 0
        out, _ = capsys.readouterr()
        assert [line.split()[:2] for line in out.splitlines()] == [["ok", relpath] for relpath in relpaths]

    assert {path.relative_to(data).as_posix() for path in data.rglob("*") if path.is_file()} == set(MANIFEST)
