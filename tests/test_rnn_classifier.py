"""rnn_classifier: our cells against torch's, masking of padded steps, the backward direction."""
import pytest
import torch

import zoo
from zoo.models.rnn_classifier.recurrent_cells import RecurrentLayer, StackedRNN

TORCH_MODULES = {"tanh": lambda i, h, **k: torch.nn.RNN(i, h, nonlinearity="tanh", **k),
                 "relu": lambda i, h, **k: torch.nn.RNN(i, h, nonlinearity="relu", **k),
                 "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def copy_into_torch(stack: StackedRNN, module):
    with torch.no_grad():
        for l, layer in enumerate(stack.layers):
            for d, direction in enumerate(layer):
                suffix = f"l{l}" + ("_reverse" if d else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(module, f"{name}_{suffix}").copy_(getattr(direction, name))


@pytest.mark.parametrize("cell", ["tanh", "relu", "gru", "lstm"])
def test_cells_compute_what_torch_computes(cell):
    torch.manual_seed(0)
    stack = StackedRNN(cell, 3, 5, num_layers=2, bidirectional=True)
    reference = TORCH_MODULES[cell](3, 5, num_layers=2, bidirectional=True, batch_first=True)
    copy_into_torch(stack, reference)
    x = torch.randn(4, 7, 3)
    outputs, finals = stack(x)
    expected, state = reference(x)
    h_n = state[0] if cell == "lstm" else state
    torch.testing.assert_close(outputs[-1], expected, atol=1e-5, rtol=1e-5)
    # the final states: forward direction after the last step, backward after the first
    torch.testing.assert_close(finals, torch.cat([h_n[-2], h_n[-1]], -1), atol=1e-5, rtol=1e-5)


def model(cell, **overrides):
    torch.manual_seed(0)
    config = {**dict(input_size=3, hidden_size=6, num_layers=2, cell=cell, bidirectional=True, num_labels=4), **overrides}
    return zoo.create_model("rnn_classifier", **config).eval()


@pytest.mark.parametrize("cell", ["tanh", "relu", "gru", "lstm"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padded_batch_gives_the_unpadded_outputs(cell, pooling):
    net = model(cell, pooling=pooling)
    lengths = [5, 2, 7, 1]
    sequences = [torch.randn(n, 3) for n in lengths]
    x = torch.zeros(4, 7, 3)
    mask = torch.zeros(4, 7, dtype=torch.long)
    for i, s in enumerate(sequences):
        x[i, : len(s)] = s + 0  # the padding holds garbage that must not matter
        x[i, len(s):] = 100.0
        mask[i, : len(s)] = 1
    with torch.no_grad():
        padded = net(input_features=x, attention_mask=mask, output_hidden_states=True)
        for i, s in enumerate(sequences):
            alone = net(input_features=s[None], output_hidden_states=True)
            torch.testing.assert_close(padded.logits[i], alone.logits[0], atol=1e-5, rtol=1e-5)
            for a, b in zip(padded.hidden_states[1:], alone.hidden_states[1:]):  # every layer's outputs
                torch.testing.assert_close(a[i, : len(s)], b[0], atol=1e-5, rtol=1e-5)
                assert not a[i, len(s):].any()  # padded steps output 0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_backward_direction_reads_the_reversed_sequence(cell):
    torch.manual_seed(0)
    stack = StackedRNN(cell, 3, 4, num_layers=1, bidirectional=True)
    forward_only = RecurrentLayer(cell, 3, 4)
    forward_only.load_state_dict(stack.layers[0][1].state_dict())  # the backward direction's weights
    x = torch.randn(2, 6, 3)
    outputs, finals = stack(x)
    reversed_out, reversed_final = forward_only(x.flip(1))
    torch.testing.assert_close(outputs[0][..., 4:], reversed_out.flip(1))  # output at t = state after x_T..x_t
    torch.testing.assert_close(finals[:, 4:], reversed_final)
    # padded at the end: the backward direction starts at the last real step, from the zero state
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    _, finals = stack(x, mask)
    _, alone = forward_only(x[:1, :4].flip(1))
    torch.testing.assert_close(finals[:1, 4:], alone)


def test_backward_direction_changes_the_result():
    """The two directions are not the same computation: reversing the input changes the output."""
    net = model("lstm", num_layers=1)
    x = torch.randn(1, 6, 3)
    with torch.no_grad():
        assert not torch.allclose(net(input_features=x).logits, net(input_features=x.flip(1)).logits)


def test_inputs_that_do_not_fit_are_clear_errors():
    net = model("gru", max_steps=8)
    with pytest.raises(ValueError, match="9 steps is longer than the config's max_steps=8"):
        net(input_features=torch.randn(1, 9, 3))
    with pytest.raises(ValueError, match="4 features a step, the config's input_size is 3"):
        net(input_features=torch.randn(1, 5, 4))
    with pytest.raises(ValueError, match="attention_mask must be"):
        net(input_features=torch.randn(2, 5, 3), attention_mask=torch.ones(2, 4))


@pytest.mark.parametrize("field, value", [("cell", "rnn"), ("pooling", "max"), ("max_steps", 0), ("hidden_size", 0)])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(zoo.errors.UserError, match=field):
        zoo.registry.build_config("rnn_classifier", **{field: value})


def test_a_recipe_whose_sequences_exceed_max_steps_fails_in_one_line(tmp_path):
    from zoo import recipes
    from zoo.training import train

    path = tmp_path / "r.yaml"
    path.write_text("id: too-long\narchitecture: rnn_classifier\n"
                    "config: {input_size: 7, hidden_size: 3, num_labels: 2, max_steps: 10}\n"
                    "data: {name: reber, embedded: false, n_train: 8, n_test: 4, max_length: 20}\n"
                    "training: {epochs: 1, batch_size: 4}\n")
    with pytest.raises(zoo.errors.UserError, match="20 steps is longer than the config's max_steps=10") as error:
        train(recipes.load_recipe(path), output_dir=tmp_path / "out")
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("cell", ["tanh", "relu", "gru", "lstm"])
def test_fused_kernel_path_computes_what_the_step_loop_computes(cell):
    """Without a recurrent mask the layer runs torch's fused kernel (padding handled by moving the
    real steps to the front): outputs, final states and gradients equal the step-by-step loop's,
    for padding anywhere (leading, inner, trailing, a row with no real step) and both directions."""
    torch.manual_seed(1)
    layer = RecurrentLayer(cell, 3, 5)
    x = torch.randn(5, 8, 3, requires_grad=True)
    mask = torch.tensor([[0, 0, 1, 1, 0, 1, 1, 0], [1] * 8, [0] * 8, [1, 1, 1, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 1, 0, 1]])
    for m in (None, mask, torch.ones_like(mask)):
        for reverse in (False, True):
            results = []
            for fused in (True, False):
                layer.fused = fused
                out, final = layer(x, m, reverse=reverse)
                grads = torch.autograd.grad(out.sin().sum() + final.pow(2).sum(), [x, layer.weight_ih, layer.weight_hh, layer.bias_hh])
                results.append((out, final, *grads))
            for a, b in zip(*results):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
            if m is mask:  # the row without a real step: zero outputs and state; padded steps output 0
                assert not results[0][0][2].any() and not results[0][1][2].any()
                assert not results[0][0][mask == 0].any()


def test_bidirectional_stack_runs_the_fused_kernel_and_matches_the_loop():
    torch.manual_seed(2)
    net = model("lstm")
    x, mask = torch.randn(3, 7, 3), torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [0, 0] + [1] * 5])
    with torch.no_grad():
        fused = net(input_features=x, attention_mask=mask, output_hidden_states=True)
        for layer in net.rnn.stack.layers:
            for direction in layer:
                direction.fused = False
        loop = net(input_features=x, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(fused.logits, loop.logits, atol=1e-5, rtol=1e-5)
    for a, b in zip(fused.hidden_states, loop.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
