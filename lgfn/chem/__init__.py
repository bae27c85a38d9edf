"""Block-string molecules: assembly into RDKit molecules, canonical SMILES, SD files."""

from lgfn.chem.blocks import BLOCK_FILES, BlockSet, BlockString, block_set, canonical_smiles, to_mol, write_sdf

__all__ = ["BLOCK_FILES", "BlockSet", "BlockString", "block_set", "canonical_smiles", "to_mol", "write_sdf"]
