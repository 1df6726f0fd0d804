"""ts_lstm and temporal_inception (Ma et al. 2017): windows, fusion, masking."""
import pytest
import torch

import zoo
from zoo.models.ts_lstm.modeling_ts_lstm import segment_masks


def test_segment_masks_cut_the_real_steps_evenly():
    masks = segment_masks(torch.tensor([6, 4, 2]), steps=6, segments=3)
    assert masks[:, 0].tolist() == [[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]]
    assert masks[:, 1].tolist() == [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0]]  # cuts at 4·s/3
    assert masks[:, 2].tolist() == [[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]]  # L < S: one window empty
    assert (masks.sum(0) == torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])).all()  # a partition


def ts_lstm(**overrides):
    torch.manual_seed(0)
    config = {**dict(input_size=3, hidden_size=5, num_segments=3, num_labels=4), **overrides}
    return zoo.create_model("ts_lstm", **config).eval()


@pytest.mark.parametrize("fusion", ["mean", "concat"])
def test_each_window_is_an_lstm_from_the_zero_state(fusion):
    model = ts_lstm(fusion=fusion)
    x = torch.randn(2, 9, 3)
    with torch.no_grad():
        states = model.ts_lstm(input_features=x).last_hidden_state  # (batch, windows, hidden)
        for s in range(3):
            _, alone = model.ts_lstm.layer(x[:, 3 * s: 3 * s + 3])  # the window by itself
            torch.testing.assert_close(states[:, s], alone, atol=1e-6, rtol=1e-6)
        expected = states.mean(1) if fusion == "mean" else states.flatten(1)
        torch.testing.assert_close(model(input_features=x).logits, model.classifier(expected))


def test_one_segment_is_the_plain_lstm():
    model = ts_lstm(num_segments=1)
    plain = zoo.create_model("rnn_classifier", input_size=3, hidden_size=5, cell="lstm", num_labels=4).eval()
    plain.rnn.stack.layers[0][0].load_state_dict(model.ts_lstm.layer.state_dict())
    plain.classifier.load_state_dict(model.classifier.state_dict())
    x = torch.randn(3, 7, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(input_features=x).logits, plain(input_features=x).logits)


@pytest.mark.parametrize("name, config", [
    ("ts_lstm", dict(input_size=3, hidden_size=5, num_segments=3, num_labels=4)),
    ("temporal_inception", dict(input_size=3, channels=4, kernel_sizes=[1, 3, 5], num_blocks=2, num_labels=4)),
])
def test_padded_batch_gives_the_unpadded_outputs(name, config):
    torch.manual_seed(0)
    model = zoo.create_model(name, **config).eval()
    sequences = [torch.randn(n, 3) - 2.0 for n in (7, 4, 5)]  # negative values: the max-pool's padding matters
    x = torch.full((3, 7, 3), 50.0)
    mask = torch.zeros(3, 7, dtype=torch.long)
    for i, s in enumerate(sequences):
        x[i, : len(s)] = s
        mask[i, : len(s)] = 1
    with torch.no_grad():
        padded = model(input_features=x, attention_mask=mask).logits
        for i, s in enumerate(sequences):
            torch.testing.assert_close(padded[i], model(input_features=s[None]).logits[0], atol=1e-5, rtol=1e-5)


def test_temporal_inception_matches_a_manual_forward():
    torch.manual_seed(0)
    model = zoo.create_model("temporal_inception", input_size=2, channels=3, kernel_sizes=[1, 3], num_blocks=1, num_labels=2).eval()
    x = torch.randn(1, 5, 2)
    block = model.inception.blocks[0]
    xt = x.transpose(1, 2)
    pooled = torch.stack([xt[..., max(0, t - 1): t + 2].amax(-1) for t in range(5)], -1)  # max over the 3-step window
    branches = torch.cat([block.convs[0](xt), block.convs[1](xt), block.pool_proj(pooled)], 1).relu()
    with torch.no_grad():
        torch.testing.assert_close(model(input_features=x).logits, model.classifier(branches.mean(-1)))


@pytest.mark.parametrize("name, field, value", [("ts_lstm", "num_segments", 0), ("ts_lstm", "fusion", "max"),
                                                ("temporal_inception", "kernel_sizes", [2]), ("temporal_inception", "max_steps", 0)])
def test_invalid_config_names_the_field(name, field, value):
    with pytest.raises(zoo.errors.UserError, match=field):
        zoo.registry.build_config(name, **{field: value})


@pytest.mark.parametrize("name", ["ts_lstm", "temporal_inception"])
def test_too_long_a_sequence_is_a_clear_error(name):
    model = zoo.create_model(name, input_size=2, max_steps=4, num_labels=2)
    with pytest.raises(ValueError, match="5 steps is longer than the config's max_steps=4"):
        model(input_features=torch.randn(1, 5, 2))
