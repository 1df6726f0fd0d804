"""The single-layer transformer against a manual forward pass; permutation equivariance where the
map is equivariant (the seq_maps generator and the model without positions); the seq_maps targets
against independent computations; an unknown map name."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from zoo import data
from zoo.data.seq_maps import SEQ_MAPS, apply_map


def tiny(**overrides):
    torch.manual_seed(0)
    config = dict(num_labels=5, hidden_size=8, num_heads=2, ffn_size=12, problem_type="regression")
    return zoo.create_model("one_layer_transformer", **{**config, **overrides}).eval()


def manual_forward(model, x):
    """embed → h + MHA(h) → LN → a + W₂ relu(W₁ a) → LN → readout, written out by hand."""
    t = model.transformer
    h = x[..., None] * t.embed.weight[:, 0] + t.embed.bias
    if t.position is not None:
        h = h + t.position
    block = t.blocks[0]
    d, heads = h.shape[-1], block.attention.num_heads
    q, k, v = (h @ block.attention.qkv.weight.T + block.attention.qkv.bias).split(d, dim=-1)
    outs = []
    for i in range(heads):
        s = slice(i * d // heads, (i + 1) * d // heads)
        w = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / (d // heads) ** 0.5, dim=-1)
        outs.append(w @ v[..., s])
    attn = torch.cat(outs, -1) @ block.attention.out.weight.T + block.attention.out.bias

    def ln(z, norm):
        return (z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, unbiased=False, keepdim=True) + norm.eps) * norm.weight + norm.bias

    a = ln(h + attn, block.norm1)
    f = torch.relu(a @ block.ffn[0].weight.T + block.ffn[0].bias) @ block.ffn[2].weight.T + block.ffn[2].bias
    out = ln(a + f, block.norm2)
    return (out @ model.readout.weight.T + model.readout.bias)[..., 0]


def test_matches_manual_forward():
    model = tiny()
    x = torch.rand(3, 5) * 2 - 1
    torch.testing.assert_close(model(x).logits, manual_forward(model, x))
    y = torch.randn(3, 5)
    torch.testing.assert_close(model(x, labels=y).loss, ((manual_forward(model, x) - y) ** 2).mean())


def test_permutation_equivariant_without_positions_only():
    x = torch.rand(6, 5) * 2 - 1
    perm = torch.tensor([3, 0, 4, 1, 2])
    for norm in ("post", "pre", "none"):
        model = tiny(positional="none", norm=norm, num_layers=2)
        torch.testing.assert_close(model(x[:, perm]).logits, model(x).logits[:, perm])
    model = tiny(positional="learned")  # positions break the symmetry
    assert not torch.allclose(model(x[:, perm]).logits, model(x).logits[:, perm], atol=1e-4)


def test_seq_maps_equivariance_is_where_the_map_says():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (20, 6))
    perm = rng.permutation(6)
    for name, (_, equivariant) in SEQ_MAPS.items():
        commutes = np.allclose(apply_map(name, x[:, perm]), apply_map(name, x)[:, perm])
        assert commutes == equivariant, name
    assert SEQ_MAPS["equivariant"][1]


def test_seq_maps_targets():
    d = data.load("seq_maps", map="moving_average", seq_len=6, n_train=10, n_test=3, window=2)
    x, y = d["train"]["input_features"][:].double(), d["train"]["labels"][:].double()
    expected = torch.stack([x[:, 0]] + [(x[:, i - 1] + x[:, i]) / 2 for i in range(1, 6)], 1)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 5))
    assert np.allclose(apply_map("prefix_sum", x)[:, -1], x.sum(1))
    assert np.array_equal(apply_map("reversal", x)[:, 0], x[:, -1])
    s = apply_map("sort", x)
    assert (np.diff(s, axis=1) >= 0).all() and np.allclose(np.sort(s.sum(1)), np.sort(x.sum(1)))
    # seeded: the same seed gives the same data, another map seed another equivariant map
    a = data.load("seq_maps", map="equivariant", seq_len=4, n_train=5, n_test=2)["train"]["labels"][:]
    b = data.load("seq_maps", map="equivariant", seq_len=4, n_train=5, n_test=2)["train"]["labels"][:]
    c = data.load("seq_maps", map="equivariant", seq_len=4, n_train=5, n_test=2, map_seed=1)["train"]["labels"][:]
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_unknown_map_and_bad_lengths():
    with pytest.raises(zoo.UserError, match="unknown sequence map 'sorting'; did you mean sort"):
        data.load("seq_maps", map="sorting")
    with pytest.raises(zoo.UserError, match="seq_len"):
        data.load("seq_maps", seq_len=0)
    with pytest.raises(ValueError, match="num_heads=3 must divide hidden_size=8"):
        tiny(num_heads=3)
    with pytest.raises(ValueError, match=r"input_features must be \(batch, 5\)"):
        tiny()(torch.zeros(2, 4))


def test_eval_loss_is_the_training_loss_per_element():
    """The loop's eval_loss of a multi-output regressor is the per-element mean squared error, as
    its training loss (mse_loss), not the squared error summed over the outputs."""
    from zoo.training.run import evaluate

    model = tiny()
    x, y = torch.rand(7, 5) * 2 - 1, torch.randn(7, 5)
    batches = [{"input_features": x[:4], "labels": y[:4]}, {"input_features": x[4:], "labels": y[4:]}]
    with torch.no_grad():
        expected = float(((manual_forward(model, x) - y) ** 2).mean())
        assert evaluate(model, batches) == {"eval_loss": pytest.approx(model(x, labels=y).loss.item(), rel=1e-6)}
    assert evaluate(model, [dict(b) for b in batches])["eval_loss"] == pytest.approx(expected, rel=1e-5)
