"""The generic sequence and block-string tasks: alphabet or blocks, length and oracle all from the config."""

import json
import math

import pytest
import torch

from lgfn import registry
from lgfn.registry import register_oracle


@register_oracle("test_generic_vowels", inputs="strings")
def vowels(strings: list[str]) -> list[float]:
    return [1.0 + sum(c in "aeiou" for c in s) for s in strings]


@register_oracle("test_generic_atoms", inputs="smiles")
def heavy_atoms(smiles: list[str]) -> list[float]:
    from rdkit import Chem

    return [float(Chem.MolFromSmiles(s).GetNumHeavyAtoms()) for s in smiles]


@register_oracle("test_generic_tokens")
def no_zero_token(x: torch.Tensor) -> torch.Tensor:
    """Tokens [N, L] -> 1 + sum; NaN when an object contains token 0 (an object the oracle cannot score)."""
    r = 1.0 + x.sum(1).double()
    return torch.where((x == 0).any(1), torch.nan, r)


def test_sequence_task_with_custom_alphabet_length_and_string_oracle():
    task = registry.build("task", {"name": "sequence", "alphabet": "abcdei", "length": 3,
                                   "oracle": "test_generic_vowels"})
    x = task.from_strings(["aei", "bcd", "abe"])
    assert task.raw_reward(x).tolist() == [4.0, 1.0, 3.0]
    assert task.enumerable and len(task.terminal_objects()[1]) == 6**3


def test_objects_the_oracle_cannot_score_have_no_target_mass_and_no_offline_place():
    task = registry.build("task", {"name": "sequence", "alphabet": "xyz", "length": 2, "oracle": "test_generic_tokens"})
    _, objects = task.terminal_objects()
    log_r = task.terminal_log_rewards()
    has_zero = (objects == 0).any(1)
    assert bool((log_r[has_zero] == -math.inf).all()) and bool(torch.isfinite(log_r[~has_zero]).all())
    offline = task.offline_objects()
    assert len(offline) and not bool((offline == 0).any())


def test_smiles_oracle_needs_a_molecular_task():
    with pytest.raises(ValueError, match="scores SMILES.*not molecules"):
        registry.build("task", {"name": "sequence", "alphabet": "ab", "length": 2, "oracle": "test_generic_atoms"})


def test_block_task_with_inline_blocks_and_smiles_oracle():
    task = registry.build("task", {
        "name": "blocks", "length": 3, "oracle": "test_generic_atoms",
        "blocks": ["C", "O", {"smiles": "c1ccccc1", "attach": [0, 3]}],
    })
    assert task.molecular and task.alphabet == "012"
    x = task.from_strings(["000", "012", "222"])
    assert task.smiles(x) == ["CCC", "COc1ccccc1", "c1ccc(-c2ccc(-c3ccccc3)cc2)cc1"]
    assert task.raw_reward(x).tolist() == [3.0, 8.0, 18.0]
    assert task.extra_columns(x[:1]) == {"smiles": ["CCC"]}


def test_block_task_from_a_block_file_or_a_built_in_set(tmp_path):
    path = tmp_path / "blocks.json"
    path.write_text(json.dumps({"block_smi": {"0": "CC", "1": "N"}, "block_r": {"0": [0, 1], "1": [0, 0]}}))
    task = registry.build("task", {"name": "blocks", "blocks": str(path), "length": 2, "oracle": "test_generic_atoms"})
    assert task.smiles(task.from_strings(["01"])) == ["CCN"]
    qm9 = registry.build("task", {"name": "blocks", "blocks": "qm9", "length": 2, "oracle": "test_generic_vowels"})
    assert len(qm9.alphabet) == 11 and qm9.modes() is None


@pytest.mark.parametrize("blocks,needle", [
    (["C", "F"], r"block 1 \(F\) cannot be bonded at its attachment atoms \(0, 0\)"),
    (["C", "not a smiles"], "block 1: 'not a smiles' is not a valid SMILES"),
    (["C", {"smiles": "CC", "attach": [0, 5]}], "bad SMILES or attachment atoms"),
    ([], "empty"),
    ("no_such_set", "neither a built-in block set"),
])
def test_bad_block_sets_are_one_line_config_errors(blocks, needle):
    with pytest.raises(ValueError, match=needle) as err:
        registry.build("task", {"name": "blocks", "blocks": blocks, "length": 3, "oracle": "test_generic_atoms"})
    assert "\n" not in str(err.value)
