"""Molecule metrics: Tanimoto diversity of Morgan fingerprints and distinct canonical SMILES.

Molecules are compared as molecules, not as the strings that built them: SMILES are
canonicalised with RDKit, so two block strings (or SMILES spellings) of one molecule count once.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator
from torch import Tensor

from lgfn.metrics.discovery import TopKDistinct

_MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


def _mol(smiles: str) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse SMILES {smiles!r}")
    return mol


def tanimoto_diversity(smiles: Sequence[str]) -> float:
    """Mean over unordered pairs of 1 − Tanimoto similarity (Morgan, radius 2, 2048 bits).

    Fewer than two molecules have no pairs: returns 0.0.
    """
    fps = [_MORGAN.GetFingerprint(_mol(s)) for s in smiles]
    n = len(fps)
    if n < 2:
        return 0.0
    similarity = sum(sum(DataStructs.BulkTanimotoSimilarity(fps[i], fps[i + 1 :])) for i in range(n - 1))
    pairs = n * (n - 1) / 2
    return (pairs - similarity) / pairs


class TopKTanimotoDiversity(TopKDistinct):
    """Tanimoto diversity (:func:`tanimoto_diversity`) of the ``k`` best distinct objects by reward.

    ``update(strings, rewards, smiles)``: objects are told apart by ``strings`` (as in
    :class:`~lgfn.metrics.discovery.TopKReward`), and each keeps the SMILES passed with it,
    stored as tensor states so the value covers all DDP ranks. ``compute()`` → float64.
    """

    def __init__(self, k: int = 100, **kwargs: Any) -> None:
        super().__init__(k=k, store_text=True, **kwargs)

    def update(self, strings: Sequence[str], rewards: Union[Sequence[float], Tensor], smiles: Sequence[str]) -> None:
        self._add(strings, rewards, smiles)

    def compute(self) -> Tensor:
        _, smiles = self.best()
        return torch.tensor(tanimoto_diversity(smiles), dtype=torch.float64, device=self.device)
