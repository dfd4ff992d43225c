"""The adapter building blocks: the base layer, LoRA's layer, the gate, injection."""

from avalanche_litelora.lora.adapter_layer import AdapterLayer
from avalanche_litelora.lora.gate import AdapterGate, straight_through_gumbel_sigmoid
from avalanche_litelora.lora.inject import DEFAULT_TARGET_MODULES, find_target_modules, inject_lora
from avalanche_litelora.lora.layer import LoRALinear, LowRankAdapter, qkv_slices

__all__ = [
    "AdapterLayer",
    "AdapterGate",
    "straight_through_gumbel_sigmoid",
    "DEFAULT_TARGET_MODULES",
    "find_target_modules",
    "inject_lora",
    "LoRALinear",
    "LowRankAdapter",
    "qkv_slices",
]
