"""Share's layer: an :class:`AdapterLayer` whose adapters are stored in a shared basis.

Per output slice the layer holds two orthonormal bases, ``basis_B`` (d_out x k) and
``basis_A`` (d_in x k), and, while a task trains, ``phi`` temporary extra vectors per side.
Each task stores only coefficients (:class:`TaskCoefficients`, k x p per side) in the
inherited ``adapters`` ModuleDict, and its update is
``(basis_B @ eps_B) @ (basis_A @ eps_A)^T``. Routing reuses the base layer's gate values:
the model opens the gate of one task at a time; a task without an open gate adds nothing.
:class:`~avalanche_litelora.lora.layer.LoRALinear` is its sibling under the same base.
"""

from __future__ import annotations

import math
import re
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from avalanche_litelora.adapters.layer import AdapterLayer, set_trainable
from avalanche_litelora.share.basis import SubspaceMerge, merge_adapters

#: The four per-slice tensors of the shared subspace, by attribute name.
SUBSPACE_TENSORS = ("basis_A", "basis_B", "extra_A", "extra_B")


def _frozen(value: Tensor) -> nn.Parameter:
    return nn.Parameter(value, requires_grad=False)


def _unit_columns(rows: int, count: int, like: Tensor) -> Tensor:
    cols = torch.randn(rows, count, dtype=like.dtype, device=like.device)
    return cols / cols.norm(dim=0, keepdim=True).clamp_min(1e-12)


class TaskCoefficients(nn.Module):
    """One task's coefficients on every output slice, ``B`` = eps_B and ``A`` = eps_A.

    Rows index basis vectors (the shared ones, then the temporary ones), columns the
    pseudo-rank. A new task starts with ``B`` zero and ``A`` random: the update is zero
    at first (as with LoRA) yet both sides get a gradient.
    """

    def __init__(self, shapes: Mapping[str, Tuple[int, int]], like: Tensor, random_a: bool = True):
        super().__init__()
        self.A = nn.ParameterDict()
        self.B = nn.ParameterDict()
        for key, (rows, width) in shapes.items():
            a = torch.zeros(rows, width, dtype=like.dtype, device=like.device)
            if random_a and rows:
                a.normal_(0.0, 1.0 / math.sqrt(rows))
            self.A[key] = nn.Parameter(a)
            self.B[key] = nn.Parameter(torch.zeros_like(a))

    def set_requires_grad(self, flag: bool) -> None:
        set_trainable(self.parameters(), flag)


class ShareLinear(AdapterLayer):
    """A frozen Linear (or 1x1 conv) whose per-task adapters live in one shared subspace.

    ``rank`` is the rank of the first adapter, trained before any basis exists. A task
    without a gate value is closed: the model routes by opening one task's gate.
    """

    missing_gate = 0.0

    def __init__(
        self,
        base: nn.Module,
        rank: int,
        out_slices: Optional[Mapping[str, Tuple[int, int]]] = None,
    ):
        super().__init__(base, rank, out_slices)
        weight = self.base.weight
        for name in SUBSPACE_TENSORS:
            setattr(self, name, nn.ParameterDict())
        for key, (start, end) in self.out_slices.items():
            self.basis_A[key] = _frozen(weight.new_zeros(self.in_features, 0))
            self.basis_B[key] = _frozen(weight.new_zeros(end - start, 0))
            self.extra_A[key] = _frozen(weight.new_zeros(self.in_features, 0))
            self.extra_B[key] = _frozen(weight.new_zeros(end - start, 0))

    # ------------------------------------------------------------ the update
    def _side(self, key: str, side: str, rows: int) -> Tensor:
        basis = getattr(self, f"basis_{side}")[key]
        extra = getattr(self, f"extra_{side}")[key]
        full = torch.cat([basis, extra], dim=1) if extra.shape[1] else basis
        return full[:, :rows]

    def _factors(self, name: str, key: str):
        coef = self.adapters[name]
        rows = coef.A[key].shape[0]
        a = (self._side(key, "A", rows) @ coef.A[key]).t()
        b = self._side(key, "B", rows) @ coef.B[key]
        return a, b, 1.0

    # ------------------------------------------------------------- growth
    def basis_size(self, key: str) -> int:
        return self.basis_A[key].shape[1]

    @property
    def temporary_vectors(self) -> int:
        return next(iter(self.extra_A.values())).shape[1]

    def add_temporary_vectors(self, count: int) -> None:
        """``count`` trainable extra basis vectors per side and slice, until the next merge."""
        if self.merged:
            raise RuntimeError("unmerge() before adding basis vectors")
        weight = self.base.weight
        for key in self.out_slices:
            self.extra_A[key] = nn.Parameter(_unit_columns(self.in_features, count, weight))
            self.extra_B[key] = nn.Parameter(_unit_columns(self.basis_B[key].shape[0], count, weight))

    def open_task(self, name: str, width: int) -> TaskCoefficients:
        """New coefficients over basis + temporary vectors, or an old task's, padded with zeros.

        Padding keeps a returning task's update exactly as it was.
        """
        if self.merged:
            raise RuntimeError("unmerge() before opening a task")
        rows = {key: self.basis_size(key) + self.temporary_vectors for key in self.out_slices}
        weight = self.base.weight
        if name not in self.adapters:
            coef = TaskCoefficients({k: (r, width) for k, r in rows.items()}, weight)
            self.adapters[name] = coef
            return coef
        coef = self.adapters[name]
        for key, r in rows.items():
            for side in (coef.A, coef.B):
                old = side[key].detach()
                pad = old.new_zeros(r - old.shape[0], old.shape[1])
                side[key] = nn.Parameter(torch.cat([old, pad], dim=0))
        return coef

    # -------------------------------------------------------------- merge
    @torch.no_grad()
    def compute_merge(
        self, *, explained_variance: Optional[float] = None, k: Optional[int] = None
    ) -> Dict[str, SubspaceMerge]:
        """Share's merge for every slice, computed but not applied (see :meth:`apply_merge`)."""
        if self.merged:
            raise RuntimeError("unmerge() before merging the subspace")
        out = {}
        for key in self.out_slices:
            adapters = []
            for name in self.adapters:
                a, b, _ = self._factors(name, key)
                adapters.append((b, a.t()))
            out[key] = merge_adapters(adapters, explained_variance=explained_variance, k=k)
        return out

    @torch.no_grad()
    def apply_merge(self, results: Mapping[str, SubspaceMerge]) -> None:
        """New bases and re-projected coefficients; the temporary vectors are dropped."""
        weight = self.base.weight
        cast = dict(dtype=weight.dtype, device=weight.device)
        for key, result in results.items():
            self.basis_A[key] = _frozen(result.basis_a.to(**cast).contiguous())
            self.basis_B[key] = _frozen(result.basis_b.to(**cast).contiguous())
            self.extra_A[key] = _frozen(weight.new_zeros(self.in_features, 0))
            self.extra_B[key] = _frozen(weight.new_zeros(self.basis_B[key].shape[0], 0))
            for name, (eps_b, eps_a) in zip(self.adapters, result.coefficients):
                self.adapters[name].A[key] = _frozen(eps_a.to(**cast).contiguous())
                self.adapters[name].B[key] = _frozen(eps_b.to(**cast).contiguous())

    # -------------------------------------------------------- persistence
    def regrow_like(self, state_dict: Mapping[str, Tensor], prefix: str) -> None:
        """Give bases, temporary vectors and tasks the shapes ``state_dict`` holds, to load it."""
        weight = self.base.weight
        for attr in SUBSPACE_TENSORS:
            store = getattr(self, attr)
            for key in self.out_slices:
                saved = state_dict.get(f"{prefix}{attr}.{key}")
                if saved is not None and saved.shape != store[key].shape:
                    store[key] = _frozen(weight.new_zeros(saved.shape))
        pattern = re.compile(re.escape(prefix) + r"adapters\.([^.]+)\.(A|B)\.([^.]+)$")
        shapes: Dict[str, Dict[str, Tuple[int, int]]] = {}
        for name, saved in state_dict.items():
            match = pattern.match(name)
            if match and match.group(2) == "A":
                shapes.setdefault(match.group(1), {})[match.group(3)] = tuple(saved.shape)
        for name in [n for n in self.adapters if n not in shapes]:
            self.delete_adapter(name)
        for name, by_key in shapes.items():
            current = self.adapters[name] if name in self.adapters else None
            if current is None or any(current.A[k].shape != s for k, s in by_key.items()):
                self.adapters[name] = TaskCoefficients(by_key, weight, random_a=False)
            self.adapters[name].set_requires_grad(False)

    def per_task_lora_parameter_count(self) -> int:
        """What one rank-``rank`` adapter of ``LoRALinear`` stores here (A, B, magnitude)."""
        return sum(
            self.rank * (self.in_features + end - start) + 1
            for start, end in self.out_slices.values()
        )

    def extra_repr(self) -> str:
        sizes = {key: self.basis_size(key) for key in self.out_slices}
        return f"first_rank={self.rank}, k={sizes}, tasks={list(self.adapters)}"
