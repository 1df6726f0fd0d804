"""Issue 20: the language-model tools around their numbers — the fused, vocabulary-chunked logit
lens against the direct computation, the cost estimate behind the defaults, speed intervals,
exact-token inputs and the figures. Tiny random models; every check has an independent side."""
from __future__ import annotations

import pytest
import torch

from analysis import depth
from analysis.models import DecoderAdapter

from .analysis_fixtures import make_tiny, random_prompts


@torch.no_grad()
def _direct_lens(adapter, prompts, k, exclude):
    """KL(final ‖ lens) and top-k overlap from stored h_l and a full log-softmax per layer."""
    L = adapter.num_layers
    kl, overlap, n = torch.zeros(L + 1, dtype=torch.float64), torch.zeros(L + 1, dtype=torch.float64), 0
    for prompt in prompts:
        acts = depth.collect_activations(adapter, prompt[None])
        keep = torch.ones(len(prompt), dtype=torch.bool)
        keep[list(exclude)] = False
        ref = acts["logits"][0][keep].double().log_softmax(-1)
        ref_top = ref.topk(k, -1).indices
        hs = list(acts["h"][:L, 0]) + [acts["h"][L, 0]]
        for l, h in enumerate(hs):
            logp = adapter.logits(h[keep]).double().log_softmax(-1)
            kl[l] += float((ref.exp() * (ref - logp)).sum())
            top = logp.topk(k, -1).indices
            overlap[l] += float((top[:, :, None] == ref_top[:, None, :]).any(-1).sum()) / k
        n += int(keep.sum())
    return (kl / n).tolist(), (overlap / n).tolist()


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])  # plain, softcapped, fused-attention heads
def test_chunked_lens_equals_the_direct_computation(family):
    adapter = DecoderAdapter(make_tiny(family))
    prompts = random_prompts((12, 9, 16))
    kl, overlap = _direct_lens(adapter, prompts, k=3, exclude=(0,))
    # chunks that do not divide the vocabulary (256) or the tokens, and a batch with padding
    lens = depth.logit_lens(adapter, prompts, k=3, batch_size=2, chunk_tokens=5, vocab_chunk=37, progress=False)
    assert lens.num_tokens == 11 + 8 + 15
    torch.testing.assert_close(torch.tensor(lens.kl), torch.tensor(kl, dtype=torch.float32), rtol=1e-4, atol=1e-6)
    assert lens.topk_overlap == pytest.approx(overlap, abs=1e-6)  # float32 sums of 1/k
    assert lens.kl[-1] == pytest.approx(0, abs=1e-5) and lens.topk_overlap[-1] == 1.0
    assert max(lens.kl[:-1]) > 1e-4  # not trivially zero
