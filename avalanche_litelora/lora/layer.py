"""The LoRA layer: a frozen ``nn.Linear`` holding a bank of gated low-rank adapters.

Design follows peft's ``tuners/lora/layer.py``: the wrapper *holds* the base layer and
adapters live in an ``nn.ModuleDict`` keyed by adapter name (so ``state_dict``, ``.to()``
and DDP see them). The forward pass, the stacked bank and merge / unmerge are the
:class:`~avalanche_litelora.adapters.layer.AdapterLayer` base's; this module says how
one LoRA adapter is stored (A, B and an SD-LoRA magnitude per output slice).
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Type

import torch
from torch import Tensor, nn

from avalanche_litelora.adapters import stacked
from avalanche_litelora.adapters.inject import AUTO_TARGETS, Targets, inject_adapters
from avalanche_litelora.adapters.layer import (  # noqa: F401  (re-exported)
    AdapterLayer,
    is_adaptable,
    is_pointwise_conv,
    qkv_slices,
    set_trainable,
)


class LowRankAdapter(nn.Module):
    """One adapter: per output slice, ``A`` (r x d_in), ``B`` (width x r) and a magnitude.

    While it trains (``normalized`` False) its update is ``magnitude * B A``: SD-LoRA
    cannot normalise the new adapter because ``B`` starts at zero. Once frozen it is stored
    as an SD-LoRA direction ``B A / (||B|| ||A||)``, its norm folded into the magnitude or
    not (see :meth:`to_direction_form`).
    """

    def __init__(
        self,
        in_features: int,
        slice_widths: Mapping[str, int],
        rank: int,
        generator: Optional[torch.Generator] = None,
    ):
        super().__init__()
        _check_generator(generator)
        self.rank = rank
        self.A = nn.ParameterDict()
        self.B = nn.ParameterDict()
        self.magnitude = nn.ParameterDict()
        for key, width in slice_widths.items():
            a = torch.empty(rank, in_features)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
            self.A[key] = nn.Parameter(a)
            self.B[key] = nn.Parameter(torch.zeros(width, rank))
            self.magnitude[key] = nn.Parameter(torch.ones(()))
        self.register_buffer("normalized", torch.zeros((), dtype=torch.bool))

    @property
    def is_normalized(self) -> bool:
        """``normalized`` as a Python bool, read back only when the buffer changed.

        Reading a device tensor synchronises with the device; the buffer's version counter
        (bumped by ``fill_``, ``copy_`` and ``load_state_dict``) tells when to read it again.
        """
        flag = self.normalized
        try:
            version = flag._version
        except RuntimeError:  # an inference-mode tensor has no version counter
            return bool(flag)
        seen = getattr(self, "_normalized_seen", None)
        if seen is None or seen[0] is not flag or seen[1] != version:
            seen = (flag, version, bool(flag))
            self._normalized_seen = seen
        return seen[2]

    def scale(self, key: str) -> Tensor:
        """Factor applied to ``B A`` for one slice: the magnitude, over the norms once frozen."""
        if self.is_normalized:
            norm = self.B[key].norm() * self.A[key].norm()
            return self.magnitude[key] / norm.clamp_min(torch.finfo(norm.dtype).tiny)
        return self.magnitude[key]

    @torch.no_grad()
    def to_direction_form(self, fold_norm: bool = True) -> None:
        """Switch to SD-LoRA's direction/magnitude form.

        ``fold_norm`` multiplies the norm into the magnitude, so the update does not change;
        without it the magnitude is kept and the update shrinks or grows by
        ``1 / (||B|| ||A||)``, as the reference code's reload of a finished adapter does.
        """
        if self.is_normalized:
            return
        if fold_norm:
            for key in self.A:
                norm = self.B[key].norm() * self.A[key].norm()
                self.magnitude[key].mul_(norm)
        self.normalized.fill_(True)

    def set_requires_grad(self, adapter: bool, magnitude: bool) -> None:
        set_trainable(list(self.A.values()) + list(self.B.values()), adapter)
        set_trainable(self.magnitude.values(), magnitude)


def _check_generator(generator) -> None:
    """A CPU ``torch.Generator`` or None: A is drawn on the CPU, then moved to the layer."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")


class LoRALinear(AdapterLayer):
    """A frozen ``nn.Linear`` (or pointwise ``nn.Conv2d``) plus a bank of LoRA adapters.

    Each adapter is a :class:`LowRankAdapter`; an adapter without a gate value is open.
    Adapters whose factors do not train are computed together, at a cost flat in their
    number (:mod:`avalanche_litelora.adapters.stacked`); ``bank_form`` forces one of its forms.
    """

    def add_adapter(self, name: str, generator: Optional[torch.Generator] = None) -> LowRankAdapter:
        """A new adapter; ``generator`` (a CPU one) draws its ``A``, else the global RNG does."""
        _check_generator(generator)
        if name in self.adapters:
            raise ValueError(f"adapter {name!r} already exists")
        if self.merged:
            raise RuntimeError("unmerge() before adding an adapter")
        widths = {key: end - start for key, (start, end) in self.out_slices.items()}
        adapter = LowRankAdapter(self.in_features, widths, self.rank, generator=generator)
        weight = self.base.weight
        adapter.to(device=weight.device, dtype=weight.dtype)
        self.adapters[name] = adapter
        return adapter

    def _factors(self, name: str, key: str) -> Tuple[Tensor, Tensor, Tensor]:
        adapter = self.adapters[name]
        return adapter.A[key], adapter.B[key], adapter.scale(key)

    def _stack(self, entries: List[Tuple[str, object]]) -> stacked.StackedBank:
        """LoRA adapters stack with one kernel per quantity (the same update as ``_factors``);
        a subclass that stores its factors differently is stacked adapter by adapter."""
        if type(self)._factors is not LoRALinear._factors:
            return super()._stack(entries)
        weight = self.base.weight
        gates = stacked.as_vector([gate for _, gate in entries], weight)
        keys = list(self.out_slices)
        slices = [self.out_slices[key] for key in keys]
        adapters = [self.adapters[name] for name, _ in entries]
        return stack_lora_adapters(adapters, keys, gates, slices, self.rank)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, slices={self.out_slices}, adapters={list(self.adapters)}"


def stack_lora_adapters(adapters, keys: Sequence[str], gates: Tensor,
                        slices: Sequence[Tuple[int, int]], rank: int) -> stacked.StackedBank:
    """:class:`LowRankAdapter` s stacked with one kernel per quantity, not one per adapter.

    The same arithmetic as ``LowRankAdapter.scale`` (gate x magnitude, over ``||B|| ||A||``
    once in direction form), vectorised over the adapters.
    """
    n, slice_count = len(adapters), len(keys)
    # nn.Module attribute access costs about a microsecond; a bank of fifty adapters reads
    # hundreds of tensors per forward pass, so they are read from the modules' own dicts.
    a_of = [ad._modules["A"]._parameters for ad in adapters]
    b_of = [ad._modules["B"]._parameters for ad in adapters]
    magnitude_of = [ad._modules["magnitude"]._parameters for ad in adapters]
    normalized = torch.stack([ad._buffers["normalized"] for ad in adapters])
    a_all = torch.cat([a[key] for key in keys for a in a_of], dim=0)  # slice, adapter, rank
    bs = [torch.cat([b[key] for b in b_of], dim=1) if n > 1 else b_of[0][key] for key in keys]
    # The norms only need a gradient for an adapter in direction form whose factors train.
    norm_grad = torch.is_grad_enabled() and any(
        ad.is_normalized for ad, a, b in zip(adapters, a_of, b_of)
        if any(a[key].requires_grad or b[key].requires_grad for key in keys))
    a_src = a_all if norm_grad else a_all.detach()
    b_src = bs if norm_grad else [b.detach() for b in bs]
    norm_a = torch.linalg.vector_norm(a_src.reshape(slice_count, n, -1), dim=2)
    norm_b = torch.stack([torch.linalg.vector_norm(b.reshape(b.shape[0], n, rank), dim=(0, 2)) for b in b_src])
    magnitude = torch.stack([m[key] for key in keys for m in magnitude_of]).reshape(slice_count, n)
    # An adapter still in training form divides by 1, not by its norm: its B may be zero,
    # and the unused branch of a where() still passes 0 x inf = NaN back to the factors.
    norm = torch.where(normalized, (norm_a * norm_b).clamp_min(torch.finfo(norm_a.dtype).tiny), 1.0)
    scale = magnitude / norm * gates  # gates: (adapters,) or (slices, adapters)
    columns = scale.repeat_interleave(rank, dim=1).reshape(-1)
    return stacked.StackedBank(a_all, bs, columns, list(slices), [n * rank] * slice_count)


def inject_lora(model: nn.Module, target_modules: Targets = AUTO_TARGETS, rank: int = 10, exclude: Sequence[str] = (),
                *, layer_type: Type[AdapterLayer] = LoRALinear) -> Dict[str, AdapterLayer]:
    """Swap the targeted Linear / 1x1-conv layers for :class:`LoRALinear` in place; freeze the rest.

    :func:`~avalanche_litelora.adapters.inject.inject_adapters` with LoRA's layer by default:
    all checks run before the first swap, ``exclude`` keeps modules out, ``layer_type`` may be
    any :class:`AdapterLayer` subclass. Returns the wrappers by module name.
    """
    return inject_adapters(model, target_modules, rank, exclude, layer_type=layer_type)
