"""The Li₂ grokking pieces (Tian 2025): the li2_mlp network against a manual forward pass, the
group data sets against the group axioms, torch.optim.Muon against its documented update (Newton–
Schulz orthogonalisation of Nesterov momentum), the muon trainer's parameter split and combined
optimiser, and the Fourier-concentration measure of the experiment."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import zoo
from zoo import data
from zoo.data.synthetic import group_table
from zoo.training.muon import CombinedOptimizer, split_muon_parameters


# --- the network ---------------------------------------------------------------------------------

@pytest.mark.parametrize("activation, sigma", [("quadratic", lambda x: x * x), ("relu", torch.relu), ("tanh", torch.tanh)])
def test_li2_mlp_matches_manual_forward(activation, sigma):
    torch.manual_seed(0)
    model = zoo.create_model("li2_mlp", group_order=7, hidden_dim=16, activation=activation).eval()
    a, b = torch.tensor([0, 3, 6, 2]), torch.tensor([1, 3, 5, 6])
    x = torch.cat([torch.nn.functional.one_hot(a, 7), torch.nn.functional.one_hot(b, 7)], 1).float()
    W, V = model.li2.first_layer.weight, model.output_layer.weight
    assert W.shape == (16, 14) and V.shape == (7, 16) and len(list(model.parameters())) == 2  # no biases
    # one-hot input: the hidden pre-activation is column a of W's first half plus column b of its second
    expected = sigma(W[:, a].T + W[:, 7 + b].T) @ V.T
    out = model(input_features=x, labels=(a + b) % 7, output_hidden_states=True)
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(expected, (a + b) % 7))
    torch.testing.assert_close(out.hidden_states[1], sigma(x @ W.T))
    u = model.li2.operand_weights()
    assert u.shape == (16, 2, 7) and torch.equal(u[:, 1, :], W[:, 7:])


def test_li2_mlp_default_init_is_torch_linear_uniform():
    torch.manual_seed(0)
    model = zoo.create_model("li2_mlp", group_order=23, hidden_dim=512)
    W, V = model.li2.first_layer.weight, model.output_layer.weight
    for weight, fan_in in ((W, 46), (V, 512)):
        bound = 1 / math.sqrt(fan_in)
        assert weight.abs().max() <= bound and weight.abs().max() > 0.95 * bound
        assert abs(weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound  # U(-b, b) has std b/√3
    assert model.config.num_labels == 23


def test_li2_mlp_refuses_bad_config_and_wrong_width():
    with pytest.raises(ValueError, match="activation"):
        zoo.get_architecture("li2_mlp").config_class(activation="sqr")
    with pytest.raises(ValueError, match="group_order"):
        zoo.get_architecture("li2_mlp").config_class(group_order=0)
    model = zoo.create_model("li2_mlp", group_order=5, hidden_dim=4)
    with pytest.raises(ValueError, match="10 columns"):
        model(input_features=torch.zeros(2, 12))


# --- the data sets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("group, order", [("S3", 6), ("S4", 24), ("D5", 10), ("D4", 8)])
def test_group_tables_satisfy_the_group_axioms(group, order):
    t = group_table(group)
    assert t.shape == (order, order)
    assert (t[0] == np.arange(order)).all() and (t[:, 0] == np.arange(order)).all()  # 0 is the identity
    assert all(sorted(row) == list(range(order)) for row in t) and all(sorted(col) == list(range(order)) for col in t.T)
    i, j, k = np.meshgrid(*(np.arange(order),) * 3, indexing="ij")
    assert (t[t[i, j], k] == t[i, t[j, k]]).all()  # associativity
    assert (t != t.T).any()  # non-abelian


def test_dihedral_group_relations():
    n = 6
    t = group_table(f"D{n}")
    r, s = 1, n  # rotation by one step, the reflection i -> -i
    power = 0
    for _ in range(n):
        power = t[power, r]
    assert power == 0 and t[s, s] == 0  # r^n = s^2 = e
    assert t[t[s, r], s] == n - 1  # s r s = r^-1 (rotation r^k has index k)


def test_group_arithmetic_columns_and_split():
    ds = data.load("group_arithmetic", group="S3", train_fraction=0.5, seed=1)
    train, test = ds["train"][:], ds["test"][:]
    assert len(ds["train"]) + len(ds["test"]) == 36 and len(ds["train"]) == 18
    t = group_table("S3")
    for split in (train, test):
        x = split["input_features"]
        assert x.shape[1] == 12 and torch.equal(x.sum(1), torch.full((len(x),), 2.0))
        assert torch.equal(x[:, :6].argmax(1), split["a"]) and torch.equal(x[:, 6:].argmax(1), split["b"])
        assert (t[split["a"].numpy(), split["b"].numpy()] == split["labels"].numpy()).all()
    pairs = {(int(a), int(b)) for split in (train, test) for a, b in zip(split["a"], split["b"])}
    assert len(pairs) == 36


@pytest.mark.parametrize("kwargs, message", [
    (dict(group="A5"), "group must be S<n>"),
    (dict(group="S9"), "n must be in"),
    (dict(group="D2"), "n must be in"),
    (dict(group="S3", train_fraction=1.0), "train_fraction"),
])
def test_group_arithmetic_bad_input_is_a_user_error(kwargs, message):
    with pytest.raises(zoo.UserError, match=message):
        data.load("group_arithmetic", **kwargs)


def test_modular_multiplication_labels():
    ds = data.load("modular_arithmetic", modulus=11, operation="mul", train_fraction=0.5)["train"][:]
    assert ((ds["a"] * ds["b"]) % 11 == ds["labels"]).all()


# --- Muon ------------------------------------------------------------------------------------------

def newton_schulz(g: torch.Tensor, steps: int = 5, coefficients=(3.4445, -4.7750, 2.0315), eps: float = 1e-7):
    """The documented NS_k^(a,b,c): X ← X/‖X‖_F, then k times X ← aX + (b XXᵀ + c (XXᵀ)²) X (on the
    wide orientation), in float64."""
    a, b, c = coefficients
    x = g.double()
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / x.norm().clamp_min(eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def test_muon_update_is_the_documented_newton_schulz_step():
    """torch.optim.Muon over three steps against the documented algorithm: B_t = μB_{t−1} + g_t,
    B̃_t = g_t + μB_t (Nesterov), O_t = NS(B̃_t), θ ← θ(1 − γλ) − γ·√max(1, rows/cols)·O_t.
    (torch keeps B as an exponential average, a (1 − μ) rescaling that NS's normalisation cancels;
    it orthogonalises in bfloat16, hence the tolerance.)"""
    torch.manual_seed(0)
    lr, wd, mu = 0.05, 0.1, 0.95
    theta = torch.randn(12, 5, dtype=torch.float64)
    param = torch.nn.Parameter(theta.float().clone())
    opt = torch.optim.Muon([param], lr=lr, weight_decay=wd, momentum=mu)
    buf = torch.zeros_like(theta)
    for _ in range(3):
        g = torch.randn(12, 5, dtype=torch.float64)
        param.grad = g.float().clone()
        opt.step()
        buf = mu * buf + g
        update = newton_schulz(g + mu * buf)
        theta = theta * (1 - lr * wd) - lr * math.sqrt(max(1, 12 / 5)) * update
        torch.testing.assert_close(param.detach().double(), theta, atol=3e-3 * lr * 12, rtol=0)
        theta = param.detach().double().clone()  # keep bf16 error from compounding across steps
    # what NS does: the update's singular values are pushed into a band around 1 (not exactly 1)
    singular = torch.linalg.svdvals(newton_schulz(torch.randn(40, 8)))
    assert singular.min() > 0.5 and singular.max() < 1.3
    assert torch.linalg.svdvals(torch.randn(40, 8)).max() / torch.linalg.svdvals(torch.randn(40, 8)).min() > 1.5


def test_muon_split_takes_the_first_matrix_and_checks_patterns():
    model = zoo.create_model("li2_mlp", group_order=5, hidden_dim=4)
    named = list(model.named_parameters())
    muon, rest, names = split_muon_parameters(named, None)
    assert names == ["li2.first_layer.weight"] and muon[0] is model.li2.first_layer.weight
    assert rest == [model.output_layer.weight]
    assert split_muon_parameters(named, ["*weight"])[2] == ["li2.first_layer.weight", "output_layer.weight"]
    with pytest.raises(zoo.UserError, match="matches no trainable parameter"):
        split_muon_parameters(named, ["encoder.*"])
    bias = [("b", torch.nn.Parameter(torch.zeros(3)))]
    with pytest.raises(zoo.UserError, match="needs weight matrices"):
        split_muon_parameters(bias, ["b"])
    with pytest.raises(zoo.UserError, match="no trainable weight matrix"):
        split_muon_parameters(bias, None)


def test_combined_optimizer_steps_both_schedules_both_and_round_trips():
    from transformers import get_scheduler

    torch.manual_seed(0)
    w, v = torch.nn.Parameter(torch.randn(6, 3)), torch.nn.Parameter(torch.randn(3))
    muon, adam = torch.optim.Muon([w], lr=0.1, weight_decay=0.0), torch.optim.Adam([v], lr=0.1)
    opt = CombinedOptimizer([muon, adam])
    scheduler = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=4)
    w0, v0 = w.detach().clone(), v.detach().clone()
    (w.sum() ** 2 + (v**2).sum()).backward()
    opt.step()
    scheduler.step()
    assert not torch.equal(w, w0) and not torch.equal(v, v0)
    assert muon.param_groups[0]["lr"] == pytest.approx(0.075) and adam.param_groups[0]["lr"] == pytest.approx(0.075)
    opt.zero_grad()
    assert w.grad is None and v.grad is None
    state = opt.state_dict()
    fresh = CombinedOptimizer([torch.optim.Muon([w], lr=0.1), torch.optim.Adam([v], lr=0.1)])
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.optimizers[0].state[w]["momentum_buffer"], muon.state[w]["momentum_buffer"])
    torch.testing.assert_close(fresh.optimizers[1].state[v]["exp_avg"], adam.state[v]["exp_avg"])


# --- the experiment's measure --------------------------------------------------------------------

def test_fourier_concentration_of_known_units():
    from experiments.li2_grokking.run import dominant_frequency, fourier_concentration

    m = 13
    e = torch.arange(m, dtype=torch.float64)
    w = torch.zeros(3, 2, m, dtype=torch.float64)
    w[0, 0], w[0, 1] = torch.cos(2 * math.pi * 3 * e / m), torch.sin(2 * math.pi * 3 * e / m + 1.0)  # one frequency
    w[1, 0], w[1, 1] = torch.cos(2 * math.pi * 2 * e / m) + 5.0, torch.cos(2 * math.pi * 5 * e / m)  # two, plus DC
    w[2, 0] = torch.cos(2 * math.pi * 4 * e / m) + 0.5 * torch.cos(2 * math.pi * 6 * e / m)
    conc = fourier_concentration(w)
    torch.testing.assert_close(conc, torch.tensor([1.0, 0.5, 0.8], dtype=torch.float64))
    assert dominant_frequency(w).tolist()[0::2] == [3, 4]


def test_muon_trainer_recipe_resumes_bit_exactly(tmp_path):
    """The muon recipe through zoo.training.train: an interrupted run resumed from its checkpoint
    (both optimisers' states in one CombinedOptimizer state) ends with the uninterrupted weights."""
    from safetensors.torch import load_file

    from zoo.training import train

    from .conftest import REPO_ROOT

    recipe = REPO_ROOT / "hub_configs" / "li2-mlp-modular-addition-muon.yaml"
    tiny = ["config.hidden_dim=16", "training.epochs=6", "training.eval_every_steps=3"]
    full = train(recipe, tiny, output_dir=tmp_path / "full")
    assert full.metrics["muon_params"] == ["li2.first_layer.weight"] and full.metrics["trainer"] == "muon"
    train(recipe, [*tiny, "training.checkpoint_every=2", "training.stop_after_steps=4"], output_dir=tmp_path / "part")
    assert not (tmp_path / "part" / "model.safetensors").exists()
    train(recipe, [*tiny, "training.checkpoint_every=2"], resume=True, output_dir=tmp_path / "part")
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "part" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_scaling_bracket_search_walks_to_neighbouring_fail_and_grok(monkeypatch):
    """--search bracket: from --start it walks down while runs grok and up while they fail, and
    stops at the first neighbouring (fail, grok) pair — without running the rest of the grid."""
    import types

    from experiments.li2_grokking import run

    modulus = 97
    for critical, expected in ((3.7, [4.0, 3.5]), (4.7, [4.0, 4.5, 5.0]), (2.0, [4.0, 3.5, 3.0, 2.5]), (9.0, [4.0, 4.5, 5.0, 6.0])):
        tried = []

        def fake_cell(args, task, m, fraction, optimizer, seed, max_steps, stop, subdir, muon_lr=None):
            c = fraction * m / math.log(m)
            tried.append(round(c, 2))
            return {"grokked": fraction >= run.fraction_for(m, critical)}

        monkeypatch.setattr(run, "cell", fake_cell)
        run.bracket_search(types.SimpleNamespace(multipliers=[2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0], start=4.0,
                                                 max_steps=10), modulus, 0)
        assert tried == expected, (critical, tried)
    assert run.cell_name("add", 23, 0.6, "muon", 0.01, 24, 1, "match_rms_adamw") == "add_M23_f0.6000_muon-rms_lr0.01_K24_s1"
    assert run.cell_name("add", 23, 0.6, "adam", 0.001, 256, 0) == "add_M23_f0.6000_adam_lr0.001_K256_s0"


def test_discrete_log_order_turns_multiplication_into_addition():
    """mod 23 (primitive root 5): the order g^k lists 1…22 once each, and a unit whose weights
    are a pure frequency of k = log_g(x) is a single Fourier frequency after reindexing."""
    from experiments.li2_grokking.run import discrete_log_order, fourier_concentration

    logs = discrete_log_order(23)
    assert logs[:3] == [1, 5, 2] and sorted(logs) == list(range(1, 23))
    assert all(logs[(i + j) % 22] == logs[i] * logs[j] % 23 for i in range(22) for j in range(22))
    assert discrete_log_order(21) is None
    k_of = {x: k for k, x in enumerate(logs)}
    w = torch.zeros(1, 2, 23, dtype=torch.float64)
    for x in range(1, 23):
        w[0, 0, x] = math.cos(2 * math.pi * 3 * k_of[x] / 22)
        w[0, 1, x] = math.sin(2 * math.pi * 3 * k_of[x] / 22)
    torch.testing.assert_close(fourier_concentration(w[:, :, logs]), torch.tensor([1.0], dtype=torch.float64))
    assert fourier_concentration(w[:, :, 1:]).item() < 0.9  # in the plain order it is spread
