"""InfLoRA (Liang & Li, CVPR 2024) as an Avalanche strategy on the package's adapter bank."""

from __future__ import annotations

from typing import Dict, List

from avalanche.core import BasePlugin
from torch import nn

from avalanche_litelora.adapters.config import accepts_config_keywords
from avalanche_litelora.inflora.config import InfLoRAConfig
from avalanche_litelora.inflora.plain_sum import check_ready_model, use_qkv_parts
from avalanche_litelora.inflora.plugins import DesignDownProjectionPlugin, SubspaceMemoryPlugin
from avalanche_litelora.lora import plugins as bank
from avalanche_litelora.lora.strategies import LoRABankStrategy
from avalanche_litelora.registry import register


@register
@accepts_config_keywords
class InfLoRAStrategy(LoRABankStrategy):
    """InfLoRA: one adapter per experience whose update cannot disturb earlier tasks' inputs.

    Before an experience trains, its adapter's ``A`` is designed from the experience's own
    input representations with the earlier tasks' stored subspace projected out, and frozen;
    only ``B`` (and the head) train. After it, DualGPM adds the experience's input subspace
    to the memory. Earlier adapters stay frozen and summed; evaluation folds them into the
    weights (``merge_for_eval``), which computes the same function as the official code's
    unmerged sum. Class- and task-incremental (``task_incremental=True``).
    Settings: :class:`~avalanche_litelora.inflora.config.InfLoRAConfig`.
    """

    config_class = InfLoRAConfig
    method_name = "InfLoRA"

    def _check_model(self, model: nn.Module) -> None:
        check_ready_model(model, type(self).__name__, allow_adapters=False,
                          why_empty="their input subspaces were never stored, so the new adapters "
                          "could not be designed to leave those tasks alone (pass the plain backbone)")

    def _model_ready(self) -> None:
        use_qkv_parts(self.adapter_model, self.config.qkv_parts)

    def _bank_plugins(self, config: InfLoRAConfig) -> List[BasePlugin]:
        memory = SubspaceMemoryPlugin(config.threshold_start, config.threshold_end, config.total_tasks)
        return [
            bank.OpenCandidatePlugin(train_past_magnitudes=False),
            DesignDownProjectionPlugin(memory),
            memory,
            bank.FreezeBankPlugin(),
        ]

    @property
    def subspace_memory(self) -> SubspaceMemoryPlugin:
        return next(p for p in self.plugins if isinstance(p, SubspaceMemoryPlugin))

    def subspace_dimensions(self) -> Dict[str, int]:
        """Per adapted layer, the dimension of the earlier tasks' protected input space."""
        return self.subspace_memory.dimensions()
