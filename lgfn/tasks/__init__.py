"""Tasks: an MDP, a reward oracle, a reward transform and what to evaluate."""

from lgfn.tasks.base import RewardTransform, Task
from lgfn.tasks.gridworld import GridWorld
from lgfn.tasks.sequence import QM9, SEH, BlockStrings, RNABinding, SequenceTask, TFBind8

__all__ = ["RewardTransform", "Task", "GridWorld", "SequenceTask", "TFBind8", "RNABinding", "QM9", "SEH", "BlockStrings"]
