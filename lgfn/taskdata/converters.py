"""How each derived data file is rebuilt from upstream files (registered with ``files.converter``).

Every converter returns the file's bytes; ``files`` verifies them against the
manifest before the file is used, so a converter that drifts (another RDKit,
ViennaRNA or numpy) fails loudly instead of changing a task. The heavy
imports (RDKit through ``lgfn.chem``, ViennaRNA through ``lgfn.taskdata.rna``) happen
inside the converters, so importing ``lgfn.taskdata`` stays cheap.

The sEH tree proxy's converters are in ``lgfn.taskdata.seh_trees``.
"""

from __future__ import annotations

import ast
import io
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from lgfn.taskdata.files import converter, safe_load_pickle

# --------------------------------------------------------------------------- tfbind8


def tfbind8_table_from_source(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x int64 [65536, 8], y float32 [65536, 1]) from the SIX6 E-score table.

    x: every 8-mer in lexicographic order, tokens 0=A 1=C 2=G 3=T. Each source
    row gives one E-score for an 8-mer and its reverse complement; y is the
    E-score min-max scaled in float64, then stored as float32 (as upstream).
    """
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    code = np.full(256, -1, dtype=np.int64)
    code[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4)
    weights = 4 ** np.arange(7, -1, -1)

    def index(column: int) -> np.ndarray:
        letters = np.frombuffer("".join(row[column] for row in rows).encode(), dtype=np.uint8).reshape(-1, 8)
        tokens = code[letters]
        if (tokens < 0).any():
            raise ValueError(f"{path}: column {column} holds a letter outside ACGT")
        return tokens @ weights

    energy = np.array([float(row[2]) for row in rows], dtype=np.float64)
    scaled = (energy - energy.min()) / (energy.max() - energy.min())
    y = np.full(4**8, np.nan)
    y[index(0)] = scaled
    y[index(1)] = scaled
    if np.isnan(y).any():
        raise ValueError(f"{path}: {int(np.isnan(y).sum())} 8-mers have no E-score")
    x = (np.arange(4**8)[:, None] // weights) % 4
    return x.astype(np.int64), y.astype(np.float32)[:, None]


def npz_bytes(compressed: bool, **arrays: np.ndarray) -> bytes:
    """An ``.npz`` as bytes (numpy fixes the zip timestamps, so equal arrays give equal bytes)."""
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


@converter("tfbind8/tfbind8_all.npz")
def _tfbind8_npz(inputs: list[Path]) -> bytes:
    x, y = tfbind8_table_from_source(inputs[0])
    return npz_bytes(True, x=x, y=y)


# --------------------------------------------------------------------------- modes


def _modes_json(inputs: list[Path]) -> bytes:
    """An upstream modes pickle (a list of strings) as a JSON list."""
    modes = safe_load_pickle(inputs[0])
    if not isinstance(modes, list) or not all(isinstance(mode, str) for mode in modes):
        raise ValueError(f"{inputs[0]}: expected a list of strings, got {type(modes).__name__}")
    return json.dumps(modes).encode()


for _relpath in (
    "tfbind8/modes_tfbind8.json",
    "rna/modes_rna1.json",
    "qm9str/modes_qm9str.json",
    "sehstr/modes_sehstr.json",
):
    converter(_relpath)(_modes_json)

# --------------------------------------------------------------------------- qm9str

QM9_LENGTH = 5


@converter("qm9str/qm9str_s5.npz")
def _qm9_table(inputs: list[Path]) -> bytes:
    """Every block string in lexicographic order, its upstream reward and its canonical SMILES.

    The SMILES come from ``lgfn.chem.blocks`` (the block-attaching rule the oracle
    and the metrics use), so table and chemistry cannot disagree.
    """
    from lgfn.chem.blocks import BlockSet

    rewards = safe_load_pickle(inputs[0])
    blocks = BlockSet.from_json(inputs[1], name="qm9")
    strings = ["".join(chars) for chars in itertools.product(blocks.chars, repeat=QM9_LENGTH)]
    if not isinstance(rewards, dict) or set(rewards) != set(strings):
        raise ValueError(f"{inputs[0]}: expected a dict keyed by all {len(strings)} strings of {QM9_LENGTH} blocks")
    r = np.array([rewards[s] for s in strings], dtype=np.float32)
    smiles = np.array(blocks.canonical_smiles(strings))
    return npz_bytes(True, x=np.array(strings), r=r, smiles=smiles)


# --------------------------------------------------------------------------- rna

RNA_SOURCE = "flexs 0.2.8 (PyPI wheel), flexs/landscapes/rna.py registry(): targets[0], seq_length 14 (Apache-2.0)"
RNA_LENGTH = 14


def flexs_rna_registry(text: str) -> tuple[list[str], dict[int, str]]:
    """``targets`` and the length-14 ``starts`` assigned in ``registry()`` of FLEXS's ``rna.py``.

    The file is parsed, never run: only the two literals are evaluated
    (``ast.literal_eval`` admits nothing but constants and containers).
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise ValueError(f"FLEXS rna.py does not parse: {err}") from None
    found: dict[str, Any] = {}
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.name == "registry":
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    if node.targets[0].id in ("targets", "starts"):
                        found[node.targets[0].id] = ast.literal_eval(node.value)
    targets = found.get("targets")
    starts = found["starts"].get(RNA_LENGTH) if isinstance(found.get("starts"), dict) else None

    def rna(value: Any, length: int | None = None) -> bool:
        return isinstance(value, str) and set(value) <= set("ACGU") and (length is None or len(value) == length)

    if not (isinstance(targets, list) and targets and all(rna(t) for t in targets)):
        raise ValueError("FLEXS rna.py: registry() assigns no list of RNA targets")
    if not (isinstance(starts, dict) and starts and all(rna(s, RNA_LENGTH) for s in starts.values())):
        raise ValueError(f"FLEXS rna.py: registry() assigns no starts of length {RNA_LENGTH}")
    return targets, starts


def _task_json_text(task: dict[str, Any]) -> str:
    """The shipped layout: one key a line, the three 100-nt targets one a line."""
    lines = []
    for key, value in task.items():
        if key == "other_targets_in_flexs_registry":
            text = "[\n" + ",\n".join(f"    {json.dumps(v)}" for v in value) + "\n  ]"
        else:
            text = json.dumps(value)
        lines.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


@converter("rna/rna_l14_rna1_task.json")
def _rna_task(inputs: list[Path]) -> bytes:
    """FLEXS L14_RNA1 (targets[0], the length-14 starts) and its norm, computed with ViennaRNA."""
    from lgfn.taskdata.rna import ALPHABET, complement_energy

    targets, starts = flexs_rna_registry(inputs[0].read_text(encoding="utf-8"))
    energy = complement_energy(targets[0])
    task = {
        "name": "L14_RNA1",
        "source": RNA_SOURCE,
        "alphabet_in_logit_gfn": list(ALPHABET),
        "seq_length": RNA_LENGTH,
        "target": targets[0],
        "norm_value_formula": "RNA.duplexfold(revcomp(target), target).energy * seq_length / len(target)",
        # energies are multiples of 0.01 kcal/mol, so 4 decimals drop only float noise
        "norm_value": round(energy * RNA_LENGTH / len(targets[0]), 4),
        "perfect_complement_energy_kcal_per_mol": energy,
        "fitness_formula": "RNA.duplexfold(target, seq).energy / norm_value",
        "starts": {str(k): v for k, v in starts.items()},
        "other_targets_in_flexs_registry": targets[1:],
    }
    return _task_json_text(task).encode()
