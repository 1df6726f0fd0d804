"""PDE operator-learning data: Darcy flow −∇·(a∇u) = f on the unit square, zero Dirichlet boundary.

The coefficient a is a thresholded Gaussian random field (the benchmark's two values: 12 where
the field is ≥ 0, 3 elsewhere), f = 1, and u is solved by a cell-centred finite-volume
(five-point) scheme with scipy's sparse direct solver: the grid has `resolution` × `resolution`
cells of width h = 1/resolution, unknowns at the cell centres, face coefficients the harmonic
mean of the two cells (exact for a piecewise-constant a), the boundary value imposed at the
boundary face. Generated data sets are cached on disk ($ZOO_DATA_CACHE, else
~/.cache/zooscope/data), keyed by their parameters.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
from datasets import Array3D, Dataset, DatasetDict, Features, load_from_disk

from ..errors import UserError
from . import register_dataset

DARCY_VALUES = (12.0, 3.0)  # a where the random field is >= 0, and where it is < 0


def gaussian_random_field(rng: np.random.Generator, resolution: int, alpha: float = 2.0, tau: float = 3.0) -> np.ndarray:
    """A sample of N(0, (−Δ + τ²)^−α) (Neumann cosine basis) at the cell centres, (resolution, resolution)."""
    from scipy.fft import idctn

    k = np.arange(resolution)
    eigen = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha / 2)
    eigen[0, 0] = 0.0  # zero mean
    coefficients = rng.standard_normal((resolution, resolution)) * eigen
    return idctn(coefficients, type=2, norm="ortho") * resolution


def darcy_matrix(a: np.ndarray):
    """The sparse (n², n²) matrix A of −∇·(a∇·) with zero Dirichlet boundary, times h² (cell-centred)."""
    import scipy.sparse as sp

    n = a.shape[0]
    index = np.arange(n * n).reshape(n, n)
    rows, cols, vals = [], [], []
    diagonal = np.zeros((n, n))
    for axis in (0, 1):
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        face = 2 * a[tuple(lo)] * a[tuple(hi)] / (a[tuple(lo)] + a[tuple(hi)])  # harmonic mean
        diagonal[tuple(lo)] += face
        diagonal[tuple(hi)] += face
        for i, j in ((index[tuple(lo)], index[tuple(hi)]), (index[tuple(hi)], index[tuple(lo)])):
            rows.append(i.ravel()), cols.append(j.ravel()), vals.append(-face.ravel())
        # boundary faces: the boundary value sits h/2 from the centre, so the flux weight is 2a
        first, last = [slice(None)] * 2, [slice(None)] * 2
        first[axis], last[axis] = slice(0, 1), slice(-1, None)
        diagonal[tuple(first)] += 2 * a[tuple(first)]
        diagonal[tuple(last)] += 2 * a[tuple(last)]
    rows.append(index.ravel()), cols.append(index.ravel()), vals.append(diagonal.ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n))


def solve_darcy(a: np.ndarray, f: np.ndarray | float = 1.0) -> np.ndarray:
    """u at the cell centres of −∇·(a∇u) = f on (0, 1)², u = 0 on the boundary; a, f: (n, n) cell values."""
    from scipy.sparse.linalg import spsolve

    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    if a.ndim != 2 or a.shape[1] != n:
        raise UserError(f"the coefficient must be a square grid, got shape {a.shape}")
    rhs = np.broadcast_to(np.asarray(f, dtype=np.float64), (n, n)).ravel() / n**2
    return spsolve(darcy_matrix(a).tocsc(), rhs).reshape(n, n)


def manufactured_error(n: int) -> float:
    """max |u_h − u| of `solve_darcy` on an n × n grid for the manufactured solution
    u = sin(πx)sin(πy) with a = 1 + x, whose f = 2π²(1+x)sin(πx)sin(πy) − π cos(πx)sin(πy) is
    derived by hand; it falls as h² for a second-order scheme."""
    c = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(c, c, indexing="ij")
    u = np.sin(np.pi * x) * np.sin(np.pi * y)
    f = 2 * np.pi**2 * (1 + x) * u - np.pi * np.cos(np.pi * x) * np.sin(np.pi * y)
    return float(np.abs(solve_darcy(1 + x, f) - u).max())


def _cache_dir() -> Path:
    return Path(os.environ.get("ZOO_DATA_CACHE") or Path.home() / ".cache" / "zooscope" / "data")


def _generate(resolution: int, n: int, rng: np.random.Generator, desc: str) -> Dataset:
    from tqdm import tqdm

    coefficients = np.empty((n, 1, resolution, resolution), dtype=np.float32)
    solutions = np.empty_like(coefficients)
    for i in tqdm(range(n), desc=desc, leave=False):
        a = np.where(gaussian_random_field(rng, resolution) >= 0, *DARCY_VALUES)
        coefficients[i, 0] = a
        solutions[i, 0] = solve_darcy(a)
    shape = (1, resolution, resolution)
    features = Features({"pixel_values": Array3D(shape, "float32"), "labels": Array3D(shape, "float32")})
    return Dataset.from_dict({"pixel_values": coefficients, "labels": solutions}, features=features)


@register_dataset("darcy_flow")
def darcy_flow(resolution: int = 64, n_train: int = 1000, n_test: int = 200, seed: int = 0,
               cache: bool = True) -> DatasetDict:
    """Darcy flow pairs (a, u): pixel_values = a (1, r, r) ∈ {12, 3}, labels = u (1, r, r), at the
    cell centres of an r × r grid (r = `resolution`), f = 1, zero Dirichlet boundary. Seeded; cached
    on disk unless `cache` is false. A progress bar shows while samples are solved."""
    for name, value, low in (("resolution", resolution, 4), ("n_train", n_train, 1), ("n_test", n_test, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
    params = dict(resolution=resolution, n_train=n_train, n_test=n_test, seed=seed, version=1)
    folder = _cache_dir() / "darcy_flow" / hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    if cache and (folder / "dataset_dict.json").exists():
        return load_from_disk(str(folder))
    rng = np.random.default_rng(seed)
    out = DatasetDict({"train": _generate(resolution, n_train, rng, f"darcy {resolution}² train"),
                       "test": _generate(resolution, n_test, rng, f"darcy {resolution}² test")})
    if cache:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        out.save_to_disk(str(tmp))
        (tmp / "params.json").write_text(json.dumps(params))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        out = load_from_disk(str(folder))
    return out
