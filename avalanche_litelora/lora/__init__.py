"""The LoRA bank family: LiteLoRA, per-task LoRA (SD-LoRA), sequential and task-routed LoRA, and
the head-only control. ``config`` (settings), ``layer`` (LoRA's adapter layer), ``gate``,
``model`` (the bank), ``plugins`` (its lifecycle), ``strategies`` (thin wrappers)."""

from avalanche_litelora.former_names import getattr_for as _getattr_for
from avalanche_litelora.lora.config import (HeadOnlyConfig, LiteLoRAConfig, LoRABankConfig, PerTaskLoRAConfig,
                                           SequentialLoRAConfig, TaskRoutedLoRAConfig)
from avalanche_litelora.lora.gate import AdapterGate, straight_through_gumbel_sigmoid
from avalanche_litelora.lora.layer import LoRALinear, LowRankAdapter, inject_lora, qkv_slices
from avalanche_litelora.lora.model import LoRAClassifier, TaskIncrementalLoRAClassifier
from avalanche_litelora.lora.task_routed import TaskRoutedLoRAClassifier
from avalanche_litelora.lora.plugins import *  # noqa: F401,F403
from avalanche_litelora.lora import plugins as _plugins
from avalanche_litelora.lora.strategies import (
    HeadOnlyStrategy,
    LiteLoRAStrategy,
    PerTaskLoRAStrategy,
    SequentialLoRAStrategy,
    TaskRoutedLoRAStrategy,
)

__getattr__ = _getattr_for(__name__)  # the shared base's names exported here in 0.1.0, deprecated

__all__ = [
    "LoRABankConfig",
    "HeadOnlyConfig",
    "SequentialLoRAConfig",
    "PerTaskLoRAConfig",
    "TaskRoutedLoRAConfig",
    "LiteLoRAConfig",
    "AdapterGate",
    "straight_through_gumbel_sigmoid",
    "LoRALinear",
    "LowRankAdapter",
    "inject_lora",
    "qkv_slices",
    "LoRAClassifier",
    "TaskIncrementalLoRAClassifier",
    "TaskRoutedLoRAClassifier",
    *_plugins.__all__,
    "HeadOnlyStrategy",
    "LiteLoRAStrategy",
    "PerTaskLoRAStrategy",
    "SequentialLoRAStrategy",
    "TaskRoutedLoRAStrategy",
]
