"""The pure math of Share's merge: SVD of stacked adapters, choice of k, re-projection.

No modules, no state: every function takes factor matrices and returns new ones, so the
merge can be tested on adapters built to lie in a known subspace. Adapters are given as
pairs ``(b, a)`` with update ``b @ a.T`` (``b``: d_out x w, ``a``: d_in x w).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from avalanche_litelora.checks import check_count, is_finite

Factors = Tuple[Tensor, Tensor]


def validate_basis_choice(explained_variance: Optional[float], k: Optional[int]) -> None:
    """Exactly one of a threshold in (0, 1] or a fixed positive k (``None`` for both: 0.6)."""
    if explained_variance is not None and k is not None:
        raise ValueError("give either explained_variance or a fixed k, not both")
    if explained_variance is not None:
        if not is_finite(explained_variance) or not 0.0 < float(explained_variance) <= 1.0:
            raise ValueError(f"explained_variance must be in (0, 1], got {explained_variance!r}")
    if k is not None:
        check_count("k", k)


def balanced_factors(b: Tensor, a: Tensor) -> Factors:
    """The same update ``b @ a.T`` with orthogonal, norm-balanced columns.

    ``b a^T = U S V^T`` is refactored as ``(U sqrt(S), V sqrt(S))``: LoRA's factors carry an
    arbitrary scale (``b c``, ``a / c``), and stacking them as they are would let that
    scale, not the update, decide the shared basis. The width shrinks to the update's
    possible rank ``min(w, d_out, d_in)``; no information is lost.
    """
    q_b, r_b = torch.linalg.qr(b)
    q_a, r_a = torch.linalg.qr(a)
    u, s, vh = torch.linalg.svd(r_b @ r_a.T, full_matrices=False)
    root = s.clamp_min(0).sqrt()
    return (q_b @ u) * root, (q_a @ vh.T) * root


def explained_variance_rank(singular_values: Tensor, threshold: float) -> int:
    """Smallest k whose top-k singular values hold ``threshold`` of the squared total.

    Never more than the numerical rank (singular values above float32 round-off of the
    largest), so ``threshold=1.0`` gives the true rank rather than noise directions.
    """
    energy = singular_values.double().square()
    total = float(energy.sum())
    if total == 0.0:
        return 0
    numerical_rank = int((singular_values > singular_values.max() * 1e-6).sum())
    cumulative = energy.cumsum(0) / total
    reached = int((cumulative < threshold - 1e-9).sum()) + 1
    return min(reached, numerical_rank)


@dataclass
class SubspaceMerge:
    """Result of one merge for one layer slice."""

    basis_b: Tensor  #: d_out x k, orthonormal columns
    basis_a: Tensor  #: d_in x k, orthonormal columns
    coefficients: List[Factors]  #: per adapter, (eps_b, eps_a), each k x w'
    errors: List[float]  #: per adapter, ||b a^T - basis_b eps_b eps_a^T basis_a^T||_F
    norms: List[float]  #: per adapter, ||b a^T||_F before the merge
    k: int


def merge_adapters(
    adapters: Sequence[Factors],
    *,
    explained_variance: Optional[float] = None,
    k: Optional[int] = None,
) -> SubspaceMerge:
    """Share's merge: one shared basis per side from the SVD of all adapters, re-projected.

    The balanced factors of every adapter are stacked side by side (B sides together,
    A sides together) and each stack is decomposed by SVD, without mean-centring (the
    update must be a linear combination of the basis, with no stored mean). One ``k``
    serves both sides: the larger of the two sides' threshold ranks, or the fixed ``k``
    (capped by the stack's size). Each adapter's coefficients are its projection onto the
    basis, ``basis_b^T b`` and ``basis_a^T a``, refactored to width ``min(w, k)``.
    Computed in float64; the caller casts back.
    """
    validate_basis_choice(explained_variance, k)
    if not adapters:
        raise ValueError("merge_adapters needs at least one adapter")
    threshold = 0.6 if explained_variance is None and k is None else explained_variance
    pairs = [balanced_factors(b.double(), a.double()) for b, a in adapters]
    stack_b = torch.cat([b for b, _ in pairs], dim=1)
    stack_a = torch.cat([a for _, a in pairs], dim=1)
    u_b, s_b, _ = torch.linalg.svd(stack_b, full_matrices=False)
    u_a, s_a, _ = torch.linalg.svd(stack_a, full_matrices=False)
    most = min(u_b.shape[1], u_a.shape[1])
    if k is not None:
        size = min(k, most)
    else:
        size = min(max(explained_variance_rank(s_b, threshold),
                       explained_variance_rank(s_a, threshold)), most)
    basis_b, basis_a = u_b[:, :size], u_a[:, :size]
    coefficients, errors, norms = [], [], []
    for b, a in pairs:
        delta = b @ a.T
        eps_b, eps_a = basis_b.T @ b, basis_a.T @ a
        if size:
            eps_b, eps_a = balanced_factors(eps_b, eps_a)
        else:
            eps_b = eps_a = b.new_zeros(0, 0)
        rebuilt = basis_b @ eps_b @ eps_a.T @ basis_a.T
        coefficients.append((eps_b, eps_a))
        errors.append(float(torch.linalg.matrix_norm(delta - rebuilt)))
        norms.append(float(torch.linalg.matrix_norm(delta)))
    return SubspaceMerge(basis_b, basis_a, coefficients, errors, norms, size)
