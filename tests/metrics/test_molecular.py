"""Molecule metrics against RDKit computed directly."""

from __future__ import annotations

import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from lgfn.metrics.molecular import TopKTanimotoDiversity, tanimoto_diversity

pytestmark = pytest.mark.filterwarnings("ignore:The ``compute`` method .* before the ``update``:UserWarning")


def _similarity(a: str, b: str) -> float:
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fa, fb = (gen.GetFingerprint(Chem.MolFromSmiles(s)) for s in (a, b))
    return DataStructs.TanimotoSimilarity(fa, fb)


def test_tanimoto_diversity() -> None:
    assert tanimoto_diversity(["CCO", "OCC", "CCO"]) == pytest.approx(0.0)
    assert tanimoto_diversity(["c1ccccc1O", "CCN"]) == pytest.approx(1 - _similarity("c1ccccc1O", "CCN"))
    assert tanimoto_diversity(["CCO"]) == 0.0
    with pytest.raises(ValueError):
        tanimoto_diversity(["CCO", "not a smiles"])


def test_top_k_tanimoto_diversity_and_merge() -> None:
    pair = 1 - _similarity("c1ccccc1O", "CCN")
    metric = TopKTanimotoDiversity(k=2)
    metric.update(["b1", "b2", "b1"], [2.0, 1.0, 2.0], ["c1ccccc1O", "CCN", "c1ccccc1O"])
    other = TopKTanimotoDiversity(k=2)
    other.update(["b3"], [0.5], ["CCCCCC"])
    metric.merge_state(other)
    assert metric.compute().item() == pytest.approx(pair)
    metric.reset()
    metric.update(["b1"], [1.0], ["CCO"])
    assert metric.compute().item() == 0.0


def test_molecular_task_reports_molecules_not_strings():
    """'00001' and '10000' are one molecule (CCCCO): distinct molecules count it once, in training and evaluation."""
    import torch

    from lgfn.metrics.evaluation import evaluate
    from lgfn.gflownet import GFlowNet
    from lgfn.training.discovery import DiscoveryTracker

    model = GFlowNet(task="qm9", hidden_dim=16, eval_betas=[1.0], eval_samples=64)
    tracker = DiscoveryTracker()
    tracker.track(model)
    x = model.task.from_strings(["00001", "10000", "11111"])
    tracker.observe(model.sampler.score(model.sampler.backward(x, torch.ones(3))), 0)
    found = tracker.values()
    assert int(found["discovery/distinct_objects"]) == 3
    assert int(found["discovery/distinct_molecules"]) == 2
    assert float(found["discovery/top100_tanimoto_diversity"]) == pytest.approx(
        tanimoto_diversity(model.task.smiles(x[1:])), abs=1e-6)  # the same molecule's strings count once

    out, _ = evaluate(model.sampler, [1.0], 64, "test")
    smiles_seen = out["test/distinct_molecules@1"]
    assert smiles_seen <= out["test/distinct@1"] <= 64  # distinct strings, at least as many as molecules
    assert 1 <= smiles_seen <= 64
    assert 0.0 < out["test/top100_tanimoto_diversity@1"] <= 1.0
