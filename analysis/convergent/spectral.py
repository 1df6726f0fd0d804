"""Spectral clustering (many-to-many) of both nets' units on the joint |correlation| graph."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpectralGroups", "spectral_groups"]


@dataclass
class SpectralGroups:
    """Groups of units of both nets from spectral clustering of the joint |correlation| graph.

    ``labels_a`` / ``labels_b``: the group of each unit (-1: dead, left out). ``groups``: per
    group, how many units of A and of B it holds, the mean |correlation| between its A and B
    units, and ``subspace_r2``: how well its B units are predicted jointly from its A units
    (mean R², linear) — high where the nets share the group's subspace in different bases.
    ``mixed_share``: share of groups with units of both nets.
    """

    labels_a: list[int]
    labels_b: list[int]
    groups: list[dict]
    mixed_share: float


def spectral_groups(corr_aa: np.ndarray, corr_bb: np.ndarray, corr_ab: np.ndarray, n_clusters: int,
                    seed: int = 0) -> SpectralGroups:
    from sklearn.cluster import SpectralClustering

    da, db = len(corr_aa), len(corr_bb)
    joint = np.block([[corr_aa, corr_ab], [corr_ab.T, corr_bb]])
    live = np.concatenate([np.diag(corr_aa) > 0, np.diag(corr_bb) > 0])
    affinity = np.abs(joint[np.ix_(live, live)])
    k = max(1, min(n_clusters, int(live.sum()) - 1))
    labels = np.full(da + db, -1, dtype=int)
    if k >= 2:
        clustering = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                                        assign_labels="cluster_qr")
        labels[live] = clustering.fit_predict(affinity)
    else:
        labels[live] = 0
    la, lb = labels[:da], labels[da:]
    groups = []
    for g in range(max(k, 1)):
        ia, ib = np.flatnonzero(la == g), np.flatnonzero(lb == g)
        cross = float(np.abs(corr_ab[np.ix_(ia, ib)]).mean()) if len(ia) and len(ib) else 0.0
        r2 = 0.0
        if len(ia) and len(ib):
            c = corr_aa[np.ix_(ia, ia)] + 1e-6 * np.eye(len(ia))
            cab = corr_ab[np.ix_(ia, ib)]
            w = np.linalg.solve(c, cab)
            r2 = float(np.clip(np.einsum("ij,ij->j", w, cab), 0, 1).mean())
        groups.append({"group": g, "units_a": int(len(ia)), "units_b": int(len(ib)),
                       "mean_abs_cross_corr": cross, "subspace_r2": r2})
    mixed = float(np.mean([g["units_a"] > 0 and g["units_b"] > 0 for g in groups])) if groups else 0.0
    return SpectralGroups(labels_a=la.tolist(), labels_b=lb.tolist(), groups=groups, mixed_share=mixed)
