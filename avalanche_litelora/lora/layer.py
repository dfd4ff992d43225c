"""The LoRA layer: a frozen ``nn.Linear`` holding a bank of gated low-rank adapters.

Design follows peft's ``tuners/lora/layer.py``: the wrapper *holds* the base layer and
adapters live in an ``nn.ModuleDict`` keyed by adapter name (so ``state_dict``, ``.to()``
and DDP see them). The forward pass, the stacked bank and merge / unmerge are the
:class:`~avalanche_litelora.lora.adapter_layer.AdapterLayer` base's; this module says how
one LoRA adapter is stored (A, B and an SD-LoRA magnitude per output slice).
"""

from __future__ import annotations

import math
from typing import List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from avalanche_litelora.lora import bank
from avalanche_litelora.lora.adapter_layer import (  # noqa: F401  (re-exported)
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
    number (:mod:`avalanche_litelora.lora.bank`); ``bank_form`` forces one of its forms.
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

    def _stack(self, entries: List[Tuple[str, object]]) -> bank.StackedBank:
        """LoRA adapters stack with one kernel per quantity (the same update as ``_factors``);
        a subclass that stores its factors differently is stacked adapter by adapter."""
        if type(self)._factors is not LoRALinear._factors:
            return super()._stack(entries)
        weight = self.base.weight
        gates = bank.as_vector([gate for _, gate in entries], weight)
        keys = list(self.out_slices)
        slices = [self.out_slices[key] for key in keys]
        adapters = [self.adapters[name] for name, _ in entries]
        return bank.stack_lora_adapters(adapters, keys, gates, slices, self.rank)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, slices={self.out_slices}, adapters={list(self.adapters)}"
