"""Neural circuit diagrams drawn from the models themselves: `zoo diagram NAME`.

    from zoo.diagram import circuit_of, draw_diagram
    circuit = draw_diagram("one_layer_transformer", ["ncd.svg", "ncd.png"])

NAME is an architecture (drawn at its default configuration, or its tiny test one with
`tiny=True`), a recipe id or YAML file (its configuration), or a folder holding a saved model.
The diagram comes from one traced forward pass on the model's dummy inputs (zoo.diagram.trace),
so a new architecture is drawn the day it lands; zoo.diagram.render lays it out.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .render import draw, wire_label
from .trace import Circuit, Operation, Wire, trace

__all__ = ["Circuit", "Operation", "Wire", "circuit_of", "draw_diagram", "model_for_diagram", "trace", "wire_label"]


def model_for_diagram(name: str, tiny: bool = False):
    """The model NAME refers to, built (not trained: the diagram needs only shapes)."""
    import torch

    from .. import registry
    from ..recipes import list_recipes, load_recipe

    torch.manual_seed(0)
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"{name} is a folder without config.json: not a saved model")
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path)  # our own model types, registered by zoo.registry
        return registry.auto_class_for(config).from_config(config).eval(), config.model_type
    if name in registry.list_architectures():
        arch = registry.get_architecture(name)
        return registry.build_model(name, **(arch.tiny_config if tiny else {})).eval(), name
    if path.suffix in (".yaml", ".yml") or name in list_recipes():
        recipe = load_recipe(name)
        return registry.build_model(recipe.architecture, **recipe.config).eval(), recipe.id
    known = registry.list_architectures()
    raise registry.unknown_name_error("architecture, recipe or model folder", name, known + list_recipes())


def circuit_of(name_or_model, tiny: bool = False, inputs: dict | None = None) -> Circuit:
    """Trace NAME (or a model instance) on its dummy inputs."""
    if isinstance(name_or_model, str):
        model, label = model_for_diagram(name_or_model, tiny=tiny)
    else:
        model, label = name_or_model, type(name_or_model).__name__
    if inputs is None:
        try:
            inputs = dict(model.dummy_inputs)
        except Exception as error:
            raise UserError(f"cannot trace {label}: it gives no dummy inputs ({error})") from None
    return trace(model, inputs, name=label)


def draw_diagram(name_or_model, paths, tiny: bool = False, title: str | None = None) -> Circuit:
    """Trace and draw; each path's suffix (.svg / .png / .pdf) picks the format."""
    paths = [Path(p) for p in paths]
    bad = [p for p in paths if p.suffix not in (".svg", ".png", ".pdf")]
    if bad:
        raise UserError(f"cannot write {bad[0]}: a diagram is saved as .svg, .png or .pdf")
    circuit = circuit_of(name_or_model, tiny=tiny)
    draw(circuit, paths, title=title)
    return circuit
