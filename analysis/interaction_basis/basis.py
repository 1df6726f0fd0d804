"""The interaction basis of one layer, and the two bases it is compared with, as pure functions of
float64 matrices (Bushnaq et al. 2024, "Using Degeneracy in the Loss Landscape for Mechanistic
Interpretability", the interaction basis; its reference implementation is ApolloResearch/rib).

A layer's activations f (d units) on the data have the (uncentred) Gram matrix G = E[f fᵀ]; the
gradients it passes back are the Jacobians J = ∂f̂⁺/∂f of the next layer's basis coordinates f̂⁺,
with M = E[Jᵀ J]. Two kinds of degeneracy leave the network's function unchanged:

1. linear dependence between activations: directions u with uᵀ G u = 0 never vary on the data;
2. linear dependence between gradients: directions the next layer does not respond to (Mv = 0).

The construction, every eigendecomposition in float64:

- G = U D Uᵀ; keep the eigenvalues D above ``rtol``·max D (drops degeneracy 1);
- whiten: f' = D^{-1/2} Uᵀ f, in which coordinates the gradient Gram is M' = D^{1/2} Uᵀ M U D^{1/2};
- M' = V Λ Vᵀ; keep Λ above ``rtol``·max Λ (drops degeneracy 2);
- f̂ = Cᵀ f with C = U D^{-1/2} V Λ^{1/2} (d × k). Then E[f̂ f̂ᵀ] = Λ (the coordinates are
  uncorrelated, direction i carries variance Λᵢ) and E[(∂f̂⁺/∂f̂)ᵀ(∂f̂⁺/∂f̂)] = I: every direction
  is equally sensitive, so Λᵢ alone is its importance to the next layer.

``C_pinv`` = Λ^{-1/2} Vᵀ D^{1/2} Uᵀ (k × d) is the left inverse on the kept subspace
(C_pinv C = I_k); ``C_pinv.T @ f̂`` reconstructs the part of f the next layer sees. The last
layer of a chain has no gradients: its basis is the Gram eigenbasis (as the reference does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError

__all__ = ["LayerBasis", "eigh_descending", "gram_eigenbasis", "interaction_rotation", "neuron_basis",
           "DEFAULT_RTOL"]

DEFAULT_RTOL = 1e-10  # float64 eigenvalues of a float32 network's statistics: noise sits far below


@dataclass
class LayerBasis:
    """A basis of a layer's activations: coordinates f̂ = Cᵀ f, reconstruction f ≈ C_pinvᵀ f̂."""

    kind: str  # "interaction", "pca" or "neuron"
    C: np.ndarray  # (d, k)
    C_pinv: np.ndarray  # (k, d)
    importance: np.ndarray  # (k,): Λ (interaction, descending), D (pca, descending), E[f²] (neuron)
    width: int  # d
    kept_activations: int  # directions left after dropping linear dependence of activations
    gram_eigenvalues: np.ndarray | None = None  # all of D, descending
    gradient_eigenvalues: np.ndarray | None = None  # all of Λ, descending (interaction only)

    @property
    def size(self) -> int:
        return int(self.C.shape[1])


def eigh_descending(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors of a symmetric matrix, in float64."""
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise UserError(f"expected a square matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise UserError("the layer statistics are not finite (the model produced inf or nan)")
    values, vectors = np.linalg.eigh((a + a.T) / 2)
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


def _kept(values: np.ndarray, rtol: float) -> int:
    top = values[0] if len(values) else 0.0
    if top <= 0:
        return 0
    return int(np.sum(values > rtol * top))


def gram_eigenbasis(gram: np.ndarray, rtol: float = DEFAULT_RTOL) -> LayerBasis:
    """The Gram eigenbasis (PCA of the uncentred second moment, as the reference's baseline):
    the eigenvectors with eigenvalues above ``rtol``·max, a rotation (C_pinv = Cᵀ)."""
    values, vectors = eigh_descending(gram)
    k = _kept(values, rtol)
    if k == 0:
        raise UserError("the layer's activations are all zero on the data: no basis to compute")
    U = vectors[:, :k]
    return LayerBasis("pca", U, U.T.copy(), values[:k].copy(), width=len(values), kept_activations=k,
                      gram_eigenvalues=values)


def interaction_rotation(gram: np.ndarray, gradient_gram: np.ndarray, rtol: float = DEFAULT_RTOL) -> LayerBasis:
    """The interaction basis from G = E[f fᵀ] and M = E[Jᵀ J] (both d × d, see the module text)."""
    G = np.asarray(gram, dtype=np.float64)
    M = np.asarray(gradient_gram, dtype=np.float64)
    if G.shape != M.shape:
        raise UserError(f"activation Gram {G.shape} and gradient Gram {M.shape} differ in shape")
    D, U = eigh_descending(G)
    k1 = _kept(D, rtol)
    if k1 == 0:
        raise UserError("the layer's activations are all zero on the data: no basis to compute")
    U1, D1 = U[:, :k1], D[:k1]
    S = U1 * np.sqrt(D1)  # U D^{1/2}
    Lam, V = eigh_descending(S.T @ M @ S)
    k2 = _kept(Lam, rtol)
    if k2 == 0:
        raise UserError("no direction of the layer changes the next layer (the gradients are all zero)")
    V2, L2 = V[:, :k2], Lam[:k2]
    C = (U1 / np.sqrt(D1)) @ V2 * np.sqrt(L2)
    C_pinv = (V2 / np.sqrt(L2)).T @ S.T
    return LayerBasis("interaction", C, C_pinv, L2.copy(), width=len(D), kept_activations=k1,
                      gram_eigenvalues=D, gradient_eigenvalues=Lam)


def neuron_basis(gram: np.ndarray) -> LayerBasis:
    """The units themselves (C = I), importance E[fᵢ²]."""
    G = np.asarray(gram, dtype=np.float64)
    d = G.shape[0]
    eye = np.eye(d)
    return LayerBasis("neuron", eye, eye.copy(), np.diag(G).copy(), width=d, kept_activations=d)
