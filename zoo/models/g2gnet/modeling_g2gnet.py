"""G2GNet (ensemble-to-ensemble sparse connectivity): a backbone `G2GNetModel` (AutoModel) and
`G2GNetForImageClassification`.

A sparse layer `G2GLinear` holds only the weights of its connected ensemble pairs, as one
tensor of blocks (out_ensembles, k, in_block, out_block), and a saved buffer ``connections``
(out_ensembles, k): the input ensembles each output ensemble reads. Its forward runs one matmul
per run of consecutive connections (`RunMatmul`, no copies; the modular band is one or two runs
per output ensemble), or gathers the connected blocks for batched matmuls where the runs are too
small (`BlockSparseMatmul`), so the work (and the parameter count) is the dense layer's times
k / in_ensembles; `dense_weight()` and `mask()` give the equivalent
masked (out, in) matrix. Module paths follow the MLP's (``layers.0.linear``, ``layers.0.act``,
``classifier``) so the analysis tools see the same units.
"""
from typing import NamedTuple

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutputWithNoAttention

from .configuration_g2gnet import G2GNetConfig, connections_per_ensemble
from .zoo_common import classification_loss, copy_, init, return_tuple


def initial_connections(layout: str, in_ensembles: int, out_ensembles: int, k: int, seed: int) -> torch.Tensor:
    """(out_ensembles, k) input-ensemble indices of each output ensemble.

    "modular": the k input ensembles centred on output ensemble j's relative position, in
    window order (wrapping around), so one or two runs of consecutive ensembles; "random":
    k distinct ones drawn with `seed`, sorted.
    """
    if layout == "random":
        generator = torch.Generator().manual_seed(seed)
        rows = [torch.randperm(in_ensembles, generator=generator)[:k] for _ in range(out_ensembles)]
        return torch.stack(rows).sort(dim=1).values
    centre = torch.arange(out_ensembles) * in_ensembles // out_ensembles
    offsets = torch.arange(k) - (k - 1) // 2
    return (centre[:, None] + offsets[None, :]) % in_ensembles


class RunPlan(NamedTuple):
    """How `RunMatmul` walks a layer's connections (built once per change of the connections).

    runs: each output ensemble's connections cut into runs of consecutive input ensembles in slot
    order, (output ensemble j, first slot t, slots in the run, first input ensemble e). A run is
    one plain matmul: its inputs are adjacent columns of x and its blocks adjacent rows of W[j].
    input_grad_runs: the runs again as (run, writes), in the order the input gradient takes them:
    first a set of runs whose input spans do not overlap (chosen greedily), which write their
    columns, so the gradient needs no zero fill; then the rest, which add. unwritten: (first
    input ensemble, count) spans that no writer covers, zeroed instead.
    """
    runs: tuple[tuple[int, int, int, int], ...]
    input_grad_runs: tuple[tuple[tuple[int, int, int, int], bool], ...]
    unwritten: tuple[tuple[int, int], ...]


def run_plan(connections: torch.Tensor, in_ensembles: int) -> RunPlan:
    """The modular band is at most two runs per output ensemble (its window, cut where it wraps); a
    DST rewiring cuts a run wherever it replaced a slot."""
    runs = []
    for j, row in enumerate(connections.tolist()):
        t = 0
        while t < len(row):
            u = t + 1
            while u < len(row) and row[u] == row[u - 1] + 1:
                u += 1
            runs.append((j, t, u - t, row[t]))
            t = u
    covered = [False] * in_ensembles
    writes = []
    for _, _, length, e in runs:
        free = not any(covered[e:e + length])
        if free:
            covered[e:e + length] = [True] * length
        writes.append(free)
    unwritten = []  # maximal spans of the input ensembles no writer covers
    for e in range(in_ensembles):
        if not covered[e]:
            if unwritten and sum(unwritten[-1]) == e:
                unwritten[-1] = (unwritten[-1][0], unwritten[-1][1] + 1)
            else:
                unwritten.append((e, 1))
    ordered = [(run, True) for run, w in zip(runs, writes) if w] + [(run, False) for run, w in zip(runs, writes) if not w]
    return RunPlan(tuple(runs), tuple(ordered), tuple(unwritten))


# Below this many multiply-adds per row of x in the average run (slots · in_block · out_block), the
# per-call cost of one matmul per run outweighs the gather kernel's copies. Measured on a 1280-wide
# layer at 75 % sparsity, random layout, batch 256: blocks of 32 (about 1 300) favour the runs, blocks
# of 16 (about 280) the gather.
RUN_KERNEL_MIN_WORK = 512


def column_windows(matrix: torch.Tensor, blocks: int, block: int) -> tuple[torch.Tensor, ...]:
    """windows[e] = matrix[:, e · block:(e + blocks) · block] for every e, made in two calls (a
    narrow per run costs more than these views together)."""
    return matrix.unfold(1, blocks * block, block).unbind(1)


class RunMatmul(torch.autograd.Function):
    """y = x W^T + b as one matmul per run of consecutive connections, read and written in place.

    No copies: each run's input is a column slice of x, its blocks a row slice of W[j] (the
    (k · in_block, out_block) matrix of output ensemble j), and its product lands in output
    ensemble j's column slice of y, which the BLAS addresses through its leading dimension. The
    backward is the same walk: the weight gradient of a run is x_runᵀ grad_y_j written straight
    into its rows, and each run's grad_y_j W_runᵀ is written (`RunPlan.input_grad_runs`) or added
    into its columns of the input gradient.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, plan):
        n = x.shape[0]
        out_e, k, in_block, out_block = weight.shape
        blocks = weight.view(out_e, k * in_block, out_block).unbind(0)
        y = x.new_empty(n, out_e, out_block)
        outputs = y.unbind(1)  # (n, out_block) column slices of y
        windows = column_windows(x, k, in_block)  # the inputs of the runs that are whole windows
        for j, t, length, e in plan.runs:
            x_run = windows[e] if length == k else x.narrow(1, e * in_block, length * in_block)
            w_run = blocks[j] if length == k else blocks[j].narrow(0, t * in_block, length * in_block)
            if t == 0:  # an ensemble's first run writes, the rest add
                torch.mm(x_run, w_run, out=outputs[j])
            else:
                outputs[j].addmm_(x_run, w_run)
        y = y.view(n, out_e * out_block)
        y += bias
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        out_e, k, in_block, out_block = weight.shape
        n = x.shape[0]
        # contiguous: the column slices below assume it (a gradient may arrive expanded, e.g. from .sum())
        grad_y = grad_y.reshape(n, out_e * out_block).contiguous()
        per_ensemble = grad_y.view(n, out_e, out_block).unbind(1)
        grad_x = grad_w = grad_b = None
        # bias, weight, then input gradient: the first two read grad_y while the layer above has just
        # written it, and this order measured 2-6 % faster than the reverse (paired, benchmarks/bench_g2gnet.py shapes)
        if ctx.needs_input_grad[2]:
            grad_b = grad_y.sum(0)
        if ctx.needs_input_grad[1]:
            grad_w = weight.new_empty(weight.shape)
            grad_blocks = grad_w.view(out_e, k * in_block, out_block).unbind(0)
            x_t = x.T
            windows_t = x.unfold(1, k * in_block, in_block).permute(1, 2, 0).unbind(0)  # x_runᵀ of whole windows
            for j, t, length, e in ctx.plan.runs:
                if length == k:
                    torch.mm(windows_t[e], per_ensemble[j], out=grad_blocks[j])
                else:
                    rows = grad_blocks[j].narrow(0, t * in_block, length * in_block)
                    torch.mm(x_t.narrow(0, e * in_block, length * in_block), per_ensemble[j], out=rows)
        if ctx.needs_input_grad[0]:
            transposed = weight.view(out_e, k * in_block, out_block).transpose(1, 2).unbind(0)  # W_jᵀ
            grad_x = x.new_empty(x.shape)
            for e, count in ctx.plan.unwritten:
                grad_x.narrow(1, e * in_block, count * in_block).zero_()
            grad_windows = column_windows(grad_x, k, in_block)
            for (j, t, length, e), writes in ctx.plan.input_grad_runs:
                if length == k:
                    w_t, columns = transposed[j], grad_windows[e]
                else:
                    w_t = transposed[j].narrow(1, t * in_block, length * in_block)
                    columns = grad_x.narrow(1, e * in_block, length * in_block)
                if writes:
                    torch.mm(per_ensemble[j], w_t, out=columns)
                else:
                    columns.addmm_(per_ensemble[j], w_t)
        return grad_x, grad_w, grad_b, None


class BlockSparseMatmul(torch.autograd.Function):
    """y = x W^T + b over the connected blocks only; hand-written backward (no gather/scatter autograd).

    x (N, E_in · in_block); weight (E_out, k, in_block, out_block); bias (E_out · out_block);
    connections (E_out, k). The input goes ensemble-major once, (E_in, N, in_block), so the
    connected blocks are gathered with one contiguous index_select and multiplied with batched
    matmuls whose every operand is contiguous; the input gradient is one index_add_.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, connections):
        n = x.shape[0]
        out_e, k, in_block, out_block = weight.shape
        in_e = x.shape[1] // in_block
        ensemble_major = x.reshape(n, in_e, in_block).transpose(0, 1).contiguous()
        gathered = ensemble_major.index_select(0, connections.reshape(-1)).view(out_e, k, n, in_block)
        y = bias.view(out_e, 1, out_block).expand(out_e, n, out_block).contiguous()
        for t in range(k):
            y.baddbmm_(gathered[:, t], weight[:, t])
        ctx.save_for_backward(gathered, weight, connections)
        ctx.in_e = in_e
        return y.transpose(0, 1).reshape(n, out_e * out_block)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        gathered, weight, connections = ctx.saved_tensors
        out_e, k, in_block, out_block = weight.shape
        n = grad_y.shape[0]
        grad_y = grad_y.reshape(n, out_e, out_block).transpose(0, 1).contiguous()  # (E_out, N, out_block)
        per_pair = grad_y.unsqueeze(1).expand(out_e, k, n, out_block).reshape(out_e * k, n, out_block)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_blocks = torch.bmm(per_pair, weight.reshape(out_e * k, in_block, out_block).transpose(1, 2))
            grad_x = grad_y.new_zeros(ctx.in_e, n, in_block).index_add_(0, connections.reshape(-1), grad_blocks)
            grad_x = grad_x.transpose(0, 1).reshape(n, ctx.in_e * in_block)
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(gathered.reshape(out_e * k, n, in_block).transpose(1, 2), per_pair)
            grad_w = grad_w.view(out_e, k, in_block, out_block)
        if ctx.needs_input_grad[2]:
            grad_b = grad_y.sum(1).reshape(-1)
        return grad_x, grad_w, grad_b, None


class G2GLinear(nn.Module):
    """y = x W^T + b with W block-sparse over ensemble pairs, computed over the connected blocks only.

    weight: (out_ensembles, k, in_block, out_block); block (j, t) maps input ensemble
    ``connections[j, t]`` to output ensemble j. connections: persistent buffer (out_ensembles, k).
    """

    def __init__(self, in_features: int, out_features: int, in_ensembles: int, out_ensembles: int, k: int,
                 layout: str = "modular", seed: int = 0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.in_ensembles, self.out_ensembles, self.k = in_ensembles, out_ensembles, k
        self.in_block, self.out_block = in_features // in_ensembles, out_features // out_ensembles
        self.layout, self.seed = layout, seed
        self.weight = nn.Parameter(torch.empty(out_ensembles, k, self.in_block, self.out_block))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.register_buffer("connections", torch.zeros(out_ensembles, k, dtype=torch.long), persistent=True)
        self.kernel = "auto"  # or "runs" / "gather" to force one (tests, benchmarks); both compute the same

    @property
    def fan_in(self) -> int:
        return self.k * self.in_block

    def initial_connections(self) -> torch.Tensor:
        return initial_connections(self.layout, self.in_ensembles, self.out_ensembles, self.k, self.seed)

    def run_plan(self) -> RunPlan:
        """`run_plan` of the current connections (rebuilt only when they change)."""
        version = (self.connections._version, self.connections.data_ptr())
        if getattr(self, "_plan_cache", (None,))[0] != version:
            self._plan_cache = (version, run_plan(self.connections, self.in_ensembles))
        return self._plan_cache[1]

    def chosen_kernel(self) -> str:
        """"runs" (`RunMatmul`) or "gather" (`BlockSparseMatmul`): `kernel` unless it is "auto", which
        takes the runs while the average run is a big enough matmul (`RUN_KERNEL_MIN_WORK`)."""
        if self.kernel in ("runs", "gather"):
            return self.kernel
        if self.kernel != "auto":
            raise ValueError(f"G2GLinear.kernel must be 'auto', 'runs' or 'gather', not {self.kernel!r}")
        work = self.connections.numel() * self.in_block * self.out_block / len(self.run_plan().runs)
        return "runs" if work >= RUN_KERNEL_MIN_WORK else "gather"

    @property
    def density(self) -> float:
        return self.k / self.in_ensembles

    def forward(self, x):
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        if self.chosen_kernel() == "runs":
            y = RunMatmul.apply(x, self.weight, self.bias, self.run_plan())
        else:
            y = BlockSparseMatmul.apply(x, self.weight, self.bias, self.connections)
        return y.reshape(*lead, self.out_features)

    def mask(self) -> torch.Tensor:
        """(out_features, in_features) 0/1: which weights of the equivalent dense layer exist."""
        return self._scatter(torch.ones_like(self.weight, dtype=torch.bool))

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense (out_features, in_features) weight, zero outside the connected blocks."""
        return self._scatter(self.weight)

    def _scatter(self, blocks: torch.Tensor) -> torch.Tensor:
        dense = blocks.new_zeros(self.out_ensembles, self.out_block, self.in_ensembles, self.in_block)
        rows = torch.arange(self.out_ensembles, device=blocks.device)[:, None]
        dense[rows, :, self.connections] = blocks.transpose(2, 3)  # (E_out, k, out_block, in_block)
        return dense.reshape(self.out_features, self.in_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, ensembles={self.in_ensembles}"
                f"->{self.out_ensembles}, k={self.k}, density={self.density:.3f}")


class G2GBlock(nn.Module):
    """(G2GLinear or a dense Linear) → activation → dropout. The activation module's output is the layer's units."""

    def __init__(self, linear: nn.Module, activation: str, dropout: float):
        super().__init__()
        self.linear = linear
        self.act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid,
                    "leaky_relu": nn.LeakyReLU}[activation]()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.act(self.linear(x)))


class G2GNetPreTrainedModel(PreTrainedModel):
    config_class = G2GNetConfig
    base_model_prefix = "layers"
    main_input_name = "pixel_values"
    _no_split_modules = ["G2GBlock"]

    def _init_weights(self, module):
        # PyTorch's Linear default (Kaiming-uniform, a=√5) over each unit's actual fan-in.
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            bound = 1 / module.in_features**0.5
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, G2GLinear):
            bound = 1 / module.fan_in**0.5
            init.uniform_(module.weight, -bound, bound)
            init.uniform_(module.bias, -bound, bound)
            copy_(module.connections, module.initial_connections())

    def init_weights(self):
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}


class G2GNetModel(G2GNetPreTrainedModel):
    """The hidden layers: flattened pixels → the last hidden layer's units. ``model[i]`` is block i."""

    def __init__(self, config: G2GNetConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        for i, (n_in, n_out, e_in, e_out) in enumerate(config.layer_shapes()):
            if e_in is None:
                linear = nn.Linear(n_in, n_out)
            else:
                linear = G2GLinear(n_in, n_out, e_in, e_out, connections_per_ensemble(config.sparsity, e_in),
                                   config.layout, config.connectivity_seed + i)
            self.add_module(str(i), G2GBlock(linear, config.activation, config.dropout))
        self.post_init()

    def __len__(self):
        return len(self.config.hidden_sizes)

    def __getitem__(self, index):
        return self._modules[str(range(len(self))[index])]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        hidden = pixel_values.flatten(1)
        hidden_states = [hidden]
        for block in self:
            hidden = block(hidden)
            hidden_states.append(hidden)
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=tuple(hidden_states) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class G2GNetForImageClassification(G2GNetPreTrainedModel):
    """`G2GNetModel` + a dense linear classifier; hidden_states = (flattened input, each hidden layer)."""

    def __init__(self, config: G2GNetConfig):
        super().__init__(config)
        self.layers = G2GNetModel(config, init_by_head=True)
        self.classifier = nn.Linear(config.hidden_sizes[-1], config.num_labels)
        self.post_init()
        self.layers._init_by_head = False

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.layers(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(base.last_hidden_state)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
