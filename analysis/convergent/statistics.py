"""Streaming statistics of the units of one layer in several models: float64 running first and
second moments (within- and cross-model Gram matrices) and binned joint histograms for mutual
information. Pure tensor code: the activations come in, nothing is kept beyond the batch."""
from __future__ import annotations

import functools
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..errors import UserError

__all__ = ["flatten_units", "LayerStatistics", "BinnedMI"]


def flatten_units(output: Any, mask: torch.Tensor | None = None, copy: bool = True) -> torch.Tensor:
    """A module output as ``(samples, units)``: ``(N, D)`` stays; ``(N, C, H, W)`` gives one
    sample per position of ``C`` channel units; ``(B, T, D)`` one sample per token (those where
    ``mask`` is nonzero, if a ``(B, T)`` mask is given). ``copy=False`` returns a convolutional
    output as the unit-last view ``(N, H, W, C)`` instead (no copy; ``LayerStatistics.update``
    takes it and centres it in one pass)."""
    from ..models import first_tensor

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
