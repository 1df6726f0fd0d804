"""Recurrent layers written out step by step (tanh / ReLU Elman cells, GRU, LSTM), with masking of
padded steps, for the zoo's recurrent architectures (rnn_classifier, sparse_rnn).

Weights use torch.nn.RNN/GRU/LSTM's layout and gate order (LSTM: input, forget, cell, output;
GRU: reset, update, new), so a layer computes what the torch module with the same weights
computes; tests check that. Written out rather than calling torch.nn.LSTM so that a recurrent
weight can carry a mask (pruning, random-graph connectivity) and padded steps can be skipped.

Fast path: without a recurrent mask the layer calls torch's own fused kernel (torch.lstm, the
function torch.nn.LSTM calls) on the same parameters; a padding mask is handled by moving each
row's real steps to the front (in reverse order for the backward direction), running them through
the kernel and putting the outputs back where they came from, which is exactly what the
step-by-step loop computes (a padded step leaves the state unchanged). With a recurrent mask
(a random graph) the step-by-step loop runs. ``layer.fused = False`` forces the loop (tests).

Masking: at a padded step (attention_mask 0) the state is carried over unchanged and the output
is 0. Padding may sit anywhere; with padding at the end, the forward direction's final state is
its state after the last real step and the backward direction reads the real steps in reverse
order, starting from the zero state, exactly as it would on the unpadded sequence.

It imports only torch (the Hub runs it as remote code beside the modeling file).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

CELLS = ("tanh", "relu", "gru", "lstm")
GATES = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4}
# torch's own fused kernels (what torch.nn.RNN / GRU / LSTM call), one per cell
KERNELS = {"tanh": torch.rnn_tanh, "relu": torch.rnn_relu, "gru": torch.gru, "lstm": torch.lstm}


def real_step_order(mask, reverse: bool):
    """(batch, steps) indices that list each row's real steps first, in reading order (last to
    first when `reverse`), then its padded steps; and each row's count of real steps."""
    steps = mask.shape[1]
    t = torch.arange(steps, device=mask.device).expand_as(mask)
    real = mask.bool()
    key = torch.where(real, steps - 1 - t if reverse else t, steps + t)
    return torch.argsort(key, dim=1), real.sum(1)


class RecurrentLayer(nn.Module):
    """One direction of one layer: h_t = cell(x_t, h_{t-1}) over a (batch, steps, input) sequence.

    Parameters weight_ih (G·H, input), weight_hh (G·H, H), bias_ih, bias_hh (G·H), G the gates
    of the cell. `recurrent_mask` (H, H), given to forward, multiplies every gate's block of
    weight_hh: entry [i, j] = 0 cuts the connection from unit j to unit i.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        gates = GATES[cell] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(gates))
        self.bias_hh = nn.Parameter(torch.empty(gates))
        self.fused = True  # torch's kernel when no recurrent mask is given (not saved: a code path)
        self.reset_parameters()

    def reset_parameters(self, init=nn.init):
        """torch.nn.LSTM's default: every weight and bias uniform in ±1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            init.uniform_(param, -bound, bound)

    def recurrent_weight(self, recurrent_mask=None):
        if recurrent_mask is None:
            return self.weight_hh
        return self.weight_hh * recurrent_mask.to(self.weight_hh.dtype).repeat(GATES[self.cell], 1)

    def step(self, gi, h, c, w_hh):
        """One step from the input projection `gi` (batch, G·H) and the state; returns (h, c)."""
        gh = F.linear(h, w_hh, self.bias_hh)
        if self.cell == "tanh":
            return torch.tanh(gi + gh), c
        if self.cell == "relu":
            return torch.relu(gi + gh), c
        if self.cell == "gru":
            i_r, i_z, i_n = gi.chunk(3, 1)
            h_r, h_z, h_n = gh.chunk(3, 1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            return (1 - z) * n + z * h, c
        i, f, g, o = (gi + gh).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, x, mask=None, reverse: bool = False, recurrent_mask=None):
        """x (batch, steps, input), mask (batch, steps) of 0/1 or None → outputs (batch, steps, H)
        and the final state (batch, H)."""
        if recurrent_mask is None and self.fused and x.shape[1] > 0 and x.shape[0] > 0:
            return self.forward_fused(x, mask, reverse)
        return self.forward_steps(x, mask, reverse, recurrent_mask)

    def run_kernel(self, x, lengths=None):
        """torch's kernel from the zero state over x (batch, steps, input), all steps of every row
        or (`lengths` given) a packed sequence of each row's first `lengths` steps; → outputs
        (batch, steps, H) and each row's state after its last step read (batch, H)."""
        batch, steps, _ = x.shape
        zeros = x.new_zeros(1, batch, self.hidden_size)
        hx = [zeros, zeros] if self.cell == "lstm" else zeros
        weights = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        kernel = KERNELS[self.cell]
        if lengths is None:
            out, h_n = kernel(x, hx, weights, True, 1, 0.0, self.training, False, True)[:2]
            return out, h_n[0]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = kernel(packed.data, packed.batch_sizes, hx, weights, True, 1, 0.0, self.training, False)[:2]
        packed_out = nn.utils.rnn.PackedSequence(out, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        out = nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True, total_length=steps)[0]
        return out, h_n[0].index_select(0, packed.unsorted_indices)  # the kernel's states are in sorted order

    def forward_fused(self, x, mask, reverse):
        """torch's kernel; with padding, each row's real steps moved to the front (`real_step_order`)
        and cut to the longest row. tanh / GRU / LSTM then run unpacked (faster on CPU than a packed
        sequence): the steps past a row's length see padding but their states stay bounded, their
        outputs are dropped and get no gradient. The ReLU cell's state is unbounded (it could
        overflow there), so it runs packed."""
        batch, steps, features = x.shape
        full = mask is None
        if not full:
            order, lengths = real_step_order(mask, reverse)
            full = bool((lengths == steps).all())
        if full:  # no padding: the reading order is the identity (or its reverse)
            out, final = self.run_kernel(x.flip(1) if reverse else x)
            return (out.flip(1) if reverse else out), final
        width = int(lengths.max())
        if width == 0:  # no real step anywhere: the state stays zero
            return x.new_zeros(batch, steps, self.hidden_size), x.new_zeros(batch, self.hidden_size)
        compact = x.gather(1, order[:, :width, None].expand(-1, -1, features))
        valid = (torch.arange(width, device=x.device)[None] < lengths[:, None])[..., None]
        out, final = self.run_kernel(compact, lengths if self.cell == "relu" else None)
        out = torch.where(valid, out, torch.zeros_like(out))
        if self.cell != "relu":
            final = out[torch.arange(batch, device=x.device), (lengths - 1).clamp(min=0)]  # 0 for an empty row
        else:
            final = torch.where((lengths > 0)[:, None], final, torch.zeros_like(final))
        out = F.pad(out, (0, 0, 0, steps - width))
        back = torch.argsort(order, dim=1)  # the inverse permutation: step t's place in the compacted rows
        return out.gather(1, back[..., None].expand(-1, -1, self.hidden_size)), final

    def forward_steps(self, x, mask=None, reverse: bool = False, recurrent_mask=None):
        """The step-by-step loop (any recurrent mask); the same results as forward_fused."""
        batch, steps, _ = x.shape
        projected = F.linear(x, self.weight_ih, self.bias_ih)  # every step's input projection at once
        w_hh = self.recurrent_weight(recurrent_mask)
        h = x.new_zeros(batch, self.hidden_size)
        c = x.new_zeros(batch, self.hidden_size) if self.cell == "lstm" else None
        keep = None if mask is None else mask.bool()[..., None]
        outputs = [None] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            h_new, c_new = self.step(projected[:, t], h, c, w_hh)
            if keep is None:
                h, c, outputs[t] = h_new, c_new, h_new
            else:
                m = keep[:, t]
                h = torch.where(m, h_new, h)
                c = torch.where(m, c_new, c) if c is not None else None
                outputs[t] = torch.where(m, h_new, torch.zeros_like(h_new))
        if steps == 0:
            return x.new_zeros(batch, 0, self.hidden_size), h
        return torch.stack(outputs, 1), h


class StackedRNN(nn.Module):
    """`num_layers` layers of one or two directions; layer l + 1 reads layer l's outputs (both
    directions concatenated), with dropout between layers. ``layers[l][d]`` is layer l's
    direction d (0 forward, 1 backward)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0):
        super().__init__()
        self.directions = 2 if bidirectional else 1
        sizes = [input_size] + [hidden_size * self.directions] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.ModuleList(RecurrentLayer(cell, size, hidden_size) for _ in range(self.directions)) for size in sizes
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None, recurrent_mask=None):
        """→ (each layer's outputs (batch, steps, D·H), the last layer's final states (batch, D·H))."""
        outputs, finals = [], None
        for index, layer in enumerate(self.layers):
            if index and self.dropout.p > 0:
                x = self.dropout(x)
            results = [direction(x, mask, reverse=bool(d), recurrent_mask=recurrent_mask) for d, direction in enumerate(layer)]
            if len(results) == 1:  # one direction: no copy
                x, finals = results[0]
            else:
                x = torch.cat([out for out, _ in results], -1)
                finals = torch.cat([final for _, final in results], -1)
            outputs.append(x)
        return outputs, finals


def init_weights(module, init) -> bool:
    """PyTorch's defaults (recurrent layers as torch.nn.LSTM, linear layers as nn.Linear) with the
    init functions given (zoo_common.init); False when `module` is neither."""
    if isinstance(module, RecurrentLayer):
        module.reset_parameters(init)
    elif isinstance(module, nn.Linear):
        init.kaiming_uniform_(module.weight, a=5**0.5)
        fan_in = module.weight.shape[1]
        init.uniform_(module.bias, -(fan_in**-0.5), fan_in**-0.5)
    else:
        return False
    return True


def dummy_sequence_inputs(input_size: int, steps: int = 6) -> dict:
    """Three random sequences, the second padded after 3 steps (the models' dummy_inputs)."""
    mask = torch.ones(3, steps, dtype=torch.long)
    mask[1, 3:] = 0
    return {"input_features": torch.randn(3, steps, input_size), "attention_mask": mask}


def check_sequence_input(input_features, attention_mask, input_size: int, max_steps: int):
    """A ValueError naming the problem for inputs that do not fit the config."""
    if input_features.dim() != 3:
        raise ValueError(f"input_features must be (batch, steps, features), got shape {tuple(input_features.shape)}")
    if input_features.shape[-1] != input_size:
        raise ValueError(f"input_features has {input_features.shape[-1]} features a step, the config's input_size is {input_size}")
    if input_features.shape[1] > max_steps:
        raise ValueError(f"a sequence of {input_features.shape[1]} steps is longer than the config's max_steps={max_steps}")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_features.shape[:2]):
        raise ValueError(f"attention_mask must be (batch, steps) = {tuple(input_features.shape[:2])}, got {tuple(attention_mask.shape)}")


def masked_mean(outputs, mask):
    """The mean of outputs (batch, steps, D) over the real steps."""
    if mask is None:
        return outputs.mean(1)
    weights = mask.to(outputs.dtype)[..., None]
    return (outputs * weights).sum(1) / weights.sum(1).clamp(min=1)
