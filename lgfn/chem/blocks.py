"""Molecules written as strings of building blocks (the qm9str and sehstr tasks).

A string ``s`` of block characters is a linear chain of blocks. Each block has
two attachment atoms ``block_r = (r0, r1)``: the first block keeps ``r0`` open,
and every later block bonds its ``r0`` to the previous block's ``r1`` by a single
bond; each bonded atom gives up one explicit H (an ``[nH]`` becomes ``n``).
This is Shen et al.'s ``MolStrMDP.state_to_bgl`` (add each block at the last
open stem with its first attachment atom) and reproduces the ``smiles`` column of
``qm9str/qm9str_s5.npz`` for all 161,051 strings.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Mapping, Sequence, Union

from rdkit import Chem, rdBase
from rdkit.Chem import rdDepictor

from lgfn.errors import ConfigError

SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyz"
"""Block characters in index order, as upstream names them."""

BlockString = Union[str, Sequence[int]]
"""A molecule: a string of block characters, or the block indices themselves."""

BlockSpec = Union[str, Sequence[Union[str, Mapping[str, Any]]]]
"""How a config names blocks: a built-in set, a block file, or a list of SMILES / {smiles, attach}."""


@dataclass(frozen=True)
class BlockSet:
    """The blocks of one task: their SMILES and the two attachment atoms of each."""

    name: str
    smiles: tuple[str, ...]
    block_r: tuple[tuple[int, int], ...]
    _mols: tuple[Chem.Mol, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.smiles) != len(self.block_r) or len(self.smiles) > len(SYMBOLS):
            raise ConfigError(f"block set {self.name}: {len(self.smiles)} SMILES, {len(self.block_r)} block_r")
        mols = tuple(Chem.MolFromSmiles(s) for s in self.smiles)
        for i, (mol, r) in enumerate(zip(mols, self.block_r)):
            if mol is None or len(r) != 2 or not all(0 <= a < mol.GetNumAtoms() for a in r):
                raise ConfigError(
                    f"block set {self.name}: block {i} ({self.smiles[i]}): bad SMILES or attachment atoms {r}"
                )
        object.__setattr__(self, "_mols", mols)

    @classmethod
    def from_json(cls, path: str | PathLike[str], name: str = "") -> "BlockSet":
        """Read upstream's block file (``block_smi`` and ``block_r`` keyed by "0", "1", ...)."""
        with open(path) as f:
            raw = json.load(f)
        keys = sorted(raw["block_smi"], key=int)
        return cls(
            name=name or str(path),
            smiles=tuple(raw["block_smi"][k] for k in keys),
            block_r=tuple(tuple(raw["block_r"][k]) for k in keys),  # type: ignore[misc]
        )

    @property
    def chars(self) -> str:
        """The block characters: ``chars[i]`` names block ``i``."""
        return SYMBOLS[: len(self.smiles)]

    def __len__(self) -> int:
        return len(self.smiles)

    def indices(self, string: BlockString) -> list[int]:
        """Block indices of a string (or a validated copy of an index sequence)."""
        if isinstance(string, str):
            try:
                return [self.chars.index(c) for c in string]
            except ValueError:
                raise ConfigError(f"{string!r} is not a string over the {self.name} blocks {self.chars!r}") from None
        ids = [int(i) for i in string]
        if any(not 0 <= i < len(self) for i in ids):
            raise ConfigError(f"block indices {ids} out of range for the {len(self)} {self.name} blocks")
        return ids

    def to_string(self, string: BlockString) -> str:
        """The character form of a string or index sequence."""
        return "".join(self.chars[i] for i in self.indices(string))

    def to_mol(self, string: BlockString) -> Chem.Mol:
        """Assemble the blocks into a sanitized molecule (atoms in block order)."""
        ids = self.indices(string)
        if not ids:
            raise ConfigError("cannot build a molecule from an empty block string")
        mol = Chem.RWMol()
        open_atom = -1
        for b in ids:
            offset = mol.GetNumAtoms()
            mol.InsertMol(self._mols[b])
            r0, r1 = self.block_r[b]
            if open_atom >= 0:
                mol.AddBond(open_atom, offset + r0, Chem.BondType.SINGLE)
                for idx in (open_atom, offset + r0):
                    atom = mol.GetAtomWithIdx(idx)
                    atom.SetNumExplicitHs(max(atom.GetNumExplicitHs() - 1, 0))
            open_atom = offset + r1
        Chem.SanitizeMol(mol)
        return mol.GetMol()

    def check_chains(self) -> None:
        """Fail in one line on a block that cannot sit inside a chain (bonded at both attachment atoms),
        so a bad block set is a config error, not a crash in the middle of training."""
        for i, char in enumerate(self.chars):
            try:
                with rdBase.BlockLogs():
                    self.to_mol(char * 3)
            except Exception as err:  # noqa: BLE001 (RDKit raises several sanitisation errors)
                raise ConfigError(f"block set {self.name}: block {i} ({self.smiles[i]}) cannot be bonded at its "
                                 f"attachment atoms {self.block_r[i]} ({err})") from None

    def canonical_smiles(self, strings: Sequence[BlockString]) -> list[str]:
        """RDKit canonical SMILES of each string; repeated strings are built once."""
        cache: dict[str, str] = {}
        out = []
        for s in strings:
            key = self.to_string(s)
            if key not in cache:
                cache[key] = Chem.MolToSmiles(self.to_mol(key))
            out.append(cache[key])
        return out


def to_mol(string: BlockString, *, blocks: BlockSet) -> Chem.Mol:
    """The molecule of one block string of the given block set."""
    return blocks.to_mol(string)


def canonical_smiles(strings: Sequence[BlockString], *, blocks: BlockSet) -> list[str]:
    """Canonical SMILES of block strings of the given block set."""
    return blocks.canonical_smiles(strings)


def _prop_text(value: object) -> str:
    """SD property text; floats keep every digit (``repr``), so a reward round-trips exactly."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        return repr(v) if math.isfinite(v) else str(v)
    return str(value)


def write_sdf(
    path: str | PathLike[str],
    strings: Sequence[BlockString],
    props: Mapping[str, Sequence[object]] | None = None,
    *,
    blocks: BlockSet,
) -> None:
    """Write the molecules with 2-D coordinates to an SD file, named by their block string.

    ``props`` maps a property name (e.g. ``reward``) to one value per molecule;
    the block string and SMILES are always written as ``block_string`` / ``smiles``.
    """
    bs = blocks
    props = dict(props or {})
    for key, values in props.items():
        if len(values) != len(strings):
            raise ConfigError(f"property {key!r} has {len(values)} values for {len(strings)} molecules")
    writer = Chem.SDWriter(str(path))
    try:
        for i, s in enumerate(strings):
            name = bs.to_string(s)
            mol = bs.to_mol(name)
            rdDepictor.Compute2DCoords(mol)
            mol.SetProp("_Name", name)
            mol.SetProp("block_string", name)
            mol.SetProp("smiles", Chem.MolToSmiles(mol))
            for key, values in props.items():
                mol.SetProp(key, _prop_text(values[i]))
            writer.write(mol)
    finally:
        writer.close()
