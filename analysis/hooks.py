"""One hooks context manager and one residual-stream vocabulary for every analysis tool.

The residual stream of a decoder LM, named as TransformerLens names it (``h_l`` enters layer ``l``,
``a_l`` / ``m_l`` are what attention / the MLP add, ``h_{l+1} = h_l + a_l + m_l``):

=============  =============================  ==================================================
point          tensor                         where (``DecoderAdapter.hook_point``)
=============  =============================  ==================================================
``resid_pre``  h_l                            input of decoder layer l (pre-hook)
``attn_out``   a_l                            output of ``attn_contribution(l)`` (Gemma 2/3: its post-norm)
``resid_mid``  h_l + a_l                      input of the MLP's pre-norm ``mlp_norm(l)`` (read only)
``mlp_out``    m_l                            output of ``mlp_contribution(l)``
``resid_post`` h_{l+1}                        output of decoder layer l
=============  =============================  ==================================================

:class:`Hooks` collects forward hooks and removes every one of them when its ``with`` block ends,
however it ends::

    with Hooks(adapter) as hooks:
        hooks.read("resid_pre", 3, lambda h: ...)            # observe
        hooks.edit("attn_out", 3, lambda a: a * 0)           # replace (return None: leave as is)
        hooks.forward(adapter.attn(3), lambda module, args, output: ...)   # a raw module hook
        adapter.model(input_ids=ids)

Tools keep running statistics in these callbacks instead of caching activations.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .models import DecoderAdapter, first_tensor, replace_first_tensor

__all__ = [
    "RESID_PRE",
    "ATTN_OUT",
    "RESID_MID",
    "MLP_OUT",
    "RESID_POST",
    "POINTS",
    "Hooks",
    "attached",
    "hidden_from_call",
]

RESID_PRE = "resid_pre"
ATTN_OUT = "attn_out"
RESID_MID = "resid_mid"
MLP_OUT = "mlp_out"
RESID_POST = "resid_post"
POINTS = (RESID_PRE, ATTN_OUT, RESID_MID, MLP_OUT, RESID_POST)


def hidden_from_call(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states a decoder layer (or norm) was called with, positionally or by name."""
    if args:
        return args[0]
    return kwargs["hidden_states"]


class Hooks:
    """A set of forward hooks, all removed on leaving the ``with`` block (or by :meth:`remove`).

    ``adapter`` (a DecoderAdapter or a model it accepts) is needed only for the named points.
    """

    def __init__(self, adapter: DecoderAdapter | nn.Module | None = None, handles: list | None = None):
        if adapter is not None and not isinstance(adapter, DecoderAdapter):
            adapter = DecoderAdapter(adapter)
        self.adapter = adapter
        self.handles: list = list(handles or [])

    # named residual-stream points -------------------------------------------------------------
    def read(self, point: str, layer: int, fn: Callable[[torch.Tensor], Any]):
        """Call ``fn(tensor)`` with the ``point`` of ``layer`` on every forward pass."""
        module, where = self._where(point, layer)
        if where == "pre":
            def pre(module, args, kwargs):
                fn(hidden_from_call(args, kwargs))
            return self.add(module.register_forward_pre_hook(pre, with_kwargs=True))

        def post(module, args, output):
            fn(first_tensor(output))
        return self.add(module.register_forward_hook(post))

    def edit(self, point: str, layer: int, fn: Callable[[torch.Tensor], torch.Tensor | None]):
        """Replace the ``point`` of ``layer`` by ``fn(tensor)`` (None keeps it) on every forward.

        ``resid_mid`` cannot be edited: the layer adds the MLP to its own copy of h_l + a_l, so a
        changed norm input would change the MLP's input but not the stream.
        """
        if point == RESID_MID:
            raise ValueError("resid_mid is read-only (edit attn_out or resid_pre instead)")
        module, where = self._where(point, layer)
        if where == "pre":
            def pre(module, args, kwargs):
                new = fn(hidden_from_call(args, kwargs))
                if new is None:
                    return None
                if args:
                    return (new,) + tuple(args[1:]), kwargs
                return args, {**kwargs, "hidden_states": new}
            return self.add(module.register_forward_pre_hook(pre, with_kwargs=True))

        def post(module, args, output):
            new = fn(first_tensor(output))
            return None if new is None else replace_first_tensor(output, new)
        return self.add(module.register_forward_hook(post))

    def _where(self, point: str, layer: int) -> tuple[nn.Module, str]:
        if self.adapter is None:
            raise ValueError("named residual-stream points need Hooks(adapter)")
        return self.adapter.hook_point(point, layer)

    # raw module hooks -------------------------------------------------------------------------
    def forward(self, module: nn.Module, fn: Callable):
        """``module.register_forward_hook(fn)``, removed with the others."""
        return self.add(module.register_forward_hook(fn))

    def pre(self, module: nn.Module, fn: Callable, *, with_kwargs: bool = False):
        """``module.register_forward_pre_hook(fn, with_kwargs=...)``, removed with the others."""
        return self.add(module.register_forward_pre_hook(fn, with_kwargs=with_kwargs))

    def add(self, handle):
        self.handles.append(handle)
        return handle

    def remove(self) -> None:
        while self.handles:
            self.handles.pop().remove()

    def __enter__(self) -> "Hooks":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __len__(self) -> int:
        return len(self.handles)


def attached(handles: list) -> Hooks:
    """``with attached([handle, ...]):`` removes handles registered elsewhere at the end."""
    return Hooks(None, handles)
