"""The adapter bank's stacked forward: every adapter of a layer at a cost flat in their number.

A layer's bank (all adapters whose own factors do not train: the frozen ones, and a
candidate during its selection phase) is gathered into one ``A`` (sum of ranks x d_in,
every output slice's rows one after the other), one ``B`` per slice and one scale per rank
column (gate x magnitude / norm). Two equivalent forms compute its update:

``"lowrank"``
    ``x @ A^T``, scale each column, ``@ B^T`` per slice: two matmuls whatever the bank's size.
``"dense"``
    fold the bank into the weight, ``W + B diag(s) A`` per slice, and run the base layer
    once: the bare layer's cost plus building the fold. Gradients still reach the scales
    (SD-LoRA re-weighting of past magnitudes, a gate under selection) through the fold,
    at the price of one weight-gradient matmul.

:func:`choose_form` picks the cheaper one from the shapes (multiply-adds of each, with the
memory traffic of the fold counted). The stacks are rebuilt from the parameters at every
forward pass with one ``torch.cat`` each, so no second copy of the bank is stored, nothing
goes stale when the bank changes, and nothing reaches the state dict.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

#: The forms :func:`choose_form` chooses between (``LoRALinear.bank_form`` may force one).
BANK_FORMS = ("lowrank", "dense")

#: Cost of one element of memory traffic (the fold's copy of the weight) in multiply-adds,
#: and the slowdown of the thin matmuls of the low-rank form against the base layer's
#: matmul; calibrated on a 2-core CPU with ``benchmarks/bank_scaling.py``.
MEMORY_COST = 8.0
THIN_MATMUL_COST = 1.5


@dataclass
class StackedBank:
    """A bank's factors in stacked form.

    ``a``: every slice's ``A`` rows, slice after slice (``sum(ranks) x d_in``);
    ``b``: one ``width x rank`` per slice; ``scale``: one value per row of ``a``;
    ``slices``: the ``(start, end)`` output range of each slice; ``ranks``: rows per slice.
    """

    a: Tensor
    b: List[Tensor]
    scale: Tensor
    slices: List[Tuple[int, int]]
    ranks: List[int]

    def parts(self):
        """``(start, end), A rows, B, scale`` of each slice (views into the stacks)."""
        offset = 0
        for bounds, rank, b in zip(self.slices, self.ranks, self.b):
            yield bounds, self.a[offset:offset + rank], b, self.scale[offset:offset + rank]
            offset += rank

    @property
    def requires_grad(self) -> bool:
        return self.scale.requires_grad or self.a.requires_grad or any(b.requires_grad for b in self.b)


def is_closed(beta) -> bool:
    """A gate value known, without a device synchronisation, to be exactly zero.

    A gate that carries a gradient (a candidate under selection) is never closed: its
    straight-through gradient must flow. On an accelerator a gate tensor is not read back;
    a closed one then multiplies its adapter's columns by zero, which adds exactly nothing.
    """
    if isinstance(beta, numbers.Number):
        return float(beta) == 0.0
    if beta.requires_grad or beta.device.type != "cpu":
        return False
    return float(beta) == 0.0


def as_vector(values: Sequence, like: Tensor) -> Tensor:
    """Gate values (numbers or 0-d tensors) as one tensor of ``like``'s dtype and device."""
    if all(isinstance(v, numbers.Number) for v in values):
        return like.new_tensor([float(v) for v in values])
    items = [v if torch.is_tensor(v) else like.new_tensor(float(v)) for v in values]
    return torch.stack([v.reshape(()) for v in items]).to(dtype=like.dtype)


def stack_factors(factors: Sequence[Sequence[Tuple[Tensor, Tensor, object]]], gates: Tensor,
                  slices: Sequence[Tuple[int, int]], like: Tensor) -> StackedBank:
    """Stack per-adapter ``(A, B, scale)`` triples: ``factors[slice][adapter]``.

    The generic path, for layers that define ``_factors`` their own way (Share's basis):
    adapters may differ in rank, scales may be numbers.
    """
    a_rows, bs, scales, ranks = [], [], [], []
    for per_adapter in factors:
        for (a, _, scale), gate in zip(per_adapter, gates.unbind(0)):
            a_rows.append(a)
            value = gate * (scale if torch.is_tensor(scale) else like.new_tensor(float(scale)))
            scales.append(value.reshape(1).expand(a.shape[0]))
        b_parts = [b for _, b, _ in per_adapter]
        bs.append(b_parts[0] if len(b_parts) == 1 else torch.cat(b_parts, dim=1))
        ranks.append(sum(a.shape[0] for a, _, _ in per_adapter))
    a_all = a_rows[0] if len(a_rows) == 1 else torch.cat(a_rows, dim=0)
    return StackedBank(a_all, bs, torch.cat(scales), list(slices), ranks)


def stack_lora_adapters(adapters, keys: Sequence[str], gates: Tensor,
                        slices: Sequence[Tuple[int, int]], rank: int) -> StackedBank:
    """:class:`LowRankAdapter` s stacked with one kernel per quantity, not one per adapter.

    The same arithmetic as ``LowRankAdapter.scale`` (gate x magnitude, over ``||B|| ||A||``
    once in direction form), vectorised over the adapters.
    """
    n = len(adapters)
    normalized = torch.stack([ad.normalized for ad in adapters])
    a_all = torch.cat([ad.A[key] for key in keys for ad in adapters], dim=0)
    bs, scales = [], []
    for index, key in enumerate(keys):
        b = torch.cat([ad.B[key] for ad in adapters], dim=1) if n > 1 else adapters[0].B[key]
        a = a_all[index * n * rank:(index + 1) * n * rank]
        norm = torch.linalg.vector_norm(a.reshape(n, -1), dim=1) * torch.linalg.vector_norm(
            b.reshape(b.shape[0], n, rank), dim=(0, 2))
        magnitude = torch.stack([ad.magnitude[key] for ad in adapters])
        tiny = torch.finfo(norm.dtype).tiny
        scale = torch.where(normalized, magnitude / norm.clamp_min(tiny), magnitude)
        bs.append(b)
        scales.append((gates * scale).repeat_interleave(rank))
    return StackedBank(a_all, bs, torch.cat(scales), list(slices), [n * rank] * len(keys))


def choose_form(bank: StackedBank, rows: int, in_features: int, out_features: int,
                x_requires_grad: bool) -> str:
    """The cheaper form for ``rows`` input rows (tokens, or pixels of a 1x1 conv).

    Multiply-adds, forward and backward: the low-rank form pays two thin matmuls per row
    (again in the backward pass when anything upstream needs a gradient); the fold pays
    its construction, a copy of the weight, and, when the bank's scales train, the weight
    gradient of the folded layer.
    """
    grad = torch.is_grad_enabled()
    bank_grad = grad and bank.requires_grad
    passes = 2 if (bank_grad or (grad and x_requires_grad)) else 1
    per_row = sum(r * (in_features + end - start) for (start, end), r in zip(bank.slices, bank.ranks))
    lowrank = THIN_MATMUL_COST * passes * rows * per_row
    build = sum(r * in_features * (end - start) for (start, end), r in zip(bank.slices, bank.ranks))
    dense = (3 if bank_grad else 1) * build + MEMORY_COST * out_features * in_features
    if bank_grad:
        dense += rows * in_features * out_features
    return "dense" if dense < lowrank else "lowrank"


def add_lowrank(out: Tensor, x: Tensor, bank: StackedBank, conv_stride=None) -> None:
    """``out[slice] += (x A^T * s) B^T`` for every slice: one matmul for A, one per slice for B."""
    scale = bank.scale
    if scale.requires_grad:  # scale the activations: the scales get their gradient from them
        a = bank.a
    else:  # constant scales: fold them into A's rows, far smaller than the activations
        a, scale = bank.a * scale[:, None], None
    if conv_stride is not None:  # channels are dim 1; A takes the base layer's stride
        hidden = F.conv2d(x, a[:, :, None, None], stride=conv_stride)
        if scale is not None:
            hidden = hidden * scale[:, None, None]
    else:
        hidden = x @ a.t()
        if scale is not None:
            hidden = hidden * scale
    offset = 0
    for (start, end), rank, b in zip(bank.slices, bank.ranks, bank.b):
        if conv_stride is not None:
            out[:, start:end] += F.conv2d(hidden[:, offset:offset + rank], b[:, :, None, None])
        else:
            out[..., start:end] += hidden[..., offset:offset + rank] @ b.t()
        offset += rank


def folded_weight(weight: Tensor, bank: StackedBank) -> Tensor:
    """``W`` with ``B diag(s) A`` added to each slice's rows (``weight`` as out x in)."""
    pieces, position = [], 0
    for (start, end), a, b, scale in sorted(bank.parts(), key=lambda part: part[0][0]):
        if start > position:
            pieces.append(weight[position:start])
        pieces.append(torch.addmm(weight[start:end], b * scale, a))
        position = end
    if position < weight.shape[0]:
        pieces.append(weight[position:])
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)


def rows_of(x: Tensor, in_features: int, conv_stride: Optional[Tuple[int, int]]) -> int:
    """Input rows one matmul of the layer processes: tokens, or output pixels of a 1x1 conv."""
    if conv_stride is None:
        return x.numel() // max(in_features, 1)
    height = -(-x.shape[-2] // conv_stride[0])
    width = -(-x.shape[-1] // conv_stride[1])
    return (x.numel() // max(in_features * x.shape[-2] * x.shape[-1], 1)) * height * width
