"""Batched MDPs: states are integer tensors, transitions are tensor ops."""

from lgfn.envs.base import Env
from lgfn.envs.hypergrid import HyperGrid
from lgfn.envs.sequence import AppendOnly, PrependAppend

__all__ = ["Env", "HyperGrid", "PrependAppend", "AppendOnly"]
