"""Block-string assembly: the qm9 rule must reproduce the published SMILES table exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rdkit import Chem

from lgfn.chem import BlockSet, canonical_smiles, to_mol, write_sdf
from lgfn.taskdata import data_path
from lgfn.taskdata.block_sets import BLOCK_FILES, block_set


def canon(smiles: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def test_block_sets() -> None:
    qm9, seh = block_set("qm9"), block_set("seh")
    assert qm9.chars == "0123456789a" and len(qm9) == 11
    assert seh.chars == "0123456789abcdefgh" and len(seh) == 18
    assert qm9.smiles[7] == "c1ccccc1" and qm9.block_r[9] == (0, 2)
    assert seh.block_r[12] == (8, 4)
    assert qm9.indices("9a") == [9, 10] == qm9.indices([9, 10])
    assert qm9.to_string([10, 0]) == "a0"


@pytest.mark.parametrize(
    "string, smiles",
    [
        ("00000", "CCCCC"),
        ("00004", "CCCCC=O"),
        ("40000", "CCCCC=O"),
        ("00400", "CCC(=O)CC"),
        # pyrrolidine C1CCNC1, block_r (0, 2): the first block's r1 (alpha to N) joins the chain
        ("90000", "CCCCC1CCCN1"),
        # ...and a later block enters at its r0 (beta to N)
        ("00009", "CCCCC1CCNC1"),
        ("77777", "c1ccc(-c2ccc(-c3ccc(-c4ccc(-c5ccccc5)cc4)cc3)cc2)cc1"),
    ],
)
def test_qm9_hand_cases(string: str, smiles: str) -> None:
    assert canonical_smiles([string], blocks=block_set("qm9")) == [canon(smiles)]


@pytest.mark.slow
def test_qm9_smiles_table_full() -> None:
    """Every one of the 161,051 strings gives exactly the published canonical SMILES (~15 s)."""
    with np.load(data_path("qm9str/qm9str_s5.npz"), allow_pickle=False) as data:
        strings, expected = data["x"].tolist(), data["smiles"].tolist()
    got = canonical_smiles(strings, blocks=block_set("qm9"))
    mismatches = [(s, g, e) for s, g, e in zip(strings, got, expected) if g != e]
    assert not mismatches, f"{len(mismatches)} mismatches, e.g. {mismatches[:5]}"
    assert len(set(got)) == 111_550


@pytest.mark.parametrize(
    "string, smiles",
    [
        # CO, block_r (1, 0): chain O-C-O-C-..., ends OH and CH3
        ("000000", "OCOCOCOCOCOC"),
        ("222222", "SSSSSS"),
        # pyridinium, block_r (3, 1): C1 (meta to N) bonds the next ring's [nH+], which loses its H
        ("44", "c1c[nH+]cc(-[n+]2ccccc2)c1"),
        # pyrrolidine, block_r (2, 0): r1 = C0 (beta to N) bonds benzene
        ("a5", "c1ccc(C2CCNC2)cc1"),
        # hypoxanthine, block_r (3, 6): imidazole [nH] (atom 6) bonds C2 (atom 3) of the next
        ("11", "O=c1[nH]cnc2n(-c3nc4[nH]cnc4c(=O)[nH]3)cnc12"),
    ],
)
def test_seh_hand_cases(string: str, smiles: str) -> None:
    assert canonical_smiles([string], blocks=block_set("seh")) == [canon(smiles)]


def test_seh_sample_valid_and_deterministic() -> None:
    seh = block_set("seh")
    rng = random.Random(0)
    strings = ["".join(rng.choice(seh.chars) for _ in range(6)) for _ in range(500)]
    smiles = canonical_smiles(strings, blocks=block_set("seh"))
    fresh = BlockSet.from_json(data_path(BLOCK_FILES["seh"]), name="seh")
    assert fresh.canonical_smiles(strings) == smiles
    block_mols = [Chem.MolFromSmiles(s) for s in seh.smiles]
    for string, smi in zip(strings, smiles):
        ids = seh.indices(string)
        mol = Chem.MolFromSmiles(smi)
        assert mol is not None and Chem.MolToSmiles(mol) == smi
        # assembly only adds the 5 junction bonds: heavy atoms and charges are the blocks'
        assert mol.GetNumAtoms() == sum(block_mols[b].GetNumAtoms() for b in ids)
        assert mol.GetNumBonds() == sum(block_mols[b].GetNumBonds() for b in ids) + 5
        assert Chem.GetFormalCharge(mol) == string.count("4")
        assert len(Chem.GetMolFrags(mol)) == 1


def test_to_mol_accepts_indices_and_rejects_bad_input() -> None:
    assert Chem.MolToSmiles(to_mol([0, 1], blocks=block_set("qm9"))) == "CO"
    with pytest.raises(ValueError):
        to_mol("00b", blocks=block_set("qm9"))
    with pytest.raises(ValueError):
        to_mol([11], blocks=block_set("qm9"))
    with pytest.raises(ValueError):
        to_mol("", blocks=block_set("qm9"))
    with pytest.raises(ValueError):
        block_set("zinc")


def test_write_sdf_round_trip(tmp_path) -> None:
    strings = ["11111", "aa131", "77777"]
    rewards = [17.37, 0.1 + 0.2, np.float32(6.5)]
    path = tmp_path / "mols.sdf"
    write_sdf(path, strings, {"reward": rewards, "rank": [1, 2, 3]}, blocks=block_set("qm9"))
    mols = list(Chem.SDMolSupplier(str(path)))
    assert [m.GetProp("_Name") for m in mols] == strings
    assert [float(m.GetProp("reward")) for m in mols] == [float(r) for r in rewards]
    assert [m.GetIntProp("rank") for m in mols] == [1, 2, 3]
    assert [Chem.MolToSmiles(m) for m in mols] == canonical_smiles(strings, blocks=block_set("qm9"))
    for m in mols:
        pos = m.GetConformer().GetPositions()
        assert not m.GetConformer().Is3D() and np.ptp(pos[:, :2]) > 0
    with pytest.raises(ValueError):
        write_sdf(tmp_path / "bad.sdf", strings, {"reward": [1.0]}, blocks=block_set("qm9"))
