"""Distributions of the inverse temperature β, for P_train and P_exp."""

from lgfn.beta.distributions import (
    Annealing,
    BetaSampler,
    ClippedNormal,
    Constant,
    ExpTilted,
    InverseAnnealing,
    LogUniform,
    Uniform,
)

__all__ = ["BetaSampler", "Constant", "Uniform", "LogUniform", "ExpTilted", "ClippedNormal", "Annealing", "InverseAnnealing"]
