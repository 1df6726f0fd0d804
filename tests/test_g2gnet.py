"""G2GNet: the block-sparse kernel against the masked dense layer, the config's checks, and
rewired connections surviving save → publish → load by name with the zoo package blocked."""
from __future__ import annotations

import sys

import pytest
import torch

import zoo
from zoo.models.g2gnet.configuration_g2gnet import G2GNetConfig
from zoo.models.g2gnet.modeling_g2gnet import G2GLinear, initial_connections, run_plan
from zoo.recipes import TRAINING_DEFAULTS, Recipe

TINY = dict(image_size=4, num_channels=1, hidden_sizes=[12, 8], num_ensembles=[6, 4], input_ensembles=8,
            sparsity=0.5, num_labels=3)


def masked_dense(layer: G2GLinear) -> torch.Tensor:
    """The dense (out, in) weight built block by block from the layer's parameters, independently of its code."""
    w = torch.zeros(layer.out_features, layer.in_features, dtype=layer.weight.dtype)
    bi, bo = layer.in_block, layer.out_block
    for j in range(layer.out_ensembles):
        for t, i in enumerate(layer.connections[j].tolist()):
            w[j * bo:(j + 1) * bo, i * bi:(i + 1) * bi] = layer.weight[j, t].detach().T
    return w


@pytest.mark.parametrize("kernel", ["runs", "gather"])
@pytest.mark.parametrize("layout", ["modular", "random", "rewired"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.75])
@pytest.mark.parametrize("out_ensembles", [4, 8])
def test_block_kernel_equals_the_masked_dense_layer(kernel, layout, sparsity, out_ensembles):
    """Both kernels (one matmul per run of consecutive connections; the gather), on the band (its
    windows wrap), random connections and a band with slots replaced as DST does."""
    torch.manual_seed(0)
    layer = G2GLinear(24, 2 * out_ensembles, 8, out_ensembles, k=max(1, round((1 - sparsity) * 8)),
                      layout="random" if layout == "random" else "modular", seed=3).double()
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    layer.connections.copy_(layer.initial_connections())
    if layout == "rewired" and layer.k < 8:  # slot 1 of every output ensemble moved to a free input ensemble
        for row in layer.connections:
            row[min(1, layer.k - 1)] = next(e for e in range(8) if e not in row.tolist())
    layer.kernel = kernel
    assert layer.chosen_kernel() == kernel
    dense = masked_dense(layer)
    assert (dense != 0).double().mean().item() == pytest.approx(layer.k / 8)
    torch.testing.assert_close(layer.dense_weight(), dense, rtol=0, atol=0)
    torch.testing.assert_close(layer.mask(), dense != 0, rtol=0, atol=0)

    x = torch.randn(2, 5, 24, dtype=torch.float64, requires_grad=True)  # leading dims are kept
    y = layer(x)
    w_dense = dense.clone().requires_grad_(True)
    reference = x @ w_dense.T + layer.bias
    torch.testing.assert_close(y, reference, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(y)
    gx, gw, gb = torch.autograd.grad(y, (x, layer.weight, layer.bias), grad, retain_graph=True)
    rx, rw, rb = torch.autograd.grad(reference, (x, w_dense, layer.bias), grad, retain_graph=True)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gb, rb)
    # an expanded (stride-0) output gradient, as y.sum().backward() gives, is handled too
    gx_sum, gw_sum = torch.autograd.grad(y.sum(), (x, layer.weight))
    rx_sum, rw_sum = torch.autograd.grad(reference.sum(), (x, w_dense))
    torch.testing.assert_close(gx_sum, rx_sum)
    torch.testing.assert_close(probe_dense(layer, gw_sum), rw_sum * (dense != 0))
    # the weight gradient of each block is the dense gradient restricted to that block
    torch.testing.assert_close(probe_dense(layer, gw), rw * (dense != 0))


def probe_dense(layer: G2GLinear, blocks: torch.Tensor) -> torch.Tensor:
    """The dense matrix of `blocks` laid out with `layer`'s connections."""
    probe = G2GLinear(layer.in_features, layer.out_features, layer.in_ensembles, layer.out_ensembles, layer.k).double()
    probe.connections.copy_(layer.connections)
    probe.weight.data.copy_(blocks)
    return probe.dense_weight()


def test_modular_layout_is_a_band_and_random_layout_is_seeded():
    band = initial_connections("modular", 8, 4, 3, seed=0)
    assert band.tolist() == [[7, 0, 1], [1, 2, 3], [3, 4, 5], [5, 6, 7]]  # window order
    # the window that wraps is two runs (output ensemble, slot, length, first input ensemble); the others one each
    plan = run_plan(band, 8)
    assert plan.runs == ((0, 0, 1, 7), (0, 1, 2, 0), (1, 0, 3, 1), (2, 0, 3, 3), (3, 0, 3, 5))
    # the input gradient's writers cover 7, 0-1 and 3-5 without overlap; 2 and 6 are zeroed, then added to
    assert plan.input_grad_runs == tuple((plan.runs[i], True) for i in (0, 1, 3)) + tuple((plan.runs[i], False) for i in (2, 4))
    assert plan.unwritten == ((2, 1), (6, 1))
    assert run_plan(band[:, [1, 0, 2]], 8).runs[:3] == ((0, 0, 1, 0), (0, 1, 1, 7), (0, 2, 1, 1))
    a, b = (initial_connections("random", 8, 4, 3, seed=s) for s in (1, 1))
    assert torch.equal(a, b) and all(len(set(row)) == 3 for row in a.tolist())
    assert not torch.equal(a, initial_connections("random", 8, 4, 3, seed=2))


def test_auto_kernel_takes_the_runs_unless_they_are_small_matmuls():
    """The rule of RUN_KERNEL_MIN_WORK, at the sizes it was measured on (1280 wide, 75 % sparse)."""
    def chosen(ensembles, layout):
        layer = G2GLinear(1280, 1280, ensembles, ensembles, ensembles // 4, layout=layout)
        layer.connections.copy_(layer.initial_connections())
        return layer.chosen_kernel(), len(layer.run_plan().runs)
    assert chosen(20, "modular") == ("runs", 24)  # 20 windows of 5, the first two and last two wrapping
    assert chosen(80, "modular")[0] == "runs"  # blocks of 16, but whole windows
    assert chosen(20, "random")[0] == "runs"  # blocks of 64: a matmul per block still pays
    assert chosen(80, "random")[0] == "gather"  # blocks of 16, runs of about one
    layer = G2GLinear(8, 8, 4, 4, 2)
    layer.kernel = "band"
    with pytest.raises(ValueError, match="kernel must be"):
        layer.chosen_kernel()


def test_config_sparsity_and_parameter_count():
    config = G2GNetConfig(**TINY)
    assert config.layer_sparsities() == [0.5, pytest.approx(0.5)]
    model = zoo.create_model("g2gnet", **TINY)
    first, second = (block.linear for block in model.layers)
    assert first.weight.numel() == 16 * 12 // 2 and second.weight.numel() == 12 * 8 // 2
    dense_first = G2GNetConfig(**{**TINY, "input_ensembles": None})
    assert dense_first.layer_sparsities()[0] == 0.0
    assert isinstance(zoo.create_model("g2gnet", **{**TINY, "input_ensembles": None}).layers[0].linear, torch.nn.Linear)


@pytest.mark.parametrize("changes, field", [
    ({"sparsity": 1.0}, "sparsity"),
    ({"sparsity": -0.1}, "sparsity"),
    ({"num_ensembles": [5, 4]}, "num_ensembles"),  # 5 does not divide 12
    ({"num_ensembles": [6]}, "num_ensembles"),  # one per hidden layer
    ({"input_ensembles": 5}, "input_ensembles"),  # 5 does not divide 16
    ({"layout": "grid"}, "layout"),
])
def test_bad_config_names_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        G2GNetConfig(**{**TINY, **changes})
    with pytest.raises(zoo.UserError, match=field):
        zoo.create_model("g2gnet", **{**TINY, **changes})


def test_rewired_connections_survive_publish_and_load_by_name_without_zoo(tmp_path, hf_env, monkeypatch):
    """In-process (as test_registry's round-1 loads): the published repo's own code, by name, with
    `import zoo` failing; the rewired connections come from the safetensors, not from the init."""
    import transformers
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from zoo.hub import export_repo, publish_to_cache

    torch.manual_seed(0)
    model = zoo.create_model("g2gnet", **TINY).eval()
    layer = model.layers[1].linear
    layer.connections.copy_(torch.tensor([[3, 0, 5], [1, 4, 2], [0, 2, 5], [4, 1, 3]]))  # not the initial band
    assert not torch.equal(layer.connections, layer.initial_connections())
    model.save_pretrained(tmp_path / "out")
    recipe = Recipe(id="tiny-g2gnet-rewired", architecture="g2gnet", config=TINY, data={"name": "digits"},
                    training=dict(TRAINING_DEFAULTS))
    repo = export_repo(recipe, repo_dir=tmp_path / "repo", output_dir=tmp_path / "out")
    publish_to_cache(repo, "zooscope/tiny-g2gnet-rewired")
    monkeypatch.setitem(sys.modules, "zoo", None)  # `import zoo` now raises ImportError
    monkeypatch.setitem(sys.modules, "analysis", None)
    with pytest.raises(ImportError):
        import zoo as _  # noqa: F401
    # in this process zoo registered its own classes with the Auto classes, so take the repo's
    # class the way trust_remote_code does (config.json's auto_map → the repo's modeling file)
    config = transformers.AutoConfig.from_pretrained("zooscope/tiny-g2gnet-rewired", trust_remote_code=True)
    cls = get_class_from_dynamic_module(config.auto_map["AutoModelForImageClassification"], "zooscope/tiny-g2gnet-rewired")
    loaded = cls.from_pretrained("zooscope/tiny-g2gnet-rewired").eval()
    assert type(loaded).__module__.startswith("transformers_modules")
    assert torch.equal(loaded.layers[1].linear.connections, layer.connections)
    x = torch.rand(3, 1, 4, 4)
    torch.testing.assert_close(loaded(pixel_values=x).logits, model(pixel_values=x).logits, rtol=1e-6, atol=1e-6)
