"""A short online run on each benchmark task raises the mean sampled reward above the untrained policy's."""

from pathlib import Path

import pytest
import torch

from lgfn.cli import main
from lgfn.cli.sample import load_checkpoint
from lgfn.gflownet import GFlowNet

pytestmark = pytest.mark.slow  # end to end: `pytest -m "not slow"` leaves it out

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def mean_log_reward(model: GFlowNet, beta: float = 2.0, n: int = 256) -> float:
    traj = model.sampler.objects(n, beta, torch.Generator().manual_seed(123))
    return float(traj.log_reward.mean())


@pytest.mark.parametrize("task,rounds", [("tfbind8", 150), ("rna", 100), ("qm9", 150), ("seh", 150)])
def test_short_training_raises_mean_reward(tmp_path, task, rounds):
    args = ["fit", "--config", str(CONFIGS / f"{task}.yaml"), "--trainer.default_root_dir", str(tmp_path),
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
            "--trainer.val_check_interval", "null", "--model.hidden_dim", "128", "--model.eval_samples", "64",
            "--model.eval_betas", "[2.0]", "--model.lr_policy", "1e-3", "--model.lr_scale", "1e-3",
            "--data.init_args.rounds", str(rounds)]
    assert main(args) == 0
    ckpt = sorted(tmp_path.rglob("*.ckpt"))[-1]
    trained = load_checkpoint(ckpt)
    if task in ("qm9", "seh"):  # molecules sample to CSV with SMILES, and to SDF
        csv_out, sdf_out = tmp_path / "s.csv", tmp_path / "s.sdf"
        assert main(["sample", "--ckpt", str(ckpt), "--beta", "2", "--n", "8", "--out", str(csv_out)]) == 0
        assert csv_out.read_text().splitlines()[0] == "x,reward,log_reward,beta,smiles"
        assert main(["sample", "--ckpt", str(ckpt), "--beta", "2", "--n", "8", "--out", str(sdf_out)]) == 0
        from rdkit import Chem

        mols = [m for m in Chem.SDMolSupplier(str(sdf_out))]
        assert len(mols) == 8 and all(m is not None and m.HasProp("reward") for m in mols)
    torch.manual_seed(0)
    untrained = GFlowNet(**dict(trained.hparams))
    before, after = mean_log_reward(untrained), mean_log_reward(trained)
    print(task, "mean log R at β=2: untrained", before, "trained", after)
    assert after > before + 0.5


def test_sequence_strings_round_trip():
    from lgfn.tasks.sequence import TFBind8

    task = TFBind8()
    x = torch.tensor([[0, 1, 2, 3, 3, 2, 1, 0]])
    assert task.to_strings(x) == ["ACGTTGCA"]
    assert torch.equal(task.from_strings(["ACGTTGCA"]), x)
    with pytest.raises(ValueError, match="length-8 string over 'ACGT'"):
        task.from_strings(["ACGU"])


def test_molecular_sample_has_smiles(tmp_path):
    from lgfn.tasks.sequence import QM9

    task = QM9()
    x = task.from_strings(["11111", "90000"])
    assert task.extra_columns(x)["smiles"][1] == "CCCCC1CCCN1"
    assert abs(float(task.log_reward(task.raw_reward(x[:1]))) - torch.tensor(100.0).log().item()) < 1e-4  # best maps to 100
