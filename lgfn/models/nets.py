"""Small building blocks shared by the networks."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden_dim: int, n_layers: int, out_dim: int) -> nn.Sequential:
    """``n_layers`` hidden layers of ``hidden_dim`` with LeakyReLU, and a linear head."""
    dims = [in_dim] + [hidden_dim] * n_layers
    layers: list[nn.Module] = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)
