"""Trace a forward pass into a circuit: the operations a model applies and the tensors (with
their shapes) that flow between them.

Two mechanisms together, because neither alone sees the whole computation:
- module hooks see every `nn.Module` call; a module without sub-modules (Linear, LayerNorm,
  a KAN layer, a recurrent cell) becomes one operation, whatever it does inside;
- a `TorchFunctionMode` sees the torch functions that run *outside* those modules, in the
  forward code of the containers: residual additions, attention's matmuls and softmax,
  concatenations, reshapes.
Each tensor remembers which operation produced it, so the wires are the real data flow. Views
and reshapes are not drawn as operations: they re-wire axes, which shows as the new shape on
the wire. Repeated calls from the same place (a recurrent cell applied at every step, a loop
over blocks sharing one module) merge into one operation with a call count; the data flow
between iterations becomes a loop wire.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode

from ..errors import UserError

# Functions that only re-arrange or re-type a tensor: drawn as re-wiring, not as operations.
_REWIRING = {
    "view", "reshape", "flatten", "unflatten", "transpose", "permute", "t", "contiguous", "squeeze",
    "unsqueeze", "expand", "expand_as", "to", "float", "double", "half", "bfloat16", "type", "type_as",
    "clone", "detach", "movedim", "swapaxes", "view_as", "reshape_as", "requires_grad_", "__getitem__",
    "chunk", "split", "unbind", "narrow", "select", "roll",
}
# Names drawn with a symbol, as in the paper's notation.
SYMBOLS = {"add": "+", "__add__": "+", "__radd__": "+", "add_": "+", "__iadd__": "+", "sub": "−", "__sub__": "−",
           "__rsub__": "−", "mul": "×", "__mul__": "×", "__rmul__": "×", "mul_": "×", "__imul__": "×",
           "div": "÷", "__truediv__": "÷", "__rtruediv__": "÷", "matmul": "matmul", "__matmul__": "matmul",
           "bmm": "matmul", "einsum": "einsum", "cat": "concat", "stack": "stack", "pow": "^", "__pow__": "^"}


@dataclass
class Operation:
    """One box of the diagram."""

    index: int
    name: str  # "Linear", "softmax", "+", ...
    kind: str  # "input" | "module" | "function" | "output"
    path: str  # the module it belongs to ("" for the model itself)
    calls: int = 1
    parameters: int = 0  # weights it owns (modules) or reads (functions)
    detail: str = ""  # e.g. "16 → 64" for a Linear
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)


@dataclass
class Wire:
    """A tensor flowing from one operation to another: one line per axis, labelled by its size."""

    source: int
    target: int
    shape: tuple[int, ...]
    loop: bool = False  # from a later call back to an earlier one (recurrence)


@dataclass
class Circuit:
    """The traced circuit of a model: operations in the order they first ran, and wires."""

    model: str
    operations: list[Operation]
    wires: list[Wire]

    def to_json(self) -> dict:
        return {"model": self.model,
                "operations": [vars(op) | {"output_shapes": [list(s) for s in op.output_shapes]} for op in self.operations],
                "wires": [vars(w) | {"shape": list(w.shape)} for w in self.wires]}


def _call_site() -> tuple[str, int]:
    """The first frame outside torch and this module: where the model's code made the call."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "/torch/" not in name and not name.endswith(("zoo/diagram/trace.py", "contextlib.py")):
            return name, frame.f_lineno
        frame = frame.f_back
    return "", 0


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):  # ModelOutput is one too
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _function_name(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    return name if name.startswith("__") else name.removeprefix("_")  # a private alias reads as its public name


class _Recorder(TorchFunctionMode):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.names = {module: name for name, module in model.named_modules()}
        self.parameter_owner = {id(p): name for name, p in model.named_parameters()}
        self.operations: list[Operation] = []
        self.keys: dict[tuple, int] = {}
        self.producer: dict[int, tuple[int, torch.Tensor]] = {}  # id(tensor) -> (operation, tensor kept alive)
        self.edges: dict[tuple[int, int], tuple[tuple[int, ...], bool]] = {}
        self.stack: list[torch.nn.Module] = []
        self.inside_leaf = 0

    # -- the graph
    def operation(self, key: tuple, **fields) -> Operation:
        if key in self.keys:
            op = self.operations[self.keys[key]]
            op.calls += 1
            return op
        op = Operation(index=len(self.operations), **fields)
        self.keys[key] = op.index
        self.operations.append(op)
        return op

    def connect(self, inputs: list[torch.Tensor], op: Operation) -> None:
        for tensor in inputs:
            source = self.producer.get(id(tensor))
            if source is None or source[1] is not tensor:
                continue  # a parameter, a constant made inside forward, or a tensor from outside
            key = (source[0], op.index)
            loop = source[0] >= op.index  # produced by a later (or the same) operation: recurrence
            self.edges.setdefault(key, (tuple(tensor.shape), loop))

    def produce(self, outputs: list[torch.Tensor], op: Operation) -> None:
        for tensor in outputs:
            self.producer[id(tensor)] = (op.index, tensor)
        if op.calls == 1:
            op.output_shapes = [tuple(t.shape) for t in outputs]

    def rewire(self, inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> None:
        """A view/reshape: its outputs come from whatever produced its (first) input."""
        source = next((self.producer[id(t)] for t in inputs if id(t) in self.producer
                       and self.producer[id(t)][1] is t), None)
        if source is not None:
            for tensor in outputs:
                self.producer[id(tensor)] = (source[0], tensor)

    # -- module hooks
    def before(self, module, args, kwargs):
        self.stack.append(module)
        if self.inside_leaf or next(module.children(), None) is None:
            self.inside_leaf += 1

    def after(self, module, args, kwargs, output):
        leaf = self.inside_leaf == 1
        if self.inside_leaf:
            self.inside_leaf -= 1
        self.stack.pop()
        if not leaf:
            return
        path = self.names.get(module, "")
        inputs = _tensors(args) + _tensors(kwargs)
        outputs = _tensors(output)
        op = self.operation(("module", path) + _call_site(), name=type(module).__name__, kind="module", path=path,
                            parameters=sum(p.numel() for p in module.parameters(recurse=True)),
                            detail=_module_detail(module))
        self.connect(inputs, op)
        self.produce(outputs, op)

    # -- functions outside leaf modules
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.inside_leaf or not self.stack:
            return result
        outputs = _tensors(result)
        if not outputs:
            return result  # size(), dim(), shape, item(): no data flows on
        inputs = _tensors(args) + _tensors(kwargs)
        name = _function_name(func)
        if name.endswith(".__get__") or name == "__get__":
            return result
        if name in _REWIRING:
            self.rewire(inputs, outputs)
            return result
        path = self.names.get(self.stack[-1], "")
        read = sum(t.numel() for t in inputs if id(t) in self.parameter_owner)
        # A call merges with an earlier one from the same place only when it reads from the same
        # operations (a step of a recurrence does; the same line run for the next layer does not).
        sources = tuple(sorted({self.producer[id(t)][0] for t in inputs
                                if id(t) in self.producer and self.producer[id(t)][1] is t}))
        op = self.operation(("function", path, name, sources) + _call_site(), name=SYMBOLS.get(name, name.strip("_")),
                            kind="function", path=path, parameters=read)
        self.connect(inputs, op)
        self.produce(outputs, op)
        return result


def _module_detail(module: torch.nn.Module) -> str:
    for a, b in (("in_features", "out_features"), ("in_channels", "out_channels"), ("input_size", "hidden_size"),
                 ("num_embeddings", "embedding_dim")):
        if hasattr(module, a) and hasattr(module, b):
            return f"{getattr(module, a)} → {getattr(module, b)}"
    if hasattr(module, "normalized_shape"):
        return "×".join(map(str, module.normalized_shape))
    return ""


def trace(model: torch.nn.Module, inputs: dict[str, torch.Tensor], name: str | None = None) -> Circuit:
    """Run `model(**inputs)` once and record its circuit."""
    recorder = _Recorder(model)
    handles = [m.register_forward_pre_hook(recorder.before, with_kwargs=True) for m in model.modules()]
    handles += [m.register_forward_hook(recorder.after, with_kwargs=True) for m in model.modules()]
    input_ops = []
    for key, tensor in inputs.items():
        op = recorder.operation(("input", key), name=key, kind="input", path="")
        recorder.produce([tensor], op)
        input_ops.append(op)
    model_name = name or type(model).__name__
    try:
        with torch.no_grad(), recorder:
            output = model(**inputs)
    except UserError:
        raise
    except Exception as error:  # the model's own forward failing on its dummy inputs
        raise UserError(f"cannot trace {model_name}: its forward pass failed on the dummy inputs "
                        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
    finally:
        for handle in handles:
            handle.remove()
    results = output if isinstance(output, dict) else {"output": output}
    for key, value in results.items():
        tensors = [t for t in _tensors(value) if id(t) in recorder.producer]
        if not tensors or key in ("loss",):
            continue
        op = recorder.operation(("output", key), name=key, kind="output", path="")
        recorder.connect(tensors[:1], op)
        op.output_shapes = [tuple(tensors[0].shape)]
    wires = [Wire(source=s, target=t, shape=shape, loop=loop) for (s, t), (shape, loop) in recorder.edges.items()]
    used = {w.source for w in wires} | {w.target for w in wires}
    operations = [op for op in recorder.operations if op.index in used]
    if not any(op.kind == "output" for op in operations):
        raise UserError(f"cannot trace {model_name}: no output of its forward pass depends on its inputs")
    return _renumber(Circuit(model=model_name, operations=operations, wires=wires))


def _renumber(circuit: Circuit) -> Circuit:
    new = {op.index: i for i, op in enumerate(circuit.operations)}
    for op in circuit.operations:
        op.index = new[op.index]
    for wire in circuit.wires:
        wire.source, wire.target = new[wire.source], new[wire.target]
    return circuit
