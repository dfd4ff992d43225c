"""The merge math on adapters built to lie in a known subspace."""

import pytest
import torch

from avalanche_litelora.share.basis import (
    balanced_factors,
    explained_variance_rank,
    merge_adapters,
    validate_basis_choice,
)


def _orthonormal(rows, cols, gen):
    q, _ = torch.linalg.qr(torch.randn(rows, cols, generator=gen, dtype=torch.float64))
    return q


def _adapters_in_subspace(k=3, d_out=20, d_in=16, widths=(4, 1, 1, 2), seed=0):
    gen = torch.Generator().manual_seed(seed)
    u, v = _orthonormal(d_out, k, gen), _orthonormal(d_in, k, gen)
    return u, v, [
        (u @ torch.randn(k, w, generator=gen, dtype=torch.float64),
         v @ torch.randn(k, w, generator=gen, dtype=torch.float64))
        for w in widths
    ]


def _rebuilt(result, i):
    eps_b, eps_a = result.coefficients[i]
    return result.basis_b @ eps_b @ eps_a.T @ result.basis_a.T


@pytest.mark.parametrize("choice", [dict(explained_variance=1.0), dict(k=3)])
def test_adapters_in_a_common_rank_k_subspace_are_rebuilt_exactly(choice):
    u, v, adapters = _adapters_in_subspace(k=3)
    result = merge_adapters(adapters, **choice)
    assert result.k == 3
    # the basis spans the true subspace on both sides
    assert torch.allclose(u @ u.T @ result.basis_b, result.basis_b, atol=1e-10)
    assert torch.allclose(v @ v.T @ result.basis_a, result.basis_a, atol=1e-10)
    for i, (b, a) in enumerate(adapters):
        assert torch.allclose(_rebuilt(result, i), b @ a.T, atol=1e-10)
        assert result.errors[i] < 1e-9 * result.norms[i]
    # widths: min(w, k), so a width-4 adapter is stored with 3 columns
    assert [c[0].shape for c in result.coefficients] == [(3, 3), (3, 1), (3, 1), (3, 2)]


def test_a_smaller_basis_loses_energy_and_says_how_much():
    _, _, adapters = _adapters_in_subspace(k=3)
    result = merge_adapters(adapters, k=1)
    assert result.k == 1
    for i, (b, a) in enumerate(adapters):
        true_error = torch.linalg.matrix_norm(b @ a.T - _rebuilt(result, i))
        assert result.errors[i] == pytest.approx(float(true_error))
    assert max(e / n for e, n in zip(result.errors, result.norms)) > 0.05


def test_fixed_k_is_capped_by_the_stack_size():
    _, _, adapters = _adapters_in_subspace(k=2, widths=(1, 1))
    assert merge_adapters(adapters, k=50).k == 2


def test_balanced_factors_keep_the_update_with_orthogonal_equal_norm_columns():
    gen = torch.Generator().manual_seed(1)
    b = torch.randn(12, 3, generator=gen, dtype=torch.float64) * 100.0
    a = torch.randn(9, 3, generator=gen, dtype=torch.float64) / 100.0
    b2, a2 = balanced_factors(b, a)
    assert torch.allclose(b2 @ a2.T, b @ a.T, atol=1e-10)
    gram_b, gram_a = b2.T @ b2, a2.T @ a2
    assert torch.allclose(gram_b, torch.diag(torch.diagonal(gram_b)), atol=1e-10)
    assert torch.allclose(gram_b, gram_a, atol=1e-10)  # same scale on both sides


def test_explained_variance_rank():
    s = torch.tensor([3.0, 2.0, 1.0, 0.0])  # energies 9, 4, 1 of 14
    assert explained_variance_rank(s, 0.6) == 1
    assert explained_variance_rank(s, 0.65) == 2
    assert explained_variance_rank(s, 0.95) == 3
    assert explained_variance_rank(s, 1.0) == 3  # never the zero direction
    assert explained_variance_rank(torch.zeros(3), 0.6) == 0


@pytest.mark.parametrize(
    "choice",
    [dict(explained_variance=0.5, k=2), dict(explained_variance=0.0), dict(explained_variance=1.5),
     dict(explained_variance=True), dict(k=0), dict(k=2.0)],
)
def test_bad_basis_choices_are_refused(choice):
    with pytest.raises(ValueError):
        validate_basis_choice(choice.get("explained_variance"), choice.get("k"))
