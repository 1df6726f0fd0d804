"""What a depth run may ask of the model and the machine: sequence length (``check_max_tokens``,
shared with the other tools in analysis.runner) and memory (:func:`estimate_memory`), checked
before anything runs (``--max-tokens 100000`` on a 256-position model ran the machine out of memory)."""
from __future__ import annotations

from typing import Iterable

from ..models import DecoderAdapter
from ..runner import check_max_tokens, max_positions

__all__ = ["max_positions", "check_max_tokens", "estimate_memory"]


def _sizes(adapter: DecoderAdapter) -> dict:
    config = adapter.config
    d = adapter.hidden_size
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1)
    inner = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * d
    vocab = getattr(config, "vocab_size", None) or adapter.lm_head.weight.shape[0]
    return {"L": adapter.num_layers, "d": d, "H": int(heads), "I": int(inner), "V": int(vocab),
            "e": adapter.dtype.itemsize if hasattr(adapter.dtype, "itemsize") else 4}


def _forward_bytes(s: dict, batch: int, tokens: int, logits: bool = True) -> int:
    """One forward of ``batch`` x ``tokens``: a layer's hidden temporaries (residual, norms,
    projections ~6 d, MLP ~3 I), its attention scores and probabilities (2 H T², the eager and
    math-SDPA paths materialise them), and the full-sequence logits."""
    n = batch * tokens
    total = n * (6 * s["d"] + 3 * s["I"]) * s["e"] + 2 * batch * s["H"] * tokens * tokens * s["e"]
    if logits:
        total += n * s["V"] * max(s["e"], 4)
    return int(total)


def estimate_memory(adapter: DecoderAdapter, *, max_tokens: int, batch_size: int,
                    analyses: Iterable[str] = ("contributions", "skip", "lens", "map"),
                    skip_positions: int = 4, skip_max_tokens: int | None = None, map_tokens: int = 4096,
                    compare: DecoderAdapter | None = None, skip_max_batch: int = 64,
                    lens_chunk_tokens: int = 512) -> dict[str, int]:
    """Bytes each analysis of :func:`run_depth` needs on top of the loaded weights (the phases run
    one after another, so the run's peak is the largest), with ``"peak"``. An estimate from the
    sizes alone, made before anything runs."""
    s = _sizes(adapter)
    analyses = set(analyses)
    L, d, V, f4 = s["L"], s["d"], s["V"], 4
    phases: dict[str, int] = {}
    if "contributions" in analyses:
        T = max_tokens
        # + the accumulator's per-sequence float32 temporaries (~12 T x d) and its (L+1) x d sums
        phases["contributions"] = _forward_bytes(s, batch_size, T) + 12 * T * d * f4 + 4 * (L + 1) * d * 8
    if "lens" in analyses:
        B, T = min(batch_size, 4), max_tokens
        kept = B * T
        # the final log-probabilities kept through the second pass, plus one chunk's lens logits
        phases["lens"] = (_forward_bytes(s, B, T) + 2 * kept * V * f4
                          + 4 * min(lens_chunk_tokens, kept) * V * f4)
    if "skip" in analyses:
        T = min(skip_max_tokens or max_tokens, max_tokens)
        P = skip_positions
        variants = 3 * P * L  # every (kind, layer, position) variant is carried to the last layer
        rows = min(skip_max_batch, variants)
        phases["skip"] = ((L + 1) * T * d * s["e"]  # the clean residual stream
                          + 2 * variants * T * d * s["e"]  # carried inputs and outputs
                          + 2 * variants * T * s["e"]  # keep masks
                          + _forward_bytes(s, rows, T, logits=False)
                          + 3 * 2**25 * f4)  # the output distributions, chunked to 2**25 elements
    if "map" in analyses and compare is not None:
        t = _sizes(compare)
        M = map_tokens
        X = M * (L + 1) * d * f4
        Y = M * (t["L"] + 1) * t["d"] * f4
        # the ridge fit centres the target in float64 (train + test), and one source layer at a time
        phases["map"] = (X + Y + 2 * M * (t["L"] + 1) * t["d"] * 8 + 2 * M * d * 8
                         + max(_forward_bytes(s, batch_size, max_tokens), _forward_bytes(t, batch_size, max_tokens)))
    phases["peak"] = max(phases.values(), default=0)
    return phases
