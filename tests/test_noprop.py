"""NoProp-DT: every block's loss reaches its own parameters only (in the model and in the
trainer's step), the schedule is consistent, one block's step saves far less for backward than
back-propagating through the chain, T < 1 is refused."""
import math
from types import SimpleNamespace

import pytest
import torch

import zoo
from zoo.models.noprop.configuration_noprop import NoPropConfig
from zoo.models.noprop.modeling_noprop import NoPropForImageClassification, cosine_alpha_bar, posterior_coefficients
from zoo.recipes import TRAINING_DEFAULTS

CONFIG = dict(image_size=4, num_blocks=4, hidden_size=8, num_labels=3)


def tiny(seed=0):
    torch.manual_seed(seed)
    return NoPropForImageClassification(NoPropConfig(**CONFIG)).train()


def batch(n=12):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 4, 4, generator=g), torch.arange(n) % 3


def owner_of(model) -> dict[str, int]:
    """parameter name → index of the module of local_modules() that holds it."""
    owners = {}
    for index, module in enumerate(model.local_modules()):
        for p in module.parameters():
            owners[id(p)] = index
    return {name: owners[id(p)] for name, p in model.named_parameters()}


def test_every_parameter_belongs_to_exactly_one_local_module():
    model = tiny()
    assert sum(sum(p.numel() for p in m.parameters()) for m in model.local_modules()) == sum(
        p.numel() for p in model.parameters())
    assert set(owner_of(model)) == {name for name, _ in model.named_parameters()}


def test_each_local_loss_reaches_only_its_own_block():
    model, (x, y) = tiny(), batch()
    owners = owner_of(model)
    names, params = zip(*model.named_parameters())
    losses = model.local_losses(x, y)
    assert len(losses) == CONFIG["num_blocks"] + 1
    for index, loss in enumerate(losses):
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for name, grad in zip(names, grads):
            if owners[name] == index:
                assert grad is not None, f"loss {index} does not reach its own {name}"
            else:
                assert grad is None or not grad.any(), f"loss {index} reaches {name} of module {owners[name]}"
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_the_trainers_step_sends_each_gradient_to_its_own_block_only(monkeypatch):
    """Hooks on every parameter record which module's loss was being back-propagated when a
    gradient arrived: the trainer's real step must deliver loss i's gradient to module i only."""
    from accelerate import Accelerator

    from zoo.training.noprop import NoPropTrainer

    model, (x, y) = tiny(), batch()
    owners = owner_of(model)
    current, arrivals = {"index": None}, []
    original = model.local_loss

    def tracking_loss(pixel_values, labels, index, generator=None):
        current["index"] = index
        return original(pixel_values, labels, index, generator)

    monkeypatch.setattr(model, "local_loss", tracking_loss)
    for name, p in model.named_parameters():
        p.register_hook(lambda grad, name=name: arrivals.append((current["index"], name)))
    settings = {**TRAINING_DEFAULTS, "optimizer": "adam"}
    run = SimpleNamespace(unwrapped_model=model, model=model, settings=settings, total_steps=5,
                          accelerator=Accelerator(cpu=True), state={"step": 0})
    trainer = NoPropTrainer()
    trainer.setup(run)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.training_step(run, {"pixel_values": x, "labels": y})
    assert arrivals and all(owners[name] == index for index, name in arrivals), \
        [a for a in arrivals if owners[a[1]] != a[0]]
    assert {name for _, name in arrivals} == set(owners)  # and every block learned
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters() if n.endswith("weight"))


def saved_bytes(fn) -> int:
    saved = {}

    def pack(t):
        saved[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(saved.values())


def test_one_block_step_saves_a_fraction_of_the_chains_memory():
    torch.manual_seed(0)
    model = NoPropForImageClassification(NoPropConfig(image_size=8, num_blocks=8, hidden_size=64, num_labels=10)).train()
    x, y = torch.rand(64, 1, 8, 8), torch.arange(64) % 10
    chain = saved_bytes(lambda: model(pixel_values=x, labels=y).loss)  # back-propagation through T blocks
    local = max(saved_bytes(lambda i=i: model.local_loss(x, y, i)) for i in range(9))
    assert local < chain / 4, (local, chain)


def test_schedule_and_posterior_are_consistent():
    T = 10
    alpha_bar = cosine_alpha_bar(T, 0.008)
    assert alpha_bar[0] == pytest.approx(0, abs=1e-12) and alpha_bar[-1] > 0.999
    assert all(a < b for a, b in zip(alpha_bar, alpha_bar[1:]))
    for t, (a, b) in enumerate(posterior_coefficients(alpha_bar), start=1):
        # the posterior mean keeps the marginal mean: a + b·√ᾱ_{t−1} = √ᾱ_t (for z_{t−1} at its mean)
        assert a + b * math.sqrt(alpha_bar[t - 1]) == pytest.approx(math.sqrt(alpha_bar[t]), rel=1e-9)
        # and the Gaussian marginals: b²(1 − ᾱ_{t−1}) + posterior variance = 1 − ᾱ_t, variance ≥ 0
        variance = (1 - alpha_bar[t]) * (1 - alpha_bar[t - 1] / alpha_bar[t]) / (1 - alpha_bar[t - 1])
        assert b**2 * (1 - alpha_bar[t - 1]) + variance == pytest.approx(1 - alpha_bar[t], rel=1e-9)


def test_inference_is_the_deterministic_chain():
    model, (x, _) = tiny().eval(), batch()
    out = model(pixel_values=x, output_hidden_states=True)
    z = torch.zeros(len(x), 3)
    for block, (a, b), state in zip(model.noprop.blocks, model.noprop.coefficients, out.hidden_states[1:]):
        z = a * block(x.flatten(1), z, torch.eye(3)) + b * z
        torch.testing.assert_close(state, z)
    torch.testing.assert_close(out.logits, model.classifier(z))
    torch.testing.assert_close(model(pixel_values=x).logits, out.logits)  # no sampling at inference


@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_fewer_than_one_block_is_refused(value):
    with pytest.raises(ValueError, match="num_blocks"):
        NoPropConfig(num_blocks=value)
    with pytest.raises(zoo.UserError, match="num_blocks"):
        zoo.create_model("noprop", num_blocks=value)


def test_noprop_trainer_refuses_another_architecture():
    from zoo.training.noprop import NoPropTrainer

    model = zoo.create_model("mlp", image_size=4, hidden_sizes=[5], num_labels=3)
    run = SimpleNamespace(unwrapped_model=model, model=model, settings=dict(TRAINING_DEFAULTS), total_steps=1)
    with pytest.raises(zoo.UserError, match="noprop needs a model with local_loss"):
        NoPropTrainer().setup(run)


def test_an_interrupted_noprop_run_resumes_to_the_same_weights(tmp_path):
    """Checkpoints hold every block's optimiser, the noise is drawn per step: stop at step 7, resume from
    the step-5 checkpoint, and the weights equal an uninterrupted run's."""
    import json

    from safetensors.torch import load_file

    from zoo.training import train

    recipe = tmp_path / "noprop-resume.yaml"
    recipe.write_text(json.dumps({
        "id": "noprop-resume", "architecture": "noprop",
        "config": {"image_size": 8, "num_blocks": 3, "hidden_size": 16, "num_labels": 10},
        "data": {"name": "digits"},
        "training": {"trainer": "noprop", "epochs": 1, "batch_size": 128, "optimizer": "adam", "checkpoint_every": 5},
    }))
    train(recipe, output_dir=tmp_path / "full")
    train(recipe, ["training.stop_after_steps=7"], output_dir=tmp_path / "part")
    assert not (tmp_path / "part" / "model.safetensors").exists()
    train(recipe, output_dir=tmp_path / "part", resume=True)
    full, part = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "part" / "model.safetensors")
    assert full.keys() == part.keys()
    for key in full:
        assert torch.equal(full[key], part[key]), key
