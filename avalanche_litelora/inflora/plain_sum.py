"""The bank as InfLoRA and O-LoRA use it: a plain sum ``sum_t B_t A_t`` of frozen adapters.

Both methods are defined on the sum of the adapters as they trained. The bank's SD-LoRA
options would change a finished adapter's update at the boundary (``boundary="rescale"``)
or make one magnitude per adapter train across layers (``"per_adapter"``); the strategies
build their model with the settings in :data:`~avalanche_litelora.inflora.config.PLAIN_SUM_MODEL`
and refuse a ready model built otherwise. :func:`use_qkv_parts` points the fused-``qkv``
layers' adapters at the parts a method adapts (InfLoRA's official k and v).
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from avalanche_litelora.inflora.config import PLAIN_SUM_MODEL
from avalanche_litelora.lora.layer import LoRALinear
from avalanche_litelora.adapters.access import unwrap_ddp as unwrap
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.training.compatibility import IncompatiblePluginError


def check_ready_model(model: nn.Module, strategy: str, *, allow_adapters: bool, why_empty: str = "") -> None:
    """Refuse, before anything changes, a ready :class:`LoRAClassifier` the method cannot use."""
    model = unwrap(model)
    if not isinstance(model, LoRAClassifier):
        return  # a plain backbone: the strategy builds the bank itself
    for name, wanted in PLAIN_SUM_MODEL.items():
        if getattr(model, name) != wanted:
            raise IncompatiblePluginError(
                f"{strategy} needs a LoRAClassifier built with {name}={wanted!r}, got "
                f"{getattr(model, name)!r}: the method sums its adapters as they trained, and "
                "SD-LoRA's magnitudes would rescale them (pass the plain backbone instead)"
            )
    if not allow_adapters and model.adapter_names:
        raise IncompatiblePluginError(
            f"{strategy} got a LoRAClassifier that already holds adapters {model.adapter_names}: {why_empty}"
        )


def use_qkv_parts(model: LoRAClassifier, parts: Sequence[str]) -> None:
    """Adapters of every fused ``qkv`` layer on ``parts`` (of q, k, v); needs an empty bank."""
    for layer in model.lora_layers().values():
        if not isinstance(layer, LoRALinear) or set(layer.out_slices) != {"q", "v"}:
            continue  # not a fused qkv: its whole output is adapted
        if layer.out_features != 3 * layer.in_features:
            continue
        wanted = {p: (i * layer.in_features, (i + 1) * layer.in_features) for i, p in enumerate("qkv") if p in parts}
        if wanted == layer.out_slices:
            continue
        if len(layer.adapters):
            raise ValueError("the qkv parts of a bank that holds adapters cannot change")
        layer.out_slices = wanted
