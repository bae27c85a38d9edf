"""Experiments: grids of ordinary ``lgfn fit`` runs (cells), run resumably in parallel, then reported."""

from lgfn.experiments.spec import Cell, Experiment, load_experiment

__all__ = ["Cell", "Experiment", "load_experiment"]
