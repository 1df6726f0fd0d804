"""Every registered architecture: forward, backward, save/load, Auto dispatch, remote code, pipeline.

The parametrised tests run over ``zoo.list_models()``: a new folder in zoo/models/ (or in
$ZOO_MODELS_PATH) is tested by all of them with no edit here
(test_a_new_architecture_folder_gets_every_parametrised_test shows it).
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

import zoo
from zoo.recipes import TRAINING_DEFAULTS, Recipe
from zoo.registry import auto_class_for, check_config_keys

from .conftest import REPO_ROOT, run, run_python

ARCHITECTURES = zoo.list_models()
# transformers pipelines exist for these Hub tasks (tabular-classification has none)
PIPELINE_TASKS = {"image-classification"}
PIPELINE_ARCHITECTURES = [n for n in ARCHITECTURES if zoo.get_architecture(n).task in PIPELINE_TASKS]
# output="field" (operators: a field in, a field out) has no num_labels classifier/regressor variant
FIELD_ARCHITECTURES = [n for n in ARCHITECTURES if zoo.get_architecture(n).output == "field"]
CLASSIFIERS = [n for n in ARCHITECTURES if n not in FIELD_ARCHITECTURES]
FIXTURES = Path(__file__).parent / "fixtures"


def tiny_model(name: str):
    torch.manual_seed(0)
    return zoo.create_model(name, **zoo.get_architecture(name).tiny_config).eval()


def main_input(model) -> torch.Tensor:
    return model.dummy_inputs[model.main_input_name]


def is_field(model) -> bool:
    return zoo.get_architecture(model.config.model_type).output == "field"


def output_shape(model, x) -> tuple:
    """The logits' shape: (batch, num_labels), or a field architecture's (batch, out_channels, *grid)."""
    if is_field(model):
        return (x.shape[0], model.config.out_channels, *x.shape[2:])
    return (x.shape[0], model.config.num_labels)


def example_labels(model, x) -> torch.Tensor:
    """Labels for the batch x: class ids, or a positive float field of the output's shape."""
    if is_field(model):
        return torch.rand(output_shape(model, x), generator=torch.Generator().manual_seed(0)) + 0.5
    return torch.arange(x.shape[0]) % model.config.num_labels


def expected_loss(model, logits, labels) -> torch.Tensor:
    """Cross-entropy for class ids; a field's relative L2 error, mean over examples (computed here)."""
    if is_field(model):
        return torch.stack([(p - y).pow(2).sum().sqrt() / y.pow(2).sum().sqrt() for p, y in zip(logits, labels)]).mean()
    return torch.nn.functional.cross_entropy(logits, labels)


def export_tiny(name: str, tmp_path: Path, config: dict | None = None, id2label: dict | None = None):
    """A tiny model of `name` saved and exported as a Hub repo folder; returns (model, repo)."""
    from zoo.hub import export_repo

    torch.manual_seed(0)
    config = config or zoo.get_architecture(name).tiny_config
    model = zoo.create_model(name, **config).eval()
    if id2label:
        model.config.id2label = id2label
        model.config.label2id = {v: k for k, v in id2label.items()}
    model.save_pretrained(tmp_path / "out" / name)
    recipe = Recipe(id=f"tiny-{name.replace('_', '-')}", architecture=name, config=config,
                    data={"name": "digits"}, training=dict(TRAINING_DEFAULTS))
    repo = export_repo(recipe, repo_dir=tmp_path / "repos" / name, output_dir=tmp_path / "out" / name)
    return model, repo, recipe


def test_registry_lists_the_first_architectures():
    assert {"two_layer_mlp", "mlp", "convnet"} <= set(ARCHITECTURES)


# ------------------------------------------------------------------------------------------
# the transformers layout: base class, backbone (AutoModel), task head
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_transformers_layout(name):
    arch = zoo.get_architecture(name)
    head = tiny_model(name)
    assert arch.base_model_class is not None and arch.base_model_class is not arch.model_class
    # one XPreTrainedModel base under both, carrying the class attributes transformers reads
    base = next(c for c in arch.model_class.__mro__[1:] if c.__name__.endswith("PreTrainedModel"))
    assert issubclass(arch.base_model_class, base) and base is not transformers.PreTrainedModel
    assert base.config_class is arch.config_class
    # base_model_prefix names the attribute holding the backbone
    backbone = getattr(head, head.base_model_prefix)
    assert type(backbone) is arch.base_model_class and head.base_model is backbone
    assert head.main_input_name in head.dummy_inputs
    class_names = {type(m).__name__ for m in head.modules()}
    assert set(head._no_split_modules or ()) <= class_names


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward_shapes_and_hidden_states(name):
    model = tiny_model(name)
    x = main_input(model)
    out = model(**{model.main_input_name: x}, output_hidden_states=True)
    batch = x.shape[0]
    assert out.logits.shape == output_shape(model, x)
    assert out.hidden_states is not None and len(out.hidden_states) >= 2
    assert all(h.shape[0] == batch for h in out.hidden_states)
    assert torch.equal(out.hidden_states[0].reshape(batch, -1), x.reshape(batch, -1))
    assert model(**{model.main_input_name: x}).hidden_states is None
    # the backbone alone gives the head's features: its hidden states start the head's
    backbone = getattr(model, model.base_model_prefix)
    features = backbone(**{model.main_input_name: x}, output_hidden_states=True)
    assert features.last_hidden_state.shape[0] == batch and not hasattr(features, "logits")
    for a, b in zip(features.hidden_states, out.hidden_states):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_return_dict_false_gives_tuples(name):
    model = tiny_model(name)
    x = main_input(model)
    labels = example_labels(model, x)
    out = model(**{model.main_input_name: x}, labels=labels, output_hidden_states=True)
    as_tuple = model(**{model.main_input_name: x}, labels=labels, output_hidden_states=True, return_dict=False)
    assert type(as_tuple) is tuple and len(as_tuple) == 3
    assert torch.equal(as_tuple[0], out.loss) and torch.equal(as_tuple[1], out.logits)
    assert len(as_tuple[2]) == len(out.hidden_states)
    # the config's return_dict too, and the backbone
    model.config.return_dict = False
    assert type(model(**{model.main_input_name: x})) is tuple
    assert type(getattr(model, model.base_model_prefix)(**{model.main_input_name: x})) is tuple


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_backward_reaches_every_parameter(name):
    model = tiny_model(name).train()
    x = main_input(model)
    labels = example_labels(model, x)
    out = model(**{model.main_input_name: x}, labels=labels)
    expected = expected_loss(model, out.logits, labels)
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_save_load_round_trip(name, tmp_path):
    arch = zoo.get_architecture(name)
    model = tiny_model(name)
    x = main_input(model)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = auto_class_for(AutoConfig.from_pretrained(tmp_path)).from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    torch.testing.assert_close(loaded(**{model.main_input_name: x}).logits, model(**{model.main_input_name: x}).logits,
                               rtol=0, atol=0)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    # AutoModel on the task model's checkpoint: the backbone, with the head's backbone weights
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    assert type(backbone) is arch.base_model_class
    prefix = model.base_model_prefix + "."
    head_state = model.state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, head_state[prefix + key]), key


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_auto_classes_dispatch(name):
    arch = zoo.get_architecture(name)
    config = AutoConfig.for_model(name, **arch.tiny_config)
    assert isinstance(config, arch.config_class)
    assert type(AutoModel.from_config(config)) is arch.base_model_class
    assert arch.task_auto_class
    assert type(getattr(transformers, arch.task_auto_class).from_config(config)) is arch.model_class
    assert auto_class_for(config) is getattr(transformers, arch.task_auto_class)


# The loads run in fresh interpreters where zoo cannot be imported. One interpreter per variant
# loads every architecture's repo (an interpreter start with torch and transformers costs
# seconds; one per architecture and variant would grow CI time with the zoo); each architecture's
# result, or its traceback, is then checked by its own parametrised test.
REMOTE_LOAD_CODE = """
import json, sys, traceback, torch, transformers
if sys.argv[-1] == "no-init":  # as on transformers 4.x: `from transformers import initialization` fails
    import transformers.modeling_utils, transformers.modeling_outputs  # (transformers' own code needs it first)
    sys.modules["transformers.initialization"] = None
    transformers.__dict__.pop("initialization", None)
    try:
        from transformers import initialization
        raise SystemExit("could not hide transformers.initialization")
    except ImportError:
        pass
results = {}
for name, job in json.loads(open(sys.argv[-2]).read()).items():
    try:
        base = transformers.AutoModel.from_pretrained(job["repo"], trust_remote_code=True).eval()
        head = getattr(transformers, job["task_auto_class"]).from_pretrained(job["repo"], trust_remote_code=True).eval()
        assert type(head).__module__.startswith("transformers_modules"), type(head).__module__
        x = torch.load(job["x"], weights_only=True)["x"]
        results[name] = {"base": type(base).__name__, "head": type(head).__name__,
                         "logits": head(**{head.main_input_name: x}).logits.tolist(),
                         "tuple": type(head(**{head.main_input_name: x}, return_dict=False)).__name__}
    except BaseException:
        results[name] = {"error": traceback.format_exc()[-3000:]}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def remote_loads(tmp_path_factory):
    """{variant: {name: what a zoo-less interpreter loaded from the exported repo}}, and the
    tiny models and repos they were exported from."""
    root = tmp_path_factory.mktemp("remote")
    env = {**os.environ, "HF_HUB_CACHE": str(root / "hf-cache"), "HF_MODULES_CACHE": str(root / "hf-modules"),
           "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    exported, jobs = {}, {}
    for name in ARCHITECTURES:
        model, repo, _ = export_tiny(name, root / name)
        x = main_input(model)
        torch.save({"x": x}, root / f"{name}-x.pt")
        exported[name] = (model, repo, x)
        jobs[name] = {"repo": str(repo), "x": str(root / f"{name}-x.pt"),
                      "task_auto_class": zoo.get_architecture(name).task_auto_class}
    (root / "jobs.json").write_text(json.dumps(jobs))
    loads = {}
    for variant in ("plain", "no-init"):
        proc = run([sys.executable, "-c", "import sys; sys.modules['zoo'] = None; sys.modules['analysis'] = None\n"
                    + REMOTE_LOAD_CODE, str(root / "jobs.json"), variant], env=env, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        loads[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loads, exported


@pytest.mark.xdist_group("remote-loads")  # one worker runs the two zoo-less interpreters
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_remote_code_loads_without_zoo(name, remote_loads):
    """The exported repo loads with trust_remote_code where zoo cannot be imported: AutoModel
    gives the backbone, the task Auto class the whole model, and transformers.initialization is
    not needed (transformers 4.x has none)."""
    loads, exported = remote_loads
    arch = zoo.get_architecture(name)
    model, repo, x = exported[name]
    config = json.loads((repo / "config.json").read_text())
    assert config["auto_map"] == arch.auto_map
    assert config["min_transformers_version"] == arch.min_transformers_version
    assert f"transformers>={arch.min_transformers_version}" in arch.requirement_note
    assert sorted(p.name for p in repo.glob("*.py")) == sorted(p.name for p in arch.code_files)
    for variant in ("plain", "no-init"):
        got = loads[variant][name]
        assert "error" not in got, f"{variant}: {got.get('error')}"
        assert got["base"] == arch.base_model_class.__name__ and got["head"] == arch.model_class.__name__
        assert got["tuple"] == "tuple"
        torch.testing.assert_close(torch.tensor(got["logits"]), model(**{model.main_input_name: x}).logits,
                                   rtol=1e-6, atol=1e-6)


def test_create_model_pretrained_gives_the_task_model(tmp_path, hf_env):
    """create_model(recipe_id, pretrained=True) loads the published repo's task model (logits),
    not the backbone AutoModel now returns."""
    from zoo.hub import publish_to_cache
    from zoo.recipes import load_recipe

    recipe = load_recipe("two-layer-mlp-xor-cluster")
    model, repo, _ = export_tiny("two_layer_mlp", tmp_path, config=recipe.config)
    publish_to_cache(repo, recipe.repo_id)
    loaded = zoo.create_model(recipe.id, pretrained=True).eval()
    assert type(loaded).__name__ == "TwoLayerMLPForClassification"
    x = main_input(model)
    torch.testing.assert_close(loaded(input_features=x).logits, model(input_features=x).logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", PIPELINE_ARCHITECTURES)
def test_pipeline_from_the_cache_without_zoo(name, tmp_path, hf_env):
    """pipeline(task, model="zooscope/<id>", trust_remote_code=True) offline, zoo blocked: the
    repo's image processor turns any picture into the training input and the labels are the
    config's class names."""
    import numpy as np
    from PIL import Image

    from zoo.hub import publish_to_cache

    arch = zoo.get_architecture(name)
    names = {i: f"class-{chr(97 + i)}" for i in range(arch.tiny_config["num_labels"])}
    model, repo, recipe = export_tiny(name, tmp_path, id2label=names)
    processor_config = json.loads((repo / "preprocessor_config.json").read_text())
    assert processor_config["auto_map"]["AutoImageProcessor"].endswith(arch.processor_class.__name__)
    publish_to_cache(repo, recipe.repo_id)
    side = model.config.image_size
    rng = torch.Generator().manual_seed(0)
    paths = []
    for i in range(3):  # RGB pictures of another size than the model's input
        pixels = (torch.rand(side * 3, side * 2, 3, generator=rng) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(tmp_path / f"img{i}.png")
        paths.append(str(tmp_path / f"img{i}.png"))
    code = f"""
import json
from transformers import pipeline
pipe = pipeline("{arch.task}", model="{recipe.repo_id}", trust_remote_code=True)
print(json.dumps(pipe({paths!r}, top_k={len(names)})))
"""
    proc = run_python(code, env=hf_env, block_zoo=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for path, predictions in zip(paths, got):
        # independently: PIL grey (ITU-R 601-2 luma) → bilinear resize → /255 → the model → softmax
        image = Image.open(path).convert("L" if model.config.num_channels == 1 else "RGB")
        image = image.resize((side, side), Image.BILINEAR)
        x = torch.tensor(np.asarray(image), dtype=torch.float32).reshape(1, side, side, -1).permute(0, 3, 1, 2) / 255
        with torch.no_grad():
            probs = model(pixel_values=x).logits.softmax(-1)[0]
        expected = {names[i]: probs[i].item() for i in range(len(names))}
        assert {p["label"] for p in predictions} == set(names.values())
        for p in predictions:
            assert p["score"] == pytest.approx(expected[p["label"]], abs=1e-5)


def test_image_processor_reproduces_the_training_input():
    """A digit saved as an ordinary 8-bit picture comes out of the processor as the digits data set's tensor."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    processor = zoo.get_architecture("mlp").processor_class.for_model_config({"image_size": 8, "num_channels": 1})
    images = load_digits().images[:5]  # values 0..16; zoo's digits data set divides by 16
    pictures = [Image.fromarray(np.round(im / 16 * 255).astype(np.uint8)) for im in images]
    got = processor(pictures, return_tensors="pt")["pixel_values"]
    assert got.shape == (5, 1, 8, 8)
    torch.testing.assert_close(got[:, 0], torch.tensor(images / 16, dtype=torch.float32), atol=0.501 / 255, rtol=0)  # 8-bit rounding
    # an RGB picture is made grey, a larger one resized
    big = Image.fromarray(np.stack([np.full((16, 16), 255, np.uint8)] * 3, -1))
    assert torch.allclose(processor(big, return_tensors="pt")["pixel_values"], torch.ones(1, 1, 8, 8))


# ------------------------------------------------------------------------------------------
# round-1 checkpoints (saved by the code before the backbone/head split)
# ------------------------------------------------------------------------------------------

ROUND1 = sorted(p.name for p in (FIXTURES / "round1").iterdir())


@pytest.mark.parametrize("fixture", ROUND1)
def test_round1_checkpoint_loads_with_todays_classes(fixture, tmp_path):
    source = FIXTURES / "round1" / fixture
    for name in ("config.json", "model.safetensors"):  # a training output folder: no code, no auto_map
        shutil.copyfile(source / name, tmp_path / name)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["auto_map"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    expected = load_file(str(source / "expected.safetensors"))
    arch = zoo.get_architecture(config["model_type"])
    model = auto_class_for(AutoConfig.from_pretrained(tmp_path)).from_pretrained(tmp_path).eval()
    assert type(model) is arch.model_class
    saved = load_file(str(source / "model.safetensors"))
    assert set(model.state_dict()) == set(saved)  # same keys: nothing missing, nothing re-initialised
    with torch.no_grad():
        logits = model(**{model.main_input_name: expected["inputs"]}).logits
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=0)


@pytest.mark.parametrize("fixture", ROUND1)
def test_round1_published_repo_loads_by_name(fixture, tmp_path, hf_env):
    """A repo published in round 1 (its own code, AutoModel → the whole network) still loads by name."""
    from zoo.hub import publish_to_cache

    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "round1" / fixture, repo, ignore=shutil.ignore_patterns("expected.safetensors"))
    publish_to_cache(repo, f"zooscope/round1-{fixture}")
    expected = load_file(str(FIXTURES / "round1" / fixture / "expected.safetensors"))
    repo_id = f"zooscope/round1-{fixture}"
    # transformers directly: whether zoo trusts a repo whose code is not today's is zoo.hub's call
    config = AutoConfig.from_pretrained(repo_id, trust_remote_code=True)
    model = auto_class_for(config).from_pretrained(repo_id, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**{model.main_input_name: expected["inputs"]}).logits
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=0)


def test_seeded_init_is_round1s():
    """The backbone/head split draws the same initial weights from a seed as round 1's classes
    (the fixtures were made with torch.manual_seed(1) by the round-1 code)."""
    for fixture in ROUND1:
        source = FIXTURES / "round1" / fixture
        config = json.loads((source / "config.json").read_text())
        fields = {k: config[k] for k in zoo.get_architecture(config["model_type"]).config_keys
                  if k in config and k not in ("id2label", "label2id", "architectures", "auto_map", "transformers_version",
                                              "model_type", "dtype", "torch_dtype")}
        fields["num_labels"] = len(config["id2label"])
        torch.manual_seed(1)
        model = zoo.create_model(config["model_type"], **fields)
        saved = load_file(str(source / "model.safetensors"))
        for key, value in model.state_dict().items():
            if "running_" in key or "num_batches_tracked" in key:
                continue  # the fixture's BatchNorm statistics were updated by one forward pass
            assert torch.equal(value, saved[key]), (fixture, key)


# ------------------------------------------------------------------------------------------
# configs: validation, unknown keys, labels
# ------------------------------------------------------------------------------------------


def test_unknown_name_lists_close_matches():
    with pytest.raises(zoo.UserError, match="did you mean.*two_layer_mlp"):
        zoo.create_model("two_layer_mpl")


@pytest.mark.parametrize("name, key, close", [
    ("mlp", "hiden_sizes", "hidden_sizes"),
    ("convnet", "chanels", "channels"),
    ("two_layer_mlp", "hidden_size", "hidden_dim"),
])
def test_unknown_config_key_names_the_close_match(name, key, close):
    with pytest.raises(zoo.UserError, match=rf"unknown config key '{key}' for architecture {name}; did you mean {close}"):
        zoo.create_model(name, **{key: [64] if "sizes" in key else 64})
    with pytest.raises(zoo.UserError, match=close):
        check_config_keys(name, ["num_labels", key])
    check_config_keys(name, ["num_labels", "id2label", "problem_type", close])  # known keys pass


def test_unknown_key_without_close_match_lists_the_fields():
    with pytest.raises(zoo.UserError, match="mlp takes: .*hidden_sizes"):
        zoo.create_model("mlp", zzz=1)


def test_recipe_with_unknown_config_key_is_refused(tmp_path):
    from zoo.recipes import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(json.dumps({"id": "r", "architecture": "mlp", "config": {"hidden_size": [64]},
                                "data": {"name": "digits"}}))
    with pytest.raises(zoo.UserError, match="did you mean hidden_sizes"):
        load_recipe(path)


@pytest.mark.parametrize("name, field, value", [
    ("mlp", "dropout", 1.5),
    ("mlp", "hidden_sizes", [0]),
    ("convnet", "image_size", 30),
    ("convnet", "kernel_size", 4),
    ("two_layer_mlp", "activation", "softplusish"),
    ("two_layer_mlp", "initializer_range", 0),
    ("mlp", "problem_type", "ranking"),
])
def test_invalid_config_value_names_the_field(name, field, value):
    with pytest.raises(zoo.UserError, match=field):
        zoo.create_model(name, **{field: value})
    with pytest.raises(ValueError, match=field):  # the config class itself (remote code has no UserError)
        zoo.get_architecture(name).config_class(**{field: value})


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_num_labels_1_is_not_a_silent_regressor(name):
    """transformers infers problem_type="regression" from num_labels == 1; a zoo classifier refuses it."""
    tiny = {k: v for k, v in zoo.get_architecture(name).tiny_config.items() if k != "num_labels"}
    with pytest.raises(zoo.UserError, match="num_labels must be at least 2 for a classifier"):
        zoo.create_model(name, **tiny, num_labels=1)
    # a regressor says so, and gets the mean squared error on float targets
    torch.manual_seed(0)
    model = zoo.create_model(name, **tiny, num_labels=1, problem_type="regression")
    x = main_input(model)
    y = torch.randn(x.shape[0])
    out = model(**{model.main_input_name: x}, labels=y)
    torch.testing.assert_close(out.loss, ((out.logits[:, 0] - y) ** 2).mean())


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_integer_labels_get_cross_entropy_whatever_problem_type(name):
    model = tiny_model(name)
    model.config.problem_type = "regression"  # e.g. a config edited by hand
    x = main_input(model)
    labels = torch.arange(x.shape[0]) % model.config.num_labels
    out = model(**{model.main_input_name: x}, labels=labels)
    log_probs = out.logits.log_softmax(-1)
    torch.testing.assert_close(out.loss, -log_probs[torch.arange(len(labels)), labels].mean())
    with pytest.raises(ValueError, match="floating-point labels"):
        model.config.problem_type = "single_label_classification"
        model(**{model.main_input_name: x}, labels=labels.float())


@pytest.mark.parametrize("name", FIELD_ARCHITECTURES)
def test_field_operator_takes_float_fields_at_any_grid(name):
    """A field architecture: integer labels or a wrong-shaped field are errors (no silent class
    loss), num_labels is not a second output size, and the same weights run on a finer grid."""
    model = tiny_model(name)
    x = main_input(model)
    labels = example_labels(model, x)
    with pytest.raises(ValueError, match="floating-point"):
        model(**{model.main_input_name: x}, labels=labels.long())
    with pytest.raises(ValueError, match="shape"):
        model(**{model.main_input_name: x}, labels=labels[:, :, :-1])
    assert 0 < model(**{model.main_input_name: x}, labels=labels).loss.item() < float("inf")
    fine = torch.nn.functional.interpolate(x, scale_factor=2)
    assert model(**{model.main_input_name: fine}).logits.shape == output_shape(model, fine)
    assert model.config.problem_type == "regression"
    with pytest.raises(zoo.UserError, match="num_labels"):
        zoo.create_model(name, **zoo.get_architecture(name).tiny_config, num_labels=model.config.out_channels + 1)


# ------------------------------------------------------------------------------------------
# the folders: self-contained, shared files identical, citations
# ------------------------------------------------------------------------------------------

ALLOWED_IMPORTS = {"torch", "transformers", "numpy", "PIL"}  # numpy + PIL: the image processor only


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_code_files_are_self_contained(name):
    """The Hub runs a repo's files alone: only torch/transformers/numpy/PIL, the standard
    library, and same-folder modules that are themselves among the exported code files."""
    arch = zoo.get_architecture(name)
    files = {p.name: p for p in arch.code_files}
    for path in files.values():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and f"{node.module}.py" in files, f"{path.name}: from .{node.module}"
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                roots = [a.name.split(".")[0] for a in node.names] if isinstance(node, ast.Import) else [node.module.split(".")[0]]
                for root in roots:
                    assert root in ALLOWED_IMPORTS or root in sys.stdlib_module_names, f"{path.name} imports {root}"


def test_shared_files_are_identical_copies():
    from zoo.models import _shared

    pairs = _shared.copies()
    assert {copy.parent.name for _, copy in pairs} >= {"mlp", "convnet", "two_layer_mlp"}
    assert _shared.stale_copies() == [], "run: python -m zoo.models._shared"
    for name in ARCHITECTURES:  # every folder whose code imports a shared module holds that module
        for path in zoo.get_architecture(name).code_files:
            if path.name in _shared.shared_files():
                assert path.read_bytes() == _shared.shared_files()[path.name].read_bytes()


def test_sync_rewrites_a_drifted_copy(tmp_path):
    from zoo.models import _shared

    folder = tmp_path / "arch"
    folder.mkdir()
    (folder / "zoo_common.py").write_text("# edited by hand\n")
    assert _shared.stale_copies([tmp_path]) == [folder / "zoo_common.py"]
    assert _shared.sync([tmp_path]) == [folder / "zoo_common.py"]
    assert (folder / "zoo_common.py").read_bytes() == (_shared.SHARED_DIR / "zoo_common.py").read_bytes()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_each_family_cites_its_paper_as_bibtex(name):
    paper = zoo.get_architecture(name).paper
    assert re.match(r"@\w+\{\w+,\n", paper), paper[:80]
    for field in ("title", "author", "year"):
        assert re.search(rf"^\s*{field}\s*=\s*\{{.+\}},?$", paper, re.MULTILINE), field
    assert paper.count("{") == paper.count("}") and "RESEARCH.md" not in paper and "../" not in paper


# ------------------------------------------------------------------------------------------
# a new architecture folder is picked up by every parametrised test
# ------------------------------------------------------------------------------------------


def _this_files_parametrised_tests(name: str) -> list[str]:
    """The tests above parametrised over an architecture list that `name` belongs to."""
    tree = ast.parse(Path(__file__).read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            if any("slow" in ast.unparse(d) for d in node.decorator_list):
                continue  # the subprocess below runs -m "not slow" (the venv test has its own run)
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize"
                        and isinstance(deco.args[1], ast.Name)):
                    archs = {"ARCHITECTURES": ARCHITECTURES + [name], "CLASSIFIERS": CLASSIFIERS + [name],
                             "PIPELINE_ARCHITECTURES": PIPELINE_ARCHITECTURES + [name]}.get(deco.args[1].id)
                    if archs and name in archs:
                        found.append(node.name)
    return found


def test_a_new_architecture_folder_gets_every_parametrised_test(tmp_path):
    """Copy a toy architecture folder (and the shared files it imports) into a models path and
    run this file: every registry-parametrised test runs on it and passes, none edited."""
    from zoo.models import _shared

    models = tmp_path / "models"
    folder = shutil.copytree(Path(__file__).parent / "toy_architecture" / "toy_probe", models / "toy_probe")
    for name, source in _shared.shared_files().items():
        if name[:-3] in "".join(p.read_text() for p in folder.glob("*.py")):  # imported or named
            shutil.copyfile(source, folder / name)
    env = {**os.environ, "ZOO_MODELS_PATH": str(models), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", f"{Path(__file__)}",
                           "-k", "toy_probe", "-m", "not slow", "-rA"],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    ran = set(re.findall(r"^PASSED \S+::(\w+)\[toy_probe\]", proc.stdout, re.MULTILINE))
    expected = set(_this_files_parametrised_tests("toy_probe"))
    assert {"test_remote_code_loads_without_zoo", "test_pipeline_from_the_cache_without_zoo",
            "test_save_load_round_trip", "test_auto_classes_dispatch", "test_backward_reaches_every_parameter",
            "test_forward_shapes_and_hidden_states"} <= expected
    assert ran == expected, (sorted(expected - ran), proc.stdout[-2000:])


def test_add_models_path_registers_in_process(tmp_path):
    from zoo.models import _shared
    from zoo.registry import add_models_path

    folder = shutil.copytree(Path(__file__).parent / "toy_architecture" / "toy_probe", tmp_path / "toy_probe")
    for name, source in _shared.shared_files().items():
        shutil.copyfile(source, folder / name)
    # a separate interpreter: registering pollutes the Auto classes for the rest of this session
    code = f"""
import zoo, transformers
from zoo.registry import add_models_path
assert add_models_path(r"{tmp_path}") == ["toy_probe"]
m = zoo.create_model("toy_probe", image_size=4, num_labels=3)
assert type(transformers.AutoModel.from_config(m.config)).__name__ == "ToyProbeModel"
print("ok", type(m).__name__)
"""
    proc = run_python(code, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0 and "ok ToyProbeForImageClassification" in proc.stdout, proc.stderr[-3000:]


# ------------------------------------------------------------------------------------------
# the architectures' own numbers
# ------------------------------------------------------------------------------------------


def test_fixed_second_layer_is_a_saved_buffer(tmp_path):
    model = zoo.create_model("two_layer_mlp", input_dim=5, hidden_dim=16, num_labels=2, fixed_second_layer=True)
    names = {n for n, _ in model.named_parameters()}
    assert names == {"hidden.weight"}  # the second layer is not trained
    weight = model.output_weight
    assert torch.allclose(weight.abs(), torch.full_like(weight, 16**-0.5))
    x = torch.randn(3, 5)
    manual = torch.relu(x @ model.hidden.weight.t()) @ weight.t()
    torch.testing.assert_close(model(input_features=x).logits, manual)
    model.save_pretrained(tmp_path)
    loaded = auto_class_for(model.config).from_pretrained(tmp_path)
    assert torch.equal(loaded.output_weight, weight)


@pytest.mark.parametrize("activation, fn", [("quadratic", lambda z: z * z), ("tanh", torch.tanh), ("relu", torch.relu)])
def test_two_layer_mlp_matches_manual_forward(activation, fn):
    model = zoo.create_model("two_layer_mlp", input_dim=4, hidden_dim=7, num_labels=3, activation=activation,
                             first_layer_bias=True, second_layer_bias=True)
    x = torch.randn(5, 4)
    manual = fn(x @ model.hidden.weight.t() + model.hidden.bias) @ model.output.weight.t() + model.output.bias
    torch.testing.assert_close(model(input_features=x).logits, manual)


def test_mlp_matches_manual_forward():
    model = zoo.create_model("mlp", image_size=4, hidden_sizes=[6, 5], num_labels=3).eval()
    x = torch.rand(2, 1, 4, 4)
    h = x.flatten(1)
    for layer in model.layers:
        h = torch.relu(h @ layer.linear.weight.t() + layer.linear.bias)
    manual = h @ model.classifier.weight.t() + model.classifier.bias
    torch.testing.assert_close(model(pixel_values=x).logits, manual)
    assert len(model.layers) == 2 and model.layers[-1] is model.get_submodule("layers.1")


def test_convnet_matches_manual_forward():
    model = zoo.create_model("convnet", image_size=8, channels=[2, 3], hidden_size=4, num_labels=3).eval()
    x = torch.rand(2, 1, 8, 8)
    h = x
    for block in model.blocks:
        h = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(h, block.conv.weight, block.conv.bias, padding=1)), 2)
    h = torch.relu(h.flatten(1) @ model.fc.weight.t() + model.fc.bias)
    manual = h @ model.classifier.weight.t() + model.classifier.bias
    torch.testing.assert_close(model(pixel_values=x).logits, manual)


# ------------------------------------------------------------------------------------------
# the oldest supported transformers (slow: builds a venv from PyPI once per session)
# ------------------------------------------------------------------------------------------

OLDEST_TRANSFORMERS = "4.40.*"


@pytest.fixture(scope="session")
def old_transformers_venv(tmp_path_factory):
    """A plain venv (no system site-packages: it must not see the new transformers) with torch
    from the local wheel cache and the oldest supported transformers from PyPI."""
    if os.environ.get("ZOO_OLD_TRANSFORMERS_PYTHON"):  # a venv built so before (CI caches it)
        return Path(os.environ["ZOO_OLD_TRANSFORMERS_PYTHON"])
    venv = tmp_path_factory.mktemp("venv-transformers-old")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    for spec in (["torch==2.13.0"], [f"transformers=={OLDEST_TRANSFORMERS}", "safetensors", "numpy", "pillow"]):
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *spec], capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return python


OLD_LOAD_CODE = """
import json, sys, traceback, torch, transformers
results = {"version": transformers.__version__}
for name, job in json.loads(open(sys.argv[-1]).read()).items():
    try:
        base = transformers.AutoModel.from_pretrained(job["repo"], trust_remote_code=True).eval()
        head = getattr(transformers, job["task_auto_class"]).from_pretrained(job["repo"], trust_remote_code=True).eval()
        x = torch.load(job["x"], weights_only=True)["x"]
        out = {"base": type(base).__name__, "logits": head(**{head.main_input_name: x}).logits.tolist()}
        if job["image"]:
            from transformers import pipeline
            # transformers 4.x loads an image processor only for its own model types: name it
            out["pipeline"] = pipeline(job["task"], model=job["repo"], image_processor=job["repo"],
                                       trust_remote_code=True)(job["image"])
        results[name] = out
    except BaseException:
        results[name] = {"error": traceback.format_exc()[-3000:]}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def old_transformers_loads(tmp_path_factory, old_transformers_venv):
    """What the oldest supported transformers loads from each architecture's exported repo (one
    interpreter for all), with the tiny models and repos."""
    from PIL import Image

    root = tmp_path_factory.mktemp("old-loads")
    Image.new("RGB", (20, 30), (200, 10, 90)).save(root / "p.png")
    exported, jobs = {}, {}
    for name in ARCHITECTURES:
        arch = zoo.get_architecture(name)
        model, repo, _ = export_tiny(name, root / name)
        x = main_input(model)
        torch.save({"x": x}, root / f"{name}-x.pt")
        exported[name] = (model, repo, x)
        jobs[name] = {"repo": str(repo), "x": str(root / f"{name}-x.pt"), "task_auto_class": arch.task_auto_class,
                      "task": arch.task, "image": str(root / "p.png") if arch.image_processor_class else None}
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(root / "modules")}
    proc = subprocess.run([str(old_transformers_venv), "-c", OLD_LOAD_CODE, str(root / "jobs.json")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), exported


@pytest.mark.slow
@pytest.mark.xdist_group("old-transformers")  # one worker builds the venv, once
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_published_repo_loads_on_the_oldest_transformers(name, old_transformers_loads):
    loads, exported = old_transformers_loads
    arch = zoo.get_architecture(name)
    model, repo, x = exported[name]
    min_version = json.loads((repo / "config.json").read_text())["min_transformers_version"]
    assert loads["version"].startswith(OLDEST_TRANSFORMERS.rstrip("*"))
    assert tuple(map(int, loads["version"].split(".")[:2])) >= tuple(map(int, min_version.split(".")[:2]))
    got = loads[name]
    assert "error" not in got, got.get("error")
    assert got["base"] == arch.base_model_class.__name__
    torch.testing.assert_close(torch.tensor(got["logits"]), model(**{model.main_input_name: x}).logits, rtol=1e-5, atol=1e-6)
    if arch.image_processor_class:
        assert {p["label"] for p in got["pipeline"]} <= set(model.config.id2label.values())
