"""Neural circuit diagrams (zoo.diagram): traced from every registered architecture, the wire
labels are the shapes an independent forward pass produces, the SVG parses and carries them,
the transformer and residual blocks have the paper's wires and operations, a recurrence is a
loop, and bad input is a message with no file left behind."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch

import zoo
from zoo.diagram import circuit_of, draw_diagram, trace, wire_label
from zoo.errors import UserError

ARCHITECTURES = zoo.list_models()


def tiny(name: str):
    torch.manual_seed(0)
    return zoo.create_model(name, **zoo.get_architecture(name).tiny_config).eval()


def leaf_shapes(model, inputs) -> dict[str, list[list[tuple]]]:
    """Independently of zoo.diagram: the input shapes of every call of every module without
    sub-modules, from plain forward hooks."""
    seen: dict[str, list[list[tuple]]] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(module, args, kwargs, output):
        tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
        seen.setdefault(names[module], []).append([tuple(t.shape) for t in tensors])

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in model.modules() if next(m.children(), None) is None]
    with torch.no_grad():
        output = model(**inputs)
    for handle in handles:
        handle.remove()
    return seen, output


def svg_texts(path) -> list[str]:
    root = ET.parse(path).getroot()  # parses: well-formed XML
    return ["".join(t.itertext()) for t in root.iter() if t.tag.endswith("text")]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_wire_labels_are_the_shapes_of_a_real_forward_pass(name, tmp_path):
    model = tiny(name)
    inputs = dict(model.dummy_inputs)
    circuit = draw_diagram(model, [tmp_path / "d.svg"])
    seen, output = leaf_shapes(tiny(name), inputs)
    ops = {op.index: op for op in circuit.operations}
    into_modules = [w for w in circuit.wires if ops[w.target].kind == "module"]
    assert into_modules, "every zoo architecture has at least one module"
    for wire in into_modules:
        target = ops[wire.target]
        shapes_seen = {s for call in seen[target.path] for s in call}
        assert wire.shape in shapes_seen, (target.path, wire.shape, shapes_seen)
    # every module that ran is in the circuit (unless nothing reached it from the inputs)
    drawn = {op.path for op in circuit.operations if op.kind == "module"}
    assert drawn <= set(seen)
    logits = output["logits"] if "logits" in output else next(iter(output.values()))
    final = [w for w in circuit.wires if ops[w.target].kind == "output" and ops[w.target].name == "logits"]
    if "logits" in output:
        assert [w.shape for w in final] == [tuple(logits.shape)]
    # the SVG parses and carries every wire's label and every box's name as text
    texts = svg_texts(tmp_path / "d.svg")
    joined = "\n".join(texts)
    for wire in circuit.wires:
        assert wire_label(wire.shape) in joined
    for op in circuit.operations:
        assert op.name in joined


def test_transformer_block_has_the_papers_wires_and_operations():
    """Abbott's figures of attention and the transformer block: query/key/value linear maps of
    the same input, the score matmul, softmax, the value matmul, the output map, and residual
    additions whose second input skips the block."""
    circuit = circuit_of("one_layer_transformer", tiny=True)
    ops = {op.index: op for op in circuit.operations}
    names = [op.name for op in circuit.operations]
    attention = names.index("softmax")
    assert names[attention - 3:attention + 3][1:] == ["matmul", "÷", "softmax", "matmul", "Linear"]
    assert "Linear" in names[attention - 3]  # the fused query/key/value map
    # the value matmul reads the attention weights AND the qkv map's output (a second wire from it)
    value_matmul = attention + 1
    sources = sorted(w.source for w in circuit.wires if w.target == value_matmul)
    assert sources == [attention - 3, attention]
    additions = [op.index for op in circuit.operations if op.name == "+" and op.path.startswith("transformer.blocks")]
    assert len(additions) == 2  # after attention and after the feed-forward layer
    for add in additions:
        inputs = [w.source for w in circuit.wires if w.target == add]
        assert len(inputs) == 2 and min(inputs) < add - 2  # one input is the residual path around the block
    ffn = [ops[i].path for i in range(additions[0], additions[1])]
    assert any(p.endswith("ffn.0") for p in ffn) and any(p.endswith("ffn.2") for p in ffn)
    assert "LayerNorm" in names


def test_residual_net_adds_each_branch_to_its_input():
    circuit = circuit_of("residual_cnn", tiny=True)
    additions = [op for op in circuit.operations if op.name == "+"]
    assert len(additions) == zoo.get_architecture("residual_cnn").tiny_config.get("depth", len(additions))
    for add in additions:
        sources = sorted(w.source for w in circuit.wires if w.target == add.index)
        assert len(sources) == 2 and sources[1] - sources[0] >= 2  # the branch, and the path around it


class Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = torch.nn.Linear(3, 3)
        self.head = torch.nn.Linear(3, 2)

    def forward(self, x):
        h = torch.zeros(x.shape[0], 3)
        for t in range(x.shape[1]):
            h = torch.tanh(self.cell(h) + x[:, t])
        return {"logits": self.head(h)}


def test_a_recurrence_is_one_box_with_a_loop_wire():
    circuit = trace(Recurrent(), {"x": torch.rand(2, 5, 3)})
    by_name = {op.path or op.name: op for op in circuit.operations if op.kind != "function"}
    by_name |= {op.name: op for op in circuit.operations if op.kind == "function"}
    assert by_name["cell"].calls == 5 and by_name["tanh"].calls == 5 and by_name["+"].calls == 5
    assert by_name["head"].calls == 1
    loops = [w for w in circuit.wires if w.loop]
    assert [(circuit.operations[w.source].name, circuit.operations[w.target].name) for w in loops] == [("tanh", "Linear")]
    assert loops[0].shape == (2, 3)


class Broken(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)

    def forward(self, x):
        raise RuntimeError("shape mismatch somewhere")

    @property
    def dummy_inputs(self):
        return {"x": torch.rand(1, 2)}


def test_bad_input_is_a_message_and_leaves_no_file(tmp_path, capsys):
    with pytest.raises(UserError, match="cannot trace Broken: its forward pass failed.*shape mismatch"):
        draw_diagram(Broken(), [tmp_path / "broken.svg"])
    assert list(tmp_path.iterdir()) == []
    from zoo.cli import main

    assert main(["diagram", "mlpp", "--out", str(tmp_path / "x.svg")]) == 2
    assert "unknown architecture, recipe or model folder 'mlpp'; did you mean mlp" in capsys.readouterr().err
    assert main(["diagram", "mlp", "--out", str(tmp_path / "x.txt")]) == 2
    assert "saved as .svg, .png or .pdf" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_svg_png_and_json(tmp_path, capsys):
    import json

    from zoo.cli import main

    assert main(["diagram", "mlp", "--tiny", "--out", str(tmp_path / "mlp.svg"), "--png", "--json"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.json", "mlp.png", "mlp.svg"]
    circuit = json.loads((tmp_path / "mlp.json").read_text())
    assert [op["kind"] for op in circuit["operations"]][0] == "input" and circuit["operations"][-1]["kind"] == "output"
    assert (tmp_path / "mlp.png").read_bytes()[:4] == b"\x89PNG"
    labels = svg_texts(tmp_path / "mlp.svg")
    assert any(wire_label(tuple(w["shape"])) == t for w in circuit["wires"] for t in labels)
    assert "operations" in capsys.readouterr().out
