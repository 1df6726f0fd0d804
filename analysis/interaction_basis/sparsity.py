"""How concentrated an interaction graph is: the share of the total attribution carried by the
top-k edges, and the Gini coefficient of the edge weights (0: all equal, → 1: one edge)."""
from __future__ import annotations

import numpy as np

__all__ = ["gini", "top_k_share", "edges_for_share", "edge_sparsity"]

TOP_K = (1, 10, 100)
TOP_FRACTIONS = (0.01, 0.1)


def gini(values) -> float:
    """The Gini coefficient of non-negative weights: Σᵢ (2i − n − 1) xᵢ / (n Σ x) over the sorted x."""
    x = np.sort(np.abs(np.asarray(values, dtype=np.float64)).ravel())
    n = len(x)
    total = x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def top_k_share(values, k: int) -> float:
    """The share of Σ|x| carried by the k largest |x| (all of it when k ≥ the number of edges)."""
    x = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    total = x.sum()
    if total <= 0:
        return float("nan")
    k = min(int(k), len(x))
    return float(np.sort(x)[::-1][:k].sum() / total)


def edges_for_share(values, share: float = 0.9) -> int:
    """The fewest edges that carry ``share`` of Σ|x| (an effective number of interactions: unlike
    the Gini coefficient it does not change when zero edges are added)."""
    x = np.sort(np.abs(np.asarray(values, dtype=np.float64)).ravel())[::-1]
    total = x.sum()
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(x) / total, share - 1e-12) + 1)


def edge_sparsity(edges: np.ndarray) -> dict:
    """Top-k shares (k = 1, 10, 100 edges and the top 1 % / 10 % of edges), Gini, the edges that
    carry 50 % / 90 % of the total, edge count."""
    x = np.abs(np.asarray(edges, dtype=np.float64)).ravel()
    out = {"edges": int(x.size), "gini": gini(x), "total": float(x.sum()),
           "edges_for_50pct": edges_for_share(x, 0.5), "edges_for_90pct": edges_for_share(x, 0.9)}
    for k in TOP_K:
        out[f"top{k}_share"] = top_k_share(x, k)
    for f in TOP_FRACTIONS:
        out[f"top{int(round(f * 100))}pct_share"] = top_k_share(x, max(1, int(np.ceil(f * x.size))))
    return out
