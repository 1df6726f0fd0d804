"""Tiny random decoder LMs of every family the adapter supports, and a tiny word tokenizer.

The fixtures of the analysis tests, the golden-JSON tests and the benchmarks (``from
analysis.testing import make_tiny``): public API, so that benchmarks import them without
``sys.path`` edits or a ``tests`` package (tests/analysis_fixtures.py re-exports them)."""
from __future__ import annotations

import collections
import re

import torch
import transformers

__all__ = ["VOCAB", "COMMON", "FAMILIES", "CORE", "make_tiny", "random_prompts", "make_tokenizer", "save_tiny",
           "smollm_gguf"]

VOCAB = 256
COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              pad_token_id=0, eos_token_id=1, bos_token_id=2)

# family -> (config class, model class, extra config)
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": 8}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 8}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"head_dim": 8}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM",
               {"head_dim": 8, "sliding_window": 8, "final_logit_softcapping": 5.0,
                "attn_logit_softcapping": 10.0}),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM", {"head_dim": 8, "sliding_window": 8}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", None),
}
# the families the issue names; the others are covered by the adapter tests
CORE = ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "gpt2"]


def _randomize_norms(model: torch.nn.Module, generator: torch.Generator):
    """Random init leaves norm weights at 1 (or 0 for Gemma); perturb them so a wrong
    norm in the adapter shows up in the tests."""
    for name, parameter in model.named_parameters():
        if "norm" in name or ".ln_" in name or name.endswith("ln_f.weight"):
            with torch.no_grad():
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))


def make_tiny(family: str, seed: int = 0, num_layers: int = 3) -> torch.nn.Module:
    """A random ``family`` causal LM (hidden 32, vocabulary 256), seeded, in eval mode."""
    config_name, model_name, extra = FAMILIES[family]
    if extra is None:  # GPT-2 names its fields differently
        config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=num_layers, n_head=4,
                                         n_positions=128, bos_token_id=2, eos_token_id=1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    else:
        fields = dict(COMMON, **extra)
        fields["num_hidden_layers"] = num_layers
        config = getattr(transformers, config_name)(**fields)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    _randomize_norms(model, torch.Generator().manual_seed(seed + 1))
    return model


def random_prompts(lengths=(12, 9, 16), seed: int = 0) -> list[torch.Tensor]:
    """Random token-id prompts of the given lengths (ids 1..255: no padding id)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(1, VOCAB, (n,), generator=generator) for n in lengths]


def make_tokenizer(vocab_size: int = VOCAB):
    """A word-level fast tokenizer over the built-in English text (for CLI round trips)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from .prompts import builtin_texts

    counts = collections.Counter(w for text in builtin_texts() for w in re.findall(r"\w+|[^\w\s]", text))
    specials = ["[PAD]", "[UNK]", "[BOS]"]
    words = [w for w, _ in counts.most_common(vocab_size - len(specials))]
    vocab = {token: i for i, token in enumerate(specials + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]",
                                                unk_token="[UNK]", bos_token="[BOS]")


def save_tiny(folder: str, family: str = "llama", seed: int = 0, num_layers: int = 3) -> str:
    """``make_tiny`` and ``make_tokenizer`` saved to ``folder`` (a model folder the CLIs load)."""
    model = make_tiny(family, seed=seed, num_layers=num_layers)
    model.save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return folder


def smollm_gguf() -> str | None:
    """The packaged SmolLM2 .gguf file, or None where it is not available."""
    from .models import packaged_smollm2_gguf

    return packaged_smollm2_gguf()
