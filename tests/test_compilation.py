"""``model.compile``: the step's programs trace as whole graphs and compute what the eager code computes."""

import pytest
import torch

from lgfn.compilation import AUTO_MIN_CACHED_CPU_STEPS, AUTO_MIN_CPU_STEPS, choose
from lgfn.gflownet import GFlowNet
from lgfn.losses.base import loss_of, transition_rows
from lgfn.registry import build
from lgfn.sampling.local_search import _Backward, _walk_steps
from lgfn.sampling.trajectories import _alpha_table, _backward_steps, _forward_steps, gumbel_noise

GRID = {"name": "gridworld", "ndim": 2, "height": 4}


def model_of(task, conditioner: str, loss: str = "tb", **kwargs) -> GFlowNet:
    torch.manual_seed(0)
    model = GFlowNet(task=task, conditioner=conditioner, loss=loss, hidden_dim=16, **kwargs)
    model.sampler.set_training_range(1.0, 3.0)
    return model


@pytest.mark.parametrize("task,conditioner,loss,extra", [
    (GRID, "logit_layer", "tb", {}), (GRID, "logit", "subtb", {}), ("tfbind8", "logit", "db", {}),
    ("tfbind8", "thermometer", "tb", {}), ("tfbind8", "logit", "tb", {"network": "ssr", "ensemble": 2}),
])
def test_each_program_of_a_step_is_one_graph(task, conditioner, loss, extra):
    """dynamo traces the rollout steps and the loss without a graph break (fullgraph compiles would fail)."""
    model = model_of(task, conditioner, loss, **extra)
    env, policy, n = model.task.env, model.policy, 8
    beta = torch.full((n,), 2.0)
    s, done = env.initial(n), torch.zeros(n, dtype=torch.bool)
    g = gumbel_noise((env.max_steps, n, env.n_actions), None, beta.device)  # the whole rollout: tables, stop step
    table = _alpha_table(env, policy, n, beta.device)
    back_table = _alpha_table(env, policy, n, beta.device, backward=True)
    traj = model.sampler.explore(beta, 0.1, torch.Generator().manual_seed(0))
    x = traj.x
    reports = [
        torch._dynamo.explain(_forward_steps)(env, policy, s, done, beta, policy.condition(beta), g, 0.1, table, 0),
        torch._dynamo.explain(_backward_steps)(env, policy, x, env.is_initial(x), beta, policy.condition(beta),
                                               gumbel_noise((env.max_steps - 1, n, env.n_bwd_actions), None,
                                                            beta.device), back_table, 0),
        torch._dynamo.explain(loss_of)(model.loss_fn, policy.members[-1], traj, transition_rows(policy, traj)),
        torch._dynamo.explain(_walk_steps)(_Backward(env, policy, beta), x, (traj.lengths - 1).clamp(max=2),  # local search
                                           gumbel_noise((2, n, env.n_bwd_actions), None, beta.device)),
    ]
    for report in reports:
        assert report.graph_break_count == 0, report.break_reasons
        assert report.graph_count == 1


def test_compiled_training_matches_eager_on_the_same_draws():
    """One compiled round (rollout, loss with its backward, P_B rollout): the same trajectories, loss and
    gradients as eager, from the same generator."""
    eager, compiled = model_of(GRID, "logit_layer"), model_of(GRID, "logit_layer")
    compiled.sampler.compiled = compiled.compiled_loss = True  # the loss as on a GPU
    out = []
    for model in (eager, compiled):
        g = torch.Generator().manual_seed(1)
        traj = model.sampler.explore(torch.full((16,), 2.0), 0.1, g)
        back = model.sampler.backward(traj.x, torch.full((16,), 1.5), g)
        back.log_reward = traj.log_reward
        loss = model.loss(traj) + model.loss(back)
        loss.backward()
        out.append((traj, back, loss, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (t1, b1, l1, g1), (t2, b2, l2, g2) = out
    assert torch.equal(t1.actions, t2.actions) and torch.equal(b1.actions, b2.actions)
    torch.testing.assert_close(l1, l2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_compiled_local_search_matches_eager():
    """A round of local search with its walks and rebuilds compiled (a grid's: chunks that end early, the MH
    ratio) draws the same candidates as eager. (The sequence MDPs' walk is one graph: see above.)"""
    model, search = model_of(GRID, "logit"), build("local_search", {"name": "mh", "iterations": 2, "back_steps": 2})
    out = []
    for compiled in (False, True):
        model.sampler.compiled = compiled
        out.append(search.round(model.sampler, torch.full((12,), 2.0), 0.1, 4, torch.Generator().manual_seed(3)))
    eager, compiled = out
    assert torch.equal(eager.states, compiled.states) and torch.equal(eager.actions, compiled.actions)
    torch.testing.assert_close(eager.log_reward, compiled.log_reward)


def test_auto_compiles_on_a_gpu_or_for_long_cpu_runs():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose("auto", cuda, 100)[0] and choose("auto", cpu, AUTO_MIN_CPU_STEPS)[0]
    on, why = choose("auto", cpu, 4000)
    assert not on and "4000 steps" in why and "model.compile: true" in why
    assert choose(True, cpu, 10) == (True, "as set") and choose(False, cuda, 10**9) == (False, "as set")


def test_auto_compiles_a_shorter_cpu_run_once_its_programs_are_cached():
    cpu = torch.device("cpu")
    assert choose("auto", cpu, AUTO_MIN_CACHED_CPU_STEPS, cached=True)[0]
    on, why = choose("auto", cpu, AUTO_MIN_CACHED_CPU_STEPS - 1, cached=True)
    assert not on and "once a run" not in why
    on, why = choose("auto", cpu, AUTO_MIN_CACHED_CPU_STEPS, cached=False)
    assert not on and "once a run with model.compile: true has cached these programs" in why



def test_the_programs_key_names_what_is_compiled_and_nothing_else():
    """Learning rates, seeds and the run's length change no compiled program; widths, batch shapes, local
    search's walks and the precision do."""
    from lgfn.compilation import programs_key
    from lgfn.training.datamodules import OnlineData

    cpu = torch.device("cpu")
    search = {"name": "deterministic", "iterations": 2, "back_steps": 2}

    def key(model: dict | None = None, precision: str = "32-true", **data) -> str:
        hparams = {"task": GRID, "hidden_dim": 16, "lr_policy": 1e-4, "compile": "auto", **(model or {})}
        return programs_key(hparams, OnlineData(**{"local_search": search, **data}), cpu, precision)

    base = key()
    assert base == key({"lr_policy": 3e-3, "compile": True}, rounds=7, seed=5)
    changed = [key({"hidden_dim": 32}), key(batch_size=16), key(local_search={**search, "iterations": 3}),
               key(precision="bf16-mixed")]
    assert len({base, *changed}) == 5


def test_a_lost_or_damaged_note_of_compiled_programs_is_a_cache_miss(tmp_path, monkeypatch, caplog):
    from lgfn.compilation import _marker, is_cached, remember

    monkeypatch.setenv("LGFN_CACHE_DIR", str(tmp_path))
    assert not is_cached("k")
    remember("k")
    assert is_cached("k")
    _marker("k").write_text("{not json")
    assert not is_cached("k")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))  # inductor now keeps another cache
    remember("j")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert not is_cached("j")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "compiled").write_text("a file where the notes' folder would be")
    monkeypatch.setenv("LGFN_CACHE_DIR", str(blocked))
    remember("i")  # cannot be written: a warning, and the run goes on
    assert "could not note the compiled programs" in caplog.text
