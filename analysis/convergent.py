"""Convergent learning (Li, Yosinski, Clune, Lipson, Hopcroft 2015): do networks that differ only
in their seed learn the same units?

Pipeline, one pass over the inputs:

1. ``collect_statistics`` runs every model on the same batches with forward hooks on the chosen
   modules (a layer is a module path as ``named_modules()`` gives it; its output is the layer's
   units) and streams the outputs into ``LayerStatistics``: float64 running sums of each
   model's units, their within-model Gram matrices and the cross-model Gram matrices. A
   convolutional output ``(N, C, H, W)`` counts each position as a sample of its ``C`` channel
   units; a sequence output ``(B, T, D)`` counts each non-padding token. No activation is kept
   beyond the current batch. Optionally ``BinnedMI`` accumulates joint histograms for a binned,
   Miller-Madow bias-corrected mutual information.
2. From the statistics: ``match_units`` (one-to-one matching with the maximum total correlation
   by ``scipy.optimize.linear_sum_assignment``, and semi-matching: each unit's best partner),
   ``rotation_baseline`` (the same matching against a random rotation of the other net's units:
   what is left when two nets span the same space in unrelated bases), ``canonical_correlations``
   (does the other net span the same subspace at all?), ``sparse_prediction`` (L1-regularised
   linear maps from one net's units to the other's along a λ path: error against nonzero
   weights, one-to-many) and ``spectral_groups`` (spectral clustering of both nets' units on
   the joint correlation graph: many-to-many groups and their make-up).
3. ``compare_models`` ties it together into a ``ConvergentReport`` (``to_json()``, ``write()``,
   ``plot()``, markdown summary); ``zoo-analysis match`` is the CLI.
"""
from __future__ import annotations

import difflib
import functools
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .errors import UserError

__all__ = [
    "LayerStatistics",
    "BinnedMI",
    "Matching",
    "SparsePath",
    "SpectralGroups",
    "PairComparison",
    "ConvergentReport",
    "flatten_units",
    "list_layers",
    "check_layers",
    "collect_statistics",
    "match_units",
    "rotation_baseline",
    "canonical_correlations",
    "sparse_prediction",
    "spectral_groups",
    "compare_pair",
    "compare_models",
    "load_models",
    "image_batches",
    "text_batches",
]


# --------------------------------------------------------------------------------------------
# Streaming statistics
# --------------------------------------------------------------------------------------------


def flatten_units(output: Any, mask: torch.Tensor | None = None, copy: bool = True) -> torch.Tensor:
    """A module output as ``(samples, units)``: ``(N, D)`` stays; ``(N, C, H, W)`` gives one
    sample per position of ``C`` channel units; ``(B, T, D)`` one sample per token (those where
    ``mask`` is nonzero, if a ``(B, T)`` mask is given). ``copy=False`` returns a convolutional
    output as the unit-last view ``(N, H, W, C)`` instead (no copy; ``LayerStatistics.update``
    takes it and centres it in one pass)."""
    from .models import first_tensor

    x = first_tensor(output)
    if x.ndim == 2:
        return x
    if x.ndim == 4:
        x = x.permute(0, 2, 3, 1)
        return x.reshape(-1, x.shape[-1]) if copy else x
    if x.ndim == 3:
        if mask is not None and mask.shape == x.shape[:2]:
            return x[mask.to(x.device).bool()]
        return x.reshape(-1, x.shape[-1])
    raise UserError(f"a layer output of shape {tuple(x.shape)} has no unit axis (expected 2-D, 3-D or 4-D)")


def _rows(a: torch.Tensor) -> int:
    return int(np.prod(a.shape[:-1]))


class LayerStatistics:
    """Running first and second moments of the units of one layer in M models, in float64.

    ``update([x_0, ..., x_{M-1}])`` takes each model's ``(samples, units_m)`` activations for the
    same samples. Sums are kept about a fixed shift (the first batch's mean) so that the
    second moments do not cancel catastrophically; each batch's products are computed in
    ``compute_dtype`` (float32 by default, exact enough after the shift and twice as fast;
    float64 on request) and added to float64 accumulators. ``within=False`` keeps only the
    cross-model products and the variances (enough for matching; sparse prediction, rotation
    baselines, canonical correlations and spectral clustering need the within-model ones).
    """

    def __init__(self, sizes: Sequence[int], within: bool = True, compute_dtype: torch.dtype = torch.float32):
        self.sizes = [int(s) for s in sizes]
        self.within = within
        self.compute_dtype = compute_dtype
        self.n = 0
        self.shift: list[torch.Tensor | None] = [None] * len(self.sizes)
        self._allocate(torch.device("cpu"))

    def _allocate(self, device: torch.device) -> None:
        # on the activations' device (a GPU keeps its activations), float64 throughout
        zeros = functools.partial(torch.zeros, dtype=torch.float64, device=device)
        self.sum = [zeros(d) for d in self.sizes]
        self.sumsq = [zeros(d) for d in self.sizes]
        self.gram = [zeros(d, d) if self.within else None for d in self.sizes]
        self.cross = {(i, j): zeros(self.sizes[i], self.sizes[j])
                      for i in range(len(self.sizes)) for j in range(i + 1, len(self.sizes))}

    def _units_by_samples(self, m: int, a: torch.Tensor) -> torch.Tensor:
        """Model m's activations centred about its shift, as a ``(units, samples)`` matrix (a
        view of whichever layout the centring wrote, so that every product below is one GEMM
        with contiguous operands and no further copy)."""
        units = a.shape[-1]
        if self.shift[m] is None:
            self.shift[m] = a.reshape(-1, units).to(self.compute_dtype).mean(0)
        if a.ndim == 4:
            # the unit-last view (N, H, W, C) of a channel-first conv output: centre straight into
            # channel-major (C, N, H, W), whose rows of H*W positions copy contiguously; a GEMM over
            # samples of (C, N*H*W) rows runs 1.2-1.5x faster than over (N*H*W, C) columns
            z = torch.empty((units,) + tuple(a.shape[:-1]), dtype=self.compute_dtype, device=a.device)
            torch.sub(a.permute(3, 0, 1, 2), self.shift[m][:, None, None, None], out=z)
            return z.view(units, -1)
        x = torch.empty(a.shape, dtype=self.compute_dtype, device=a.device)
        torch.sub(a, self.shift[m], out=x)
        return x.view(-1, units).T

    _CACHE_ELEMENTS = 1 << 19  # float32 elements of one slice of samples, all models together (2 MiB)

    def _accumulate(self, activations: list[torch.Tensor]) -> None:
        us = [self._units_by_samples(m, a) for m, a in enumerate(activations)]
        for m, u in enumerate(us):
            self.sum[m] += u.sum(1)  # float32 in-slice (cascade summation), float64 across slices
            if self.within:
                gram = u @ u.T
                self.gram[m] += gram
                self.sumsq[m] += torch.diagonal(gram)
            else:  # the diagonal alone: a row norm is 2-3x cheaper than u*u summed, and no d x d product
                self.sumsq[m] += torch.linalg.vector_norm(u, dim=1).double() ** 2
        for (i, j), acc in self.cross.items():
            acc += us[i] @ us[j].T

    @torch.no_grad()
    def update(self, activations: Sequence[torch.Tensor]) -> None:
        if len(activations) != len(self.sizes):
            raise ValueError(f"expected {len(self.sizes)} activation blocks, got {len(activations)}")
        rows = {_rows(a) for a in activations}
        if len(rows) != 1:
            raise UserError(f"the models give different numbers of samples for this layer ({sorted(rows)}): "
                            "compare layers with the same spatial size / sequence length")
        for m, a in enumerate(activations):
            if a.shape[-1] != self.sizes[m]:
                raise ValueError(f"model {m}: expected {self.sizes[m]} units, got {a.shape[-1]}")
        device = activations[0].device
        if device.type == "mps":  # no float64 there
            device = torch.device("cpu")
        if self.n == 0 and self.sum[0].device != device:
            self._allocate(device)
        activations = [a.detach().to(device) for a in activations]
        # Narrow layers (conv channels) make memory-bound products: take the samples in slices
        # that stay in cache between the centring and the products (measured on the convnet's
        # conv layers: +30 % over the bare forward instead of +39 %; smaller slices lose it to
        # per-call overhead); wide layers (>= 1024 units in all) are compute-bound and go whole.
        per_item = _rows(activations[0]) // max(activations[0].shape[0], 1)
        items = len(activations[0])
        if device.type == "cpu" and sum(self.sizes) < 1024:
            items = max(1, self._CACHE_ELEMENTS // (sum(self.sizes) * max(per_item, 1)))
        for start in range(0, len(activations[0]), items):
            self._accumulate([a[start:start + items] for a in activations])
        self.n += next(iter(rows))

    # -- derived quantities (numpy float64) --------------------------------------------------

    def mean(self, m: int) -> np.ndarray:
        return (self.sum[m] / self.n + self.shift[m].double()).cpu().numpy()

    def variance(self, m: int) -> np.ndarray:
        s = self.sum[m]
        var = (self.sumsq[m] - s * s / self.n) / (self.n - 1)
        return var.clamp_min(0).cpu().numpy()

    def dead(self, m: int, tol: float = 1e-12) -> np.ndarray:
        """Units whose variance is (numerically) zero: constant over the inputs."""
        var = self.variance(m)
        return var <= tol * max(1.0, float(np.abs(self.mean(m)).max(initial=0.0)) ** 2)

    def covariance(self, i: int, j: int) -> np.ndarray:
        if self.n < 2:
            raise UserError("need at least 2 samples to estimate correlations")
        if i == j:
            if not self.within:
                raise ValueError("within-model covariances were not accumulated (within=False)")
            g = self.gram[i]
        elif (i, j) in self.cross:
            g = self.cross[(i, j)]
        else:
            return self.covariance(j, i).T
        si, sj = self.sum[i], self.sum[j]
        return ((g - torch.outer(si, sj) / self.n) / (self.n - 1)).cpu().numpy()

    def correlation(self, i: int, j: int) -> np.ndarray:
        """Pearson correlation between model i's and model j's units; 0 where a unit is dead."""
        if self.n < 2:
            raise UserError("need at least 2 samples to estimate correlations")
        if i > j:
            return self.correlation(j, i).T
        if i == j and not self.within:
            raise ValueError("within-model covariances were not accumulated (within=False)")
        g = self.gram[i] if i == j else self.cross[(i, j)]
        # in place on one copy: (Σxy - Σx Σy / n) / sqrt(Σxx' Σyy'), the 1/(n-1) cancelling
        corr = g.clone()
        corr.addr_(self.sum[i], self.sum[j], alpha=-1.0 / self.n)

        def inverse_sd(m):
            ss = (self.sumsq[m] - self.sum[m] ** 2 / self.n).clamp_min(0)
            inv = ss.rsqrt()
            inv[torch.from_numpy(self.dead(m)).to(inv.device)] = 0.0
            return inv

        corr.mul_(inverse_sd(i)[:, None]).mul_(inverse_sd(j)[None, :]).clamp_(-1.0, 1.0)
        if i == j:
            corr.diagonal().copy_(torch.from_numpy(np.where(self.dead(i), 0.0, 1.0)).to(corr.device))
        return corr.cpu().numpy()


class BinnedMI:
    """Streaming joint histograms of every (unit of model i, unit of model j) pair.

    Bin edges are each unit's quantiles in the first batch (ties merged, so a ReLU unit that is
    mostly zero gets a zero bin). Counts of a batch are one-hot products, ``(d_i·k) × (d_j·k)``,
    accumulated in float64. ``mutual_information(i, j)`` gives the Miller-Madow corrected
    estimate in nats: each plug-in entropy plus ``(occupied bins - 1) / 2N``.
    """

    def __init__(self, sizes: Sequence[int], bins: int = 8, pairs: Iterable[tuple[int, int]] | None = None):
        if bins < 2:
            raise UserError("mutual information needs at least 2 bins")
        self.sizes = list(sizes)
        self.bins = bins
        self.pairs = list(pairs) if pairs is not None else [
            (i, j) for i in range(len(sizes)) for j in range(i + 1, len(sizes))]
        self.edges: list[torch.Tensor | None] = [None] * len(sizes)
        self.marginal = [torch.zeros(d, bins, dtype=torch.float64) for d in self.sizes]
        self.joint = {(i, j): torch.zeros(self.sizes[i] * bins, self.sizes[j] * bins, dtype=torch.float64)
                      for i, j in self.pairs}
        self.n = 0

    def _one_hot(self, m: int, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32)
        if self.edges[m] is None:
            q = torch.linspace(0, 1, self.bins + 1)[1:-1]
            self.edges[m] = torch.quantile(x, q, dim=0).T.contiguous()  # (units, bins-1)
        index = torch.searchsorted(self.edges[m], x.T.contiguous(), right=True).T  # (samples, units) in [0, bins)
        index = index + torch.arange(x.shape[1]) * self.bins
        one_hot = torch.zeros(x.shape[0], x.shape[1] * self.bins)
        one_hot.scatter_(1, index, 1.0)
        return one_hot

    @torch.no_grad()
    def update(self, activations: Sequence[torch.Tensor]) -> None:
        hot = [self._one_hot(m, a) for m, a in enumerate(activations)]
        for m, h in enumerate(hot):
            self.marginal[m] += h.sum(0, dtype=torch.float64).view(-1, self.bins)
        for (i, j), acc in self.joint.items():
            acc += (hot[i].T @ hot[j]).double()  # counts per batch are exact in float32 (< 2**24)
        self.n += activations[0].shape[0]

    @staticmethod
    def _entropy(counts: np.ndarray, n: int, axis) -> np.ndarray:
        p = counts / n
        with np.errstate(divide="ignore", invalid="ignore"):
            plugin = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=axis)
        occupied = (counts > 0).sum(axis=axis)
        return plugin + (occupied - 1) / (2 * n)

    def mutual_information(self, i: int, j: int) -> np.ndarray:
        """Bias-corrected MI (nats), ``(units_i, units_j)``; never below 0."""
        if (i, j) not in self.joint:
            return self.mutual_information(j, i).T
        k = self.bins
        joint = self.joint[(i, j)].numpy().reshape(self.sizes[i], k, self.sizes[j], k)
        h_ij = self._entropy(joint, self.n, axis=(1, 3))
        h_i = self._entropy(self.marginal[i].numpy(), self.n, axis=1)
        h_j = self._entropy(self.marginal[j].numpy(), self.n, axis=1)
        return np.maximum(h_i[:, None] + h_j[None, :] - h_ij, 0.0)


# --------------------------------------------------------------------------------------------
# Matching, baselines, subspaces
# --------------------------------------------------------------------------------------------


@dataclass
class Matching:
    """One-to-one and semi-matching between the units of net A (rows) and net B (columns).

    ``partner[a]``: the unit of B matched to unit ``a`` (-1 when B has fewer units), ``value[a]``
    its similarity; ``best_partner[a]`` / ``best_value[a]``: A's semi-matching (best unit of B,
    repeats allowed); ``best_partner_b`` / ``best_value_b`` the same from B's side.
    """

    partner: list[int]
    value: list[float]
    best_partner: list[int]
    best_value: list[float]
    best_partner_b: list[int]
    best_value_b: list[float]

    @property
    def matched(self) -> np.ndarray:
        return np.array([v for p, v in zip(self.partner, self.value) if p >= 0])

    def mean(self) -> float:
        return float(self.matched.mean()) if len(self.matched) else float("nan")

    def strong_share(self, threshold: float) -> float:
        m = self.matched
        return float((m >= threshold).mean()) if len(m) else float("nan")

    def order(self) -> tuple[np.ndarray, np.ndarray]:
        """Row order (A units by matched value, best first) and the matched B column of each,
        unmatched B units appended: the permutation that shows the matching on the diagonal."""
        partner, value = np.array(self.partner), np.array(self.value)
        rows = np.lexsort((np.arange(len(partner)), -np.where(partner >= 0, value, -np.inf)))
        cols = [int(partner[r]) for r in rows if partner[r] >= 0]
        taken = set(cols)
        rest = [c for c in range(len(self.best_partner_b)) if c not in taken]
        return rows, np.array(cols + rest, dtype=int)


def _column_argmax(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sim.argmax(0)`` and the maxima, fast: numpy's argmax down the columns of a C-ordered
    matrix is ~40x slower than its max (0.4 s at 4096²), so find each column's maximum and
    take the first row that attains it."""
    top = sim.max(0)
    r, c = np.nonzero(sim == top[None, :])
    arg = np.full(sim.shape[1], -1)
    arg[c[::-1]] = r[::-1]  # the last write wins: the first row reaching the maximum, as argmax
    missing = arg < 0  # a column holding NaN: argmax's own answer
    if missing.any():
        arg[missing] = sim[:, missing].argmax(0)
    return arg, sim[arg, np.arange(sim.shape[1])]


def match_units(similarity: np.ndarray, live_a: np.ndarray | None = None, live_b: np.ndarray | None = None) -> Matching:
    """Maximum-total-similarity one-to-one matching (``linear_sum_assignment``) plus semi-matching.

    ``live_a`` / ``live_b`` (boolean masks) restrict both to live units: a dead unit (constant
    over the inputs) has no correlation with anything, gets partner -1 and value NaN.
    """
    from scipy.optimize import linear_sum_assignment

    sim_full = np.asarray(similarity, dtype=np.float64)
    na, nb = sim_full.shape
    ia = np.flatnonzero(live_a) if live_a is not None else np.arange(na)
    ib = np.flatnonzero(live_b) if live_b is not None else np.arange(nb)
    sim = sim_full if len(ia) == na and len(ib) == nb else sim_full[np.ix_(ia, ib)]
    partner = np.full(na, -1, dtype=int)
    value = np.full(na, np.nan)
    best = np.full(na, -1, dtype=int)
    best_value = np.full(na, np.nan)
    best_b = np.full(nb, -1, dtype=int)
    best_value_b = np.full(nb, np.nan)
    if sim.size:
        rows_i = np.arange(len(ia))
        arg = sim.argmax(1)
        best[ia] = ib[arg]
        best_value[ia] = sim[rows_i, arg]
        best_b[ib], best_value_b[ib] = _column_argmax(sim)
        # Minimise a reduced cost instead of maximising ``sim``: subtracting a constant from a row
        # (a column) that every assignment uses exactly once does not change the optimum, and the
        # reduced matrix (>= 0, a zero in every row and column) starts the shortest augmenting
        # paths much closer to the optimal duals: 20-30 % less time at 4096 units.
        cost = np.empty_like(sim)
        if len(ia) <= len(ib):  # every row is assigned
            np.subtract(sim[rows_i, arg][:, None], sim, out=cost)
        else:
            np.negative(sim, out=cost)
        if len(ib) <= len(ia):  # every column is assigned
            cost -= cost.min(0)
        rows, cols = linear_sum_assignment(cost)
        del cost
        partner[ia[rows]] = ib[cols]
        value[ia[rows]] = sim[rows, cols]
    return Matching(partner=partner.tolist(), value=value.tolist(), best_partner=best.tolist(),
                    best_value=best_value.tolist(), best_partner_b=best_b.tolist(), best_value_b=best_value_b.tolist())


def _random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))[None, :]


def rotation_baseline(corr_ab: np.ndarray, corr_bb: np.ndarray, rotations: int = 3, seed: int = 0) -> np.ndarray:
    """Matched correlations (sorted, best first) of A against random rotations of B's units.

    A rotation keeps the space B's units span and scrambles its basis: ``corr(A, Z_B R) =
    C_AB R / sqrt(diag(Rᵀ C_BB R))`` with ``Z_B`` B's standardised units. What two nets
    share beyond this baseline is a *basis*, not just a subspace. Dead units of B are left
    out. Returns the mean over ``rotations`` of the sorted matched-correlation curves.
    """
    live = np.abs(np.diag(corr_bb)) > 0
    c_ab, c_bb = corr_ab[:, live], corr_bb[np.ix_(live, live)]
    d = c_ab.shape[1]
    if d == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(max(1, rotations)):
        rot = _random_orthogonal(d, rng)
        scale = np.sqrt(np.maximum(np.einsum("ij,ik,kj->j", rot, c_bb, rot), 1e-12))
        rotated = (c_ab @ rot) / scale[None, :]
        m = match_units(rotated, np.abs(c_ab).sum(1) > 0)
        curves.append(np.sort(m.matched)[::-1])
    length = min(len(c) for c in curves)
    return np.mean([c[:length] for c in curves], axis=0)


def _inverse_sqrt(c: np.ndarray, ridge: float) -> np.ndarray:
    w, v = np.linalg.eigh(c + ridge * np.eye(len(c)))
    return (v / np.sqrt(np.maximum(w, ridge))) @ v.T


def canonical_correlations(corr_aa: np.ndarray, corr_bb: np.ndarray, corr_ab: np.ndarray, ridge: float = 1e-4) -> np.ndarray:
    """Canonical correlations between the spaces the two layers span (descending), from the
    correlation matrices, with a small ridge for collinear or dead units. Close to 1 where the
    nets share a direction of activity whatever basis their units use."""
    live_a, live_b = np.diag(corr_aa) > 0, np.diag(corr_bb) > 0
    a = _inverse_sqrt(corr_aa[np.ix_(live_a, live_a)], ridge)
    b = _inverse_sqrt(corr_bb[np.ix_(live_b, live_b)], ridge)
    s = np.linalg.svd(a @ corr_ab[np.ix_(live_a, live_b)] @ b, compute_uv=False)
    return np.clip(s, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Sparse prediction (one-to-many)
# --------------------------------------------------------------------------------------------


@dataclass
class SparsePath:
    """L1-regularised linear prediction of every unit of B from the units of A, along a λ path.

    All in standardised units: ``error[k]`` is the mean over B's live units of the normalised
    squared error (1 - R², in-sample) at ``lambdas[k]``; ``nonzeros[k]`` the mean number of A's
    units each B unit uses; ``refit_error[k]`` the error of least squares refitted on the units
    the lasso chose (relaxed lasso: the error of the *selection*, without the L1 shrinkage;
    None where a support exceeds ``max_refit`` units). ``single_unit_error`` is the error of the best single unit of A
    (semi-matching, 1 - max r²) and ``full_error`` of the unregularised map, for reference.
    ``weights`` (standardised, ``(units_a, units_b)``) are kept for the λ index
    ``kept_index`` only (the sparsest with at most 4 nonzeros per unit on average, else the last).
    """

    lambdas: list[float]
    error: list[float]
    nonzeros: list[float]
    single_unit_error: float
    full_error: float
    iterations: list[int]
    refit_error: list[float | None] = field(default_factory=list)
    kept_index: int = -1
    weights: np.ndarray | None = field(default=None, repr=False)
    path_weights: list[np.ndarray] | None = field(default=None, repr=False)  # every λ, with keep_path=True

    def error_at(self, nonzeros: float, refit: bool = True) -> float:
        """Error interpolated at a given mean number of nonzero weights per target unit (the
        refitted error where there is one)."""
        err = [r if (refit and r is not None) else e for r, e in zip(self.refit_error or self.error, self.error)]
        nz, err = np.array(self.nonzeros), np.array(err, dtype=float)
        order = np.argsort(nz)
        return float(np.interp(nonzeros, nz[order], err[order]))

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("weights")
        out.pop("path_weights")
        return out


def _soft(x: np.ndarray, t: float) -> np.ndarray:
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def _lasso_fista(c_aa: np.ndarray, c_ab: np.ndarray, lam: float, w0: np.ndarray, step: float,
                 max_iter: int, tol: float) -> tuple[np.ndarray, int]:
    """min_W ½ tr(WᵀC_AA W) - tr(WᵀC_AB) + λ‖W‖₁ (all target columns at once) by FISTA with
    gradient-based adaptive restart (O'Donoghue & Candès 2015): the momentum is dropped whenever
    it points uphill. Correlated units make C_AA ill-conditioned and plain FISTA oscillate; with
    the restart a 12-λ path over 512 units takes ~2.3x fewer iterations."""
    w, z, t = w0.copy(), w0.copy(), 1.0
    for it in range(1, max_iter + 1):
        w_new = _soft(z - step * (c_aa @ z - c_ab), step * lam)
        if np.vdot(z - w_new, w_new - w) > 0:
            t = 1.0
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = w_new + ((t - 1) / t_new) * (w_new - w)
        change = np.abs(w_new - w).max()
        w, t = w_new, t_new
        if change < tol:
            break
    return w, it


def _prediction_error(c_aa: np.ndarray, c_ab: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per target unit: E[(z_b - wᵀz_a)²] = 1 - 2 wᵀc + wᵀC w (standardised units)."""
    return 1 - 2 * np.einsum("ij,ij->j", w, c_ab) + np.einsum("ij,ik,kj->j", w, c_aa, w)


def _refit_error(c_aa: np.ndarray, c_ab: np.ndarray, w: np.ndarray, max_refit: int) -> float | None:
    errors = []
    for j in range(w.shape[1]):
        support = np.flatnonzero(w[:, j])
        if len(support) > max_refit:
            return None
        if len(support) == 0:
            errors.append(1.0)
            continue
        c = c_aa[np.ix_(support, support)] + 1e-9 * np.eye(len(support))
        coef = np.linalg.solve(c, c_ab[support, j])
        errors.append(1 - coef @ c_ab[support, j])
    return float(np.mean(errors)) if errors else None


def sparse_prediction(corr_aa: np.ndarray, corr_ab: np.ndarray, lambdas: Sequence[float] | None = None,
                      num_lambdas: int = 12, min_ratio: float = 1e-3, max_iter: int = 300, tol: float = 1e-5,
                      keep_nonzeros: float = 4.0, keep_path: bool = False, max_refit: int = 48) -> SparsePath:
    """Lasso maps from A's standardised units to each of B's, along a decreasing λ path (warm
    started), from sufficient statistics only (``corr_aa`` of A, ``corr_ab`` of A with B)."""
    live_a = np.diag(corr_aa) > 0
    live_b = np.abs(corr_ab).sum(0) > 0
    c_aa = corr_aa.copy()
    c_aa[~live_a, :] = 0.0
    c_aa[:, ~live_a] = 0.0
    c_ab = corr_ab[:, live_b].copy()
    c_ab[~live_a, :] = 0.0
    if lambdas is None:
        lam_max = float(np.abs(c_ab).max(initial=0.0)) or 1.0
        lambdas = np.geomspace(lam_max * 0.95, lam_max * min_ratio, num_lambdas)
    step = 1.0 / max(float(np.linalg.eigvalsh(c_aa)[-1]), 1e-12)
    w = np.zeros_like(c_ab)
    errors, nonzeros, iterations, kept, kept_w, path, refits = [], [], [], None, None, [], []
    for k, lam in enumerate(lambdas):
        w, its = _lasso_fista(c_aa, c_ab, float(lam), w, step, max_iter, tol)
        errors.append(float(_prediction_error(c_aa, c_ab, w).mean()) if c_ab.shape[1] else float("nan"))
        nonzeros.append(float((w != 0).sum(0).mean()) if c_ab.shape[1] else 0.0)
        iterations.append(its)
        refits.append(_refit_error(c_aa, c_ab, w, max_refit) if c_ab.shape[1] else None)
        if keep_path:
            full_w = np.zeros((corr_ab.shape[0], corr_ab.shape[1]))
            full_w[:, live_b] = w
            path.append(full_w)
        if kept is None and nonzeros[-1] >= keep_nonzeros:
            kept, kept_w = k, w.copy()
    if kept is None:
        kept, kept_w = len(lambdas) - 1, w.copy()
    single = float((1 - (c_ab ** 2).max(0, initial=0.0)).mean()) if c_ab.shape[1] else float("nan")
    sol = np.linalg.lstsq(c_aa[np.ix_(live_a, live_a)] + 1e-9 * np.eye(live_a.sum()), c_ab[live_a], rcond=None)[0]
    w_full = np.zeros_like(c_ab)
    w_full[live_a] = sol
    full = float(_prediction_error(c_aa, c_ab, w_full).mean()) if c_ab.shape[1] else float("nan")
    weights = np.zeros((corr_ab.shape[0], corr_ab.shape[1]))
    weights[:, live_b] = kept_w
    return SparsePath(lambdas=[float(x) for x in lambdas], error=errors, nonzeros=nonzeros,
                      single_unit_error=single, full_error=max(full, 0.0), iterations=iterations, refit_error=refits,
                      kept_index=kept, weights=weights, path_weights=path if keep_path else None)


def unstandardise(weights: np.ndarray, std_a: np.ndarray, std_b: np.ndarray) -> np.ndarray:
    """Standardised map weights → weights on raw activations: ``w_raw[i, j] = w[i, j]·σ_b[j]/σ_a[i]``."""
    sa = np.where(std_a > 0, std_a, 1.0)
    return weights * std_b[None, :] / sa[:, None]


# --------------------------------------------------------------------------------------------
# Spectral clustering (many-to-many)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Comparing a pair of nets on one layer
# --------------------------------------------------------------------------------------------


@dataclass
class PairComparison:
    """Everything measured for one layer between model ``a`` and model ``b``."""

    layer: str
    model_a: str
    model_b: str
    units_a: int
    units_b: int
    samples: int
    dead_a: int
    dead_b: int
    mean_matched: float  # one-to-one, mean correlation over matched pairs
    mean_semi_matched: float  # each unit of A with its best partner in B
    strong_share: float  # share of matched pairs with correlation >= strong
    strong: float
    baseline_mean: float  # the same matching against a random rotation of B
    matched_curve: list[float]  # one-to-one matched correlations, sorted descending
    semi_curve: list[float]
    baseline_curve: list[float]
    matching: Matching
    canonical: list[float] | None = None
    mi_matched_mean: float | None = None  # nats: one-to-one matching on mutual information
    mi_matching: Matching | None = None
    mi_corr_agreement: float | None = None  # share of units whose MI partner equals the correlation partner
    sparse: SparsePath | None = None
    clusters: SpectralGroups | None = None
    correlation: np.ndarray | None = field(default=None, repr=False)  # (units_a, units_b), for plots
    correlation_aa: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        out = {}
        for key, value in self.__dict__.items():
            if key in ("correlation", "correlation_aa"):
                continue
            if isinstance(value, SparsePath):
                value = value.to_json()
            elif isinstance(value, (Matching, SpectralGroups)):
                value = asdict(value)
            out[key] = value
        return _jsonable(out)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.integer):
        return int(value)
    return value


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


# --------------------------------------------------------------------------------------------
# Models, layers, inputs
# --------------------------------------------------------------------------------------------


def list_layers(model: nn.Module) -> list[tuple[str, str]]:
    """``(module path, class name)`` for every named submodule (the root excluded)."""
    return [(name, type(module).__name__) for name, module in model.named_modules() if name]


def check_layers(model: nn.Module, layers: Sequence[str], model_name: str = "model") -> dict[str, nn.Module]:
    """The modules named ``layers``; an unknown name is a UserError listing what exists."""
    modules = dict(model.named_modules())
    found = {}
    for layer in layers:
        if layer in modules and layer:
            found[layer] = modules[layer]
            continue
        names = [n for n in modules if n]
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}; " if close else ""
        if len(names) <= 40:
            listing = f"{hint}its layers: {', '.join(names)}"
        else:
            listing = (f"{hint}it has {len(names)} layers, list them with: "
                       f"zoo-analysis match --list-layers --models {model_name}")
        raise UserError(f"{model_name} has no layer {layer!r}; {listing}")
    return found


def _input_kind(model: nn.Module) -> str:
    return getattr(model, "main_input_name", None) or "input_ids"


def load_models(names: Sequence[str], *, dtype=None, device=None, trust_remote_code=None):
    """Load each model by name (Hub id, folder, .gguf, zoo id): a causal LM where it is one
    (module paths then start with ``model.`` as in the checkpoint), else the task class the
    checkpoint was saved with, else ``AutoModel``. Tokenizers are loaded when there are any."""
    import zoo  # noqa: F401  registers the zoo architectures with the Auto classes
    from .models import load_model

    loaded = []
    for name in names:
        try:
            item = load_model(name, task="causal-lm", dtype=dtype, device=device, trust_remote_code=trust_remote_code,
                              tokenizer=True)
        except UserError as error:
            if "not a decoder language model" not in str(error) and "has no tokenizer" not in str(error):
                raise
            item = None
            for task in ("image-classification", "sequence-classification", "auto"):
                try:
                    item = load_model(name, task=task, dtype=dtype, device=device,
                                      trust_remote_code=trust_remote_code, tokenizer=task != "image-classification")
                    break
                except (UserError, ValueError, KeyError):
                    if task == "auto":
                        raise
        loaded.append(item)
    return loaded


def _check_inputs(models: Sequence[nn.Module], names: Sequence[str]) -> str:
    kinds = [_input_kind(m) for m in models]
    if len(set(kinds)) > 1:
        described = ", ".join(f"{n} takes {k}" for n, k in zip(names, kinds))
        raise UserError(f"the models take different kinds of input ({described}); "
                        "convergent learning compares models on the same inputs")
    return kinds[0]


def image_batches(data: str, split: str = "test", limit: int | None = None, batch_size: int = 256,
                  **data_kwargs) -> tuple[int, Iterator[dict]]:
    """(number of examples, iterator of ``{"pixel_values": ...}`` batches) from a zoo data set."""
    from zoo import data as zoo_data

    dataset = zoo_data.load(data, split=split, **data_kwargs)
    if "pixel_values" not in dataset.column_names:
        raise UserError(f"data set {data!r} has no pixel_values column (columns: {', '.join(dataset.column_names)})")
    total = len(dataset) if limit is None else min(limit, len(dataset))

    def batches():
        for start in range(0, total, batch_size):
            yield {"pixel_values": dataset[start:min(start + batch_size, total)]["pixel_values"]}

    return total, batches()


def text_batches(tokenizers: Sequence[Any], names: Sequence[str], source: str | None = None, num_prompts: int = 16,
                 max_tokens: int = 128, batch_size: int = 4) -> tuple[int, Iterator[dict]]:
    """Token batches from text (built-in English, a file or a datasets name) that every model
    tokenizes identically (else positions could not be aligned)."""
    from .prompts import iter_batches, load_prompts

    if tokenizers[0] is None:
        raise UserError(f"{names[0]} has no tokenizer; text inputs need one")
    prompts = load_prompts(tokenizers[0], source, num_prompts=num_prompts, max_tokens=max_tokens)
    texts = [tokenizers[0].decode(p) for p in prompts[:2]]
    for tok, name in zip(tokenizers[1:], names[1:]):
        same = tok is not None and all(
            tok(t, add_special_tokens=False)["input_ids"] == tokenizers[0](t, add_special_tokens=False)["input_ids"]
            for t in texts)
        if not same:
            raise UserError(f"{name} tokenizes the text differently from {names[0]}; unit activations can only be "
                            "compared token by token between models with the same tokenizer")
    pad = getattr(tokenizers[0], "pad_token_id", None) or 0

    def batches():
        for ids, mask in iter_batches(prompts, batch_size, pad_id=pad):
            yield {"input_ids": ids, "attention_mask": mask}

    return len(prompts), batches()


def collect_statistics(models: Sequence[nn.Module], layers: Sequence[str], batches: Iterable[dict], *,
                       names: Sequence[str] | None = None, within: bool = True, mi_bins: int = 0,
                       compute_dtype: torch.dtype = torch.float32, total: int | None = None,
                       progress: bool = True) -> tuple[dict[str, LayerStatistics], dict[str, BinnedMI]]:
    """Run every model on every batch and stream the chosen layers' units into statistics.

    Returns ``({layer: LayerStatistics}, {layer: BinnedMI})`` (the second empty unless
    ``mi_bins``). Only the current batch's activations are ever held.
    """
    from tqdm.auto import tqdm

    names = list(names or [f"model{m}" for m in range(len(models))])
    modules = [check_layers(model, layers, name) for model, name in zip(models, names)]
    current: list[dict[str, torch.Tensor]] = [dict() for _ in models]
    mask_holder: dict[str, torch.Tensor | None] = {"mask": None}

    def hook_for(m: int, layer: str):
        def hook(module, inputs, output):
            current[m][layer] = flatten_units(output, mask_holder["mask"], copy=False).detach()
        return hook

    handles = [module.register_forward_hook(hook_for(m, layer))
               for m, mods in enumerate(modules) for layer, module in mods.items()]
    stats: dict[str, LayerStatistics] = {}
    infos: dict[str, BinnedMI] = {}
    bar = tqdm(total=total, desc="correlating", unit="input", disable=not progress)
    try:
        with torch.inference_mode():
            for batch in batches:
                mask_holder["mask"] = batch.get("attention_mask")
                for m, model in enumerate(models):
                    device = next(iter(model.parameters()), torch.empty(0)).device
                    model(**{k: v.to(device) for k, v in batch.items()})
                for layer in layers:
                    acts = [current[m][layer] for m in range(len(models))]
                    if layer not in stats:
                        stats[layer] = LayerStatistics([a.shape[-1] for a in acts], within=within,
                                                       compute_dtype=compute_dtype)
                        if mi_bins:
                            infos[layer] = BinnedMI([a.shape[-1] for a in acts], bins=mi_bins)
                    stats[layer].update(acts)
                    if mi_bins:
                        infos[layer].update([a.reshape(-1, a.shape[-1]) for a in acts])
                for c in current:
                    c.clear()
                first = next(iter(batch.values()))
                bar.update(first.shape[0])
    finally:
        bar.close()
        for handle in handles:
            handle.remove()
    if not stats:
        raise UserError("no inputs: the data gave no batches")
    return stats, infos


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class ConvergentReport:
    models: list[str]
    layers: list[str]
    inputs: dict
    comparisons: list[PairComparison]
    seconds: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return _jsonable({
            "models": self.models, "layers": self.layers, "inputs": self.inputs, "seconds": self.seconds,
            "summary": self.summary_rows(),
            "comparisons": [c.to_json() for c in self.comparisons],
        })

    def summary_rows(self) -> list[dict]:
        rows = []
        for c in self.comparisons:
            row = {
                "layer": c.layer, "model_a": c.model_a, "model_b": c.model_b, "units": f"{c.units_a}x{c.units_b}",
                "mean_matched": c.mean_matched, "mean_semi_matched": c.mean_semi_matched,
                "baseline_mean": c.baseline_mean, "strong_share": c.strong_share,
                "dead": f"{c.dead_a}/{c.dead_b}",
            }
            if c.canonical:
                top = max(1, len(c.canonical) // 10)
                row["canonical_top10pct_mean"] = float(np.mean(c.canonical[:top]))
                row["canonical_mean"] = float(np.mean(c.canonical))
            if c.mi_matched_mean is not None:
                row["mi_matched_mean"] = c.mi_matched_mean
                row["mi_corr_agreement"] = c.mi_corr_agreement
            if c.sparse is not None:
                row["sparse_error_1"] = c.sparse.error_at(1.0)
                row["sparse_error_4"] = c.sparse.error_at(4.0)
                row["single_unit_error"] = c.sparse.single_unit_error
            if c.clusters is not None:
                row["mixed_groups"] = c.clusters.mixed_share
            rows.append(row)
        return rows

    def summary_markdown(self) -> str:
        def f(x):
            return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else (f"{x:.3f}" if isinstance(x, float) else str(x))

        lines = [
            "# Convergent learning: unit matching", "",
            f"Models: {', '.join(f'`{m}`' for m in self.models)}  ",
            f"Inputs: {self.inputs.get('description', '')} ({self.inputs.get('examples')} examples)  ",
            "Correlation: Pearson over all inputs (conv layers: over positions too). One-to-one: "
            "maximum-total-correlation matching; semi: each unit of A with its best partner in B; "
            "baseline: the same one-to-one matching against a random rotation of B's units; "
            f"strong: share of matched pairs with r ≥ {self.comparisons[0].strong if self.comparisons else 0.5}; "
            "canonical: mean of the top 10 % canonical correlations (shared subspace); "
            "sparse_error_4: 1 - R² of least squares on the ~4 units of A per unit of B that the lasso path picks "
            "(single_unit_error: the best single unit, i.e. semi-matching).", "",
        ]
        rows = self.summary_rows()
        keys = ["layer", "model_a", "model_b", "units", "mean_matched", "mean_semi_matched", "baseline_mean",
                "strong_share", "canonical_top10pct_mean", "mi_matched_mean", "single_unit_error", "sparse_error_4",
                "mixed_groups", "dead"]
        keys = [k for k in keys if any(k in r for r in rows)]
        lines.append("| " + " | ".join(keys) + " |")
        lines.append("|" + "---|" * len(keys))
        for r in rows:
            lines.append("| " + " | ".join(f(r.get(k)) for k in keys) + " |")
        return "\n".join(lines) + "\n"

    def plot(self, folder: str) -> list[str]:
        from .convergent_plots import plot_report

        return plot_report(self, folder)

    def write(self, out: str, plots: bool = True) -> list[str]:
        """Write results.json, summary.md and figures into ``out`` (a new or empty folder),
        assembled in a temporary sibling folder and moved into place whole."""
        out = os.path.abspath(out)
        parent = os.path.dirname(out)
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}-")
        try:
            with open(os.path.join(tmp, "results.json"), "w") as fh:
                json.dump(self.to_json(), fh, indent=1)
            with open(os.path.join(tmp, "summary.md"), "w") as fh:
                fh.write(self.summary_markdown())
            figures = self.plot(os.path.join(tmp, "figures")) if plots else []
            if os.path.isdir(out):
                os.rmdir(out)  # empty (checked before the work started)
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        files = ["results.json", "summary.md"] + [os.path.join("figures", os.path.basename(p)) for p in figures]
        return [os.path.join(out, f) for f in files]


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


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _layer_sizes(model: nn.Module, batch: dict) -> dict[str, str]:
    """Output shape of every module on one small batch (for --list-layers)."""
    shapes: dict[str, str] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(mod, inp, out, name=name):
            try:
                from .models import first_tensor

                t = first_tensor(out)
                shapes[name] = "×".join(str(s) for s in t.shape)
            except (TypeError, IndexError):
                pass
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(**batch)
    except Exception:  # a listing still helps without shapes
        pass
    finally:
        for h in handles:
            h.remove()
    return shapes


def _cli(args) -> int:
    # validate everything cheap before loading anything or touching --out
    if args.list_layers:
        if not args.models:
            raise UserError("--list-layers needs --models")
    else:
        if len(args.models) < 2:
            raise UserError("match needs at least two --models")
        if not args.layers:
            raise UserError("name the layers to compare with --layers (module paths; see --list-layers)")
        if not args.out:
            raise UserError("--out is required (a new or empty folder)")
        out = os.path.abspath(args.out)
        if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
            raise UserError(f"--out {args.out} exists and is not an empty folder")
    for option in ("batch_size", "limit", "num_prompts", "max_tokens"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UserError(f"--{option.replace('_', '-')} must be at least 1")
    if args.mi_bins and args.mi_bins < 2:
        raise UserError("--mi-bins must be at least 2")
    if not 0 < args.strong <= 1:
        raise UserError("--strong must be in (0, 1]")
    if args.data:
        from zoo import data as zoo_data

        if args.data not in zoo_data.list_datasets():
            raise UserError(f"unknown data set {args.data!r}; zoo data sets: {', '.join(zoo_data.list_datasets())}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quiet:
        import transformers

        transformers.utils.logging.disable_progress_bar()

    loaded = load_models(args.models, dtype=args.dtype, device=args.device,
                         trust_remote_code=True if args.trust_remote_code else None)
    models = [item.model for item in loaded]
    kind = _check_inputs(models, args.models)

    def make_batches(limit, batch_size):
        if kind == "pixel_values":
            if not args.data:
                from zoo import data as zoo_data

                raise UserError(f"image models need --data (one of the zoo data sets: {', '.join(zoo_data.list_datasets())})")
            total, batches = image_batches(args.data, split=args.split, limit=limit, batch_size=batch_size)
            return total, batches, {"kind": kind, "description": f"zoo data set {args.data} ({args.split} split)",
                                    "data": args.data, "split": args.split}
        if kind == "input_ids":
            total, batches = text_batches([i.tokenizer for i in loaded], args.models, args.text,
                                          num_prompts=args.num_prompts if limit is None else min(limit, args.num_prompts),
                                          max_tokens=args.max_tokens, batch_size=batch_size)
            return total, batches, {"kind": kind, "description": f"text ({args.text or 'built-in English'})",
                                    "text": args.text, "max_tokens": args.max_tokens}
        raise UserError(f"models taking {kind} are not supported yet (image pixel_values or text input_ids)")

    if args.list_layers:
        if kind == "pixel_values" and not args.data:  # shapes from the model's own dummy inputs
            dummy = getattr(models[0], "dummy_inputs", None)
            batch = {kind: dummy[kind]} if isinstance(dummy, dict) and kind in dummy else None
        else:
            _, batches, _ = make_batches(2, 2)
            try:
                batch = next(batches)
            except UserError:
                raise
            except Exception:
                batch = None
        for name, item in zip(args.models, loaded):
            shapes = _layer_sizes(item.model, batch) if batch is not None else {}
            print(f"{name} ({type(item.model).__name__}, input {kind}): layer path, module, output shape")
            for layer, cls in list_layers(item.model):
                print(f"  {layer}  {cls}  {shapes.get(layer, '')}")
        return 0

    for item, name in zip(loaded, args.models):
        check_layers(item.model, args.layers, name)
    total, batches, inputs = make_batches(args.limit, args.batch_size)
    inputs["examples"] = total
    report = compare_models(models, args.layers, batches, names=args.models, inputs=inputs, total=total,
                            mi_bins=args.mi_bins, strong=args.strong, rotations=args.rotations,
                            sparse=not args.no_sparse, clusters=0 if args.no_clusters else args.clusters,
                            seed=args.seed, progress=not args.quiet,
                            compute_dtype=torch.float64 if args.float64 else torch.float32)
    files = report.write(args.out, plots=not args.no_plots)
    print(report.summary_markdown())
    print(f"convergent-learning results written to {os.path.abspath(args.out)}:")
    for path in files:
        print(f"  {path}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "match", help="convergent learning: match units of two or more models (Li et al. 2015)",
        description="Correlate the units of the same layers of two or more models on the same inputs, in one "
                    "streaming pass, then match them one-to-one and semi-, compare with a random-rotation "
                    "baseline, predict one net's units sparsely from the other's, and cluster both nets' units.",
    )
    parser.add_argument("--models", nargs="+", default=[], help="zoo ids, Hub ids or folders (two or more)")
    parser.add_argument("--layers", nargs="+", default=[],
                        help="module paths as named_modules() gives them (the module output is the units), "
                             "e.g. layers.0.act or model.layers.0.mlp.act_fn")
    parser.add_argument("--list-layers", action="store_true", help="list the layer names the models offer and exit")
    parser.add_argument("--out", help="new or empty output folder")
    parser.add_argument("--data", help="zoo data set for image models (e.g. fashion_mnist)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="use the first N examples / prompts")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--text", help="text for language models: a file or a datasets name (default: built-in English)")
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--mi-bins", type=int, default=0, help="also match by binned mutual information with this many bins (e.g. 8)")
    parser.add_argument("--strong", type=float, default=0.5, help="correlation that counts as a strong match")
    parser.add_argument("--rotations", type=int, default=3,
                        help="random rotations averaged for the baseline (0 with --no-sparse --no-clusters: "
                             "matching only, from the cheaper cross-model statistics)")
    parser.add_argument("--clusters", type=int, default=16, help="spectral-clustering groups")
    parser.add_argument("--no-clusters", action="store_true")
    parser.add_argument("--no-sparse", action="store_true", help="skip the sparse-prediction λ path")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--float64", action="store_true", help="compute batch products in float64 (sums are always float64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default=None, help="model dtype: float32, bfloat16, float16 or auto")
    parser.add_argument("--device", default=None)
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a non-zooscope repo's own code")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_cli)
