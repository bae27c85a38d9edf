"""Metrics: exact distribution checks for enumerable tasks and discovery metrics for all.

Molecule metrics live in :mod:`lgfn.metrics.molecular` (they need RDKit).
"""

from lgfn.metrics.discovery import (
    DistinctObjects,
    ModesFound,
    TopKDiversity,
    TopKReward,
    mean_pairwise_distance,
    string_ids,
)

__all__ = ["DistinctObjects", "ModesFound", "TopKDiversity", "TopKReward", "mean_pairwise_distance", "string_ids"]
