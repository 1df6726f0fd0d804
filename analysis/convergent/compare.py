"""The pipeline: ``compare_pair`` (every measure for two models on one layer's statistics) and
``compare_models`` (one streaming pass over the inputs, then every layer × pair)."""
from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .collect import collect_statistics
from .matching import canonical_correlations, match_units, rotation_baseline
from .report import ConvergentReport, PairComparison
from .sparse import sparse_prediction
from .spectral import spectral_groups
from .statistics import BinnedMI, LayerStatistics

__all__ = ["compare_pair", "compare_models"]


def compare_pair(stats: LayerStatistics, i: int, j: int, *, layer: str = "", names: Sequence[str] = ("a", "b"),
                 mi: BinnedMI | None = None, strong: float = 0.5, rotations: int = 3, sparse: bool = True,
                 clusters: int | None = 0, seed: int = 0) -> PairComparison:
    """All the measures for models i and j of one layer's statistics."""
    corr = stats.correlation(i, j)
    live_a, live_b = ~stats.dead(i), ~stats.dead(j)
    matching = match_units(corr, live_a, live_b)
    matched = np.sort(matching.matched)[::-1]
    semi = np.array(matching.best_value)
    semi = np.sort(semi[~np.isnan(semi)])[::-1]
    result = PairComparison(
        layer=layer, model_a=names[0], model_b=names[1], units_a=corr.shape[0], units_b=corr.shape[1],
        samples=stats.n, dead_a=int(stats.dead(i).sum()), dead_b=int(stats.dead(j).sum()),
        mean_matched=matching.mean(), mean_semi_matched=float(semi.mean()) if len(semi) else float("nan"), strong=strong,
        strong_share=matching.strong_share(strong), baseline_mean=float("nan"),
        matched_curve=matched.tolist(), semi_curve=semi.tolist(), baseline_curve=[], matching=matching,
        correlation=corr,
    )
    if stats.within:
        c_aa, c_bb = stats.correlation(i, i), stats.correlation(j, j)
        result.correlation_aa = c_aa
        base = rotation_baseline(corr, c_bb, rotations=rotations, seed=seed)
        result.baseline_curve = base.tolist()
        result.baseline_mean = float(base.mean()) if len(base) else float("nan")
        result.canonical = canonical_correlations(c_aa, c_bb, corr).tolist()
        if sparse:
            result.sparse = sparse_prediction(c_aa, corr)
        if clusters:
            result.clusters = spectral_groups(c_aa, c_bb, corr, clusters, seed=seed)
    if mi is not None:
        info = mi.mutual_information(i, j)
        mi_matching = match_units(info, live_a, live_b)
        result.mi_matching = mi_matching
        result.mi_matched_mean = mi_matching.mean()
        agree = [p == q for p, q in zip(mi_matching.partner, matching.partner) if p >= 0]
        result.mi_corr_agreement = float(np.mean(agree)) if agree else None
    return result


def compare_models(models: Sequence[nn.Module], layers: Sequence[str], batches: Iterable[dict], *,
                   names: Sequence[str] | None = None, inputs: dict | None = None, total: int | None = None,
                   mi_bins: int = 0, strong: float = 0.5, rotations: int = 3, sparse: bool = True,
                   clusters: int | None = 16, seed: int = 0, progress: bool = True,
                   compute_dtype: torch.dtype = torch.float32) -> ConvergentReport:
    """Collect the statistics in one pass and compare every pair of models on every layer."""
    from tqdm.auto import tqdm

    names = list(names or [f"model{m}" for m in range(len(models))])
    if len(models) < 2:
        raise UserError("convergent learning compares at least two models")
    start = time.perf_counter()
    # the baseline, sparse prediction and clustering need the within-model Gram matrices; matching
    # alone needs only the cross-model products (cheaper: see docs/BENCHMARKS.md)
    within = bool(rotations or sparse or clusters)
    stats, infos = collect_statistics(models, layers, batches, names=names, mi_bins=mi_bins, total=total,
                                      progress=progress, compute_dtype=compute_dtype, within=within)
    collected = time.perf_counter()
    pairs = [(i, j) for i in range(len(models)) for j in range(i + 1, len(models))]
    comparisons = []
    for layer, (i, j) in tqdm([(l, p) for l in layers for p in pairs], desc="matching", disable=not progress):
        comparisons.append(compare_pair(stats[layer], i, j, layer=layer, names=(names[i], names[j]),
                                        mi=infos.get(layer), strong=strong, rotations=rotations, sparse=sparse,
                                        clusters=clusters, seed=seed))
    done = time.perf_counter()
    return ConvergentReport(models=names, layers=list(layers), inputs=inputs or {}, comparisons=comparisons,
                            seconds={"statistics": collected - start, "analysis": done - collected})
