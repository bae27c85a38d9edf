import math

import pytest
import torch

from lgfn import registry
from lgfn.beta.distributions import Annealing, ClippedNormal, Constant, ExpTilted, InverseAnnealing, LogUniform, Uniform

N = 200_000


def draw(sampler, seed=0, progress=0.0, n=N):
    return sampler.sample(n, torch.Generator().manual_seed(seed), progress).double()


def test_constant():
    assert torch.equal(draw(Constant(2.5), n=10), torch.full((10,), 2.5, dtype=torch.float64))


def test_uniform_mean_variance_range():
    b = draw(Uniform(1.0, 3.0))
    assert b.min() >= 1 and b.max() <= 3
    assert abs(b.mean() - 2.0) < 0.01 and abs(b.var() - 4 / 12) < 0.01


def test_log_uniform_is_uniform_in_log_space():
    b = draw(LogUniform(1.0, 1000.0))
    assert b.min() >= 1 and b.max() <= 1000
    logs = b.log()
    assert abs(logs.mean() - math.log(1000) / 2) < 0.02
    # a third of the mass per decade
    assert abs(float((b < 10).double().mean()) - 1 / 3) < 0.01


def test_exp_tilted_density_grows_like_exp_beta_and_does_not_overflow():
    b = draw(ExpTilted(1.0, 3.0))
    # CDF(β) = (e^β − e) / (e^3 − e)
    for q in (1.5, 2.0, 2.5):
        expected = (math.exp(q) - math.e) / (math.exp(3) - math.e)
        assert abs(float((b <= q).double().mean()) - expected) < 0.01
    wide = draw(ExpTilted(1.0, 1000.0), n=1000)
    assert torch.isfinite(wide).all() and wide.min() >= 1 and wide.max() <= 1000


def test_clipped_normal():
    b = draw(ClippedNormal(mu=2.0, sigma=0.5, low=1.0, high=3.0))
    assert b.min() == 1.0 and b.max() == 3.0  # clipped, mass at the bounds
    assert abs(float((b == 3.0).double().mean()) - 0.02275) < 0.003  # P(Z > 2)
    assert abs(b.mean() - 2.0) < 0.01


@pytest.mark.parametrize("progress,center", [(0.0, 1.0), (0.5, 5.5), (1.0, 10.0)])
def test_annealing_center_moves_with_progress(progress, center):
    b = draw(Annealing(1.0, 10.0), progress=progress)
    assert b.min() >= max(1.0, center - 0.5) and b.max() <= min(10.0, center + 0.5)
    inv = draw(InverseAnnealing(1.0, 10.0), progress=1.0 - progress)
    assert inv.min() >= max(1.0, center - 0.5) and inv.max() <= min(10.0, center + 0.5)


@pytest.mark.parametrize("name", ["uniform", "log_uniform", "exp_tilted", "clipped_normal", "annealing", "inverse_annealing"])
def test_seeding_is_reproducible(name):
    s = registry.build("beta_sampler", name)
    assert torch.equal(draw(s, 7, 0.3, 100), draw(s, 7, 0.3, 100))
    assert not torch.equal(draw(s, 7, 0.3, 100), draw(s, 8, 0.3, 100))


def test_official_aliases_use_official_formulas():
    assert type(registry.build("beta_sampler", "loguniform")) is ExpTilted
    assert type(registry.build("beta_sampler", "expuniform")) is LogUniform
    assert type(registry.build("beta_sampler", "normal")) is ClippedNormal
    assert type(registry.build("beta_sampler", "annealing-inv")) is InverseAnnealing


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="low <= high"):
        Uniform(3.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        LogUniform(0.0, 1.0)
