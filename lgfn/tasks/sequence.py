"""Fixed-length string tasks: a generic one over any alphabet and oracle, and the method's four benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import Tensor

from lgfn.envs.sequence import AppendOnly, PrependAppend
from lgfn.errors import ConfigError
from lgfn.oracles.base import GuardedOracle, oracle_factory
from lgfn.oracles.cache import make_cache
from lgfn.oracles.executors import make_executor
from lgfn import registry
from lgfn.registry import ComponentSpec, register, register_task
from lgfn.tasks.base import RewardTransform, Task, make_transform

if TYPE_CHECKING:
    from lgfn.chem.blocks import BlockSet, BlockSpec

SMILES_CACHE_SIZE = 1_000_000  # strings whose SMILES a block task keeps (~100 MB at most)

register("mdp", "prepend_append")(PrependAppend)  # the official MDP: a token is added at either end
register("mdp", "append_only")(AppendOnly)  # autoregressive


@register_task("sequence")
class SequenceTask(Task):
    """Strings of ``length`` tokens over ``alphabet``, scored by a registered oracle: a new problem needs only an oracle.

    Args:
        alphabet: one character per token; token i is ``alphabet[i]``.
        length: L, the length of every object.
        oracle: the reward oracle (registry name or spec): tokens [N, L] (or the strings, when it is
            registered with ``inputs="strings"``) -> raw rewards [N]; see :mod:`lgfn.oracles.base`.
        mdp: ``prepend_append`` (the official MDP), ``append_only`` (autoregressive), or another registered
            ``mdp`` (``lgfn registry``).
        transform: reward transform overrides (see :class:`RewardTransform`).
        modes: known mode strings, for the modes-found metric.
        offline_pool: build the offline set from this many uniformly random objects (seed 0)
            instead of listing every object (needed when the space is too large to list).
        oracle_timeout: seconds one batched oracle call may take; objects it times out on are left out.
        fail_fast: stop with an error naming the first object the oracle cannot score, instead of
            reporting it and leaving it out of training.
        executor: where the oracle runs: ``inline`` (in this process), ``processes`` or ``ray``, or a mapping with
            its settings (``{name: processes, workers: 8, batch_size: 16, retries: 1}``); see
            :mod:`lgfn.oracles.executors`.
        cache: ``memory`` (the values of the last 2^20 objects), ``none``, or an SQLite file (``scores.sqlite``)
            that resumed runs and repeated experiments share; see :mod:`lgfn.oracles.cache`.
    """

    name = "sequence"
    transform_defaults: dict[str, Any] = {}

    def __init__(self, alphabet: str, length: int, oracle: ComponentSpec,
                 mdp: str = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None,
                 modes: list[str] | None = None, offline_pool: int | None = None,
                 oracle_timeout: float | None = None, fail_fast: bool = False,
                 executor: str | dict[str, Any] = "inline", cache: str | None = "memory") -> None:
        try:
            mdp_class = registry.get("mdp", mdp).load()
        except registry.RegistryError as err:
            raise ConfigError(f"mdp must be one of {', '.join(registry.names('mdp'))}, got {mdp!r}") from err
        if len(set(alphabet)) != len(alphabet):
            raise ConfigError(f"alphabet {alphabet!r} repeats a character")
        self.alphabet, self.length = alphabet, length
        self.env = mdp_class(len(alphabet), length)
        factory, self.oracle_inputs, oracle_name, settings = oracle_factory(oracle)
        if self.oracle_inputs == "smiles" and not self.molecular:
            raise ConfigError(f"oracle {oracle_name} scores SMILES, but the objects of task {self.name} are not "
                             "molecules; use a block-string task (blocks) or an oracle of tokens or strings")
        self.oracle_calls = GuardedOracle(factory, oracle_name, oracle_timeout, fail_fast, make_executor(executor),
                                          make_cache(cache, settings))
        self.transform = make_transform(transform, self.transform_defaults)
        self._modes = modes
        self.offline_pool = offline_pool
        self._lookup = {c: i for i, c in enumerate(alphabet)}

    def _score_tables_on_device(self, executor: str | dict[str, Any]) -> None:
        """An oracle that is a table of every object (TFBind8, QM9), run in this process (the default executor):
        a score is then a gather where the objects are, and every object is scored admissibly (the table is
        checked once), so sampling reads nothing back (see :attr:`Task.on_device`)."""
        name = executor if isinstance(executor, str) else executor.get("name")
        if name == "inline":
            self.on_device = bool(self.transform.admissible(self.oracle.table).all())

    def raw_reward(self, x: Tensor) -> Tensor:
        """One batched oracle call; NaN for the objects it cannot score (see :class:`GuardedOracle`)."""
        if self.on_device:
            return self.oracle.lookup(x)
        x = x.cpu()
        if self.oracle_inputs == "tokens":
            inputs: Tensor | list[str] = x
        else:
            inputs = self.smiles(x) if self.oracle_inputs == "smiles" else self.to_strings(x)
        return self.oracle_calls(x, inputs, self.transform.admissible, self.to_strings)

    @property
    def oracle(self) -> Any:
        """The oracle, built in this process (for what it offers besides scores, e.g. its modes)."""
        return self.oracle_calls.oracle

    def to_strings(self, x: Tensor) -> list[str]:
        return ["".join(self.alphabet[t] for t in row) for row in x.tolist()]

    def from_strings(self, strings: list[str]) -> Tensor:
        bad = next((s for s in strings if len(s) != self.length or set(s) - set(self.alphabet)), None)
        if bad is not None:
            raise ConfigError(f"object {bad!r} is not a length-{self.length} string over {self.alphabet!r}")
        return torch.tensor([[self._lookup[c] for c in s] for s in strings], dtype=torch.long).reshape(-1, self.length)

    def modes(self) -> list[str] | None:
        return self._modes

    def offline_objects(self) -> Tensor:
        """The bottom half by raw reward of every object, or of ``offline_pool`` uniformly random
        objects (seed 0) scored by the oracle when the space is too large to list; objects the
        oracle cannot score are left out."""
        if self.offline_pool is None and not self.enumerable:
            raise ConfigError(f"task {self.name}: {len(self.alphabet)}^{self.length} objects are too many to list; "
                             "set offline_pool or pass an object file to OfflineData(objects=...)")
        if self.offline_pool is None:
            x = self.terminal_objects()[1]
        else:
            g = torch.Generator().manual_seed(0)
            x = torch.randint(len(self.alphabet), (self.offline_pool, self.length), generator=g)
        r = self.raw_reward(x)
        x, r = x[r.isfinite()], r[r.isfinite()]
        return x[r <= r.median()]


@register_task("tfbind8")
class TFBind8(SequenceTask):
    """DNA 8-mers scored by binding to SIX6 (the full table); reward max(y, 1e-3)^3 scaled to max 10."""

    name = "tfbind8"
    transform_defaults = {"clip_min": 0.001, "exponent": 3.0, "max_reward": 10.0, "reference": 1.0}

    def __init__(self, mdp: str = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None,
                 executor: str | dict[str, Any] = "inline", cache: str | None = "memory") -> None:
        from lgfn.oracles.tfbind8 import ALPHABET, LENGTH

        super().__init__(ALPHABET, LENGTH, "tfbind8", mdp, transform, executor=executor, cache=cache)
        self._score_tables_on_device(executor)

    def modes(self) -> list[str]:
        from lgfn.oracles.tfbind8 import load_modes

        return load_modes()

    def offline_objects(self) -> Tensor:
        """The official offline set: the bottom 50% of the table by y, each sequence once."""
        from lgfn.oracles.tfbind8 import offline_train_set

        return torch.from_numpy(offline_train_set(unique=True)[0]).long()


@register_task("rna", aliases=("rna1",), target=1)
@register_task("rna2", target=2)
@register_task("rna3", target=3)
class RNABinding(SequenceTask):
    """RNA 14-mers binding a FLEXS L14 target (ViennaRNA duplexfold); max(f, 1e-3)^8 with 1.0545 -> 10.

    Folding costs 0.5-0.9 ms a sequence, so by default new sequences are folded on a pool of processes over the
    available cores (``executor: inline`` folds in this process, as one process per core should, e.g. parallel
    experiment cells); values do not depend on the executor.
    """

    name = "rna"
    transform_defaults = {"clip_min": 0.001, "exponent": 8.0, "max_reward": 10.0, "reference": 1.0545}

    def __init__(self, target: int = 1, mdp: str = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None,
                 executor: str | dict[str, Any] = "processes", cache: str | None = "memory",
                 offline_pool: int = 16_384) -> None:
        from lgfn.oracles.rna import ALPHABET, LENGTH

        self.target = target
        # 4^14 = 268M objects: the offline set is the bottom half of offline_pool random 14-mers
        super().__init__(ALPHABET, LENGTH, {"name": "rna", "target": target}, mdp, transform,
                         offline_pool=offline_pool, executor=executor, cache=cache)

    def modes(self) -> list[str] | None:
        from lgfn.oracles.rna import load_modes

        return load_modes() if self.target == 1 else None


class BlockStringTask(SequenceTask):
    """Molecules as strings of building blocks (Shen et al. 2023), with RDKit SMILES per object.

    ``blocks`` defaults to the subclass's built-in set ``blocks_name``; the other arguments are
    those of :class:`SequenceTask`.
    """

    blocks_name = ""

    def __init__(self, oracle: ComponentSpec, length: int, mdp: str,
                 transform: RewardTransform | Mapping[str, Any] | None, offline_pool: int | None = None,
                 blocks: BlockSet | None = None, modes: list[str] | None = None,
                 oracle_timeout: float | None = None, fail_fast: bool = False,
                 executor: str | dict[str, Any] = "inline", cache: str | None = "memory") -> None:
        from lgfn.taskdata.block_sets import block_set

        self.blocks = block_set(self.blocks_name) if blocks is None else blocks
        super().__init__("".join(self.blocks.chars), length, oracle, mdp, transform, modes, offline_pool,
                         oracle_timeout, fail_fast, executor, cache)

    def modes(self) -> list[str] | None:
        """The oracle's own modes where it lists them (qm9, seh), else the configured ones."""
        oracle_modes = getattr(self.oracle, "modes", None)
        return oracle_modes() if callable(oracle_modes) else self._modes

    @property
    def molecular(self) -> bool:
        return True

    def smiles(self, x: Tensor) -> list[str]:
        """Canonical SMILES, memoised per string: replay and training revisit the same objects."""
        cache = self.__dict__.setdefault("_smiles_cache", {})
        if len(cache) > SMILES_CACHE_SIZE:
            cache.clear()
        strings = self.to_strings(x)
        new = sorted({s for s in strings if s not in cache})
        cache.update(zip(new, self.blocks.canonical_smiles(new)))
        return [cache[s] for s in strings]

    def extra_columns(self, x: Tensor) -> dict[str, list[Any]]:
        return {"smiles": self.smiles(x)}


@register_task("blocks")
class BlockStrings(BlockStringTask):
    """Molecules of ``length`` blocks from the config, scored by any oracle: a new molecular problem needs
    only an oracle (of tokens, block strings, or SMILES with ``inputs="smiles"``).

    Args:
        blocks: ``qm9`` or ``seh`` (the built-in sets), a block file (upstream JSON with ``block_smi`` and
            ``block_r``), or a list of blocks, each a SMILES (bonded at its first and last atom) or
            ``{smiles: ..., attach: [r0, r1]}`` (atom r0 bonds to the previous block, r1 to the next).
        length: blocks per molecule.
        oracle, mdp, transform, modes, offline_pool, oracle_timeout, fail_fast, executor, cache: as for
            ``sequence``.
    """

    name = "blocks"

    def __init__(self, blocks: BlockSpec, length: int, oracle: ComponentSpec,
                 mdp: str = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None, modes: list[str] | None = None,
                 offline_pool: int | None = None, oracle_timeout: float | None = None,
                 fail_fast: bool = False, executor: str | dict[str, Any] = "inline",
                 cache: str | None = "memory") -> None:
        from lgfn.taskdata.block_sets import block_set_from_spec

        super().__init__(oracle, length, mdp, transform, offline_pool, block_set_from_spec(blocks), modes,
                         oracle_timeout, fail_fast, executor, cache)


@register_task("qm9")
class QM9(BlockStringTask):
    """5 of 11 blocks; reward the HOMO-LUMO-gap proxy table, max(r, 1e-3)^5 scaled to max 100."""

    name = "qm9"
    blocks_name = "qm9"
    transform_defaults = {"clip_min": 0.001, "exponent": 5.0, "max_reward": 100.0}

    def __init__(self, mdp: str = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None,
                 executor: str | dict[str, Any] = "inline", cache: str | None = "memory") -> None:
        super().__init__("qm9", 5, mdp, transform, executor=executor, cache=cache)
        if self.transform.reference is None:  # the table's best reward maps to max_reward
            self.transform.reference = float(self.raw_reward(self.terminal_objects()[1]).max())
        self._score_tables_on_device(executor)


@register_task("seh")
class SEH(BlockStringTask):
    """6 of 18 fragments; reward the sEH tree proxy, max(r, 1e-3)^6 with 7.0333 (best) -> 10."""

    name = "seh"
    blocks_name = "seh"
    transform_defaults = {"clip_min": 0.001, "exponent": 6.0, "max_reward": 10.0, "reference": 7.033253064721926}

    def __init__(self, mdp: str = "prepend_append",
                 transform: RewardTransform | Mapping[str, Any] | None = None, offline_pool: int = 65_536,
                 executor: str | dict[str, Any] = "inline", cache: str | None = "memory") -> None:
        # 18^6 = 34M strings: the offline set is the bottom half of offline_pool random ones
        super().__init__("seh", 6, mdp, transform, offline_pool=offline_pool, executor=executor, cache=cache)
