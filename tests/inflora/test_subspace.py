"""InfLoRA's subspace math against constructed cases with a known spectrum (float64 oracles)."""

from __future__ import annotations

import math

import pytest
import torch

from avalanche_litelora.inflora.subspace import (
    LayerMemory,
    design_down_projection,
    old_space,
    threshold_for,
    update_memory,
)

D = 12


def _orthogonal(seed: int, d: int = D) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q


def _covariance(basis: torch.Tensor, eigenvalues) -> torch.Tensor:
    lam = torch.tensor(eigenvalues, dtype=torch.float64)
    return basis[:, : len(lam)] @ torch.diag(lam) @ basis[:, : len(lam)].T


def _projector(basis: torch.Tensor) -> torch.Tensor:
    return basis @ basis.T


def _oracle_first(eigenvalues, threshold: float) -> int:
    """The official first-task rule: the top directions whose cumulative squared-eigenvalue
    share is still below the threshold (its ``#+1`` is commented out), at least one."""
    energy = [v * v for v in sorted(eigenvalues, reverse=True)]
    total, running, count = sum(energy), 0.0, 0
    for e in energy:
        running += e
        if running / total < threshold:
            count += 1
    return max(count, 1)


@pytest.mark.parametrize("threshold", [0.5, 0.9, 0.95, 0.999])
def test_the_first_task_keeps_the_directions_below_the_threshold_as_the_official_code(threshold):
    q = _orthogonal(0)
    eigenvalues = [10.0, 6.0, 3.0, 1.0, 0.5]
    memory = update_memory(None, _covariance(q, eigenvalues), threshold)
    k = _oracle_first(eigenvalues, threshold)
    assert memory.kind == "remove" and memory.dim == k
    assert torch.allclose(_projector(memory.basis), _projector(q[:, :k]), atol=1e-10)


def test_a_later_task_adds_only_what_the_stored_space_misses():
    q = _orthogonal(1)
    first = update_memory(None, _covariance(q, [10.0, 1e-3]), 0.95)
    assert first.dim == 1
    # The second task lives on the stored direction (energy 4) and two new ones (3, 0.1):
    # 16 / (16 + 9 + 0.01) < 0.95, so one new direction; the weakest stays out.
    second = _covariance(q, [4.0]) + _covariance(q[:, 2:], [3.0, 0.1])
    grown = update_memory(first, second, 0.95)
    assert grown.dim == 2
    assert torch.allclose(_projector(grown.basis), _projector(q[:, [0, 2]]), atol=1e-10)
    assert torch.allclose(grown.basis.T @ grown.basis, torch.eye(2, dtype=torch.float64), atol=1e-12)
    # A task wholly inside the stored space adds nothing.
    assert update_memory(grown, _covariance(q, [5.0]), 0.95).dim == 2


def test_a_memory_wider_than_half_the_space_is_stored_as_its_complement_and_means_the_same():
    q = _orthogonal(2)
    eigenvalues = [float(10 - i) for i in range(8)]  # 8 strong directions of 12
    memory = update_memory(None, _covariance(q, eigenvalues), 0.999)
    assert memory.kind == "retain" and memory.basis.shape[1] == D - memory.dim
    assert torch.allclose(_projector(old_space(memory)), _projector(q[:, : memory.dim]), atol=1e-10)
    # Updating in complement form protects the same space as updating in stored form would.
    new = _covariance(q[:, 8:], [2.0, 1.0])
    as_removed = LayerMemory(old_space(memory), "remove")
    dual = update_memory(memory, new, 0.95)
    plain = update_memory(as_removed, new, 0.95)
    assert dual.dim == plain.dim
    assert torch.allclose(_projector(old_space(dual)), _projector(old_space(plain)), atol=1e-10)


@pytest.mark.parametrize("kind_threshold", [0.9, 0.999])
def test_the_designed_down_projection_is_orthogonal_to_the_stored_space(kind_threshold):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, D, generator=g, dtype=torch.float64) * torch.linspace(3, 0.1, D, dtype=torch.float64)
    memory = update_memory(None, x.T @ x / 200, kind_threshold)
    y = torch.randn(200, D, generator=g, dtype=torch.float64)
    a = design_down_projection(y.T @ y / 200, memory, rank=3)
    assert a.shape == (3, D)
    assert torch.linalg.vector_norm(a @ old_space(memory)) < 1e-12
    # Rows orthonormal up to InfLoRA's 1/sqrt(3)
    assert torch.allclose(a @ a.T, torch.eye(3, dtype=torch.float64) / 3, atol=1e-12)
    # Without a memory it is the representation's top directions.
    top = torch.linalg.eigh(y.T @ y / 200).eigenvectors[:, -3:]
    plain = design_down_projection(y.T @ y / 200, None, rank=3) * math.sqrt(3)
    assert torch.allclose(_projector(plain.T), _projector(top), atol=1e-8)


def test_the_threshold_goes_linearly_from_start_to_end():
    assert threshold_for(0, 10, 0.95, 1.0) == 0.95
    assert threshold_for(5, 10, 0.95, 1.0) == pytest.approx(0.975)
    assert threshold_for(10, 10, 0.95, 1.0) == pytest.approx(1.0)


def test_a_memory_round_trips_through_plain_state():
    memory = LayerMemory(_orthogonal(4)[:, :3], "remove")
    again = LayerMemory.from_state(memory.state())
    assert again.kind == "remove" and torch.equal(again.basis, memory.basis)
    with pytest.raises(ValueError, match="kind"):
        LayerMemory(memory.basis, "keep")
