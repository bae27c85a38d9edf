"""Policy architectures (``mlp``, ``ssr``), ensembles through the CLI and the official multiplicative logit scaling."""

import csv

import pytest
import torch

from lgfn import registry
from lgfn.cli import main
from lgfn.cli.sample import load_checkpoint
from lgfn.envs import PrependAppend
from lgfn.envs.hypergrid import HyperGrid
from lgfn.metrics.exact import evaluate_exact
from lgfn.gflownet import GFlowNet
from lgfn.models.policy import Policy, PolicyEnsemble

SEQ = PrependAppend(3, 3)


def ssr_policy(env, conditioner="logit_layer", **kw) -> Policy:
    torch.manual_seed(0)
    cond = registry.build("conditioner", conditioner, **kw)
    if conditioner != "none":
        cond.set_range(1.0, 3.0)
    return Policy(env, cond, registry.build("network", "ssr"), hidden_dim=16)


def test_ssr_logits_are_a_function_of_the_child():
    """Prepending or appending t to the empty state gives the same child: ssr scores them alike; an MLP does not."""
    p = ssr_policy(SEQ, "logit")
    s0 = SEQ.initial(1)
    alpha = p.forward_alpha(s0)[0]
    torch.testing.assert_close(alpha[:3], alpha[3:6])  # prepend t == append t at s0
    assert not torch.allclose(alpha[0], alpha[1])  # different children, different scores
    one = torch.tensor([[1, 3, 3]])  # "1": deleting the first or the last token leaves "" both ways
    back = p.backward_log_probs(one, torch.tensor([2.0]))[0]
    torch.testing.assert_close(back[0], back[1])
    mlp = Policy(SEQ, registry.build("conditioner", "logit"), hidden_dim=16)
    assert not torch.allclose(mlp.forward_alpha(s0)[0, :3], mlp.forward_alpha(s0)[0, 3:6])


@pytest.mark.parametrize("conditioner", ["none", "layer", "logit", "logit_layer", "thermometer", "logit_official"])
def test_ssr_batch_is_row_by_row(conditioner):
    """One batched call over (state, child) pairs gives each row what it gets alone, masked actions excluded."""
    env = HyperGrid(2, 4)
    p = ssr_policy(env, conditioner)
    states = torch.tensor([[0, 0], [3, 1], [3, 3], [2, 2]])
    beta = torch.tensor([1.0, 2.0, 2.5, 3.0])
    batch = p.forward_log_probs(states, beta)
    for i in range(len(states)):
        torch.testing.assert_close(batch[i], p.forward_log_probs(states[i:i + 1], beta[i:i + 1])[0])
    assert torch.equal(batch.isfinite(), env.forward_mask(states))
    torch.testing.assert_close(batch.exp().sum(1), torch.ones(4))


def test_official_scaling_multiplies_then_clamps_and_saturates_beyond_the_data():
    p = ssr_policy(HyperGrid(2, 4), "logit_official")
    p.logit_clip = 20.0
    states = torch.tensor([[0, 0], [1, 2]])
    mask = p.env.forward_mask(states)
    for beta in (1.0, 3.0, 50.0):
        b = torch.full((2,), beta)
        g = p.conditioner.logit_scale(b)
        expected = (p.forward_alpha(states) * g).clamp(-20, 20).masked_fill(~mask, float("-inf")).softmax(1)
        torch.testing.assert_close(p.forward_log_probs(states, b).exp(), expected)
    # g of raw β grows without bound (here g(β) = β): far beyond the data every child with α > 0 hits the
    # clamp, and P_F is uniform over them however different their α: not a sample of R^β
    p.conditioner.scale_net = torch.nn.Identity()
    with torch.no_grad():
        p.forward_net.scorer[-1].bias += 5.0  # every α > 0, all different
    alpha = p.forward_alpha(states)
    assert (alpha > 0).all() and len(set(alpha[mask].tolist())) == int(mask.sum())
    probs = p.forward_log_probs(states, torch.full((2,), 1e4)).exp()
    torch.testing.assert_close(probs[mask], (1 / mask.sum(1, keepdim=True).float()).expand_as(mask)[mask])


@pytest.mark.parametrize("option", ["ssr", "ensemble"])
def test_trains_through_the_cli_and_its_checkpoint_samples(tmp_path, option):
    """`lgfn fit` with model.network: ssr, or model.ensemble: 2, learns the grid (exact L1 falls well below the
    untrained one's), the checkpoint rebuilds the same networks, and `lgfn sample` reads it."""
    extra = ["--model.network", "ssr"] if option == "ssr" else ["--model.ensemble", "2"]
    args = ["fit", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), "--seed_everything", "0",
            "--model.task", '{"name": "gridworld", "ndim": 2, "height": 4}', *extra,
            "--model.hidden_dim", "32", "--model.lr_policy", "1e-3", "--model.lr_scale", "1e-3",
            "--model.eval_betas", "[1.0, 3.0]", "--model.eval_samples", "32",
            "--data.init_args.rounds", "150", "--data.init_args.epsilon", "0.05"]
    assert main(args) == 0
    ckpt = next(tmp_path.rglob("*.ckpt"))
    model = load_checkpoint(ckpt)
    if option == "ssr":
        assert model.hparams.network["class_path"] == "lgfn.models.architectures.SSRPolicy"
        fresh = ssr_policy(model.task.env, "logit")
    else:
        assert isinstance(model.policy, PolicyEnsemble) and len(model.policy.members) == 2
        torch.manual_seed(0)
        fresh = GFlowNet(task=model.hparams.task, ensemble=2, hidden_dim=32).policy
    trained = [evaluate_exact(model.task, model.policy, b).l1 for b in (1.0, 3.0)]
    untrained = [evaluate_exact(model.task, fresh, b).l1 for b in (1.0, 3.0)]
    assert all(t < 0.5 * u for t, u in zip(trained, untrained)), (trained, untrained)
    out = tmp_path / "x.csv"
    assert main(["sample", "--ckpt", str(ckpt), "--beta", "2", "--n", "20", "--out", str(out)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 20


def test_scale_with_beta_sharpens_linearly_in_beta():
    """f(β) = exp(net(log β)) / β: with a constant net, log-probability ratios grow exactly in proportion to β,
    as those of R^β do, at any β however far from training."""
    cond = registry.build("conditioner", {"name": "logit", "scale_with_beta": True})
    beta = torch.tensor([10.0, 1000.0])
    torch.testing.assert_close(cond.logit_scale(beta), cond.scale_net(beta.log()[:, None]).exp() / beta[:, None])
    p = Policy(HyperGrid(2, 4), cond, hidden_dim=16)
    torch.nn.init.zeros_(cond.scale_net[-1].weight)  # net(log β) = its bias: a constant temperature times 1/β
    states = torch.tensor([[0, 0], [1, 2]])
    lp = {b: p.forward_log_probs(states, torch.full((2,), b)) for b in (10.0, 1000.0)}
    torch.testing.assert_close(lp[1000.0][:, :2] - lp[1000.0][:, 2:3], 100 * (lp[10.0][:, :2] - lp[10.0][:, 2:3]),
                               rtol=1e-4, atol=1e-4)


def test_weight_decay_shrinks_the_policy_only():
    from lgfn.gflownet import GFlowNet

    model = GFlowNet(task={"name": "gridworld", "ndim": 2, "height": 4}, hidden_dim=8, weight_decay=0.5)
    opt = model.configure_optimizers()
    decay = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert decay == {"policy": 0.5, "z": 0.0, "scale": 0.0}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only the decay moves parameters
    opt.step()
    for name, p in model.named_parameters():
        factor = 1 - 1e-4 * 0.5 if ".forward_net." in name or ".backward_net." in name else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)
