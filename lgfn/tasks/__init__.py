"""Tasks: an MDP, a reward oracle, a reward transform and what to evaluate."""

from lgfn.tasks.base import RewardTransform, Task
from lgfn.tasks.gridworld import GridWorld

__all__ = ["RewardTransform", "Task", "GridWorld"]
