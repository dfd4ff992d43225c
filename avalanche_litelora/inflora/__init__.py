"""InfLoRA: interference-free low-rank adaptation (Liang & Li, CVPR 2024) on the adapter bank."""

from avalanche_litelora.inflora.config import InfLoRAConfig
from avalanche_litelora.inflora.metrics import InfLoRASubspaceMetric, inflora_metrics
from avalanche_litelora.inflora.plugins import DesignDownProjectionPlugin, SubspaceMemoryPlugin
from avalanche_litelora.inflora.strategy import InfLoRAStrategy
from avalanche_litelora.inflora.subspace import LayerMemory, design_down_projection, old_space, update_memory

__all__ = [
    "InfLoRAConfig",
    "InfLoRAStrategy",
    "DesignDownProjectionPlugin",
    "SubspaceMemoryPlugin",
    "InfLoRASubspaceMetric",
    "inflora_metrics",
    "LayerMemory",
    "design_down_projection",
    "old_space",
    "update_memory",
]
