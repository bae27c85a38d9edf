"""What the RNA1 task file is built from and its oracle reads back: the token alphabet and the binding energy
of a target's perfect complement. Here, below both, so building data never imports an oracle."""

from __future__ import annotations

ALPHABET = "UCGA"  # token order of Logit-GFN (``alphabet_in_logit_gfn``)

_COMPLEMENT = str.maketrans("ACGU", "UGCA")


def complement_energy(target: str) -> float:
    """Duplex energy (kcal/mol, negative) of ``target`` with its perfect reverse complement."""
    import RNA  # ViennaRNA: imported by the RNA task only

    return RNA.duplexfold(target.translate(_COMPLEMENT)[::-1], target).energy
