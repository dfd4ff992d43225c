"""InfLoRA's subspace math: the designed down-projection and the DualGPM memory, in float64.

Stateless functions on plain tensors, so each step can be checked against a constructed case.
The inputs are the *input representations* of one adapted layer, as InfLoRA's official code
collects them: the mean of ``x x^T`` over every token (row) of a task's training data, a
``d x d`` matrix (``models/vit_inflora.py`` L236-238 of liangyanshuo/InfLoRA).

The memory of one layer (:class:`LayerMemory`) is DualGPM's: an orthonormal basis stored in
whichever form is smaller. ``"remove"``: the basis spans the earlier tasks' input space
(``M``, projected *out* of a new task's representations); ``"retain"``: it spans the
complement, the space still free (``P``, projected *onto*). Both describe the same old
space; :func:`old_space` gives ``M`` either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

#: The memory's two forms (DualGPM's ``project_type``).
KINDS = ("remove", "retain")

#: InfLoRA initialises the designed ``A`` with the top singular vectors divided by sqrt(3)
#: (``methods/inflora.py`` L127-128 and L154-155).
DESIGN_SCALE = 1.0 / math.sqrt(3.0)


@dataclass
class LayerMemory:
    """One layer's stored subspace: an orthonormal ``d x k`` basis and its form (see module doc)."""

    basis: Tensor
    kind: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"a memory's kind is one of {KINDS}, got {self.kind!r}")
        self.basis = self.basis.to(torch.float64)

    @property
    def dim(self) -> int:
        """Dimension of the earlier tasks' input space this memory protects."""
        d, k = self.basis.shape
        return k if self.kind == "remove" else d - k

    def state(self) -> dict:
        """Plain data for a checkpoint."""
        return {"basis": self.basis.clone(), "kind": self.kind}

    @classmethod
    def from_state(cls, state: dict) -> "LayerMemory":
        return cls(state["basis"].clone(), state["kind"])


def _as64(matrix: Tensor) -> Tensor:
    return matrix.detach().to(device="cpu", dtype=torch.float64)


def free_part(representation: Tensor, memory: Optional[LayerMemory]) -> Tensor:
    """``(I - M M^T) R``: the part of a task's representation outside the earlier tasks' space.

    In ``"retain"`` form that is ``P P^T R`` (``methods/inflora.py`` L148-152).
    """
    r = _as64(representation)
    if memory is None:
        return r
    basis = memory.basis
    projected = basis @ (basis.T @ r)
    return r - projected if memory.kind == "remove" else projected


def design_down_projection(representation: Tensor, memory: Optional[LayerMemory], rank: int) -> Tensor:
    """InfLoRA's ``A_t`` (``rank x d``): the top left singular vectors of the free part, / sqrt(3).

    Its rows lie in the orthogonal complement of the stored space (up to the free part's
    null space when it has fewer than ``rank`` directions, as in the official code), so
    ``B_t A_t`` maps every earlier task's stored input to zero whatever ``B_t`` learns.
    """
    u, _, _ = torch.linalg.svd(free_part(representation, memory), full_matrices=False)
    return u[:, :rank].T * DESIGN_SCALE


def _energy(matrix: Tensor) -> Tensor:
    """Squared singular values: DualGPM's energy, here of the covariance as the official code."""
    return torch.linalg.svdvals(matrix) ** 2


def _first_task(representation: Tensor, threshold: float) -> LayerMemory:
    """Keep the top directions whose cumulative energy share is still below ``threshold``.

    ``methods/inflora.py`` L325-338: ``r = sum(cumsum(ratio) < threshold)`` with its ``+1``
    commented out, so one direction fewer than reaching the threshold (at least one), where
    the later tasks' rule (:func:`_grow_removed`) adds until the threshold is reached.
    """
    u, s, _ = torch.linalg.svd(representation, full_matrices=False)
    energy = s ** 2
    ratio = energy / energy.sum()
    r = int((torch.cumsum(ratio, 0) < threshold).sum())
    return LayerMemory(u[:, :max(r, 1)], "remove")


def _grow_removed(memory: LayerMemory, representation: Tensor, threshold: float) -> LayerMemory:
    """Add the new directions that bring the captured energy up to ``threshold`` (L340-368)."""
    total = _energy(representation).sum()
    residual = free_part(representation, memory)
    u, s, _ = torch.linalg.svd(residual, full_matrices=False)
    ratio = (s ** 2) / total
    captured = float((total - (s ** 2).sum()) / total)
    r = 0
    for share in ratio.tolist():
        if captured >= threshold:
            break
        captured += share
        r += 1
    if r == 0:
        return memory
    grown = torch.cat([memory.basis, u[:, :r]], dim=1)
    return LayerMemory(grown[:, : grown.shape[0]], "remove")


def _shrink_free(memory: LayerMemory, representation: Tensor, threshold: float) -> LayerMemory:
    """Remove from the free basis the directions the new task needs protected (L369-396)."""
    total = _energy(representation).sum()
    in_free = free_part(representation, memory)
    u, s, _ = torch.linalg.svd(in_free, full_matrices=False)
    ratio = (s ** 2) / total
    remaining = float((s ** 2).sum() / total)
    r = 0
    for share in ratio.tolist():
        if remaining < 1.0 - threshold:
            break
        remaining -= share
        r += 1
    if r == 0:
        return memory
    taken = u[:, :r]
    left = memory.basis - taken @ (taken.T @ memory.basis)
    u_left, _, _ = torch.linalg.svd(left, full_matrices=True)
    return LayerMemory(u_left[:, : memory.basis.shape[1] - r], "retain")


def _smaller_form(memory: LayerMemory) -> LayerMemory:
    """Switch a ``"remove"`` basis wider than ``d / 2`` to its complement (L401-408)."""
    d, k = memory.basis.shape
    if memory.kind == "remove" and k > d / 2:
        u, _, _ = torch.linalg.svd(memory.basis, full_matrices=True)
        return LayerMemory(u[:, k:], "retain")
    return memory


def update_memory(memory: Optional[LayerMemory], representation: Tensor, threshold: float) -> LayerMemory:
    """DualGPM's update after a task (``update_DualGPM``, ``methods/inflora.py`` L321-412).

    ``representation``: the layer's ``x x^T`` on the finished task's data, collected with
    the trained adapter. The memory grows until it holds ``threshold`` of the task's energy.
    The first task's memory is stored as ``"remove"`` and switched by the size rule: the
    official first-task ``"retain"`` branch (L336-338) keeps the *old-space* basis under the
    ``"retain"`` label, which its own assertion (L410) rejects whenever it is taken.
    """
    r = _as64(representation)
    if memory is None:
        updated = _first_task(r, threshold)
    elif memory.kind == "remove":
        updated = _grow_removed(memory, r, threshold)
    else:
        updated = _shrink_free(memory, r, threshold)
    return _smaller_form(updated)


def old_space(memory: LayerMemory) -> Tensor:
    """An orthonormal basis ``M`` (``d x k``) of the earlier tasks' input space, either form."""
    if memory.kind == "remove":
        return memory.basis
    d, k = memory.basis.shape
    u, _, _ = torch.linalg.svd(memory.basis, full_matrices=True)
    return u[:, k:]


def threshold_for(task: int, total_tasks: int, start: float, end: float) -> float:
    """The threshold of task ``task`` (0-based), linear from ``start`` to ``end`` (L322).

    ``(end - start) * task / total_tasks + start``: the official ``lamb`` and ``lame``.
    """
    return (end - start) * task / total_tasks + start


def memory_dimensions(memory: Dict[str, LayerMemory]) -> Dict[str, int]:
    """Per layer, the dimension of the protected input space (a read-out)."""
    return {name: m.dim for name, m in memory.items()}
