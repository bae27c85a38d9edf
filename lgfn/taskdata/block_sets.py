"""The block sets a config can name: the built-in ``qm9`` and ``seh`` sets, read from their task data files,
a block file, or a list of blocks. Here rather than in :mod:`lgfn.chem`, so chemistry reads no data files
and the data layer (whose converters use chemistry) sits above it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Mapping

from rdkit import Chem, rdBase

from lgfn.chem.blocks import BlockSet, BlockSpec
from lgfn.errors import ConfigError
from lgfn.taskdata.files import data_path

BLOCK_FILES: dict[str, str] = {"qm9": "qm9str/block_qm9str_v1.json", "seh": "sehstr/block_18.json"}


@lru_cache(maxsize=None)
def block_set(name: str) -> BlockSet:
    """The block set of a task, ``"qm9"`` (11 blocks) or ``"seh"`` (18 fragments), read once."""
    if name not in BLOCK_FILES:
        raise ConfigError(f"unknown block set {name!r}; valid: {', '.join(BLOCK_FILES)}")
    return BlockSet.from_json(data_path(BLOCK_FILES[name]), name=name)


def block_set_from_spec(spec: BlockSpec) -> BlockSet:
    """The block set a config names: ``qm9`` or ``seh``; a block file (upstream JSON with ``block_smi``
    and ``block_r``); or a list of blocks, each a SMILES (bonded at its first and last atom) or
    ``{smiles: ..., attach: [r0, r1]}`` (r0 bonds to the previous block, r1 to the next)."""
    if isinstance(spec, str):
        if spec in BLOCK_FILES:
            return block_set(spec)
        if not Path(spec).is_file():
            raise ConfigError(f"blocks {spec!r} is neither a built-in block set ({', '.join(BLOCK_FILES)}) "
                             "nor a block file")
        try:
            blocks = BlockSet.from_json(spec)
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"block file {spec}: expected JSON with block_smi and block_r keyed by '0', '1', ... "
                             f"({type(err).__name__}: {err})") from None
    else:
        if not spec:
            raise ConfigError("blocks: the list of blocks is empty")
        smiles, attach = [], []
        for i, item in enumerate(spec):
            if isinstance(item, Mapping) and "smiles" in item and set(item) <= {"smiles", "attach"}:
                smi, r = item["smiles"], item.get("attach")
            elif isinstance(item, str):
                smi, r = item, None
            else:
                raise ConfigError(f"block {i}: expected a SMILES or {{smiles: ..., attach: [r0, r1]}}, got {item!r}")
            if r is None:
                with rdBase.BlockLogs():
                    mol = Chem.MolFromSmiles(smi)
                if mol is None:
                    raise ConfigError(f"block {i}: {smi!r} is not a valid SMILES")
                r = (0, mol.GetNumAtoms() - 1)
            smiles.append(smi)
            attach.append(tuple(int(a) for a in r))
        blocks = BlockSet("custom", tuple(smiles), tuple(attach))  # type: ignore[arg-type]
    blocks.check_chains()
    return blocks
