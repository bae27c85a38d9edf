"""Block-string molecules: assembly into RDKit molecules, canonical SMILES, SD files."""

from lgfn.chem.blocks import BlockSet, BlockString, canonical_smiles, to_mol, write_sdf

__all__ = ["BlockSet", "BlockString", "canonical_smiles", "to_mol", "write_sdf"]
