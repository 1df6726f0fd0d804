"""analysis.dnr: the dead neuron rate of a hand-built net equals its closed form; the meter's
training curve; the CLI on a saved zoo model, and its one-line refusal of a net without ReLUs."""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from analysis.cli import main as analysis_main
from analysis.dnr import DNRMeter, dead_neuron_rate


def hand_built():
    """1 input → 3 ReLUs (w = 1, −1, 2; b = 0, 0.5, −1) → 1 ReLU that never fires (b = −10)."""
    model = zoo.create_model("mlp", image_size=1, hidden_sizes=[3, 1], num_labels=2)
    first, second = model.layers[0].linear, model.layers[1].linear
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0], [-1.0], [2.0]]))
        first.bias.copy_(torch.tensor([0.0, 0.5, -1.0]))
        second.weight.fill_(1.0)
        second.bias.fill_(-10.0)
    return model


def test_dnr_of_a_hand_built_net_is_the_closed_form():
    # x uniform on [−1, 1]: P(x <= 0) = 1/2, P(−x + 0.5 <= 0) = P(x >= 0.5) = 1/4, P(2x − 1 <= 0) = 3/4;
    # the second layer is dead everywhere (its input is at most 1 + 1.5 + 1 < 10).
    x = torch.linspace(-1, 1, 20001).view(-1, 1, 1, 1)
    batches = ({"pixel_values": chunk} for chunk in x.split(4096))
    result = dead_neuron_rate(hand_built(), batches)
    assert result.examples == 20001
    assert result.layers["layers.0.act"] == pytest.approx((0.5 + 0.25 + 0.75) / 3, abs=1e-3)
    assert result.layers["layers.1.act"] == 1.0
    assert result.rate == pytest.approx((0.5 + 0.25 + 0.75 + 1.0) / 4, abs=1e-3)  # weighted by units
    assert result.units == {"layers.0.act": 3, "layers.1.act": 1}


def test_meter_counts_training_passes_only_and_records_a_curve():
    model = hand_built()
    with DNRMeter(model) as meter:
        model.train()
        model(pixel_values=torch.full((4, 1, 1, 1), 0.9))  # units: alive, dead, alive; layer 2 dead → 2/4
        model.eval()
        model(pixel_values=torch.full((4, 1, 1, 1), -0.9))  # eval pass: not counted
        assert meter.record(step=1) == pytest.approx(0.5)
        model.train()
        model(pixel_values=torch.full((2, 1, 1, 1), -0.9))  # dead, alive, dead; dead → 3/4
        assert meter.record(step=2) == pytest.approx(0.75)
        assert meter.curve == [{"step": 1, "rate": pytest.approx(0.5)}, {"step": 2, "rate": pytest.approx(0.75)}]
    assert not model.layers[0].act._forward_hooks  # closed: hooks removed


def test_cli_on_a_saved_model(tmp_path, capsys):
    torch.manual_seed(0)
    model = zoo.create_model("mlp", image_size=8, hidden_sizes=[16, 8], num_labels=10)
    model.save_pretrained(tmp_path / "m")
    out = tmp_path / "dnr"
    assert analysis_main(["dnr", "--model", str(tmp_path / "m"), "--data", "digits", "--limit", "100", "--out", str(out),
                          "--no-plots", "--quiet"]) == 0
    saved = json.loads((out / "dnr.json").read_text())
    x = torch.stack([torch.as_tensor(r) for r in zoo.data.load("digits", split="test")[:100]["pixel_values"]])
    expected = dead_neuron_rate(model, [{"pixel_values": x}])
    assert saved["examples"] == 100 and saved["rate"] == pytest.approx(expected.rate)
    assert "DNR" in (out / "report.md").read_text()


def test_cli_refuses_a_net_without_relus(tmp_path, capsys):
    zoo.create_model("mlp", image_size=8, hidden_sizes=[4], activation="tanh", num_labels=10).save_pretrained(tmp_path / "m")
    out = tmp_path / "dnr"
    assert analysis_main(["dnr", "--model", str(tmp_path / "m"), "--data", "digits", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no ReLU-family activation" in err[0]
    assert not out.exists()
