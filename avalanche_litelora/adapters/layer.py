"""The base of every adapter layer: a frozen ``nn.Linear`` (or 1x1 conv) plus gated adapters.

As peft's tuner layers share ``BaseTunerLayer``, the LoRA bank's
:class:`~avalanche_litelora.lora.layer.LoRALinear` and Share's
:class:`~avalanche_litelora.share.layer.ShareLinear` are siblings under
:class:`AdapterLayer`. The base holds the frozen layer, the per-adapter gate values, the
forward pass (frozen adapters stacked at a cost flat in their number, see
:mod:`avalanche_litelora.adapters.stacked`) and the exact merge / unmerge. A subclass says only
how an adapter is stored: :meth:`AdapterLayer._factors` gives one adapter's ``A``, ``B``
and scale on one output slice, and everything else is computed from it.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from avalanche_litelora.checks import is_count
from avalanche_litelora.adapters import stacked


def set_trainable(tensors: Iterable[Tensor], trainable: bool) -> None:
    """Switch gradients on or off; a tensor switched off also drops its stale gradient, so
    an optimizer step (momentum, weight decay) cannot move it."""
    for tensor in tensors:
        tensor.requires_grad_(trainable)
        if not trainable:
            tensor.grad = None


def is_pointwise_conv(module: nn.Module) -> bool:
    """A 1x1, ungrouped ``nn.Conv2d``: a Linear applied over channels at every pixel."""
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.groups == 1
        and module.padding in ((0, 0), "valid")
        and module.dilation == (1, 1)
    )


def is_adaptable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or is_pointwise_conv(module)


def layer_shape(base: nn.Module) -> Tuple[int, int]:
    """``(in_features, out_features)`` of a Linear or a pointwise conv."""
    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features
    return base.in_channels, base.out_channels


def qkv_slices(qkv: nn.Linear) -> Dict[str, Tuple[int, int]]:
    """q and v output ranges of timm's fused ``qkv`` projection (out = 3 x dim)."""
    if qkv.out_features % 3:
        raise ValueError(f"a fused qkv layer has 3*dim outputs, got {qkv.out_features}")
    dim = qkv.out_features // 3
    return {"q": (0, dim), "v": (2 * dim, 3 * dim)}


def _check_slices(slices: Dict[str, Tuple[int, int]], out_features: int) -> None:
    """Named, integer, in-range and disjoint: overlapping slices would make merge() differ
    from forward() (the forward adds both updates, the merged delta keeps the last)."""
    if not slices:
        raise ValueError("out_slices is empty: give at least one output range")
    taken = []
    for key, bounds in slices.items():
        if not isinstance(key, str) or not key or "." in key:
            raise ValueError(f"output slice names must be non-empty strings without '.', got {key!r}")
        if (
            not isinstance(bounds, (tuple, list)) or len(bounds) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        ):
            raise ValueError(f"output slice {key!r} must be a (start, end) pair of ints, got {bounds!r}")
        start, end = bounds
        if not 0 <= start < end <= out_features:
            raise ValueError(f"output slice {key}={start}:{end} is outside 0:{out_features}")
        for other, (o_start, o_end) in taken:
            if start < o_end and o_start < end:
                raise ValueError(f"output slices {other!r} and {key!r} overlap")
        taken.append((key, (start, end)))


class AdapterLayer(nn.Module):
    """A frozen ``nn.Linear`` (or pointwise ``nn.Conv2d``) plus any number of gated adapters.

    ``out_slices`` names the output ranges that receive an adapter; ``None`` adapts the
    whole output, and :func:`qkv_slices` gives timm's q and v slices of a fused ``qkv``.
    Adapters live in ``adapters`` (an ``nn.ModuleDict`` keyed by name, each holding
    ``ParameterDict`` s ``A`` and ``B`` keyed by slice). Gate values (one per adapter,
    shared by every layer) are pushed in by the owning model through :attr:`gate_values`
    before each forward pass; an adapter without one gets :attr:`missing_gate`. A callable
    value is a gate sampled at every call (``"per_call"``): it gives one value per slice.
    """

    #: ``None`` lets :func:`~avalanche_litelora.adapters.stacked.choose_form` pick per forward pass.
    bank_form: Optional[str] = None
    #: The gate of an adapter the model pushed no value for (1.0: open, 0.0: closed).
    missing_gate: float = 1.0

    def __init__(
        self,
        base: nn.Module,
        rank: int,
        out_slices: Optional[Mapping[str, Tuple[int, int]]] = None,
    ):
        super().__init__()
        if not is_adaptable(base):
            raise TypeError(
                f"{type(self).__name__} wraps nn.Linear or a 1x1 ungrouped nn.Conv2d, got {base!r}"
            )
        in_features, out_features = layer_shape(base)
        slices = dict(out_slices) if out_slices is not None else {"out": (0, out_features)}
        _check_slices(slices, out_features)
        max_rank = min([in_features] + [end - start for start, end in slices.values()])
        if not is_count(rank) or rank > max_rank:
            raise ValueError(
                f"rank must be an integer in [1, {max_rank}] for a layer of shape "
                f"{out_features}x{in_features}, got {rank!r}"
            )
        self.base = base
        self.is_conv = isinstance(base, nn.Conv2d)
        self.rank = rank
        self.out_slices: Dict[str, Tuple[int, int]] = slices
        self.adapters = nn.ModuleDict()
        self.gate_values: Dict[str, Tensor] = {}
        self._weight_before_merge: Optional[Tensor] = None
        for p in self.base.parameters():
            p.requires_grad_(False)

    @property
    def in_features(self) -> int:
        return layer_shape(self.base)[0]

    @property
    def out_features(self) -> int:
        return layer_shape(self.base)[1]

    @property
    def weight(self) -> Tensor:
        return self.base.weight

    @property
    def bias(self) -> Optional[Tensor]:
        return self.base.bias

    @property
    def merged(self) -> bool:
        return self._weight_before_merge is not None

    def delete_adapter(self, name: str) -> None:
        if self.merged:
            raise RuntimeError("unmerge() before deleting an adapter")
        del self.adapters[name]
        self.gate_values.pop(name, None)

    def _gate(self, name: str):
        return self.gate_values.get(name, self.missing_gate)

    # ------------------------------------------------------------ the update
    def _factors(self, name: str, key: str) -> Tuple[Tensor, Tensor, object]:
        """``A`` (r x d_in), ``B`` (width x r) and scale of one adapter on one output slice.

        The one place an adapter's update ``scale * B A`` is defined: the forward pass,
        the stacked bank and :meth:`get_delta_weight` all read it.
        """
        raise NotImplementedError

    def get_delta_weight(self, name: str) -> Tensor:
        """The full-size weight update of one adapter (before gating)."""
        delta = self.base.weight.new_zeros(self.out_features, self.in_features)
        for key, (start, end) in self.out_slices.items():
            a, b, scale = self._factors(name, key)
            delta[start:end] = scale * (b @ a)
        return delta

    def _low_rank(self, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        if self.is_conv:  # channels are dim 1; A takes the base layer's stride
            hidden = F.conv2d(x, a[:, :, None, None], stride=self.base.stride)
            return F.conv2d(hidden, b[:, :, None, None])
        return (x @ a.t()) @ b.t()

    def _trains_factors(self, name: str) -> bool:
        """An adapter whose own ``A`` / ``B`` train (the open candidate) stays out of the stack,
        so that the frozen bank's factors never need a gradient. Without autograd every
        adapter is stacked: a model predicts the same whichever of its adapters train."""
        if not torch.is_grad_enabled():
            return False
        adapter = self.adapters[name]
        return any(p.requires_grad for side in (adapter.A, adapter.B) for p in side.values())

    def _stack(self, entries: List[Tuple[str, object]]) -> stacked.StackedBank:
        """The adapters ``entries`` (name, gate) in stacked form, adapter by adapter."""
        weight = self.base.weight
        gates = stacked.as_vector([gate for _, gate in entries], weight)
        keys = list(self.out_slices)
        slices = [self.out_slices[key] for key in keys]
        factors = [[self._factors(name, key) for name, _ in entries] for key in keys]
        return stacked.stack_factors(factors, gates, slices, weight)

    def _form(self, x: Tensor, frozen: List[Tuple[str, object]], trained: List[Tuple[str, object]],
              frozen_grad: bool) -> str:
        """``bank_form``, else the cheaper form for this input (see :func:`stacked.choose_form`)."""
        if self.bank_form is not None:
            return self.bank_form
        stride = self.base.stride if self.is_conv else None
        return stacked.choose_form(
            list(self.out_slices.values()), len(frozen) * self.rank, len(trained) * self.rank,
            stacked.rows_of(x, self.in_features, stride), self.in_features, self.out_features,
            frozen_grad=frozen_grad, x_grad=x.requires_grad,
        )

    def _folded_forward(self, x: Tensor, banks: List[stacked.StackedBank]) -> Tensor:
        """The base layer with the stacked adapters folded into its weight."""
        weight = self.base.weight
        slices = banks[0].slices
        deltas = stacked.slice_deltas(banks)
        if not self.is_conv:
            return stacked.folded_linear(x, weight, self.base.bias, slices, deltas)
        folded = stacked.folded_weight(weight.view(self.out_features, self.in_features), slices, deltas)
        return self.base._conv_forward(x, folded.view_as(weight), self.base.bias)

    def forward(self, x: Tensor) -> Tensor:
        """The base layer plus every open adapter, in the cheaper of two equivalent forms.

        ``"dense"`` folds every adapter, trained or not, into the weight; ``"lowrank"`` adds
        the frozen ones as one stacked low-rank product and each trained one (the candidate)
        with its own factors, so no gradient is computed for the frozen factors.
        """
        if self.merged or len(self.adapters) == 0:
            return self.base(x)
        entries, trained = [], []
        for name in self.adapters:
            beta = self._gate(name)
            if callable(beta):  # a gate sampled at every call, one value per output slice
                beta = beta(len(self.out_slices))
            if stacked.is_closed(beta):
                continue  # closed gate: skip the work, the update is exactly zero
            entries.append((name, beta))
            if self._trains_factors(name):
                trained.append((name, beta))
        if not entries:
            return self.base(x)
        trained_names = {name for name, _ in trained}
        frozen = [e for e in entries if e[0] not in trained_names]
        frozen_stack = self._stack(frozen) if frozen else None
        frozen_grad = frozen_stack is not None and torch.is_grad_enabled() and frozen_stack.requires_grad
        if self._form(x, frozen, trained, frozen_grad) == "dense":
            banks = ([frozen_stack] if frozen_stack is not None else []) + ([self._stack(trained)] if trained else [])
            return self._folded_forward(x, banks)
        out = self.base(x)
        if out._is_view() and not out.requires_grad:
            # A view of a tensor autograd does not track (F.linear on a non-contiguous
            # input, as in BERT) cannot take a gradient-carrying update in place.
            out = out.clone()
        if frozen_stack is not None:
            stacked.add_lowrank(out, x, frozen_stack, self.base.stride if self.is_conv else None)
        for name, beta in trained:
            for index, (key, (start, end)) in enumerate(self.out_slices.items()):
                a, b, scale = self._factors(name, key)
                update = self._low_rank(x, a, b)
                target = out[:, start:end] if self.is_conv else out[..., start:end]
                target += (stacked.slice_gate(beta, index) * scale) * update
        return out

    # -------------------------------------------------------------- merge
    @torch.no_grad()
    def merge(self) -> None:
        """Fold the gated adapters into the base weight: inference at the bare layer's cost."""
        if self.merged:
            return
        delta = self.base.weight.new_zeros(self.out_features, self.in_features)
        for name in self.adapters:
            delta += float(self._gate(name)) * self.get_delta_weight(name)
        self._weight_before_merge = self.base.weight.detach().clone()
        self.base.weight.add_(delta.view_as(self.base.weight))

    @torch.no_grad()
    def unmerge(self) -> None:
        """Exact mirror of :meth:`merge`: the base weight comes back bit for bit.

        Subtracting the update again would leave rounding error in a backbone that must
        never change, so merge keeps the original weight instead.
        """
        if not self.merged:
            return
        self.base.weight.copy_(self._weight_before_merge)
        self._weight_before_merge = None
