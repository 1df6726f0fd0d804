"""What a depth run may ask of the model and the machine: sequence length (``check_max_tokens``,
shared with the other tools in analysis.runner) and memory (:func:`estimate_memory`), checked
before anything runs (``--max-tokens 100000`` on a 256-position model ran the machine out of memory)."""
from __future__ import annotations

from typing import Iterable

from ..models import DecoderAdapter
from ..runner import check_max_tokens, max_positions

__all__ = ["max_positions", "check_max_tokens", "estimate_memory", "estimate_flops", "format_estimate", "measure_rate",
           "LAPTOP_FLOPS", "auto_lens_sample", "LENS_BUDGET", "LENS_HEAD_SHARE"]


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
                    lens_chunk_tokens: int = 512, lens_vocab_chunk: int = 4096) -> dict[str, int]:
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
        # h_0..h_L at the kept tokens, their reference logits, and per token chunk the reference
        # log-probabilities, probabilities and a product temporary, plus one vocabulary block
        chunk = min(lens_chunk_tokens, kept)
        phases["lens"] = (_forward_bytes(s, B, T) + (L + 1) * kept * d * s["e"] + kept * V * f4
                          + 3 * chunk * V * f4 + 3 * chunk * min(V, lens_vocab_chunk) * f4)
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


# --------------------------------------------------------------------------------------------
# cost (FLOPs), for the estimate a run prints before it starts
# --------------------------------------------------------------------------------------------

#: a laptop CPU's sustained float32 matmul rate in a torch forward (4 cores, ~25 GFLOP/s each):
#: what "about a minute on a laptop" is checked against (tests/test_lmtools.py)
LAPTOP_FLOPS = 1e11


def _matrix_macs(module) -> int:
    """Multiply-accumulates per token of every weight matrix in ``module`` (2-D parameters:
    Linear and GPT-2's Conv1D alike; norms and biases are 1-D and left out)."""
    return int(sum(p.numel() for p in module.parameters() if p.dim() == 2))


def _attention_width(adapter: DecoderAdapter) -> int:
    config = adapter.config
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1)
    head_dim = getattr(config, "head_dim", None) or adapter.hidden_size // heads
    return int(heads) * int(head_dim)


def _layer_flops(adapter: DecoderAdapter, tokens: int, context: int) -> int:
    """FLOPs of one decoder layer on ``tokens`` tokens of sequences ``context`` long: its weight
    matrices, and the scores and weighted values (2 x context x width per token; the masked
    causal half is computed too)."""
    return 2 * tokens * (_matrix_macs(adapter.layer(0)) + 2 * context * _attention_width(adapter))


def _head_flops(adapter: DecoderAdapter, tokens: int) -> int:
    return 2 * tokens * _matrix_macs(adapter.lm_head)


def _forward_flops(adapter: DecoderAdapter, sequences: int, length: int) -> int:
    n = sequences * length
    return adapter.num_layers * _layer_flops(adapter, n, length) + _head_flops(adapter, n)


def estimate_flops(adapter: DecoderAdapter, *, num_prompts: int, max_tokens: int,
                   analyses: Iterable[str] = ("contributions", "lens"), skip_prompts: int | None = None,
                   skip_positions: int = 4, skip_max_tokens: int | None = None, skip_kinds: int = 3,
                   map_tokens: int = 4096, compare: DecoderAdapter | None = None,
                   lens_sample: float = 1.0) -> dict[str, int]:
    """FLOPs each analysis of :func:`run_depth` will do, from the model's weight shapes and the
    settings alone (nothing runs), with ``"total"``; the matrix products only, which dominate.

    * contributions: one forward over the prompts;
    * lens: one forward plus the head on every h_0..h_L ((L+1) LM-head products per token: on a
      49k-vocabulary 135M model that is ~6x the forward itself, a floor for any exact lens), on
      the ``lens_sample`` share of the tokens;
    * skip: per prompt a clean forward, then every (kind, position) variant started at layer l is
      carried through layers l..L-1 (sublayer variants compute layer l; a skipped layer does not),
      and the head on the measured positions (about half) of every variant;
    * map: the forwards of both models over the map tokens and the ridge fits.
    """
    analyses = set(analyses)
    L, T = adapter.num_layers, max_tokens
    costs: dict[str, int] = {}
    if "contributions" in analyses:
        costs["contributions"] = _forward_flops(adapter, num_prompts, T)
    if "lens" in analyses:
        head = (L + 1) * _head_flops(adapter, num_prompts * T)
        costs["lens"] = _forward_flops(adapter, num_prompts, T) + int(round(lens_sample * head))
    if "skip" in analyses:
        prompts = min(skip_prompts or num_prompts, num_prompts)
        Ts = min(skip_max_tokens or T, T)
        P = min(skip_positions, max(Ts - 1, 0))
        sub = 2 if skip_kinds >= 2 else skip_kinds
        # layer j computes the sublayer variants started at layers <= j and the layer variants started before j
        rows = sub * P * L * (L + 1) // 2 + (P * L * (L - 1) // 2 if skip_kinds == 3 else 0)
        per_prompt = (_forward_flops(adapter, 1, Ts) + _layer_flops(adapter, rows * Ts, Ts)
                      + _head_flops(adapter, skip_kinds * P * L * Ts // 2))
        costs["skip"] = prompts * per_prompt
    if "map" in analyses and compare is not None:
        M = min(map_tokens, num_prompts * T)
        sequences = -(-M // T)
        d, dt = adapter.hidden_size, compare.hidden_size
        Lt = compare.num_layers
        ridge = 2 * (L + 1) * (M * d * d + d ** 3 + (Lt + 1) * M * d * dt)
        costs["map"] = _forward_flops(adapter, sequences, T) + _forward_flops(compare, sequences, T) + ridge
    costs["total"] = sum(costs.values())
    return costs


#: what the lens may cost, in bare forwards over the same tokens (issue 20's goal)
LENS_BUDGET = 2.0
#: the head's FLOPs a sampled lens is sized to, as a share of one forward's: the per-chunk
#: logsumexp, top-k and dot products add about half the head's matmul time on a CPU (the exact
#: lens runs at 1.5x its FLOP floor, benchmarks/bench_depth_lens.py), so this keeps the whole
#: lens under LENS_BUDGET
LENS_HEAD_SHARE = 0.5


def auto_lens_sample(adapter: DecoderAdapter, max_tokens: int) -> float:
    """The share of tokens the CLI's lens evaluates the head on: 1 (the exact lens) when the head on
    all L+1 residual streams costs at most ``LENS_BUDGET - 1`` forwards, else the share whose head
    FLOPs are ``LENS_HEAD_SHARE`` of a forward (SmolLM2-135M: 8 %)."""
    forward = _forward_flops(adapter, 1, max_tokens)
    head = (adapter.num_layers + 1) * _head_flops(adapter, max_tokens)
    if forward + head <= LENS_BUDGET * forward:
        return 1.0
    return LENS_HEAD_SHARE * forward / head


def format_estimate(costs: dict[str, int], flops_per_s: float, *, rate_from: str) -> str:
    """One line: the seconds each analysis should take at ``flops_per_s``."""
    parts = [f"{name} ~{costs[name] / flops_per_s:.0f} s" for name in costs if name != "total"]
    return (f"estimated time at {flops_per_s / 1e9:.1f} GFLOP/s ({rate_from}): " + ", ".join(parts)
            + f"; total ~{costs['total'] / flops_per_s:.0f} s")


def measure_rate(adapter: DecoderAdapter, length: int) -> float:
    """FLOPs per second of this model's forward here: a warm-up and one timed forward of one
    ``length``-token sequence of random ids (wall clock: what the run will take)."""
    import time

    import torch

    vocab = _matrix_macs(adapter.lm_head) // adapter.hidden_size
    ids = torch.randint(0, max(1, vocab), (1, max(2, length)), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapter.model(input_ids=ids.to(adapter.device), use_cache=False)
        start = time.perf_counter()
        adapter.model(input_ids=ids.to(adapter.device), use_cache=False)
        seconds = max(time.perf_counter() - start, 1e-6)
    return _forward_flops(adapter, 1, ids.shape[1]) / seconds
