"""Two reward oracles written outside lgfn and registered by decorator: a worked plugin (see README.md here).

Load this file with ``lgfn fit --plugins examples/custom_oracle/my_oracles.py ...``, or install this
folder (``pip install examples/custom_oracle``): its ``pyproject.toml`` announces the module under the
``lgfn.plugins`` entry-point group, so lgfn then finds the oracles with no flag.
"""

from __future__ import annotations

import time

from rdkit import Chem
from rdkit.Chem import QED

from lgfn.registry import register_oracle


@register_oracle("motif_count", inputs="strings")
def motif_count(sequences: list[str], motif: str = "GAT") -> list[float]:
    """1 + the number of occurrences of ``motif`` in each sequence (a function of strings: the simplest oracle).

    ``motif`` is set from the config: ``oracle: {name: motif_count, motif: TATA}``.
    """
    return [1.0 + sum(s.startswith(motif, i) for i in range(len(s))) for s in sequences]


@register_oracle("qed", inputs="smiles")
def qed(smiles: list[str]) -> list[float | None]:
    """Drug-likeness (RDKit QED, in (0, 1)) of each molecule; None for one RDKit cannot score, which
    lgfn reports and leaves out of training."""
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    return [QED.qed(m) if m is not None else None for m in mols]


@register_oracle("slow_motif", inputs="strings")
class SlowMotif:
    """``motif_count`` at the cost of a real oracle: building it takes ``load_seconds`` (as loading a model
    does) and scoring ``seconds`` per object (as docking does). Nothing here is about parallelism:
    ``parallel.yaml`` runs it on a pool of processes, or a Ray cluster, by configuration alone, and each
    worker builds it once."""

    def __init__(self, motif: str = "GAT", seconds: float = 0.05, load_seconds: float = 1.0) -> None:
        time.sleep(load_seconds)
        self.motif, self.seconds = motif, seconds

    def __call__(self, sequences: list[str]) -> list[float]:
        time.sleep(self.seconds * len(sequences))
        return motif_count(sequences, self.motif)
