"""analysis.sharpness against independent computations: the exact Hessian of a hand-written
forward pass (torch.autograd.functional.hessian), its trace, Frobenius norm and eigvalsh spectrum;
Hutchinson's interval and variance; Lanczos; the CLI and its one-line errors."""
import json
import os

import pytest
import torch

from analysis.errors import UserError
from analysis.sharpness import HessianOperator, hutchinson, hutchinson_trace, lanczos, measure_sharpness
from zoo.models.mlp import ARCHITECTURE as MLP
from zoo.models.two_layer_mlp import TwoLayerMLPConfig, TwoLayerMLPForClassification


def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    config = dict(input_dim=4, hidden_dim=5, num_labels=3, activation="tanh", initializer_range=0.7,
                  second_layer_bias=True)
    config.update(kw)
    return TwoLayerMLPForClassification(TwoLayerMLPConfig(**config)).double()


def _batches(n=30, d=4, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    return [{"input_features": x[:17], "labels": y[:17]}, {"input_features": x[17:], "labels": y[17:]}], x, y


@pytest.fixture(scope="module")
def setting():
    model = _tiny()
    batches, x, y = _batches()
    w1 = model.hidden.weight.detach()
    w2, b2 = model.output.weight.detach(), model.output.bias.detach()
    shapes = [w1.shape, w2.shape, b2.shape]

    def loss(theta):  # the same network, written out by hand
        a, b, c = torch.split(theta, [s.numel() for s in shapes])
        logits = torch.tanh(x @ a.view(shapes[0]).T) @ b.view(shapes[1]).T + c
        return torch.nn.functional.cross_entropy(logits, y)

    theta = torch.cat([w1.reshape(-1), w2.reshape(-1), b2])
    reference = torch.autograd.functional.hessian(loss, theta)
    return model, batches, reference


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_operator_matches_a_hand_written_hessian(setting, mode):
    model, batches, reference = setting
    op = HessianOperator(model, batches, mode=mode)
    assert op.dim == reference.shape[0] == 4 * 5 + 5 * 3 + 3
    assert torch.allclose(op.exact(), reference, atol=1e-10)
    vectors = torch.randn(7, op.dim, dtype=torch.float64)
    assert torch.allclose(op.hvps(vectors), vectors @ reference, atol=1e-10)
    assert torch.allclose(op.hvps(vectors, chunk=3), vectors @ reference, atol=1e-10)


def test_hutchinson_interval_and_variance(setting):
    model, batches, reference = setting
    op = HessianOperator(model, batches)
    exact_trace, exact_frob = float(reference.trace()), float(reference.norm())
    trace, frob = hutchinson(op.hvps, op.dim, probes=400, seed=3, dtype=op.dtype)
    assert trace.contains(exact_trace) and trace.high - trace.low > 0
    assert frob.contains(exact_frob)
    # Rademacher: Var(vᵀHv) = 2 (‖H‖_F² − Σ H_ii²), so the reported error is the right size
    variance = 2 * (exact_frob**2 - float((reference.diagonal() ** 2).sum()))
    assert abs(trace.stderr**2 * trace.probes / variance - 1) < 0.3
    # a few probes give a wider interval than many
    few, _ = hutchinson(op.hvps, op.dim, probes=8, seed=3, dtype=op.dtype)
    assert few.high - few.low > 3 * (trace.high - trace.low)


def test_lanczos_top_eigenvalues_match_eigvalsh(setting):
    model, batches, reference = setting
    op = HessianOperator(model, batches)
    exact = torch.linalg.eigvalsh(reference).flip(0)
    result = lanczos(op.hvps, op.dim, k=3, iterations=20, dtype=op.dtype)  # 20 < 38 parameters
    assert result.iterations == 20
    assert torch.allclose(torch.tensor(result.eigenvalues, dtype=torch.float64), exact[:3], rtol=1e-6, atol=1e-9)
    full = lanczos(op.hvps, op.dim, k=op.dim, dtype=op.dtype)  # the whole spectrum
    assert torch.allclose(torch.tensor(full.eigenvalues, dtype=torch.float64), exact, atol=1e-8)


def test_lanczos_restarts_on_an_invariant_subspace():
    diagonal = torch.tensor([5.0, 3.0, 3.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    start = torch.zeros(6, dtype=torch.float64)

    def matvecs(v):
        return v * diagonal

    result = lanczos(matvecs, 6, k=6, dtype=torch.float64)
    assert torch.allclose(torch.tensor(result.eigenvalues, dtype=torch.float64), diagonal.sort(descending=True).values, atol=1e-10)
    assert result.restarts >= 1  # repeated eigenvalues close the Krylov space early
    del start


def test_measure_sharpness_report(setting, tmp_path):
    model, batches, reference = setting
    report = measure_sharpness(model, batches, probes=64, top_k=2)
    assert report.exact is not None and abs(report.exact.trace - float(reference.trace())) < 1e-9
    assert abs(report.lambda_max - float(torch.linalg.eigvalsh(reference)[-1])) < 1e-8
    assert report.examples == 30 and report.parameters == 38
    files = report.write(str(tmp_path), plots=True)
    saved = json.load(open(tmp_path / "sharpness.json"))
    assert saved["trace"]["estimate"] == pytest.approx(report.trace.estimate)
    assert os.path.exists(tmp_path / "trace.png") and len(files) == 4


# --- vᵀHv by second-order forward mode (analysis.sharpness.taylor) ----------------------------


def _quadratic_forms_case(case):
    """(model, batches, loss) in float64: activations, losses and heads the Taylor rules cover."""
    batches, x, y = _batches()
    if case in ("relu", "tanh", "quadratic", "gelu", "sigmoid", "leaky_relu"):
        return _tiny(activation=case), batches, "model"
    if case == "mse":
        return _tiny(activation="tanh"), batches, "mse"
    if case == "fixed-second-layer":
        return _tiny(fixed_second_layer=True, second_layer_bias=False), batches, "cross_entropy"
    if case == "regression":
        model = _tiny(num_labels=1, problem_type="regression")
        return model, [{"input_features": b["input_features"], "labels": b["input_features"][:, 0]} for b in batches], "model"
    if case == "multi-label":
        model = _tiny(problem_type="multi_label_classification")
        return model, [{"input_features": b["input_features"], "labels": (b["input_features"][:, :3] > 0).double()}
                       for b in batches], "model"
    if case == "deep-mlp":
        torch.manual_seed(0)
        config = dict(MLP["tiny_config"], activation="tanh")
        model = MLP["model_class"](MLP["config_class"](**config)).double()
        side = config.get("image_size", 8)
        pixels = torch.randn(12, config.get("num_channels", 1), side, side, dtype=torch.float64)
        return model, [{"pixel_values": pixels, "labels": torch.arange(12) % 3}], "model"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["relu", "tanh", "quadratic", "gelu", "sigmoid", "leaky_relu", "mse",
                                  "fixed-second-layer", "regression", "multi-label", "deep-mlp"])
def test_taylor_quadratic_forms_equal_the_exact_hessians(case):
    """vᵀHv from one second-order forward pass against vᵀ(∇²L)v of the materialised Hessian."""
    model, batches, loss = _quadratic_forms_case(case)
    op = HessianOperator(model, batches, loss=loss)
    vectors = torch.randn(6, op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    forms = op.quadratic_forms(vectors, chunk=4)
    assert op.quadratic_method == "taylor"
    if op.dim <= 4096:
        reference = ((vectors @ op.exact()) * vectors).sum(1)
    else:  # the deep MLP: against the Hessian-vector products of autograd instead
        reference = (vectors * op.hvps(vectors)).sum(1)
    assert torch.allclose(forms, reference, rtol=1e-9, atol=1e-11), (forms, reference)


def test_taylor_rules_against_autograd_on_a_loss_of_many_operations():
    """Every rule family on one hand-written loss (views, transposes, broadcasting, reductions with
    keyword arguments, products of two varying tensors, pointwise functions, softmax) against
    vᵀ(∇²L)v from torch.autograd.functional.hessian."""
    from analysis.sharpness.taylor import TaylorQuadraticForm

    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 4, dtype=torch.float64, generator=g)
    params = {"w": torch.randn(3, 4, dtype=torch.float64, generator=g) * 0.5,
              "b": torch.randn(3, dtype=torch.float64, generator=g) * 0.5}

    def loss(p):
        h = torch.tanh(x @ p["w"].T + p["b"])                    # mm, t, add with broadcasting
        s = torch.sigmoid(h.permute(1, 0)).unsqueeze(0).expand(2, 3, 6).reshape(6, 6)
        q = (h * h.exp()).sum(dtype=torch.float64) / 7 - h.mean(dim=1, keepdim=True).pow(3).sum()
        soft = torch.softmax(h, dim=-1)
        return q + (s[:, :3] * p["b"]).sum() + torch.log(soft + 1).mean() + torch.nn.functional.gelu(h).sum(0)[1]

    names = ["w", "b"]
    vectors = torch.randn(4, 15, dtype=torch.float64, generator=g)
    tangents = {"w": vectors[:, :12].reshape(4, 3, 4), "b": vectors[:, 12:]}
    forms = TaylorQuadraticForm(loss, params, names)(tangents)

    def flat_loss(theta):
        return loss({"w": theta[:12].view(3, 4), "b": theta[12:]})

    hessian = torch.autograd.functional.hessian(flat_loss, torch.cat([params["w"].reshape(-1), params["b"]]))
    assert torch.allclose(forms, ((vectors @ hessian) * vectors).sum(1), rtol=1e-10, atol=1e-12)


class _NormedNet(torch.nn.Module):
    """A net with an operation the Taylor rules do not cover (layer norm)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inner = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.Tanh(),
                                         torch.nn.Linear(6, 3)).double()

    def forward(self, input_features, labels=None):
        return self.inner(input_features)


def test_quadratic_forms_fall_back_to_hessian_vector_products_and_say_why():
    batches, _, _ = _batches()
    op = HessianOperator(_NormedNet(), batches, loss="cross_entropy")
    vectors = torch.randn(5, op.dim, dtype=torch.float64)
    forms = op.quadratic_forms(vectors)
    assert op.quadratic_method.startswith("hvp (no second-order rule for aten.native_layer_norm")
    # against torch.autograd's Hessian of the same loss written without torch.func
    (b0, b1), theta = op.batches, op.theta()

    def loss(t):
        params = op.unflatten(t)
        return sum(w * torch.nn.functional.cross_entropy(
            torch.func.functional_call(op.model, params, kwargs={"input_features": b["input_features"]}), b["labels"])
            for w, b in zip(op.weights, (b0, b1)))

    hessian = torch.autograd.functional.hessian(loss, theta)
    assert torch.allclose(forms, ((vectors @ hessian) * vectors).sum(1), atol=1e-10)
    assert torch.allclose(op.exact(), hessian, atol=1e-10)  # not torch.func.hessian's (wrong for layer norm)


def test_trace_without_frobenius_uses_the_same_probes(setting):
    model, batches, reference = setting
    op = HessianOperator(model, batches)
    full, _ = hutchinson(op.hvps, op.dim, probes=24, seed=5, dtype=torch.float64)
    alone = hutchinson_trace(op.quadratic_forms, op.dim, probes=24, seed=5, chunk=7, dtype=torch.float64)
    assert alone.samples == pytest.approx(full.samples, rel=1e-9) and alone.estimate == pytest.approx(full.estimate)
    report = measure_sharpness(model, batches, probes=24, seed=5, frobenius=False)
    assert report.frobenius is None and report.settings["trace_method"] == "taylor"
    assert report.trace.estimate == pytest.approx(full.estimate, rel=1e-9)
    assert "not measured (--no-frobenius)" in report.summary_markdown()
    assert report.to_json()["frobenius"] is None


def test_rademacher_probes_are_independent_fair_signs():
    from analysis.sharpness import rademacher

    v = rademacher(400, 1003, seed=2, dtype=torch.float64)
    assert v.shape == (400, 1003) and set(v.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(v, rademacher(400, 1003, seed=2, dtype=torch.float64))
    assert not torch.equal(v, rademacher(400, 1003, seed=3, dtype=torch.float64))
    n = v.numel()
    # mean and neighbouring-sign correlations (within a byte, across bytes, across rows) ~ N(0, 1/n)
    assert abs(v.mean()) < 4 / n ** 0.5
    for a, b in ((v[:, :-1], v[:, 1:]), (v[:, :-8], v[:, 8:]), (v[:-1], v[1:])):
        assert abs((a * b).mean()) < 4 / a.numel() ** 0.5
    # E[vvᵀ] = I: the estimator's unbiasedness rests on it
    second = v.T[:40] @ v[:, :40] / 400
    assert (second.diagonal() == 1).all() and second.fill_diagonal_(0).abs().max() < 0.25


def test_fixed_second_layer_is_not_differentiated():
    model = _tiny(fixed_second_layer=True, second_layer_bias=False)
    batches, _, _ = _batches()
    op = HessianOperator(model, batches)
    assert op.names == ["hidden.weight"] and op.dim == 20


def test_bad_inputs_are_one_line_errors(setting):
    model, batches, _ = setting
    frozen = _tiny()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(UserError, match="no parameters that require grad"):
        measure_sharpness(frozen, batches)
    with pytest.raises(UserError, match="more eigenvalues than the model has trainable parameters"):
        measure_sharpness(model, batches, top_k=39)
    from analysis.sharpness import dataset_batches

    with pytest.raises(UserError, match="cannot take data set 'xor_cluster'"):
        dataset_batches(model.float(), "xor_cluster", data_args={"dim": 7, "n_train": 10, "n_test": 4})
    image_model = MLP["model_class"](MLP["config_class"](**MLP["tiny_config"]))
    with pytest.raises(UserError, match="takes pixel_values"):
        dataset_batches(image_model, "xor_cluster", data_args={"n_train": 10, "n_test": 4})
    model.double()


def test_cli_end_to_end_and_errors(tmp_path, capsys):
    from analysis.cli import main

    model = _tiny(input_dim=6).float()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    out = tmp_path / "out"
    rc = main(["sharpness", "--model", str(folder), "--data", "xor_cluster", "--data-arg", "n_train=24",
               "--data-arg", "n_test=4", "--probes", "16", "--top-k", "2", "--float64", "--out", str(out),
               "--quiet", "--no-plots"])
    assert rc == 0
    saved = json.load(open(out / "sharpness.json"))
    assert saved["examples"] == 24 and saved["parameters"] == 6 * 5 + 5 * 3 + 3
    assert saved["exact"]["lambda_max"] == pytest.approx(saved["lambda_max"], rel=1e-6)
    rc = main(["sharpness", "--model", str(folder), "--data", "xor_cluster", "--data-arg", "n_train=24",
               "--data-arg", "n_test=4", "--probes", "16", "--float64", "--no-frobenius", "--out", str(out / "trace"),
               "--quiet", "--no-plots"])
    alone = json.load(open(out / "trace" / "sharpness.json"))
    assert rc == 0 and alone["frobenius"] is None and alone["settings"]["trace_method"] == "taylor"
    assert alone["trace"]["estimate"] == pytest.approx(saved["trace"]["estimate"], rel=1e-9)
    capsys.readouterr()
    rc = main(["sharpness", "--model", str(folder), "--data", "xor_cluster", "--data-arg", "n_train=24",
               "--top-k", "1000", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "--top-k 1000" in err
    rc = main(["sharpness", "--model", str(folder), "--data", "no_such_data", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "unknown data set" in err and err.count("\n") == 0
