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

#: The forms :func:`choose_form` chooses between (``AdapterLayer.bank_form`` may force one).
BANK_FORMS = ("lowrank", "dense")

#: Cost of one element of memory traffic (the fold's copy of the weight) in multiply-adds,
#: and the slowdown of a single adapter's rank-r matmuls (a few columns wide: far below
#: the machine's matmul throughput, where a stacked bank's hundreds of columns are not);
#: calibrated on a 2-core CPU on the ViT-small28 and ViT-B/16 shapes.
MEMORY_COST = 8.0
THIN_MATMUL_COST = 4.0


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
    """Gate values as one tensor of ``like``'s dtype and device: ``(adapters,)`` for numbers
    and 0-d tensors, ``(slices, adapters)`` when one holds a value per output slice (a
    per-call gate sample)."""
    if all(isinstance(v, numbers.Number) for v in values):
        return like.new_tensor([float(v) for v in values])
    items = [v if torch.is_tensor(v) else like.new_tensor(float(v)) for v in values]
    width = max(v.numel() for v in items)
    if width > 1:
        return torch.stack([v.reshape(-1).expand(width) for v in items], dim=1).to(dtype=like.dtype)
    return torch.stack([v.reshape(()) for v in items]).to(dtype=like.dtype)


def slice_gate(gate, index: int):
    """One adapter's gate on output slice ``index``: a per-slice gate's entry, else itself."""
    return gate[index] if torch.is_tensor(gate) and gate.dim() > 0 else gate


def stack_factors(factors: Sequence[Sequence[Tuple[Tensor, Tensor, object]]], gates: Tensor,
                  slices: Sequence[Tuple[int, int]], like: Tensor) -> StackedBank:
    """Stack per-adapter ``(A, B, scale)`` triples: ``factors[slice][adapter]``.

    The generic path, for layers that define ``_factors`` their own way (Share's basis):
    adapters may differ in rank, scales may be numbers.
    """
    a_rows, bs, scales, ranks = [], [], [], []
    for index, per_adapter in enumerate(factors):
        for (a, _, scale), gate in zip(per_adapter, (gates[index] if gates.dim() == 2 else gates).unbind(0)):
            a_rows.append(a)
            value = gate * (scale if torch.is_tensor(scale) else like.new_tensor(float(scale)))
            scales.append(value.reshape(1).expand(a.shape[0]))
        b_parts = [b for _, b, _ in per_adapter]
        bs.append(b_parts[0] if len(b_parts) == 1 else torch.cat(b_parts, dim=1))
        ranks.append(sum(a.shape[0] for a, _, _ in per_adapter))
    a_all = a_rows[0] if len(a_rows) == 1 else torch.cat(a_rows, dim=0)
    return StackedBank(a_all, bs, torch.cat(scales), list(slices), ranks)


def choose_form(slices: Sequence[Tuple[int, int]], frozen_rank: int, trained_rank: int, rows: int,
                in_features: int, out_features: int, *, frozen_grad: bool, x_grad: bool) -> str:
    """The cheaper form for ``rows`` input rows (tokens, or output pixels of a 1x1 conv).

    ``frozen_rank`` / ``trained_rank``: rank columns per slice of the stacked adapters and of
    those whose own factors train. Counted in multiply-adds, forward and backward: the
    low-rank form pays thin matmuls per row (again backward when anything upstream needs a
    gradient); the fold pays its construction (again backward), a copy of the weight and,
    when anything folded trains, the weight gradient of the adapted rows.
    """
    grad = torch.is_grad_enabled()
    widths = sum(end - start for start, end in slices)
    rank = frozen_rank + trained_rank
    passes = 2 if grad and (frozen_grad or trained_rank or x_grad) else 1
    per_column = passes * rows * (len(slices) * in_features + widths)
    lowrank = per_column * (frozen_rank + THIN_MATMUL_COST * trained_rank)
    folded_grad = grad and (frozen_grad or trained_rank > 0)
    dense = (2 if folded_grad else 1) * rank * in_features * widths
    dense += MEMORY_COST * out_features * in_features
    if folded_grad:
        dense += rows * in_features * widths
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


class _FoldedLinear(torch.autograd.Function):
    """``x @ (W + scatter(deltas))^T + bias`` whose weight gradient covers the adapted rows only.

    The folded weight's gradient is what reaches the scales; autograd through
    ``F.linear`` would also compute it for the rows no adapter touches (the k third of a
    fused qkv), which nothing needs.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, slices, *deltas):
        folded = weight.clone()
        for (start, end), delta in zip(slices, deltas):
            folded[start:end] += delta
        ctx.slices = slices
        ctx.save_for_backward(x, folded)
        return F.linear(x, folded, bias)

    @staticmethod
    def backward(ctx, grad):
        x, folded = ctx.saved_tensors
        # Under autocast the forward's matmul ran (and the gradient arrives) in the autocast
        # dtype: compute in it too; autograd casts each gradient back to its input's dtype.
        grad_x = grad @ folded.to(grad.dtype) if ctx.needs_input_grad[0] else None
        rows = grad.reshape(-1, grad.shape[-1])
        inputs = x.reshape(-1, x.shape[-1]).to(grad.dtype)
        grads = [
            rows[:, start:end].t() @ inputs if ctx.needs_input_grad[4 + i] else None
            for i, (start, end) in enumerate(ctx.slices)
        ]
        return (grad_x, None, None, None, *grads)


def slice_deltas(banks: Sequence[StackedBank]) -> List[Tensor]:
    """``sum over banks of B diag(s) A`` for each slice (the banks share their slices).

    Folding the frozen adapters and the trained ones as separate banks keeps the frozen
    factors out of autograd: the backward pass then costs one matmul per slice (for the
    scales), not two.
    """
    deltas = None
    for stacked in banks:
        parts = [(b * scale) @ a for _, a, b, scale in stacked.parts()]
        deltas = parts if deltas is None else [d + p for d, p in zip(deltas, parts)]
    return deltas


def folded_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor],
                  slices: Sequence[Tuple[int, int]], deltas: Sequence[Tensor]) -> Tensor:
    """A Linear layer with ``deltas`` folded into its weight (see :class:`_FoldedLinear`)."""
    if not torch.is_grad_enabled() or not any(d.requires_grad for d in deltas):
        return F.linear(x, folded_weight(weight, slices, deltas), bias)
    return _FoldedLinear.apply(x, weight, bias, list(slices), *deltas)


def folded_weight(weight: Tensor, slices: Sequence[Tuple[int, int]], deltas: Sequence[Tensor]) -> Tensor:
    """``W`` with each slice's delta added to its rows (``weight`` as out x in)."""
    pieces, position = [], 0
    for (start, end), delta in sorted(zip(slices, deltas), key=lambda part: part[0][0]):
        if start > position:
            pieces.append(weight[position:start])
        pieces.append(weight[start:end] + delta)
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
