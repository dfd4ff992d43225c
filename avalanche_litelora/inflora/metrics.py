"""InfLoRA's memory as TensorBoard read-outs, after each training experience (x = its index).

What a researcher watches in an InfLoRA run is how much of each layer's input space the
memory has claimed: once a layer's protected subspace nears its width, later tasks' designed
``A`` only has the leftover directions to work with. Tags:

- ``InfLoRA/subspace_dim/<layer>``: the dimension of the protected input space of a layer;
- ``InfLoRA/protected_fraction``: those dimensions summed over layers, over the layers'
  summed input widths (one curve for the whole bank);
- ``InfLoRA/threshold``: the DualGPM threshold the update just used.

Add :func:`inflora_metrics` to your own ``EvaluationPlugin``. The ``EvaluationPlugin`` runs
after the strategy's plugins, so the read-out sees the memory this experience left.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from avalanche.evaluation import PluginMetric

from avalanche_litelora.inflora.plugins import SubspaceMemoryPlugin
from avalanche_litelora.metrics.readout import ExperienceReadoutMetric, warn_once
from avalanche_litelora.registry import register


def find_memory(strategy) -> Optional[SubspaceMemoryPlugin]:
    """The strategy's InfLoRA memory plugin, or ``None`` (an InfLoRA read-out on another strategy)."""
    return next((p for p in getattr(strategy, "plugins", ()) if isinstance(p, SubspaceMemoryPlugin)), None)


@register
class InfLoRASubspaceMetric(ExperienceReadoutMetric):
    """Per layer, the protected subspace's dimension, and the threshold, per training experience.

    A strategy without InfLoRA's memory is skipped with one warning. Only plain data is kept
    on the metric, so the package's checkpoints restore it.
    """

    def __init__(self):
        super().__init__()
        self._warned = False

    def read(self, strategy) -> Optional[Dict[str, float]]:
        memory = find_memory(strategy)
        if memory is None:
            warn_once(self, "InfLoRASubspaceMetric: the strategy has no InfLoRA subspace memory; "
                            "its read-outs are skipped")
            return None
        if not memory.memory:  # a sub-experience before the task's end: nothing stored yet
            return None
        values = {f"InfLoRA/subspace_dim/{name}": float(dim) for name, dim in memory.dimensions().items()}
        widths = sum(m.basis.shape[0] for m in memory.memory.values())
        values["InfLoRA/protected_fraction"] = sum(memory.dimensions().values()) / widths
        if memory.thresholds:
            values["InfLoRA/threshold"] = float(memory.thresholds[-1])
        return values

    def __str__(self) -> str:
        return "InfLoRASubspace"


def inflora_metrics() -> List[PluginMetric]:
    """InfLoRA's read-outs, for your ``EvaluationPlugin`` (beside ``litelora_metrics()``)."""
    return [InfLoRASubspaceMetric()]
