"""Fixed-length string tasks: a generic one over any alphabet and oracle, and the method's four benchmarks."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import torch
from torch import Tensor

from lgfn import registry
from lgfn.envs.sequence import AppendOnly, PrependAppend
from lgfn.registry import ComponentSpec, register_task
from lgfn.tasks.base import RewardTransform, Task, make_transform

MDPs = {"prepend_append": PrependAppend, "append_only": AppendOnly}


@register_task("sequence")
class SequenceTask(Task):
    """Strings of ``length`` tokens over ``alphabet``, scored by a registered oracle.

    Args:
        alphabet: one character per token; token i is ``alphabet[i]``.
        length: L, the length of every object.
        oracle: the reward oracle (registry name or spec): tokens [N, L] -> raw rewards [N].
        mdp: ``prepend_append`` (the official MDP) or ``append_only`` (autoregressive).
        transform: reward transform overrides (see :class:`RewardTransform`).
        modes: known mode strings, for the modes-found metric.
    """

    name = "sequence"
    transform_defaults: dict[str, Any] = {}

    def __init__(self, alphabet: str, length: int, oracle: ComponentSpec,
                 mdp: Literal["prepend_append", "append_only"] = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None,
                 modes: list[str] | None = None) -> None:
        if mdp not in MDPs:
            raise ValueError(f"mdp must be one of {', '.join(MDPs)}, got {mdp!r}")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet {alphabet!r} repeats a character")
        self.alphabet, self.length = alphabet, length
        self.env = MDPs[mdp](len(alphabet), length)
        self.oracle = registry.build("oracle", oracle)
        self.transform = make_transform(transform, self.transform_defaults)
        self._modes = modes
        self._lookup = {c: i for i, c in enumerate(alphabet)}

    def raw_reward(self, x: Tensor) -> Tensor:
        return self.oracle(x.cpu()).double()

    def to_strings(self, x: Tensor) -> list[str]:
        return ["".join(self.alphabet[t] for t in row) for row in x.tolist()]

    def from_strings(self, strings: list[str]) -> Tensor:
        bad = next((s for s in strings if len(s) != self.length or set(s) - set(self.alphabet)), None)
        if bad is not None:
            raise ValueError(f"object {bad!r} is not a length-{self.length} string over {self.alphabet!r}")
        return torch.tensor([[self._lookup[c] for c in s] for s in strings], dtype=torch.long).reshape(-1, self.length)

    def modes(self) -> list[str] | None:
        return self._modes


@register_task("tfbind8")
class TFBind8(SequenceTask):
    """DNA 8-mers scored by binding to SIX6 (the full table); reward max(y, 1e-3)^3 scaled to max 10."""

    name = "tfbind8"
    transform_defaults = {"clip_min": 0.001, "exponent": 3.0, "max_reward": 10.0, "reference": 1.0}

    def __init__(self, mdp: Literal["prepend_append", "append_only"] = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None) -> None:
        from lgfn.oracles.tfbind8 import ALPHABET, LENGTH

        super().__init__(ALPHABET, LENGTH, "tfbind8", mdp, transform)

    def modes(self) -> list[str]:
        from lgfn.oracles.tfbind8 import load_modes

        return load_modes()

    def offline_objects(self) -> Tensor:
        """The official offline set: the bottom 50% of the table by y, each sequence once."""
        from lgfn.oracles.tfbind8 import offline_train_set

        return torch.from_numpy(offline_train_set(unique=True)[0]).long()


@register_task("rna", target=1)
@register_task("rna1", target=1)
@register_task("rna2", target=2)
@register_task("rna3", target=3)
class RNABinding(SequenceTask):
    """RNA 14-mers binding a FLEXS L14 target (ViennaRNA duplexfold); max(f, 1e-3)^8 with 1.0545 -> 10."""

    name = "rna"
    transform_defaults = {"clip_min": 0.001, "exponent": 8.0, "max_reward": 10.0, "reference": 1.0545}

    def __init__(self, target: int = 1, mdp: Literal["prepend_append", "append_only"] = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None, workers: int | None = None) -> None:
        from lgfn.oracles.rna import ALPHABET, LENGTH

        self.target = target
        super().__init__(ALPHABET, LENGTH, {"name": "rna", "target": target, "workers": workers}, mdp, transform)

    def modes(self) -> list[str] | None:
        from lgfn.oracles.rna import load_modes

        return load_modes() if self.target == 1 else None


class BlockStringTask(SequenceTask):
    """Molecules as strings of building blocks (Shen et al. 2023), with RDKit SMILES per object."""

    blocks_name = ""
    distance = "hamming"

    def __init__(self, oracle: str, length: int, mdp: Literal["prepend_append", "append_only"],
                 transform: RewardTransform | Mapping[str, Any] | None) -> None:
        from lgfn.chem import block_set

        self.blocks = block_set(self.blocks_name)
        super().__init__("".join(self.blocks.chars), length, oracle, mdp, transform)

    def modes(self) -> list[str]:
        return self.oracle.modes()

    offline_pool: int | None = None  # objects drawn for the offline set when the space is too large to list

    def offline_objects(self) -> Tensor:
        """The bottom half by raw reward of every object (or of ``offline_pool`` seeded random ones)."""
        if self.offline_pool is None:
            x = self.terminal_objects()[1]
        else:
            g = torch.Generator().manual_seed(0)
            x = torch.randint(len(self.alphabet), (self.offline_pool, self.length), generator=g)
        r = self.raw_reward(x)
        return x[r <= r.median()]

    def smiles(self, x: Tensor) -> list[str]:
        return self.blocks.canonical_smiles(self.to_strings(x))

    def extra_columns(self, x: Tensor) -> dict[str, list[Any]]:
        return {"smiles": self.smiles(x)}


@register_task("qm9")
class QM9(BlockStringTask):
    """5 of 11 blocks; reward the HOMO-LUMO-gap proxy table, max(r, 1e-3)^5 scaled to max 100."""

    name = "qm9"
    blocks_name = "qm9"
    transform_defaults = {"clip_min": 0.001, "exponent": 5.0, "max_reward": 100.0}

    def __init__(self, mdp: Literal["prepend_append", "append_only"] = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None) -> None:
        super().__init__("qm9", 5, mdp, transform)
        if self.transform.reference is None:  # the table's best reward maps to max_reward
            self.transform.reference = float(self.raw_reward(self.terminal_objects()[1]).max())


@register_task("seh")
class SEH(BlockStringTask):
    """6 of 18 fragments; reward the sEH tree proxy, max(r, 1e-3)^6 with 7.0333 (best) -> 10."""

    name = "seh"
    blocks_name = "seh"
    offline_pool = 65_536  # 18^6 = 34M strings: the offline set is the bottom half of a seeded sample
    transform_defaults = {"clip_min": 0.001, "exponent": 6.0, "max_reward": 10.0, "reference": 7.033253064721926}

    def __init__(self, mdp: Literal["prepend_append", "append_only"] = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None) -> None:
        super().__init__("seh", 6, mdp, transform)
