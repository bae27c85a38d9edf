"""GFlowNet objectives on batched trajectories, each with a per-trajectory β (one file per loss)."""

from lgfn.losses.base import FlowTerms, Loss
from lgfn.losses.db import DetailedBalance
from lgfn.losses.subtb import SubTrajectoryBalance
from lgfn.losses.tb import TrajectoryBalance

__all__ = ["FlowTerms", "Loss", "TrajectoryBalance", "DetailedBalance", "SubTrajectoryBalance"]
