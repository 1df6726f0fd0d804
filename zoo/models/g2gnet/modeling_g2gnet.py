"""G2GNet (ensemble-to-ensemble sparse connectivity): a backbone `G2GNetModel` (AutoModel) and
`G2GNetForImageClassification`.

A sparse layer `G2GLinear` holds only the weights of its connected ensemble pairs, as one
tensor of blocks (out_ensembles, k, in_block, out_block), and a saved buffer ``connections``
(out_ensembles, k): the input ensembles each output ensemble reads. Its forward gathers the
connected input blocks and runs one batched matmul, so the work (and the parameter count) is
the dense layer's times k / in_ensembles; `dense_weight()` and `mask()` give the equivalent
masked (out, in) matrix. Module paths follow the MLP's (``layers.0.linear``, ``layers.0.act``,
``classifier``) so the analysis tools see the same units.
"""
import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutputWithNoAttention

from .configuration_g2gnet import G2GNetConfig, connections_per_ensemble
from .zoo_common import classification_loss, copy_, init, return_tuple


def initial_connections(layout: str, in_ensembles: int, out_ensembles: int, k: int, seed: int) -> torch.Tensor:
    """(out_ensembles, k) input-ensemble indices of each output ensemble.

    "modular": the k input ensembles centred on output ensemble j's relative position, in
    window order (wrapping around), which `BandMatmul` computes without gathering; "random":
    k distinct ones drawn with `seed`, sorted.
    """
    if layout == "random":
        generator = torch.Generator().manual_seed(seed)
        rows = [torch.randperm(in_ensembles, generator=generator)[:k] for _ in range(out_ensembles)]
        return torch.stack(rows).sort(dim=1).values
    centre = torch.arange(out_ensembles) * in_ensembles // out_ensembles
    offsets = torch.arange(k) - (k - 1) // 2
    return (centre[:, None] + offsets[None, :]) % in_ensembles


def band_layout(connections: torch.Tensor, in_ensembles: int) -> int | None:
    """The window step when `connections` is the modular band in window order (every output
    ensemble reads k consecutive input ensembles, wrapping, starting step·j − (k−1)//2), else None."""
    out_e, k = connections.shape
    if in_ensembles % out_e or k == in_ensembles:
        return None
    step = in_ensembles // out_e
    expected = initial_connections("modular", in_ensembles, out_e, k, 0).to(connections.device)
    return step if torch.equal(connections, expected) else None


class BandMatmul(torch.autograd.Function):
    """The block-sparse product for the modular band layout, with no gather at all.

    Output ensemble j reads the k consecutive input ensembles starting at step·j − left
    (wrapping): the input is padded once with its own wrapped ends, and the windows are one
    overlapping strided view of it, (E_out, N, k · in_block), multiplied by one batched matmul.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, step):
        n, width = x.shape
        out_e, k, in_block, out_block = weight.shape
        in_e = width // in_block
        left = (k - 1) // 2
        right = k - 1 - left
        padded = torch.cat([x[:, (in_e - left) * in_block:], x, x[:, :right * in_block]], dim=1)
        windows = padded.as_strided((out_e, n, k * in_block), (step * in_block, padded.shape[1], 1))
        y = torch.baddbmm(bias.view(out_e, 1, out_block), windows, weight.view(out_e, k * in_block, out_block))
        ctx.save_for_backward(padded, weight)
        ctx.step, ctx.in_e = step, in_e
        return y.transpose(0, 1).reshape(n, out_e * out_block)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        padded, weight = ctx.saved_tensors
        step, in_e = ctx.step, ctx.in_e
        out_e, k, in_block, out_block = weight.shape
        n, padded_width = padded.shape
        left = (k - 1) // 2
        # contiguous: the strided views below assume it (a gradient may arrive expanded, e.g. from .sum())
        grad_y = grad_y.reshape(n, out_e * out_block).contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            if step == 1:
                grad_x = BandMatmul.transposed_band(grad_y, weight)
            else:
                grad_x = BandMatmul.scattered_windows(grad_y, weight, step, in_e, padded_width)
        if ctx.needs_input_grad[1]:
            windows = padded.as_strided((out_e, n, k * in_block), (step * in_block, padded_width, 1))
            # grad_y's ensembles as a strided view (no transposed copy): bmm reads it with row stride out
            per_ensemble = grad_y.as_strided((out_e, n, out_block), (out_block, out_e * out_block, 1))
            grad_w = torch.bmm(windows.transpose(1, 2), per_ensemble).view_as(weight)
        if ctx.needs_input_grad[2]:
            grad_b = grad_y.sum(0)
        return grad_x, grad_w, grad_b, None

    @staticmethod
    def transposed_band(grad_y, weight):
        """The input gradient when in_ensembles == out_ensembles: input ensemble i is read by the k
        consecutive output ensembles i − right … i + left, so grad_x is itself a band product —
        windows of the padded grad_y times the transposed blocks, one batched matmul."""
        out_e, k, in_block, out_block = weight.shape
        n = grad_y.shape[0]
        left = (k - 1) // 2
        right = k - 1 - left
        padded = torch.cat([grad_y[:, (out_e - right) * out_block:], grad_y, grad_y[:, :left * out_block]], dim=1)
        windows = padded.as_strided((out_e, n, k * out_block), (out_block, padded.shape[1], 1))
        s = torch.arange(k, device=weight.device)
        readers = (torch.arange(out_e, device=weight.device)[:, None] - right + s[None, :]) % out_e
        # block (i, s) = W[reader s of i, slot k − 1 − s]ᵀ: one row gather of the transposed blocks
        flat = weight.transpose(2, 3).reshape(out_e * k, out_block * in_block)
        blocks = flat.index_select(0, (readers * k + (k - 1 - s)[None, :]).reshape(-1)).view(out_e, k * out_block, in_block)
        return torch.bmm(windows, blocks).transpose(0, 1).reshape(n, out_e * in_block)

    @staticmethod
    def scattered_windows(grad_y, weight, step, in_e, padded_width):
        """The input gradient for any window step: per-window gradients added back slot by slot."""
        out_e, k, in_block, out_block = weight.shape
        n = grad_y.shape[0]
        left = (k - 1) // 2
        per_ensemble = grad_y.as_strided((out_e, n, out_block), (out_block, out_e * out_block, 1))
        grad_windows = torch.bmm(per_ensemble, weight.view(out_e, k * in_block, out_block).transpose(1, 2))
        grad_padded = grad_y.new_zeros(n, padded_width)
        for t in range(k):  # slot t of every window: distinct places, one strided add
            grad_padded.as_strided((out_e, n, in_block), (step * in_block, padded_width, 1), t * in_block).add_(
                grad_windows[:, :, t * in_block:(t + 1) * in_block])
        grad_x = grad_padded[:, left * in_block:(left + in_e) * in_block].clone()
        if left:
            grad_x[:, (in_e - left) * in_block:] += grad_padded[:, :left * in_block]
        if k - 1 - left:
            grad_x[:, :(k - 1 - left) * in_block] += grad_padded[:, (left + in_e) * in_block:]
        return grad_x


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

    @property
    def fan_in(self) -> int:
        return self.k * self.in_block

    def initial_connections(self) -> torch.Tensor:
        return initial_connections(self.layout, self.in_ensembles, self.out_ensembles, self.k, self.seed)

    def band_step(self) -> int | None:
        """The modular band's window step while the connections are that band (checked once per change)."""
        version = (self.connections._version, self.connections.data_ptr())
        if getattr(self, "_band_cache", (None,))[0] != version:
            self._band_cache = (version, band_layout(self.connections, self.in_ensembles))
        return self._band_cache[1]

    @property
    def density(self) -> float:
        return self.k / self.in_ensembles

    def forward(self, x):
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        step = self.band_step()
        if step is not None:
            y = BandMatmul.apply(x, self.weight, self.bias, step)
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
